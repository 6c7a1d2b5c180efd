"""Claiming trials and telling their results: the driver's one writer of trial states.

:class:`TrialBook` owns the study's trials on the driver side. It claims work (a WAITING trial,
or a new TPE/random one), builds the claimed trial's config, and tells Optuna how each trial
ended (COMPLETE with its objective, PRUNED, or FAIL with a ``fail_reason``), copying the
summary's facts into the trial's user attributes so a study can be read from its storage alone.
It counts this driver's failures and says when ``sweep.max_failures`` stops new work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import TrialState

from ablate.config.experiment import Experiment
from ablate.records.errors import ConfigError
from ablate.records.run_record import RunSummary, trial_dir_name
from ablate.records.safe_paths import is_inside
from ablate.records.study_record import TrialRow, trial_attrs, trial_params

from . import grid as gr
from . import ownership
from . import storage as st
from .plan import StudyPlan, trial_config
from .status import format_params


@dataclass
class Running:
    """The driver's record of one trial in a worker, and where it is (phase, step of total)."""

    trial: Any                  # optuna.Trial
    frozen: Any                 # FrozenTrial at claim time (params, attrs)
    run_id: str
    run_dir: Path
    params: dict
    retries: int
    started: float = field(default_factory=time.monotonic)
    phase: str = "starting"
    step: int | None = None
    total: int | None = None
    energy: float | None = None

    @property
    def number(self) -> int:
        return self.frozen.number


