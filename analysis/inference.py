"""The hypothesis tests behind every verdict: seeds as samples, Welch t on linear contrasts of
point means, Holm over a study's claims, and group-sequential levels for studies that add seeds.

**A point's sample** (:class:`Sample`): the metric of each seed (errors in mHa, energies in Ha, or
their natural logarithm) with each seed's reblocked standard error. Its standard error of the
mean is the seeds' standard deviation over sqrt(n) (ddof 1), never below the reblocked standard
error of the mean sqrt(sum se_i^2) / n (two seeds that agree by chance are not more precise than
their Monte Carlo noise); its degrees of freedom are n - 1. A test needs >= 2 seeds per point.

**Errors are compared on a log scale.** Seed-to-seed scatter of a VMC error is multiplicative
(a seed that trains badly is off by a factor, not by a fixed number of mHa), so differences and
ratios of errors ("lower", "at least 3x") are tested on ln(error). An error within its own
reblocked standard error of zero has no meaningful logarithm: each seed's error is floored at its
reblocked standard error before the log (:meth:`Sample.logged`), which can only shrink a ratio
whose numerator is the floored one and is said in the claim's evidence. Claims with a margin in
mHa ("no better by more than 1.6 mHa", "agrees with the exact energy within 1.6 mHa") are tested
on the linear scale, where the margin lives.

**A contrast** (:func:`contrast`) is a weighted sum of point means, ``C = sum_j w_j mean_j``: a
difference (w = +1, -1), a ratio on the log scale, a mean over systems of per-system log ratios
(one test for a claim over several systems), or the least-squares slope of point means against x
(w_j = (x_j - x̄) / sum (x - x̄)^2). A difference of two points is Welch's t: standard error
sqrt(sem_1^2 + sem_2^2) with Welch–Satterthwaite degrees of freedom, so unequal scatter is
allowed. A contrast over more points, and every ln-error test within one figure's data (a
system's ratio among several systems, a pair of ansätze among several), is the cell-means model
with the seed variance of ln(error) pooled over the figure's points (degrees of freedom
sum (n_j - 1)): with two seeds per point a point alone has one degree of freedom, and pooling is
what gives a slope over four widths or a per-system ratio among three systems its power. Tests on
the linear scale (margins in mHa) are never pooled: errors of different size scatter differently. ``t = (C - null) / se`` is referred to Student's t with those degrees of freedom (not
the normal).

**Levels.** Each test is one-sided at :data:`ALPHA` (0.025) per direction: a claim is supported
when its support test rejects, not supported when its refutation test rejects (for a threshold
claim, the other side of the same boundary; for a "matches" claim, the margin exceeded). Over a
study's claims the p-values of each direction are adjusted by Holm (:func:`holm`), so the chance
that a study with no true effect reports any claim supported is at most ALPHA.

**Studies that add seeds** look at the data after each round. The level at look k is the nominal
level of a Pocock-type alpha-spending function (Lan & DeMets 1983), ``alpha(t) = ALPHA ln(1 +
(e - 1) t)`` with information fraction ``t = seeds / max seeds``, found by recursive numerical
integration of the Brownian-motion approximation (:func:`nominal_levels`). Pocock rather than
O'Brien–Fleming because the effects the talk names are large and a study should stop at its
first look when they are (O'Brien–Fleming spends almost nothing at two seeds of eight). The
actual error rates with t tests at these levels are measured by simulation through the study
code (benchmarks/verdict_calibration.py; docs/analysis.md).

Written by hand: the contrast t test with a floor on each standard error and the spending-function
boundaries (no well-kept Python library offers either), and Holm (:func:`holm`, which says why).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats

ALPHA = 0.025  # one-sided level of each test direction (family-wise with Holm)
POWER = 0.80  # the power the planned seeds are sized for
MIN_SEEDS = 2  # seeds per point a test needs (one seed measures no seed-to-seed scatter)
LOG_FLOOR = 1e-3  # floor of an error whose reblocked standard error is unknown, same unit (mHa)


def parse_values(text) -> tuple[float, ...]:
    """``"1.5 2.25"`` (a point's per-seed column) as floats; NaN for ``"nan"``; empty for missing."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ()
    if isinstance(text, (tuple, list, np.ndarray)):
        return tuple(float(v) for v in text)
    return tuple(float(v) for v in str(text).split())


def format_values(values) -> str:
    """Per-seed values as the space-separated text a point row (and its CSV) carries."""
    return " ".join(repr(float(v)) for v in values)


@dataclass(frozen=True)
class Sample:
    """The seeds of one point: ``values`` (one per seed) and their reblocked ``stderrs`` (same
    unit; NaN where unknown)."""

    values: tuple[float, ...]
    stderrs: tuple[float, ...]

    @classmethod
    def of(cls, values, stderrs=None) -> Sample:
        """A sample from arrays (NaN values dropped with their standard errors)."""
        v = np.asarray(values, dtype=float).ravel()
        s = np.full(v.shape, np.nan) if stderrs is None else np.asarray(stderrs, dtype=float).ravel()
        keep = np.isfinite(v)
        return cls(tuple(v[keep].tolist()), tuple(s[keep].tolist()))

    @classmethod
    def from_row(cls, row, prefix: str = "seed") -> Sample:
        """The sample a point row carries in ``<prefix>_values`` / ``<prefix>_stderrs``."""
        values = parse_values(row.get(f"{prefix}_values"))
        stderrs = parse_values(row.get(f"{prefix}_stderrs")) or (math.nan,) * len(values)
        return cls.of(values, stderrs)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def sd(self) -> float:
        """Standard deviation of the seeds (ddof 1; NaN for one seed)."""
        return float(np.std(self.values, ddof=1)) if self.n > 1 else math.nan

    @property
    def reblocked_sem(self) -> float:
        """sqrt(sum se_i^2) / n: the Monte Carlo error of the mean (NaN if any se is unknown)."""
        se = np.asarray(self.stderrs, dtype=float)
        if not self.n or not np.isfinite(se).all():
            return math.nan
        return float(math.sqrt(float((se**2).sum())) / self.n)

    @property
    def sem(self) -> float:
        """Standard error of the mean: sd / sqrt(n), never below :attr:`reblocked_sem` (for one
        seed, the reblocked standard error; NaN when neither is known)."""
        spread = self.sd / math.sqrt(self.n) if self.n > 1 else math.nan
        values = [v for v in (spread, self.reblocked_sem) if math.isfinite(v)]
        return max(values) if values else math.nan

    @property
    def df(self) -> float:
        return float(self.n - 1)

    def logged(self) -> Sample:
        """ln of each value, floored at its reblocked standard error (:data:`LOG_FLOOR` when that is
        unknown); the standard errors become relative ones, se_i / value_i."""
        out_v, out_s = [], []
        for v, s in zip(self.values, self.stderrs):
            floor = s if math.isfinite(s) and s > 0 else LOG_FLOOR
            x = max(v, floor)
            out_v.append(math.log(x))
            out_s.append(s / x if math.isfinite(s) else math.nan)
        return Sample(tuple(out_v), tuple(out_s))

    def floored(self) -> int:
        """How many seeds :meth:`logged` floors (error below its reblocked standard error)."""
        return sum(1 for v, s in zip(self.values, self.stderrs)
                   if v < (s if math.isfinite(s) and s > 0 else LOG_FLOOR))

    def first(self, n: int) -> Sample:
        """The sample of its first ``n`` seeds."""
        return Sample(self.values[:n], self.stderrs[:n])


@dataclass(frozen=True)
class TTest:
    """A one-sided t test of a contrast: ``estimate`` (its value), ``se``, Welch–Satterthwaite
    ``df`` and the boundary ``null`` it is tested against."""

    estimate: float
    se: float
    df: float
    null: float = 0.0

    @property
    def t(self) -> float:
        if self.se > 0:
            return (self.estimate - self.null) / self.se
        diff = self.estimate - self.null
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)

    @property
    def p_greater(self) -> float:
        """One-sided p-value of "the contrast exceeds ``null``"."""
        return float(stats.t.sf(self.t, self.df)) if math.isfinite(self.df) else float(stats.norm.sf(self.t))

    @property
    def p_less(self) -> float:
        """One-sided p-value of "the contrast is below ``null``"."""
        return float(stats.t.cdf(self.t, self.df)) if math.isfinite(self.df) else float(stats.norm.cdf(self.t))

    def against(self, null: float) -> TTest:
        """The same contrast tested against another boundary."""
        return TTest(self.estimate, self.se, self.df, null)

    def text(self, what: str = "") -> str:
        """``t = 3.10, df 2.3`` (``what`` names the contrast when given)."""
        head = f"{what}: " if what else ""
        return f"{head}t = {self.t:+.2f}, df {self.df:.1f}"


