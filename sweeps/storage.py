"""Optuna storage for sweeps: open it, create or join a study, claim and recover trials.

Only the driver process touches the storage. Several drivers (one per machine) may
share one study on a server database (PostgreSQL); SQLite is for one driver per
study at a time, which :func:`lock_sqlite_study` enforces on the local machine.

Exactly-once over a grid: the driver that *creates* the study enqueues every grid
point as a WAITING trial and then sets the study attribute ``grid_ready``; the
others wait for it. A driver takes work only by moving a WAITING trial to RUNNING
(:func:`claim_waiting`), which the RDB storage does under a row lock
(``SELECT ... FOR UPDATE``), so two drivers never get the same trial.

Ownership and heartbeats live in trial user attributes: ``driver`` (``host:pid``),
``driver_ticks`` (process start time, to tell a reused pid apart) and ``heartbeat``
(Unix time). A RUNNING trial whose driver is gone is *stale*: it is marked FAIL
with a ``fail_reason`` and its parameters are enqueued again with the same
``run_dir``, so the engine resumes it from its checkpoint.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from ablate.errors import ConfigError
from ablate.records import redact_url, sqlite_path, trial_params

GRID_READY = "grid_ready"


def check_storage_url(url: str) -> None:
    """Cheap checks on a storage URL before anything is created."""
    if "://" not in url:
        return  # a journal file path
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme not in ("sqlite", "postgresql", "postgres", "mysql"):
        raise ConfigError("sweep.storage", url, "sqlite:///FILE, postgresql://..., mysql://... or a journal file path")
    if scheme == "sqlite" and sqlite_path(url) is None:
        raise ConfigError("sweep.storage", url, "sqlite:///PATH with a file path")
    if scheme in ("postgresql", "postgres") and _pg_driver() is None:
        raise ConfigError("sweep.storage", redact_url(url), "a PostgreSQL driver: pip install 'ablate[postgres]' (psycopg2)")


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


def open_storage(url: str, connect_timeout_s: int = 10):
    """Open (and for SQLite create) an Optuna storage; an unreachable server is a ConfigError."""

    check_storage_url(url)
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
        _check_reachable(url, engine_kwargs)

    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(engine_url(url), engine_kwargs=engine_kwargs)
        except sqlalchemy.exc.DBAPIError as err:
            if not _schema_race(err):
                raise ConfigError("sweep.storage", redact_url(url), f"cannot open storage: {_first_line(err)}") from None
            # Another process is creating the same fresh schema (two drivers starting on an
            # empty database): the tables are there a moment later.
            time.sleep(0.5 * (attempt + 1))
        except Exception as err:  # noqa: BLE001 - any driver error is one line for the user
            raise ConfigError("sweep.storage", redact_url(url), f"cannot open storage: {_first_line(err)}") from None
    raise ConfigError("sweep.storage", redact_url(url), "cannot open storage: its schema is still being created")


def _schema_race(err: Exception) -> bool:
    """A duplicate table/row error from two processes creating Optuna's schema at once."""

    text = str(err).lower()
    return isinstance(err, sqlalchemy.exc.IntegrityError) or "already exists" in text or "duplicate" in text


