"""Pre-emption: a run asked to stop (SIGTERM) checkpoints at the next iteration boundary and exits.

Slurm (and most schedulers) warn a job with SIGTERM before they kill it: at a time limit (with
``--signal``), on pre-emption, ``scancel`` or ``scontrol requeue``. The CLI installs
:func:`install` for a single run; a sweep worker installs it too. The first SIGTERM only sets a
flag; the training loop (and the evaluation loop) checks :func:`requested` after each
iteration, writes a checkpoint through the usual checkpoint code and raises :class:`Preempted`.
``python -m ablate`` then prints one line and exits with :data:`EXIT_PREEMPTED`; rerunning the
same command with the same ``run_dir`` (or Slurm's requeue of the same batch script) resumes
from that checkpoint, so no iteration after the signal is lost or repeated.

A second SIGTERM kills the process at once (the signal's default action, exit status 143 in a
shell), unless ``repeat_kills=False`` (sweep workers: the driver forwards the scheduler's
signal, so a worker may get it twice). Checkpoints are written atomically, so a kill never
leaves a broken one. Pretraining and burn-in are not checkpointed: a signal there takes effect
at the first training iteration.

Stdlib only: the CLI installs the handler before it imports JAX.
"""

from __future__ import annotations

import signal

from ablate.records.errors import RunFailed

EXIT_PREEMPTED = 75   # EX_TEMPFAIL (sysexits.h): stopped on request, rerun to resume
SIGNALS = (signal.SIGTERM,)

_state = {"requested": None}   # the name of the signal received, or None


class Preempted(RunFailed):
    """The run stopped on a signal after writing a checkpoint; rerun it to resume."""


def install(repeat_kills: bool = True) -> None:
    """Catch SIGTERM in this process (main thread only): the first one sets the flag."""

    def on_signal(signum, frame):
        _state["requested"] = signal.Signals(signum).name
        if repeat_kills:
            signal.signal(signum, signal.SIG_DFL)

    _state["requested"] = None
    for s in SIGNALS:
        signal.signal(s, on_signal)


def requested() -> str | None:
    """The name of the signal that asked this process to stop (``"SIGTERM"``), or None."""
    return _state["requested"]


def stop_here(where: str, run_dir) -> Preempted:
    """The exception a loop raises after its checkpoint at ``where`` (e.g. "training step 41")."""
    return Preempted(f"pre-empted by {requested()} after {where}; checkpoint in {run_dir}: "
                     "rerun with the same run_dir to resume")
