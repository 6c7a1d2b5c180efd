"""The verdict rules every study's claims follow, the Claim record, and how a study's claims are
decided together.

A check answers ``supported``, ``not supported``, ``inconclusive`` (the evidence starts with the
reason) or ``note`` (a measured number with no paper claim attached). Each claim also has a
``kind``, named in its line: :data:`COMPARISON` (settings compared at a stated budget) or
:data:`LIMIT` (a saturation or an extrapolated limit). Each check reads the same seed-aggregated
data the figures plot, so the numbers in the text are the numbers on the axes.

**Every verdict is a hypothesis test** (:mod:`analysis.inference`). A claim carries a
:class:`Decision`: the one-sided p-value of its *support* test (rejecting "the claim is false")
and of its *refutation* test (rejecting "the claim holds at its boundary"), a gate failure that
blocks any verdict (unequal budgets, one seed, unconverged trials for a limit), and a hold that
blocks only ``supported`` (a gap closing over training, lost trials on the favoured side). The
study's claims are decided together (:func:`judge`): within each direction the p-values are
adjusted by Holm over the study's claims, and a claim is ``supported`` when its adjusted support
p-value is at most the level (one-sided 0.025; lower at the early looks of a study that adds
seeds, :func:`analysis.inference.nominal_levels`), ``not supported`` when its adjusted
refutation p-value is, else ``inconclusive`` with what it would take (seeds per point at the
effect seen, at 80% power). The line gives the test, its p-values and the level.

**Error bars** are standard errors of the mean over seeds (never below the reblocked standard
error of the mean); a test needs >= 2 seeds per point.

**A comparison at a budget** (:func:`comparison_gate`, :func:`trend_claim`, and the studies'
comparisons) is judged without waiting for convergence. It needs one shared budget (training
iterations x walkers, :func:`analysis.stability.points_budget`; points of unequal budget are never
compared) and >= 2 seeds per point; ``supported`` also needs the effect stable over training
(:func:`analysis.stability.stability_gate`, on the log ratio). Its line names the budget.

**A limit** keeps the convergence gate: every trial behind the claim converged
(:mod:`analysis.convergence`), else ``inconclusive``.

**"No better" claims carry a margin** (:class:`Rules`, from the sweep file's ``claims`` block:
``margin_mha``, default chemical accuracy 1.6 mHa, the accuracy the field calls a match):
absence of a significant difference is never evidence. **Saturation** (depth, pairwise width,
determinants K, MCMC steps; :func:`saturation_claim`): "the error falls, then stops improving":
``supported`` when the error at the largest value is significantly below the smallest (Welch t
on ln error) **and** the values beyond some X are no better than X by more than the margin
(equivalence by intersection–union: every larger value's non-inferiority test rejects; the X are
tested in a fixed sequence from the second-largest value down, so locating X needs no further
adjustment); ``not supported`` when the error still falls by more than the margin between the
last two values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Iterator, Mapping

import numpy as np
import pandas as pd
from scipy import stats

from .inference import (
    ALPHA, MIN_SEEDS, POWER, Sample, TTest, detectable, difference, holm, seeds_needed, slope,
)
from .stability import points_budget, stability_gate


SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOTE = "supported", "not supported", "inconclusive", "note"
MIN_POINTS = 3  # a trend needs at least this many x values
DECISIVE_DELTA_AIC = 2.0  # the width fit names a model only when it wins by more than this
MIN_FIT_P = 0.01  # lack of fit below this p-value: the model does not describe the points
CHEMICAL_ACCURACY_MHA = 1.6


COMPARISON = "comparison at a budget"  # settings compared at the same iterations, walkers or cost
LIMIT = "limit"  # an extrapolated limit (converged energy, zero variance, infinite width)
LIMIT_SCOPE = "in the limit"  # a saturation or an extrapolation (docs/analysis.md), not one budget
DIAGNOSTICS = "diagnostics"  # the family of the claims every study gets (extrapolated limits, cost)


@dataclass(frozen=True)
class Rules:
    """The settings a study's claims are judged by (the sweep file's ``claims`` block, stored with
    the study): ``margin_mha`` for every "no better / matches / agrees" claim (mHa; the same number
    in mHa of energy when no reference is known), ``exponent_margin`` for "agrees with exponent
    -1/2", ``rate_margin`` for "HMC spikes no more often than MH" (a difference of the fractions of
    trials that spiked), ``alpha`` the one-sided level per direction."""

    margin_mha: float = CHEMICAL_ACCURACY_MHA
    exponent_margin: float = 0.15
    rate_margin: float = 0.3
    alpha: float = ALPHA

    def margin(self, unit: str) -> float:
        """The margin in ``unit`` (``mHa`` or ``Ha``)."""
        return self.margin_mha / 1000.0 if unit == "Ha" else self.margin_mha

    def margin_text(self, unit: str) -> str:
        value = self.margin(unit)
        return f"{value:g} {unit}" + (" (chemical accuracy)" if self.margin_mha == CHEMICAL_ACCURACY_MHA else "")


RULE_KEYS = ("margin_mha", "exponent_margin", "rate_margin", "alpha")


def rules_of(data: pd.DataFrame | Mapping | None) -> Rules:
    """The :class:`Rules` a frame's ``attrs["claims"]`` (or a mapping) sets; defaults elsewhere."""
    attrs = getattr(data, "attrs", None)
    given = (attrs or {}).get("claims") if attrs is not None else data
    if not isinstance(given, Mapping):
        return Rules()
    return Rules(**{k: float(given[k]) for k in RULE_KEYS if given.get(k) is not None})


