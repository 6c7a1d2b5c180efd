"""One VMC run: validate, pretrain, burn in, train, evaluate, and write the run directory.

`run_experiment` is what the CLI and the sweep workers call. It resumes from the newest
checkpoint in the run directory, never reruns a completed run, and always leaves a
summary.json (a `RunSummary`) saying how the run ended.
"""

from __future__ import annotations

import csv
import datetime
import platform
import socket
import time
import traceback
from pathlib import Path
from typing import Any, Mapping

import numpy as np

import ablate
from ablate import checkpoint, training
from ablate.config import Experiment, validate
from ablate.errors import RunFailed
from ablate.jax_setup import setup_jax
from ablate.networks import param_count
from ablate.records import RunSummary
from ablate.recorder import Recorder
from ablate.startup import StartupClock, take_import_seconds
from ablate.stats import reblock
from ablate.wandb_sink import make_sink

ENGINE_IMPORTED_AT = time.time()   # the engine and its libraries (JAX, kfac-jax, folx) loaded


def resolve_run_dir(experiment: Experiment, run_dir=None) -> Path:
    """Explicit argument > run_dir key > <output_root>/single/<timestamp>."""
    if run_dir is not None:
        return Path(run_dir)
    if experiment.run.run_dir:
        return Path(experiment.run.run_dir)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")[:-3]
    return Path(experiment.run.output_root) / "single" / stamp


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def _base_summary(experiment: Experiment, run_dir: Path) -> RunSummary:
    system, trial = experiment.system, experiment.trial
    return RunSummary(
        status="running", system=system.name, electrons=list(system.electrons),
        atoms=system.atom_list(), network=experiment.network.type,
        reference_energy=system.reference_energy, reference_source=system.reference_source,
        seed=experiment.run.seed, params=dict(trial.params), study=trial.study, trial=trial.number,
        run_dir=str(run_dir.resolve()), config=experiment.config,
        host=socket.gethostname(), python=platform.python_version(), started_at=_now())


