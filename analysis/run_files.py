"""Readers of one run directory's files (summary.json, metrics.csv), tolerant of missing files."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .records import RunSummary


def read_summary(run_dir: str | os.PathLike | None, cache: dict | None = None) -> dict:
    """The run's summary.json as a dict, or {} when the directory or the file is absent/unreadable.
    With ``cache`` (a dict kept by one load of a study), each file is read once."""
    if cache is not None and run_dir:
        key = ("summary", str(run_dir))
        if key not in cache:
            cache[key] = read_summary(run_dir)
        return cache[key]
    summary = RunSummary.read_or_none(run_dir)
    return summary.to_dict() if summary is not None else {}


def read_metrics(run_dir: str | None, cache: dict | None = None) -> pd.DataFrame | None:
    """A run's metrics.csv, or None when absent, empty or unreadable. With ``cache`` (a dict kept
    by one load of a study), each run directory's file is read once."""
    if not run_dir:
        return None
    if cache is not None:
        key = ("metrics", str(run_dir))
        if key not in cache:
            cache[key] = read_metrics(run_dir)
        return cache[key]
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None
