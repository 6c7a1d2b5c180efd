"""A pool of worker processes over GPU slots (or CPU workers) that run trials in turn.

Each worker is a separate process (``multiprocessing`` spawn context) started with its
own environment: ``CUDA_VISIBLE_DEVICES`` set to its slot's GPUs (and a memory share when
several workers share a GPU) *before* it imports JAX. A worker stays alive and runs one
trial after another, so Python imports, SCF and JAX's compiled functions stay warm; JAX's
persistent compilation cache (the per-user folder of ``compilation_cache=auto``, see
:func:`ablate.runtime.xla_env.cache_folder`) serves the later workers and later studies.

Driver <-> worker messages go over one duplex pipe per worker (no shared locks, so a
worker killed mid-message cannot block the others); they are the typed records of
:mod:`sweeps.messages`:

- driver -> worker: ``RunTrial``, ``Prune``, ``Stop``
- worker -> driver: ``Ready``, ``TrialProgress`` (phase, step of total, training energy),
  ``Done`` (the summary dict), ``Failed`` (a one-line reason and the summary dict, if any)

SIGTERM (the driver stopping it, or the scheduler signalling the whole job) makes a worker
checkpoint its trial after the current iteration (:mod:`ablate.vmc.preemption`) and exit.

The driver never imports JAX: GPUs are found with ``CUDA_VISIBLE_DEVICES`` or
``nvidia-smi -L``.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from ablate.records.errors import ConfigError
from ablate.records.jsonio import clean_json
from ablate.records.run_record import RunDir
from ablate.runtime.xla_env import cpu_log_level
from ablate.vmc import preemption

from .messages import Done, Failed, Prune, Ready, RunTrial, Stop, TrialProgress


@dataclass(frozen=True)
class Slot:
    """Where one worker runs: a name for the display and the environment it starts with."""

    name: str
    env: dict[str, str]
    gpus: tuple[str, ...] = ()

    @property
    def device_count(self) -> int:
        """JAX devices a trial in this slot sees (its GPUs, or the one CPU device)."""
        return max(1, len(self.gpus))


def detect_gpus() -> list[str]:
    """Visible GPU ids without importing JAX: ``CUDA_VISIBLE_DEVICES`` if set, else ``nvidia-smi -L``."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    return [str(i) for i, line in enumerate(l for l in out.stdout.splitlines() if l.startswith("GPU "))]


def plan_slots(spec, gpus: list[str] | None = None) -> list[Slot]:
    """Worker slots for a sweep spec: ``gpus_per_trial`` GPUs per slot, ``trials_per_gpu`` workers each."""
    gpus = list(spec.gpus) if spec.gpus is not None else (detect_gpus() if gpus is None else gpus)
    if not gpus:
        planned = spec.n_planned() if spec.workers == "auto" else None
        return cpu_slots(cpu_worker_count(spec.workers, planned))
    n = spec.gpus_per_trial
    if n > len(gpus):
        raise ConfigError("sweep.gpus_per_trial", n, f"at most the {len(gpus)} GPU(s) available ({','.join(gpus)})")
    groups = [gpus[i:i + n] for i in range(0, len(gpus) - n + 1, n)]
    k = spec.trials_per_gpu
    slots = []
    for group in groups:
        for j in range(k):
            env = {"CUDA_VISIBLE_DEVICES": ",".join(group)}
            if k > 1:
                env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
                env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 / k:.3f}"
            name = "gpu" + "+".join(group) + (f"/{j}" if k > 1 else "")
            slots.append(Slot(name, env, tuple(group)))
    return slots


def memory_gib() -> float | None:
    """Physical memory of this machine in GiB (None where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (ValueError, OSError, AttributeError):
        return None


def cpu_worker_count(workers: int | str, planned: int | None = None) -> int:
    """CPU workers for ``sweep.workers``: a number as given; ``auto`` one per core (each on one
    core: on the 2-core CPU two one-thread workers finished the quick studies sooner than one
    two-thread worker, README: Speed), at most one per planned trial (the rest get the spare
    cores as threads) and one per 2 GiB of memory."""
    if workers != "auto":
        return int(workers)
    count = os.cpu_count() or 1
    if planned:
        count = min(count, planned)
    memory = memory_gib()
    if memory is not None:
        count = min(count, max(1, int(memory // 2)))
    return max(1, count)


def cpu_slots(workers: int) -> list[Slot]:
    """``workers`` CPU slots; with several, each gets an equal share of the cores."""
    cores = os.cpu_count() or 1
    share = max(1, cores // workers)
    slots = []
    for i in range(workers):
        # XLA:CPU logs an ERROR line for every executable it loads from the persistent cache on
        # some CPUs (a harmless "+prefer-no-scatter" feature-name mismatch): 3 hides them.
        env = {"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": cpu_log_level()}
        if workers > 1:
            env.update({v: str(share) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
            flags = os.environ.get("XLA_FLAGS", "")
            if "intra_op_parallelism_threads" not in flags:
                env["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={share}".strip()
        slots.append(Slot(f"cpu{i}", env))
    return slots


@dataclass(eq=False)
class Worker:
    """The driver's handle on one worker process (compared and hashed by identity)."""

    slot: Slot
    process: Any
    conn: Any
    started: float = field(default_factory=time.monotonic)
    ready: bool = False
    trial: Any = None          # the driver's record of the trial it runs, or None
    trials_run: int = 0
    last_shape: str | None = None   # the point (less its seed) of the trial it ran last

    @property
    def busy(self) -> bool:
        return self.trial is not None

    def send(self, msg) -> bool:
        try:
            self.conn.send(msg)
            return True
        except (OSError, EOFError, BrokenPipeError):
            return False


