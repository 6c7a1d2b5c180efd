"""The tests behind every verdict (analysis/inference.py): each checked against an independent
implementation (scipy, statsmodels) or a simulation, never against itself."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analysis.inference import (
    ALPHA, Sample, contrast, detectable, difference, holm, nominal_levels, seeds_needed, slope, spent,
)


def test_a_difference_of_two_points_is_welchs_t():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 0.3, 3), rng.normal(0.4, 0.8, 4)
    test = difference(Sample.of(a), Sample.of(b))
    ref = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    assert test.t == pytest.approx(ref.statistic)
    assert test.p_greater == pytest.approx(ref.pvalue)
    assert test.df == pytest.approx(ref.df)


def test_a_contrast_over_more_points_pools_their_variance():
    """Three groups, contrast mean_1 - (mean_2 + mean_3) / 2: the cell-means model with one pooled
    variance (what a one-way ANOVA contrast computes), degrees of freedom sum(n_j - 1)."""
    rng = np.random.default_rng(1)
    groups = [rng.normal(m, 0.5, n) for m, n in ((2.0, 3), (1.0, 4), (1.5, 3))]
    weights = np.array([1.0, -0.5, -0.5])
    test = contrast([Sample.of(g) for g in groups], weights)
    dof = sum(len(g) - 1 for g in groups)
    pooled = sum(((g - g.mean()) ** 2).sum() for g in groups) / dof
    se = math.sqrt(pooled * sum(w**2 / len(g) for w, g in zip(weights, groups)))
    estimate = sum(w * g.mean() for w, g in zip(weights, groups))
    assert test.df == dof and test.se == pytest.approx(se) and test.estimate == pytest.approx(estimate)
    assert test.p_greater == pytest.approx(stats.t.sf(estimate / se, dof))


def test_the_slope_of_point_means_is_least_squares():
    x = np.array([3.0, 4.0, 5.0, 6.0])
    samples = [Sample.of([1.0 + 0.5 * xi + d for d in (-0.1, 0.1)]) for xi in x]
    test = slope(x, samples)
    fit = stats.linregress(x, [s.mean for s in samples])
    assert test.estimate == pytest.approx(fit.slope) and test.estimate == pytest.approx(0.5)
    assert test.df == 4  # pooled: 4 points x (2 - 1)


def test_the_standard_error_never_falls_below_the_reblocked_error():
    """Two seeds that agree by chance are not more precise than their Monte Carlo noise."""
    agree = Sample.of([5.0, 5.0001], [0.3, 0.4])
    assert agree.sem == pytest.approx(math.sqrt(0.3**2 + 0.4**2) / 2)
    test = difference(agree, Sample.of([4.0, 4.0001], [0.3, 0.4]))
    assert test.se == pytest.approx(math.sqrt(2) * math.sqrt(0.3**2 + 0.4**2) / 2)


def test_log_errors_are_floored_at_their_reblocked_error():
    s = Sample.of([4.0, -0.2, 0.05], [0.1, 0.3, 0.2]).logged()
    assert s.values == pytest.approx((math.log(4.0), math.log(0.3), math.log(0.2)))
    assert Sample.of([4.0, -0.2, 0.05], [0.1, 0.3, 0.2]).floored() == 2


def test_holm_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, 0.005, 0.5, 0.02]
    assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))
    assert holm([]) == []


def test_one_look_has_the_full_level_and_looks_spend_it_all_between_them():
    assert nominal_levels([1.0]) == [pytest.approx(ALPHA)]
    fractions = [0.25, 0.5, 1.0]
    levels = nominal_levels(fractions)
    assert levels[0] == pytest.approx(spent(0.25))  # the first look spends alpha(t1)
    # the probability that a Brownian motion's z statistic crosses some look's boundary is ALPHA
    rng = np.random.default_rng(3)
    t = np.array(fractions)
    paths = np.cumsum(rng.standard_normal((400_000, 3)) * np.sqrt(np.diff(np.concatenate([[0.0], t]))), axis=1)
    crossed = (paths / np.sqrt(t) >= stats.norm.isf(np.array(levels))).any(axis=1).mean()
    assert crossed == pytest.approx(ALPHA, abs=0.0015)
    with pytest.raises(ValueError):
        nominal_levels([0.5, 0.5])


def test_the_seeds_needed_are_the_fewest_that_detect_the_effect():
    test = difference(Sample.of([1.0, 1.4, 0.8]), Sample.of([0.5, 0.9, 0.7]))
    n = seeds_needed(test, 3, effect=0.3)
    assert n is not None and n > 3

    def detectable_at(k: int) -> float:
        return detectable(test.se * math.sqrt(3 / k), test.df / 2 * (k - 1))

    assert detectable_at(n) <= 0.3 < detectable_at(n - 1)
    assert seeds_needed(test, 3, effect=0.0) is None
