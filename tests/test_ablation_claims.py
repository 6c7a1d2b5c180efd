"""The ablation studies' figures and claims (analysis/studies/): optimizer, |r| features, sampler moves, batch.

Every study is a real Optuna SQLite storage with one real run directory per trial (summary.json and
metrics.csv as the engine writes them), built by tests/test_analysis.py's ``make_study``; each
trial's summary.json then gets its system, electron counts, spike count and timing as a real run of
that system records them. Each study is made to need exactly one rule.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from test_analysis import Spec, make_study, verdicts

import analysis
from analysis import studies as S
from analysis import verdicts as C
from analysis.loaders import complete_trials
from analysis.report import check_claims, plan_figures, run_report

STEPS = 1000  # training iterations of every synthetic trial (a 200-iteration tail: convergence is clear-cut)
ELECTRONS = {"H2": (1, 1), "He": (1, 1), "Li": (2, 1), "Be": (2, 2), "B": (3, 2), "C": (4, 2), "LiH": (2, 2)}


def ablation_study(root: Path, name: str, points: list[tuple[dict, float, dict]], seeds=(0, 1), spread=0.03,
                   stderr_mha=0.1, unconverged=()) -> pd.DataFrame:
    """A study of ``points`` = (params, error in mHa, summary.json fields) repeated over ``seeds``
    (error x (1 ± spread)), 1000 training iterations each; trials listed in ``unconverged`` (by number) still drift at the end.
    The system is the ``system`` param (H2 when not swept), with its electron counts."""
    specs, patches = [], []
    for params, error, patch in points:
        for seed in seeds:
            sign = 1 if seed % 2 else -1
            specs.append(Spec({**params, "seed": seed} if len(seeds) > 1 else dict(params),
                              error * (1 + (sign * spread if len(seeds) > 1 else 0)), stderr_mha=stderr_mha,
                              steps=STEPS, converged=len(specs) not in unconverged))
            system = params.get("system", "H2")
            patches.append({"system": system, "electrons": list(ELECTRONS[system]), **patch})
    make_study(root, name, specs)
    for number, patch in enumerate(patches):
        path = root / name / f"t{number:04d}" / "summary.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **patch}))
    return analysis.load_study(name, output_root=root)


def claims_of(frame: pd.DataFrame, kind: str) -> dict[str, C.Claim]:
    """The verdict claims of one figure kind, by statement."""
    data = {"optimizer": S.optimizer.optimizer_data, "features": S.features.features_data, "sampler_moves": S.sampler_moves.sampler_moves_data,
            "batch": S.batch.batch_data}[kind](frame)
    return {c.statement: c for c in verdicts(check_claims(frame, {kind: data}))}


def assert_png(fig, path: Path) -> None:
    """The figure saves as a non-empty PNG."""
    fig.savefig(path, dpi=60)
    assert path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- optimizer


KFAC = {"Li": 2.0, "Be": 3.0, "B": 4.0, "C": 5.0}  # mHa


def optimizer_study(root: Path, ratio, **kw) -> pd.DataFrame:
    """KFAC errors as in KFAC; Adam's = ratio(electrons) x KFAC's."""
    points = []
    for system, kfac in KFAC.items():
        points.append(({"optim": "kfac", "system": system}, kfac, {}))
        points.append(({"optim": "adam", "system": system}, ratio(sum(ELECTRONS[system])) * kfac, {}))
    return ablation_study(root, "optimizer", points, **kw)


def growing(n: float) -> float:
    return 10.0 * math.exp(0.35 * (n - 2))  # 14.2 (Li) .. 40.6 (C)


def test_optimizer_study_plans_its_figure_and_kfac_10x_and_growth_are_supported(tmp_path: Path):
    frame = optimizer_study(tmp_path, growing)
    assert plan_figures(frame) == ["optimizer", "training_curves"]  # optim is a grid axis, not a tuning key
    assert list(complete_trials(frame).drop_duplicates("system")["n_electrons"]) == [3, 4, 5, 6]
    data = S.optimizer.optimizer_data(frame)
    assert list(data.drop_duplicates("x")["x"]) == ["Li", "Be", "B", "C"]  # electron order, not alphabetical
    claims = claims_of(frame, "optimizer")
    tenfold = claims[S.optimizer.OPTIMIZER_FACTOR_STATEMENT]
    assert tenfold.verdict == C.SUPPORTED, tenfold.evidence
    assert tenfold.evidence.startswith("above 10x on the mean over 4 systems: x24;")
    assert "averaged over systems vs ln 10: t = " in tenfold.evidence
    assert "Li (3 e): Adam 28.38 ± 0.85 mHa vs KFAC 2.00 ± 0.07 mHa, ratio of geometric means 14.2" in tenfold.evidence
    growth = claims[S.optimizer.OPTIMIZER_GROWTH_STATEMENT]
    assert growth.verdict == C.SUPPORTED, growth.evidence
    assert "b = 0.350 ±" in growth.evidence  # the slope put in


def test_optimizer_ratio_of_3_is_not_10x_and_constant_ratio_has_no_trend(tmp_path: Path):
    claims = claims_of(optimizer_study(tmp_path, lambda n: 3.0), "optimizer")
    tenfold = claims[S.optimizer.OPTIMIZER_FACTOR_STATEMENT]
    assert tenfold.verdict == C.NOT_SUPPORTED
    assert tenfold.evidence.startswith("below 10x on the mean over 4 systems: x3;")
    growth = claims[S.optimizer.OPTIMIZER_GROWTH_STATEMENT]
    assert growth.verdict == C.INCONCLUSIVE and growth.evidence.startswith("no significant trend")


def test_optimizer_ratio_falling_with_electrons_is_not_supported(tmp_path: Path):
    claims = claims_of(optimizer_study(tmp_path, lambda n: 60.0 * math.exp(-0.3 * (n - 3))), "optimizer")
    assert claims[S.optimizer.OPTIMIZER_GROWTH_STATEMENT].verdict == C.NOT_SUPPORTED
    assert claims[S.optimizer.OPTIMIZER_GROWTH_STATEMENT].evidence.startswith("the ratio falls with electrons")
    assert claims[S.optimizer.OPTIMIZER_FACTOR_STATEMENT].verdict == C.SUPPORTED  # still > 10x everywhere (60 .. 24)


def test_optimizer_claims_over_systems_are_one_test_each(tmp_path: Path):
    """Ratios 12, 40, 25 and 200 on Li, Be, B, C: one test of the mean ln ratio over the systems
    (x39, far above 10x) and one of its slope against electrons; no conjunction over systems, so
    Li's 12x, on its own not resolved from 10x, does not sink the claim."""
    ratio = {3: 12.0, 4: 40.0, 5: 25.0, 6: 200.0}
    claims = claims_of(optimizer_study(tmp_path, ratio.get, spread=0.06), "optimizer")
    tenfold = claims[S.optimizer.OPTIMIZER_FACTOR_STATEMENT]
    assert tenfold.verdict == C.SUPPORTED, tenfold.evidence
    assert tenfold.evidence.startswith("above 10x on the mean over 4 systems: x39")
    growth = claims[S.optimizer.OPTIMIZER_GROWTH_STATEMENT]
    assert growth.verdict == C.SUPPORTED, growth.evidence
    assert "Welch t on the least-squares slope of ln(Adam/KFAC) vs electrons" in growth.evidence