def _check_reachable(url: str, engine_kwargs: dict) -> None:

    try:
        engine = sqlalchemy.create_engine(engine_url(url), **engine_kwargs)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as err:  # noqa: BLE001
        raise ConfigError("sweep.storage", redact_url(url), f"cannot connect: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip()
    return (text.splitlines() or [type(err).__name__])[0]


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
        raise ConfigError("sweep.storage", url,
                          f"another driver is running study '{study_name}' on this SQLite file; "
                          "wait for it, or use PostgreSQL (sweep.storage=postgresql://...) for several drivers")
    return lock


def open_study(storage, name: str, *, direction: str, sampler, pruner,
               attrs: dict[str, Any], grid: list[dict] | None,
               wait_s: float = 120.0, log=print, directions: tuple[str, ...] | None = None):
    """Create the study (and enqueue its grid) or join an existing one.

    Returns ``(study, created)``. A joining driver checks that the study was made
    with the same direction(s) and base overrides, then waits for ``grid_ready``.
    ``directions`` (two or more) makes a multi-objective study; else ``direction`` is used.
    """

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
        for params in grid or []:
            study.enqueue_trial(params)
        study.set_user_attr(GRID_READY, True)
        return study, True

    _check_compatible(study, name, direction, attrs, directions if multi else None)
    if grid is not None:
        _wait_grid_ready(study, wait_s, log)
        _enqueue_missing(study, grid, log)
    return study, False


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


def _enqueue_missing(study, grid: list[dict], log) -> None:
    """Enqueue grid points that no trial of the study has (the grid grew, e.g. more seeds)."""
    have = {_params_key(trial_params(t)) for t in study.get_trials(deepcopy=False)}
    missing = [p for p in grid if _params_key(p) not in have]
    for params in missing:
        study.enqueue_trial(params)
    if missing:
        log(f"study '{study.study_name}': enqueued {len(missing)} new grid point(s)")


def requeue_failed_points(study, grid: list[dict]) -> int:
    """Enqueue grid points whose every trial FAILED (``sweep.retry_failed=true``), in fresh run dirs."""
    states: dict[tuple, set] = {}
    for t in study.get_trials(deepcopy=False):
        key = _params_key(trial_params(t))
        states.setdefault(key, set()).add(t.state)
    again = [p for p in grid if states.get(_params_key(p)) == {TrialState.FAIL}]
    for params in again:
        study.enqueue_trial(params, user_attrs={"retry_of_failed": True})
    return len(again)


def _params_key(params: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


# --- ownership ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    """Who runs a trial: this driver's host, pid and process start time."""

    host: str
    pid: int
    ticks: int | None

    @property
    def ident(self) -> str:
        return f"{self.host}:{self.pid}"

    @classmethod
    def me(cls) -> "Owner":
        pid = os.getpid()
        return cls(socket.gethostname(), pid, process_ticks(pid))


def process_ticks(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (Linux), None if unknown/gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # zombie: dead, not yet reaped
        return None
    return int(fields[19])


def pid_alive(pid: int, ticks: int | None) -> bool:
    """Is the process that had this pid (and start time) still running here?"""
    if Path("/proc").is_dir():
        now = process_ticks(pid)
        return now is not None and (ticks is None or now == ticks)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_reason(trial, me: Owner, stale_after_s: float, now: float | None = None) -> str | None:
    """Why a RUNNING trial of another driver is stale, or None if it looks alive."""
    attrs = trial.user_attrs
    owner = attrs.get("driver")
    if owner == me.ident and attrs.get("driver_ticks") == me.ticks:
        return None
    now = time.time() if now is None else now
    if owner:
        host, _, pid = owner.rpartition(":")
        if host == me.host and pid.isdigit() and not pid_alive(int(pid), attrs.get("driver_ticks")):
            return f"stale: driver {owner} died"
    beat = attrs.get("heartbeat")
    if beat is None and trial.datetime_start is not None:
        beat = trial.datetime_start.timestamp()
    if beat is not None and now - float(beat) > stale_after_s:
        who = f"driver {owner}" if owner else "an unknown driver"
        return f"stale: no heartbeat from {who} for {now - float(beat):.0f} s"
    return None


def trial_id(study, storage, number: int) -> int:
    """The storage's id of a study's trial (Optuna's public storage API; FrozenTrial keeps it private)."""
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def claim_waiting(study, storage):
    """Move one WAITING trial to RUNNING for this driver; the FrozenTrial or None."""

    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(trial_id(study, storage, t.number), state=TrialState.RUNNING):
                return t
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def fail_trial(study, storage, trial, reason: str, *, requeue: bool, retries: int | None = None) -> bool:
    """Mark a RUNNING trial FAIL with ``fail_reason`` and optionally enqueue its params again.

    The state change is the claim: when two drivers recover the same trial, only the
    one whose FAIL lands first re-enqueues it. Returns False if it was already finished.
    """

    tid = trial_id(study, storage, trial.number)
    try:
        storage.set_trial_user_attr(tid, "fail_reason", reason)
        if requeue:
            storage.set_trial_user_attr(tid, "requeued", True)
        storage.set_trial_state_values(tid, state=TrialState.FAIL)
    except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
        return False
    if requeue:
        attrs = {k: trial.user_attrs[k] for k in ("run_dir", "run_id") if k in trial.user_attrs}
        attrs["retries"] = trial.user_attrs.get("retries", 0) if retries is None else retries
        attrs["recovered_from"] = trial.number
        study.enqueue_trial(trial_params(trial), user_attrs=attrs)
    return True
