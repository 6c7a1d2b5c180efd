"""Extrapolated limits and Pareto fronts (issue 10) on synthetic data with known answers.

Every fit must recover the limit it was built with, within its own error bar, and must call
itself too poor to use when the data cannot fix it. Pure numpy/pandas: fast.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.extrapolate import training_limit, variance_limit, width_limit
from analysis.studies.cost import comparisons, pareto_data, pareto_mask
from analysis.studies.limits import variance_claims
from analysis.verdicts import NOT_SUPPORTED, SUPPORTED

E_EXACT = -8.070548  # Hartree (LiH), the "exact" energy the synthetic data are built around


# ----------------------------------------------------------------------------- E(t)


def power_curve(seed: int, a: float = 1.0, b: float = 0.5, noise: float = 3e-4, n: int = 2000):
    rng = np.random.default_rng(seed)
    steps = np.arange(n)
    return steps, E_EXACT + a * (steps + 1.0) ** -b + rng.normal(0.0, noise, n)


def test_training_curve_fit_recovers_the_limit_of_a_noisy_power_law():
    steps, energy = power_curve(seed=3)
    lim = training_limit(steps, energy)
    assert lim.usable, lim.reason
    assert abs(lim.value - E_EXACT) <= 2 * lim.stderr
    assert lim.stderr < 5e-3                       # informative: a few mHa, not a shrug
    assert lim.params["b"] == pytest.approx(0.5, abs=0.2)
    assert lim.params["gain"] > 0                  # the limit lies below the last fitted point


def test_training_curve_error_bar_covers_the_truth_most_of_the_time():
    """Over 40 noise draws the 2-sigma interval holds the true limit in >= 85% (nominal 95%)."""
    hits = []
    for seed in range(40):
        lim = training_limit(*power_curve(seed=seed))
        assert lim.usable, lim.reason
        hits.append(abs(lim.value - E_EXACT) <= 2 * lim.stderr)
    assert np.mean(hits) >= 0.85


def test_training_curve_without_curvature_is_too_poor_to_use():
    rng = np.random.default_rng(0)
    flat = E_EXACT + rng.normal(0.0, 0.01, 2000)   # converged already: pure noise, no power law to fit
    lim = training_limit(np.arange(2000), flat)
    assert not lim.usable and lim.reason
    short = training_limit(np.arange(60), flat[:60])
    assert not short.usable and "blocks" in short.reason


# ----------------------------------------------------------------------------- E vs variance


def variance_series(seed: int, slope: float = 0.1, stderr: float = 5e-4):
    rng = np.random.default_rng(seed)
    variance = np.array([0.02, 0.04, 0.06, 0.10, 0.15])   # Hartree^2
    err = np.full(variance.size, stderr)
    return variance, E_EXACT + slope * variance + rng.normal(0.0, err), err


def test_energy_variance_extrapolation_recovers_the_exact_energy_within_its_error_bar():
    lim = variance_limit(*variance_series(seed=1))
    assert lim.usable, lim.reason
    assert abs(lim.value - E_EXACT) <= lim.stderr * 2
    assert lim.params["slope"] == pytest.approx(0.1, abs=0.02)
    coverage = np.mean([abs((l := variance_limit(*variance_series(seed=s))).value - E_EXACT) <= 2 * l.stderr
                        for s in range(400)])
    assert 0.9 <= coverage <= 1.0


def test_energy_variance_fit_rejects_a_negative_slope_and_too_few_trials():
    v, e, s = variance_series(seed=2, slope=-0.1)
    assert not variance_limit(v, e, s).usable
    assert "slope" in variance_limit(v, e, s).reason
    few = variance_limit(v[:2], e[:2], s[:2])
    assert not few.usable and "needs 3" in few.reason


def test_variance_claim_compares_with_the_reference():
    v, e, s = variance_series(seed=1)
    lim = variance_limit(v, e, s)
    row = {"series": "all trials", "kind": "limit", "limit": lim.value, "limit_stderr": lim.stderr,
           "usable": True, "reason": "", "model": lim.model, "n_points": lim.n_points, "chi2_dof": lim.chi2_dof,
           "p_value": lim.p_value, "fit_slope": lim.params["slope"], "fit_slope_stderr": lim.params["slope_stderr"]}
    for ref, verdict in ((E_EXACT, SUPPORTED), (E_EXACT - 0.05, NOT_SUPPORTED)):
        diff = (lim.value - ref) * 1000
        data = pd.DataFrame([{**row, "reference_energy": ref, "limit_minus_reference_mha": diff,
                              "limit_minus_reference_stderr_mha": lim.stderr * 1000}])
        (claim,) = variance_claims(data)
        assert claim.verdict == verdict, claim.render()


# ----------------------------------------------------------------------------- width


def test_width_limit_recovers_the_infinite_width_energy():
    rng = np.random.default_rng(4)
    width = np.array([8, 16, 32, 64, 128])
    err = np.full(width.size, 3e-4)
    energy = E_EXACT + 0.02 + 0.2 * width ** -0.8 + rng.normal(0.0, err)   # 20 mHa left at infinite width
    lim = width_limit(width, energy, err)
    assert lim.usable, lim.reason
    assert abs(lim.value - (E_EXACT + 0.02)) <= 2 * lim.stderr
    three = width_limit(width[:3], energy[:3], err[:3])
    assert not three.usable and "needs 4" in three.reason


# ----------------------------------------------------------------------------- Pareto


def test_pareto_mask_keeps_exactly_the_undominated_points():
    cost = np.array([1.0, 2.0, 3.0, 4.0, 2.0, np.nan])
    error = np.array([5.0, 3.0, 3.5, 1.0, 3.0, 0.1])
    assert pareto_mask(cost, error).tolist() == [True, True, False, True, True, False]


def test_pareto_data_and_its_sentences():
    trials = pd.DataFrame({
        "trial": [0, 1, 2, 3], "state": "COMPLETE", "run_dir": [None] * 4,
        "network.width": [32, 64, 16, 32], "network.depth": [4, 2, 1, 1],
        "error_mha": [3.5, 3.0, 9.0, 3.2], "error_stderr_mha": [0.5, 0.5, 0.5, 0.5],
        "energy": [-8.067, -8.0675, -8.061, -8.067], "energy_stderr": [5e-4] * 4,
        "training_flops": [1e13, 4e12, 1e12, 3e12], "device_seconds": [400.0, 200.0, 60.0, 150.0],
    })
    trials.attrs["params"] = ["network.width", "network.depth"]
    data = pareto_data(trials, "training_flops")
    assert dict(zip(data["trial"], data["pareto"])) == {0: False, 1: True, 2: True, 3: True}
    said = comparisons(data)
    assert any(s.startswith("width 64 x depth 2 (t1) reaches 3.00 ± 0.50 mHa at 40% of the training FLOPs of "
                            "width 32 x depth 4 (t0") for s in said), said
    hours = pareto_data(trials, "device_hours")
    assert hours.loc[hours["trial"] == 1, "x"].item() == pytest.approx(200.0 / 3600)
    assert math.isclose(hours["x"].min(), 60.0 / 3600)