def test_optimizer_comparisons_do_not_wait_for_convergence_and_name_their_budget(tmp_path: Path):
    frame = optimizer_study(tmp_path, growing, unconverged=(2, 9))
    claims = claims_of(frame, "optimizer")
    tenfold = claims[S.optimizer.OPTIMIZER_FACTOR_STATEMENT]
    assert tenfold.verdict == C.SUPPORTED, tenfold.evidence
    assert tenfold.kind == C.COMPARISON and tenfold.scope == "at 1000 iterations x 256 walkers, 2 seeds per point"
    assert tenfold.render().startswith(f"[supported] {S.optimizer.OPTIMIZER_FACTOR_STATEMENT}: at 1000 iterations x "
                                       "256 walkers, 2 seeds per point; above 10x")
    assert "ln ratio at mid-training -> end of training" in tenfold.evidence
    assert all("not converged" not in c.evidence for c in claims.values())


def test_optimizer_weaker_comparison_is_stated_per_system_when_10x_is_refuted(tmp_path: Path):
    ratio = {3: 1.2, 4: 2.5, 5: 2.9, 6: 2.6}  # the quick-scale ratios of the issue that asked for this
    claims = claims_of(optimizer_study(tmp_path, ratio.get, spread=0.05), "optimizer")
    assert claims[S.optimizer.OPTIMIZER_FACTOR_STATEMENT].verdict == C.NOT_SUPPORTED
    lower = {s: claims[f"{S.optimizer.OPTIMIZER_LOWER_STATEMENT} ({s})"] for s in KFAC}
    assert [lower[s].verdict for s in ("Be", "B", "C")] == [C.SUPPORTED] * 3
    assert lower["Be"].evidence.startswith("above 1x on Be: x2.5; one-sided p")
    assert lower["Li"].verdict == C.INCONCLUSIVE  # 2.4 vs 2.0 mHa, two seeds each: Welch t on 2 df
    assert lower["Li"].evidence.startswith("x1.2 on Li is not resolved from 1x")
    assert "seeds per point would decide it" in lower["Li"].evidence
    assert lower["Be"].effect == "adam/kfac error ratio 2.5"


