"""Who runs a sweep trial, and whether it is still alive.

Ownership and heartbeats live with the trial: the user attributes ``driver`` (``host:pid``),
``driver_ticks`` (process start time, to tell a reused pid apart) and ``heartbeat`` (Unix time,
seconds), and a ``heartbeat.json`` file in the trial's run directory (:class:`RunDir`) that the
driver keeps beating even while the storage is unreachable. :func:`stale_reason` judges a
RUNNING trial of another driver from them; :mod:`sweeps.storage` fails and requeues it.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from ablate.records.run_record import RunDir


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


def beat_file(run_dir: str | os.PathLike | None, driver: str) -> None:
    """Write the trial's heartbeat file (``heartbeat.json`` in its run directory)."""
    if not run_dir:
        return
    try:
        RunDir(run_dir).write_heartbeat(driver, time.time())
    except OSError:
        pass  # the run directory is not there yet (or read-only): the storage heartbeat remains


def file_heartbeat(run_dir: str | os.PathLike | None) -> float | None:
    """Unix time of the trial's last heartbeat file, or None."""
    return RunDir(run_dir).read_heartbeat() if run_dir else None


def stale_reason(trial, me: Owner, stale_after_s: float, now: float | None = None,
                 by_age: bool = True) -> str | None:
    """Why a RUNNING trial of another driver is stale, or None if it looks alive.

    A driver on this host whose process is gone is stale at once. Otherwise the trial's newest
    heartbeat (the storage attribute or its run directory's heartbeat file) must be older than
    ``stale_after_s``; ``by_age=False`` (just after a storage outage) skips that rule.
    """
    attrs = trial.user_attrs
    owner = attrs.get("driver")
    if owner == me.ident and attrs.get("driver_ticks") == me.ticks:
        return None
    now = time.time() if now is None else now
    if owner:
        host, _, pid = owner.rpartition(":")
        if host == me.host and pid.isdigit() and not pid_alive(int(pid), attrs.get("driver_ticks")):
            return f"stale: driver {owner} died"
    if not by_age:
        return None
    beat = attrs.get("heartbeat")
    if beat is None and trial.datetime_start is not None:
        beat = trial.datetime_start.timestamp()
    on_disk = file_heartbeat(attrs.get("run_dir"))
    if on_disk is not None and (beat is None or on_disk > float(beat)):
        beat = on_disk
    if beat is not None and now - float(beat) > stale_after_s:
        who = f"driver {owner}" if owner else "an unknown driver"
        return f"stale: no heartbeat from {who} for {now - float(beat):.0f} s"
    return None
