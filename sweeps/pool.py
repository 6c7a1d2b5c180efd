"""The worker pool: one worker process per slot, their messages, their deaths and restarts.

:class:`WorkerPool` knows processes and pipes, nothing of Optuna: :meth:`WorkerPool.poll`
returns the messages that arrived and the workers that died, and the driver decides what they
mean for the trials.
"""

from __future__ import annotations

from multiprocessing.connection import wait as wait_for
from typing import Any

from .messages import Stop

from .workers import Slot, Worker, start_worker, stop_worker


class WorkerPool:
    """The driver's worker processes (see the module docstring)."""

    def __init__(self, slots: tuple[Slot, ...] | list[Slot], cache_dir: str | None):
        self.slots, self.cache_dir = list(slots), cache_dir
        self.workers: list[Worker] = []

    def start(self) -> None:
        self.workers = [start_worker(slot, self.cache_dir) for slot in self.slots]

    @property
    def idle(self) -> list[Worker]:
        """Workers that are ready and run no trial."""
        return [w for w in self.workers if w.ready and not w.busy]

    @property
    def busy(self) -> list[Worker]:
        return [w for w in self.workers if w.busy]

    def poll(self, timeout: float) -> tuple[list[tuple[Worker, Any]], list[Worker]]:
        """Waits up to ``timeout`` s; returns (messages as (worker, message), dead workers)."""
        by_conn = {w.conn: w for w in self.workers}
        by_sentinel = {w.process.sentinel: w for w in self.workers}
        ready = wait_for(list(by_conn) + list(by_sentinel), timeout=timeout)
        messages, dead = [], []
        for obj in ready:
            if obj in by_conn:
                w = by_conn[obj]
                try:
                    while w.conn.poll():
                        messages.append((w, w.conn.recv()))
                except (EOFError, OSError):
                    dead.append(w)
            else:
                dead.append(by_sentinel[obj])
        return messages, list(dict.fromkeys(w for w in dead if w in self.workers))

    def last_words(self, w: Worker) -> list[Any]:
        """Messages a dead worker sent before it died (read them before giving up on its trial)."""
        out = []
        try:
            while w.conn.poll():
                out.append(w.conn.recv())
        except (EOFError, OSError):
            pass
        w.process.join(5)
        return out

    def replace(self, w: Worker, restart: bool) -> None:
        """Stops a (dead) worker; starts a fresh one in its slot, or drops the slot."""
        stop_worker(w)
        i = self.workers.index(w)
        if restart:
            self.workers[i] = start_worker(w.slot, self.cache_dir)
        else:
            self.workers.pop(i)

    def stop_all(self, graceful: bool = True, timeout_s: float = 5.0) -> None:
        """Asks idle workers to stop, then terminates whatever is left: SIGTERM to all at once
        (a busy worker checkpoints its trial first), SIGKILL after ``timeout_s``."""
        if graceful:
            for w in self.workers:
                if w.process.is_alive() and not w.busy:
                    w.send(Stop())
            for w in self.workers:
                w.process.join(3)
        for w in self.workers:
            if w.process.is_alive():
                w.process.terminate()
        for w in self.workers:
            stop_worker(w, timeout_s=timeout_s)
