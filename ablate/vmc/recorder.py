"""Writes a run directory (config.yaml, the metrics tables, summary.json; file names from
:class:`ablate.records.run_record.RunDir`) and forwards metrics to sinks.

The recorder knows nothing of physics. Rows are buffered and flushed at each checkpoint (and
at the end), so the tables on disk never run ahead of the newest checkpoint; on resume, rows
past the checkpoint's step are dropped.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from pathlib import Path
from typing import Protocol

from omegaconf import OmegaConf

from ablate.records.errors import WriteFailed
from ablate.records.run_record import TABLES, RunDir, RunSummary


class Sink(Protocol):
    """Where the recorder mirrors a run (the W&B sink): history rows, the summary, the end."""

    def log(self, phase: str, step: int, metrics: dict) -> None: ...
    def set_summary(self, summary: dict) -> None: ...  # RunSummary.to_dict()
    def finish(self, status: str, reason: str | None) -> None: ...


class Recorder:
    """Owns one run directory and the sinks (W&B) that mirror it."""

    def __init__(self, run_dir: Path, sinks: list | None = None):
        self.run_dir = RunDir(run_dir)
        self.run_dir.path.mkdir(parents=True, exist_ok=True)
        self.sinks = [s for s in (sinks or []) if s is not None]
        self._rows: dict[str, list] = {phase: [] for phase in TABLES}

    def write_config(self, cfg) -> None:
        node = cfg if OmegaConf.is_config(cfg) else OmegaConf.create(dict(cfg))
        _replace_atomically(self.run_dir.config_file, OmegaConf.to_yaml(node, resolve=True))

    def truncate(self, phase: str, upto_step: int) -> None:
        """Drops rows with step >= upto_step (work after the checkpoint we resume from)."""
        path = self.run_dir.table(phase)
        if not path.exists():
            return
        with open(path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if int(r["step"]) < upto_step]
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=TABLES[phase][1])
        writer.writeheader()
        writer.writerows(rows)
        _replace_atomically(path, text.getvalue())   # a full disk leaves the table as it was

    def log(self, phase: str, step: int, metrics: dict) -> None:
        row = {"step": step, **{k: metrics[k] for k in TABLES[phase][1] if k != "step"}}
        self._rows[phase].append(row)
        for sink in self.sinks:
            sink.log(phase, step, row)

    def flush(self) -> None:
        for phase, rows in self._rows.items():
            if rows:
                self._append_rows(self.run_dir.table(phase), TABLES[phase][1], rows)
                rows.clear()

    @staticmethod
    def _append_rows(path: Path, columns, rows) -> None:
        """Appends rows (a header first in a new file). A failed write (a full disk) cuts the
        file back to its old length, so no half row is left, and raises WriteFailed."""
        size = path.stat().st_size if path.exists() else None
        try:
            with open(path, "a", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns)
                if size is None:
                    writer.writeheader()
                writer.writerows(rows)
        except OSError as err:
            try:
                if size is None:
                    path.unlink(missing_ok=True)
                else:
                    os.truncate(path, size)
            except OSError:
                pass
            raise WriteFailed(path, err) from None

    def write_summary(self, summary: RunSummary) -> None:
        self.run_dir.write_summary(summary)

    def finish(self, summary: RunSummary) -> None:
        """Flushes the tables, writes summary.json and closes the sinks (also when a write
        fails: then WriteFailed is raised after the sinks are closed)."""
        try:
            self.flush()
            self.write_summary(summary)
        finally:
            for sink in self.sinks:
                try:
                    sink.set_summary(summary.to_dict())
                    sink.finish(summary.status, summary.reason)
                except Exception as err:  # a sink never takes a run down
                    warnings.warn(f"sink {type(sink).__name__} failed to finish: {err}")


def _replace_atomically(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temp file and a rename; a failed write (a full disk)
    leaves the old file, removes the temp file and raises WriteFailed naming ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise WriteFailed(path, err) from None
