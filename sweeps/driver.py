"""The study driver: ``python -m ablate +sweep=NAME`` ends up in :func:`run_sweep`.

The driver owns the Optuna storage. It creates or joins the study, recovers stale
trials, then loops: claim a trial (a WAITING one, or a new TPE/random one), compose its
config, hand it to a free worker, report intermediate energies for pruning, and tell the
result. Workers run in separate processes (see :mod:`sweeps.workers`); a crash, OOM or
NaN there never takes the driver down.

Exit codes: 0 when the study is complete (some trials may have failed), 1 when it stopped
early (``sweep.max_failures``, workers that cannot start), 2 for a bad sweep or storage
(raised as ``ConfigError`` before anything is written), 130 on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import math
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for
from pathlib import Path
from typing import Any

from ablate.errors import ConfigError

from . import storage as st
from .plan import StudyPlan, build_plan, trial_config
from .status import format_params, format_table, study_line
from .workers import Worker, describe_exit, start_worker, stop_worker

MAX_WORKER_RETRIES = 1      # a trial whose worker died is retried this many times
MAX_STARTUP_DEATHS = 3      # workers dying before they are ready: give up after this many in a row


def run_sweep(cfg, task_overrides: list[str]) -> int:
    """Run (or resume, or join) the study described by ``cfg.sweep``; returns the exit code."""
    plan = build_plan(cfg, list(task_overrides))
    _quiet_optuna()
    storage = st.open_storage(plan.storage_url)
    lock = st.lock_sqlite_study(plan.storage_url, plan.study_name)
    try:
        study, created = st.open_study(
            storage, plan.study_name, direction=plan.spec.direction,
            sampler=make_sampler(plan.spec), pruner=make_pruner(plan.spec, cfg_iterations(plan)),
            attrs=plan.study_attrs(),
            grid=plan.spec.grid_points() if plan.spec.sampler == "grid" else None,
            log=_say)
        code = Driver(plan, study, storage, created=created).run()
    finally:
        if lock is not None:
            lock.release()
    if code == 0:
        call_analysis_hook(plan.study_name, plan.storage_url, plan.output_root)
    return code


def make_sampler(spec):
    """The Optuna sampler: grid points are enqueued, so grid studies never consult it."""
    import optuna

    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=spec.sampler_seed, n_startup_trials=min(10, max(1, spec.n_planned() // 4)))
    return optuna.samplers.RandomSampler(seed=spec.sampler_seed)


def make_pruner(spec, max_steps: int):
    """MedianPruner or HyperbandPruner over training steps, or none."""
    import optuna

    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.prune_startup_trials,
                                           n_warmup_steps=spec.prune_warmup_steps)
    if spec.pruner == "hyperband":
        low = max(spec.report_every, spec.prune_warmup_steps)
        return optuna.pruners.HyperbandPruner(min_resource=low, max_resource=max(max_steps, low + 1),
                                              reduction_factor=3)
    return optuna.pruners.NopPruner()


def cfg_iterations(plan: StudyPlan) -> int:
    from .plan import compose

    return int(compose(list(plan.trial_overrides)).optim.iterations)


def call_analysis_hook(study_name: str, storage_url: str, output_root: Path) -> None:
    """Call ``ablate.wandb_sink.log_study`` if it exists; never fail the study for it."""
    try:
        from ablate.wandb_sink import log_study
    except (ImportError, AttributeError):
        return
    try:
        log_study(study_name, st.engine_url(storage_url), str(output_root))
    except Exception as err:  # noqa: BLE001
        _say(f"note: W&B study log skipped ({type(err).__name__}: {err})")


@dataclass
class Running:
    """The driver's record of one trial in a worker."""

    trial: Any                  # optuna.Trial
    frozen: Any                 # FrozenTrial at claim time (params, attrs)
    run_id: str
    run_dir: Path
    params: dict
    retries: int
    started: float = field(default_factory=time.monotonic)
    step: int | None = None
    energy: float | None = None


