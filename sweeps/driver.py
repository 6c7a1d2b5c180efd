"""The study driver: ``python -m ablate +sweep=NAME`` ends up in :func:`run_sweep`.

The driver owns the Optuna storage. It creates or joins the study, recovers stale trials,
then loops: give every idle worker a claimed trial, handle the workers' messages (progress,
results, deaths), beat and recover, and print the study line. The parts it composes each own
one thing:

- :mod:`sweeps.trials` (``TrialBook``): claiming trials and telling their results;
- :mod:`sweeps.pool` (``WorkerPool``): the worker processes and their pipes;
- :mod:`sweeps.recovery` (``Recovery``): heartbeats and stale-trial recovery;
- :mod:`sweeps.display` (``Display``): what the study prints;
- :mod:`sweeps.rounds` (``Rounds``): a study's rounds of seeds, decided by the step the command
  line hands the driver (``decide``; the driver never imports the analysis).

Workers run in separate processes (see :mod:`sweeps.workers`); a crash, OOM or NaN there never
takes the driver down.

Every storage call retries connection errors for up to ``sweep.storage_retry_s`` seconds
(:mod:`sweeps.retry`), so a database restart does not stop the study.

Exit codes: 0 when the study is complete (some trials may have failed), 1 when it stopped
early (``sweep.max_failures``, workers that cannot start, the storage unreachable for longer
than ``sweep.storage_retry_s``), 2 for a bad sweep or storage (raised as ``ConfigError``
before anything is written), 130 on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import math
import signal
import warnings
from pathlib import Path

import optuna

from ablate.records.run_record import RunSummary
from ablate.records.study_record import trial_params

from . import ownership
from . import storage as st
from .display import Display, say
from .messages import Done, Failed, Prune, Ready, RunTrial, TrialProgress
from .plan import StudyPlan, build_plan, compose
from .pool import WorkerPool
from .recovery import Recovery
from .retry import Retry, RetryingStorage, StorageUnavailable
from .rounds import Decide, Rounds
from .status import format_params
from .study_log import Analyse, StudyAnalysis, log_study
from .submit import submit
from .trials import Running, TrialBook
from .workers import Worker, describe_exit

MAX_WORKER_RETRIES = 1      # a trial whose worker died is retried this many times
MAX_STARTUP_DEATHS = 3      # workers dying before they are ready: give up after this many in a row
STOP_GRACE_S = 20           # on SIGTERM, workers get this long to checkpoint (Slurm's KillWait is 30 s)


def run_sweep(cfg, task_overrides: list[str], analyse: Analyse | None = None, decide: Decide | None = None) -> int:
    """Run (or resume, or join) the study described by ``cfg.sweep``, or with
    ``sweep.launcher=slurm`` submit its drivers (:mod:`sweeps.submit`); returns the exit code.
    See :func:`run_plan`."""
    return run_plan(build_plan(cfg, list(task_overrides)), task_overrides, analyse, decide)


def run_plan(plan: StudyPlan, task_overrides: list[str], analyse: Analyse | None = None,
             decide: Decide | None = None) -> int:
    """Run (or resume, or join) the study of a checked ``plan`` (or submit its drivers).

    ``decide`` (the command line passes the analysis's) judges the claims after each round of a
    study with rounds of seeds (:mod:`sweeps.rounds`); without it a study runs its first round
    only. ``analyse`` (the command line passes the analysis's) writes the finished study's report
    and draws its figure, whatever the logger; the W&B study log
    (:func:`sweeps.study_log.log_study`) uploads what it made."""
    if plan.spec.launcher == "slurm":
        return submit(plan, list(task_overrides))
    _quiet_optuna()
    retry = Retry(plan.spec.storage_retry_s, say)
    storage = RetryingStorage(_cached(st.open_storage(plan.storage_url)), retry)
    lock = st.lock_sqlite_study(plan.storage_url, plan.study_name)
    mutex = st.StudyMutex(plan.storage_url, plan.study_name, retry)
    driver = None
    try:
        study, created = st.open_study(
            storage, plan.study_name, direction=plan.spec.direction,
            sampler=make_sampler(plan.spec), pruner=make_pruner(plan.spec, planned_iterations(plan)),
            attrs=plan.study_attrs(),
            grid=plan.spec.grid_points() if plan.spec.sampler == "grid" else None,
            defaults=plan.defaults, mutex=mutex, log=say,
            directions=plan.spec.all_directions if plan.spec.multi_objective else None)
        with mutex():
            folder = st.study_folder(study, plan.output_root, created, plan.storage_url, log=say)
        rounds = Rounds(plan, study, decide, say) if decide is not None and plan.spec.rounds else None
        driver = Driver(plan, study, storage, created=created, mutex=mutex, folder=folder, retry=retry,
                        rounds=rounds)
        code = driver.run()
    except StorageUnavailable as err:
        say(f"[{plan.study_name}] stopped: {err}", err=True)
        return 1
    finally:
        if lock is not None:
            lock.release()
    figure = None
    if code == 0:
        figure = study_log_figure(plan, finished_study(plan, analyse))
    if code in (0, 1) and retry.outage_since is None:   # no closing table from an unreachable storage
        driver.display.closing(figure)
    return code


def finished_study(plan: StudyPlan, analyse: Analyse | None) -> StudyAnalysis:
    """What ``analyse`` makes of the finished study (its report and figure), or nothing."""
    if analyse is None:
        return StudyAnalysis()
    try:
        return analyse(plan.study_name, st.engine_url(plan.storage_url), str(plan.output_root))
    except Exception as err:  # noqa: BLE001 - never fail a finished study for its report
        say(f"note: the study's report was not written ({type(err).__name__}: {err})")
        return StudyAnalysis()


def _cached(storage):
    """Optuna's trial cache over an RDB storage (what ``optuna.create_study`` would add itself)."""
    cached = getattr(optuna.storages, "_CachedStorage", None)
    if cached is not None and isinstance(storage, optuna.storages.RDBStorage):
        return cached(storage)
    return storage


def study_log_figure(plan: StudyPlan, made: StudyAnalysis | None = None) -> Path | None:
    """Logs the finished study to W&B (``sweeps.study_log``) with what the analysis ``made``; the
    sweep figure's path if drawn."""
    try:
        out = log_study(plan.study_name, st.engine_url(plan.storage_url), str(plan.output_root),
                        analysis=made)
    except Exception as err:  # noqa: BLE001 - never fail a finished study for its W&B log
        say(f"note: W&B study log skipped ({type(err).__name__}: {err})")
        return None
    figure = out / "sweep_figure.png" if out is not None else None
    return figure if figure is not None and figure.is_file() else None


def make_sampler(spec):
    """The Optuna sampler: grid points are enqueued, so grid studies never consult it.

    TPE and NSGA-II handle several objectives themselves (TPE becomes multi-objective TPE);
    NSGA-II's generation is a quarter of the planned trials (2 to 50).
    """
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=spec.sampler_seed,
                                             population_size=max(2, min(50, spec.n_planned() // 4)))
    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=spec.sampler_seed,
                                          n_startup_trials=min(10, max(1, spec.n_planned() // 4)))
    return optuna.samplers.RandomSampler(seed=spec.sampler_seed)


def make_pruner(spec, max_steps: int):
    """MedianPruner or HyperbandPruner over training steps, or none."""
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.prune_startup_trials,
                                           n_warmup_steps=spec.prune_warmup_steps)
    if spec.pruner == "hyperband":
        low = max(spec.report_every, spec.prune_warmup_steps)
        return optuna.pruners.HyperbandPruner(min_resource=low, max_resource=max(max_steps, low + 1),
                                              reduction_factor=3)
    return optuna.pruners.NopPruner()


def planned_iterations(plan: StudyPlan) -> int:
    """Training iterations of a trial under the study's base overrides (the pruner's budget)."""
    return int(compose(list(plan.trial_overrides)).optim.iterations)


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM reached the driver. A BaseException, like KeyboardInterrupt: raised by
    the signal handler wherever the driver is (composing a trial's config, a storage call), it
    must not be taken for that step's failure by an ``except Exception``."""


class Driver:
    """Ask, dispatch, report, tell and recover until the study is done (see the module docstring)."""

    def __init__(self, plan: StudyPlan, study, storage, created: bool = True, mutex=None, folder=None,
                 retry: Retry | None = None, rounds: Rounds | None = None):
        self.plan, self.spec, self.study = plan, plan.spec, study
        self.created = created
        self.book = TrialBook(plan, study, storage, ownership.Owner.me(), say, mutex=mutex, folder=folder)
        self.pool = WorkerPool(plan.slots, plan.compilation_cache)
        self.recovery = Recovery(self.book, self.spec.stale_after_s, say, retry=retry)
        if retry is not None:   # while a storage call waits, our trials' heartbeat files go on
            retry.on_wait = self.recovery.beat_files
        self.display = Display(plan, study, self.spec.progress_every_s, n_planned=self.n_planned)
        self.rounds = rounds
        self.pool_started = False
        self.startup_deaths = 0

    @property
    def n_planned(self) -> int:
        """Trials the study should end with: its grid (rounds of seeds included) or n_trials."""
        return len(self.book.grid) if self.book.grid is not None else self.spec.n_planned()

    @property
    def running(self) -> list[Running]:
        return [w.trial for w in self.pool.busy]

    @property
    def stopping(self) -> str | None:
        return self.book.stopping

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> int:
        self.display.announce(self.created)
        self.recovery.recover_stale()
        if self.spec.retry_failed and self.spec.sampler == "grid":
            with self.book.locked():
                n = st.requeue_failed_points(self.study, self.book.grid, self.plan.defaults)
            say(f"{self.book.tag} sweep.retry_failed: {n} failed grid point(s) enqueued again")
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in old:
            signal.signal(s, self._on_signal)
        try:
            while True:
                self.fill_workers()
                if self.done():
                    if not self.next_round():
                        break
                    continue
                self.pump(timeout=0.5)
                self.recovery.tick(self.running)
                self.display.maybe_line(self.book.rows, self.running)
        except Interrupted:
            return self.interrupt()
        except StorageUnavailable as err:
            say(f"{self.book.tag} stopped: {err}", err=True)
            return 1   # our trials stay RUNNING: the next driver recovers and resumes them
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self.pool.stop_all()
        self.display.line(self.book.rows(), [], final=True)
        if self.stopping:
            say(f"{self.book.tag} stopped early: {self.stopping}", err=True)
            return 1
        return 0

    def _on_signal(self, signum, frame):
        for s in (signal.SIGINT, signal.SIGTERM):   # once: a scheduler's signal may come twice
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signal.Signals(signum).name)

    def fill_workers(self) -> None:
        """Give a trial to every idle, ready worker while there is work. The workers start with
        the first work (a rerun of a finished study starts none)."""
        if self.stopping:
            return
        if not self.pool_started:
            if not self.book.work_left()[0]:
                return
            self.pool.start()
            self.pool_started = True
        for w in self.pool.idle:
            if not self.dispatch(w):
                return

    def done(self) -> bool:
        """No trial of ours runs, nothing is left to claim, and no other driver runs one."""
        if self.pool.busy:
            return False
        if self.stopping:
            return True
        waiting, running_elsewhere = self.book.work_left()
        if waiting:
            return False
        if running_elsewhere:
            self.display.maybe_line(self.book.rows, [])
            return False
        return True

    def next_round(self) -> bool:
        """With rounds of seeds (and not stopping): whether a next round (or another driver's)
        left trials to run (:meth:`sweeps.rounds.Rounds.next`)."""
        if self.rounds is None or self.stopping:
            return False
        more = self.rounds.next(self.book)
        self.display.n_planned = self.n_planned
        return more

    def dispatch(self, worker: Worker) -> bool:
        """Claim a trial and send it to ``worker``; False when there is nothing to claim."""
        frozen = self.book.claim(self.shape_order(worker))
        if frozen is None:
            return False
        started = self.book.start(frozen, worker.slot.name, worker.slot.device_count)
        if started is None:
            return True  # it failed at once; claim the next
        rec, experiment = started
        worker.trial = rec
        worker.last_shape = shape_of(trial_params(frozen))
        worker.trials_run += 1
        if not worker.send(RunTrial(frozen.number, str(rec.run_dir), experiment, self.spec.report_every)):
            return True  # the pump sees the dead worker and recovers the trial
        resumed = " (resuming)" if frozen.user_attrs.get("recovered_from") is not None else ""
        say(f"{self.book.tag} {rec.run_id} started  {format_params(rec.params)}  on {worker.slot.name}{resumed}")
        return True

    def shape_order(self, worker: Worker):
        """Which waiting grid point a worker should take first (`claim_rank`)."""
        running = {shape_of(trial_params(w.trial.frozen)) for w in self.pool.busy if w is not worker}
        last = getattr(worker, "last_shape", None)
        return lambda frozen: claim_rank(trial_params(frozen), last, running)

    # --- messages from workers -------------------------------------------------------------

    def pump(self, timeout: float) -> None:
        """Wait for worker messages or deaths and handle them."""
        messages, dead = self.pool.poll(timeout)
        for w, msg in messages:
            self.handle(w, msg)
        for w in dead:
            if w in self.pool.workers:
                self.replace_dead(w)

    def handle(self, w: Worker, msg) -> None:
        if isinstance(msg, Ready):
            w.ready = True
            self.startup_deaths = 0
            return
        rec: Running | None = w.trial
        if rec is None or getattr(msg, "number", None) != rec.number:
            return  # a late message about a trial we already gave up on
        if isinstance(msg, TrialProgress):
            rec.phase, rec.step, rec.total = msg.phase, msg.step, msg.total
            if msg.energy is not None:
                rec.energy = msg.energy
            if msg.report and self.spec.pruner != "none" and msg.energy is not None \
                    and math.isfinite(msg.energy) and self.book.report(rec, msg.step, msg.energy):
                w.send(Prune(rec.number))
        elif isinstance(msg, Done):
            w.trial = None
            self.book.finished(rec, RunSummary.from_dict(msg.summary))
        elif isinstance(msg, Failed):
            w.trial = None
            summary = RunSummary.from_dict(msg.summary) if msg.summary else None
            self.book.failed(rec.trial, rec.frozen, msg.reason, summary=summary, rec=rec)

    # --- dead workers, interrupts ----------------------------------------------------------

    def replace_dead(self, w: Worker) -> None:
        """Recover the trial of a dead worker (retry once) and start a fresh worker in its slot."""
        for msg in self.pool.last_words(w):  # it may have sent its result just before it died
            self.handle(w, msg)
        how = describe_exit(w.process.exitcode)
        rec, w.trial = w.trial, None
        if rec is not None:
            reason = f"worker {w.slot.name} died ({how})"
            if rec.retries < MAX_WORKER_RETRIES and self.book.requeue(rec, reason + "; retrying",
                                                                      retries=rec.retries + 1):
                say(f"{self.book.tag} {rec.run_id} FAILED   {format_params(rec.params)}  {reason}; enqueued again")
            else:
                self.book.failed(rec.trial, rec.frozen, reason, rec=rec)
        if not w.ready:
            self.startup_deaths += 1
        if self.startup_deaths >= MAX_STARTUP_DEATHS:
            self.pool.replace(w, restart=False)
            self.book.stopping = self.stopping or f"workers die before they are ready ({how}); see the messages above"
            return
        self.pool.replace(w, restart=not self.stopping or bool(self.pool.busy))

    def interrupt(self) -> int:
        """Ctrl-C: stop workers (each checkpoints its trial on the SIGTERM), fail our running
        trials as interrupted and enqueue them again. Further signals are ignored meanwhile."""
        say(f"{self.book.tag} interrupted: stopping workers", err=True)
        running = self.running
        self.pool.stop_all(graceful=False, timeout_s=STOP_GRACE_S)
        for w in self.pool.workers:
            w.trial = None
        for rec in running:
            try:
                self.book.requeue(rec, "interrupted")
            except Exception as err:  # noqa: BLE001 - the next driver's stale check covers it
                say(f"{self.book.tag} could not re-enqueue {rec.run_id}: {err}", err=True)
        say(f"{self.book.tag} {len(running)} running trial(s) enqueued again; "
            "rerun the same command to resume", err=True)
        return 130


# Config keys whose values scale a trial's cost about in proportion (network size, walkers,
# iterations, MCMC steps): `size_guess` multiplies those a point sets.
SIZE_KEYS = ("network.width", "network.depth", "network.pairwise_width", "network.determinants",
             "network.num_layers", "network.num_heads", "network.heads_dim", "batch_size",
             "optim.iterations", "evaluation.iterations", "mcmc.steps", "pretrain.iterations")


def size_guess(params: dict) -> float:
    """A rough relative cost of a grid point: the product of its numeric `SIZE_KEYS` values
    (1 when it sets none). Only for ordering: bigger points first."""
    out = 1.0
    for key in SIZE_KEYS:
        value = params.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            out *= float(value)
    return out


def claim_rank(params: dict, last_shape: str | None, running: set) -> tuple:
    """Sort key of a waiting grid point for a free worker, smallest first:
    1. the shape the worker ran last (its engine is built: nothing is traced or compiled again);
    2. a shape no other worker is running (two workers compiling the same programs at once
       waste one of them);
    3. the rest;
    within each group the bigger points first (`size_guess`: the longest trials should not
    start last while the other workers idle), then trial order (the sort is stable).
    A shape is a point less its seed."""
    shape = shape_of(params)
    group = 0 if last_shape is not None and shape == last_shape else (1 if shape not in running else 2)
    return group, -size_guess(params)


def shape_of(params: dict) -> str:
    """A trial's point less its seed: trials of one shape share compiled programs."""
    return repr(sorted((k, repr(v)) for k, v in params.items() if k != "seed"))


def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
