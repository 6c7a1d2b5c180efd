"""Checkpoints: the host arrays of a run's state without pickle, written atomically, the newest
two kept.

A checkpoint holds everything needed to resume exactly: the phase ("train" or "eval"), the
step, params, optimiser state, walkers, RNG key, move width and, in evaluation, the energies
gathered so far; ``run_facts`` carries what summary.json would lose if it were damaged
(hf_energy, startup_s, the wall time of earlier stretches).

File format (``ckpt_<serial>.ckpt``): a header line ``ABLATE-CKPT 2 sha256=<hex>\\n``, then an
``.npz`` archive (numpy's zip of ``.npy`` arrays) whose SHA-256 the header records. The archive
holds ``leaf_00000.npy`` ... (every array of the state, read with ``allow_pickle=False``) and
``state.json``: the state's tree (``ablate.runtime.pytree_json``: dicts, lists, tuples and the
optimisers' registered state classes) and its plain values (phase, step counts, energies).
Reading it runs no code from the file. A file whose checksum does not match (a flipped bit, a
truncated copy) is reported in one line and the previous checkpoint is used.

Checkpoints written by older ablate (``ckpt_<serial>.pkl``: a pickle, with or without the
version-1 header) can run arbitrary code when read, so they are read only when the user says
they trust the folder: ``ABLATE_LOAD_PICKLED_CHECKPOINTS=1`` in the environment. Their classes
are named by the module paths of their day: an ablate module that has moved since is found
through ``ablate.runtime.pytree_json.MOVED_MODULES``, as the JSON trees' are. Without it a run
directory whose newest checkpoint is a pickle is refused before anything is written
(:func:`check_no_pickle`: one line naming the file and the variable).

A write that fails (a full disk) removes its temporary file and raises
:class:`ablate.records.errors.WriteFailed` naming the checkpoint; the previous checkpoints stay (old
ones are pruned only after the new one is in place), so the run resumes from them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import sys
import zipfile
from pathlib import Path

import jax
import numpy as np

from ablate.records.errors import ConfigError, WriteFailed
from ablate.runtime.pytree_json import TreeFormatError, current_module, structure_from_json, structure_to_json

_NAME = re.compile(r"ckpt_(\d+)\.(ckpt|pkl)$")
MAGIC = b"ABLATE-CKPT 2 sha256="
MAGIC_V1 = b"ABLATE-CKPT 1 sha256="          # version 1: the same header over a pickle
PICKLE_ENV = "ABLATE_LOAD_PICKLED_CHECKPOINTS"
_PY = (bool, int, float, str)               # leaves kept as JSON values, not arrays


class CorruptCheckpoint(ValueError):
    """A checkpoint file whose content does not match its checksum (or cannot be read)."""


class PickledCheckpoint(CorruptCheckpoint):
    """A checkpoint written by older ablate as a pickle, not read without the user's opt-in."""


class _Unpickler(pickle.Unpickler):
    """Unpickles with the classes of ablate's modules that have moved found where they are now."""

    def find_class(self, module: str, name: str):
        return super().find_class(current_module(module), name)


