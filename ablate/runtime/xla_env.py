"""Environment for XLA set before JAX is imported (it is read once, when jaxlib loads), and
the folder of the persistent compilation cache (`cache_folder`), for processes that never
import JAX (the sweep driver).

XLA:CPU logs an ERROR line of several kilobytes for every executable it loads from the
persistent compilation cache on CPUs whose LLVM tuning flags (``+prefer-no-scatter``,
``+prefer-no-gather``) it records at compile time but does not find among the host's features
(openxla/xla#44565). A run that reuses a few dozen cached programs would print a wall of them.
`quiet_xla_on_cpu` sets ``TF_CPP_MIN_LOG_LEVEL=3`` (XLA's C++ log: fatal messages only) in a
process that will run on the CPU, before jaxlib reads it; a value the user set wins (other than
JAX's default of 1, which any parent that imported JAX passes on), and a process that may use a
GPU keeps XLA's messages. No JAX import here.
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


# What ``import jax`` puts in os.environ when nobody set it (jax/__init__.py), so every child of
# a process that imported JAX (a test, a notebook, a benchmark) inherits it: not the user's choice.
JAX_DEFAULT_LOG_LEVEL = "1"


def cpu_log_level() -> str:
    """The ``TF_CPP_MIN_LOG_LEVEL`` for a process that runs JAX on the CPU: the user's, if
    they chose one (anything but unset or JAX's own default of 1, which a parent that imported
    JAX passes on), else 3. To see XLA:CPU's messages, set ``TF_CPP_MIN_LOG_LEVEL=0``."""
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    return level if level not in (None, JAX_DEFAULT_LOG_LEVEL) else "3"


def quiet_xla_on_cpu() -> bool:
    """Sets ``TF_CPP_MIN_LOG_LEVEL`` to `cpu_log_level` when JAX will run on the CPU; returns
    whether it changed it. Call it before the first ``import jax``."""
    level = cpu_log_level()
    if not will_run_on_cpu() or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == level:
        return False
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = level
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