def contrast(samples: Sequence[Sample], weights: Sequence[float], null: float = 0.0,
             pooled: bool | None = None, pool: Sequence[Sample] | None = None) -> TTest:
    """The t test of ``sum_j w_j mean_j`` against ``null`` (module docstring).

    Two points (a difference) are compared by Welch's t: each point's own standard error, the
    Welch–Satterthwaite degrees of freedom. A contrast over more points (a slope along a line, a
    mean over systems), or any contrast given a ``pool``, is judged in the cell-means model with one
    seed-to-seed variance pooled over the points of ``pool`` (default: the contrast's own points):
    each point's variance of the mean is the pooled variance over its seeds, never below its
    reblocked standard error squared, and the degrees of freedom are sum (n_j - 1) over the pool.
    On ln(error) the pooled model assumes one relative scatter between seeds across the points,
    which the calibration measures when it is false. Every sample needs >= 2 seeds or a known
    standard error; a sample with one seed counts with infinite degrees of freedom (its reblocked
    error is a Monte Carlo estimate from many samples)."""
    used = [(s, float(w)) for s, w in zip(samples, weights) if w != 0]
    if pooled is None:
        pooled = len(used) > 2 or pool is not None
    estimate = float(sum(w * s.mean for s, w in used))
    if pooled:
        cells = list(pool) if pool is not None else [s for s, _ in used]
        dof = sum(s.n - 1 for s in cells if s.n > 1)
        if dof > 0:
            var_pool = sum((s.n - 1) * s.sd**2 for s in cells if s.n > 1) / dof
            var = 0.0
            for s, w in used:
                floor = s.reblocked_sem
                floor = floor**2 if math.isfinite(floor) else 0.0
                var += w**2 * max(var_pool / s.n, floor)
            return TTest(estimate, math.sqrt(var), float(dof), null)
    terms, dfs = [], []
    for s, w in used:
        sem = s.sem
        if not math.isfinite(sem):
            raise ValueError("a point without a standard error cannot be tested")
        terms.append((w * sem) ** 2)
        dfs.append(s.df if s.n > 1 else math.inf)
    var = float(sum(terms))
    denom = sum(term**2 / d for term, d in zip(terms, dfs) if math.isfinite(d) and d > 0)
    df = var**2 / denom if denom > 0 else math.inf
    return TTest(estimate, math.sqrt(var), float(df), null)


