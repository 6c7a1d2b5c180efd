"""The Slurm batch script of a study: one sweep driver per node, as a job array.

``sweep.launcher=slurm`` with the ``sweep.slurm.*`` keys (conf/launcher/default.yaml) turns
``python -m ablate +sweep=NAME ...`` into a submission (:mod:`sweeps.submit`); this module
checks those keys into :class:`SlurmOptions` and writes the script. Pure: no Slurm, no disk.

The script is ours, not submitit's. submitit pickles a Python callable into a per-job folder
and runs it with its own runner; our driver is a command line that already owns everything a
job needs to survive (joining the study, re-enqueueing its trials on SIGTERM, checkpointed
trials). A plain sbatch script running that command line is what users can read, print
(``sweep.slurm.dry_run=true``), edit and submit by hand; it needs no dependency and no
pickles shared between the login node and the compute nodes.

What the script does, per array task:

- ``--requeue --open-mode=append``: a pre-empted or requeued task starts again with the same
  command (``SLURM_RESTART_COUNT`` counts the restarts) and appends to the same output file;
- ``--signal=B:USR1@S``: S seconds before the time limit Slurm sends SIGUSR1 to the batch
  shell (``B:``; without it only job steps get it). Its timing is coarse: Slurm's docs allow
  up to 60 s early; on the test cluster a 1-minute job with ``@40`` got it 2 s and 21 s after
  it started, and earlier up to 30 s after the mark. The shell forwards it to the driver as
  SIGTERM; the driver stops its workers (each checkpoints its trial), re-enqueues its trials
  and exits with 130; the shell then requeues its own task, which rejoins the study and
  resumes those trials from their checkpoints;
- ``scancel`` / ``scontrol requeue`` / pre-emption send SIGTERM to every process of the task:
  the driver stops the same way, and the shell does *not* requeue: Slurm ends the task
  (``scancel``) or requeues it (``scontrol requeue``, pre-emption with requeue) as it was asked.
  The early warning is a different signal for that reason: with SIGTERM for both, a script
  cannot tell a time limit from ``scancel``, and a cancelled task requeued itself.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from ablate.records.errors import ConfigError

# Slurm's time formats: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
TIME = re.compile(r"(?:(?P<d>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?"
                  r"|(?P<h>\d+):(?P<hm>\d+):(?P<hs>\d+)|(?P<m>\d+)(?::(?P<ms>\d+))?)")
TIME_ALLOWED = "a Slurm time limit: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (e.g. 24:00:00)"


@dataclass(frozen=True)
class SlurmOptions:
    """The ``sweep.slurm`` keys: what each array task asks Slurm for."""

    nodes: int = 1                   # array tasks (one driver per node)
    gpus_per_node: int = 0           # --gpus-per-node (0: not asked for)
    cpus_per_task: int | None = None  # --cpus-per-task (None: Slurm's default)
    time: str = "24:00:00"           # --time
    partition: str | None = None     # --partition (None: the cluster's default)
    account: str | None = None       # --account
    signal_s: int = 120              # --signal=B:USR1@signal_s, seconds before the time limit
    dry_run: bool = False            # print the script, submit nothing


def parse_options(node: Mapping[str, Any] | None) -> SlurmOptions:
    """The ``sweep.slurm`` mapping checked; ConfigError names the first bad key."""
    node = dict(node or {})
    names = [f.name for f in fields(SlurmOptions)]
    unknown = sorted(set(node) - set(names))
    if unknown:
        raise ConfigError(f"sweep.slurm.{unknown[0]}", node[unknown[0]],
                          f"not a Slurm setting; allowed: {', '.join(names)}")
    raw = {**SlurmOptions().__dict__, **node}
    time = raw["time"]
    if isinstance(time, int) and not isinstance(time, bool):
        time = str(time)   # minutes
    if not isinstance(time, str) or time_limit_s(time) is None:
        raise ConfigError("sweep.slurm.time", raw["time"], TIME_ALLOWED)
    signal_s = _int("sweep.slurm.signal_s", raw["signal_s"], 1)
    if signal_s >= time_limit_s(time):
        raise ConfigError("sweep.slurm.signal_s", signal_s, f"fewer seconds than the time limit ({time})")
    if not isinstance(raw["dry_run"], bool):
        raise ConfigError("sweep.slurm.dry_run", raw["dry_run"], "true or false")
    return SlurmOptions(
        nodes=_int("sweep.slurm.nodes", raw["nodes"], 1),
        gpus_per_node=_int("sweep.slurm.gpus_per_node", raw["gpus_per_node"], 0),
        cpus_per_task=None if raw["cpus_per_task"] is None else _int("sweep.slurm.cpus_per_task",
                                                                       raw["cpus_per_task"], 1),
        time=time, partition=_name("sweep.slurm.partition", raw["partition"]),
        account=_name("sweep.slurm.account", raw["account"]), signal_s=signal_s,
        dry_run=raw["dry_run"])


def time_limit_s(text: str) -> int | None:
    """Seconds of a Slurm time limit (``"1-12:00"`` -> 129600), or None when malformed."""
    m = TIME.fullmatch(text.strip())
    if not m:
        return None
    g = {k: int(v) if v is not None else 0 for k, v in m.groupdict().items()}
    seconds = (g["d"] * 24 + g["dh"] + g["h"]) * 3600 + (g["dm"] + g["hm"] + g["m"]) * 60 \
        + g["ds"] + g["hs"] + g["ms"]
    return seconds or None


def _int(key: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(key, value, f"an integer >= {low}")
    return value


def _name(key: str, value: Any) -> str | None:
    """null or a Slurm name (partition, account) without white space or control characters."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or any(c.isspace() or not c.isprintable() for c in value):
        raise ConfigError(key, value, "null or a name without spaces")
    return value


