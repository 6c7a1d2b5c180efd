"""Traced programs kept on disk, so that a rerun of known shapes neither traces nor lowers.

JAX's persistent compilation cache skips XLA's compilation, but every process still traces
each program (kfac-jax's graph matching, folx's forward Laplacian) and lowers it to find the
cache key: 4.2 of the 4.6 s of a warm LiH run's start-up. `StoredProgram` keeps the traced
program instead, as a ``jax.export`` artefact (StableHLO) beside the compilation cache
(``<cache folder>/programs``): a later process deserialises it and compiles the call to it,
which the compilation cache then serves. The program run is the one traced, so results are
bitwise those of the plain ``jax.jit`` path (tests/test_program_store.py).

An artefact is found only by a key of everything that shapes the traced program: the program's
name and static arguments, the engine spec (system, network, sampler, optimiser...), the tree
structure, shapes and dtypes of the arguments, the platform, the versions of jax, jaxlib,
kfac-jax, folx and optax, and a hash of ablate's own source files, so an edited ablate never
runs a program traced from the old code. A missing, unreadable or damaged artefact means
tracing as before (and writing it anew). Single-device processes only: a multi-device run uses
plain ``jax.jit`` (its shardings are not part of the key). Written by hand: JAX has no cache of
traced programs across processes.

Nothing here is unpickled: the program is jax.export's flatbuffer (``jax.export.deserialize``
reads no pickle) and its output's tree structure is JSON (``ablate.runtime.pytree_json``). The folder
is still a trust boundary, like the JAX compilation cache it sits in: whoever can write there
can make later runs execute programs of their choosing (JAX loads its cached executables, and
this store its StableHLO, without checking who wrote them). So the cache is per user by default
(``~/.cache/ablate/jax``); never point ``compilation_cache`` at a folder others can write
(docs/sweeps.md). Checking each file against a hash recorded by the process that wrote it would
need that record to live somewhere equally writable, and would keep a later process from using
what an earlier one traced, which is the store's purpose.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from ablate.runtime.jax_setup import cache_folder_in_use
from ablate.runtime.pytree_json import TreeFormatError, structure_from_json, structure_to_json

FORMAT = "ablate-program-store 2"   # 2: the output tree as JSON (1 was a pickle)
FOLDER = "programs"
_PACKAGES = ("jax", "jaxlib", "kfac-jax", "folx", "optax", "numpy")


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """sha256 of ablate's Python sources (every file of the package and its folders, in name
    order, each with its path under the package)."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]   # ablate/, above this folder (runtime/)
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _versions() -> tuple:
    out = []
    for name in _PACKAGES:
        try:
            out.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            out.append((name, None))
    return tuple(out)


def store_folder() -> Path | None:
    """Where programs are kept: ``programs`` in the compilation cache folder JAX uses, or None
    (no cache, or more than one device)."""
    cache = cache_folder_in_use()
    if not cache or jax.device_count() != 1:
        return None
    return Path(cache) / FOLDER


_lapack_ready = False
_counts = {"loaded": 0, "written": 0}


def counts() -> tuple[int, int]:
    """(programs read from the store, programs traced and written to it) in this process so far."""
    return _counts["loaded"], _counts["written"]


def _prepare_lapack() -> None:
    """Loads the LAPACK kernels XLA:CPU calls. JAX does so when it lowers a linear-algebra
    operation; a deserialised program lowers none, and without this its first LU
    factorisation crashes the process (measured: segmentation fault, jaxlib 0.9.0.1)."""
    global _lapack_ready
    if _lapack_ready:
        return
    try:
        from jaxlib import lapack
        lapack.prepare_lapack_call("getrf_ffi", np.dtype(np.float32))
    except (ImportError, AttributeError):
        pass
    _lapack_ready = True


def _aval(x) -> tuple:
    """(shape, dtype, weak type) of an argument. Read off a jax.Array directly: on every call of
    a step, ``jax.typeof`` cost ~12 us a leaf (1 ms for the KFAC state's 82), the attributes 0.4."""
    if isinstance(x, jax.Array):
        return x.shape, x.dtype, x.weak_type
    a = jax.typeof(x)
    return tuple(a.shape), a.dtype, bool(getattr(a, "weak_type", False))


