"""Heartbeats, stale-trial recovery and the reconciliation pass.

A driver beats the heartbeat of each trial it runs every ``stale_after_s / 10`` seconds (1 to
30 s): the trial's ``heartbeat`` user attribute and ``heartbeat.json`` in its run directory
(the file also while the storage is unreachable). Every ``stale_after_s / 4`` seconds (2 to
60 s) it fails and enqueues again the RUNNING trials whose driver is gone
(:func:`sweeps.ownership.stale_reason`): a driver on this host that died, or any driver whose
newest heartbeat is older than ``stale_after_s``. So a trial of a dead driver on another host
is recovered between ``stale_after_s`` and ``1.25 * stale_after_s`` after its last beat. During
a storage outage and for ``stale_after_s`` after it, only the dead-process rule applies (no
driver could beat meanwhile). The same tick runs the reconciliation pass
(:meth:`sweeps.trials.TrialBook.reconcile`). The enqueued point keeps its run directory, so the
engine resumes it from its checkpoint.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

from optuna.trial import TrialState

from ablate.records.run_record import trial_dir_name

from . import ownership
from . import storage as st
from .trials import Running, TrialBook


class Recovery:
    """Keeps our trials visibly alive and takes over other drivers' dead ones."""

    def __init__(self, book: TrialBook, stale_after_s: float, say: Callable[..., None], retry=None):
        self.book, self.stale_after_s, self.say, self.retry = book, stale_after_s, say, retry
        self.heartbeat_every = max(1.0, min(30.0, stale_after_s / 10))
        self.stale_every = max(2.0, min(60.0, stale_after_s / 4))
        self._last_beat = self._last_stale = time.monotonic()
        self._last_file_beat = 0.0
        self.running: list[Running] = []

    def tick(self, running: Iterable[Running]) -> None:
        """Heartbeats and the stale check, each when due."""
        self.running = list(running)
        now = time.monotonic()
        if now - self._last_beat >= self.heartbeat_every:
            self._last_beat = now
            self.beat_files()
            for rec in self.running:
                self.book.set_attr(rec.trial, "heartbeat", time.time())
        if now - self._last_stale >= self.stale_every:
            self.recover_stale()

    def beat_files(self) -> None:
        """Heartbeat files of our running trials (also called while a storage call waits)."""
        now = time.monotonic()
        if now - self._last_file_beat < self.heartbeat_every:
            return
        self._last_file_beat = now
        for rec in self.running:
            ownership.beat_file(rec.run_dir, self.book.me.ident)

    def recover_stale(self) -> None:
        """Fail and re-enqueue RUNNING trials whose driver is gone; enqueue what is missing."""
        self._last_stale = time.monotonic()
        book = self.book
        by_age = self.retry is None or not self.retry.in_grace(self.stale_after_s)
        for t in book.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            reason = ownership.stale_reason(t, book.me, self.stale_after_s, by_age=by_age)
            if reason and st.fail_trial(book.study, book.storage, t, reason, requeue=True, mutex=book.mutex):
                self.say(f"{book.tag} {trial_dir_name(t.number)} {reason}; enqueued again to resume "
                         f"{t.user_attrs.get('run_dir', '')}")
        book.reconcile()
