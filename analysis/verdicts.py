"""The verdict rules every study's claims follow, the fits they use, and the Claim record.

A check answers ``supported``, ``not supported``, ``inconclusive`` (the evidence starts with the
reason) or ``note`` (a measured number with no paper claim attached). Each claim also has a
``kind``, named in its line: :data:`COMPARISON` (settings compared at a stated budget) or
:data:`LIMIT` (a saturation or an extrapolated limit). Each check reads the same seed-aggregated
data the figures plot, so the numbers in the text are the numbers on the axes.

**Error bars and significance.** A point's error bar ``e`` is the plotted ``yerr``: the standard
deviation of its seeds (never below the reblocked standard error of their mean), or the reblocked
standard error of the evaluated energy when one seed ran. Two points differ *significantly* when
their means differ by more than ``2 sqrt(e1^2 + e2^2)``.

**A comparison at a budget** (:func:`comparison_gate`, :func:`trend_claim`, and the studies'
comparisons) is judged without waiting for convergence. It needs one shared budget (training
iterations x walkers, :func:`analysis.stability.points_budget`; points of unequal budget are never
compared), >= 2 seeds per point (:func:`replicate_gate`), for trends >= 3 points and no significant
reversal, and for ``supported`` a margin stable over training
(:func:`analysis.stability.stability_gate`). Its line names the budget (``scope``).

**A limit** keeps the convergence gate. ``supported`` (or ``not supported``) needs:

1. *converged trials*: every trial behind the claim is converged by the one definition in
   :mod:`analysis.convergence` (flat training tail, evaluation agreeing with it). Otherwise the
   verdict is ``inconclusive`` with the evidence ``trials not converged (n of m): t..``, or
   ``convergence not measured (n of m trials)`` when a trial has no training record;
2. *seeds*: every point has at least 2 seeds, or one seed with a reblocked standard error; when
   points have one seed the evidence says so (their error bars omit seed-to-seed scatter);
3. for trends: *at least 3 points*, and *no significant reversal*: no larger value significantly
   worse than a smaller one (checked over every pair, adjacent pairs included). A reversal makes
   the verdict ``inconclusive``, never ``supported``.

**Saturation** (depth, pairwise width, determinants K, MCMC steps: :func:`saturation_claim`):
the error falls until X and is flat beyond (no larger value significantly better than X).
``supported`` needs the gate, a significant fall before X, and at least one larger value after X;
still falling at the largest value is ``not supported``; no two values differing is
``inconclusive``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd
from scipy import stats

from .stability import margin, points_budget, stability_gate


SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOTE = "supported", "not supported", "inconclusive", "note"
SIGNIFICANCE = 2.0  # differences, slopes and reversals count beyond this many standard errors
MIN_POINTS = 3  # a trend needs at least this many x values
MIN_SEEDS = 2  # seeds per point for a seed-spread error bar (one seed: the reblocked error, said so)
DECISIVE_DELTA_AIC = 2.0  # the width fit names a model only when it wins by more than this
MIN_FIT_P = 0.01  # the chosen width model must fit its points with a chi^2 p-value at least this
SQRT_WALKERS_TOLERANCE = 0.15  # |exponent + 0.5| accepted when the fit has no standard error


COMPARISON = "comparison at a budget"  # settings compared at the same iterations, walkers or cost
LIMIT = "limit"  # an extrapolated limit (converged energy, zero variance, infinite width)


@dataclass(frozen=True)
class Claim:
    """One checked claim: ``topic`` (figure kind), ``statement``, ``verdict``, ``evidence`` and its
    ``kind`` (:data:`COMPARISON` or :data:`LIMIT`; the study that makes the claim sets it)."""

    topic: str
    statement: str
    verdict: str
    evidence: str
    kind: str = ""  # COMPARISON or LIMIT; empty until the study that makes the claim sets its default
    scope: str = ""  # "at 1000 iterations x 256 walkers (quick scale), 2 seeds per point" / LIMIT_SCOPE
    effect: str = ""  # the effect size in a few words, for the headline ("ratio 5.9-20")

    def render(self) -> str:
        """One line of text: ``[verdict] statement: scope; evidence`` (notes have no scope)."""
        scope = f"{self.scope}; " if self.scope and self.verdict != NOTE else ""
        return f"[{self.verdict}] {self.statement}: {scope}{self.evidence}"

    def headline(self) -> str:
        """The claim in one short line: ``[verdict] statement (effect), scope``."""
        effect = f" ({self.effect})" if self.effect else ""
        scope = f", {self.scope}" if self.scope else ""
        return f"[{self.verdict}] {self.statement}{effect}{scope}"


LIMIT_SCOPE = "in the limit"  # a saturation or an extrapolation (docs/analysis.md), not one budget


@dataclass(frozen=True)
class Gate:
    """A comparison's gate: ``failure`` (None when it passes) and the ``scope`` every verdict line of
    the comparison names (its budget and seeds)."""

    failure: str | None
    scope: str


def y_unit(data: pd.DataFrame) -> str:
    """Unit of the plotted y (mHa for errors and error bars, Ha for energies)."""
    return "Ha" if len(data) and data["y_name"].iloc[0] == "energy" else "mHa"


def fmt_pm(mean: float, err: float, unit: str) -> str:
    """``12.34 ± 0.56 mHa`` (precision adapted to the unit)."""
    digits = 5 if unit == "Ha" else 2
    if not math.isfinite(err):
        return f"{mean:.{digits}f} {unit}"
    return f"{mean:.{digits}f} ± {err:.{digits}f} {unit}"


def fmt_num(x) -> str:
    """A swept value as text (``16``, ``0.05``, ``ferminet``)."""
    if isinstance(x, (float, np.floating)) and float(x).is_integer():
        return str(int(x))
    return f"{x:g}" if isinstance(x, (float, np.floating)) else str(x)


def combined_sigma(e1: float, e2: float) -> float:
    """Error bars added in quadrature (unknown error bars count as 0)."""
    return math.sqrt(np.nan_to_num(e1) ** 2 + np.nan_to_num(e2) ** 2)


def is_better(a: pd.Series, b: pd.Series) -> bool:
    """Whether point ``b`` is significantly lower (better) than point ``a``."""
    return a["mean"] - b["mean"] > SIGNIFICANCE * combined_sigma(a["yerr"], b["yerr"])


def lines(data: pd.DataFrame, panel_prefix: str | None = None) -> Iterator[tuple[str, pd.DataFrame]]:
    """(series label, points sorted by x) for every line of figure data (optionally one panel)."""
    if panel_prefix is not None:
        data = data[data["panel"].str.startswith(panel_prefix)]
    for series in dict.fromkeys(data["series"]):
        yield series, data[data["series"] == series].sort_values("x").reset_index(drop=True)


def log_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Unweighted least-squares line y = a + b x: returns (b, standard error of b, R^2); NaN where
    undefined (the standard error and R^2 need at least 3 points)."""
    b, a = np.polyfit(x, y, 1)
    if x.size < 3:
        return float(b), math.nan, math.nan
    resid = y - (a + b * x)
    sxx = float(((x - x.mean()) ** 2).sum())
    se = math.sqrt(float((resid**2).sum()) / (x.size - 2) / sxx)
    sst = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / sst if sst > 0 else math.nan
    return float(b), se, r2


