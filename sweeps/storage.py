"""Optuna storage for sweeps: open it, create or join a study, claim and recover trials.

Only the driver process touches the storage. Several drivers (one per machine) may
share one study on a server database (PostgreSQL); SQLite is for one driver per
study at a time, which :func:`lock_sqlite_study` enforces on the local machine.

Exactly-once over a grid: the driver that *creates* the study enqueues every grid
point as a WAITING trial and then sets the study attribute ``grid_ready``; the
others wait for it. A driver takes work only by moving a WAITING trial to RUNNING
(:func:`claim_waiting`), which the RDB storage does under a row lock
(``SELECT ... FOR UPDATE``), so two drivers never get the same trial.

Growing a grid, and drivers starting together: every change of *which* trials exist (creating
the study, enqueuing missing points, failing a trial and enqueuing its continuation) happens
under the study mutex (:class:`StudyMutex`: a PostgreSQL advisory lock, MySQL ``GET_LOCK``, or a
lock file next to SQLite/journal storages), so two drivers never both enqueue the same new point.
See :mod:`sweeps.grid` for point identity and the reconciliation pass.

Ownership and heartbeats live with the trial (see :mod:`sweeps.ownership`). A RUNNING trial
whose driver is gone is *stale*: it is marked FAIL with a ``fail_reason`` and its parameters are
enqueued again with the same ``run_dir``, so the engine resumes it from its checkpoint.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import signal
import time
import uuid as uuidlib
from pathlib import Path
from typing import Any, Iterator, Mapping

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from ablate.records.errors import ConfigError
from ablate.records.jsonio import write_json_atomic
from ablate.records.redact import redact_text, redact_url
from ablate.records.run_record import trial_dir_name
from ablate.records.safe_paths import check_inside, check_no_password, is_study_name
from ablate.records.study_record import sqlite_path, trial_params

from . import grid as gr
from .space import VERDICT_KEYS

GRID_READY = "grid_ready"
STUDY_FILE = "study.json"          # in a study's trial folder: whose trials these are
FAULT_ENV = "ABLATE_FAULT"         # fault injection for tests: "kill-after-fail"


def check_storage_url(url: str, key: str = "sweep.storage") -> None:
    """Cheap checks on a storage URL before anything is created; ``key`` names it in the error
    line (``sweep.storage``, ``--storage``). A URL with a password is refused (ablate.records.safe_paths)."""
    check_no_password(key, url)
    if "://" not in url:
        return  # a journal file path
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme not in ("sqlite", "postgresql", "postgres", "mysql"):
        raise ConfigError(key, redact_url(url), "sqlite:///FILE, postgresql://..., mysql://... or a journal file path")
    if scheme == "sqlite" and sqlite_path(url) is None:
        raise ConfigError(key, redact_url(url), "sqlite:///PATH with a file path")
    if scheme in ("postgresql", "postgres") and _pg_driver() is None:
        raise ConfigError(key, redact_url(url), "a PostgreSQL driver: pip install 'ablate[postgres]' (psycopg2)")


def _pg_driver() -> str | None:
    """The installed PostgreSQL DB-API driver SQLAlchemy can use: psycopg (3) or psycopg2."""

    for name in ("psycopg2", "psycopg"):
        if importlib.util.find_spec(name) is not None:
            return name
    return None


def engine_url(url: str) -> str:
    """The URL SQLAlchemy gets: ``postgres://`` and a bare ``postgresql://`` name the installed driver.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3; ablate's extra installs psycopg2.
    """
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgres", "postgresql"):
        driver = _pg_driver()
        return f"postgresql+{driver}://{rest}" if driver else f"postgresql://{rest}"
    return url


def open_storage(url: str, connect_timeout_s: int = 10, key: str = "sweep.storage"):
    """Open (and for SQLite create) an Optuna storage; an unreachable server is a ConfigError
    naming ``key``."""

    check_storage_url(url, key)
    if "://" not in url:
        path = Path(url).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))

    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
        if url.startswith(("postgresql", "postgres")):
            engine_kwargs["connect_args"] = {"connect_timeout": connect_timeout_s}
        _check_reachable(url, engine_kwargs, key)

    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(engine_url(url), engine_kwargs=engine_kwargs)
        except sqlalchemy.exc.DBAPIError as err:
            if not _schema_race(err):
                raise ConfigError(key, redact_url(url), f"cannot open storage: {_first_line(err)}") from None
            # Another process is creating the same fresh schema (two drivers starting on an
            # empty database): the tables are there a moment later.
            time.sleep(0.5 * (attempt + 1))
        except Exception as err:  # noqa: BLE001 - any driver error is one line for the user
            raise ConfigError(key, redact_url(url), f"cannot open storage: {_first_line(err)}") from None
    raise ConfigError(key, redact_url(url), "cannot open storage: its schema is still being created")


def _schema_race(err: Exception) -> bool:
    """A duplicate table/row error from two processes creating Optuna's schema at once."""

    text = str(err).lower()
    return isinstance(err, sqlalchemy.exc.IntegrityError) or "already exists" in text or "duplicate" in text


