"""The verdicts' calibration (issue 31, item 8): fast versions of benchmarks/verdict_calibration.py.

Every study with confirmatory claims is simulated on its sweep file's grid and judged by the real
study code (:func:`analysis.simulate.figure_claims`); the truth of each claim in each simulated
study comes from the harness (its scenarios and truth functions). For every study:

* family-wise false "supported" <= 5% with no true effect (at the sweep file's seeds);
* false "not supported" <= 5% with each claim exactly at its boundary (for a trend or a difference
  the boundary is no effect: the null rows);
* power >= 80% for the effect the claim names (or the talk reports) at the study's max seeds, with
  its looks;
* the held-out checks: a 15x features effect on systems the sweep file does not name is
  supported; a flat depth series is not a plateau; an error that keeps falling is not saturating.

**Tolerance.** Each test runs a few simulated studies with fixed seeds (so it is deterministic for
given code) and accepts a rate when the target lies inside the rate's one-sided 99%
Clopper–Pearson interval: an error rate k/n passes when its lower bound is at most 5% (the
simulations do not show it above 5% at the 1% level), a power when its upper bound is at least
80%. With n = 24 a false rate fails from 5/24 (21%) up, a power with n = 10 from 4/10 down:
these tests catch gross miscalibration (the pre-issue rules had 10-26% family-wise false support
and near-zero power); the benchmark's full run (docs/calibration.md) measures the rates to a
percent or two. Claims the full run shows missing the power target at the sweep file's
``max_seeds`` are marked ``xfail`` with the measured numbers (``POWER_SHORT``; docs/calibration.md
says how many seeds each needs): the report says "inconclusive" for them at the quick scale
rather than anything false, which the false-rate tests above check.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from analysis.simulate import figure_claims, trial_frame

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("verdict_calibration", ROOT / "benchmarks" / "verdict_calibration.py")
vc = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("verdict_calibration", vc)
_spec.loader.exec_module(vc)

SEED = 20261207
N_NULL = 24  # simulated studies per null row
N_BOUNDARY = 20  # per boundary row
N_POWER = 10  # per stated row at max seeds (each judges 3-4 looks)
STUDIES = list(vc.study_specs())


@lru_cache(maxsize=None)
def row(study: str, scenario: str, sims: int) -> dict:
    """One scenario of one study, summarised (cached: several tests read the same row)."""
    spec = vc.study_specs()[study]
    sc = next(s for s in spec.scenarios(spec) if s.name == scenario)
    return vc.run_scenario(spec, sc, sims, seed=SEED, check_full=False)


def scenario_names(kind: str, looks: bool | None = None, hetero: bool = False) -> list[tuple[str, str]]:
    out = []
    for name, spec in vc.study_specs().items():
        for sc in spec.scenarios(spec):
            if sc.kind == kind and sc.hetero == hetero and (looks is None or (sc.seeds == "max") == looks):
                out.append((name, sc.name))
    return out


def false_rate_ok(rate: dict) -> bool:
    """The target 5% lies inside the one-sided 99% interval of a false rate (module docstring)."""
    return vc.lower99(rate["count"], rate["of"]) <= vc.TARGET_FALSE


def power_ok(rate: dict) -> bool:
    return vc.upper99(rate["count"], rate["of"]) >= vc.TARGET_POWER


# Measured by the full run (benchmarks/results/verdict_calibration-2026-12-07.json, 200 sims per row,
# max_seeds 4; docs/calibration.md says why each misses): (study, scenario, rule) -> the measured power.
POWER_SHORT = {
    # "no better" claims: equivalence within 1.6 mHa needs many seeds at the quick scale's scatter
    ("depth", "stated_looks", "saturation"): "0.05 at 4 seeds; > 32 seeds needed",
    ("pairwise", "stated_looks", "saturation"): "0.065 at 4 seeds; > 32 seeds needed",
    ("determinants", "stated_k_looks", "saturation"): "0.00-0.005 at 4 seeds; > 32 seeds needed",
    ("sampler", "stated_looks", "saturation"): "0.00-0.005 at 4 seeds; > 32 seeds needed",
    ("architecture", "stated_looks", "matches"): "0.02-0.035 at 4 seeds; > 32 seeds needed",
    ("architecture", "stated_looks", "matches_cost"): "0.02-0.035 at 4 seeds; > 32 seeds needed",
    # a 3x difference between two single grid points per system (Welch, few degrees of freedom)
    ("architecture", "stated_looks", "beats"): "0.36-0.435 at 4 seeds; 16 seeds needed",
    # the exponent of the error bar: three walker counts (batch), two on the sampler's grid (blocked)
    ("batch", "stated_looks", "sqrt_walkers"): "0.27 at 4 seeds; 8 seeds needed",
    ("sampler", "stated_looks", "sqrt_walkers"): "0.00 at 4 seeds: two batch sizes on the grid, blocked",
}


def _power_cases():
    cases = []
    for study, scenario in scenario_names("stated", looks=True):
        spec = vc.study_specs()[study]
        sc = next(s for s in spec.scenarios(spec) if s.name == scenario)
        for rule in sc.rules:
            marks = ()
            if (study, scenario, rule) in POWER_SHORT:
                marks = pytest.mark.xfail(strict=False, reason=f"power {POWER_SHORT[study, scenario, rule]} in the "
                                          "full run (docs/calibration.md)")
            cases.append(pytest.param(study, scenario, rule, marks=marks, id=f"{study}-{scenario}-{rule}"))
    return cases


# ----------------------------------------------------------------------------- the simulator


def test_trial_frame_per_point_overrides():
    points = [{"network.width": 8, "_truth": 6.0, "_scatter": 0.8, "_stderr": 0.4},
              {"network.width": 16, "_stderr": 0.1, "_stderr_scatter": 0.3}]
    frame = trial_frame(points, ["network.width"], lambda p: 2.0, seeds=4, scatter=0.5, rng=None)
    first, second = frame[frame["network.width"] == 8], frame[frame["network.width"] == 16]
    # exact planned scatter: the geometric mean over seeds is the truth, the log-SD the scatter
    assert math.exp(np.log(first["error_mha"]).mean()) == pytest.approx(6.0)
    assert np.log(first["error_mha"]).std(ddof=1) == pytest.approx(0.8)
    assert np.log(second["error_mha"]).std(ddof=1) == pytest.approx(0.5)
    assert np.allclose(first["error_stderr_mha"], 0.4) and np.allclose(first["energy_stderr"], 0.4e-3)
    bars = second["error_stderr_mha"].to_numpy()
    assert math.exp(np.log(bars).mean()) == pytest.approx(0.1) and np.log(bars).std(ddof=1) == pytest.approx(0.3)


def test_trial_frame_attrs_survive_pandas_copies():
    frame = trial_frame([{"network.width": w} for w in (8, 16)], ["network.width"], lambda p: 3.0, seeds=2,
                        rng=np.random.default_rng(0), attrs={"looks": [2, 4], "claims": {"margin_mha": 1.0}})
    sub = frame[frame["seed"] < 1].copy()
    assert sub.attrs["looks"] == [2, 4] and sub.attrs["claims"] == {"margin_mha": 1.0}
    assert isinstance(sub.attrs["looks"], list) and sub.attrs["params"] == ["network.width", "seed"]


@pytest.mark.parametrize("study,scenario", [("width", "null"), ("optimizer", "stated_growth_looks"),
                                            ("sampler_moves", "stated")])
def test_fast_path_gives_the_reports_verdicts(study, scenario):
    """figure_claims without the every-study studies decides the claims exactly as the report."""
    spec = vc.study_specs()[study]
    sc = next(s for s in spec.scenarios(spec) if s.name == scenario)
    result = vc.one_study(spec, sc, np.random.default_rng(3), check_full=True)
    assert result["claims"] and not result["mismatch"]


# ----------------------------------------------------------------------------- the truth of a claim


def test_truth_functions_at_their_boundaries():
    margin = 1.6

    def rows(means, scatter=0.5):
        return [{"params": {"network.depth": i + 1}, "median": m * math.exp(-scatter**2 / 2), "mean": m}
                for i, m in enumerate(means)]

    assert vc.saturation_truth(rows([9.0, 5.0, 3.0, 3.0]), margin) == (True, False)  # falls, then flat
    assert vc.saturation_truth(rows([3.0, 3.0, 3.0, 3.0]), margin) == (False, False)  # flat: no fall
    assert vc.saturation_truth(rows([9.0, 6.0, 3.0 + margin, 3.0]), margin) == (False, False)  # gain = margin
    assert vc.saturation_truth(rows([9.0, 7.0, 6.0, 3.0]), margin) == (False, True)  # still falling
    a = {"median": 3.0, "mean": 3.0 + margin}
    b = {"median": 1.0, "mean": 3.0}
    assert vc.ratio_truth([(a, b)], 3.0) == (False, False) and vc.ratio_truth([(a, b)], 2.0) == (True, False)
    assert vc.matches_truth(a, b, margin) == (False, False) and vc.matches_truth(b, a, margin) == (True, False)


@pytest.mark.parametrize("study", STUDIES)
def test_every_claim_has_a_truth(study):
    """Every testable claim a study makes on its sweep file's grid is one the harness can score
    (a new claim needs its truth in benchmarks/verdict_calibration.py)."""
    result = row(study, "null", N_NULL)
    assert result["claims"], f"{study}: no confirmatory claim"
    assert not result["unclassified_claims"]


# ----------------------------------------------------------------------------- the targets


@pytest.mark.parametrize("study", STUDIES)
def test_no_effect_family_wise_false_support_at_most_5_percent(study):
    fam = row(study, "null", N_NULL)["family"]["false_supported"]
    assert false_rate_ok(fam), f"{study}: {fam['count']} of {fam['of']} null studies supported a false claim"


@pytest.mark.parametrize("study", STUDIES)
def test_no_effect_false_not_supported_at_most_5_percent(study):
    """With no true effect a trend or a difference is at its boundary: "not supported" (the
    opposite effect, or a saturation still falling) must stay rare."""
    claims = row(study, "null", N_NULL)["claims"]
    for statement, c in claims.items():
        if c["claim_true"] == 0 and c["refutation_true"] == 0:
            assert false_rate_ok(c["false_not_supported"]), (statement, c["false_not_supported"])


@pytest.mark.parametrize("study,scenario", scenario_names("boundary"))
def test_boundary_false_not_supported_at_most_5_percent(study, scenario):
    result = row(study, scenario, N_BOUNDARY)
    checked = 0
    for statement, c in result["claims"].items():
        if c["rule"] in result["for_rules"] and c["claim_true"] == 0 and c["refutation_true"] == 0:
            checked += 1
            assert false_rate_ok(c["false_not_supported"]), (statement, c["false_not_supported"])
    assert checked, f"{study} {scenario}: no claim at its boundary"


@pytest.mark.parametrize("study,scenario,rule", _power_cases())
def test_power_at_max_seeds_for_the_stated_effect(study, scenario, rule):
    result = row(study, scenario, N_POWER)
    claims = [(s, c) for s, c in result["claims"].items() if c["rule"] == rule]
    assert claims, f"{study} {scenario}: no {rule} claim"
    for statement, c in claims:
        assert c["power"] is not None, f"{statement}: the stated effect does not make it true"
        assert power_ok(c["power"]), (statement, c["power"])


# ----------------------------------------------------------------------------- held-out studies


def test_heldout_features_15x_on_unnamed_systems_is_supported():
    result = row("features", "heldout_15x_Be_B_N_looks", N_POWER)
    overall = [c for s, c in result["claims"].items() if c["rule"] == "factor_3x"]
    assert overall and all(power_ok(c["power"]) for c in overall), overall
    assert {s.rsplit("(", 1)[-1].rstrip(")") for s, c in result["claims"].items()
            if c["rule"] == "factor_3x_system"} == {"Be", "B", "N"}


def test_heldout_flat_depth_series_is_not_a_plateau():
    c = row("depth", "heldout_flat_1_6", N_BOUNDARY)["claims"]["error saturates with depth"]
    assert c["claim_true"] == 0 and false_rate_ok(c["false_supported"]), c


def test_heldout_error_falling_above_the_margin_is_not_saturating():
    c = row("depth", "heldout_falling_1_6_high", N_BOUNDARY)["claims"]["error saturates with depth"]
    assert false_rate_ok(c["false_supported"]), c
