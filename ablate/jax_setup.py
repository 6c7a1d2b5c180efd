"""The one place JAX is configured, for single runs, sweep workers and benchmarks.

`setup_jax` turns 64-bit mode on exactly when a run asks for float64 (kfac-jax mixes dtypes
otherwise) and points JAX's persistent compilation cache at a folder, so that runs of the same
shapes compile once: later runs and sweep trials load the executables from disk. JAX keeps the
first cache folder set in a process, and ``JAX_COMPILATION_CACHE_DIR`` (the user's) wins.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp

# Programs that compile faster than this are not worth a disk entry.
MIN_COMPILE_TIME_S = 0.1


def dtype_of(precision: str):
    """The JAX dtype of a ``precision`` setting (``float32`` or ``float64``)."""
    return {"float32": jnp.float32, "float64": jnp.float64}[precision]


def setup_jax(precision: str | None = None, cache_dir: str | os.PathLike | None = None,
              on_cpu: bool = False) -> None:
    """64-bit mode for ``precision="float64"``; the persistent compilation cache in ``cache_dir``.

    On CPU the cache is used only with ``on_cpu=True`` (sweep workers, which silence the
    XLA:CPU machine-feature warning it logs for every program loaded from disk).
    """
    if precision is not None:
        jax.config.update("jax_enable_x64", precision == "float64")
    user_dir = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    quiet_cpu = jax.default_backend() != "cpu" or on_cpu
    if not user_dir:
        if cache_dir is None or jax.config.jax_compilation_cache_dir:
            return  # no cache wanted, or the first folder set in this process stays (JAX's rule)
        if not quiet_cpu:
            return
    elif not quiet_cpu:
        # The user's folder on CPU, in a process that has not silenced XLA:CPU: keep JAX's own
        # thresholds (only slow programs are stored), or every small program loaded from disk
        # logs a multi-kilobyte machine-feature line on stderr.
        return
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(cache_dir))
    # thresholds: ours, unless the user set JAX's own environment variables
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    if "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES" not in os.environ:
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
