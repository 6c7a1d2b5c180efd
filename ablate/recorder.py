"""Writes a run directory (config.yaml, the metrics tables, summary.json; file names from
:class:`ablate.run_record.RunDir`) and forwards metrics to sinks.

The recorder knows nothing of physics. Rows are buffered and flushed at each checkpoint (and
at the end), so the tables on disk never run ahead of the newest checkpoint; on resume, rows
past the checkpoint's step are dropped.
"""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path
from typing import Protocol

from omegaconf import OmegaConf

from ablate.run_record import TABLES, RunDir, RunSummary


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
        path = self.run_dir.config_file
        tmp = path.with_name(path.name + ".tmp")
        node = cfg if OmegaConf.is_config(cfg) else OmegaConf.create(dict(cfg))
        tmp.write_text(OmegaConf.to_yaml(node, resolve=True))
        os.replace(tmp, path)

    def truncate(self, phase: str, upto_step: int) -> None:
        """Drops rows with step >= upto_step (work after the checkpoint we resume from)."""
        path = self.run_dir.table(phase)
        if not path.exists():
            return
        with open(path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if int(r["step"]) < upto_step]
        self._write_rows(path, TABLES[phase][1], rows, mode="w")

    def log(self, phase: str, step: int, metrics: dict) -> None:
        row = {"step": step, **{k: metrics[k] for k in TABLES[phase][1] if k != "step"}}
        self._rows[phase].append(row)
        for sink in self.sinks:
            sink.log(phase, step, row)

    def flush(self) -> None:
        for phase, rows in self._rows.items():
            if rows:
                self._write_rows(self.run_dir.table(phase), TABLES[phase][1], rows, mode="a")
                rows.clear()

    @staticmethod
    def _write_rows(path: Path, columns, rows, mode: str) -> None:
        new = mode == "w" or not path.exists()
        with open(path, mode, newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            if new:
                writer.writeheader()
            writer.writerows(rows)

    def write_summary(self, summary: RunSummary) -> None:
        self.run_dir.write_summary(summary)

    def finish(self, summary: RunSummary) -> None:
        """Flushes the tables, writes summary.json and closes the sinks."""
        self.flush()
        self.write_summary(summary)
        for sink in self.sinks:
            try:
                sink.set_summary(summary.to_dict())
                sink.finish(summary.status, summary.reason)
            except Exception as err:  # a sink never takes a run down
                warnings.warn(f"sink {type(sink).__name__} failed to finish: {err}")
