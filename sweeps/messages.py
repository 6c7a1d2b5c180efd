"""Messages between the sweep driver and its worker processes, one duplex pipe per worker.

Driver -> worker: :class:`RunTrial`, :class:`Prune`, :class:`Stop`. Worker -> driver:
:class:`Ready`, :class:`TrialProgress`, :class:`Done`, :class:`Failed`. Dataclasses pickle by
module path, so both ends import them from here. Standard library only.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class RunTrial:
    """Run one trial: its number, run directory, its validated run (an `ablate.config.experiment.Experiment`,
    which the driver composed and validated; pickled by module path like these messages) and how
    often (training iterations) to report a pruning value."""

    number: int
    run_dir: str
    experiment: Any
    report_every: int


@dataclasses.dataclass(frozen=True)
class Prune:
    number: int


@dataclasses.dataclass(frozen=True)
class Stop:
    pass


@dataclasses.dataclass(frozen=True)
class Ready:
    """The worker imported the engine (``import_s`` seconds) and waits for trials."""

    import_s: float


@dataclasses.dataclass(frozen=True)
class TrialProgress:
    """Where a running trial is: ``phase`` (pretrain, burn-in, train, eval-burn, eval), step k
    of ``total`` in that phase, and for training the energy (Hartree; the mean since the last
    report when ``report`` is True, which the driver passes to the pruner)."""

    number: int
    phase: str
    step: int
    total: int
    energy: float | None = None
    report: bool = False


@dataclasses.dataclass(frozen=True)
class Done:
    """The trial returned: its summary.json dict (completed or pruned)."""

    number: int
    summary: dict


@dataclasses.dataclass(frozen=True)
class Failed:
    """The trial raised: a one-line reason, and its summary.json dict when it wrote one."""

    number: int
    reason: str
    summary: dict | None = None
