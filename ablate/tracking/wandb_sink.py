"""Weights & Biases sink: every run and every sweep trial becomes a W&B run.

The engine's Recorder forwards to this sink (see ``docs/contracts.md``, "Sinks (W&B)")::

    sink = make_sink(cfg, run_dir)          # None for logger=none / logger.mode=disabled
    sink.log("train", step, {"energy": ..., "variance": ..., ...})   # every iteration
    sink.set_summary(summary)               # the summary.json dict
    sink.finish("completed", None)          # or ("failed", reason) / ("pruned", reason)

- W&B files go under ``<run_dir>/wandb/`` (offline by default; ``wandb sync`` uploads them).
- The W&B run id is kept in ``<run_dir>/wandb_id.txt``: a resumed run directory continues the
  same W&B run (``resume="allow"``).
- Config: the flat resolved config (``network.width`` ...), the swept values at their own keys.
- History: ``<phase>/<metric>`` with one step axis per phase (``train/step``, ``pretrain/step``,
  ``eval/step``), so the three phases plot against their own iteration counts.
- Summary: the summary.json keys (energy, energy_stderr, error_mha, param_count, wall_time_s,
  ms_per_iteration, status, reason, ...) except the nested ``config``/``params``.
- ``finish``: exit code 0 for ``completed``, 1 otherwise (failed, pruned, interrupted).

W&B never blocks or crashes a trial: a failure to start (no network in online mode, bounded by
``logger.init_timeout`` seconds) is one warning line and ``make_sink`` returns None; an error in
``log``/``set_summary``/``finish`` is caught and warned about once.

The study-level run (one W&B run of job_type ``analysis`` per finished study) lives with the
sweeps (``sweeps.study_log``): the engine knows nothing of studies.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import string
import sys
import threading
from pathlib import Path
from typing import Any, Mapping

from ablate.config.experiment import Experiment
from ablate.records.jsonio import finite_or_none
from ablate.tracking.wandb_records import wait_complete

log = logging.getLogger("ablate.wandb")

PHASES = ("pretrain", "train", "eval")
ID_FILE = "wandb_id.txt"
DRAIN_TIMEOUT_S = 120.0  # longest wait at finish for queued history rows to reach wandb
FLUSH_TIMEOUT_S = 10.0  # longest wait for wandb-core to write the run file after finish
FINISH_TIMEOUT_S = 300.0  # online: longest wait for uploads at finish (logger.finish_timeout)
# summary.json keys that are not copied to the W&B summary (they are in the W&B config)
_SUMMARY_SKIP = ("config", "params")


def warn(message: str) -> None:
    """One line on stderr (through logging, so it shows with or without Hydra's handlers)."""
    log.warning("W&B: %s", " ".join(str(message).split())[:400])


def _new_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def run_id_for(run_dir: str | Path) -> str:
    """The W&B run id of a run directory: read from ``wandb_id.txt``, created on first use."""
    path = Path(run_dir) / ID_FILE
    try:
        existing = path.read_text().strip()
        if existing:
            return existing
    except OSError:
        pass
    run_id = _new_id()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(run_id + "\n")
    os.replace(tmp, path)
    return run_id


def wandb_config(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Flat W&B run config: the flat resolved config (dotted keys) plus the swept parameters.

    ``trial.params`` (already flat: ``{"network.width": 64}``) is written at its own keys, so a
    swept value sits under the same name as the config key it set; ``trial.swept`` lists them.
    """
    flat = dict(flat)
    params = flat.pop("trial.params", None) or {}
    out = {k: v for k, v in flat.items() if not k.startswith("hydra.")}
    for key, value in dict(params).items():
        out[str(key)] = value
    out["trial.swept"] = sorted(str(k) for k in params)
    return out


def _settings(init_timeout: float, finish_timeout: float):
    import wandb

    return wandb.Settings(
        init_timeout=float(init_timeout),
        # online: give up uploading after this long at finish (the run is then marked crashed
        # in W&B and `wandb sync` of its directory uploads the rest); 0 waits forever
        finish_timeout=float(finish_timeout),
        silent=True,  # no banner or sync hints in every trial's log (make_sink prints the URL online)
        console="off",  # stdout/stderr of the trial are not captured
        x_disable_stats=True,  # no system-metrics sampler (CPU/GPU every 15 s) per trial
        save_code=False,
        disable_code=True,
        disable_job_creation=True,
        x_save_requirements=False,
        # no system metadata: wandb would record the process's sys.argv as `args` (a worker
        # inherits its driver's), the host and the environment's program; summary.json has the
        # host, Python, git commit and package versions (docs/wandb.md)
        x_disable_meta=True,
    )


def _scalar(value):
    """Python scalar for W&B history (numpy/jax 0-d arrays become float/int)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    try:
        if getattr(value, "ndim", 0) == 0 and hasattr(value, "item"):
            return value.item()
    except Exception:  # noqa: BLE001 - an odd value is logged as its text
        pass
    return value


class WandbSink:
    """A live W&B run; created by `make_sink`. Every method is exception-safe.

    ``log`` and ``set_summary`` only queue the update (about a microsecond on the training hot
    path); one writer thread hands them to wandb in order. wandb's own ``run.log`` costs 0.2 ms on
    an idle machine but several ms when the CPU is busy with training (it hands each row to an
    asyncio thread and a socket), which would otherwise add to every training step.
    ``finish`` drains the queue (bounded), then ends the run.
    """

    def __init__(self, run, run_dir: Path):
        self.run = run
        self.run_dir = Path(run_dir)
        self._warned = False
        self._log_ok = True
        self._closed = False
        self._axes: set[str] = set()
        for phase in PHASES:
            self._define_phase(phase)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="ablate-wandb-writer", daemon=True)
        self._writer.start()

    # -- internals ---------------------------------------------------------------------
    def _fail(self, where: str, err: BaseException) -> None:
        if not self._warned:
            self._warned = True
            warn(f"{where} failed ({type(err).__name__}: {err}); the run goes on without W&B updates")

    def _define_phase(self, phase: str) -> None:
        if phase in self._axes:
            return
        self._axes.add(phase)
        try:
            self.run.define_metric(f"{phase}/step", hidden=True)
            self.run.define_metric(f"{phase}/*", step_metric=f"{phase}/step")
        except Exception as err:  # noqa: BLE001
            self._fail("define_metric", err)

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            kind, phase, data = item
            try:
                if kind == "log":
                    if not self._log_ok:
                        continue
                    if phase not in self._axes:
                        self._define_phase(phase)
                    self.run.log({k: _scalar(v) for k, v in data.items()})
                else:
                    self.run.summary.update(data)
            except Exception as err:  # noqa: BLE001
                if kind == "log":
                    self._log_ok = False
                self._fail(kind if kind == "log" else "set_summary", err)

    # -- Sink interface ----------------------------------------------------------------
    def log(self, phase: str, step: int, metrics: Mapping[str, Any]) -> None:
        """One row of history: ``{<phase>/step: step, <phase>/<key>: value}`` (queued)."""
        if self._closed or not self._log_ok:
            return
        row = {f"{phase}/{k}": v for k, v in metrics.items() if k != "step"}
        row[f"{phase}/step"] = int(step)
        self._queue.put(("log", phase, row))

    def set_summary(self, summary: Mapping[str, Any]) -> None:
        """Copies summary.json into the W&B summary (nested ``config``/``params`` left out)."""
        if self._closed:
            return
        try:
            data = {k: finite_or_none(v) for k, v in summary.items() if k not in _SUMMARY_SKIP}
        except Exception as err:  # noqa: BLE001
            self._fail("set_summary", err)
            return
        self._queue.put(("summary", None, data))

    def finish(self, status: str, reason: str | None = None) -> None:
        """Ends the W&B run: exit code 0 for ``completed``, 1 otherwise; status and reason in summary."""
        if self._closed:
            return
        self._closed = True
        run = self.run
        self._queue.put(None)
        self._writer.join(timeout=DRAIN_TIMEOUT_S)
        if self._writer.is_alive():
            warn(f"W&B history still being written after {DRAIN_TIMEOUT_S:.0f} s; finishing without it")
        exit_code = 0 if status == "completed" else 1
        try:
            run.summary.update({"status": status, "reason": reason})
        except Exception as err:  # noqa: BLE001
            self._fail("finish", err)
        try:
            path = run.settings.sync_file
            run.finish(exit_code=exit_code)
            # run.finish() returns before wandb-core has flushed the run file; wait (bounded) so
            # the W&B record is on disk when the run is reported finished
            if not wait_complete(path, timeout=FLUSH_TIMEOUT_S):
                warn(f"{path} was not complete {FLUSH_TIMEOUT_S:.0f} s after finish")
        except Exception as err:  # noqa: BLE001
            self._fail("finish", err)


def init_run(wandb, *, run_dir: Path, mode: str, init_timeout: float,
             finish_timeout: float = FINISH_TIMEOUT_S, **kwargs):
    """``wandb.init`` with its files under ``run_dir``, resumable, and bounded start and finish
    (seconds); ``kwargs`` go to ``wandb.init`` (project, group, name, config...)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    # No cleanup after a failed init: wandb-core keeps the failed run's id "in use" for the
    # rest of this process (a retry of the same run directory in the same process then warns
    # and runs without W&B). Telling wandb-core to drop the stream (ServiceConnection.
    # inform_finish) makes the next wandb.init with that id wait forever, so it is not done.
    return wandb.init(
        dir=str(run_dir),
        mode=mode,
        resume="allow",
        reinit="create_new",  # a worker process runs many trials in turn; never touches wandb.run
        settings=_settings(init_timeout, finish_timeout),
        **kwargs,
    )


def make_sink(experiment: Experiment, run_dir: str | Path) -> WandbSink | None:
    """The W&B sink for a run directory, or None (``logger.kind=none``, mode ``disabled``, or
    wandb could not start: one warning line, and the run goes on). Never raises."""
    logger = experiment.logger
    if logger.kind != "wandb" or logger.mode == "disabled":
        return None
    try:
        run_dir = Path(run_dir)
        try:
            import wandb  # lazy: heavy, and optional for runs with logger=none
        except Exception as err:  # noqa: BLE001
            warn(f"cannot import wandb ({type(err).__name__}: {err}); W&B is off for this run")
            return None
        tags = [str(t)[:64] for t in logger.tags if t is not None and str(t)]
        run = init_run(
            wandb,
            run_dir=run_dir,
            mode=logger.mode,
            init_timeout=logger.init_timeout,
            finish_timeout=logger.finish_timeout,
            id=run_id_for(run_dir),
            project=logger.project,
            entity=logger.entity,
            group=logger.group or experiment.trial.study,
            job_type=logger.job_type,
            name=logger.name or run_dir.name,
            tags=tags,
            config=wandb_config(experiment.config),
        )
    except Exception as err:  # noqa: BLE001 - W&B must never stop a run
        warn(f"could not start ({type(err).__name__}: {err}); the run goes on without W&B")
        return None
    try:
        if logger.mode == "online" and getattr(run, "url", None):
            print(f"W&B run: {run.url}", file=sys.stderr)
        return WandbSink(run, run_dir)
    except Exception as err:  # noqa: BLE001
        warn(f"could not start ({type(err).__name__}: {err}); the run goes on without W&B")
        try:
            run.finish(exit_code=1)
        except Exception:  # noqa: BLE001
            pass
        return None