def test_optimizer_with_one_optimiser_makes_no_comparison(tmp_path: Path):
    points = [({"optim": "adam", "system": s}, 10 * e, {}) for s, e in KFAC.items()]
    frame = ablation_study(tmp_path, "optimizer", points)
    claims = claims_of(frame, "optimizer")
    assert all(c.verdict == C.INCONCLUSIVE for c in claims.values())
    assert claims[S.optimizer.OPTIMIZER_FACTOR_STATEMENT].evidence.startswith("only Adam has complete trials")


def test_optimizer_figure_draws_both_panels(tmp_path: Path):
    frame = optimizer_study(tmp_path, growing)
    data = S.optimizer.optimizer_data(frame)
    fig = S.optimizer.draw_optimizer(data)
    left, right = fig.axes
    assert left.get_yscale() == "log" and right.get_yscale() == "log"
    assert [t.get_text() for t in left.get_xticklabels()] == ["Li\n3 e⁻", "Be\n4 e⁻", "B\n5 e⁻", "C\n6 e⁻"]
    by_label = {c.get_label(): c for c in left.containers}
    assert set(by_label) == {"KFAC", "Adam"}
    kfac = data[data["level"] == "kfac"]
    np.testing.assert_allclose(by_label["KFAC"].lines[0].get_ydata(), kfac["y"])
    (ratio,) = right.containers
    np.testing.assert_allclose(ratio.lines[0].get_ydata(), [growing(n) for n in (3, 4, 5, 6)], rtol=1e-3)
    assert "10x" in [t.get_text() for t in right.get_legend().get_texts()]
    caption = fig._supxlabel.get_text().replace("\n", " ")
    assert "mean over 2 seeds" in caption and "Right: the ratio of the seeds' geometric mean errors (Adam / KFAC error ratio)" in caption
    assert_png(fig, tmp_path / "optimizer.png")


# ----------------------------------------------------------------------------- features


FEATURES_SYSTEMS = {"He": 1.0, "Li": 2.0, "LiH": 3.0}


def features_study(root: Path, factor: float, **kw) -> pd.DataFrame:
    points = []
    for system, error in FEATURES_SYSTEMS.items():
        points.append(({"network.distance_features": True, "system": system}, error, {}))
        points.append(({"network.distance_features": False, "system": system}, factor * error, {}))
    return ablation_study(root, "features", points, **kw)


FEATURES = S.features.FEATURES_STATEMENT + " (at least 3x)"


def test_features_far_higher_without_is_supported_and_figure_draws(tmp_path: Path):
    frame = features_study(tmp_path, 10.0)
    assert plan_figures(frame) == ["features", "training_curves"]
    claim = claims_of(frame, "features")[FEATURES]
    assert claim.verdict == C.SUPPORTED, claim.evidence
    assert "He (2 e): without |r| features 10.00 ± 0.30 mHa vs with |r| features 1.00 ± 0.07 mHa, ratio of geometric means 10" in claim.evidence
    assert claim.evidence.startswith("above 3x on the mean over 3 systems: x10")
    per_system = [c for s, c in claims_of(frame, "features").items() if s.startswith(FEATURES + " (")]
    assert [c.statement for c in per_system] == [f"{FEATURES} ({s})" for s in ("He", "Li", "LiH")]
    fig = S.features.draw_features(S.features.features_data(frame))
    assert {c.get_label() for c in fig.axes[0].containers} == {"with |r| features", "without |r| features"}
    assert_png(fig, tmp_path / "features.png")