class TrialBook:
    """Claims trials, builds their configs, and tells their results (see the module docstring)."""

    def __init__(self, plan: StudyPlan, study, storage, me: ownership.Owner, say: Callable[..., None],
                 mutex: st.StudyMutex | None = None, folder: Path | None = None):
        self.plan, self.spec, self.study, self.storage = plan, plan.spec, study, storage
        self.me, self.say = me, say
        self.mutex = mutex
        self.folder = Path(folder) if folder is not None else plan.output_root / plan.study_name
        self.uuid = study.user_attrs.get("uuid")
        # the study's grid: the sweep's points and those its rounds of seeds grew (sweeps.rounds)
        self.grid = (gr.study_grid(plan.spec.grid_points(), study.user_attrs, plan.defaults)
                     if plan.spec.sampler == "grid" else None)
        self.axes = {d.key: list(d.values) for d in plan.spec.dimensions if d.kind == "choice"}
        self.tag = f"[{plan.study_name}]"
        self.failures = 0
        self.stopping: str | None = None

    def locked(self):
        """The study mutex (a no-op without one)."""
        import contextlib

        return self.mutex() if self.mutex is not None else contextlib.nullcontext()

    def reconcile(self) -> int:
        """Enqueue missing grid points and lost continuations (under the study mutex)."""
        with self.locked():
            return st.enqueue_missing(self.study, self.grid, self.plan.defaults, self.say)

    # --- what is left -------------------------------------------------------------------------

    def counted(self, trials=None) -> int:
        """Trials that count toward a TPE/random study's ``n_trials`` (not the failed ones)."""
        trials = self.study.get_trials(deepcopy=False) if trials is None else trials
        keep = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
        return sum(t.state in keep for t in trials)

    def work_left(self) -> tuple[bool, bool]:
        """(anything to claim, any trial RUNNING anywhere) from the storage."""
        trials = self.study.get_trials(deepcopy=False)
        waiting = any(t.state == TrialState.WAITING for t in trials)
        if self.spec.sampler != "grid" and self.counted(trials) < self.spec.n_planned():
            waiting = True
        return waiting, any(t.state == TrialState.RUNNING for t in trials)

    # --- claiming --------------------------------------------------------------------------

    def claim(self, order=None):
        """A FrozenTrial now RUNNING for us, or None when there is nothing to run; ``order`` (a
        sort key over waiting FrozenTrials) picks among waiting grid points.

        A grid trial whose point another trial already holds (COMPLETE, PRUNED or RUNNING: a
        duplicate enqueue, e.g. by a driver before ablate checked points) is failed as
        ``duplicate_of`` and the next one claimed; claim and check run under the study mutex.
        """
        if self.spec.sampler == "grid":
            while True:
                with self.locked():
                    frozen = st.claim_waiting(self.study, self.storage, order)
                    if frozen is None:
                        return None
                    dup = gr.duplicate_of(frozen, self.study.get_trials(deepcopy=False), self.plan.defaults)
                    if dup is None:
                        return frozen
                    tid = st.trial_id(self.study, self.storage, frozen.number)
                    self.storage.set_trial_user_attr(tid, "duplicate_of", dup.number)
                    self.storage.set_trial_user_attr(tid, "fail_reason", f"duplicate of {trial_dir_name(dup.number)} ({dup.state.name})")
                    self.storage.set_trial_state_values(tid, state=TrialState.FAIL)
                self.say(f"{self.tag} {trial_dir_name(frozen.number)} skipped: its point is {trial_dir_name(dup.number)}'s ({dup.state.name})")
        frozen = st.claim_waiting(self.study, self.storage, order)
        if frozen is not None:
            return frozen
        if self.counted() >= self.spec.n_planned():
            return None
        trial = self.study.ask()
        return self.study.get_trials(deepcopy=False)[trial.number] if trial is not None else None

    def start(self, frozen, slot_name: str, device_count: int) -> tuple[Running, Experiment] | None:
        """Suggest the claimed trial's values, mark it ours, and compose and validate its run.

        Returns (record, the trial's validated `Experiment`), or None when the trial failed at
        once (bad parameters or a config the engine refuses: that trial fails, not the study).
        """
        tid = st.trial_id(self.study, self.storage, frozen.number)
        trial = optuna.Trial(self.study, tid)
        try:
            if self.grid is not None:   # the point is the trial's fixed params; Optuna's are a mirror
                params = trial_params(frozen)
                gr.mirror_params(self.storage, tid, params, self.axes)
            else:
                params = {d.key: d.suggest(trial) for d in self.spec.dimensions}
        except (ValueError, TypeError) as err:
            self.failed(trial, frozen, f"bad parameters: {err}")
            return None
        attrs = frozen.user_attrs
        run_id = attrs.get("run_id") or trial_dir_name(frozen.number)
        run_dir = Path(attrs.get("run_dir") or self.folder / run_id)
        outside = self.outside_study(run_dir)
        if outside:   # a shared storage names the folder: never a worker's files (or pickles) elsewhere
            self.failed(trial, frozen, outside)
            return None
        for key, value in {"run_id": run_id, "run_dir": str(run_dir), "driver": self.me.ident,
                           "driver_ticks": self.me.ticks, "heartbeat": time.time(),
                           "worker": slot_name}.items():
            trial.set_user_attr(key, value)
        rec = Running(trial, frozen, run_id, run_dir, params, int(attrs.get("retries", 0)))
        try:
            experiment = trial_config(self.plan.trial_overrides, params, study=self.plan.study_name,
                                      number=frozen.number, run_dir=run_dir, logger=self._logger(run_id, params),
                                      device_count=device_count, study_uuid=self.uuid)
        except Exception as err:  # noqa: BLE001 - a config the engine refuses fails this trial only
            self.failed(trial, frozen, str(err) if isinstance(err, ConfigError)
                        else f"config: {type(err).__name__}: {err}", rec=rec)
            return None
        return rec, experiment

    def outside_study(self, run_dir: Path) -> str | None:
        """Why a trial's run directory (from the storage: ``run_dir``/``run_id`` attributes anyone
        who reaches the database can set) is refused, or None when it is a folder below the
        study's own folder under output_root (symbolic links followed)."""
        if run_dir.resolve() != self.folder.resolve() and is_inside(run_dir, self.folder):
            return None
        return (f"run_dir {str(run_dir)!r} from the storage is outside the study's folder "
                f"{self.folder.resolve()}: refused (nothing was run)")

    def _logger(self, run_id: str, params: dict) -> dict:
        """W&B settings of a trial: grouped by study; tagged with its system (a swept system
        wins over the base one), the sweep and the scale."""
        plan = self.plan
        system = str(params.get("system", plan.system))
        tags = [system, plan.sweep_name] + ([plan.scale] if plan.scale else [])
        return {"group": plan.study_name, "job_type": plan.sweep_name,
                "name": f"{plan.study_name}-{run_id}", "tags": tags}

    # --- telling -----------------------------------------------------------------------------

    def report(self, rec: Running, step: int, energy: float) -> bool:
        """Pass an intermediate energy to the pruner; True when the trial should be pruned."""
        try:
            rec.trial.report(energy, step)
            return rec.trial.should_prune()
        except RuntimeError:
            return False  # finished elsewhere (e.g. marked stale by another driver)

    def finished(self, rec: Running, summary: RunSummary) -> None:
        """Tell a trial that returned a summary (completed or pruned)."""
        self._result_attrs(rec.trial, summary, rec)
        if summary.status == "pruned":
            self._tell(rec.trial, state=TrialState.PRUNED)
            self.say(f"{self.tag} {rec.run_id} pruned   {format_params(rec.params)}  "
                     f"({summary.reason or 'pruner'})")
            return
        names = self.spec.all_objectives
        values = [summary.objective(name) for name in names]
        missing = [name for name, v in zip(names, values) if v is None]
        if summary.status != "completed" or missing:
            reason = summary.reason or f"status {summary.status!r} without a finite {', '.join(missing or names)}"
            self.failed(rec.trial, rec.frozen, reason, summary=summary, rec=rec)
            return
        self._tell(rec.trial, values=values if len(values) > 1 else values[0])
        self.say(f"{self.tag} {rec.run_id} complete {format_params(rec.params)}  {summary.result_text()}")

    def failed(self, trial, frozen, reason: str, *, summary: RunSummary | None = None,
               rec: Running | None = None) -> None:
        """Tell a trial FAIL with its reason; counts toward ``sweep.max_failures``."""
        if summary is not None:
            self._result_attrs(trial, summary, rec)
        self.set_attr(trial, "fail_reason", reason)
        self._tell(trial, state=TrialState.FAIL)
        run_id = rec.run_id if rec else trial_dir_name(frozen.number)
        self.say(f"{self.tag} {run_id} FAILED   {format_params(rec.params if rec else frozen.params)}  {reason}")
        self.failures += 1
        if self.failures >= self.spec.max_failures and not self.stopping:
            self.stopping = f"{self.failures} failed trials (sweep.max_failures={self.spec.max_failures})"
            self.say(f"{self.tag} {self.stopping}: no new trials; waiting for the running ones", err=True)

    def requeue(self, rec: Running, reason: str, retries: int | None = None) -> bool:
        """FAIL a trial of ours and enqueue its point again (same run directory: it resumes)."""
        return st.fail_trial(self.study, self.storage, self.fresh(rec.number), reason, requeue=True,
                             retries=retries, mutex=self.mutex)

    def fresh(self, number: int):
        """The trial's current FrozenTrial from the storage."""
        return self.study.get_trials(deepcopy=False)[number]

    def _result_attrs(self, trial, summary: RunSummary, rec: Running | None) -> None:
        for key, value in trial_attrs(summary).items():
            self.set_attr(trial, key, value)
        if rec is not None:
            self.set_attr(trial, "run_dir", str(rec.run_dir))

    def set_attr(self, trial, key: str, value) -> None:
        try:
            trial.set_user_attr(key, value)
        except RuntimeError:
            pass  # already finished (another driver recovered it)

    def _tell(self, trial, **kwargs) -> None:
        try:
            self.study.tell(trial, **kwargs)
        except RuntimeError as err:  # already finished (another driver marked it stale)
            self.say(f"{self.tag} trial {trial.number}: result kept on disk only ({err})", err=True)

    def rows(self) -> list[TrialRow]:
        return [TrialRow.from_trial(t) for t in self.study.get_trials(deepcopy=False)]
