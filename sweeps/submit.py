"""``sweep.launcher=slurm``: check a study's Slurm submission, write its batch script, sbatch it.

:func:`submit` is what :func:`sweeps.driver.run_sweep` calls instead of driving the study
here. Every check that can fail comes first (one line, exit code 2, nothing written or
submitted): SQLite or a journal file for more than one node, no ``sbatch`` on PATH, a database
that does not answer. Then it writes ``<output_root>/slurm/<study>.sbatch`` (the script of
:mod:`sweeps.slurm`; readable by its owner only, and holding no secret), submits it and prints
the job id and the command that follows the study. With ``sweep.slurm.dry_run=true`` it prints the script instead and submits nothing.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from ablate.records.errors import ConfigError
from ablate.records.redact import redact_text, redact_url
from ablate.records.safe_paths import check_inside, check_path_text

from . import overrides as ov
from .plan import StudyPlan
from .slurm import batch_script
from .status import location_args
from .storage import open_storage


def driver_command(task_overrides: list[str]) -> list[str]:
    """The command each array task runs: this one, without the launcher keys, run here."""
    kept = [o for o in task_overrides
            if ov.override_key(o) not in ("sweep.launcher", "sweep.slurm")
            and not ov.override_key(o).startswith("sweep.slurm.")]
    return [sys.executable, "-m", "ablate", *kept, "sweep.launcher=local"]


def study_script(plan: StudyPlan, task_overrides: list[str], workdir: Path) -> tuple[str, Path]:
    """(the batch script, the output file pattern) of a study's submission. The script holds no
    secret: a storage URL with a password is refused before (sweeps.space), and the jobs get the
    password the way the drivers here do (~/.pgpass, or PGPASSFILE/PGPASSWORD, which sbatch
    passes on with the rest of the environment)."""
    check_path_text("working directory", workdir)   # becomes #SBATCH --chdir
    output = plan.output_root / "slurm" / f"{plan.study_name}-%A_%a.out"
    script = batch_script(plan.spec.slurm, f"ablate-{plan.study_name}", driver_command(task_overrides),
                          output, workdir)
    return script, output


def write_private(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` readable by its owner only (0600, also when it existed; a
    symbolic link there is not followed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def shared_storage(url: str) -> bool:
    """True for a database server URL (PostgreSQL, MySQL) that drivers on several nodes share."""
    return "://" in url and not url.startswith("sqlite")


def submit(plan: StudyPlan, task_overrides: list[str]) -> int:
    """Submits (or with dry_run prints) the study's job array; returns the exit code."""
    options = plan.spec.slurm
    if options.nodes > 1 and not shared_storage(plan.storage_url):
        raise ConfigError("sweep.storage", redact_url(plan.storage_url),
                          f"a PostgreSQL URL for sweep.slurm.nodes={options.nodes} "
                          "(SQLite and journal files take one driver at a time)")
    script, output = study_script(plan, list(task_overrides), Path.cwd())
    if options.dry_run:
        print(redact_text(script), end="", flush=True)
        return 0
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise ConfigError("sweep.launcher", "slurm", "sbatch on PATH (submit from a Slurm login node, "
                                                     "or print the script with sweep.slurm.dry_run=true)")
    if shared_storage(plan.storage_url):
        open_storage(plan.storage_url)   # unreachable: ConfigError, before anything is submitted
    path = output.parent / f"{plan.study_name}.sbatch"
    check_inside("sweep.name", path, plan.output_root)   # before anything is written
    output.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, script)
    done = subprocess.run([sbatch, "--parsable", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        print(f"sbatch failed: {reason} (script: {path})", file=sys.stderr, flush=True)
        return 1
    job = done.stdout.strip().split(";")[0]
    name = shlex.quote(plan.study_name)
    print(f"submitted Slurm job {job}: {options.nodes} driver(s) of study {plan.study_name} "
          f"(script {path}; output {output})", flush=True)
    print(f"follow it: python -m sweeps status {name}{location_args(plan.output_root, plan.storage_url)}"
          f"    # squeue -j {job}; scancel {job} stops it", flush=True)
    return 0