def test_features_slightly_higher_is_not_far_higher(tmp_path: Path):
    claim = claims_of(features_study(tmp_path, 1.3), "features")[FEATURES]
    assert claim.verdict == C.NOT_SUPPORTED
    assert claim.evidence.startswith("below 3x on the mean over 3 systems: x1.3")


def test_features_noisy_ratio_near_3_is_inconclusive(tmp_path: Path):
    claim = claims_of(features_study(tmp_path, 3.5, spread=0.2), "features")[FEATURES]
    assert claim.verdict == C.INCONCLUSIVE and claim.evidence.startswith("x3.5 on the mean over 3 systems is not resolved from 3x")


def test_features_comparison_does_not_wait_for_convergence(tmp_path: Path):
    # t5 (Li, with |r| features) still drifts down at the end: the gap it leaves is opening, not closing
    claim = claims_of(features_study(tmp_path, 10.0, unconverged=(5,)), "features")[FEATURES]
    assert claim.verdict == C.SUPPORTED, claim.evidence
    assert claim.scope == "at 1000 iterations x 256 walkers, 2 seeds per point"


def test_features_gap_closing_over_training_is_inconclusive(tmp_path: Path):
    # every trial without |r| features still falls 20 mHa over its run: 4x at the end, but the
    # log ratio ln W - ln F - ln 3 shrinks from mid-training to the end and would be gone in 40 % more
    without = (2, 3, 6, 7, 10, 11)
    claim = claims_of(features_study(tmp_path, 4.0, unconverged=without), "features")[FEATURES]
    assert claim.verdict == C.INCONCLUSIVE, claim.evidence
    assert claim.evidence.startswith("He (gap closing: the ln ratio shrank from")


def test_a_ratio_that_holds_while_both_errors_fall_is_stable(tmp_path: Path):
    """6x at the end: the absolute gap shrinks as the runs without |r| features still fall, but the
    ratio would stay above 3x for 40 % more training at its rate of shrinking: supported (issue
    31's 14.6x features study was wrongly inconclusive under a rule on the absolute gap)."""
    without = (2, 3, 6, 7, 10, 11)
    claim = claims_of(features_study(tmp_path, 6.0, unconverged=without), "features")[FEATURES]
    assert claim.verdict == C.SUPPORTED, claim.evidence
    assert "ln ratio at mid-training -> end of training (training-window energies): He +1.65 ± 0.06 -> +1.06" in claim.evidence


def test_features_trials_of_unequal_budget_are_not_compared(tmp_path: Path):
    frame = features_study(tmp_path, 10.0)
    path = tmp_path / "features" / "t0006" / "summary.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "iterations": 2000}))
    claim = claims_of(analysis.load_study("features", output_root=tmp_path), "features")[FEATURES]
    assert claim.verdict == C.INCONCLUSIVE and claim.scope == "at unequal budgets"
    assert claim.evidence.startswith("unequal budgets: 1000 iterations x 256 walkers")
    assert "trials of mixed or unrecorded budgets (without |r| features at system Li)" in claim.evidence


# ----------------------------------------------------------------------------- sampler moves


def sampler_study(root: Path, spikes: dict, errors: dict, ms: dict, seeds=(0,), **kw) -> pd.DataFrame:
    """method x moves x (Li, Be); ``spikes[method]`` per trial, ``errors[(moves, system)]`` (mHa),
    ``ms[moves]`` ms per training iteration (1000 iterations per trial)."""
    points = []
    for system in ("Li", "Be"):
        for method in ("mh", "hmc"):
            for moves in ("all", "one"):
                points.append(({"mcmc.moves": moves, "mcmc.method": method, "system": system},
                               errors[(moves, system)], {"energy_spikes": spikes[method], "ms_per_iteration": ms[moves]}))
    return ablation_study(root, "sampler_moves", points, seeds=seeds, **kw)