@dataclass(frozen=True)
class Decision:
    """What a claim's verdict is decided from (module docstring).

    ``p_support``/``p_refute``: one-sided p-values (None: no such test); ``blocked``: a gate failure
    (always ``inconclusive``); ``hold``: keeps the claim from ``supported`` only; ``supported``,
    ``refuted``, ``undecided``: the reason each verdict starts with; ``test``: the test in words;
    ``body``: the evidence after the reason; ``need``: what an undecided claim would take;
    ``power``: the smallest effect the test detects at these seeds; ``locate``: (value, p) pairs a
    saturation claim places its X with (the last one at or below the level is X); ``trials`` the
    trial numbers behind the claim; ``hypothesis`` names the null hypothesis when several claims
    test the same one."""

    p_support: float | None = None
    p_refute: float | None = None
    blocked: str = ""
    hold: str = ""
    supported: str = ""
    refuted: str = ""
    undecided: str = ""
    test: str = ""
    body: str = ""
    need: str = ""
    power: str = ""
    locate: tuple[tuple[str, float], ...] = ()
    trials: tuple[int, ...] = ()  # the trials behind the claim (a study adding seeds adds them to their points)
    hypothesis: str = ""  # claims testing one hypothesis share one place in the Holm family (:func:`judge`)

    @property
    def testable(self) -> bool:
        return not self.blocked and (self.p_support is not None or self.p_refute is not None)


@dataclass(frozen=True)
class Claim:
    """One checked claim: ``topic`` (figure kind), ``statement``, ``verdict``, ``evidence`` and its
    ``kind`` (:data:`COMPARISON` or :data:`LIMIT`; the study that makes the claim sets it).
    ``decision`` holds the tests it is decided by (None for notes and for claims that could not
    be tested); ``p_adjusted`` the Holm-adjusted (support, refutation) p-values it was decided with
    and ``level`` that level."""

    topic: str
    statement: str
    verdict: str
    evidence: str
    kind: str = ""  # COMPARISON or LIMIT; empty until the study that makes the claim sets its default
    scope: str = ""  # "at 1000 iterations x 256 walkers (quick scale), 2 seeds per point" / LIMIT_SCOPE
    effect: str = ""  # the effect size in a few words, for the headline ("ratio 5.9-20")
    decision: Decision | None = field(default=None, compare=False, repr=False)
    p_adjusted: tuple[float | None, float | None] = (None, None)
    level: float = math.nan
    look: str = ""  # "look 2 of 3 (4 seeds)" for a study that adds seeds
    family: str = ""  # the Holm family: "" the study's confirmatory claims, DIAGNOSTICS the every-study ones

    def render(self) -> str:
        """One line of text: ``[verdict] statement: scope; evidence`` (notes have no scope)."""
        scope = f"{self.scope}; " if self.scope and self.verdict != NOTE else ""
        return f"[{self.verdict}] {self.statement}: {scope}{self.evidence}"

    def headline(self) -> str:
        """The claim in one short line: ``[verdict] statement (effect), scope``."""
        effect = f" ({self.effect})" if self.effect else ""
        scope = f", {self.scope}" if self.scope else ""
        return f"[{self.verdict}] {self.statement}{effect}{scope}"

    @property
    def key(self) -> tuple[str, str]:
        """What identifies a claim across looks and reruns."""
        return self.topic, self.statement