def sbatch_options(options: SlurmOptions, job_name: str, output: Path, workdir: Path) -> list[str]:
    """The ``#SBATCH`` options of a study's array, in the order the script lists them. Every
    value is quoted as a shell word (``shlex.quote``: plain values stay as they are), which
    sbatch reads the same way; the values hold no control character (checked at the edge:
    study names, ``sweep.slurm.*``, output_root and the working directory), so no value can end
    its line."""
    def opt(name: str, value) -> str:
        return f"--{name}={shlex.quote(str(value))}"

    lines = [opt("job-name", job_name), f"--array=0-{options.nodes - 1}", "--nodes=1", "--ntasks=1"]
    if options.cpus_per_task is not None:
        lines.append(f"--cpus-per-task={options.cpus_per_task}")
    if options.gpus_per_node:
        lines.append(f"--gpus-per-node={options.gpus_per_node}")
    lines.append(opt("time", options.time))
    lines += [opt(key, value) for key, value in (("partition", options.partition),
                                                 ("account", options.account)) if value]
    lines += ["--requeue", "--open-mode=append", f"--signal=B:USR1@{options.signal_s}",
              opt("chdir", workdir), opt("output", output)]
    return lines


def batch_script(options: SlurmOptions, job_name: str, command: list[str], output: Path,
                 workdir: Path) -> str:
    """The sbatch script: the ``#SBATCH`` options, then the driver under two traps (the time
    limit's early SIGUSR1 requeues the task; SIGTERM does not)."""
    head = "\n".join(f"#SBATCH {line}" for line in sbatch_options(options, job_name, output, workdir))
    return f"""#!/bin/bash
# A study's drivers, one per array task, all joining the study's storage (ablate sweeps/slurm.py).
{head}
echo "[slurm] task ${{SLURM_ARRAY_TASK_ID}} of job ${{SLURM_ARRAY_JOB_ID}} on $(hostname), restart ${{SLURM_RESTART_COUNT:-0}}"
signalled=0
# SIGUSR1, before the time limit: the driver re-enqueues its trials and exits 130; then requeue.
trap 'signalled=1; kill -TERM "$driver" 2>/dev/null' USR1
# SIGTERM (scancel, scontrol requeue, pre-emption): the same stop; Slurm ends or requeues the task.
trap 'kill -TERM "$driver" 2>/dev/null' TERM
{shlex.join(command)} &
driver=$!
while kill -0 "$driver" 2>/dev/null; do wait "$driver"; done
wait "$driver"; code=$?
if [ "$signalled" = 1 ] && [ "$code" != 0 ]; then
  # the study is not done: start this task again (it rejoins and resumes its trials)
  scontrol requeue "${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}" || true
fi
exit "$code"
"""