def difference(a: Sample, b: Sample, null: float = 0.0, pool: Sequence[Sample] | None = None) -> TTest:
    """mean(a) - mean(b) against ``null``: Welch's t, or with ``pool`` the pooled-variance t."""
    return contrast([a, b], [1.0, -1.0], null, pool=pool)


def slope_weights(x: Sequence[float]) -> np.ndarray:
    """Weights w with sum w_j y_j = the least-squares slope of y against x (unweighted)."""
    x = np.asarray(x, dtype=float)
    centred = x - x.mean()
    return centred / float((centred**2).sum())


def slope(x: Sequence[float], samples: Sequence[Sample], null: float = 0.0) -> TTest:
    """The least-squares slope of the point means against ``x``, as a Welch contrast."""
    return contrast(samples, slope_weights(x).tolist(), null)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: sorted ascending, the i-th (from 0)
    is multiplied by (m - i), made non-decreasing, capped at 1. (statsmodels' ``multipletests``
    gives the same numbers, tests/test_inference.py checks; it is not called here because it
    runs the garbage collector on every call, 50 ms, and the calibration judges ~10^5 families.)"""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        adjusted[i] = running
    return adjusted


# ----------------------------------------------------------------------------- power


def detectable(se: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true contrast (beyond the boundary) a one-sided t test at ``alpha`` detects with
    probability ``power``: (t_{1-alpha} + t_{power}) se, same unit as ``se``."""
    if not (math.isfinite(se) and se > 0):
        return 0.0 if se == 0 else math.nan
    d = df if math.isfinite(df) and df > 0 else math.inf
    q = (stats.t.isf(alpha, d) + stats.t.ppf(power, d)) if math.isfinite(d) else \
        (stats.norm.isf(alpha) + stats.norm.ppf(power))
    return float(q * se)


