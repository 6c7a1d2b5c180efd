"""One VMC run: validate, pretrain, burn in, train, evaluate, and write the run directory.

`run_experiment` is what the CLI and the sweep workers call. It resumes from the newest
checkpoint in the run directory, never reruns a completed run, and always leaves a
summary.json saying how the run ended.
"""

from __future__ import annotations

import datetime
import platform
import socket
import time
import traceback
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from ablate import checkpoint
from ablate.config import flatten, validate
from ablate.errors import RunFailed
from ablate.recorder import Recorder
from ablate.stats import count_spikes, reblock


def resolve_run_dir(cfg: DictConfig, run_dir=None) -> Path:
    """Explicit argument > cfg.run_dir > <output_root>/single/<timestamp>."""
    if run_dir is not None:
        return Path(run_dir)
    if cfg.get("run_dir"):
        return Path(cfg.run_dir)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")[:-3]
    return Path(cfg.output_root) / "single" / stamp


def _configure_jax(cfg) -> None:
    """64-bit JAX exactly when the run asks for float64 (kfac-jax mixes dtypes otherwise)."""
    import jax

    jax.config.update("jax_enable_x64", cfg.precision == "float64")
    # Runs of the same shapes compile once: later runs (and sweep trials) load the
    # executables from disk. The first directory set in a process stays (JAX's rule). Not on
    # CPU by default: XLA:CPU logs a spurious machine-feature error for every program it loads
    # from the cache (JAX_COMPILATION_CACHE_DIR turns it on there; sweep workers silence it).
    if cfg.get("compilation_cache") and not jax.config.jax_compilation_cache_dir \
            and jax.default_backend() != "cpu":
        jax.config.update("jax_compilation_cache_dir", str(cfg.compilation_cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def _make_sinks(cfg, run_dir: Path) -> list:
    if cfg.logger.kind == "none":
        return []
    try:
        from ablate.wandb_sink import make_sink
    except ImportError as err:
        print(f"warning: W&B logging is off ({err})", flush=True)
        return []
    return [make_sink(cfg, run_dir)]


def _base_summary(experiment, run_dir: Path) -> dict:
    cfg, system = experiment.cfg, experiment.system
    trial = cfg.get("trial") or {}
    return {
        "status": "running", "reason": None,
        "system": system.name, "electrons": list(system.electrons),
        "atoms": system.atom_list(), "network": cfg.network.type,
        "reference_energy": system.reference_energy,
        "reference_source": system.reference_source,
        "seed": int(cfg.seed),
        "params": OmegaConf.to_container(trial["params"], resolve=True)
                  if trial.get("params") else {},
        "study": trial.get("study"), "trial": trial.get("number"),
        "run_dir": str(run_dir.resolve()),
        "config": flatten(cfg),
        "host": socket.gethostname(), "python": platform.python_version(),
        "started_at": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def _finish_summary(summary: dict, experiment, energies, train_energies, timing, state) -> dict:
    stats = reblock(energies)
    ref = experiment.system.reference_energy
    tail = train_energies[-max(1, len(train_energies) // 10):] if train_energies else []
    step_times = timing["step_times"]
    summary.update(
        energy=stats.mean, energy_stderr=stats.stderr,
        energy_naive_stderr=stats.naive_stderr, reblock_size=stats.block_size,
        autocorrelation_time=stats.autocorrelation_time,
        train_energy=float(np.mean(tail)) if tail else None,
        error_mha=(stats.mean - ref) * 1e3 if ref is not None else None,
        error_stderr_mha=stats.stderr * 1e3 if ref is not None else None,
        iterations=int(state["step"]),
        ms_per_iteration=float(np.median(step_times) * 1e3) if step_times else None,
    )
    # issue 9: training iterations whose energy exceeds the running median by > 10 running MADs
    summary["energy_spikes"] = count_spikes(train_energies, window=100, n_mads=10)
    return summary


def _read_column(path: Path, column: str) -> list[float]:
    import csv

    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [float(r[column]) for r in csv.DictReader(fh)]


def _restore(engine, recorder, saved: dict):
    """State and evaluation progress from a checkpoint; the tables are cut back to match."""
    from ablate.training import to_device

    state = {k: saved[k] for k in ("params", "opt_state", "walkers", "key", "width", "step")}
    if saved["phase"] == "eval":
        state["step"] = saved["train_step"]
        done = list(saved["eval_energies"])
        recorder.truncate("eval", len(done))
        recorder.truncate("train", saved["train_step"])
    else:
        done = []
        recorder.truncate("train", int(saved["step"]))
        recorder.truncate("eval", 0)
    print(f"resuming from checkpoint: phase {saved['phase']}, step {int(saved['step'])}",
          flush=True)
    return to_device(engine, state), done


def _train_and_evaluate(experiment, recorder: Recorder, run_dir: Path, callbacks,
                        summary: dict, t0: float) -> dict:
    from ablate import training
    from ablate.networks import param_count

    cfg = experiment.cfg
    progress = training.Progress(bool(cfg.progress))
    engine = training.build_engine(experiment)
    timing = {"step_times": [], "first_step_done": None}
    saved = checkpoint.latest(run_dir / "checkpoints")
    if saved is not None:
        state, done = _restore(engine, recorder, saved)  # hf_energy is in summary
    else:
        for phase in ("pretrain", "train", "eval"):
            recorder.truncate(phase, 0)
        state, done = training.initial_state(engine), []
        summary["hf_energy"] = None
        if cfg.pretrain.method == "hf" and int(cfg.pretrain.iterations) > 0:
            from ablate.pretrain import hartree_fock

            hf = hartree_fock(experiment.system, str(cfg.pretrain.basis))
            summary["hf_energy"] = hf.energy
            recorder.write_summary(summary)          # kept for a resumed run
            state = training.pretrain(engine, state, hf, recorder, progress)
        state = training.burn_in(engine, state, int(cfg.mcmc.burn_in), progress, "burn-in")
        state = training.init_optimizer(engine, state)
        training.save_checkpoint(run_dir, recorder, "train", state)
    summary["param_count"] = param_count(state["params"])

    if not done:
        state = training.train(engine, state, recorder, run_dir, callbacks, progress, timing)
    state, energies = training.evaluate(engine, state, recorder, run_dir, progress, done)
    recorder.flush()
    train_energies = _read_column(run_dir / "metrics.csv", "energy")
    summary = _finish_summary(summary, experiment, energies, train_energies, timing, state)
    if timing["first_step_done"] is not None:
        summary["startup_s"] = timing["first_step_done"] - t0
    return summary


def run_experiment(cfg: DictConfig, run_dir=None, callbacks=None) -> dict:
    """Trains and evaluates one wave function; returns (and writes) summary.json's dict.

    Raises ConfigError for bad input before anything is written; on a failure during the
    run it writes summary.json with status 'failed' and the reason, then re-raises.
    """
    t0 = time.time()
    experiment = validate(cfg)
    run_dir = resolve_run_dir(cfg, run_dir)
    recorder = Recorder(run_dir)
    previous = recorder.read_summary()
    if previous and previous.get("status") == "completed":
        return previous
    _configure_jax(cfg)
    recorder.write_config(cfg)
    summary = _base_summary(experiment, run_dir)
    summary["hf_energy"] = (previous or {}).get("hf_energy")  # kept when a run resumes
    recorder.write_summary(summary)
    recorder.sinks = [s for s in _make_sinks(cfg, run_dir) if s is not None]
    from ablate.training import Pruned

    try:
        summary = _train_and_evaluate(experiment, recorder, run_dir, callbacks, summary, t0)
        summary["status"] = "completed"
    except Pruned as err:
        summary.update(status="pruned", reason=str(err))
    except BaseException as err:
        reason = str(err) if isinstance(err, RunFailed) else \
            f"{type(err).__name__}: {err}".strip()
        summary.update(status="failed", reason=reason,
                       traceback=traceback.format_exc(limit=20))
        summary["wall_time_s"] = time.time() - t0
        summary["finished_at"] = datetime.datetime.now().isoformat(timespec="seconds")
        recorder.finish(summary)
        raise
    summary["wall_time_s"] = time.time() - t0
    summary["finished_at"] = datetime.datetime.now().isoformat(timespec="seconds")
    recorder.finish(summary)
    return summary


def format_result(summary: dict) -> str:
    """The closing lines a user reads: energy, error bar, reference and error in mHa."""
    lines = [f"run directory: {summary.get('run_dir')}", f"status: {summary['status']}"
             + (f" ({summary['reason']})" if summary.get("reason") else "")]
    if summary.get("energy") is not None:
        lines.append(f"energy: {summary['energy']:.6f} +- {summary['energy_stderr']:.6f} Ha"
                     f" (reblocked, {summary.get('param_count')} parameters)")
    if summary.get("reference_energy") is not None:
        lines.append(f"reference: {summary['reference_energy']:.6f} Ha"
                     f" ({summary.get('reference_source')})")
        if summary.get("error_mha") is not None:
            lines.append(f"error: {summary['error_mha']:.2f} +- "
                         f"{summary['error_stderr_mha']:.2f} mHa")
    if summary.get("ms_per_iteration") is not None:
        lines.append(f"time: {summary['wall_time_s']:.1f} s in all, "
                     f"{summary['ms_per_iteration']:.1f} ms per training iteration")
    return "\n".join(lines)
