"""benchmarks/device_check.py: the GPU check's code paths, run at tiny sizes on the CPU.

The smoke run is the same program the GPU machine runs (each measurement in its own process,
the real sweep driver, JSON lines flushed as they finish), so an import, a config or a
sharding mistake shows here before a GPU is lent.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "device_check.py"


def _run(args, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, **kw)


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "device_check.jsonl").read_text().splitlines()]


def _finite_numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _finite_numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _finite_numbers(v)
    elif isinstance(obj, float):
        yield obj


def test_a_task_with_no_time_left_is_recorded_as_skipped(tmp_path):
    res = _run(["--smoke", "--out", str(tmp_path), "--only", "precision", "--budget-s", "1"],
               timeout=60)
    assert res.returncode == 1, res.stdout + res.stderr
    plan, skipped = _records(tmp_path)
    assert plan["kind"] == "plan" and plan["tasks"] == ["precision"]
    assert skipped["task"] == "precision" and skipped["status"] == "skipped"
    assert "precision" in res.stdout and "skipped" in res.stdout


def test_an_unknown_task_is_one_line_and_exit_2(tmp_path):
    res = _run(["--smoke", "--out", str(tmp_path), "--only", "iteration_Xe"], timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "iteration_Xe" in res.stderr
    assert "allowed" in res.stderr


@pytest.mark.slow
def test_smoke_run_measures_every_kind_without_pyscf_or_wandb(tmp_path):
    out = tmp_path / "out"
    res = _run(["--smoke", "--out", str(out), "--work", str(tmp_path / "work")], timeout=1200)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    records = _records(out)
    by_kind = {}
    for r in records:
        by_kind.setdefault(r["kind"], []).append(r)
    assert set(by_kind) == {"plan", "environment", "iteration", "sweep", "precision"}
    for r in records:
        assert r["status"] == "ok", r
        assert all(math.isfinite(x) for x in _finite_numbers(r)), r
        if r["kind"] != "plan":
            assert r["heavy_modules"] == [], r   # pyscf and wandb stay out of every process

    (env,) = by_kind["environment"]
    assert env["versions"]["kfac-jax"] and env["versions"]["folx"] and env["devices"]

    (it,) = by_kind["iteration"]
    assert it["system"] == "LiH" and it["ms_per_iteration"] > 0
    assert all(it["split_ms"][k] > 0 for k in ("sampling", "local_energy",
                                               "gradient_incl_local_energy"))
    assert it["config_to_first_iteration_s"] > 0 and it["reference_h100_ms"] == 30.8

    sweeps = {r["trials_per_gpu"]: r for r in by_kind["sweep"]}
    assert set(sweeps) == {1, 2}
    for r in sweeps.values():
        assert r["trials"] == 2 and r["trials_per_hour"] > 0 and r["wall_s"] > 0
        assert r["first_trial_per_worker"]["n"] + r["later_trials"]["n"] == 2
    assert sweeps[1]["later_trials"]["n"] == 1          # one warm worker ran both trials

    (p,) = by_kind["precision"]
    assert p["system"] == "Ne" and p["iterations"] == 20
    # the two evaluations really were lowered at different matmul precisions
    assert p["dot_precision_in_hlo"]["highest"]["HIGHEST"] > 0
    assert p["dot_precision_in_hlo"]["default"]["HIGHEST"] == 0
    assert p["difference_stderr_mha"] >= 0

    assert "iteration LiH" in res.stdout and "sweep k=2" in res.stdout