def _results(experiment: Experiment, energies, variances, train_energies, timing,
             state: training.TrainState) -> dict[str, Any]:
    """The measured fields of the summary, from the evaluation energies (Hartree)."""
    stats = reblock(energies)
    ref = experiment.system.reference_energy
    tail = train_energies[-max(1, len(train_energies) // 10):] if train_energies else []
    step_times = timing["step_times"]
    return dict(
        energy=stats.mean, energy_stderr=stats.stderr,
        energy_naive_stderr=stats.naive_stderr, reblock_size=stats.block_size,
        autocorrelation_time=stats.autocorrelation_time,
        variance=float(np.mean(variances)) if variances else None,
        train_energy=float(np.mean(tail)) if tail else None,
        error_mha=(stats.mean - ref) * 1e3 if ref is not None else None,
        error_stderr_mha=stats.stderr * 1e3 if ref is not None else None,
        iterations=int(state.step),
        ms_per_iteration=float(np.median(step_times) * 1e3) if step_times else None,
    )


def _read_column(path: Path, column: str) -> list[float]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [float(r[column]) for r in csv.DictReader(fh)]


def _restore(engine: training.Engine, recorder: Recorder, saved: dict):
    """State and evaluation progress from a checkpoint; the tables are cut back to match."""
    state = training.TrainState.from_dict(saved)
    if saved["phase"] == "eval":
        state = state._replace(step=saved["train_step"])
        done = list(saved["eval_energies"])
        recorder.truncate("eval", len(done))
        recorder.truncate("train", saved["train_step"])
    else:
        done = []
        recorder.truncate("train", int(saved["step"]))
        recorder.truncate("eval", 0)
    print(f"resuming from checkpoint: phase {saved['phase']}, step {int(saved['step'])}",
          flush=True)
    return training.to_device(engine, state), done


def _train_and_evaluate(experiment: Experiment, recorder: Recorder, run_dir: Path, callbacks,
                        summary: RunSummary, t0: float) -> RunSummary:
    listener = getattr(callbacks, "on_progress", None) if callbacks else None
    progress = training.Progress(experiment.run.progress, listener=listener)
    clock = StartupClock(take_import_seconds(ablate.IMPORTED_AT, ENGINE_IMPORTED_AT))
    engine = training.build_engine(experiment)    # reused from an earlier run of the same shapes
    timing = {"step_times": [], "first_step_done": None}
    saved = checkpoint.latest(run_dir / "checkpoints")
    if saved is not None:
        state, done = _restore(engine, recorder, saved)  # hf_energy is in the summary already
    else:
        for phase in ("pretrain", "train", "eval"):
            recorder.truncate(phase, 0)
        state, done = training.initial_state(engine), []
        summary = summary.replace(hf_energy=None)
        if experiment.pretrain.method == "hf" and experiment.pretrain.iterations > 0:
            from ablate.pretrain import hartree_fock  # lazy: pyscf is heavy

            with clock.phase("scf"):
                hf = hartree_fock(experiment.system, experiment.pretrain.basis)
            summary = summary.replace(hf_energy=hf.energy)
            recorder.write_summary(summary)          # kept for a resumed run
            with clock.phase("pretrain"):
                state = training.pretrain(engine, state, hf, recorder, progress)
        with clock.phase("burn_in"):
            state = training.burn_in(engine, state, experiment.mcmc.burn_in, progress, "burn-in")
        with clock.phase("optimizer_init"):
            state = training.init_optimizer(engine, state)
        training.save_checkpoint(run_dir, recorder, "train", state)
    summary = summary.replace(param_count=param_count(state.params))

    if not done:
        train_start = time.time()

        def first_step_done():                       # start-up ends: say where it went
            clock.add("first_iteration", train_start, time.time())
            if experiment.run.progress:
                print(clock.line(), flush=True)
        timing["on_first_step"] = first_step_done
        state = training.train(engine, state, recorder, run_dir, callbacks, progress, timing)
    state, energies = training.evaluate(engine, state, recorder, run_dir, progress, done)
    recorder.flush()
    results = _results(experiment, energies, _read_column(run_dir / "eval.csv", "variance"),
                       _read_column(run_dir / "metrics.csv", "energy"), timing, state)
    if timing["first_step_done"] is not None:
        results["startup_s"] = timing["first_step_done"] - t0
        results["startup"] = clock.seconds()
    return summary.replace(**results)


def run_experiment(cfg: Mapping | Any, run_dir=None, callbacks=None) -> RunSummary:
    """Trains and evaluates one wave function; returns (and writes) its summary.json record.

    ``cfg``: a composed config (DictConfig or plain dict); it is validated here and written to
    config.yaml, and the engine gets the typed `Experiment`. Raises ConfigError for bad input
    before anything is written; on a failure during the run it writes summary.json with status
    'failed' and the reason, then re-raises.

    ``callbacks`` (optional): ``on_train_step(step, metrics) -> bool | None`` after each training
    iteration (True stops the run as pruned) and ``on_progress(phase, step, total)``.
    """
    t0 = time.time()
    experiment = validate(cfg)
    run_dir = resolve_run_dir(experiment, run_dir)
    recorder = Recorder(run_dir)
    previous = recorder.read_summary()
    if previous is not None and previous.status == "completed":
        return previous
    setup_jax(experiment.run.precision, experiment.run.compilation_cache)
    recorder.write_config(cfg)
    summary = _base_summary(experiment, run_dir)
    # hf_energy is kept when a run resumes (the SCF is not run again)
    summary = summary.replace(hf_energy=previous.hf_energy if previous is not None else None)
    recorder.write_summary(summary)
    sink = make_sink(experiment, run_dir)
    recorder.sinks = [sink] if sink is not None else []

    try:
        summary = _train_and_evaluate(experiment, recorder, run_dir, callbacks, summary, t0)
        summary = summary.replace(status="completed")
    except training.Pruned as err:
        summary = summary.replace(status="pruned", reason=str(err))
    except BaseException as err:
        reason = str(err) if isinstance(err, RunFailed) else f"{type(err).__name__}: {err}".strip()
        summary = summary.replace(status="failed", reason=reason,
                                  traceback=traceback.format_exc(limit=20),
                                  wall_time_s=time.time() - t0, finished_at=_now())
        recorder.finish(summary)
        raise
    summary = summary.replace(wall_time_s=time.time() - t0, finished_at=_now())
    recorder.finish(summary)
    return summary


def format_result(summary: RunSummary) -> str:
    """The closing lines a user reads: energy, error bar, reference and error in mHa."""
    lines = [f"run directory: {summary.run_dir}", f"status: {summary.status}"
             + (f" ({summary.reason})" if summary.reason else "")]
    if summary.energy is not None:
        lines.append(f"energy: {summary.energy:.6f} +- {summary.energy_stderr:.6f} Ha"
                     f" (reblocked, {summary.param_count} parameters)")
    if summary.reference_energy is not None:
        lines.append(f"reference: {summary.reference_energy:.6f} Ha ({summary.reference_source})")
        if summary.error_mha is not None:
            lines.append(f"error: {summary.error_mha:.2f} +- {summary.error_stderr_mha:.2f} mHa")
    if summary.ms_per_iteration is not None:
        lines.append(f"time: {summary.wall_time_s:.1f} s in all, "
                     f"{summary.ms_per_iteration:.1f} ms per training iteration")
    return "\n".join(lines)
