"""End to end at quick scale: energies near the exact ones, exact resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import pandas as pd
import pytest

from ablate.config.compose import compose
from ablate.config.experiment import validate
from ablate.vmc import training
from ablate.vmc.run import run_experiment
from conftest import TINY, StopAt, assert_same_training


@pytest.mark.slow
@pytest.mark.parametrize("system, tolerance_mha", [("He", 2.0), ("H2", 3.0)])
def test_quick_scale_reaches_the_exact_energy(system, tolerance_mha, tmp_path):
    cfg = compose([f"system={system}", "logger=none", "progress=false",
                   f"output_root={tmp_path}", "optim.iterations=1500"])
    summary = run_experiment(validate(cfg))
    assert summary.status == "completed"
    # Variational: not meaningfully below the exact energy, and within a few mHa of it.
    assert summary.error_mha > -4 * summary.error_stderr_mha - 0.2
    assert summary.error_mha < tolerance_mha, summary
    assert summary.hf_energy > summary.reference_energy


def test_run_directory_contract(tiny_overrides, tmp_path):
    # A fresh engine, whatever ran before in this process: a reused one keeps its FLOP count, so
    # its flop_count phase would take no time at all.
    training._ENGINES.clear()
    summary = run_experiment(validate(compose(tiny_overrides)))
    run_dir = tmp_path / "single"
    (folder,) = list(run_dir.iterdir())
    on_disk = json.loads((folder / "summary.json").read_text())
    for key in ("status", "system", "electrons", "energy", "energy_stderr", "reference_energy",
                "error_mha", "param_count", "iterations", "wall_time_s", "ms_per_iteration",
                "seed", "params", "config"):
        assert key in on_disk, key
    assert on_disk["status"] == "completed" and on_disk["iterations"] == 20
    metrics = pd.read_csv(folder / "metrics.csv")
    assert list(metrics.columns) == ["step", "energy", "variance", "pmove", "move_width",
                                     "learning_rate", "step_time_s"]
    assert metrics["step"].tolist() == list(range(20))
    evaluation = pd.read_csv(folder / "eval.csv")
    assert len(evaluation) == 10
    assert summary.energy == pytest.approx(evaluation["energy"].mean())
    assert (folder / "config.yaml").exists() and any((folder / "checkpoints").iterdir())
    # issue 10: the cost of the run, by phase, in device-seconds and XLA FLOPs
    phases = on_disk["wall_s_by_phase"]
    assert set(phases) == {"setup", "burn_in", "train", "flop_count", "eval"} and min(phases.values()) > 0
    assert on_disk["devices"] == 1 and on_disk["device_kind"].startswith("cpu")
    charged = sum(v for k, v in phases.items() if k != "flop_count")
    assert on_disk["device_seconds"] == pytest.approx(charged, rel=1e-3)
    assert on_disk["device_seconds"] <= on_disk["wall_time_s"]
    assert on_disk["flops_per_iteration"] > 0
    assert on_disk["training_flops"] == pytest.approx(20 * on_disk["flops_per_iteration"])
    assert "kfac-jax" in on_disk["flops_counted"] and "custom calls" in on_disk["flops_counted"]
    assert on_disk["versions"]["jax"] == jax.__version__ and on_disk["git_commit"]
    # A completed run is not rerun: the same run directory returns the same summary.
    again = run_experiment(validate(compose(tiny_overrides + [f"run_dir={folder}"])))
    assert again.to_dict() == on_disk


@pytest.mark.parametrize("optim", ["kfac", "adam"])
def test_interrupted_run_resumes_exactly(optim, tmp_path):
    common = TINY + [f"optim={optim}", "optim.iterations=30", "checkpoint_every=10",
                     "evaluation.iterations=6", f"output_root={tmp_path}"]
    whole = run_experiment(validate(compose(common + [f"run_dir={tmp_path / 'whole'}"])))
    cut = compose(common + [f"run_dir={tmp_path / 'cut'}"])
    with pytest.raises(KeyboardInterrupt):
        run_experiment(validate(cut), callbacks=StopAt(24))
    assert json.loads((tmp_path / "cut" / "summary.json").read_text())["status"] == "failed"
    resumed = run_experiment(validate(cut))
    assert_same_training(tmp_path / "whole", tmp_path / "cut", 30)
    assert resumed.energy == pytest.approx(whole.energy, rel=1e-10)
    assert resumed.iterations == whole.iterations == 30
    # issue 10: the same programs, the same FLOPs; the phases before the cut carried by the checkpoint
    assert resumed.flops_per_iteration == whole.flops_per_iteration > 0
    assert resumed.training_flops == whole.training_flops
    assert resumed.wall_s_by_phase["burn_in"] > 0 and resumed.wall_s_by_phase["train"] > 0


@pytest.mark.slow
def test_killed_process_resumes_from_its_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "ablate", *TINY, "optim.iterations=2000",
            "checkpoint_every=25", f"run_dir={run_dir}", f"output_root={tmp_path}"]
    # stderr to a file, never an unread pipe: a full pipe would stall the run instead of it being
    # killed mid-training (XLA can log kilobytes per program loaded from the compile cache)
    with open(tmp_path / "first.err", "w") as err_log:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err_log,
                                start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        ckpts = list((run_dir / "checkpoints").glob("ckpt_*.ckpt"))
        if any(int(p.stem.split("_")[1]) >= 50 for p in ckpts):
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    status = json.loads((run_dir / "summary.json").read_text())["status"]
    assert status == "running"
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "resuming from checkpoint" in out.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["iterations"] == 2000
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert metrics["step"].tolist() == list(range(2000))


@pytest.mark.slow
def test_walkers_shared_over_two_devices_give_the_same_run(tmp_path):
    """Data parallel over 2 (host) devices with jax.sharding reproduces the 1-device run."""
    args = TINY + [f"output_root={tmp_path}"]
    single = run_experiment(validate(compose(args + [f"run_dir={tmp_path / 'one'}"])))
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-m", "ablate", *args, f"run_dir={tmp_path / 'two'}"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    double = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert double["energy"] == pytest.approx(single.energy, rel=1e-4)
    # issue 10: per-device programs x 2 devices: the same work, give or take what each device repeats
    assert double["devices"] == 2
    assert double["flops_per_iteration"] == pytest.approx(single.flops_per_iteration, rel=0.2)
    charged = sum(v for k, v in double["wall_s_by_phase"].items() if k != "flop_count")
    assert double["device_seconds"] == pytest.approx(2 * charged, rel=1e-3)