def seeds_needed(test: TTest, seeds: int, effect: float, alpha: float = ALPHA, power: float = POWER,
                 limit: int = 1000) -> int | None:
    """Seeds per point at which the test detects a true contrast ``effect`` (beyond its boundary)
    with ``power``, assuming its standard error falls as 1/sqrt(seeds) and its degrees of freedom
    grow in proportion to seeds - 1 (the smallest such count, by bisection: the detectable effect
    falls with seeds). None when even ``limit`` seeds would not do."""
    if not (effect > 0 and math.isfinite(test.se) and seeds >= 1):
        return None
    per_df = test.df / max(seeds - 1, 1) if math.isfinite(test.df) else math.inf

    def enough(n: int) -> bool:
        se = test.se * math.sqrt(seeds / n)
        df = per_df * (n - 1) if math.isfinite(per_df) else math.inf
        return detectable(se, df, alpha, power) <= effect

    low, high = max(seeds, MIN_SEEDS), limit
    if not enough(high):
        return None
    while low < high:
        mid = (low + high) // 2
        if enough(mid):
            high = mid
        else:
            low = mid + 1
    return low


# ----------------------------------------------------------------------------- sequential looks


def spent(t: float, alpha: float = ALPHA) -> float:
    """Alpha spent by information fraction ``t`` (Lan–DeMets Pocock type): alpha ln(1 + (e - 1) t)."""
    return alpha * math.log(1.0 + (math.e - 1.0) * min(max(t, 0.0), 1.0))


@lru_cache(maxsize=256)
def _levels(fractions: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    grid_n = 2001
    levels: list[float] = []
    density_x = density = None  # sub-density of the score S_k on the continuation region
    previous_t, previous_spent = 0.0, 0.0
    for t in fractions:
        want = spent(t, alpha) - previous_spent
        if density is None:
            bound = math.sqrt(t) * stats.norm.isf(want)
            x = np.linspace(-10 * math.sqrt(t), bound, grid_n)
            density_x, density = x, stats.norm.pdf(x, scale=math.sqrt(t))
        else:
            step = t - previous_t
            dx = density_x[1] - density_x[0]
            mass = density * dx
            mass[0] *= 0.5
            mass[-1] *= 0.5

            def crossing(b: float) -> float:
                return float((mass * stats.norm.sf((b - density_x) / math.sqrt(step))).sum())

            if want <= 0:
                bound = math.inf
            else:
                from scipy.optimize import brentq

                low, high = density_x[-1] - 10 * math.sqrt(step), density_x[-1] + 12 * math.sqrt(step)
                bound = brentq(lambda b: crossing(b) - want, low, high, xtol=1e-10)
            x = np.linspace(-10 * math.sqrt(t), min(bound, 12 * math.sqrt(t)), grid_n)
            kernel = stats.norm.pdf((x[:, None] - density_x[None, :]) / math.sqrt(step)) / math.sqrt(step)
            density_x, density = x, kernel @ mass
        levels.append(float(stats.norm.sf(bound / math.sqrt(t))) if math.isfinite(bound) else 0.0)
        previous_t, previous_spent = t, spent(t, alpha)
    return tuple(levels)


def nominal_levels(fractions: Sequence[float], alpha: float = ALPHA) -> list[float]:
    """One-sided nominal levels of the looks at information ``fractions`` (increasing, the last
    normally 1): the Pocock-type spending boundary of the module docstring, so that a z statistic
    crosses some look's boundary with probability ``alpha`` in all under the null. A single look at
    fraction 1 has level ``alpha``."""
    fr = tuple(round(float(f), 6) for f in fractions)
    if not fr:
        return []
    if any(b <= a for a, b in zip(fr, fr[1:])) or fr[0] <= 0:
        raise ValueError(f"look fractions must increase from above 0: {fr}")
    return list(_levels(fr, float(alpha)))
