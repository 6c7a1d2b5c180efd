"""The one place JAX is configured, for single runs, sweep workers and benchmarks.

`setup_jax` turns 64-bit mode on exactly when a run asks for float64 (kfac-jax mixes dtypes
otherwise) and points JAX's persistent compilation cache at a folder, so that runs of the same
shapes compile once: a later run, in any output root, loads the executables from disk. The
folder is per user by default (`cache_folder`: ``compilation_cache=auto``), shared by single
runs and sweep workers on CPU and GPU alike, and safe to delete at any time (the next run
compiles again). JAX keeps the first cache folder set in a process, and
``JAX_COMPILATION_CACHE_DIR`` (the user's) wins. It also pins the LAPACK that XLA:CPU calls to
one thread (`single_thread_lapack`).
"""

from __future__ import annotations

import ctypes
import os

import jax
import jax.numpy as jnp

from ablate.runtime.xla_env import cache_folder

# Every program gets a disk entry, however fast it compiled: with a threshold (we had 0.1 s), a
# fast machine compiles most of a small run's programs under it and so compiles them again in
# every process (on the CI machine 14 of a tiny run's 26 programs missed the cache the second
# time). A tiny H2 run's 26 programs take 41 files and 1.5 MB.
MIN_COMPILE_TIME_S = 0.0


def dtype_of(precision: str):
    """The JAX dtype of a ``precision`` setting (``float32`` or ``float64``)."""
    return {"float32": jnp.float32, "float64": jnp.float64}[precision]


def setup_jax(precision: str | None = None, cache_dir: str | os.PathLike | None = None) -> None:
    """64-bit mode for ``precision="float64"``; the persistent compilation cache in
    ``cache_folder(cache_dir)`` (None: none)."""
    single_thread_lapack()
    if precision is not None:
        jax.config.update("jax_enable_x64", precision == "float64")
    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        folder = cache_folder(cache_dir)
        if folder is None or jax.config.jax_compilation_cache_dir:
            return  # no cache wanted, or the first folder set in this process stays (JAX's rule)
        folder.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(folder))
    # thresholds: ours, unless the user set JAX's own environment variables
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    if "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES" not in os.environ:
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def cache_folder_in_use() -> str | None:
    """The persistent compilation cache folder JAX uses in this process (None: off)."""
    return jax.config.jax_compilation_cache_dir or None


def single_thread_lapack() -> list[str]:
    """Runs the LAPACK that XLA:CPU calls (scipy's OpenBLAS) on one thread; returns the
    libraries changed.

    On the CPU, KFAC's factor inversions and the determinants' LU factorisations are LAPACK
    calls on matrices of tens of rows. OpenBLAS hands each to its thread pool, whose hand-off
    costs far more than the arithmetic, and on a loaded machine the waiting threads stall:
    on the shared 2-core CI machine a LiH KFAC iteration spent ~160 of ~200 ms in 26
    triangular solves, and 1.3 ms with one thread. ``OPENBLAS_NUM_THREADS`` set by the user
    wins. Linux only (the loaded libraries are read from /proc/self/maps); elsewhere a no-op.
    """
    if "OPENBLAS_NUM_THREADS" in os.environ:
        return []
    try:
        import scipy.linalg.cython_lapack  # noqa: F401  - loads the library XLA:CPU will use
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.split()[-1].lower()
                     and "openblas64" not in line}
    except (ImportError, OSError):
        return []
    changed = []
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads", "openblas_set_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn(1)
                changed.append(path)
                break
    return changed
