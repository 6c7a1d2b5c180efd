"""One stretch of a run: its first start, or one resumption from a checkpoint.

A run's wall time and start-up are measured per stretch. :class:`Stretch` holds what the
training loop and the checkpoints need to know about the stretch under way: when it started,
the summary so far (so that a failure and every checkpoint see the latest hf_energy and FLOP
count), the phase clock, and when its first training iteration ended. :class:`RunFacts` is
what each checkpoint keeps of it, so that a damaged summary.json can be rebuilt.
Times are Unix times or durations in seconds.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Mapping

from ablate.records.run_record import RunSummary
from ablate.vmc.cost import CLOCK_KEY, PhaseClock


@dataclasses.dataclass(frozen=True)
class RunFacts:
    """What a checkpoint keeps of the summary (its ``run_facts`` entry)."""

    hf_energy: float | None = None                  # Hartree-Fock energy (Hartree), null without SCF
    startup_s: float | None = None                  # config to the end of the first iteration (s)
    wall_time_stretches_s: tuple[float, ...] = ()   # wall time of every stretch so far (s)

    def to_dict(self) -> dict[str, Any]:
        return {"hf_energy": self.hf_energy, "startup_s": self.startup_s,
                "wall_time_stretches_s": list(self.wall_time_stretches_s)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "RunFacts":
        """The facts of a checkpoint's ``run_facts`` entry (missing keys are null)."""
        data = data or {}
        return cls(hf_energy=data.get("hf_energy"), startup_s=data.get("startup_s"),
                   wall_time_stretches_s=tuple(data.get("wall_time_stretches_s") or ()))


@dataclasses.dataclass
class Stretch:
    """The stretch of a run under way (mutable: the run updates ``summary`` as it learns more)."""

    started: float                     # Unix time this stretch started (s)
    summary: RunSummary                # the summary so far
    clock: PhaseClock                  # wall seconds per phase, carried over resumptions
    first_step_done: float | None = None                   # Unix time its first training iteration ended
    on_first_step: Callable[[], None] | None = None        # called once, when that happens

    def first_step(self) -> None:
        """Marks the end of this stretch's first training iteration (start-up is over)."""
        self.first_step_done = time.time()
        if self.on_first_step is not None:
            self.on_first_step()

    def startup_s(self) -> float | None:
        """The run's start-up: the summary's (a resumed run's first stretch), else this
        stretch's up to its first iteration; None before then."""
        if self.summary.startup_s is not None:
            return self.summary.startup_s
        return self.first_step_done - self.started if self.first_step_done is not None else None

    def facts(self) -> RunFacts:
        """hf_energy, startup_s and the wall time of every stretch so far, this one included."""
        return RunFacts(hf_energy=self.summary.hf_energy, startup_s=self.startup_s(),
                        wall_time_stretches_s=(*self.summary.wall_time_stretches_s,
                                               time.time() - self.started))

    def checkpoint_extra(self) -> dict[str, Any]:
        """What every checkpoint carries of the stretch: the phase clock and the run facts."""
        return {CLOCK_KEY: self.clock.snapshot(), "run_facts": self.facts().to_dict()}
