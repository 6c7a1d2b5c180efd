"""Checkpoints: one pickle of host arrays per save, written atomically, the newest two kept.

A checkpoint holds everything needed to resume exactly: the phase ("train" or "eval"), the
step, params, optimiser state, walkers, RNG key, move width and, in evaluation, the energies
gathered so far.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import jax

_NAME = re.compile(r"ckpt_(\d+)\.pkl$")


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.search(p.name))]
    return [p for _, p in sorted(found)]


def save(folder: Path, serial: int, state: dict, keep: int = 2) -> Path:
    """Writes ``ckpt_<serial>.pkl`` atomically (temp file + rename) and prunes old ones."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"ckpt_{serial:08d}.pkl"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(jax.device_get(state), fh, protocol=pickle.HIGHEST_PROTOCOL)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    for old in _files(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def latest(folder: Path) -> dict | None:
    """The newest readable checkpoint, or None. A damaged newest file falls back to the older."""
    for path in reversed(_files(folder)):
        try:
            with open(path, "rb") as fh:
                return pickle.load(fh)
        except (EOFError, pickle.UnpicklingError, OSError):
            continue
    return None