ERRORS_ONE_BETTER = {("all", "Li"): 10.0, ("one", "Li"): 9.0, ("all", "Be"): 20.0, ("one", "Be"): 12.0}
SPIKES, MOVES = S.sampler_moves.SPIKES_STATEMENT, S.sampler_moves.MOVES_STATEMENT


def test_hmc_spikes_and_one_electron_moves_win_at_matched_cost(tmp_path: Path):
    frame = sampler_study(tmp_path, {"mh": 0, "hmc": 4}, ERRORS_ONE_BETTER, {"all": 10.0, "one": 10.5}, seeds=(0, 1))
    assert plan_figures(frame) == ["sampler_moves", "training_curves"]
    claims = claims_of(frame, "sampler_moves")
    spikes = claims[SPIKES]
    assert spikes.verdict == C.SUPPORTED and spikes.evidence.startswith("HMC trials spike, MH trials never do")
    assert "HMC: 8 of 8 trials spiked (32 spikes in 8000 training iterations" in spikes.evidence
    assert "one-sided p <1e-4 for" in spikes.evidence and "Fisher's exact test for HMC more" in spikes.evidence
    assert spikes.scope == "at 1000 iterations x 256 walkers, 2 seeds per point"
    moves = claims[MOVES]
    assert moves.verdict == C.SUPPORTED, moves.evidence
    assert moves.scope == "at equal training time (within 10%), 2 seeds per point"
    assert "larger systems: more than 3.5 electrons" in moves.evidence
    assert "Be (4 e): one-electron 12.00 ± 0.36 mHa in 10.5 s, all-electron 20.00 ± 0.60 mHa in 10.0 s" in moves.evidence
    assert "smaller systems (not judged): Li" in moves.evidence


def test_spikes_clustered_in_one_trial_do_not_make_the_claim(tmp_path: Path):
    # 40 spikes, all in one HMC trial: pooled over iterations that would look overwhelming
    sampler_study(tmp_path, {"mh": 0, "hmc": 0}, ERRORS_ONE_BETTER, {"all": 10.0, "one": 10.5}, seeds=(0, 1))
    path = tmp_path / "sampler_moves" / "t0004" / "summary.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "energy_spikes": 40}))
    spikes = claims_of(analysis.load_study("sampler_moves", output_root=tmp_path), "sampler_moves")[SPIKES]
    assert spikes.verdict == C.INCONCLUSIVE
    assert spikes.evidence.startswith("neither more spiking nor a rate within the margin is shown; one-sided p 0.5 for")
    assert "HMC: 1 of 8 trials spiked (40 spikes" in spikes.evidence


def test_one_seed_per_point_cannot_support_the_spike_claim(tmp_path: Path):
    frame = sampler_study(tmp_path, {"mh": 0, "hmc": 4}, ERRORS_ONE_BETTER, {"all": 10.0, "one": 10.5})
    claims = claims_of(frame, "sampler_moves")
    for claim, systems in ((claims[SPIKES], "Li, Be"), (claims[MOVES], "Be")):  # moves: the larger system only
        assert claim.verdict == C.INCONCLUSIVE
        assert claim.evidence.startswith(f"one seed at system {systems}: a test needs >= 2 seeds per point")


def test_no_hmc_spikes_among_few_trials_is_no_evidence_but_among_many_refutes(tmp_path: Path):
    """0 of 8 HMC trials spiked (and 0 of 8 MH): the spike rates could still differ by the 0.3
    margin, so the claim is not refuted; with 4 seeds (16 trials a method) it is. All-electron moves
    better at a third of the cost refute the moves claim."""
    errors = {("all", "Li"): 10.0, ("one", "Li"): 9.0, ("all", "Be"): 12.0, ("one", "Be"): 20.0}
    claims = claims_of(sampler_study(tmp_path, {"mh": 0, "hmc": 0}, errors, {"all": 10.0, "one": 30.0}, seeds=(0, 1)),
                       "sampler_moves")
    assert claims[SPIKES].verdict == C.INCONCLUSIVE, claims[SPIKES].evidence
    assert "score test of HMC − MH spike rate < 0.3" in claims[SPIKES].evidence
    assert claims[MOVES].verdict == C.NOT_SUPPORTED
    assert claims[MOVES].evidence.startswith("all-electron moves are better at no more training time")
    many = claims_of(sampler_study(tmp_path / "many", {"mh": 0, "hmc": 0}, errors, {"all": 10.0, "one": 30.0},
                                   seeds=(0, 1, 2, 3)), "sampler_moves")[SPIKES]
    assert many.verdict == C.NOT_SUPPORTED, many.evidence
    assert many.evidence.startswith("HMC trials spike in at most 30% more of their trials than MH trials (0/16 vs 0/16)")