def _check_reachable(url: str, engine_kwargs: dict, key: str = "sweep.storage") -> None:

    try:
        engine = sqlalchemy.create_engine(engine_url(url), **engine_kwargs)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as err:  # noqa: BLE001
        raise ConfigError(key, redact_url(url), f"cannot connect: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    """The first line of a driver error, any URL in it redacted."""
    text = str(getattr(err, "orig", None) or err).strip()
    return redact_text((text.splitlines() or [type(err).__name__])[0])


class StudyLock:
    """An exclusive advisory lock file: one driver per study on one SQLite file."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.close()
            self._fh = None
            return False
        return True

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def lock_sqlite_study(url: str, study_name: str) -> StudyLock | None:
    """Hold ``<db>.<study>.lock`` while driving a study on SQLite; ConfigError if taken."""
    path = sqlite_path(url)
    if path is None:
        return None
    lock = StudyLock(path.with_name(f"{path.name}.{study_name}.lock"))
    if not lock.acquire():
        raise ConfigError("sweep.storage", redact_url(url),
                          f"another driver is running study '{study_name}' on this SQLite file; "
                          "wait for it, or use PostgreSQL (sweep.storage=postgresql://...) for several drivers")
    return lock


class StudyMutex:
    """One lock per study across drivers and machines: ``with mutex: ...``.

    PostgreSQL: a transaction-level advisory lock (``pg_advisory_xact_lock``) on a separate
    connection to the same database; MySQL: ``GET_LOCK``; SQLite and journal files: an ``fcntl``
    lock file next to the database (one machine). Every entry retries connection errors through
    ``retry`` (a :class:`sweeps.retry.Retry`) when given.
    """

    def __init__(self, url: str, study_name: str, retry=None):
        self.url, self.study_name, self.retry = url, study_name, retry
        digest = hashlib.sha256(f"ablate-study:{study_name}".encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)
        self.scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else "journal"
        self._engine = None
        self._depth = 0   # re-entrant within this process (a nested entry is a no-op)

    def _file(self) -> Path:
        path = sqlite_path(self.url) if self.scheme == "sqlite" else Path(self.url).expanduser().resolve()
        return path.with_name(f"{path.name}.{self.study_name}.mutex")

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._depth = 1
        try:
            with self._locked():
                yield
        finally:
            self._depth = 0

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self.scheme in ("postgresql", "postgres", "mysql"):
            call = self.retry.call if self.retry is not None else (lambda f, *a: f(*a))
            conn = call(self._acquire_db)
            try:
                yield
            finally:
                try:
                    if self.scheme == "mysql":
                        conn.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:k)"), {"k": self._mysql_name()})
                    conn.commit()   # ends the transaction: releases pg_advisory_xact_lock
                except Exception:  # noqa: BLE001 - a dropped connection released the lock already
                    pass
                conn.close()
        else:
            path = self._file()
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a+") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)

    def _mysql_name(self) -> str:
        return f"ablate-{self.key & 0xFFFFFFFFFFFF:x}"

    def _acquire_db(self):
        if self._engine is None:
            self._engine = sqlalchemy.create_engine(engine_url(self.url), pool_pre_ping=True, poolclass=sqlalchemy.pool.NullPool)
        conn = self._engine.connect()
        try:
            if self.scheme == "mysql":
                conn.execute(sqlalchemy.text("SELECT GET_LOCK(:k, 600)"), {"k": self._mysql_name()})
            else:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:k)"), {"k": self.key})
        except Exception:
            conn.close()
            raise
        return conn


