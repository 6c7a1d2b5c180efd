"""A single run survives pre-emption: SIGTERM checkpoints at the next iteration and exits 75;
the rerun resumes there and ends as the uninterrupted run does."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from ablate.config.compose import compose
from ablate.config.experiment import validate
from ablate.vmc import preemption
from ablate.vmc.run import run_experiment
from conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
# checkpoint_every above the iteration count: the only training checkpoints are the one at
# step 0 and the one the signal asks for, so the rerun's starting step proves which it used.
LONG = TINY + ["optim.iterations=1500", "checkpoint_every=100000", "evaluation.iterations=20"]


def test_first_sigterm_sets_the_flag_and_a_second_one_kills():
    old = signal.getsignal(signal.SIGTERM)
    try:
        preemption.install()
        assert preemption.requested() is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert preemption.requested() == "SIGTERM"
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL   # the next one is fatal
        preemption.install(repeat_kills=False)
        os.kill(os.getpid(), signal.SIGTERM)
        assert preemption.requested() == "SIGTERM" and signal.getsignal(signal.SIGTERM) != signal.SIG_DFL
    finally:
        preemption.install()   # clears the flag for the tests after this one
        signal.signal(signal.SIGTERM, old)


@pytest.mark.slow
def test_sigterm_mid_training_checkpoints_and_the_rerun_resumes(tmp_path):
    whole = run_experiment(validate(compose(LONG + [f"run_dir={tmp_path / 'whole'}", f"output_root={tmp_path}"])))
    run_dir = tmp_path / "cut"
    args = [sys.executable, "-m", "ablate", *LONG, f"run_dir={run_dir}", f"output_root={tmp_path}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "first.out", "w") as log:   # a file, never an unread pipe
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while time.time() < deadline and not list((run_dir / "checkpoints").glob("ckpt_*.ckpt")):
        time.sleep(0.05)
    time.sleep(1.0)   # the step-0 checkpoint is written just before training starts
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == preemption.EXIT_PREEMPTED, (tmp_path / "first.out").read_text()
    out = (tmp_path / "first.out").read_text()
    assert "run stopped: pre-empted by SIGTERM after training step" in out
    first = json.loads((run_dir / "summary.json").read_text())
    assert first["status"] == "failed" and "pre-empted" in first["reason"]
    stopped_at = len(pd.read_csv(run_dir / "metrics.csv"))
    assert 0 < stopped_at < 1500, "the signal came outside training"

    rerun = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resuming from checkpoint: phase train, step {stopped_at}" in rerun.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["iterations"] == whole.iterations == 1500
    assert pd.read_csv(run_dir / "metrics.csv")["step"].tolist() == list(range(1500))
    assert len(summary["wall_time_stretches_s"]) == 2
    assert summary["energy"] == pytest.approx(whole.energy, rel=1e-8)
