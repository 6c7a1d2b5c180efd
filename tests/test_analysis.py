"""Tests of analysis/: real Optuna SQLite storages and run directories built in tmp_path.

Every study here is written with optuna.create_study + study.add_trial(create_trial(...)) and
run directories holding summary.json / metrics.csv as the engine writes them (docs/contracts.md);
the checks read the DataFrames, the matplotlib artists' data and the CSV files.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

import analysis
from analysis import studies as S
from analysis.loaders import build_frame, complete_trials, param_importances
from analysis.plotting import draw_error_figure
from analysis.points import CHEMICAL_ACCURACY_MHA
from analysis.report import check_claims, completeness, plan_figures, run_report, sweep_figure
from analysis.wandb_loader import is_trial_record, wandb_row

REPO = Path(__file__).resolve().parents[1]
H2_EXACT = -1.174475  # Hartree, Kolos-Wolniewicz type (shared/reference/energies.csv)
H2_HF = -1.133630  # Hartree, HF limit of H2 at R = 1.4 bohr

optuna.logging.set_verbosity(optuna.logging.WARNING)


# ----------------------------------------------------------------------------- study builder


@dataclass
class Spec:
    """One trial to write: its params, error vs exact (mHa) and how it ended."""

    params: dict
    error_mha: float | None = None
    stderr_mha: float = 0.2
    state: str = "COMPLETE"
    network: str = "ferminet"
    steps: int = 200  # rows of metrics.csv (0: no metrics.csv, convergence not measured)
    converged: bool = True  # metrics.csv flattens onto the evaluated energy, else still drifts
    reason: str | None = None
    value: float | None = None  # objective; default error_mha
    run_id: str | None = None  # share a run directory (a retried trial)
    user_attrs: dict = field(default_factory=dict)


def make_study(root: Path, name: str, specs: list[Spec], grid: dict | None = None,
               distributions: dict | None = None, objective: str = "error_mha",
               reference: float | None = H2_EXACT) -> optuna.Study:
    """A real SQLite study under ``root`` with one run directory per spec (contract layout)."""
    root.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{root / 'studies.db'}")
    study.set_user_attr("sweep", name)
    study.set_user_attr("objective", objective)
    study.set_user_attr("output_root", str(root.resolve()))
    values: dict[str, list] = {}
    for spec in specs:
        for k, v in spec.params.items():
            values.setdefault(k, [])
            if v not in values[k]:
                values[k].append(v)
    dists = distributions or {k: CategoricalDistribution(v) for k, v in values.items()}
    for number, spec in enumerate(specs):
        run_dir = (root / name / (spec.run_id or f"t{number:04d}")).resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        summary = _summary(spec, number, name, reference)
        (run_dir / "summary.json").write_text(json.dumps(summary))
        if spec.steps and spec.state == "COMPLETE":
            _metrics(spec, summary, number).to_csv(run_dir / "metrics.csv", index=False)
        state = optuna.trial.TrialState[spec.state]
        value = (spec.value if spec.value is not None else spec.error_mha) if spec.state == "COMPLETE" else None
        attrs = {"run_dir": str(run_dir), "status": summary["status"], "network": spec.network, "system": "H2",
                 **({"fail_reason": spec.reason} if spec.reason else {}), **spec.user_attrs}
        study.add_trial(optuna.trial.create_trial(
            state=state, value=value, params=spec.params,
            distributions={k: dists[k] for k in spec.params}, user_attrs=attrs,
            system_attrs={"search_space": grid} if grid else None))
    return study


def _summary(spec: Spec, number: int, study: str, reference: float | None) -> dict:
    """summary.json of one spec: energy = exact + error (Hartree)."""
    status = {"COMPLETE": "completed", "FAIL": "failed", "PRUNED": "pruned"}.get(spec.state, "running")
    base = {"status": status, "reason": spec.reason, "system": "H2", "electrons": [1, 1],
            "network": spec.network, "seed": spec.params.get("seed", 0), "params": spec.params,
            "study": study, "trial": number}
    if spec.error_mha is None:
        return base
    energy = H2_EXACT + spec.error_mha / 1000.0
    return {**base, "energy": energy, "energy_stderr": spec.stderr_mha / 1000.0,
            "train_energy": energy, "variance": 0.01, "reference_energy": reference, "hf_energy": H2_HF,
            "error_mha": spec.error_mha if reference is not None else None,
            "error_stderr_mha": spec.stderr_mha if reference is not None else None,
            "config": {"batch_size": spec.params.get("batch_size", 256), "optim.iterations": spec.steps or 100},
            "param_count": 1000 + number, "iterations": spec.steps or 100, "wall_time_s": 12.5,
            "startup_s": 2.0, "ms_per_iteration": 4.5}


def training_energies(steps: int, final: float, converged: bool, number: int) -> np.ndarray:
    """Training energies (Hartree): a decay from 0.3 Ha above ``final`` onto it with 1 mHa of
    Gaussian noise per iteration (seeded by the trial number); unconverged runs also carry a
    linear drift of 20 mHa over the run, still falling at the end."""
    step = np.arange(steps)
    energy = final + 0.3 * np.exp(-step / 20.0) + 0.001 * np.random.default_rng(number).standard_normal(steps)
    if not converged:
        energy = energy + 0.020 * (1.0 - step / steps)
    return energy


def _metrics(spec: Spec, summary: dict, number: int) -> pd.DataFrame:
    """metrics.csv as the engine writes it (columns of docs/contracts.md)."""
    energy = training_energies(spec.steps, summary.get("energy", H2_EXACT), spec.converged, number)
    return pd.DataFrame({"step": np.arange(spec.steps), "energy": energy, "variance": 0.1, "pmove": 0.5,
                         "move_width": 0.2, "learning_rate": 0.05, "step_time_s": 0.004})


def width_depth_error(width: int, depth: int, seed: int) -> float:
    """Known errors: halves per doubling of width, depth 2 is 2/3 of depth 1, seeds ±0.3 mHa."""
    return 40.0 * (8 / width) * (1.5 if depth == 1 else 1.0) + (0.3 if seed else -0.3)


@pytest.fixture
def width_depth_root(tmp_path: Path) -> Path:
    """A width × depth study with 2 seeds per point, one RUNNING and one FAILED trial at width 64."""
    grid = {"network.width": [8, 16, 32, 64], "network.depth": [1, 2], "seed": [0, 1]}
    specs = [Spec({"network.width": w, "network.depth": d, "seed": s}, width_depth_error(w, d, s))
             for w in (8, 16, 32) for d in (1, 2) for s in (0, 1)]
    specs.append(Spec({"network.width": 64, "network.depth": 1, "seed": 0}, state="RUNNING"))
    specs.append(Spec({"network.width": 64, "network.depth": 2, "seed": 0}, state="FAIL",
                      reason="NonFiniteEnergy: NaN at step 12"))
    make_study(tmp_path / "runs", "width_depth", specs, grid=grid)
    return tmp_path / "runs"


def verdicts(claims: list) -> list:
    """The claims with a paper statement (the study-level notes left out)."""
    return [c for c in claims if c.topic != "study"]


def containers(ax) -> dict[str, object]:
    """Errorbar containers of an axes by label."""
    return {c.get_label(): c for c in ax.containers}


def errorbar_halfwidths(container) -> np.ndarray:
    """Half lengths of the vertical error bars of an errorbar container."""
    segments = container.lines[2][0].get_segments()
    return np.array([(seg[1][1] - seg[0][1]) / 2 for seg in segments])


def assert_error_figure_matches(fig, data: pd.DataFrame) -> None:
    """Every series of the plotted data is an errorbar line with the same x, y and error bars."""
    axes = [ax for ax in fig.axes if ax.get_visible()]
    panels = list(dict.fromkeys(data["panel"]))
    assert len(axes) == len(panels)
    for ax, panel in zip(axes, panels):
        rows = data[data["panel"] == panel]
        by_label = containers(ax)
        assert set(by_label) == set(rows["series"])
        for series, line in rows.groupby("series"):
            line = line.sort_values("x")
            c = by_label[series]
            np.testing.assert_allclose(c.lines[0].get_xdata(), line["x"].astype(float))
            np.testing.assert_allclose(c.lines[0].get_ydata(), line["y"].astype(float))
            np.testing.assert_allclose(errorbar_halfwidths(c), line["yerr"].astype(float), atol=1e-12)


# ----------------------------------------------------------------------------- loaders


def test_load_study_merges_storage_and_summaries(width_depth_root: Path):
    frame = analysis.load_study("width_depth", output_root=width_depth_root)
    assert list(frame.columns[:5]) == ["trial", "state", "network.width", "network.depth", "seed"]
    assert frame.attrs["params"] == ["network.width", "network.depth", "seed"]
    assert len(frame) == 14
    assert frame["state"].value_counts().to_dict() == {"COMPLETE": 12, "RUNNING": 1, "FAIL": 1}
    row = frame[frame["trial"] == 3].iloc[0]  # width 8, depth 2, seed 1
    assert (row["network.width"], row["network.depth"], row["seed"]) == (8, 2, 1)
    err = width_depth_error(8, 2, 1)
    assert row["energy"] == pytest.approx(H2_EXACT + err / 1000)
    assert row["energy_stderr"] == pytest.approx(0.0002)
    assert row["error_mha"] == pytest.approx(err)
    assert row["error_stderr_mha"] == pytest.approx(0.2)
    assert row["reference_energy"] == pytest.approx(H2_EXACT)
    assert row["correlation_pct"] == pytest.approx(100 * (H2_HF - row["energy"]) / (H2_HF - H2_EXACT))
    assert row["correlation_pct_stderr"] == pytest.approx(100 * 0.0002 / (H2_HF - H2_EXACT))
    assert (row["param_count"], row["wall_time_s"], row["ms_per_iteration"]) == (1003, 12.5, 4.5)
    assert (row["network"], row["system"], row["status"]) == ("ferminet", "H2", "completed")
    assert row["value"] == pytest.approx(err)
    assert Path(row["run_dir"]).name == "t0003" and Path(row["run_dir"]).is_dir()
    failed = frame[frame["state"] == "FAIL"].iloc[0]
    assert failed["reason"] == "NonFiniteEnergy: NaN at step 12"
    assert math.isnan(failed["energy"]) and math.isnan(failed["correlation_pct"])


def test_summary_wins_over_user_attrs_and_attrs_fill_gaps(tmp_path: Path):
    specs = [Spec({"network.width": 8}, 5.0, user_attrs={"energy": 123.0, "param_count": 7}),
             Spec({"network.width": 16}, None, state="RUNNING", user_attrs={"param_count": 99})]
    make_study(tmp_path, "w", specs)
    frame = analysis.load_study("w", output_root=tmp_path)
    assert frame.loc[0, "energy"] == pytest.approx(H2_EXACT + 0.005)  # summary.json, not the attr
    assert frame.loc[0, "param_count"] == 1000
    assert frame.loc[1, "param_count"] == 99  # no energy in a running summary: the attr fills in
    assert frame.loc[1, "network"] == "ferminet"


def test_moved_study_finds_its_run_directories(width_depth_root: Path, tmp_path: Path):
    moved = tmp_path / "elsewhere"
    shutil.move(str(width_depth_root), str(moved))
    frame = analysis.load_study("width_depth", output_root=moved)
    assert frame["run_dir"].str.startswith(str(moved.resolve())).all()
    assert frame["energy"].notna().sum() == 12


def test_load_history_long_form(width_depth_root: Path):
    history = analysis.load_history("width_depth", output_root=width_depth_root)
    assert list(history.columns[:4]) == ["trial", "network.width", "network.depth", "seed"]
    assert {"step", "energy", "variance", "pmove", "move_width", "learning_rate", "step_time_s"} <= set(history)
    assert len(history) == 12 * 200
    one = history[history["trial"] == 5]
    assert list(one["step"]) == list(range(200))
    assert (one["network.width"] == 16).all() and (one["seed"] == 1).all()
    final = H2_EXACT + width_depth_error(16, 1, 1) / 1000
    np.testing.assert_allclose(one["energy"], training_energies(200, final, True, 5))


def test_retried_trial_counted_once(tmp_path: Path):
    specs = [Spec({"network.width": 8}, 5.0, state="FAIL", reason="stale: worker died", run_id="t0000", steps=10),
             Spec({"network.width": 8}, 5.0, run_id="t0000", steps=10),
             Spec({"network.width": 16}, 2.0, steps=10)]
    make_study(tmp_path, "w", specs)
    frame = analysis.load_study("w", output_root=tmp_path)
    assert len(complete_trials(frame)) == 2
    history = analysis.load_history(trials=frame)
    assert sorted(history["trial"].unique()) == [1, 2]


def test_wandb_row_mapping_on_a_hand_built_record():
    # As ablate.tracking.wandb_sink writes a trial: flat config, swept values at their own keys and listed in
    # trial.swept; summary = summary.json less its nested config/params.
    record = {
        "id": "ab12cd34", "name": "width-t0003", "state": "finished", "job_type": "trial",
        "config": {"network.width": 32, "network.type": "ferminet", "seed": 1, "system.name": "LiH",
                   "trial.study": "width", "trial.number": 3, "trial.swept": ["network.width"],
                   "run_dir": "/scratch/runs/width/t0003"},
        "summary": {"status": "completed", "reason": None, "system": "LiH", "network": "ferminet",
                    "energy": -8.0605, "energy_stderr": 0.0004, "reference_energy": -8.070548,
                    "hf_energy": -7.98737, "param_count": 12345, "wall_time_s": 60.0, "ms_per_iteration": 11.0,
                    "iterations": 2000, "seed": 1, "study": "width", "trial": 3, "_runtime": 61},
    }
    row = wandb_row(record)
    assert (row["trial"], row["state"], row["system"], row["network"], row["seed"]) == (3, "COMPLETE", "LiH", "ferminet", 1)
    assert row[("param", "network.width")] == 32 and ("param", "seed") not in row
    assert row["error_mha"] == pytest.approx((-8.0605 + 8.070548) * 1000)
    assert row["error_stderr_mha"] == pytest.approx(0.4)
    assert row["correlation_pct"] == pytest.approx(100 * (-7.98737 + 8.0605) / (-7.98737 + 8.070548))
    assert row["run_dir"] == "/scratch/runs/width/t0003" and row["wandb_id"] == "ab12cd34"
    # A crashed run without a summary, config nested the way wandb.config.update({...}) nests it.
    crashed = wandb_row({"id": "x", "state": "crashed",
                         "config": {"trial": {"number": 4, "params": {"network.width": 8}}}, "summary": {}})
    assert (crashed["trial"], crashed["state"], crashed[("param", "network.width")]) == (4, "FAIL", 8)
    frame = build_frame([row, crashed], ["network.width"], {"study": "width"})
    assert list(frame.columns[:4]) == ["trial", "state", "network.width", "seed"]
    assert list(frame["network.width"]) == [32, 8]
    assert frame.columns[-1] == "wandb_id"
    assert not is_trial_record({"job_type": "analysis"}) and is_trial_record(record)


def test_enqueued_grid_points_are_listed_as_waiting(tmp_path: Path):
    # The sweep driver enqueues every grid point: a WAITING trial has its values in fixed_params.
    make_study(tmp_path, "width", [Spec({"network.width": 8}, 5.0)])
    study = optuna.load_study(study_name="width", storage=f"sqlite:///{tmp_path / 'studies.db'}")
    study.enqueue_trial({"network.width": 16})
    study.set_user_attr("space", ["network.width"])
    study.set_user_attr("n_planned", 3)
    frame = analysis.load_study("width", output_root=tmp_path)
    assert list(frame["state"]) == ["COMPLETE", "WAITING"] and list(frame["network.width"]) == [8, 16]
    status = completeness(frame)
    assert status.missing == ["network.width=16 (WAITING)"]
    assert status.line("width") == "study width: 1 of 2 trials complete (1 WAITING); 1 of 3 planned trials not created yet"


# ----------------------------------------------------------------------------- figures


def test_width_depth_figure_plots_seed_means(width_depth_root: Path):
    frame = analysis.load_study("width_depth", output_root=width_depth_root)
    assert plan_figures(frame) == ["width_depth", "training_curves"]
    data = S.width.width_depth_data(frame)
    fig = draw_error_figure(data)
    (ax,) = fig.axes
    lines = containers(ax)
    assert set(lines) == {"depth 1", "depth 2"}
    for depth in (1, 2):
        c = lines[f"depth {depth}"]
        np.testing.assert_allclose(c.lines[0].get_xdata(), [8, 16, 32])
        means = [np.mean([width_depth_error(w, depth, s) for s in (0, 1)]) for w in (8, 16, 32)]
        # error bars: standard errors of the mean over the two seeds, never below the reblocked 0.2/sqrt(2)
        spreads = [max(np.std([width_depth_error(w, depth, s) for s in (0, 1)], ddof=1) / math.sqrt(2),
                       math.sqrt(2 * 0.2**2) / 2) for w in (8, 16, 32)]
        np.testing.assert_allclose(c.lines[0].get_ydata(), means)
        np.testing.assert_allclose(errorbar_halfwidths(c), spreads)
    assert (data["n_seeds"] == 2).all() and (data["spread_kind"] == "seed std").all()
    np.testing.assert_allclose(data["stderr_combined"], math.sqrt(2 * 0.2**2) / 2)
    assert ax.get_yscale() == "log" and ax.get_xscale() == "log"
    assert not ax.spines["top"].get_visible() and not ax.spines["right"].get_visible()
    band = [p for p in ax.patches if p.get_label() == "chemical accuracy"]
    assert len(band) == 1 and band[0].get_y() + band[0].get_height() == pytest.approx(CHEMICAL_ACCURACY_MHA)


def test_negative_errors_are_clipped_to_their_error_bar(tmp_path: Path):
    specs = [Spec({"network.width": 8, "seed": 0}, 12.0), Spec({"network.width": 8, "seed": 1}, 12.4),
             Spec({"network.width": 16, "seed": 0}, -0.5), Spec({"network.width": 16, "seed": 1}, -0.3),
             Spec({"network.width": 32, "seed": 0}, 0.1), Spec({"network.width": 32, "seed": 1}, 0.3)]
    make_study(tmp_path, "width", specs)
    frame = analysis.load_study("width", output_root=tmp_path)
    data = S.width.width_data(frame)
    clipped = data[data["x"] == 16].iloc[0]
    assert clipped["clipped"] and clipped["mean"] == pytest.approx(-0.4)
    # the standard error of the mean (0.1), never below the reblocked one: sqrt(2 x 0.2^2) / 2
    assert clipped["y"] == pytest.approx(math.sqrt(2 * 0.2**2) / 2)
    fig = draw_error_figure(data)
    marker = [ln for ln in fig.axes[0].lines if "error ≤ 0" in str(ln.get_label())]
    assert len(marker) == 1 and list(marker[0].get_xdata()) == [16.0]
    claims = check_claims(frame, {"width": data})
    width = [c for c in claims if c.topic == "width"][0]
    # on ln(error) each seed is floored at its reblocked error (0.2 mHa), which the evidence says
    assert ("errors within their reblocked standard error of zero counted as that error before the log (seeds floored "
            "at 16 (2), 32 (1))") in width.evidence
    assert any(c.topic == "study" and "<= 0" in c.statement and "width: network.width=16" in c.evidence for c in claims)


@pytest.mark.parametrize("network_key", ["network", "network.type", None],
                         ids=["network-group-param", "network.type-param", "network-from-summary"])
def test_determinants_figure_puts_both_ansatzes_on_one_axes(tmp_path: Path, network_key: str | None):
    specs = []
    for net, errors in (("ferminet", {1: 6.0, 4: 3.0, 16: 2.9}), ("slater_jastrow", {1: 60.0, 4: 45.0, 16: 40.0})):
        for k, err in errors.items():
            params = {"network.determinants": k, **({network_key: net} if network_key else {})}
            specs.append(Spec(params, err, network=net))
    make_study(tmp_path, "determinants", specs)
    frame = analysis.load_study("determinants", output_root=tmp_path)
    assert plan_figures(frame) == ["determinants", "training_curves"]
    data = S.determinants.determinants_data(frame)
    fig = draw_error_figure(data)
    (ax,) = fig.axes
    lines = containers(ax)
    assert set(lines) == {"FermiNet", "Slater–Jastrow"}
    np.testing.assert_allclose(lines["FermiNet"].lines[0].get_ydata(), [6.0, 3.0, 2.9])
    np.testing.assert_allclose(lines["Slater–Jastrow"].lines[0].get_xdata(), [1, 4, 16])
    np.testing.assert_allclose(errorbar_halfwidths(lines["FermiNet"]), [0.2, 0.2, 0.2])  # one seed: stderr
    assert ax.get_xscale() == "log" and ax.xaxis.get_transform().base == 2
    claims = {c.statement: c for c in check_claims(frame, {"determinants": data})}
    versus = claims["FermiNet is more accurate than Slater–Jastrow at the same number of determinants"]
    # a comparison needs two seeds per point (tests/test_claims_rules.py has the supported case)
    assert versus.verdict == "inconclusive" and "K=4: FermiNet 3.00 ± 0.20 mHa" in versus.evidence
    assert versus.evidence.startswith("one seed at K 1, 4, 16")
    fermi = claims["FermiNet gains little from more determinants"]
    assert fermi.verdict == "inconclusive" and "one seed at K 1, 4, 16: a test needs >= 2 seeds per point" in fermi.evidence


def test_determinants_with_one_ansatz_names_it_and_makes_no_comparison(tmp_path: Path):
    make_study(tmp_path, "determinants", [Spec({"network.determinants": k}, e) for k, e in ((1, 6.0), (4, 3.0))])
    frame = analysis.load_study("determinants", output_root=tmp_path)
    data = S.determinants.determinants_data(frame)
    assert set(containers(draw_error_figure(data).axes[0])) == {"FermiNet"}
    claims = {c.statement: c for c in check_claims(frame, {"determinants": data})}
    versus = claims["FermiNet is more accurate than Slater–Jastrow at the same number of determinants"]
    assert versus.verdict == "inconclusive" and versus.evidence == "only FermiNet has complete trials: no comparison"


def test_depth_and_pairwise_saturation_claims(tmp_path: Path):
    specs = [Spec({"network.depth": d, "seed": s}, e + 0.05 * (2 * s - 1))
             for d, e in ((1, 10.0), (2, 5.0), (3, 4.9), (4, 5.05)) for s in (0, 1)]
    make_study(tmp_path, "depth", specs)
    frame = analysis.load_study("depth", output_root=tmp_path)
    fig = S.depth.depth_figure(frame)
    np.testing.assert_allclose(fig.axes[0].containers[0].lines[0].get_ydata(), [10.0, 5.0, 4.9, 5.05])
    (claim,) = verdicts(check_claims(frame, {"depth": S.depth.depth_data(frame)}))
    assert claim.verdict == "supported", claim.evidence
    assert claim.evidence.startswith("the error falls 1.98x from depth 1 to 4 and no value beyond depth 2 is better "
                                     "than it by more than 1.6 mHa (chemical accuracy)")

    specs = [Spec({"network.pairwise_width": w, "seed": s}, e + 0.05 * (2 * s - 1))
             for w, e in ((4, 16.0), (8, 8.0), (16, 4.0)) for s in (0, 1)]
    make_study(tmp_path / "p", "pairwise", specs)
    frame = analysis.load_study("pairwise", output_root=tmp_path / "p")
    (claim,) = verdicts(check_claims(frame, {"pairwise_width": S.pairwise.pairwise_width_data(frame)}))
    assert claim.verdict == "not supported", claim.evidence
    assert claim.evidence.startswith("no saturation in this range: the error still falls by more than 1.6 mHa "
                                     "(chemical accuracy) from pairwise width 8 to 16 (4 mHa)")


def test_width_claim_names_the_better_model_and_depth_needs_three_points(width_depth_root: Path):
    # width_depth_error halves per doubling of the width: a power law, exponent -1
    frame = analysis.load_study("width_depth", output_root=width_depth_root)
    assert complete_trials(frame)["converged"].all()
    claims = check_claims(frame, {"width_depth": S.width.width_depth_data(frame)})
    width = [c for c in claims if c.topic == "width" and c.kind == "limit"]
    assert [c.statement for c in width] == [f"error falls as a power law of one-electron width (depth {d})" for d in (1, 2)]
    assert [c.verdict for c in width] == ["supported", "supported"]
    assert "p = -1.00 ±" in width[0].evidence and "error x 0.50 per doubling" in width[0].evidence
    assert "power law fits better" in width[0].evidence
    depth = [c for c in claims if c.topic == "depth"]
    assert len(depth) == 3 and all(c.verdict == "inconclusive" for c in depth)
    assert all("only 2 depth values (1, 2): a trend needs at least 3" in c.evidence for c in depth)


def test_sampler_figure_error_and_error_bar_panels(tmp_path: Path):
    specs = [Spec({"mcmc.steps": s, "batch_size": b}, 5.0 + 10.0 / s, stderr_mha=0.4 * math.sqrt(64 / b) * (2 / s) ** 0.1)
             for s in (2, 5, 10) for b in (64, 256, 1024)]
    make_study(tmp_path, "sampler", specs)
    frame = analysis.load_study("sampler", output_root=tmp_path)
    assert plan_figures(frame) == ["sampler", "training_curves"]
    data = S.sampler.sampler_data(frame)
    fig = draw_error_figure(data)
    assert_error_figure_matches(fig, data)
    bars = data[(data["panel"] == "stderr_mha vs batch_size") & (data["series"] == "steps 2")]
    np.testing.assert_allclose(bars["y"], [0.4, 0.2, 0.1])
    claims = {c.statement: c for c in check_claims(frame, {"sampler": data})}
    walkers = claims["the error bar shrinks like 1/sqrt(walkers) (steps 2)"]
    assert walkers.verdict == "supported" and "fitted exponent p = -0.50" in walkers.evidence
    assert "one seed per batch size: t on the unweighted least-squares slope" in walkers.evidence


def test_tuning_study_guards_importances_and_plots_history(tmp_path: Path):
    dists = {"optim.lr": FloatDistribution(1e-3, 1e-1, log=True), "optim.damping": FloatDistribution(1e-4, 1e-2, log=True)}
    lrs = [0.002, 0.05, 0.01, 0.03]
    specs = [Spec({"optim.lr": lr, "optim.damping": 1e-3}, 2.0 + abs(math.log10(lr) + 1.5)) for lr in lrs]
    study = make_study(tmp_path, "tune", specs, distributions=dists)
    frame = analysis.load_study("tune", output_root=tmp_path)
    assert plan_figures(frame) == ["importances", "optimization_history", "training_curves"]
    importances, reason = param_importances(study)
    assert importances is None and "too few complete trials" in reason
    data = S.tuning.optimization_history_data(frame)
    fig = S.tuning.draw_optimization_history(data)
    trials_line, best_line = fig.axes[0].lines
    values = [2.0 + abs(math.log10(lr) + 1.5) for lr in lrs]
    np.testing.assert_allclose(trials_line.get_ydata(), values)
    np.testing.assert_allclose(best_line.get_ydata(), np.minimum.accumulate(values))

    many = [Spec({"optim.lr": 10 ** (-3 + 2 * i / 11), "optim.damping": 10 ** (-4 + (i % 3))}, 1.0 + abs(-3 + 2 * i / 11 + 1.5) * 5,
                 steps=0) for i in range(12)]
    study = make_study(tmp_path / "many", "tune", many, distributions=dists)
    importances, reason = param_importances(study)
    assert reason is None and set(importances["param"]) == {"optim.lr", "optim.damping"}
    fig = S.tuning.importances_figure(importances)
    widths = sorted(p.get_width() for p in fig.axes[0].patches)
    np.testing.assert_allclose(widths, sorted(importances["importance"]))
    assert sum(widths) == pytest.approx(1.0)

    result = run_report("tune", output_root=tmp_path / "many", stream=io.StringIO())
    assert set(result.figures) == {"importances", "optimization_history", "energy_variance"}  # + issue 10
    assert "training_curves: not drawn (no history to plot)" in result.notes  # no metrics.csv written
    csv = pd.read_csv(result.figures["importances"][2])
    ax = result.drawn["importances"].axes[0]
    label_at = {round(t.get_position()[1]): t.get_text() for t in ax.get_yticklabels()}
    plotted = {label_at[round(b.get_y() + b.get_height() / 2)]: b.get_width() for b in ax.patches}
    assert plotted == pytest.approx(dict(zip(csv["param"], csv["importance"])))
    top = max(ax.patches, key=lambda b: b.get_y())
    assert label_at[round(top.get_y() + top.get_height() / 2)] == csv["param"].iloc[0]  # largest on top
    claims = {c.statement: c for c in result.claims}
    assert claims["best trial"].evidence.startswith("t8: error_mha")


def test_study_without_reference_energy_plots_energy(tmp_path: Path):
    specs = [Spec({"network.width": w}, e) for w, e in ((8, 20.0), (16, 10.0))]
    make_study(tmp_path, "width", specs, reference=None)
    frame = analysis.load_study("width", output_root=tmp_path)
    assert frame["error_mha"].isna().all() and frame["correlation_pct"].isna().all()
    data = S.width.width_data(frame)
    assert (data["y_name"] == "energy").all()
    np.testing.assert_allclose(data["y"], [H2_EXACT + 0.020, H2_EXACT + 0.010])
    fig = draw_error_figure(data)
    assert fig.axes[0].get_yscale() == "linear" and not fig.axes[0].patches  # no chemical-accuracy band
    (claim,) = verdicts(check_claims(frame, {"width": data}))
    assert claim.verdict == "inconclusive" and "no reference energy" in claim.evidence


def test_training_curves_show_the_whole_run_above_the_reference(width_depth_root: Path):
    history = analysis.load_history("width_depth", output_root=width_depth_root)
    data = S.training_curves.training_curves_data(history)
    assert (data["window"] == 20).all()  # 200 iterations: a tenth
    fig = S.training_curves.draw_training_curves(data)
    (ax,) = fig.axes
    line = [ln for ln in ax.lines if ln.get_gid() == "trial 4"][0]
    raw = history[history["trial"] == 4]["energy"]
    np.testing.assert_allclose(line.get_ydata(), 1000 * (raw.rolling(20, min_periods=1).mean() - H2_EXACT))
    np.testing.assert_allclose(line.get_xdata(), np.arange(200))
    assert ax.get_yscale() == "symlog"
    low, high = ax.get_ylim()  # nothing cropped: the first (largest) energies are inside the axes
    assert low <= data["error_smoothed_mha"].min() and high >= data["error_smoothed_mha"].max() > 250
    band = [p for p in ax.patches if p.get_label() == "chemical accuracy"]
    assert len(band) == 1
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "reference energy" in legend and f"chemical accuracy (< {CHEMICAL_ACCURACY_MHA:g} mHa)" in legend
    assert {"width 8", "width 16", "width 32"} <= set(legend)  # 12 trials: one entry per colour group
    caption = fig._supxlabel.get_text().replace("\n", " ")
    assert "trailing mean over 20 iterations" in caption and "whole run" in caption
    assert "H2" in fig._suptitle.get_text() and "200 iterations" in fig._suptitle.get_text()
    thinned = S.training_curves.training_curves_data(history, max_points=7)
    assert thinned.groupby("trial").size().max() <= 8 and (thinned.groupby("trial")["step"].max() == 199).all()


# ----------------------------------------------------------------------------- report and CLI


def test_report_writes_every_figure_and_csv_matches_plot(width_depth_root: Path):
    out = []

    class Capture:
        def write(self, text):
            out.append(text)

    result = run_report("width_depth", output_root=width_depth_root, stream=Capture())
    text = "".join(out)
    assert "study width_depth: 12 of 14 trials complete (1 FAIL, 1 RUNNING)" in text
    assert "network.width=64, network.depth=2, seed=1 (not started)" in text
    assert "network.width=64, network.depth=2, seed=0 (FAIL)" in text
    assert "[supported] error falls as a power law of one-electron width (depth 1)" in text
    assert set(result.figures) == {"width_depth", "training_curves", "training_limit", "energy_variance"}  # + issue 10
    for name, paths in result.figures.items():
        assert [p.suffix for p in paths] == [".png", ".pdf", ".csv"] and all(p.stat().st_size > 0 for p in paths)
        assert paths[0].parent == width_depth_root / "width_depth" / "figures"
    csv = pd.read_csv(result.figures["width_depth"][2])
    assert_error_figure_matches(result.drawn["width_depth"], csv)
    curves = pd.read_csv(result.figures["training_curves"][2])
    fig = result.drawn["training_curves"]
    for trial, run in curves.groupby("trial"):
        (line,) = [ln for ln in fig.axes[0].lines if ln.get_gid() == f"trial {trial}"]
        np.testing.assert_allclose(line.get_xdata(), run["step"])
        np.testing.assert_allclose(line.get_ydata(), run["error_smoothed_mha"])
    report = (width_depth_root / "width_depth" / "report.md").read_text()
    assert "![width_depth](figures/width_depth.png)" in report and "## Claims" in report
    assert len(pd.read_csv(width_depth_root / "width_depth" / "trials.csv")) == 14


def test_matplotlib_is_imported_lazily():
    code = "import sys, analysis, analysis.plotting, analysis.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m analysis ARGS`` in a subprocess with the repository importable."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "analysis", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_cli_writes_files_and_unknown_study_exits_2(width_depth_root: Path):
    ok = run_cli("width_depth", "--output-root", str(width_depth_root), cwd=width_depth_root)
    assert ok.returncode == 0, ok.stderr
    names = sorted(p.name for p in (width_depth_root / "width_depth" / "figures").iterdir())
    assert names == sorted(f"{n}.{e}" for n in ("width_depth", "training_curves", "training_limit", "energy_variance")
                           for e in ("png", "pdf", "csv"))  # + issue 10: limits
    bad = run_cli("nope", "--output-root", str(width_depth_root), cwd=width_depth_root)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "unknown study 'nope'" in bad.stderr and "width_depth" in bad.stderr


def test_cli_empty_study_and_missing_storage_exit_2(tmp_path: Path, capsys):
    from analysis.__main__ import main

    make_study(tmp_path, "empty", [Spec({"network.width": 8}, state="RUNNING"),
                                   Spec({"network.width": 16}, state="FAIL", reason="boom")])
    assert main(["empty", "--output-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no complete trials" in err and "1 RUNNING" in err
    nowhere = tmp_path / "nowhere"
    assert main(["width", "--output-root", str(nowhere)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no study storage" in err
    assert not nowhere.exists()  # the loader never creates a storage


def test_sweep_figure_is_the_studys_main_figure(width_depth_root: Path):
    fig = sweep_figure("width_depth", storage=f"sqlite:///{width_depth_root / 'studies.db'}")
    assert set(containers(fig.axes[0])) == {"depth 1", "depth 2"}
    import wandb  # ablate.tracking.wandb_sink.log_study logs it as wandb.Image(fig)

    assert wandb.Image(fig).image.size[0] > 0