class Interrupted(Exception):
    """Ctrl-C or SIGTERM reached the driver."""


class Driver:
    """Ask, dispatch, report, tell and recover until the study is done."""

    def __init__(self, plan: StudyPlan, study, storage, created: bool = True):
        self.plan, self.spec, self.study, self.storage = plan, plan.spec, study, storage
        self.me = st.Owner.me()
        self.workers: list[Worker] = []
        self.failures = 0
        self.startup_deaths = 0
        self.stopping: str | None = None
        self.heartbeat_every = max(2.0, min(60.0, self.spec.stale_after_s / 5))
        self.stale_every = max(2.0, min(60.0, self.spec.stale_after_s / 2))
        self._last_beat = self._last_stale = self._last_line = time.monotonic()
        self._tag = f"[{plan.study_name}]"
        self.created = created

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        self._announce()
        self.recover_stale()
        if self.spec.retry_failed and self.spec.sampler == "grid":
            n = st.requeue_failed_points(self.study, self.spec.grid_points())
            _say(f"{self._tag} sweep.retry_failed: {n} failed grid point(s) enqueued again")
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in old:
            signal.signal(s, self._on_signal)
        try:
            self.workers = [start_worker(slot, self.cache_dir) for slot in self.plan.slots]
            while True:
                self.fill_workers()
                if self.done():
                    break
                self.pump(timeout=0.5)
                self.housekeeping()
        except Interrupted:
            return self.interrupt()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self.shutdown()
        self._say_study(final=True)
        print(format_table(self.study), flush=True)
        if self.stopping:
            _say(f"{self._tag} stopped early: {self.stopping}", err=True)
            return 1
        return 0

    @property
    def cache_dir(self) -> str:
        return str(self.plan.output_root / ".jax_cache")

    def _on_signal(self, signum, frame):
        raise Interrupted(signal.Signals(signum).name)

    def fill_workers(self) -> None:
        """Give a trial to every idle, ready worker while there is work."""
        if self.stopping:
            return
        for w in self.workers:
            if w.ready and not w.busy:
                if not self.dispatch(w):
                    return

    def done(self) -> bool:
        """No trial of ours runs, nothing is left to claim, and no other driver runs one."""
        if any(w.busy for w in self.workers):
            return False
        if self.stopping:
            return True
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return False
        if self.spec.sampler != "grid" and self._counted(trials) < self.spec.n_planned():
            return False
        others = [t for t in trials if t.state == TrialState.RUNNING]
        if others:
            self._maybe_say_study()
            return False
        return True

    def _counted(self, trials) -> int:
        from optuna.trial import TrialState

        keep = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
        return sum(t.state in keep for t in trials)

    # --- claiming and dispatching ---------------------------------------------------------

    def claim(self):
        """A FrozenTrial now RUNNING for us, or None when there is nothing to run."""
        frozen = st.claim_waiting(self.study, self.storage)
        if frozen is not None or self.spec.sampler == "grid":
            return frozen
        if self._counted(self.study.get_trials(deepcopy=False)) >= self.spec.n_planned():
            return None
        trial = self.study.ask()
        return self.study.get_trials(deepcopy=False)[trial.number] if trial is not None else None

    def dispatch(self, worker: Worker) -> bool:
        import optuna

        frozen = self.claim()
        if frozen is None:
            return False
        trial = optuna.Trial(self.study, frozen._trial_id)
        try:
            params = {d.key: d.suggest(trial) for d in self.spec.dimensions}
        except (ValueError, TypeError) as err:
            self._finish_failed(trial, frozen, f"bad parameters: {err}", count=True)
            return True
        attrs = frozen.user_attrs
        run_id = attrs.get("run_id") or f"t{frozen.number:04d}"
        run_dir = Path(attrs.get("run_dir") or self.plan.run_dir(run_id))
        for key, value in {"run_id": run_id, "run_dir": str(run_dir), "driver": self.me.ident,
                           "driver_ticks": self.me.ticks, "heartbeat": time.time(),
                           "worker": worker.slot.name}.items():
            trial.set_user_attr(key, value)
        rec = Running(trial, frozen, run_id, run_dir, params, int(attrs.get("retries", 0)))
        try:
            cfg = trial_config(self.plan.trial_overrides, params, study=self.plan.study_name,
                               number=frozen.number, run_dir=run_dir, logger=self._logger(run_id),
                               device_count=worker.slot.device_count)
        except Exception as err:  # noqa: BLE001 - a config the engine refuses fails this trial only
            self._finish_failed(trial, frozen, str(err) if isinstance(err, ConfigError)
                                else f"config: {type(err).__name__}: {err}", count=True, rec=rec)
            return True
        from omegaconf import OmegaConf

        payload = {"number": frozen.number, "run_dir": str(run_dir), "report_every": self.spec.report_every,
                   "config": OmegaConf.to_container(cfg, resolve=True)}
        worker.trial = rec
        worker.trials_run += 1
        if not worker.send("run", payload):
            return True  # the pump sees the dead worker and recovers the trial
        resumed = " (resuming)" if attrs.get("recovered_from") is not None else ""
        _say(f"{self._tag} {run_id} started  {format_params(params)}  on {worker.slot.name}{resumed}")
        return True

    def _logger(self, run_id: str) -> dict:
        tags = [self.plan.system, self.plan.sweep_name] + ([self.plan.scale] if self.plan.scale else [])
        return {"group": self.plan.study_name, "job_type": self.plan.sweep_name, "name": f"{self.plan.study_name}-{run_id}",
                "tags": tags}

    # --- messages from workers ------------------------------------------------------------

    def pump(self, timeout: float) -> None:
        """Wait for worker messages or deaths and handle them."""
        by_conn = {w.conn: w for w in self.workers}
        by_sentinel = {w.process.sentinel: w for w in self.workers}
        ready = wait_for(list(by_conn) + list(by_sentinel), timeout=timeout)
        dead = []
        for obj in ready:
            if obj in by_conn:
                w = by_conn[obj]
                try:
                    while w.conn.poll():
                        self.handle(w, w.conn.recv())
                except (EOFError, OSError):
                    dead.append(w)
            else:
                dead.append(by_sentinel[obj])
        for w in dict.fromkeys(dead):
            if w in self.workers:
                self.replace_dead(w)

    def handle(self, w: Worker, msg: tuple) -> None:
        kind = msg[0]
        if kind == "ready":
            w.ready = True
            self.startup_deaths = 0
            return
        rec = w.trial
        if rec is None or msg[1] != rec.trial.number:
            return  # a late message about a trial we already gave up on
        if kind == "progress":
            _, _, step, energy, report = msg
            rec.step, rec.energy = step, energy
            if report and self.spec.pruner != "none" and math.isfinite(energy):
                self._report(w, rec, step, energy)
        elif kind == "done":
            w.trial = None
            self.finish(rec, msg[2])
        elif kind == "failed":
            w.trial = None
            self._finish_failed(rec.trial, rec.frozen, msg[2], count=True, summary=msg[3], rec=rec)

    def _report(self, w: Worker, rec: Running, step: int, energy: float) -> None:
        try:
            rec.trial.report(energy, step)
            if rec.trial.should_prune():
                w.send("prune", rec.trial.number)
        except RuntimeError:
            pass  # finished elsewhere (e.g. marked stale by another driver)

    def finish(self, rec: Running, summary: dict) -> None:
        """Tell a trial that returned a summary (completed or pruned)."""
        from optuna.trial import TrialState

        status = summary.get("status")
        self._set_result_attrs(rec.trial, summary, rec)
        if status == "pruned":
            self._tell(rec.trial, state=TrialState.PRUNED)
            _say(f"{self._tag} {rec.run_id} pruned   {format_params(rec.params)}  ({summary.get('reason') or 'pruner'})")
            return
        value = objective_value(summary, self.spec.objective)
        if status != "completed" or value is None:
            reason = summary.get("reason") or f"status {status!r} without a finite {self.spec.objective}"
            self._finish_failed(rec.trial, rec.frozen, reason, count=True, summary=summary, rec=rec)
            return
        self._tell(rec.trial, values=value)
        _say(f"{self._tag} {rec.run_id} complete {format_params(rec.params)}  {_result_text(summary)}")

    def _finish_failed(self, trial, frozen, reason: str, *, count: bool, summary=None, rec=None) -> None:
        from optuna.trial import TrialState

        if summary:
            self._set_result_attrs(trial, summary, rec)
        self._set_attr(trial, "fail_reason", reason)
        self._tell(trial, state=TrialState.FAIL)
        run_id = rec.run_id if rec else f"t{frozen.number:04d}"
        _say(f"{self._tag} {run_id} FAILED   {format_params(rec.params if rec else frozen.params)}  {reason}")
        if count:
            self.failures += 1
            if self.failures >= self.spec.max_failures and not self.stopping:
                self.stopping = f"{self.failures} failed trials (sweep.max_failures={self.spec.max_failures})"
                _say(f"{self._tag} {self.stopping}: no new trials; waiting for the running ones", err=True)

    def _set_result_attrs(self, trial, summary: dict, rec: Running | None) -> None:
        keys = ("energy", "energy_stderr", "error_mha", "reference_energy", "param_count", "wall_time_s",
                "ms_per_iteration", "seed", "status", "network", "system", "startup_s", "iterations")
        for key in keys:
            if key in summary:
                self._set_attr(trial, key, _finite_or_none(summary[key]))
        if rec is not None:
            self._set_attr(trial, "run_dir", str(rec.run_dir))

    def _set_attr(self, trial, key, value) -> None:
        try:
            trial.set_user_attr(key, value)
        except RuntimeError:
            pass

    def _tell(self, trial, **kwargs) -> None:
        try:
            self.study.tell(trial, **kwargs)
        except RuntimeError as err:  # already finished (another driver marked it stale)
            _say(f"{self._tag} trial {trial.number}: result kept on disk only ({err})", err=True)

    # --- dead workers, stale trials, interrupts ---------------------------------------------

    def replace_dead(self, w: Worker) -> None:
        """Recover the trial of a dead worker (retry once) and start a fresh worker in its slot."""
        try:  # the worker may have sent its result just before it died: read that first
            while w.conn.poll():
                self.handle(w, w.conn.recv())
        except (EOFError, OSError):
            pass
        w.process.join(5)
        how = describe_exit(w.process.exitcode)
        rec, w.trial = w.trial, None
        if rec is not None:
            reason = f"worker {w.slot.name} died ({how})"
            retry = rec.retries < MAX_WORKER_RETRIES
            fresh = self._fresh(rec.frozen)
            if retry and st.fail_trial(self.study, self.storage, fresh, reason + "; retrying", requeue=True,
                                       retries=rec.retries + 1):
                _say(f"{self._tag} {rec.run_id} FAILED   {format_params(rec.params)}  {reason}; enqueued again")
            else:
                self._finish_failed(rec.trial, rec.frozen, reason, count=True, rec=rec)
        if not w.ready:
            self.startup_deaths += 1
        stop_worker(w)
        i = self.workers.index(w)
        if self.startup_deaths >= MAX_STARTUP_DEATHS:
            self.workers.pop(i)
            self.stopping = self.stopping or f"workers die before they are ready ({how}); see the messages above"
            return
        if not self.stopping or any(x.busy for x in self.workers):
            self.workers[i] = start_worker(w.slot, self.cache_dir)
        else:
            self.workers.pop(i)

    def _fresh(self, frozen):
        return self.study.get_trials(deepcopy=False)[frozen.number]

    def recover_stale(self) -> None:
        """Fail and re-enqueue RUNNING trials whose driver is gone."""
        from optuna.trial import TrialState

        self._last_stale = time.monotonic()
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            reason = st.stale_reason(t, self.me, self.spec.stale_after_s)
            if reason and st.fail_trial(self.study, self.storage, t, reason, requeue=True):
                _say(f"{self._tag} t{t.number:04d} {reason}; enqueued again to resume "
                     f"{t.user_attrs.get('run_dir', '')}")

    def housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_beat >= self.heartbeat_every:
            self._last_beat = now
            for w in self.workers:
                if w.busy:
                    self._set_attr(w.trial.trial, "heartbeat", time.time())
        if now - self._last_stale >= self.stale_every:
            self.recover_stale()
        self._maybe_say_study()

    def interrupt(self) -> int:
        """Ctrl-C: stop workers, fail our running trials as interrupted and enqueue them again."""
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        _say(f"{self._tag} interrupted: stopping workers", err=True)
        running = [w.trial for w in self.workers if w.busy]
        for w in self.workers:
            stop_worker(w, timeout_s=5)
            w.trial = None
        for rec in running:
            try:
                st.fail_trial(self.study, self.storage, self._fresh(rec.frozen), "interrupted", requeue=True)
            except Exception as err:  # noqa: BLE001 - the next driver's stale check covers it
                _say(f"{self._tag} could not re-enqueue {rec.run_id}: {err}", err=True)
        _say(f"{self._tag} {len(running)} running trial(s) enqueued again; "
             "rerun the same command to resume", err=True)
        return 130

    def shutdown(self) -> None:
        for w in self.workers:
            if w.process.is_alive() and not w.busy:
                w.send("stop")
        for w in self.workers:
            w.process.join(3)
            stop_worker(w, timeout_s=5)

    # --- display --------------------------------------------------------------------------

    def _announce(self) -> None:
        spec, plan = self.spec, self.plan
        verb = "created" if self.created else "joined"
        where = ", ".join(s.name for s in plan.slots)
        _say(f"{self._tag} {verb} study '{plan.study_name}' ({spec.sampler}, {spec.n_planned()} trials, "
             f"objective {spec.objective}) in {st._redact(plan.storage_url)}")
        _say(f"{self._tag} base: {' '.join(plan.trial_overrides) or '(defaults)'}; workers: {where}; "
             f"runs under {plan.output_root / plan.study_name}")

    def _maybe_say_study(self) -> None:
        if time.monotonic() - self._last_line >= self.spec.progress_every_s:
            self._say_study()

    def _say_study(self, final: bool = False) -> None:
        self._last_line = time.monotonic()
        running = [w.trial for w in self.workers if w.busy]
        line = study_line(self.study, self.spec.n_planned())
        if running and not final:
            line += " | " + "; ".join(
                f"{r.run_id} step {r.step} E={r.energy:.4f}" if r.step is not None else f"{r.run_id} starting"
                for r in running)
        _say(f"{self._tag} {line}")


def objective_value(summary: dict, objective: str) -> float | None:
    """``error_mha`` when asked for and known, else ``energy``; None if not finite."""
    value = summary.get("error_mha") if objective == "error_mha" else None
    if value is None:
        value = summary.get("energy")
    value = _finite_or_none(value)
    return value if isinstance(value, (int, float)) else None


def _finite_or_none(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _result_text(summary: dict) -> str:
    e, err = summary.get("energy"), summary.get("energy_stderr")
    parts = []
    if isinstance(e, (int, float)):
        parts.append(f"E={e:.5f}" + (f"±{err:.5f}" if isinstance(err, (int, float)) else "") + " Ha")
    if isinstance(summary.get("error_mha"), (int, float)):
        parts.append(f"err {summary['error_mha']:.2f} mHa")
    if isinstance(summary.get("wall_time_s"), (int, float)):
        parts.append(f"{summary['wall_time_s']:.0f} s")
    return "  ".join(parts)


def _say(msg: str, err: bool = False) -> None:
    print(msg, file=sys.stderr if err else sys.stdout, flush=True)


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
