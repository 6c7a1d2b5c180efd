"""Checkpoints: one pickle of host arrays per save, written atomically, the newest two kept.

A checkpoint holds everything needed to resume exactly: the phase ("train" or "eval"), the
step, params, optimiser state, walkers, RNG key, move width and, in evaluation, the energies
gathered so far; ``run_facts`` carries what summary.json would lose if it were damaged
(hf_energy, startup_s, the wall time of earlier stretches).

File format: a header line ``ABLATE-CKPT 1 sha256=<hex>\\n`` followed by the pickle bytes, whose
SHA-256 the header records. A file whose checksum does not match (a flipped bit, a truncated
copy) is reported in one line and the previous checkpoint is used. Files without the header
(written before checksums) are loaded as plain pickles.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import sys
from pathlib import Path

import jax

_NAME = re.compile(r"ckpt_(\d+)\.pkl$")
MAGIC = b"ABLATE-CKPT 1 sha256="


class CorruptCheckpoint(ValueError):
    """A checkpoint file whose content does not match its checksum (or cannot be unpickled)."""


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.search(p.name))]
    return [p for _, p in sorted(found)]


def encode(state: dict) -> bytes:
    """Header with the SHA-256 of the pickle, then the pickle bytes."""
    body = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    return MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def decode(data: bytes) -> dict:
    """The state of a checkpoint file's bytes; CorruptCheckpoint when the checksum or pickle fails."""
    if data.startswith(MAGIC):
        head, sep, body = data.partition(b"\n")
        digest = head[len(MAGIC):].decode("ascii", "replace")
        if not sep or hashlib.sha256(body).hexdigest() != digest:
            raise CorruptCheckpoint("checksum mismatch")
    else:
        body = data  # written before checksums: a bare pickle
    try:
        state = pickle.loads(body)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise CorruptCheckpoint(f"cannot unpickle ({type(err).__name__})") from None
    if not isinstance(state, dict):
        raise CorruptCheckpoint("not a checkpoint")
    return state


def save(folder: Path, serial: int, state: dict, keep: int = 2) -> Path:
    """Writes ``ckpt_<serial>.pkl`` atomically (temp file + rename) and prunes old ones."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"ckpt_{serial:08d}.pkl"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(encode(jax.device_get(state)))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    for old in _files(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def latest(folder: Path, warn=None) -> dict | None:
    """The newest sound checkpoint, or None. A damaged file is reported (one line through
    ``warn``, stderr by default) and the older one is used."""
    warn = warn or (lambda msg: print(msg, file=sys.stderr, flush=True))
    for path in reversed(_files(folder)):
        try:
            return decode(path.read_bytes())
        except OSError as err:
            warn(f"warning: checkpoint {path} cannot be read ({err.strerror or err}); using the previous one")
        except CorruptCheckpoint as err:
            warn(f"warning: checkpoint {path} is corrupt ({err}); using the previous one")
    return None