def start_worker(slot: Slot, cache_dir: str | None) -> Worker:
    """Spawn a worker process with the slot's environment in place before it imports anything."""
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe(duplex=True)
    proc = ctx.Process(target=worker_main, args=(theirs, slot.name, slot.env, cache_dir, os.getpid()),
                       name=f"ablate-sweep-{slot.name}", daemon=True)
    saved = {k: os.environ.get(k) for k in slot.env}
    os.environ.update(slot.env)   # spawn copies the parent's environment at start()
    try:
        proc.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    theirs.close()
    return Worker(slot, proc, ours)


def stop_worker(worker: Worker, timeout_s: float = 10.0) -> None:
    """Terminate a worker (SIGTERM, then SIGKILL) and close its pipe."""
    proc = worker.process
    if proc.is_alive():
        proc.terminate()
        proc.join(timeout_s)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
    try:
        worker.conn.close()
    except OSError:
        pass


def describe_exit(code: int | None) -> str:
    """``-9`` -> ``killed by SIGKILL``."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


# --- inside the worker process -----------------------------------------------------------


def worker_main(conn, slot_name: str, env: dict[str, str], cache_dir: str | None, parent_pid: int) -> None:
    """Entry point of a worker process: import the engine once, then run trials until told to stop."""
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    preemption.install(repeat_kills=False)  # SIGTERM: checkpoint the trial, then exit
    t0 = time.perf_counter()
    # The engine (JAX) is imported here, in the worker, never in the driver process.
    from ablate.runtime.jax_setup import setup_jax
    from ablate.vmc.run import run_experiment

    setup_jax(cache_dir=cache_dir)
    conn.send(Ready(time.perf_counter() - t0))
    while preemption.requested() is None:
        if not conn.poll(1.0):
            if os.getppid() != parent_pid:
                return  # the driver died: the next driver recovers our trial
            continue
        try:
            msg = conn.recv()
        except EOFError:
            return
        if isinstance(msg, Stop):
            return
        if isinstance(msg, RunTrial):
            _run_trial(conn, run_experiment, msg, parent_pid)


class TrialCallbacks:
    """``run_experiment`` callbacks: progress to the driver, prune orders back."""

    def __init__(self, conn, number: int, report_every: int, parent_pid: int, display_every_s: float = 5.0):
        self.conn, self.number, self.report_every, self.parent_pid = conn, number, report_every, parent_pid
        self.display_every_s = display_every_s
        self.pruned = False
        self._window: list[float] = []
        self._last_sent = time.monotonic()
        self._total = 0

    def _orphaned(self) -> None:
        if os.getppid() != self.parent_pid:
            os._exit(3)  # orphaned: stop writing to a run directory another driver will resume

    def on_progress(self, phase: str, step: int, total: int) -> None:
        """Any phase's step (pretrain, burn-in, train, eval-burn, eval): sent every few seconds."""
        if phase == "train":
            self._total = total
            return  # training steps are reported with their energy by on_train_step
        now = time.monotonic()
        if now - self._last_sent > self.display_every_s or step == 0:
            self._orphaned()
            self.conn.send(TrialProgress(self.number, phase, int(step), int(total)))
            self._last_sent = now

    def on_train_step(self, step: int, metrics: dict) -> bool:
        self._orphaned()
        energy = float(metrics.get("energy", math.nan))
        self._window.append(energy)
        report = (step + 1) % self.report_every == 0
        now = time.monotonic()
        if report or now - self._last_sent > self.display_every_s:
            mean = sum(self._window) / len(self._window) if self._window else energy
            self.conn.send(TrialProgress(self.number, "train", int(step), self._total,
                                    mean if report else energy, report))
            self._last_sent = now
            if report:
                self._window.clear()
        while self.conn.poll(0):
            msg = self.conn.recv()
            if isinstance(msg, Prune) and msg.number == self.number:
                self.pruned = True
            elif isinstance(msg, Stop):
                os._exit(0)
        return self.pruned


def _run_trial(conn, run_experiment, msg: RunTrial, parent_pid: int) -> None:
    callbacks = TrialCallbacks(conn, msg.number, msg.report_every, parent_pid)
    try:
        summary = run_experiment(msg.experiment, run_dir=msg.run_dir, callbacks=callbacks)
    except ConfigError as err:  # e.g. a run directory of another config or study: nothing was written
        conn.send(Failed(msg.number, str(err), None))
        return
    except preemption.Preempted:   # checkpointed: not a failure; the driver re-enqueues the trial
        return
    except Exception as err:  # noqa: BLE001 - any failure ends this trial, not the worker
        written = RunDir(msg.run_dir).read_summary_or_none()
        reason = (written.reason if written is not None else None) or f"{type(err).__name__}: {err}".strip()
        conn.send(Failed(msg.number, reason.splitlines()[0] if reason else type(err).__name__,
                         written.to_dict() if written is not None else None))
        return
    conn.send(Done(msg.number, clean_json(summary.to_dict())))


if __name__ == "__main__":  # pragma: no cover
    sys.exit("sweeps.workers is started by the sweep driver")
