"""Every run and every sweep trial is a well-formed W&B run (issue 4), read back from disk.

Real runs through the engine, real wandb in offline mode, real sweep CLI; the W&B records
are parsed from the run-*.wandb files with wandb's protobuf types (ablate.tracking.wandb_records).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ablate.config.compose import compose
from ablate.config.experiment import validate
from ablate.records.errors import NonFiniteEnergy
from ablate.tracking.wandb_records import find_run_files, history_frame, read_run
from ablate.vmc.run import run_experiment
from conftest import TINY

REPO = Path(__file__).resolve().parents[1]
WANDB_TINY = [o for o in TINY if not o.startswith("logger=")] + ["logger=wandb"]
TRAIN_COLUMNS = ["step", "energy", "variance", "pmove", "move_width", "learning_rate", "step_time_s"]
EVAL_COLUMNS = ["step", "energy", "variance", "pmove"]


@pytest.fixture(autouse=True)
def _clean_wandb_env(monkeypatch):
    for name in ("WANDB_MODE", "WANDB_DIR", "WANDB_RUN_ID", "WANDB_RESUME", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")


def offline_runs(root: Path) -> list[dict]:
    return [read_run(p) for p in find_run_files(root) if p.parent.name.startswith("offline-run-")]


def assert_same_table(history: pd.DataFrame, csv_path: Path, columns: list[str]) -> None:
    local = pd.read_csv(csv_path)
    assert list(local.columns) == columns
    assert sorted(history.columns) == sorted(columns)
    assert history["step"].tolist() == local["step"].tolist()
    for column in columns[1:]:
        np.testing.assert_allclose(history[column].to_numpy(float), local[column].to_numpy(float),
                                   rtol=1e-12, err_msg=column)


def assert_summary_matches(wandb_summary: dict, summary: dict) -> None:
    for key, value in summary.items():
        if key in ("config", "params"):
            assert key not in wandb_summary
            continue
        assert key in wandb_summary, key
        if isinstance(value, float):
            assert wandb_summary[key] == pytest.approx(value, rel=1e-12), key
        else:
            assert wandb_summary[key] == value, key


def test_a_run_is_a_wandb_run_with_config_history_and_summary(tmp_path):
    run_dir = tmp_path / "run"
    summary = run_experiment(validate(compose(WANDB_TINY + [f"run_dir={run_dir}", "logger.tags=[H2,unit]"])))
    assert summary.status == "completed"

    (run,) = offline_runs(run_dir / "wandb")
    assert run["run_id"] == (run_dir / "wandb_id.txt").read_text().strip()
    assert run["project"] == "ablate" and run["job_type"] == "single" and run["tags"] == ["H2", "unit"]
    assert run["name"] == "run"  # the run directory's name when logger.name is not set
    config = run["config"]
    for key, value in {"system.name": "H2", "network.width": 8, "network.depth": 1,
                       "network.pairwise_width": 4, "network.determinants": 1, "batch_size": 32,
                       "optim.iterations": 20, "mcmc.steps": 2, "logger.mode": "offline"}.items():
        assert config[key] == value, key
    assert not any(isinstance(v, dict) for v in config.values())  # flat keys only

    assert_same_table(history_frame(run, "train"), run_dir / "metrics.csv", TRAIN_COLUMNS)
    assert_same_table(history_frame(run, "eval"), run_dir / "eval.csv", EVAL_COLUMNS)
    assert history_frame(run, "pretrain").empty  # pretrain=none
    assert run["metrics"]["train/*"] == "train/step" and run["metrics"]["eval/*"] == "eval/step"

    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert_summary_matches(run["summary"], on_disk)
    for key in ("energy", "energy_stderr", "error_mha", "param_count", "wall_time_s",
                "ms_per_iteration", "status", "reason"):
        assert key in run["summary"], key
    assert run["exit_code"] == 0 and run["complete"]

    # A completed run directory is not rerun, and no second W&B run appears for it.
    run_experiment(validate(compose(WANDB_TINY + [f"run_dir={run_dir}"])))
    assert len(offline_runs(run_dir / "wandb")) == 1


def test_a_sweep_gives_one_wandb_run_per_trial_in_one_group(tmp_path):
    """The real sweep CLI: 2 grid trials, each an offline W&B run, plus the study's analysis run."""
    overrides = [o for o in WANDB_TINY if not o.startswith("network.width")]
    command = [sys.executable, "-m", "ablate", "+sweep=width", "sweep.space.network.width=[4,8]",
               "sweep.name=wbtest", "sweep.seeds=1", "sweep.workers=1", *overrides, f"output_root={tmp_path}"]
    env = dict(os.environ, WANDB_SILENT="true")
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    trials = [r for r in offline_runs(tmp_path / "wbtest") if r["job_type"] != "analysis"]
    assert len(trials) == 2
    # no run records the command line (wandb's metadata `args`: the workers inherit the driver's)
    for path in find_run_files(tmp_path / "wbtest"):
        assert b"sweep.space.network.width=[4,8]" not in path.read_bytes(), path
    assert {r["group"] for r in trials} == {"wbtest"}
    assert {r["job_type"] for r in trials} == {"width"}
    assert len({r["name"] for r in trials}) == 2 and len({r["run_id"] for r in trials}) == 2
    assert sorted(r["config"]["network.width"] for r in trials) == [4, 8]
    for r in trials:
        assert r["config"]["trial.swept"] == ["network.width"]
        assert r["config"]["trial.study"] == "wbtest"
        assert {"H2", "width"} <= set(r["tags"])
        assert r["exit_code"] == 0 and r["summary"]["status"] == "completed"
        run_dir = Path(r["path"]).parents[2]
        assert_same_table(history_frame(r, "train"), run_dir / "metrics.csv", TRAIN_COLUMNS)

    # log_study: one run of job_type "analysis" in the same group, with the trial table
    (analysis,) = offline_runs(tmp_path / "wbtest" / "analysis")
    assert analysis["group"] == "wbtest" and analysis["job_type"] == "analysis"
    assert analysis["exit_code"] == 0
    assert analysis["summary"]["n_trials"] == 2 and analysis["summary"]["n_complete"] == 2
    table = analysis["summary"]["study_table"]
    assert table["_type"] == "table-file" and table["nrows"] == 2
    files = Path(analysis["path"]).parent / "files"
    data = json.loads((files / table["path"]).read_text())
    assert {"number", "state", "value", "params.network.width", "attrs.run_dir"} <= set(data["columns"])
    try:
        import analysis as _analysis  # noqa: F401
    except ImportError:
        pass
    else:  # the analysis package draws the sweep's figure; it rides along as an image
        image = analysis["summary"]["sweep_figure"]
        assert image["_type"] == "image-file" and (files / image["path"]).is_file()
        # issue 10: the study's one-page report rides along as a wandb.Html, the same page as on disk
        page = analysis["summary"]["report"]
        assert page["_type"] == "html-file"
        logged = (files / page["path"]).read_text(encoding="utf-8")
        on_disk = (tmp_path / "wbtest" / "report.html").read_text(encoding="utf-8")
        assert logged == on_disk and "<h1>Study <code>wbtest</code></h1>" in logged


