"""One VMC run: pretrain, burn in, train, evaluate, and write the run directory.

`run_experiment` is what the CLI and the sweep workers call, with a validated `Experiment`
(`ablate.config.experiment.validate`). It resumes from the newest checkpoint in the run directory, never
reruns a completed run, and always leaves a summary.json (a `RunSummary`) saying how the run ended.
"""

from __future__ import annotations

import datetime
import platform
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import jax
import numpy as np

import ablate
from ablate.config.experiment import Experiment, check_devices
from ablate.records.errors import RunFailed, WriteFailed
from ablate.records.provenance import git_commit, package_versions
from ablate.records.run_record import RecordError, RunDir, RunSummary
from ablate.records.stats import count_spikes, reblock
from ablate.runtime import program_store
from ablate.runtime.jax_setup import cache_folder_in_use as jax_cache_folder, setup_jax
from ablate.runtime.startup import StartupClock, cache_counts, take_import_seconds
from ablate.tracking.wandb_sink import make_sink
from ablate.vmc import checkpoint, cost, fingerprint, training
from ablate.vmc.pretrain import hartree_fock  # pyscf itself is imported inside, only when called
from ablate.vmc.pretrain import summary_fields as pretrain_fields
from ablate.vmc.recorder import Recorder
from ablate.vmc.stretch import RunFacts, Stretch
from ablate.wavefunction.networks import param_count

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
        run_dir=str(run_dir.resolve()), config=experiment.config, study_uuid=trial.study_uuid,
        host=socket.gethostname(), python=platform.python_version(), started_at=_now())


