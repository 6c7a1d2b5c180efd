"""Read W&B's offline transaction logs (``run-<id>.wandb``) back from disk.

A W&B run, online or offline, is recorded as a ``.wandb`` file: a LevelDB-style log of
``wandb.proto.wandb_internal_pb2.Record`` protobuf messages. wandb 0.31 writes it from its Go
core and no longer ships a Python reader (the old ``wandb.sdk.internal.datastore`` is gone), so
the block format is decoded here; the records themselves are parsed with wandb's own protobuf
types.

File format (unchanged since the Python ``datastore`` days):

- a 7-byte file header: ``b":W&B"``, magic ``0xBEE1`` (uint16 LE), version ``0`` (uint8);
- then 32 KiB blocks (the file header counts towards the first block) of chunks, each with a
  7-byte header ``crc32 (uint32 LE), length (uint16 LE), type (uint8)`` and ``length`` bytes of
  data; ``type`` is FULL=1, FIRST=2, MIDDLE=3, LAST=4 (a record split over blocks); the checksum
  is ``zlib.crc32(data, zlib.crc32(bytes([type])))``; fewer than 7 bytes left in a block are
  zero padding.

Usage (tests, and users checking offline runs before ``wandb sync``)::

    from ablate.tracking.wandb_records import find_run_files, read_run
    for path in find_run_files("runs/width"):
        run = read_run(path)
        print(run["name"], run["group"], run["exit_code"], run["summary"].get("energy"))

Command line: ``python -m ablate.tracking.wandb_records PATH...`` prints one JSON line per run file
(``--history`` includes the history rows).
"""

from __future__ import annotations

import json
import math
import re
import struct
import sys
import time
import zlib
from collections import deque
from pathlib import Path
from typing import Any, Iterator

HEADER_LEN = 7
BLOCK_LEN = 32768
FILE_IDENT = b":W&B"
FILE_MAGIC = 0xBEE1
FILE_VERSION = 0
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4

_TYPE_CRC = {t: zlib.crc32(bytes([t])) & 0xFFFFFFFF for t in (FULL, FIRST, MIDDLE, LAST)}


class WandbFileError(ValueError):
    """The file is not a W&B transaction log, or a record in it is corrupt."""


def iter_chunks(path: str | Path) -> Iterator[bytes]:
    """Yield the payload of each logical record (chunks joined) in a ``.wandb`` file.

    A truncated tail (a run killed while writing) ends the iteration quietly; a checksum
    mismatch raises :class:`WandbFileError` naming the byte offset.
    """
    data = Path(path).read_bytes()
    if len(data) < HEADER_LEN:
        raise WandbFileError(f"{path}: too short for a W&B transaction log ({len(data)} bytes)")
    ident, magic, version = struct.unpack("<4sHB", data[:HEADER_LEN])
    if ident != FILE_IDENT or magic != FILE_MAGIC:
        raise WandbFileError(f"{path}: not a W&B transaction log (header {data[:HEADER_LEN]!r})")
    if version != FILE_VERSION:
        raise WandbFileError(f"{path}: unsupported W&B log version {version} (reader knows {FILE_VERSION})")

    pos = HEADER_LEN
    pending: list[bytes] | None = None
    while True:
        space_left = BLOCK_LEN - pos % BLOCK_LEN
        if space_left < HEADER_LEN:  # zero padding at the end of a block
            pos += space_left
        if pos + HEADER_LEN > len(data):
            return
        checksum, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER_LEN])
        if kind == 0 and length == 0 and checksum == 0:  # zeroed rest of a block
            pos += BLOCK_LEN - pos % BLOCK_LEN
            continue
        start = pos + HEADER_LEN
        if start + length > len(data):
            return  # truncated final record
        payload = data[start : start + length]
        if kind not in _TYPE_CRC:
            raise WandbFileError(f"{path}: bad chunk type {kind} at byte {pos}")
        if zlib.crc32(payload, _TYPE_CRC[kind]) & 0xFFFFFFFF != checksum:
            raise WandbFileError(f"{path}: record checksum mismatch at byte {pos}; file may be corrupt")
        pos = start + length
        if kind == FULL:
            pending = None
            yield payload
        elif kind == FIRST:
            pending = [payload]
        elif kind == MIDDLE and pending is not None:
            pending.append(payload)
        elif kind == LAST and pending is not None:
            pending.append(payload)
            yield b"".join(pending)
            pending = None


