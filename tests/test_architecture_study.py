"""The architecture study (analysis/studies/architecture.py, ``+sweep=architecture``): its figure,
its claims under the verdict rules, and a tiny real study through ``python -m analysis``.

The synthetic studies are real Optuna storages with run directories (tests/test_analysis.py's
``make_study`` through tests/test_ablation_claims.py's ``ablation_study``); each trial's
summary.json gets the cost a real run records (device-seconds, training FLOPs).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_ablation_claims import ablation_study, assert_png
from test_analysis import verdicts

from analysis import studies as S
from analysis.report import check_claims, plan_figures

REPO = Path(__file__).resolve().parents[1]
COST = {"ferminet": (100.0, 1e12), "psiformer": (95.0, 0.95e12), "slater_jastrow": (40.0, 3e11)}


def architecture_study(root: Path, errors: dict, costs: dict = COST, systems=("Li", "LiH"), **kw) -> pd.DataFrame:
    points = []
    for system in systems:
        for network, error in errors.items():
            seconds, flops = costs[network]
            points.append(({"network": network, "system": system}, error,
                           {"device_seconds": seconds, "training_flops": flops, "network": network}))
    return ablation_study(root, "architecture", points, **kw)


def claims(frame: pd.DataFrame) -> dict:
    data = S.architecture.architecture_data(frame)
    return {c.statement: c for c in verdicts(check_claims(frame, {"architecture": data}))}


def test_the_study_plans_its_figure_and_draws_one_panel_per_system_and_cost(tmp_path: Path):
    frame = architecture_study(tmp_path, {"ferminet": 5.0, "psiformer": 4.9, "slater_jastrow": 20.0})
    assert "architecture" in plan_figures(frame) and "determinants" not in plan_figures(frame)
    data = S.architecture.architecture_data(frame)
    assert len(data) == 6 and list(data["network"][:3]) == ["ferminet", "psiformer", "slater_jastrow"]
    assert (data["n_seeds"] == 2).all()
    assert data.set_index(["system", "network"]).loc[("Li", "psiformer"), "device_seconds"] == pytest.approx(95.0)
    fig = S.architecture.draw_architecture(data)
    assert len(fig.axes) == 4
    assert_png(fig, tmp_path / "architecture.png")


def test_ferminet_beats_sj_and_psiformer_matches_at_equal_cost(tmp_path: Path):
    # four seeds: a "matches" claim is a non-inferiority test within 1.6 mHa, Welch t on each pair, and
    # eight claims share the Holm adjustment
    found = claims(architecture_study(tmp_path, {"ferminet": 5.0, "psiformer": 4.9, "slater_jastrow": 20.0},
                                      seeds=(0, 1, 2, 3)))
    for system in ("Li", "LiH"):
        assert found[f"FermiNet beats Slater–Jastrow at equal iterations ({system})"].verdict == "supported"
        assert found[f"Psiformer matches or beats FermiNet at equal iterations ({system})"].verdict == "supported"
        for cost in ("device-seconds", "training FLOPs"):
            claim = found[f"Psiformer matches or beats FermiNet at equal cost ({cost}) ({system})"]
            assert claim.verdict == "supported", claim.render()
            assert "at 1000 iterations" in claim.scope and "4 seeds per point" in claim.scope
            assert "Welch non-inferiority t on Psiformer − FermiNet error against +1.6 mHa" in claim.evidence


def test_a_costlier_psiformer_cannot_be_judged_at_equal_cost(tmp_path: Path):
    costs = {**COST, "psiformer": (300.0, 3e12)}
    found = claims(architecture_study(tmp_path, {"ferminet": 5.0, "psiformer": 4.9, "slater_jastrow": 20.0},
                                      costs=costs, systems=("LiH",)))
    assert found["Psiformer matches or beats FermiNet at equal iterations (LiH)"].verdict == "supported"
    claim = found["Psiformer matches or beats FermiNet at equal cost (device-seconds) (LiH)"]
    assert claim.verdict == "inconclusive" and "FermiNet trained about 3.0x as long" in claim.evidence


def test_a_worse_psiformer_at_no_less_cost_is_not_supported_and_sj_winning_refutes(tmp_path: Path):
    found = claims(architecture_study(tmp_path, {"ferminet": 5.0, "psiformer": 9.0, "slater_jastrow": 2.0},
                                      costs={**COST, "psiformer": (100.0, 1e12)}, systems=("Be",), seeds=(0, 1, 2, 3)))
    assert found["Psiformer matches or beats FermiNet at equal cost (training FLOPs) (Be)"].verdict == "not supported"
    assert found["FermiNet beats Slater–Jastrow at equal iterations (Be)"].verdict == "not supported"


def test_wide_error_bars_are_no_match_and_one_seed_decides_nothing(tmp_path: Path):
    wide = claims(architecture_study(tmp_path / "wide", {"ferminet": 5.0, "psiformer": 5.0, "slater_jastrow": 20.0},
                                     systems=("Li",), spread=0.3))
    claim = wide["Psiformer matches or beats FermiNet at equal iterations (Li)"]
    assert claim.verdict == "inconclusive"
    assert claim.evidence.startswith("Psiformer − FermiNet = +0 mHa is not resolved from the margin 1.6 mHa")
    assert "seeds per point would decide it" in claim.evidence
    single = claims(architecture_study(tmp_path / "one", {"ferminet": 5.0, "psiformer": 4.0, "slater_jastrow": 20.0},
                                       systems=("Li",), seeds=(0,)))
    assert {c.verdict for c in single.values()} == {"inconclusive"}
    assert all("a test needs >= 2 seeds" in c.evidence for c in single.values())


def test_with_one_ansatz_there_is_nothing_to_compare(tmp_path: Path):
    found = claims(architecture_study(tmp_path, {"ferminet": 5.0}, systems=("Li",)))
    (claim,) = found.values()
    assert claim.verdict == "inconclusive" and "no pair to compare" in claim.evidence


@pytest.mark.slow
def test_tiny_architecture_sweep_then_analysis(tmp_path: Path):
    """+sweep=architecture on H2 (three ansatzes, one seed, 20 iterations), then python -m analysis:
    the figure and its data are written and every claim is inconclusive (one seed)."""
    root = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    tiny = ["system=H2", "network.determinants=1", "batch_size=32", "optim.iterations=20", "mcmc.burn_in=5",
            "mcmc.steps=2", "pretrain=none", "evaluation.iterations=10", "evaluation.burn_in=5", "logger=none"]
    sweep = subprocess.run([sys.executable, "-m", "ablate", "+sweep=architecture", "sweep.space.system=[H2]",
                            "sweep.seeds=1", "sweep.max_seeds=null", "sweep.workers=2", *tiny,
                            f"output_root={root}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert sweep.returncode == 0, sweep.stdout[-2000:] + sweep.stderr[-2000:]
    done = subprocess.run([sys.executable, "-m", "analysis", "architecture", "--output-root", str(root)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "study architecture: 3 of 3 trials complete" in done.stdout
    figures = root / "architecture" / "figures"
    assert {"architecture.png", "architecture.csv"} <= {p.name for p in figures.iterdir()}
    plotted = pd.read_csv(figures / "architecture.csv")
    assert sorted(plotted["network"]) == ["ferminet", "psiformer", "slater_jastrow"]
    assert (plotted["device_seconds"] > 0).all() and (plotted["training_flops"] > 0).all()
    report = (root / "architecture" / "report.md").read_text()
    assert "Psiformer matches or beats FermiNet at equal cost" in report
