"""Heartbeats and stale-trial recovery.

A driver beats the ``heartbeat`` user attribute of each trial it runs every
``stale_after_s / 5`` seconds (2 to 60 s) and, every ``stale_after_s / 2`` seconds, fails and
enqueues again the RUNNING trials whose driver is gone (:func:`sweeps.storage.stale_reason`):
a driver on this host that died, or any driver silent for ``stale_after_s``. The enqueued
point keeps its run directory, so the engine resumes it from its checkpoint.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

from optuna.trial import TrialState

from . import storage as st
from .trials import Running, TrialBook


class Recovery:
    """Keeps our trials visibly alive and takes over other drivers' dead ones."""

    def __init__(self, book: TrialBook, stale_after_s: float, say: Callable[..., None]):
        self.book, self.stale_after_s, self.say = book, stale_after_s, say
        self.heartbeat_every = max(2.0, min(60.0, stale_after_s / 5))
        self.stale_every = max(2.0, min(60.0, stale_after_s / 2))
        self._last_beat = self._last_stale = time.monotonic()

    def tick(self, running: Iterable[Running]) -> None:
        """Heartbeats and the stale check, each when due."""
        now = time.monotonic()
        if now - self._last_beat >= self.heartbeat_every:
            self._last_beat = now
            for rec in running:
                self.book.set_attr(rec.trial, "heartbeat", time.time())
        if now - self._last_stale >= self.stale_every:
            self.recover_stale()

    def recover_stale(self) -> None:
        """Fail and re-enqueue RUNNING trials whose driver is gone."""
        self._last_stale = time.monotonic()
        book = self.book
        for t in book.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            reason = st.stale_reason(t, book.me, self.stale_after_s)
            if reason and st.fail_trial(book.study, book.storage, t, reason, requeue=True):
                self.say(f"{book.tag} t{t.number:04d} {reason}; enqueued again to resume "
                         f"{t.user_attrs.get('run_dir', '')}")