@dataclass(frozen=True)
class LineFit:
    """A weighted least-squares line y = a + b x with error bars ``sigma`` on y.

    ``slope_se`` comes from the error bars, scaled up by sqrt(χ²/dof) when the points scatter more
    than their bars say; ``chi2`` and ``dof`` (= points − 2) judge the fit; AIC = χ² + 2·2.
    """

    slope: float
    slope_se: float
    intercept: float
    chi2: float
    dof: int

    @property
    def aic(self) -> float:
        return self.chi2 + 4.0

    @property
    def p_value(self) -> float:
        """Probability of a χ² at least this large if the model were right (NaN without dof)."""
        if self.dof <= 0:
            return math.nan
        return float(stats.chi2.sf(self.chi2, self.dof))

    @property
    def significance(self) -> float:
        """slope / its standard error."""
        return self.slope / self.slope_se if self.slope_se > 0 else math.copysign(math.inf, self.slope)


def weighted_line(x: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> LineFit:
    """Fit y = a + b x with weights 1/sigma^2 (see :class:`LineFit`); needs >= 2 points, sigma > 0."""
    w = 1.0 / sigma**2
    design = np.stack([np.ones_like(x), x], axis=1)
    cov = np.linalg.inv(design.T @ (design * w[:, None]))
    a, b = cov @ (design.T @ (w * y))
    chi2 = float((w * (y - a - b * x) ** 2).sum())
    dof = int(x.size - 2)
    scale = max(1.0, math.sqrt(chi2 / dof)) if dof > 0 else 1.0
    return LineFit(float(b), float(math.sqrt(cov[1, 1]) * scale), float(a), chi2, dof)


def saturation_index(line: pd.DataFrame) -> int:
    """Index of the smallest x beyond which no larger x is significantly better."""
    for i in range(len(line)):
        if not any(is_better(line.iloc[i], line.iloc[j]) for j in range(i + 1, len(line))):
            return i
    return len(line) - 1


def series_suffix(series: str) -> str:
    """`` (depth 2)`` for a named line, empty for the single line ``all``."""
    return "" if series == "all" else f" ({series})"


def points_text(line: pd.DataFrame, key_name: str, unit: str) -> str:
    """``width 8: 12.00 ± 0.40 mHa; width 16: ...``."""
    return "; ".join(f"{key_name} {fmt_num(r['x'])}: {fmt_pm(r['mean'], r['yerr'], unit)}" for _, r in line.iterrows())


def convergence_gate(points: pd.DataFrame) -> str | None:
    """``trials not converged (n of m): t1, t4`` / ``convergence not measured (n of m trials)``, or
    None when every trial behind these points converged (:mod:`analysis.convergence`)."""
    if points.empty:
        return None
    if "n_not_converged" not in points:
        return f"convergence not measured ({len(points)} points without convergence columns)"
    counts = points[["n_converged", "n_not_converged", "n_not_measured"]].fillna(0).astype(int)
    total = int(counts.to_numpy().sum())
    bad, unknown = int(counts["n_not_converged"].sum()), int(counts["n_not_measured"].sum())
    if bad:
        names = " ".join(str(t) for t in points["not_converged"].fillna("")).split()
        return f"trials not converged ({bad} of {total}: {', '.join('t' + n for n in names)})"
    if unknown:
        return f"convergence not measured ({unknown} of {total} trials have no training energies or evaluation)"
    return None


def seed_gate(points: pd.DataFrame, key_name: str) -> tuple[str | None, str]:
    """(failure, note) of the seed rule: a point needs >= 2 seeds or one seed with a reblocked
    standard error; the note says when error bars come from single runs."""
    if points.empty:
        return None, ""
    seeds = pd.to_numeric(points["n_seeds"], errors="coerce").fillna(0).astype(int)
    bars = pd.to_numeric(points["yerr"], errors="coerce").fillna(0.0)
    no_bar = points[bars <= 0]
    if len(no_bar):
        return (f"no error bar at {key_name} {', '.join(fmt_num(x) for x in no_bar['x'])} "
                "(one seed and no reblocked standard error)"), ""
    single = int((seeds < MIN_SEEDS).sum())
    if single == len(points):
        return None, ("one seed per point: error bars are reblocked standard errors of single runs "
                      "(seed-to-seed scatter not measured)")
    if single:
        return None, f"{single} of {len(points)} points have one seed (their error bar is the reblocked standard error)"
    return None, ""


def replicate_gate(points: pd.DataFrame, key_name: str) -> str | None:
    """A comparison needs every point with >= 2 seeds (so that its error bar includes the
    seed-to-seed scatter) and an error bar; the failure names the points that lack them."""
    if points.empty:
        return None
    seeds = pd.to_numeric(points["n_seeds"], errors="coerce").fillna(0).astype(int)
    bars = pd.to_numeric(points["yerr"], errors="coerce").fillna(0.0)
    single = points[seeds < MIN_SEEDS]
    if len(single):
        return (f"one seed at {key_name} {', '.join(dict.fromkeys(fmt_num(x) for x in single['x']))}: a comparison needs "
                f">= {MIN_SEEDS} seeds per point (the seed-to-seed scatter is often larger than the reblocked error)")
    if (bars <= 0).any():
        return f"no error bar at {key_name} {', '.join(fmt_num(x) for x in points[bars <= 0]['x'])}"
    return None


def comparison_gate(points: pd.DataFrame, key_name: str, walkers_vary: bool = False) -> Gate:
    """The gate of a comparison at a budget (module docstring): one shared budget and >= 2 seeds
    per point; no convergence requirement. The scope names the budget and the seeds.
    ``walkers_vary``: the walkers are the compared key, so only the iterations must agree."""
    budget, unequal = points_budget(points, walkers_vary)
    scope = f"at {budget.text()}, {seeds_text(points)}" if budget is not None else "at unequal budgets"
    return Gate(join_parts(unequal, replicate_gate(points, key_name)) or None, scope)


def seeds_text(points: pd.DataFrame) -> str:
    """``2 seeds per point`` (``1-2 seeds per point`` when they differ)."""
    seeds = pd.to_numeric(points.get("n_seeds", pd.Series(dtype=float)), errors="coerce").dropna()
    low, high = (int(seeds.min()), int(seeds.max())) if len(seeds) else (0, 0)
    return (f"{low} seed{'s' if low != 1 else ''}" if low == high else f"{low}-{high} seeds") + " per point"


def points_gate(points: pd.DataFrame, key_name: str, what: str = "") -> str | None:
    """``only 2 widths ...: a trend needs at least 3`` or None."""
    if len(points) >= MIN_POINTS:
        return None
    listed = ", ".join(fmt_num(x) for x in points["x"])
    return f"only {len(points)} {key_name} values{what} ({listed}): a trend needs at least {MIN_POINTS}"


def reversals(line: pd.DataFrame, key_name: str, unit: str) -> list[str]:
    """Every pair where the larger ``x`` is significantly worse than a smaller one, as text."""
    found = []
    for i in range(len(line)):
        for j in range(i + 1, len(line)):
            a, b = line.iloc[i], line.iloc[j]
            if is_better(b, a):
                gap, sigma = b["mean"] - a["mean"], combined_sigma(a["yerr"], b["yerr"])
                found.append(f"{key_name} {fmt_num(b['x'])} ({fmt_pm(b['mean'], b['yerr'], unit)}) is worse than "
                             f"{key_name} {fmt_num(a['x'])} ({fmt_pm(a['mean'], a['yerr'], unit)}) by "
                             f"{gap / sigma:.1f} sigma")
    return found


def join_parts(*parts: str | None) -> str:
    """Non-empty parts joined by ``; ``."""
    return "; ".join(p for p in parts if p)


def saturation_claim(topic: str, key_name: str, statement: str, series: str, line: pd.DataFrame, unit: str) -> Claim:
    """Where the error stops improving along one line (depth, pairwise width, determinants, steps).

    Model: the error falls until X and is flat beyond it (no larger value better by > 2σ)."""
    statement = statement + series_suffix(series)

    def limit(verdict: str, evidence: str) -> Claim:
        return Claim(topic, statement, verdict, evidence, kind=LIMIT)
    pts = points_text(line, key_name, unit)
    seed_fail, seed_note = seed_gate(line, key_name)
    failures = [convergence_gate(line), points_gate(line, key_name), seed_fail]
    if any(failures):
        return limit(INCONCLUSIVE, join_parts(*failures, pts, seed_note))
    rev = reversals(line, key_name, unit)
    if rev:
        return limit(INCONCLUSIVE,
                     join_parts("significant reversal, so a saturation model (falls, then flat) does not describe it: "
                                + ", ".join(rev) + " (under-trained at this scale?)", pts, seed_note))
    pairs = [(i, j) for i in range(len(line)) for j in range(len(line)) if i != j]
    if not any(is_better(line.iloc[i], line.iloc[j]) for i, j in pairs):
        largest = float(np.nanmax(line["yerr"].to_numpy(float)))
        return limit(INCONCLUSIVE,
                     join_parts(f"no two values differ beyond their error bars (largest error bar {largest:.2f} {unit}): "
                                f"saturated already at the smallest {key_name}, or too noisy to tell", pts, seed_note))
    d = saturation_index(line)
    sat = line.iloc[d]
    if d == len(line) - 1:
        prev = line.iloc[d - 1]
        return limit(NOT_SUPPORTED,
                     join_parts(f"no saturation in this range: the error still falls significantly from {key_name} "
                                f"{fmt_num(prev['x'])} to {fmt_num(sat['x'])}", pts, seed_note))
    return limit(SUPPORTED,
                 join_parts(f"no gain beyond {key_name} {fmt_num(sat['x'])} within error bars (saturation model: falls "
                            f"significantly up to {fmt_num(sat['x'])}, flat within 2 sigma beyond)", pts, seed_note))


def trend_claim(topic: str, statement: str, line: pd.DataFrame, key_name: str, walkers_vary: bool = False) -> Claim:
    """A comparison at a budget along one line sorted by x: "the error is lower at larger x".

    The margin is the error at the smallest x minus the error at the largest (error bars in
    quadrature). ``supported``: the comparison gate, >= 3 points, the margin above 2 sigma, no
    significant reversal between any pair, and the margin stable over training
    (:func:`analysis.stability.stability_gate`); ``not supported``: the largest x significantly
    worse than the smallest; otherwise ``inconclusive``."""
    unit = y_unit(line)
    pts = points_text(line, key_name, unit)
    gate = comparison_gate(line, key_name, walkers_vary)
    first, last = line.iloc[0], line.iloc[-1]
    end = margin(float(first["mean"]), float(first["yerr"]), float(last["mean"]), float(last["yerr"]))
    label = f"{key_name} {fmt_num(first['x'])} vs {fmt_num(last['x'])}"
    unstable, stability_note = stability_gate([(label, first, last, 1.0)])
    effect = (f"{fmt_pm(first['mean'], first['yerr'], unit)} at {key_name} {fmt_num(first['x'])}, "
              f"{fmt_pm(last['mean'], last['yerr'], unit)} at {fmt_num(last['x'])}")

    def claim(verdict: str, reason: str) -> Claim:
        return Claim(topic, statement, verdict, join_parts(reason, pts, stability_note), kind=COMPARISON,
                     scope=gate.scope, effect=effect)

    few = points_gate(line, key_name)
    if gate.failure or few:
        return claim(INCONCLUSIVE, join_parts(gate.failure, few))
    if end.z < -SIGNIFICANCE:
        return claim(NOT_SUPPORTED, f"the error at {key_name} {fmt_num(last['x'])} is higher than at "
                                    f"{fmt_num(first['x'])} by {-end.value:.2f} ± {end.sigma:.2f} {unit} ({-end.z:.1f} sigma)")
    if end.z <= SIGNIFICANCE:
        return claim(INCONCLUSIVE, f"no significant difference between {label} ({end.z:+.1f} sigma, needs beyond "
                                   f"{SIGNIFICANCE:g})")
    rev = reversals(line, key_name, unit)
    if rev:
        return claim(INCONCLUSIVE, "significant reversal: " + ", ".join(rev))
    if unstable:
        return claim(INCONCLUSIVE, unstable)
    return claim(SUPPORTED, f"lower by {end.value:.2f} ± {end.sigma:.2f} {unit} ({end.z:.1f} sigma) from {label}, "
                            "no significant reversal, stable over training")