def test_failed_and_diverged_trials_count_as_spikes(tmp_path: Path):
    """HMC trials that failed (diverged) are trials that spiked: they appear in the verdict."""
    frame = sampler_study(tmp_path, {"mh": 0, "hmc": 0}, ERRORS_ONE_BETTER, {"all": 10.0, "one": 10.5},
                          seeds=(0, 1, 2))
    frame.loc[frame["mcmc.method"].eq("hmc"), "state"] = "FAIL"
    frame.loc[frame["mcmc.method"].eq("hmc"), "reason"] = "diverged: energy NaN at iteration 120"
    spikes = claims_of(frame, "sampler_moves")[SPIKES]
    assert spikes.verdict == C.SUPPORTED, spikes.evidence
    assert "HMC: 12 of 12 trials spiked" in spikes.evidence
    assert "trials without a result count as spiked: t6 HMC FAIL (diverged: energy NaN at iteration 120)" in spikes.evidence


def test_few_spikes_and_costlier_better_moves_are_inconclusive(tmp_path: Path):
    claims = claims_of(sampler_study(tmp_path, {"mh": 1, "hmc": 2}, ERRORS_ONE_BETTER, {"all": 10.0, "one": 30.0},
                                     seeds=(0, 1)), "sampler_moves")
    assert claims[SPIKES].verdict == C.INCONCLUSIVE
    assert claims[SPIKES].evidence.startswith("neither more spiking nor a rate within the margin is shown")
    moves = claims[MOVES]
    assert moves.verdict == C.INCONCLUSIVE
    assert "a win can only be judged where the one-electron runs trained no longer" in moves.evidence
    # one-electron moves cost 3x per iteration: a matched one-electron run is 1000/3 iterations long
    assert "equal cost needs a one-electron run of about 333 iterations (10.0 s)" in moves.evidence


def test_sampler_moves_comparisons_do_not_wait_for_convergence(tmp_path: Path):
    frame = sampler_study(tmp_path, {"mh": 0, "hmc": 4}, ERRORS_ONE_BETTER, {"all": 10.0, "one": 10.5},
                          seeds=(0, 1), unconverged=(8, 12))  # Be: MH all-electron and HMC all-electron, seed 0
    claims = claims_of(frame, "sampler_moves")
    assert claims[MOVES].verdict == C.SUPPORTED, claims[MOVES].evidence
    assert claims[SPIKES].verdict == C.SUPPORTED
    assert "convergence not required for a spike count (14 of 16 trials converged)" in claims[SPIKES].evidence


def test_spike_counts_missing_from_old_runs_are_inconclusive(tmp_path: Path):
    frame = sampler_study(tmp_path, {"mh": None, "hmc": None}, ERRORS_ONE_BETTER, {"all": 10.0, "one": 10.5})
    claim = claims_of(frame, "sampler_moves")[SPIKES]
    assert claim.verdict == C.INCONCLUSIVE and claim.evidence.startswith("no HMC or MH trial with a spike count")


def test_sampler_moves_figure_shows_spikes_and_error_vs_time(tmp_path: Path):
    frame = sampler_study(tmp_path, {"mh": 0, "hmc": 4}, ERRORS_ONE_BETTER, {"all": 10.0, "one": 30.0})
    data = S.sampler_moves.sampler_moves_data(frame)
    fig = S.sampler_moves.draw_sampler_moves(data)
    spikes, errors = fig.axes
    counts = sorted(float(y) for line in spikes.lines for y in line.get_ydata())
    assert counts == [0.0] * 4 + [4.0] * 4
    assert spikes.get_yscale() == "symlog" and errors.get_xscale() == "log" and errors.get_yscale() == "log"
    times = sorted(float(x) for c in errors.containers for x in c.lines[0].get_xdata())
    np.testing.assert_allclose(times, [10.0] * 4 + [30.0] * 4)
    legend = [t.get_text() for t in errors.get_legend().get_texts()]
    assert {"MH, one-electron moves", "HMC, all-electron moves", "Li", "Be"} <= set(legend)
    assert_png(fig, tmp_path / "sampler_moves.png")