def open_study(storage, name: str, *, direction: str, sampler, pruner,
               attrs: dict[str, Any], grid: list[dict] | None,
               defaults: Mapping[str, Any] | None = None, mutex: StudyMutex | None = None,
               wait_s: float = 120.0, log=print, directions: tuple[str, ...] | None = None):
    """Create the study (and enqueue its grid) or join an existing one.

    Returns ``(study, created)``. Under the study mutex: create or load the study, give it a
    ``uuid`` user attribute if it has none, and enqueue what :func:`sweeps.grid.missing_work`
    finds missing in the study's grid (:func:`sweeps.grid.study_grid`: the whole grid for a new
    study; new points of a grown grid or of a round of seeds; lost continuations). A joining
    driver first checks that the study was made with the same direction(s), base overrides,
    claims block and rounds of seeds (:func:`join_attrs`). ``directions`` (two or more) makes a
    multi-objective study; else ``direction`` is used.
    """
    lock = mutex() if mutex is not None else contextlib.nullcontext()
    with lock:
        multi = directions is not None and len(directions) > 1
        how = {"directions": list(directions)} if multi else {"direction": direction}
        try:
            study = optuna.create_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner, **how)
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
            created = False
        if created:
            for key, value in attrs.items():
                study.set_user_attr(key, value)
        else:
            _check_compatible(study, name, direction, attrs, directions if multi else None)
            join_attrs(study, attrs)
            if grid is not None and mutex is None:
                _wait_grid_ready(study, wait_s, log)
        if not study.user_attrs.get("uuid"):
            study.set_user_attr("uuid", uuidlib.uuid4().hex)
        full = gr.study_grid(grid, study.user_attrs, defaults) if grid is not None else None
        enqueue_missing(study, full, defaults, log, quiet=created)
        if grid is not None and not study.user_attrs.get(GRID_READY):
            study.set_user_attr(GRID_READY, True)
    return study, created


def study_folder(study, output_root: Path, created: bool, storage_url: str, log=print) -> Path:
    """The folder of the study's trial run directories, marked with the study's identity.

    ``<output_root>/<study>/`` with ``study.json`` (name, uuid, storage without password, study
    id). A *new* study whose folder already holds another study's trials (another uuid in
    study.json, or trial folders without one: a deleted studies.db, another storage) never adopts
    them: its trials go to ``<output_root>/<study>-<uuid8>/`` instead, and the study remembers that
    in its ``trial_folder`` attribute so that every driver uses the same folder. A study that
    existed before study.json (joined, not created) keeps its folder. Call it under the mutex.
    """
    uuid = study.user_attrs["uuid"]
    name = study.user_attrs.get("trial_folder")
    if name is not None and not is_study_name(name):   # read from a shared storage: one plain folder name
        raise ConfigError("trial_folder", name, f"a study attribute naming one folder under {output_root} "
                                                "(the study's name, or name-<uuid8>): this storage was altered")
    if name is None:
        name = study.study_name
        folder = output_root / name
        marker = _read_marker(folder)
        taken = folder.is_dir() and any(p.name != STUDY_FILE for p in folder.iterdir())
        if (marker is not None and marker.get("uuid") != uuid) or (marker is None and created and taken):
            name = f"{study.study_name}-{uuid[:8]}"
            whose = f"study uuid {marker.get('uuid')}" if marker is not None else "no study.json"
            log(f"study '{study.study_name}': {folder} holds another study's trials ({whose}); "
                f"this study's trials go to {output_root / name}")
        study.set_user_attr("trial_folder", name)
    folder = output_root / name
    check_inside("trial_folder", folder, output_root)   # not a symbolic link out of output_root
    if _read_marker(folder) is None:
        folder.mkdir(parents=True, exist_ok=True)
        storage = study._storage
        write_json_atomic(folder / STUDY_FILE, {
            "name": study.study_name, "uuid": uuid, "storage": redact_url(storage_url),
            "study_id": storage.get_study_id_from_name(study.study_name)})
    return folder