def fmt_p(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"


def decided(claim: Claim, level: float | None = None, adjusted: tuple[float | None, float | None] | None = None,
            raw_level: float | None = None, family: int = 1, look: str = "") -> Claim:
    """``claim`` with its verdict and evidence set from its :class:`Decision`: at ``level``
    (default the claim's rules' alpha) with the ``adjusted`` p-values (default the raw ones, a
    family of one). ``raw_level`` is the level the raw support p-value met in Holm's sequence (it
    places a saturation's X); ``family`` the number of claims adjusted over."""
    d = claim.decision
    if d is None or claim.verdict == NOTE:
        return claim
    level = ALPHA if level is None else level
    ps, pr = adjusted if adjusted is not None else (d.p_support, d.p_refute)
    raw_level = level if raw_level is None else raw_level
    if d.blocked:
        verdict, reason = INCONCLUSIVE, d.blocked
    elif ps is not None and ps <= level:
        verdict, reason = (INCONCLUSIVE, d.hold) if d.hold else (SUPPORTED, d.supported)
    elif pr is not None and pr <= level:
        verdict, reason = NOT_SUPPORTED, d.refuted
    else:
        verdict, reason = INCONCLUSIVE, d.undecided
    if verdict == SUPPORTED and d.locate:
        placed = [value for value, p in d.locate if p <= raw_level]
        if placed:
            reason = reason.replace("{X}", placed[-1])
    reason = reason.replace("{X}", d.locate[0][0] if d.locate else "")
    p_text = ""
    if not d.blocked and (d.p_support is not None or d.p_refute is not None):
        parts = []
        if d.p_support is not None:
            parts.append(f"p {fmt_p(d.p_support)} for")
        if d.p_refute is not None:
            parts.append(f"p {fmt_p(d.p_refute)} against")
        p_text = "one-sided " + ", ".join(parts)
        if family > 1:
            p_text += f" (Holm over {family} claims: {fmt_p(ps)}, {fmt_p(pr)})"
        p_text += f"; level {level:.3g}" + (f" at {look}" if look else "")
    need = d.need if verdict == INCONCLUSIVE and not d.blocked else ""
    evidence = join_parts(reason, p_text, d.test, need, d.power, d.body)
    return replace(claim, verdict=verdict, evidence=evidence, p_adjusted=(ps, pr), level=level, look=look)


def judge(claims: list[Claim], level: float | None = None, look: str = "", skip: frozenset = frozenset()) -> list[Claim]:
    """Decide a study's claims together: Holm over the testable claims of each family
    (``claim.family``: the study's confirmatory claims, and apart from them the diagnostics every
    study gets, extrapolated limits and cost, which a study is not run to test) in each
    direction, then :func:`decided` for each (claims whose key is in ``skip`` are returned
    unchanged). Claims that test one hypothesis (the same ``decision.hypothesis``: "Psiformer
    matches FermiNet on LiH" at equal iterations and at equal cost are one test with different
    cost conditions) take one place in the family: Holm controls the error over distinct
    hypotheses."""
    families = list(dict.fromkeys(c.family for c in claims))
    if len(families) > 1:
        judged = {}
        for family in families:
            members = [i for i, c in enumerate(claims) if c.family == family]
            for i, claim in zip(members, judge([claims[i] for i in members], level, look, skip)):
                judged[i] = claim
        return [judged[i] for i in range(len(claims))]
    level = ALPHA if level is None else level
    testable = [i for i, c in enumerate(claims) if c.decision is not None and c.decision.testable
                and c.verdict != NOTE and c.key not in skip]
    slot: dict[int, str] = {i: claims[i].decision.hypothesis or f"claim {i}" for i in testable}

    def adjusted(direction: str) -> dict[int, float]:
        best: dict[str, float] = {}
        for i in testable:
            p = getattr(claims[i].decision, direction)
            if p is not None:
                best[slot[i]] = min(p, best.get(slot[i], 1.0))
        names = list(best)
        by_slot = dict(zip(names, holm([best[n] for n in names])))
        return {i: max(by_slot[slot[i]], getattr(claims[i].decision, direction))
                for i in testable if getattr(claims[i].decision, direction) is not None}

    adj_s, adj_r = adjusted("p_support"), adjusted("p_refute")
    order = sorted({slot[i]: claims[i].decision.p_support for i in adj_s}.items(), key=lambda kv: kv[1])
    rank_of = {name: rank for rank, (name, _) in enumerate(order)}
    raw_levels = {i: level / (len(order) - rank_of[slot[i]]) for i in adj_s}
    family = len(set(slot.values()))
    out = []
    for i, claim in enumerate(claims):
        if i in testable:
            out.append(decided(claim, level, (adj_s.get(i), adj_r.get(i)), raw_levels.get(i, level), family, look))
        else:
            out.append(claim if claim.key in skip else decided(claim, level, look=look))
    return out


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


def fmt_factor(ln_value: float) -> str:
    """A log contrast as a factor: ``x3.2``."""
    if not math.isfinite(ln_value):
        return "x∞" if ln_value > 0 else "x0"
    return f"x{math.exp(ln_value):.3g}"


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


def replicate_gate(points: pd.DataFrame, key_name: str) -> str | None:
    """A test needs every point with >= 2 seeds (so that its error bar includes the seed-to-seed
    scatter) and an error bar; the failure names the points that lack them."""
    if points.empty:
        return None
    seeds = pd.to_numeric(points["n_seeds"], errors="coerce").fillna(0).astype(int)
    bars = pd.to_numeric(points["yerr"], errors="coerce").fillna(0.0)
    single = points[seeds < MIN_SEEDS]
    if len(single):
        return (f"one seed at {key_name} {', '.join(dict.fromkeys(fmt_num(x) for x in single['x']))}: a test needs "
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


def limit_gate(points: pd.DataFrame, key_name: str) -> str | None:
    """The gate of a limit: converged trials and >= 2 seeds per point."""
    return join_parts(convergence_gate(points), replicate_gate(points, key_name)) or None


def seeds_text(points: pd.DataFrame) -> str:
    """``2 seeds per point`` (``1-2 seeds per point`` when they differ)."""
    seeds = pd.to_numeric(points.get("n_seeds", pd.Series(dtype=float)), errors="coerce").dropna()
    low, high = (int(seeds.min()), int(seeds.max())) if len(seeds) else (0, 0)
    return (f"{low} seed{'s' if low != 1 else ''}" if low == high else f"{low}-{high} seeds") + " per point"


def min_seeds(points: pd.DataFrame) -> int:
    seeds = pd.to_numeric(points.get("n_seeds", pd.Series(dtype=float)), errors="coerce").dropna()
    return int(seeds.min()) if len(seeds) else 0


def points_gate(points: pd.DataFrame, key_name: str, what: str = "") -> str | None:
    """``only 2 widths ...: a trend needs at least 3`` or None."""
    if len(points) >= MIN_POINTS:
        return None
    listed = ", ".join(fmt_num(x) for x in points["x"])
    return f"only {len(points)} {key_name} values{what} ({listed}): a trend needs at least {MIN_POINTS}"


def join_parts(*parts: str | None) -> str:
    """Non-empty parts joined by ``; ``."""
    return "; ".join(p for p in parts if p)


# ----------------------------------------------------------------------------- samples and power


def trial_numbers(rows) -> tuple[int, ...]:
    """The trial numbers of point rows (their ``trials`` column: ``"3 7"``), sorted."""
    if isinstance(rows, pd.DataFrame):
        rows = [r for _, r in rows.iterrows()]
    found = set()
    for r in rows:
        found.update(int(t) for t in str(r.get("trials", "") or "").replace("|", " ").split() if t.isdigit())
    return tuple(sorted(found))


def lost_rows(rows) -> list:
    """The rows (points) among ``rows`` whose trials include some that ended without a result."""
    if isinstance(rows, pd.DataFrame):
        rows = [r for _, r in rows.iterrows()]
    return [r for r in rows if int(r.get("n_lost", 0) or 0) > 0]


def lost_hold(favoured, what: str = "the favoured setting") -> str:
    """``supported`` is held when trials of the points a claim favours ended without a result
    (failed, diverged, pruned): the seeds that finished could be the lucky ones."""
    hit = lost_rows(favoured)
    return (f"{what} lost trials that ended without a result ({', '.join(str(r['lost']) for r in hit)}): the "
            "finished seeds may be the lucky ones") if hit else ""


def lost_note(rows) -> str:
    """Every trial of the claim's points that ended without a result, named."""
    hit = lost_rows(rows)
    return ("trials without a result at these points: " + "; ".join(
        f"{fmt_num(r['x'])}: {r['lost']}" for r in hit)) if hit else ""


def sample(row, log: bool) -> Sample:
    """The seeds of a point row, on the log scale when ``log`` (errors)."""
    s = Sample.from_row(row)
    return s.logged() if log else s


def floored_note(rows, log: bool) -> str:
    """Which points had seeds floored before the log (errors within their reblocked error of 0)."""
    if not log:
        return ""
    hit = [f"{fmt_num(r['x'])} ({n})" for r in rows if (n := Sample.from_row(r).floored())]
    return (("errors within their reblocked standard error of zero counted as that error before the log (seeds "
             "floored at " + ", ".join(hit) + ")") if hit else "")


def need_text(test: TTest, seeds: int, what: str = "") -> str:
    """``at the effect seen, about N seeds per point would decide it (80% power)`` for a test whose
    estimate lies beyond its boundary; otherwise a note that the estimate sits on the boundary."""
    effect = abs(test.estimate - test.null)
    n = seeds_needed(test, max(seeds, 1), effect)
    label = f" {what}" if what else ""
    if n is None:
        return f"at the effect seen{label}, no practical number of seeds decides it (the estimate sits at its boundary)"
    return f"at the effect seen{label}, about {n} seeds per point would decide it ({POWER:.0%} power)"


def power_text(test: TTest, seeds: int, log: bool, unit: str, boundary: str = "") -> str:
    """``detects a true x2.9 beyond its boundary with 80% power at 2 seeds per point``."""
    d = detectable(test.se, test.df)
    if not math.isfinite(d):
        return ""
    size = f"factor {math.exp(d):.3g}" if log else f"{d:.3g} {unit}"
    where = f" beyond {boundary}" if boundary else " beyond its boundary"
    return f"detects a true {size}{where} ({POWER:.0%} power, level {ALPHA:g}, {seeds} seeds per point)"


def stability_pairs_log(pairs) -> tuple[str | None, str]:
    """:func:`analysis.stability.stability_gate` on ln errors (ratios), the scale of the tests."""
    return stability_gate(pairs, log=True)


# ----------------------------------------------------------------------------- trend and saturation


def trend_claim(topic: str, statement: str, line: pd.DataFrame, key_name: str, walkers_vary: bool = False) -> Claim:
    """A comparison at a budget along one line sorted by x: "the error is lower at larger x".

    Test: the least-squares slope of the points' mean ln(error) against log2(x) (x itself when not
    all positive), a Welch contrast over the points (:func:`analysis.inference.slope`); support:
    slope < 0; refutation: slope > 0. Gates: one budget, >= 2 seeds per point, >= 3 points.
    ``supported`` is held when the ratio of the smallest-x to the largest-x error shrinks over
    training (:func:`analysis.stability.stability_gate` on the log ratio) or when some larger x is
    worse than a smaller one beyond a Bonferroni-corrected Welch test (a reversal)."""
    unit = y_unit(line)
    log = unit == "mHa"
    pts = points_text(line, key_name, unit)
    gate = comparison_gate(line, key_name, walkers_vary)
    first, last = line.iloc[0], line.iloc[-1]
    effect = (f"{fmt_pm(first['mean'], first['yerr'], unit)} at {key_name} {fmt_num(first['x'])}, "
              f"{fmt_pm(last['mean'], last['yerr'], unit)} at {fmt_num(last['x'])}")
    blocked = join_parts(gate.failure, points_gate(line, key_name))
    if blocked:
        return Claim(topic, statement, INCONCLUSIVE, join_parts(blocked, pts), kind=COMPARISON, scope=gate.scope,
                     effect=effect, decision=Decision(blocked=blocked, body=pts, trials=trial_numbers(line)))
    x = line["x"].to_numpy(float)
    axis = np.log2(x) if (x > 0).all() else x
    per = "per doubling of " + key_name if (x > 0).all() else "per unit " + key_name
    samples = [sample(r, log) for _, r in line.iterrows()]
    test = slope(axis, samples)
    seeds = min_seeds(line)
    label = f"{key_name} {fmt_num(first['x'])} vs {fmt_num(last['x'])}"
    unstable, stability_note = stability_pairs_log([(label, first, last, 1.0)]) if log else stability_gate(
        [(label, first, last, 1.0)])
    rev = reversals(line, key_name, unit, log)
    hold = join_parts(unstable, ("significant reversal: " + ", ".join(rev)) if rev else "", lost_hold(line, "a point"))
    size = fmt_factor(test.estimate) if log else f"{test.estimate:+.3g} {unit}"
    what = "ln(error)" if log else "energy"
    test_text = f"Welch t on the least-squares slope of {what} {per}: slope {size} {per}, {test.text()}"
    decision = Decision(
        p_support=test.p_less, p_refute=test.p_greater, hold=hold,
        supported=f"lower at larger {key_name}: the error changes by {size} {per}",
        refuted=f"the error grows with {key_name} ({size} {per})",
        undecided=f"no significant trend ({size} {per})",
        test=test_text, body=join_parts(pts, floored_note([r for _, r in line.iterrows()], log), stability_note,
                                        lost_note(line)),
        need=need_text(test, seeds), power=power_text(test, seeds, log, unit, "no trend"), trials=trial_numbers(line))
    return decided(Claim(topic, statement, INCONCLUSIVE, "", kind=COMPARISON, scope=gate.scope, effect=effect,
                         decision=decision))


def reversals(line: pd.DataFrame, key_name: str, unit: str, log: bool = True) -> list[str]:
    """Every pair where a larger ``x`` is worse than a smaller one by a one-sided t test at
    ALPHA / (number of pairs) (on ln error with the line's pooled variance; Welch on energies), as
    text."""
    rows = [r for _, r in line.iterrows()]
    pairs = [(i, j) for i in range(len(rows)) for j in range(i + 1, len(rows))]
    pool = [sample(r, log) for r in rows] if log else None
    found = []
    for i, j in pairs:
        a, b = rows[i], rows[j]
        if min(int(a["n_seeds"]), int(b["n_seeds"])) < MIN_SEEDS:
            continue
        test = difference(sample(b, log), sample(a, log), pool=pool)
        if test.p_greater <= ALPHA / len(pairs):
            found.append(f"{key_name} {fmt_num(b['x'])} ({fmt_pm(b['mean'], b['yerr'], unit)}) is worse than "
                         f"{key_name} {fmt_num(a['x'])} ({fmt_pm(a['mean'], a['yerr'], unit)}), p {fmt_p(test.p_greater)}")
    return found


def saturation_claim(topic: str, key_name: str, statement: str, series: str, line: pd.DataFrame, unit: str,
                     rules: Rules | None = None) -> Claim:
    """"The error falls, then stops improving beyond X" along one line (depth, pairwise width,
    determinants, MCMC steps): the rules of the module docstring, with the margin of ``rules``."""
    rules = rules or rules_of(line)
    statement = statement + series_suffix(series)
    log = unit == "mHa"
    margin = rules.margin(unit)
    pts = points_text(line, key_name, unit)
    blocked = join_parts(convergence_gate(line), points_gate(line, key_name), replicate_gate(line, key_name))
    if blocked:
        return Claim(topic, statement, INCONCLUSIVE, join_parts(blocked, pts), kind=LIMIT,
                     decision=Decision(blocked=blocked, body=pts, trials=trial_numbers(line)))
    rows = [r for _, r in line.iterrows()]
    linear = [Sample.from_row(r) for r in rows]
    scaled = [s.logged() for s in linear] if log else linear
    fall = difference(scaled[0], scaled[-1], pool=scaled if log else None)  # > 0: the largest value is lower
    m = len(rows)
    # flat beyond index d: every j > d is no better than d by the margin: mean_d - mean_j < margin
    flat_p = []
    for d in range(m - 2, -1, -1):
        tests = [difference(linear[d], linear[j], null=margin) for j in range(d + 1, m)]
        flat_p.append((d, max(t.p_less for t in tests), tests))
    running, locate = 0.0, []
    for d, p, _ in flat_p:
        running = max(running, p)
        locate.append((f"{key_name} {fmt_num(rows[d]['x'])}", running))
    top_p = flat_p[0][1]
    still = difference(linear[-2], linear[-1], null=margin)  # > margin: still falling at the end
    seeds = min_seeds(line)
    fall_size = f"{math.exp(fall.estimate):.3g}x" if log else f"by {fall.estimate:.3g} {unit}"
    last_gain = linear[-2].mean - linear[-1].mean
    margin_text = rules.margin_text(unit)
    test = (f"fall from {key_name} {fmt_num(rows[0]['x'])} to {fmt_num(rows[-1]['x'])}: Welch t on "
            f"{'ln(error)' if log else 'energy'}, {fall_size}, {fall.text()}; flat beyond X: each larger value no "
            f"better than X by more than {margin_text} (Welch non-inferiority tests, all must reject; X tested from "
            f"{key_name} {fmt_num(rows[-2]['x'])} down)")
    binding = max((t for t in flat_p[0][2]), key=lambda t: t.p_less)
    need = join_parts(need_text(fall, seeds, "of the fall") if fall.p_greater > ALPHA else "",
                      need_text(binding, seeds, f"for margin {margin_text}") if top_p > ALPHA else "")
    decision = Decision(
        p_support=max(fall.p_greater, top_p), p_refute=still.p_greater,
        supported=(f"the error falls {fall_size} from {key_name} {fmt_num(rows[0]['x'])} to {fmt_num(rows[-1]['x'])} "
                   f"and no value beyond {{X}} is better than it by more than {margin_text}"),
        refuted=(f"no saturation in this range: the error still falls by more than {margin_text} from {key_name} "
                 f"{fmt_num(rows[-2]['x'])} to {fmt_num(rows[-1]['x'])} ({last_gain:.3g} {unit})"),
        undecided=("the fall is not significant" if fall.p_greater > ALPHA else
                   f"a flat tail within {margin_text} is not shown (the last gain is {last_gain:.3g} {unit})"),
        test=test, body=join_parts(pts, floored_note(rows, log), lost_note(rows)), need=need,
        hold=lost_hold(rows, "a point"),
        power=power_text(binding, seeds, False, unit, f"the margin {margin_text}"),
        locate=tuple(locate), trials=trial_numbers(line))
    return decided(Claim(topic, statement, INCONCLUSIVE, "", kind=LIMIT, decision=decision))
