"""Hydra override strings: split the user's, merge lists, and write values back.

A trial runs under ``sweep.base`` + the user's own overrides (minus everything that
belongs to the sweep itself: ``+sweep=NAME``, ``sweep.*`` and ``hydra.*``) + the
trial's parameters, later ones winning for the same key.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-./]*$")
_KEYWORDS = {"true", "false", "null", "none", "inf", "nan"}

# Keys that change where and how results are reported, not what a trial computes.
# They may differ between the drivers of one study (each machine its own logger).
PRESENTATION_KEYS = ("output_root", "logger", "progress", "hydra")


def override_key(override: str) -> str:
    """The config key an override sets: ``+network.width=8`` -> ``network.width``."""
    body = override.lstrip("~+")
    return body.split("=", 1)[0].strip()


def is_sweep_override(override: str) -> bool:
    """True for ``+sweep=NAME``, ``sweep.xxx=...`` and ``hydra.xxx=...``."""
    key = override_key(override)
    return key in ("sweep", "hydra") or key.startswith(("sweep.", "hydra."))


def sweep_choice(task_overrides: Iterable[str]) -> str | None:
    """The sweep file name from ``+sweep=NAME`` (the last one wins)."""
    name = None
    for o in task_overrides:
        if override_key(o) == "sweep" and "=" in o:
            name = o.split("=", 1)[1].strip()
            if len(name) >= 2 and name[0] == name[-1] and name[0] in "'\"":
                name = name[1:-1]  # +sweep='nan' (quoted by the CLI: YAML reads nan as a number)
    return name


def user_overrides(task_overrides: Iterable[str]) -> list[str]:
    """The user's overrides that trials inherit (everything but the sweep's own)."""
    return [o for o in task_overrides if not is_sweep_override(o)]


def merge(*lists: Iterable[str]) -> list[str]:
    """Concatenate override lists; a later override of the same key replaces an earlier one."""
    merged: dict[str, str] = {}
    for lst in lists:
        for o in lst:
            key = override_key(o)
            merged.pop(key, None)
            merged[key] = o
    return list(merged.values())


def format_value(value: Any) -> str:
    """A Python scalar as Hydra override syntax (``None`` -> ``null``, quoted strings)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        if _PLAIN.match(value) and value.lower() not in _KEYWORDS and not _looks_numeric(value):
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as a Hydra override")


def param_overrides(params: dict[str, Any]) -> list[str]:
    """``{"network.width": 8}`` -> ``["network.width=8"]``."""
    return [f"{k}={format_value(v)}" for k, v in params.items()]


def trial_relevant(overrides: Iterable[str]) -> list[str]:
    """The overrides that change what a trial computes (drops output/logging keys)."""
    out = []
    for o in overrides:
        key = override_key(o)
        if key.split(".", 1)[0] not in PRESENTATION_KEYS:
            out.append(o)
    return out


def _looks_numeric(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True