def _read_marker(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / STUDY_FILE).read_text())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def enqueue_missing(study, grid: list[dict] | None, defaults: Mapping[str, Any] | None = None,
                    log=print, quiet: bool = False) -> int:
    """Enqueue what the reconciliation pass finds missing (call it under the study mutex)."""
    work = gr.missing_work(study.get_trials(deepcopy=False), grid, defaults)
    new = lost = 0
    for params, user_attrs in work:
        study.enqueue_trial(params, user_attrs=user_attrs)
        if "recovered_from" in user_attrs:
            lost += 1
            log(f"study '{study.study_name}': {trial_dir_name(user_attrs['recovered_from'])} was failed to be "
                "enqueued again but never was; enqueued now")
        else:
            new += 1
    if new and not quiet:
        log(f"study '{study.study_name}': enqueued {new} new grid point(s)")
    return len(work)


def _check_compatible(study, name: str, direction: str, attrs: dict[str, Any],
                      directions: tuple[str, ...] | None = None) -> None:
    have = [d.name.lower() for d in study.directions]
    want = list(directions) if directions else [direction]
    if have != want:
        if len(have) == 1 and len(want) == 1:
            raise ConfigError("sweep.direction", direction, f"'{have[0]}' like the existing study '{name}' (or a new sweep.name)")
        raise ConfigError("sweep.directions", want, f"{have} like the existing study '{name}' (or a new sweep.name)")
    old, new = study.user_attrs.get("trial_overrides"), attrs.get("trial_overrides")
    if old is not None and new is not None and list(old) != list(new):
        raise ConfigError("sweep.name", name,
                          f"a new study name: study '{name}' exists with overrides {list(old)}, "
                          f"this run has {list(new)} (rerun with those, or add sweep.name={name}-2)")
    old_obj = study.user_attrs.get("objective")
    if old_obj is not None and old_obj != attrs.get("objective"):
        raise ConfigError("sweep.objective", attrs.get("objective"), f"'{old_obj}' like the existing study '{name}'")
    old_claims, new_claims = study.user_attrs.get("claims"), attrs.get("claims")
    if isinstance(old_claims, dict) and isinstance(new_claims, dict):
        differ = [k for k in VERDICT_KEYS if k in old_claims and old_claims.get(k) != new_claims.get(k)]
        if differ:
            raise ConfigError(f"sweep.claims.{differ[0]}", new_claims.get(differ[0]),
                              f"{old_claims[differ[0]]!r} like the existing study '{name}' (its claims are judged "
                              "by the block it was created with; or a new sweep.name)")
    old_max = study.user_attrs.get("max_seeds")
    if len(study.user_attrs.get("looks") or []) > 1 and old_max != attrs.get("max_seeds"):
        raise ConfigError("sweep.max_seeds", attrs.get("max_seeds"),
                          f"{old_max!r} like the existing study '{name}' (it has added seeds in rounds planned "
                          "to that maximum; or a new sweep.name)")


