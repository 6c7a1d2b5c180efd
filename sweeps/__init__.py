"""Optuna sweeps over ablate runs.

``python -m ablate +sweep=NAME [overrides]`` composes the config with the sweep file
``conf/sweep/NAME.yaml`` under ``cfg.sweep`` and calls :func:`sweeps.driver.run_plan`
(through ``ablate.cli.sweep_cli``, which hands it the analysis: the decide step of rounds of seeds
and the finished study's report).

- :mod:`sweeps.space`: parse and check a sweep file into a ``SweepSpec``.
- :mod:`sweeps.plan`: resolve the study (overrides, configs, storage URL, slots) before anything runs.
- :mod:`sweeps.storage`: Optuna storage, study creation/joining, claiming and recovering trials.
- :mod:`sweeps.ownership`: who runs a trial (driver, heartbeats) and when it is stale.
- :mod:`sweeps.workers`: worker processes over GPU slots (or CPU workers) that run trials in turn.
- :mod:`sweeps.messages`: the messages between the driver and its workers.
- :mod:`sweeps.study_log`: the finished study's W&B run (trial table; figure and report when given).
- :mod:`sweeps.rounds`: rounds of seeds (``sweep.max_seeds``): recording and enqueuing the next round.
- :mod:`sweeps.driver`: the ask / dispatch / report / tell / recover loop.
- :mod:`sweeps.status`: tables; ``python -m sweeps status NAME``.

Nothing here imports JAX in the driver process; workers do.
"""

__all__ = ["run_sweep"]


def run_sweep(cfg, task_overrides, analyse=None, decide=None):
    """See :func:`sweeps.driver.run_sweep` (imported lazily)."""
    from .driver import run_sweep as _run_sweep

    return _run_sweep(cfg, task_overrides, analyse, decide)