class StoredProgram:
    """``jax.jit(fn, donate_argnums=...)`` whose traced program is kept in `folder`.

    Called like fn, with its static arguments as keywords (``static_argnames``). `spec_key` is
    text naming everything fn closes over that shapes its program (the engine spec's repr).
    `donate` lists the positional arguments whose buffers are donated, as in ``jax.jit``.
    With ``folder=None`` it is exactly the plain ``jax.jit``.
    """

    def __init__(self, name: str, fn: Callable, spec_key: str, folder: Path | None,
                 donate: tuple[int, ...] = (), static_argnames: tuple[str, ...] = ()):
        self.name, self.fn, self.spec_key, self.folder = name, fn, spec_key, folder
        self.donate = tuple(donate)
        self.jitted = jax.jit(fn, donate_argnums=self.donate, static_argnames=static_argnames)
        self._runners: dict[Any, tuple[Callable, Any]] = {}

    # ---------------------------------------------------------------- calling
    def __call__(self, *args, **static):
        if self.folder is None:
            return self.jitted(*args, **static)
        leaves, treedef = jax.tree.flatten(args)
        runner, out_tree = self._runner(leaves, treedef, args, static)
        if runner is None:
            return self.jitted(*args, **static)
        return jax.tree.unflatten(out_tree, runner(*leaves))

    def lower(self, *args, **static):
        """The lowered program that a call with these arguments runs (for its cost analysis)."""
        if self.folder is None:
            return self.jitted.lower(*args, **static)
        leaves, treedef = jax.tree.flatten(args)
        runner, _ = self._runner(leaves, treedef, args, static)
        if runner is None:
            return self.jitted.lower(*args, **static)
        return runner.lower(*leaves)

    # ---------------------------------------------------------------- artefacts
    def _runner(self, leaves, treedef, args, static):
        signature = (treedef, tuple(_aval(x) for x in leaves), tuple(sorted(static.items())))
        found = self._runners.get(signature)
        if found is None:
            found = self._runners[signature] = self._load_or_trace(treedef, args, signature)
        return found

    def key(self, signature) -> str:
        treedef, avals, static = signature
        avals = tuple((tuple(shape), str(dtype), bool(weak)) for shape, dtype, weak in avals)
        text = repr((FORMAT, self.name, self.spec_key, static, str(treedef), avals,
                     jax.default_backend(), _versions(), source_digest()))
        return hashlib.sha256(text.encode()).hexdigest()

    def _donated_leaves(self, args) -> tuple[int, ...]:
        out, start = [], 0
        for i, arg in enumerate(args):
            n = len(jax.tree.leaves(arg))
            if i in self.donate:
                out.extend(range(start, start + n))
            start += n
        return tuple(out)

    def _load_or_trace(self, treedef, args, signature):
        """(runner, output tree); (None, None) when the program cannot be kept (then the plain
        ``jax.jit`` runs it, and raises whatever tracing raises)."""
        key = self.key(signature)
        path = self.folder / f"{self.name}-{key[:32]}"
        exported, out_tree = _read(path)
        if exported is None:
            try:
                exported, out_tree = self._trace(treedef, signature)
                blob = exported.serialize()     # needs the flatbuffers package
            except Exception:  # noqa: BLE001 - e.g. no flatbuffers where a device check runs
                return None, None
            _write(path, blob, out_tree)
            _counts["written"] += 1
        else:
            _prepare_lapack()
            _counts["loaded"] += 1
        return jax.jit(exported.call, donate_argnums=self._donated_leaves(args)), out_tree

    def _trace(self, treedef, signature):
        static = dict(signature[2])
        box = {}

        def flat(*leaves):
            out = self.fn(*jax.tree.unflatten(treedef, leaves), **static)
            out_leaves, box["tree"] = jax.tree.flatten(out)
            return out_leaves

        specs = [jax.ShapeDtypeStruct(shape, np.dtype(dtype), weak_type=weak)
                 for shape, dtype, weak in signature[1]]
        exported = jax.export.export(jax.jit(flat))(*specs)
        return exported, box["tree"]


def _read(path: Path):
    """(Exported, output tree) kept at `path`, or (None, None) when absent or unreadable.
    Neither file is unpickled: ``.export`` is jax.export's flatbuffer, ``.tree`` the output's
    pytree structure as JSON (ablate.runtime.pytree_json, node classes of known packages only)."""
    try:
        blob = path.with_suffix(".export").read_bytes()
        out_tree = structure_from_json(json.loads(path.with_suffix(".tree").read_text()))
        return jax.export.deserialize(bytearray(blob)), out_tree
    except Exception:  # absent, half-written by a killed process, or from another version
        return None, None


def _write(path: Path, blob: bytes, out_tree) -> None:
    """Writes both files atomically (a reader sees a whole file or none); errors are ignored:
    the store only saves time (an output tree this format cannot hold is simply not kept)."""
    try:
        tree = json.dumps(structure_to_json(out_tree)).encode()
    except TreeFormatError:
        return
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        for suffix, data in ((".tree", tree), (".export", blob)):
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path.with_suffix(suffix))
    except OSError:
        pass