def _results(experiment: Experiment, energies, variances, train_energies, step_times,
             iterations: int) -> dict[str, Any]:
    """The measured fields of the summary, from the evaluation energies (Hartree) and the
    training step times of the whole run (metrics.csv, seconds)."""
    stats = reblock(energies)
    ref = experiment.system.reference_energy
    tail = train_energies[-max(1, len(train_energies) // 10):] if train_energies else []
    return dict(
        energy=stats.mean, energy_stderr=stats.stderr,
        energy_naive_stderr=stats.naive_stderr, reblock_size=stats.block_size,
        autocorrelation_time=stats.autocorrelation_time,
        variance=float(np.mean(variances)) if variances else None,
        train_energy=float(np.mean(tail)) if tail else None,
        error_mha=(stats.mean - ref) * 1e3 if ref is not None else None,
        error_stderr_mha=stats.stderr * 1e3 if ref is not None else None,
        iterations=int(iterations),
        evaluation_iterations=len(energies),
        ms_per_iteration=float(np.median(step_times) * 1e3) if step_times else None,
        # training iterations whose energy exceeds the running median by > 10 running MADs
        energy_spikes=count_spikes(train_energies, window=100, n_mads=10),
    )


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


def _table_results(experiment: Experiment, run: RunDir, iterations: int) -> dict[str, Any]:
    """The summary's measured fields from the tables on disk (eval.csv, metrics.csv)."""
    evaluation = run.read_columns("eval", ("energy", "variance"))
    train = run.read_columns("train", ("energy", "step_time_s"))
    return _results(experiment, evaluation["energy"], evaluation["variance"], train["energy"],
                    train["step_time_s"], iterations)


def _rebuilt_summary(experiment: Experiment, run: RunDir, damage: str) -> RunSummary:
    """A summary for a run directory whose summary.json is damaged, from its newest checkpoint
    (its :class:`RunFacts`: hf_energy, startup_s, wall time of earlier stretches) and its tables;
    status ``completed`` with the evaluated energy when the tables hold the whole evaluation."""
    print(f"warning: {run.summary_file} is damaged ({damage}); rebuilt from the checkpoint "
          "and the tables", file=sys.stderr, flush=True)
    saved = checkpoint.latest(run.checkpoints) or {}
    facts = RunFacts.from_dict(saved.get("run_facts"))
    summary = _base_summary(experiment, run.path).replace(
        fingerprint=fingerprint.fingerprint(fingerprint.fingerprint_values(experiment.config)),
        hf_energy=facts.hf_energy, startup_s=facts.startup_s,
        wall_time_stretches_s=list(facts.wall_time_stretches_s))
    if saved.get("params") is not None:
        summary = summary.replace(param_count=param_count(saved["params"]))
    n_train = len(run.read_column("train", "energy"))
    if n_train >= experiment.optim.iterations and training.evaluation_done(
            list(run.read_column("eval", "energy")), experiment.evaluation):
        summary = summary.replace(status="completed", **_table_results(experiment, run, n_train))
        summary = summary.replace(wall_time_s=sum(summary.wall_time_stretches_s) or None)
    return summary


def _previous_summary(experiment: Experiment, run: RunDir) -> RunSummary | None:
    """The run directory's summary.json; a damaged one is rebuilt (one warning line) and rewritten."""
    try:
        return run.read_summary()
    except RecordError as err:
        damage = str(err).split(": ", 1)[-1]
    summary = _rebuilt_summary(experiment, run, damage)
    run.write_summary(summary)
    return summary


def _train_and_evaluate(experiment: Experiment, recorder: Recorder, run: RunDir, callbacks,
                        stretch: Stretch) -> RunSummary:
    """``stretch.summary`` is the summary so far; it is kept up to date (hf_energy, the FLOP
    count) so that a failure and every checkpoint's run facts see it. ``stretch.clock`` sums the
    wall seconds of each phase."""
    summary = stretch.summary
    run_dir, clock = run.path, stretch.clock
    listener = getattr(callbacks, "on_progress", None) if callbacks else None
    progress = training.Progress(experiment.run.progress, listener=listener)
    # where this run's start-up goes (imports, SCF, pretraining, burn-in, optimiser
    # init, first iteration; JAX's tracing and compilation apart), printed once it is over
    startup = StartupClock(take_import_seconds(ablate.IMPORTED_AT, ENGINE_IMPORTED_AT))
    requests0, hits0 = cache_counts()
    loaded0, written0 = program_store.counts()
    saved = checkpoint.latest(run.checkpoints)
    if saved is not None:  # the phase seconds spent before the checkpoint carry on
        clock.totals.update({k: float(v) for k, v in (saved.get(cost.CLOCK_KEY) or {}).items()})
    with clock.phase("setup"):
        engine = training.build_engine(experiment)
        if saved is not None:
            state, done = _restore(engine, recorder, saved)  # hf_energy is in the summary already
        else:
            for phase in ("pretrain", "train", "eval"):
                recorder.truncate(phase, 0)
            state, done = training.initial_state(engine), []
    if saved is None:
        summary = summary.replace(hf_energy=None)
        if experiment.pretrain.method == "hf" and experiment.pretrain.iterations > 0:
            with clock.phase("pretrain"):
                with startup.phase("scf"):
                    hf = hartree_fock(experiment.system, experiment.pretrain.basis)
                summary = summary.replace(hf_energy=hf.energy)
                stretch.summary = summary
                recorder.write_summary(summary)          # kept for a resumed run
                with startup.phase("pretrain"):
                    state = training.pretrain(engine, state, hf, recorder, progress)
        with clock.phase("burn_in"), startup.phase("burn_in"):
            state = training.burn_in(engine, state, experiment.mcmc.burn_in, progress, "burn-in")
        with clock.phase("setup"):
            with startup.phase("optimizer_init"):
                state = training.init_optimizer(engine, state)
            training.save_checkpoint(run_dir, recorder, "train", state, stretch)
    summary = summary.replace(param_count=param_count(state.params))

    if not done:
        train_start = time.time()

        def first_step_done():                       # start-up ends: say where it went
            startup.add("first_iteration", train_start, time.time())
            if experiment.run.progress:
                print(startup.line(), flush=True)
        stretch.on_first_step = first_step_done
        with clock.phase("train"):
            state = training.train(engine, state, recorder, run_dir, callbacks, progress, stretch)
    if not done or summary.flops_per_iteration is None:
        with clock.phase("flop_count"):  # after training: its programs are compiled already
            summary = summary.replace(**cost.flop_fields(engine, state, int(state.step)))
        stretch.summary = summary
        recorder.write_summary(summary)  # kept for a run resumed in evaluation
    with clock.phase("eval"):
        state, energies = training.evaluate(engine, state, recorder, run_dir, progress, stretch, done)
    recorder.flush()
    train = run.read_columns("train", ("energy", "variance", "step_time_s"))
    results = _results(experiment, energies, run.read_column("eval", "variance"),
                       train["energy"], train["step_time_s"], int(state.step))
    if stretch.first_step_done is not None and summary.startup_s is None:
        results["startup_s"] = stretch.startup_s()   # the first stretch's start-up
        results["startup"] = startup.seconds()
    results["training_flops"] = summary.flops_per_iteration * int(state.step)
    requests, hits = cache_counts()
    loaded, written = program_store.counts()
    results["compilation_cache"] = {"folder": jax_cache_folder(), "requests": requests - requests0,
                                    "hits": hits - hits0, "programs_loaded": loaded - loaded0,
                                    "programs_written": written - written0}
    results.update(pretrain_fields(run.read_column("pretrain", "loss"), train["energy"],
                                   train["variance"], experiment.run.batch_size))
    return summary.replace(**results)


def _cost_start(previous: RunSummary | None) -> dict[str, Any]:
    """Cost fields known before the run: devices, provenance, and the FLOP count of a
    run resumed in evaluation (its training ran in an earlier process)."""
    devices, kind = cost.device_info()
    fields: dict[str, Any] = {"devices": devices, "device_kind": kind, "git_commit": git_commit(),
                              "versions": package_versions()}
    if previous is not None and previous.flops_per_iteration is not None:
        fields.update(flops_per_iteration=previous.flops_per_iteration, flops_counted=previous.flops_counted)
    return fields


def run_experiment(experiment: Experiment, run_dir=None, callbacks=None) -> RunSummary:
    """Trains and evaluates one wave function; returns (and writes) its summary.json record.

    ``experiment``: the validated run (`ablate.config.experiment.validate`); its resolved config is written
    to config.yaml. Raises ConfigError before anything is written when the walkers do not split
    over this machine's devices or the run directory holds another config's run; on a failure
    during the run it writes summary.json with status 'failed' and the reason, then re-raises.

    ``callbacks`` (optional): ``on_train_step(step, metrics) -> bool | None`` after each training
    iteration (True stops the run as pruned) and ``on_progress(phase, step, total)``.
    """
    t0 = time.time()
    if not isinstance(experiment, Experiment):
        raise TypeError(f"run_experiment takes a validated Experiment, not {type(experiment).__name__}")
    check_devices(experiment.run, jax.device_count())
    run_dir = resolve_run_dir(experiment, run_dir)
    trial = experiment.trial
    study = {"name": trial.study, "uuid": trial.study_uuid} if trial.study else None
    # Another config's (or another study's) run directory: one line, exit 2, nothing written.
    stamp = fingerprint.check_run_dir(run_dir, experiment.config, study)
    # A pickled checkpoint of older ablate is read only on the user's word: one line, exit 2.
    checkpoint.check_no_pickle(RunDir(run_dir).checkpoints)
    recorder = Recorder(run_dir)
    run = recorder.run_dir
    previous = _previous_summary(experiment, run)
    if previous is not None and previous.status == "completed":
        return previous
    setup_jax(experiment.run.precision, experiment.run.compilation_cache)
    fingerprint.write(run_dir, stamp)
    recorder.write_config(experiment.resolved)
    summary = _base_summary(experiment, run_dir).replace(fingerprint=stamp["fingerprint"],
                                                         **_cost_start(previous))
    if previous is not None:  # a resumption: the SCF is not run again; earlier stretches count
        summary = summary.replace(hf_energy=previous.hf_energy, startup_s=previous.startup_s,
                                  wall_time_stretches_s=_stretches(previous))
    recorder.write_summary(summary)
    sink = make_sink(experiment, run_dir)
    recorder.sinks = [sink] if sink is not None else []

    # the summary so far (a failure keeps hf_energy and the FLOP count) and this stretch's clocks
    stretch = Stretch(started=t0, summary=summary, clock=cost.PhaseClock())
    try:
        summary = _train_and_evaluate(experiment, recorder, run, callbacks, stretch)
        summary = summary.replace(status="completed")
    except training.Pruned as err:
        summary = stretch.summary.replace(status="pruned", reason=str(err), startup_s=stretch.startup_s())
    except BaseException as err:
        reason = str(err) if isinstance(err, RunFailed) else f"{type(err).__name__}: {err}".strip()
        so_far = stretch.summary
        summary = so_far.replace(status="failed", reason=reason,
                                 traceback=traceback.format_exc(limit=20),
                                 startup_s=stretch.startup_s(),
                                 finished_at=_now(), **_wall(so_far, t0),
                                 **cost.cost_fields(stretch.clock, so_far.devices or 1))
        try:
            recorder.finish(summary)
        except WriteFailed:
            pass   # a full disk: the error that stopped the run is the one to report (summary.json is as before)
        raise
    summary = summary.replace(finished_at=_now(), **_wall(summary, t0),
                              **cost.cost_fields(stretch.clock, summary.devices or 1))
    recorder.finish(summary)
    return summary


def _stretches(previous: RunSummary) -> list[float]:
    """Wall times of a resumed run's earlier stretches (an old summary: its one wall_time_s)."""
    if previous.wall_time_stretches_s:
        return [float(x) for x in previous.wall_time_stretches_s]
    return [float(previous.wall_time_s)] if isinstance(previous.wall_time_s, (int, float)) else []


def _wall(summary: RunSummary, t0: float) -> dict[str, Any]:
    """This stretch appended to the wall-time list, and the total."""
    stretches = [*summary.wall_time_stretches_s, time.time() - t0]
    return {"wall_time_stretches_s": stretches, "wall_time_s": float(sum(stretches))}


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