def iter_records(path: str | Path) -> Iterator[Any]:
    """Yield each ``wandb_internal_pb2.Record`` in a ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    for payload in iter_chunks(path):
        record = pb.Record()
        record.ParseFromString(payload)
        yield record


def is_complete(path: str | Path) -> bool:
    """Whether the file ends with the run's exit record (wandb has finished writing it).

    ``run.finish()`` returns before wandb-core has flushed and closed the file, so a reader in
    the same process should wait for this (see :func:`wait_complete`). Only the last few records
    are decoded, so this is cheap even for long runs.
    """
    from wandb.proto import wandb_internal_pb2 as pb  # lazy: wandb is heavy

    try:
        tail = deque(iter_chunks(path), maxlen=4)
    except (OSError, WandbFileError):
        return False
    for payload in tail:
        record = pb.Record()
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") == "exit":
            return True
    return False


def wait_complete(path: str | Path, timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Polls until :func:`is_complete` or ``timeout`` seconds pass; returns whether it completed."""
    deadline = time.monotonic() + timeout
    while True:
        if is_complete(path):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _assign(target: dict, item, value) -> None:
    """Sets ``target[key] = value``; a ``nested_key`` path (media, ``_wandb.runtime``) nests dicts."""
    path = [item.key] if item.key else list(item.nested_key)
    for part in path[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[path[-1]] = value


def _remove(target: dict, item) -> None:
    path = [item.key] if item.key else list(item.nested_key)
    for part in path[:-1]:
        target = target.get(part)
        if not isinstance(target, dict):
            return
    target.pop(path[-1], None)


def _json(text: str) -> Any:
    if text == "":
        return None
    try:
        return json.loads(text)
    except ValueError:
        # wandb writes NaN/Infinity as bare tokens, which json.loads accepts; anything else
        # unreadable is returned as the raw text rather than dropped.
        return text


def _history_value(item) -> Any:
    """Value of a ``HistoryItem``: typed oneof fields (newer writers) or ``value_json``."""
    which = item.WhichOneof("value")
    if which is None:
        return _json(item.value_json)
    if which == "none":
        return None
    if which == "json":
        return _json(item.json)
    return getattr(item, which)


def read_run(path: str | Path) -> dict[str, Any]:
    """Read one ``run-<id>.wandb`` file back into a plain dict.

    Returns a dict with ``path``, ``run_id``, ``project``, ``entity``, ``group``,
    ``job_type``, ``name``, ``tags`` (list), ``resumed`` (bool: W&B resumed it online),
    ``config`` (dict, without wandb's own ``_wandb`` entry), ``history`` (list of row dicts, wandb's ``_step``,
    ``_runtime``, ``_timestamp`` included; media such as tables and images are dicts
    describing the file), ``summary`` (dict, the last value of each key),
    ``metrics`` (``{name or glob: step_metric}`` from ``define_metric``), ``exit_code``
    (int, or None when the run did not finish) and ``complete`` (an exit record was found).
    """
    path = Path(path)
    out: dict[str, Any] = {
        "path": str(path),
        "run_id": None,
        "project": None,
        "entity": None,
        "group": None,
        "job_type": None,
        "name": None,
        "tags": [],
        "resumed": False,
        "config": {},
        "history": [],
        "summary": {},
        "metrics": {},
        "exit_code": None,
        "complete": False,
    }
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}

    def apply(target: dict, update) -> None:
        for item in update.update:
            _assign(target, item, _json(item.value_json))
        for item in update.remove:
            _remove(target, item)

    for record in iter_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            out.update(
                run_id=run.run_id or out["run_id"],
                project=run.project or out["project"],
                entity=run.entity or out["entity"],
                group=run.run_group or out["group"],
                job_type=run.job_type or out["job_type"],
                name=run.display_name or out["name"],
                tags=list(run.tags) or out["tags"],
                resumed=bool(run.resumed) or out["resumed"],
            )
            apply(config, run.config)
            apply(summary, run.summary)
        elif kind == "config":
            apply(config, record.config)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _assign(row, item, _history_value(item))
            if "_step" not in row and record.history.HasField("step"):
                row["_step"] = record.history.step.num
            out["history"].append(row)
        elif kind == "summary":
            apply(summary, record.summary)
        elif kind == "metric":
            metric = record.metric
            name = metric.name or metric.glob_name
            if name:
                out["metrics"][name] = metric.step_metric or None
        elif kind == "exit":
            out["exit_code"] = int(record.exit.exit_code)
            out["complete"] = True
    # config items may be stored wrapped as {"value": v, "desc": ...} by older writers
    out["config"] = {
        k: (v["value"] if isinstance(v, dict) and set(v) <= {"value", "desc"} and "value" in v else v)
        for k, v in config.items()
        if k != "_wandb"
    }
    summary.pop("_wandb", None)
    out["summary"] = summary
    return out


def find_run_files(root: str | Path) -> list[Path]:
    """All ``run-*.wandb`` files under ``root`` (a run dir, a study dir or the output root), sorted.

    ``root`` may also be a ``.wandb`` file itself. A resumed run has one file per process
    that ran it (same run id, successive ``offline-run-<time>-<id>`` folders); they sort by time.
    """
    root = Path(root)
    if root.is_file():
        return [root]
    files = [p for p in root.rglob("run-*.wandb") if not p.parent.is_symlink()]  # skip latest-run/
    return sorted(files, key=_start_order)


def _start_order(path: Path):
    """Sort key: (start time, run id, collision suffix) from ``[offline-]run-<time>-<id>[-<n>]``."""
    m = re.search(r"run-(\d{8}_\d{6})-([^-]+)(?:-(\d+))?$", path.parent.name)
    if not m:
        return ("", "", 0, str(path))
    return (m.group(1), m.group(2), int(m.group(3) or 0), str(path))


def history_frame(run: dict[str, Any], phase: str):
    """History rows of one phase (``train``, ``pretrain``, ``eval``) as a pandas DataFrame.

    Columns drop the ``<phase>/`` prefix (``step``, ``energy``, ...); wandb's own ``_``-keys are
    dropped. Rows without the phase's step key are skipped.
    """
    import pandas as pd

    prefix = f"{phase}/"
    rows = []
    for row in run["history"]:
        if f"{prefix}step" not in row:
            continue
        rows.append({k[len(prefix):]: v for k, v in row.items() if k.startswith(prefix)})
    return pd.DataFrame(rows)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    with_history = "--history" in argv
    paths = [a for a in argv if a != "--history"]
    if not paths:
        print("usage: python -m ablate.tracking.wandb_records [--history] PATH...  (run dirs, study dirs or .wandb files)")
        return 2
    status = 0
    for root in paths:
        files = find_run_files(root)
        if not files:
            print(f"{root}: no run-*.wandb files", file=sys.stderr)
            status = 1
        for path in files:
            try:
                run = read_run(path)
            except WandbFileError as err:
                print(str(err), file=sys.stderr)
                status = 1
                continue
            if not with_history:
                run["history"] = len(run["history"])
            print(json.dumps(_jsonable(run)))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
