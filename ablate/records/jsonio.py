"""JSON values and files the same way in every package: non-finite floats as null, atomic
writes, dotted keys.

Standard library only, like the records built on it (:mod:`ablate.records.run_record`,
:mod:`ablate.records.study_record`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ablate.records.errors import WriteFailed


def finite_or_none(value: Any) -> Any:
    """``value``, or None when it is a non-finite float (NaN, Inf)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def clean_json(value: Any) -> Any:
    """A JSON-safe copy: non-finite floats become None, tuples become lists, recursively."""
    if isinstance(value, float):
        return finite_or_none(value)
    if isinstance(value, Mapping):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / JAX scalars
        return clean_json(value.item())
    return value


def write_json_atomic(path: Path, data: Any) -> None:
    """Writes JSON (sorted keys, NaN/Inf as null) to ``path`` atomically: temp file, fsync, rename.
    A failed write (a full disk) removes the temp file, leaves the old ``path`` as it was and
    raises :class:`ablate.records.errors.WriteFailed` naming ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    text = json.dumps(clean_json(data), indent=2, sort_keys=True)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise WriteFailed(path, err) from None


def flatten(mapping: Mapping[str, Any], prefix: str = "", keep: Iterable[str] = ("params",),
            is_leaf: Callable[[Mapping], bool] | None = None) -> dict[str, Any]:
    """Nested mappings -> one dict with dotted keys: ``{"network": {"width": 8}}`` -> ``{"network.width": 8}``.

    Lists stay lists; an empty mapping stays an empty mapping; mappings under a key named in
    ``keep`` (``trial.params``, already flat) and mappings for which ``is_leaf`` is true (a
    sweep range ``{low, high}``) are kept whole.
    """
    keep = tuple(keep)
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and key not in keep and not (is_leaf and is_leaf(value)):
            out.update(flatten(value, name + ".", keep, is_leaf))
        else:
            out[name] = dict(value) if isinstance(value, Mapping) else value
    return out