def test_a_failed_trial_is_a_failed_wandb_run(tmp_path):
    run_dir = tmp_path / "run"
    cfg = compose(WANDB_TINY + [f"run_dir={run_dir}", "debug.inject_nan_step=3"])
    with pytest.raises(NonFiniteEnergy):
        run_experiment(validate(cfg))
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["status"] == "failed"

    (run,) = offline_runs(run_dir / "wandb")
    assert run["exit_code"] != 0 and run["complete"]
    assert run["summary"]["status"] == "failed"
    assert run["summary"]["reason"] == on_disk["reason"] and "non-finite" in on_disk["reason"]
    assert_same_table(history_frame(run, "train"), run_dir / "metrics.csv", TRAIN_COLUMNS)


def test_logger_none_writes_no_wandb_files(tmp_path):
    run_dir = tmp_path / "run"
    summary = run_experiment(validate(compose(TINY + [f"run_dir={run_dir}"])))  # TINY has logger=none
    assert summary.status == "completed"
    assert not (run_dir / "wandb").exists() and not (run_dir / "wandb_id.txt").exists()
    assert not list(tmp_path.rglob("*.wandb"))


def test_online_without_network_does_not_hang_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    run_dir = tmp_path / "run"
    cfg = compose(WANDB_TINY + [f"run_dir={run_dir}", "logger.mode=online", "logger.init_timeout=3"])
    start = time.monotonic()
    summary = run_experiment(validate(cfg))
    elapsed = time.monotonic() - start
    assert summary.status == "completed"
    assert summary.startup_s < 3 + 60, summary.startup_s  # W&B gave up after ~3 s
    for name in ("config.yaml", "metrics.csv", "eval.csv", "summary.json"):
        assert (run_dir / name).is_file(), name
    assert len(pd.read_csv(run_dir / "metrics.csv")) == 20
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert not offline_runs(run_dir)
    assert elapsed < 300
