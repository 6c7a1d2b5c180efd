"""A Hydra user's habits: --help that explains, multirun under the output root, near-miss keys."""

import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from ablate.config import compose
from ablate.config.experiment import config_key_table
from ablate.records.run_record import RunSummary
from conftest import TINY

ROOT = Path(__file__).resolve().parents[1]


def cli(args, cwd=ROOT, timeout=600):
    return subprocess.run([sys.executable, "-m", "ablate", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd,
                          env={**os.environ, "WANDB_SILENT": "true", "PYTHONPATH": str(ROOT)})


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_help_page_lists_every_group_and_every_validated_key_with_its_allowed_values():
    out = cli(["--help"])
    assert out.returncode == 0, out.stderr
    page = squash(out.stdout)
    assert "powered by Hydra" not in page
    for group in compose.GROUPS:
        for option in compose.group_options(group):
            assert option in page, (group, option)
    for key, doc, unit, allowed in config_key_table():
        assert f" {key} " in page, key
        assert squash(allowed) in page, (key, allowed)
    assert "+sweep=NAME" in page and "width_depth" in page and "EXAMPLES" in page
    hydra = cli(["--hydra-help"])
    assert hydra.returncode == 0 and "Hydra" in hydra.stdout


@pytest.mark.parametrize("args, expected", [
    (["network.widht=64"], "network.widht='64': unknown key; did you mean network.width"),
    (["-m", "network.widht=64,32"], "network.widht='64': unknown key; did you mean network.width"),
    (["sytem=He"], "did you mean system"),
    (["system=Lih"], "did you mean LiH"),
    (["-m", "system=He,Lih"], "did you mean LiH"),
    (["optim=kfca"], "did you mean kfac"),
    (["sweep=width"], "write +sweep=width"),
    (["+sweep=widht"], "did you mean width"),
])
def test_misspellings_get_one_line_with_the_closest_names_and_exit_2(args, expected, tmp_path):
    out = cli(args + [f"output_root={tmp_path}"], timeout=120)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2, out.stderr
    assert len(lines) == 1 and expected in lines[0], out.stderr
    assert not any(tmp_path.iterdir())


def test_multirun_jobs_are_run_directories_under_the_output_root(tmp_path):
    args = [o for o in TINY if not o.startswith("system=")] + ["optim.iterations=5"]
    work = tmp_path / "cwd"
    work.mkdir()
    out = cli(["-m", "system=H2,He", *args, f"output_root={tmp_path / 'runs'}"], cwd=work)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not any(work.iterdir()), "nothing may be written outside the output root"
    jobs = sorted(p for p in (tmp_path / "runs" / "multirun").glob("*/*") if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    for job, system in zip(jobs, ("H2", "He")):
        summary = RunSummary.read(job)
        assert summary.status == "completed" and summary.system == system
        assert summary.config["logger.group"].startswith("multirun-")
    first_lines = [line for line in out.stdout.splitlines() if line.startswith("[multirun job")]
    assert len(first_lines) == 2 and "system=H2" in first_lines[0] and "system=He" in first_lines[1]


def test_status_names_the_next_commands(tmp_path):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s", storage=storage)
    study.enqueue_trial({"network.width": 8})
    out = subprocess.run([sys.executable, "-m", "sweeps", "status", "s", "--output-root", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"python -m analysis s --output-root {tmp_path.resolve()}" in out.stdout
    assert "optuna-dashboard sqlite:///" in out.stdout