def _files(folder: Path) -> list[Path]:
    """Checkpoint files by serial (a ``.ckpt`` after a ``.pkl`` of the same serial)."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), m.group(2) == "ckpt", p) for p in folder.iterdir() if (m := _NAME.search(p.name))]
    return [p for _, _, p in sorted(found)]


def pickles_allowed() -> bool:
    """True when the user opted in to reading pickled (old) checkpoints (:data:`PICKLE_ENV`)."""
    return os.environ.get(PICKLE_ENV, "").strip().lower() in ("1", "true", "yes")


# ----------------------------------------------------------------------------- encoding


def encode(state: dict) -> bytes:
    """Header with the SHA-256 of the archive, then the archive (see the module docstring)."""
    leaves, treedef = jax.tree.flatten(jax.device_get(state))
    arrays, spec = [], []
    for leaf in leaves:
        if isinstance(leaf, _PY) and not isinstance(leaf, np.generic):
            spec.append({"value": leaf})
        else:
            spec.append({"array": len(arrays)})
            arrays.append(np.asarray(leaf))
    meta = {"format": 2, "tree": structure_to_json(treedef), "leaves": spec}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("state.json", json.dumps(meta))
        for i, array in enumerate(arrays):
            with archive.open(f"leaf_{i:05d}.npy", "w") as fh:
                np.lib.format.write_array(fh, array, allow_pickle=False)
    body = buffer.getvalue()
    return MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def decode(data: bytes) -> dict:
    """The state of a checkpoint file's bytes (version 2); CorruptCheckpoint when the header,
    the checksum, the archive or the tree fails (a pickle is never read here: :func:`decode_pickle`)."""
    if not data.startswith(MAGIC):
        raise CorruptCheckpoint("no version-2 checkpoint header")
    head, sep, body = data.partition(b"\n")
    if not sep or hashlib.sha256(body).hexdigest() != head[len(MAGIC):].decode("ascii", "replace"):
        raise CorruptCheckpoint("checksum mismatch")
    try:
        with np.load(io.BytesIO(body), allow_pickle=False) as archive:
            meta = json.loads(archive["state.json"])
            leaves = [archive[f"leaf_{item['array']:05d}.npy"] if "array" in item else item["value"]
                      for item in meta["leaves"]]
        state = structure_from_json(meta["tree"]).unflatten(leaves)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, TreeFormatError) as err:
        raise CorruptCheckpoint(f"cannot read ({type(err).__name__}: {str(err)[:80]})") from None
    if not isinstance(state, dict):
        raise CorruptCheckpoint("not a checkpoint")
    return state


def decode_pickle(data: bytes) -> dict:
    """A checkpoint of older ablate (a pickle, with or without the version-1 header). Unpickling
    runs code the file names: call it only when :func:`pickles_allowed`."""
    if data.startswith(MAGIC_V1):
        head, sep, body = data.partition(b"\n")
        if not sep or hashlib.sha256(body).hexdigest() != head[len(MAGIC_V1):].decode("ascii", "replace"):
            raise CorruptCheckpoint("checksum mismatch")
    else:
        body = data  # written before checksums: a bare pickle
    try:
        state = _Unpickler(io.BytesIO(body)).load()
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise CorruptCheckpoint(f"cannot unpickle ({type(err).__name__})") from None
    if not isinstance(state, dict):
        raise CorruptCheckpoint("not a checkpoint")
    return state


# ----------------------------------------------------------------------------- files


def save(folder: Path, serial: int, state: dict, keep: int = 2) -> Path:
    """Writes ``ckpt_<serial>.ckpt`` atomically (temp file + rename) and prunes old ones (after
    the new one is in place). A failed write (e.g. ENOSPC) removes the temp file and raises
    WriteFailed naming the checkpoint; the older checkpoints are untouched."""
    path = folder / f"ckpt_{serial:08d}.ckpt"
    tmp = path.with_suffix(".tmp")
    data = encode(state)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise WriteFailed(path, err) from None
    for old in _files(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def _read(path: Path) -> dict:
    if path.suffix == ".pkl":
        if not pickles_allowed():
            raise PickledCheckpoint(f"a pickle (set {PICKLE_ENV}=1 to read it)")
        return decode_pickle(path.read_bytes())
    return decode(path.read_bytes())


def latest(folder: Path, warn=None) -> dict | None:
    """The newest sound checkpoint, or None. A damaged file is reported (one line through
    ``warn``, stderr by default) and the older one is used; so is a pickled one without the
    opt-in (:func:`check_no_pickle` refuses a run directory whose newest checkpoint is one)."""
    warn = warn or (lambda msg: print(msg, file=sys.stderr, flush=True))
    for path in reversed(_files(folder)):
        try:
            return _read(path)
        except OSError as err:
            warn(f"warning: checkpoint {path} cannot be read ({err.strerror or err}); using the previous one")
        except PickledCheckpoint as err:
            warn(f"warning: checkpoint {path} is {err}; not read")
        except CorruptCheckpoint as err:
            warn(f"warning: checkpoint {path} is corrupt ({err}); using the previous one")
    return None


def check_no_pickle(folder: Path) -> None:
    """ConfigError when the newest checkpoint in ``folder`` is a pickle (older ablate) and the
    user did not opt in to reading pickles: resuming from it could run code from the file, and
    starting over would drop the run's progress."""
    files = _files(folder)
    if files and files[-1].suffix == ".pkl" and not pickles_allowed():
        raise ConfigError("checkpoint", str(files[-1]),
                          f"a checkpoint without pickle: this one was written by older ablate and "
                          f"unpickling runs code. If you trust this folder, resume with {PICKLE_ENV}=1 "
                          f"(its next checkpoints are written without pickle); else delete {folder} to start over")
