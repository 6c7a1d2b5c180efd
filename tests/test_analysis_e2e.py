"""End to end: a tiny real width sweep (engine + sweep driver), then ``python -m analysis``.

Slow (about a minute on 2 CPU cores: two trials with ~25 s of start-up each). Skipped when the
sweep driver or the width sweep file is not in the tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "system=H2", "network.width=8", "network.depth=1", "network.pairwise_width=4", "network.determinants=1",
    "batch_size=32", "optim.iterations=20", "mcmc.burn_in=5", "mcmc.steps=2", "pretrain=none",
    "evaluation.iterations=10", "evaluation.burn_in=5", "logger=none",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (REPO / "sweeps" / "driver.py").is_file(), reason="sweeps/driver.py (the sweep driver) is not there yet"),
    pytest.mark.skipif(not (REPO / "conf" / "sweep" / "width.yaml").is_file(), reason="conf/sweep/width.yaml is not there yet"),
]


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """A module run from the repository root with the repository importable."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_tiny_width_sweep_then_analysis_writes_every_file(tmp_path: Path):
    root = tmp_path / "runs"
    sweep = _run(["ablate", "+sweep=width", "sweep.space.network.width=[4,8]", "sweep.seeds=1", "sweep.workers=2", *TINY,
                  f"output_root={root}"], timeout=600)
    assert sweep.returncode == 0, sweep.stdout[-2000:] + sweep.stderr[-2000:]

    done = _run(["analysis", "width", "--output-root", str(root)], timeout=300)
    assert done.returncode == 0, done.stderr
    assert "study width: 2 of 2 trials complete" in done.stdout
    assert "claims:" in done.stdout

    figures = root / "width" / "figures"
    kinds = ("width", "training_curves", "pareto_flops", "pareto_device_hours", "training_limit")  # + issue 10
    expected = {f"{name}.{ext}" for name in kinds for ext in ("png", "pdf", "csv")}
    assert {p.name for p in figures.iterdir()} == expected
    assert all((figures / name).stat().st_size > 0 for name in expected)
    assert (root / "width" / "report.md").is_file()

    trials = pd.read_csv(root / "width" / "trials.csv")
    plotted = pd.read_csv(figures / "width.csv")
    assert list(plotted["x"]) == [4, 8]
    by_width = trials.set_index("network.width")
    for _, row in plotted.iterrows():  # one seed: the plotted point is the trial's error ± its stderr
        assert row["mean"] == pytest.approx(by_width.loc[row["x"], "error_mha"])
        assert row["yerr"] == pytest.approx(by_width.loc[row["x"], "error_stderr_mha"])
    curves = pd.read_csv(figures / "training_curves.csv")
    assert sorted(curves["trial"].unique()) == [0, 1] and curves.groupby("trial").size().tolist() == [20, 20]
