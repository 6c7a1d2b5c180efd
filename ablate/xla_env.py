"""Environment for XLA set before JAX is imported (it is read once, when jaxlib loads), and
the folder of the persistent compilation cache (`cache_folder`), for processes that never
import JAX (the sweep driver).

XLA:CPU logs an ERROR line of several kilobytes for every executable it loads from the
persistent compilation cache on CPUs whose LLVM tuning flags (``+prefer-no-scatter``,
``+prefer-no-gather``) it records at compile time but does not find among the host's features
(jax-ml/jax#38445). A run that reuses a few dozen cached programs would print a wall of them.
`quiet_xla_on_cpu` sets ``TF_CPP_MIN_LOG_LEVEL=3`` (XLA's C++ log: fatal messages only) in a
process that will run on the CPU, before jaxlib reads it; a value the user set wins, and a
process that may use a GPU keeps XLA's messages. No JAX import here.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

OFF = ("null", "none", "off", "false", "")


def will_run_on_cpu() -> bool:
    """True when JAX can only find the CPU: ``JAX_PLATFORMS=cpu``, ``CUDA_VISIBLE_DEVICES``
    empty or -1, or no NVIDIA device node on this machine."""
    platforms = os.environ.get("JAX_PLATFORMS", "").strip().lower()
    if platforms and set(platforms.split(",")) <= {"cpu"}:
        return True
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return True
    return not glob.glob("/dev/nvidia[0-9]*")


def quiet_xla_on_cpu() -> bool:
    """Sets ``TF_CPP_MIN_LOG_LEVEL=3`` when the user has not and JAX will run on the CPU;
    returns whether it did. Call it before the first ``import jax``."""
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or not will_run_on_cpu():
        return False
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return True


def cache_folder(setting: str | os.PathLike | None) -> Path | None:
    """The folder of a ``compilation_cache`` setting: ``auto`` is the per-user folder
    (``$ABLATE_CACHE_DIR``, else ``$XDG_CACHE_HOME/ablate/jax``, else ``~/.cache/ablate/jax``);
    null or ``off`` is no cache; anything else is that folder."""
    if setting is None or str(setting).strip().lower() in OFF:
        return None
    if str(setting) == "auto":
        if os.environ.get("ABLATE_CACHE_DIR"):
            return Path(os.environ["ABLATE_CACHE_DIR"]).expanduser()
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return Path(base).expanduser() / "ablate" / "jax"
    return Path(setting).expanduser()
