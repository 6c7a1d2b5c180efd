"""Riding out a storage outage: every storage call retries connection errors with back-off.

A database restart, a network blip or a fail-over must not stop a study: the driver's storage
calls (Optuna's and ours) go through :class:`RetryingStorage`, which retries a call that failed
with a *connection* error (SQLAlchemy ``OperationalError``, ``InterfaceError``,
``DisconnectionError``, a ``DBAPIError`` that invalidated its connection, and Optuna's
``StorageInternalError`` raised from one of those) with exponential back-off (0.5 s doubling to
10 s) for up to ``sweep.storage_retry_s`` seconds of outage. Meanwhile the driver's loop is
blocked in the call, the worker processes keep training, and a finished trial's result is told
once the storage is back. Past the limit, :class:`StorageUnavailable` (one line) ends the driver
with exit code 1; its trials stay RUNNING and the next driver recovers and resumes them.

Any other error (a constraint, a bad value) is raised at once, as before.

What retrying cannot make atomic: a write whose commit reached the server just before the
connection dropped is sent again. For Optuna's state changes this is harmless (the second one
finds the trial already in that state); a repeated enqueue would make a duplicate WAITING trial,
which the claim step recognises and fails as ``duplicate_of`` (see ``sweeps.trials``).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import sqlalchemy.exc

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 10.0


class StorageUnavailable(Exception):
    """The storage stayed unreachable for ``sweep.storage_retry_s`` seconds."""


def is_connection_error(err: BaseException) -> bool:
    """True when ``err`` (or what caused it) says the connection to the database failed."""
    seen = 0
    while err is not None and seen < 6:
        if isinstance(err, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
                            sqlalchemy.exc.DisconnectionError, sqlalchemy.exc.PendingRollbackError,
                            ConnectionError)):
            return True
        if isinstance(err, sqlalchemy.exc.DBAPIError) and getattr(err, "connection_invalidated", False):
            return True
        err = err.__cause__ or err.__context__
        seen += 1
    return False


def _first_line(err: BaseException) -> str:
    cause = err
    while cause.__cause__ is not None:
        cause = cause.__cause__
    text = str(getattr(cause, "orig", None) or cause).strip()
    return (text.splitlines() or [type(cause).__name__])[0][:200]


class Retry:
    """The retry policy and the outage clock shared by every storage call of one driver."""

    def __init__(self, retry_s: float, say: Callable[..., None], *, sleep=time.sleep,
                 clock=time.monotonic, on_wait: Callable[[], None] | None = None,
                 reset: Callable[[], None] | None = None):
        self.retry_s, self.say, self.sleep, self.clock = float(retry_s), say, sleep, clock
        self.on_wait = on_wait          # called while waiting (e.g. heartbeat files)
        self.reset = reset              # called before a retry (e.g. drop the broken session)
        self.outage_since: float | None = None
        self.last_outage_end: float | None = None
        self.outages = 0

    def call(self, fn: Callable, *args, **kwargs) -> Any:
        delay = BACKOFF_START_S
        while True:
            try:
                result = fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - only connection errors are retried
                if not is_connection_error(err):
                    raise
                self._wait(err, delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            if self.outage_since is not None:
                now = self.clock()
                self.say(f"storage is back after {now - self.outage_since:.0f} s; going on")
                self.outage_since, self.last_outage_end = None, now
            return result

    def _wait(self, err: BaseException, delay: float) -> None:
        now = self.clock()
        if self.outage_since is None:
            self.outage_since = now
            self.outages += 1
            self.say(f"storage unreachable ({_first_line(err)}); retrying for up to {self.retry_s:.0f} s "
                     "while the workers keep training", err=True)
        waited = now - self.outage_since
        if waited >= self.retry_s:
            raise StorageUnavailable(
                f"storage unreachable for {waited:.0f} s (sweep.storage_retry_s={self.retry_s:g}): "
                f"{_first_line(err)}; the running trials keep their checkpoints: rerun the same "
                "command when the storage is back to resume them") from None
        if self.reset is not None:
            try:
                self.reset()
            except Exception:  # noqa: BLE001 - resetting a dead session may fail too
                pass
        if self.on_wait is not None:
            self.on_wait()
        self.sleep(min(delay, max(0.1, self.retry_s - waited)))

    def in_grace(self, period_s: float) -> bool:
        """True during an outage and for ``period_s`` after it ended (other drivers could not
        beat their heartbeats meanwhile, so none of their trials may be judged stale by age)."""
        if self.outage_since is not None:
            return True
        return self.last_outage_end is not None and self.clock() - self.last_outage_end < period_s


class RetryingStorage:
    """An Optuna storage whose every method call goes through :meth:`Retry.call`.

    Optuna accepts any storage object (``optuna.storages.get_storage`` passes non-RDB objects
    through), so studies and trials opened on it retry too.
    """

    def __init__(self, inner, retry: Retry):
        self._inner, self._retry = inner, retry
        if retry.reset is None and hasattr(inner, "remove_session"):
            retry.reset = inner.remove_session

    def __getattr__(self, name: str):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            return self._retry.call(attr, *args, **kwargs)

        call.__name__ = name
        return call

    @property
    def inner(self):
        return self._inner
