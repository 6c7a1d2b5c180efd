"""What a study prints: the opening lines, the study line every few seconds, the closing lines.

The study line says how many trials are complete, running, waiting and failed, the best so
far, where each running trial of this driver is (``t0003 train 450/2000 E=-8.0312``,
``t0004 eval 300/1000``), and an estimate of the time the study has left. The closing lines
give the trial table and the commands a user runs next.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Iterable

from ablate.records.redact import redact_url

from .plan import StudyPlan
from .status import format_table, next_commands, study_line
from .trials import Running


def say(msg: str, err: bool = False) -> None:
    """One line to stdout (or stderr), flushed."""
    print(msg, file=sys.stderr if err else sys.stdout, flush=True)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def running_text(rec: Running) -> str:
    """``t0003 train 450/2000 E=-8.0312`` (the phase a trial is in and how far)."""
    if rec.step is None:
        return f"{rec.run_id} {rec.phase}"
    text = f"{rec.run_id} {rec.phase} {rec.step + 1}" + (f"/{rec.total}" if rec.total else "")
    if rec.phase == "train" and rec.energy is not None:
        text += f" E={rec.energy:.4f}"
    return text


def time_left(rows, running: list[Running], n_planned: int, slots: int) -> float | None:
    """Seconds the study has left: trials still to run times the mean wall time of the completed
    ones, plus what the running ones have left, shared over ``slots`` workers; None before any
    trial completed."""
    walls = [r.attr("wall_time_s") for r in rows if r.state == "COMPLETE" and r.attr("wall_time_s")]
    if not walls:
        return None
    mean = statistics.fmean(walls)
    done = sum(r.state in ("COMPLETE", "PRUNED") for r in rows)
    in_flight = sum(r.state == "RUNNING" for r in rows)
    to_start = max(0, n_planned - done - in_flight)
    now = time.monotonic()
    left_running = sum(max(0.0, mean - (now - rec.started)) for rec in running)
    return (to_start * mean + left_running) / max(1, slots)


class Display:
    """The study's console output (see the module docstring)."""

    def __init__(self, plan: StudyPlan, study, every_s: float, n_planned: int | None = None):
        self.plan, self.study, self.every_s = plan, study, every_s
        self.n_planned = plan.spec.n_planned() if n_planned is None else n_planned  # grows with rounds of seeds
        self.tag = f"[{plan.study_name}]"
        self._last = time.monotonic()

    def announce(self, created: bool) -> None:
        spec, plan = self.plan.spec, self.plan
        verb = "created" if created else "joined"
        where = ", ".join(s.name for s in plan.slots)
        goal = (f"objectives {', '.join(f'{o} ({d})' for o, d in zip(spec.all_objectives, spec.all_directions))}"
                if spec.multi_objective else f"objective {spec.objective}")
        say(f"{self.tag} {verb} study '{plan.study_name}' ({spec.sampler}, {self.n_planned} trials, "
            f"{goal}) in {redact_url(plan.storage_url)}")
        say(f"{self.tag} base: {' '.join(plan.trial_overrides) or '(defaults)'}; workers: {where}; "
            f"runs under {plan.output_root / plan.study_name}")

    def maybe_line(self, rows_fn, running: Iterable[Running]) -> None:
        if time.monotonic() - self._last >= self.every_s:
            self.line(rows_fn(), list(running))

    def line(self, rows, running: list[Running], final: bool = False) -> None:
        self._last = time.monotonic()
        line = study_line(self.study, self.n_planned)
        if running and not final:
            line += " | " + "; ".join(running_text(r) for r in running)
        if not final:
            left = time_left(rows, running, self.n_planned, len(self.plan.slots))
            if left is not None:
                line += f" | ~{_duration(left)} left"
        say(f"{self.tag} {line}")

    def closing(self, figure: Path | None) -> None:
        """The trial table, then the commands a user runs next."""
        print(format_table(self.study), flush=True)
        for line in next_commands(self.plan.study_name, self.plan.output_root, self.plan.storage_url, figure):
            say(line)