def join_attrs(study, attrs: dict[str, Any]) -> None:
    """Give a joined study the run's settings that are still open: the ``claims`` block when the
    study has none (a study created before the block existed), and ``max_seeds`` with the first
    look while no round has added seeds (the study may grow ``seeds``, or start or stop rounds;
    ``looks`` becomes ``[]`` for a run without rounds). :func:`_check_compatible` has refused a
    run whose settings contradict the study's."""
    have = study.user_attrs
    if "claims" not in have and "claims" in attrs:
        study.set_user_attr("claims", attrs["claims"])
    if len(have.get("looks") or []) <= 1 and "max_seeds" in attrs:
        for key, value in (("max_seeds", attrs["max_seeds"]), ("looks", attrs.get("looks", []))):
            if have.get(key, []) != value:
                study.set_user_attr(key, value)


def _wait_grid_ready(study, wait_s: float, log) -> None:
    deadline = time.monotonic() + wait_s
    said = False
    while not study.user_attrs.get(GRID_READY):
        if time.monotonic() > deadline:
            log(f"study '{study.study_name}': grid_ready never set by its creator; filling the grid here")
            return
        if not said:
            log(f"study '{study.study_name}': waiting for its creator to enqueue the grid")
            said = True
        time.sleep(1.0)


def requeue_failed_points(study, grid: list[dict], defaults: Mapping[str, Any] | None = None) -> int:
    """Enqueue grid points whose every trial FAILED (``sweep.retry_failed=true``), in fresh run dirs."""
    states: dict[str, set] = {}
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("duplicate_of"):
            continue
        states.setdefault(gr.trial_key(t, defaults), set()).add(t.state)
    again = [p for p in grid if states.get(gr.point_key(p, defaults)) == {TrialState.FAIL}]
    for params in again:
        study.enqueue_trial(params, user_attrs={"retry_of_failed": True, "point_key": gr.point_key(params, defaults)})
    return len(again)


def trial_id(study, storage, number: int) -> int:
    """The storage's id of a study's trial (Optuna's public storage API; FrozenTrial keeps it private)."""
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def claim_waiting(study, storage, order=None):
    """Move one WAITING trial to RUNNING for this driver; the FrozenTrial or None. ``order``
    (a sort key over FrozenTrials, optional) says which waiting trials to try first."""

    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    for t in (sorted(waiting, key=order) if order is not None else waiting):
        try:
            if storage.set_trial_state_values(trial_id(study, storage, t.number), state=TrialState.RUNNING):
                return t
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def fail_trial(study, storage, trial, reason: str, *, requeue: bool, retries: int | None = None,
               mutex: StudyMutex | None = None) -> bool:
    """Mark a RUNNING trial FAIL with ``fail_reason`` and optionally enqueue its params again.

    The state change is the claim: when two drivers recover the same trial, only the
    one whose FAIL lands first re-enqueues it. Returns False if it was already finished.

    The FAIL and the enqueue are two commits (Optuna has no transaction over both). The
    ``requeued`` attribute is set before the FAIL, so a driver killed between them leaves a
    FAIL trial with ``requeued`` and no continuation, which the reconciliation pass
    (:func:`enqueue_missing`, at every driver start and stale check) enqueues. Both run under
    the study mutex, so that pass never races a driver that is about to enqueue.
    """
    lock = mutex() if mutex is not None else contextlib.nullcontext()
    with lock:
        tid = trial_id(study, storage, trial.number)
        try:
            storage.set_trial_user_attr(tid, "fail_reason", reason)
            if requeue:
                storage.set_trial_user_attr(tid, "requeued", True)
            storage.set_trial_state_values(tid, state=TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
            return False
        if requeue:
            _fault("kill-after-fail")
            attrs = gr.continuation_attrs(trial, retries)
            if "point_key" in trial.user_attrs:
                attrs["point_key"] = trial.user_attrs["point_key"]
            study.enqueue_trial(trial_params(trial), user_attrs=attrs)
    return True


def _fault(point: str) -> None:
    """Fault injection (tests): ``ABLATE_FAULT=<point>`` kills this process (SIGKILL) here."""
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