# ----------------------------------------------------------------------------- batch


BATCHES = (64, 128, 256, 512, 1024)


def batch_study(root: Path, error_of_batch, iterations=None, **kw) -> pd.DataFrame:
    points = [({"batch_size": b}, error_of_batch(b), {"iterations": (iterations or {}).get(b, STEPS)}) for b in BATCHES]
    return ablation_study(root, "batch", points, **kw)


def test_batch_error_falls_as_a_power_law_and_figure_shows_the_fit(tmp_path: Path):
    frame = batch_study(tmp_path, lambda b: 20.0 * (64 / b) ** 0.5)
    assert plan_figures(frame) == ["batch", "sampler", "training_curves"]
    claim = claims_of(frame, "batch")[S.batch.BATCH_STATEMENT]
    assert claim.verdict == C.SUPPORTED, claim.evidence
    assert "p = -0.50 ±" in claim.evidence and "at 1000 iterations" in claim.evidence
    fig = S.batch.draw_batch(S.batch.batch_data(frame))
    (ax,) = [a for a in fig.axes if a.get_visible()]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    fits = [line for line in ax.lines if line.get_label().startswith("fit: error ∝ batch^(-0.50")]
    assert len(fits) == 1
    assert_png(fig, tmp_path / "batch.png")


def test_batch_error_rising_is_not_supported(tmp_path: Path):
    claim = claims_of(batch_study(tmp_path, lambda b: 2.0 + b / 64), "batch")[S.batch.BATCH_STATEMENT]
    assert claim.verdict == C.NOT_SUPPORTED and claim.evidence.startswith("the error grows with batch size")


def test_batch_unconverged_trials_are_compared_but_unequal_iterations_are_not(tmp_path: Path):
    claim = claims_of(batch_study(tmp_path, lambda b: 20.0 * (64 / b) ** 0.5, unconverged=(3,)),
                      "batch")[S.batch.BATCH_STATEMENT]
    assert claim.verdict == C.SUPPORTED and claim.scope == "at 1000 iterations (walkers varied), 2 seeds per point"
    claim = claims_of(batch_study(tmp_path / "its", lambda b: 20.0 * (64 / b) ** 0.5, iterations={1024: 2000}),
                      "batch")[S.batch.BATCH_STATEMENT]
    assert claim.verdict == C.INCONCLUSIVE
    assert claim.evidence.startswith("training iterations differ (1000, 2000): the claim is at fixed iterations")


def test_batch_reversal_is_never_supported(tmp_path: Path):
    # batch 256 worse than 128 by 2.25x: beyond a Welch test at 0.025 / 10 pairs
    errors = {64: 20.0, 128: 8.0, 256: 18.0, 512: 7.0, 1024: 5.0}
    claim = claims_of(batch_study(tmp_path, errors.get), "batch")[S.batch.BATCH_STATEMENT]
    assert claim.verdict == C.INCONCLUSIVE and claim.evidence.startswith("significant reversal: batch 256")


# ----------------------------------------------------------------------------- the report


def test_report_writes_the_optimizer_figure_and_claim_lines(tmp_path: Path):
    optimizer_study(tmp_path, growing)
    out = io.StringIO()
    result = run_report("optimizer", output_root=tmp_path, stream=out)
    png = result.figures["optimizer"][0]
    assert png.stat().st_size > 1000
    csv = pd.read_csv(result.figures["optimizer"][2])
    assert list(csv.drop_duplicates("x")["x"]) == ["Li", "Be", "B", "C"]
    text = out.getvalue()
    assert f"[supported] {S.optimizer.OPTIMIZER_FACTOR_STATEMENT}:" in text
    assert f"[supported] {S.optimizer.OPTIMIZER_GROWTH_STATEMENT}:" in text
    assert "### optimizer" in result.report_path.read_text()
