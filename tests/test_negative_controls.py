"""Negative controls for the verdicts at a budget: real tiny studies whose factor cannot matter at
their budget must never get a "supported".

* A null study: one-electron widths 28, 32 and 36 on He, two seeds each. Widths this close cannot
  be told apart by a short run; the comparison "the error is lower at larger width" must not be
  supported (nor any other claim).
* A study too short to judge: 40 training iterations. Its training windows (mid-training and
  end, :mod:`analysis.stability`) hold 8 iterations each, too few to show a comparison stable
  over training, so nothing may be supported whatever the end point says.

Slow: real engine runs through the sweep driver (about two minutes on 2 CPU cores).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import analysis
from analysis import report as R
from analysis import studies as S
from analysis import verdicts as C

REPO = Path(__file__).resolve().parents[1]
SMALL = ["network.depth=1", "network.pairwise_width=4", "network.determinants=1", "batch_size=32", "mcmc.steps=2",
         "mcmc.burn_in=10", "pretrain=none", "evaluation.burn_in=10", "logger=none"]

pytestmark = pytest.mark.slow


def width_study(root: Path, widths: str, system: str, iterations: int, eval_iterations: int):
    """Runs ``+sweep=width`` with two seeds per width and returns the claims of its width figure."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "ablate", "+sweep=width", f"sweep.space.network.width={widths}", "sweep.seeds=2", "sweep.max_seeds=null",
         "sweep.workers=2", f"system={system}", f"optim.iterations={iterations}",
         f"evaluation.iterations={eval_iterations}", *SMALL, f"output_root={root}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    frame = analysis.load_study("width", output_root=root)
    return R.check_claims(frame, {"width": S.width.width_data(frame)})


def test_close_widths_on_he_are_never_supported(tmp_path: Path):
    claims = width_study(tmp_path, "[28,32,36]", "He", iterations=100, eval_iterations=50)
    comparison = [c for c in claims if c.kind == C.COMPARISON]
    assert comparison and comparison[0].scope == "at 100 iterations x 32 walkers (quick scale), 2 seeds per point"
    assert all(c.verdict != C.SUPPORTED for c in claims), [c.render() for c in claims]


def test_a_40_iteration_width_study_is_never_supported(tmp_path: Path):
    claims = width_study(tmp_path, "[4,8,16]", "H2", iterations=40, eval_iterations=10)
    assert all(c.verdict != C.SUPPORTED for c in claims), [c.render() for c in claims]
    (comparison,) = [c for c in claims if c.kind == C.COMPARISON]
    assert comparison.verdict == C.INCONCLUSIVE and comparison.scope.startswith("at 40 iterations x 32 walkers")
