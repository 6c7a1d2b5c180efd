"""The text report: the FermiNet paper's qualitative claims, checked against one study.

Each check reads the same seed-aggregated data the figures plot (``analysis.figures.*_data``),
so the numbers in the text are the numbers on the axes. A check answers ``supported``,
``not supported``, ``inconclusive`` (the evidence starts with the reason) or ``note`` (a measured
number with no paper claim attached). The rules:

**Error bars and significance.** A point's error bar ``e`` is the plotted ``yerr``: the standard
deviation of its seeds (never below the reblocked standard error of their mean), or the reblocked
standard error of the evaluated energy when one seed ran. Two points differ *significantly* when
their means differ by more than ``2 sqrt(e1^2 + e2^2)``.

**The gate, applied to every claim that gets a verdict** (width, depth, pairwise width,
determinants, FermiNet vs Slater–Jastrow, sampler). ``supported`` (or ``not supported``) needs:

1. *converged trials*: every trial behind the claim is converged by the one definition in
   :mod:`analysis.convergence` (flat training tail, evaluation agreeing with it). Otherwise the
   verdict is ``inconclusive`` with the evidence ``trials not converged (n of m): t..``, or
   ``convergence not measured (n of m trials)`` when a trial has no training record;
2. *seeds*: every point has at least 2 seeds, or one seed with a reblocked standard error; when
   points have one seed the evidence says so (their error bars omit seed-to-seed scatter);
3. for trends (width, depth, pairwise width, K, MCMC steps, walkers): *at least 3 points*, and
   *no significant reversal*: no larger value significantly worse than a smaller one (checked over
   every pair, adjacent pairs included). A reversal makes the verdict ``inconclusive``, never
   ``supported``.

**Each claim states the model it fits.**

* Width: ln(error) is fitted against width (*exponential*: error ∝ exp(-width / w0)) and against
  ln(width) (*power law*: error ∝ width^p), both by least squares weighted by the error bars
  (ln-error error bar = e / mean), over the widths whose mean error is > 0 (a non-positive error has
  no logarithm: such widths are left out and said so). Both have 2 parameters, so AIC = χ² + 4 and
  ΔAIC = χ²(power) − χ²(exponential). The statement names the better model: "error falls
  exponentially with width" only when the exponential is better by ΔAIC > 2, "error falls as a
  power law of width" when the power law is better by ΔAIC > 2, otherwise "error falls with width
  (exponential and power law fit alike)". ``supported`` needs the gate, the better model's slope
  significant (|slope| / its standard error > 2, the error scaled by sqrt(χ²/dof) when that
  exceeds 1) and falling, and the better model acceptable (χ² p-value >= 0.01); a significantly
  rising slope is ``not supported``.
* Depth, pairwise width, determinants K, MCMC steps: a *saturation* model: the error falls until
  X and is flat beyond (no larger value significantly better than X). ``supported`` needs the
  gate, a significant fall before X, and at least one larger value after X; still falling at the
  largest value is ``not supported``; no two values differing is ``inconclusive``.
* FermiNet vs Slater–Jastrow at equal K: the gap at every common K exceeds 2σ (``supported``) or
  goes the other way by 2σ at some K (``not supported``), after the convergence and seed gates.
* Walkers: ln(error bar) vs ln(walkers), expected exponent −1/2 (independent walkers); the fit is
  unweighted with one seed (the error of an error bar is not measured) and says so.

The optimizer, |r| features, sampler-moves and batch claims (issue 9) use these helpers and this
gate; their rules are in :mod:`analysis.ablations`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Mapping

import numpy as np
import pandas as pd

from .figures import NETWORK_KEYS, NETWORK_NAMES, tuning_keys
from .loaders import complete_trials

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOTE = "supported", "not supported", "inconclusive", "note"
SIGNIFICANCE = 2.0  # differences, slopes and reversals count beyond this many standard errors
MIN_POINTS = 3  # a trend needs at least this many x values
MIN_SEEDS = 2  # seeds per point for a seed-spread error bar (one seed: the reblocked error, said so)
DECISIVE_DELTA_AIC = 2.0  # the width fit names a model only when it wins by more than this
MIN_FIT_P = 0.01  # the chosen width model must fit its points with a chi^2 p-value at least this
SQRT_WALKERS_TOLERANCE = 0.15  # |exponent + 0.5| accepted when the fit has no standard error


@dataclass(frozen=True)
class Claim:
    """One checked claim: ``topic`` (figure kind), ``statement``, ``verdict`` and ``evidence``."""

    topic: str
    statement: str
    verdict: str
    evidence: str

    def render(self) -> str:
        """One line of text: ``[verdict] statement: evidence``."""
        return f"[{self.verdict}] {self.statement}: {self.evidence}"


# ----------------------------------------------------------------------------- helpers


def _unit(data: pd.DataFrame) -> str:
    """Unit of the plotted y (mHa for errors and error bars, Ha for energies)."""
    return "Ha" if len(data) and data["y_name"].iloc[0] == "energy" else "mHa"


def _pm(mean: float, err: float, unit: str) -> str:
    """``12.34 ± 0.56 mHa`` (precision adapted to the unit)."""
    digits = 5 if unit == "Ha" else 2
    if not math.isfinite(err):
        return f"{mean:.{digits}f} {unit}"
    return f"{mean:.{digits}f} ± {err:.{digits}f} {unit}"


def _num(x) -> str:
    """A swept value as text (``16``, ``0.05``, ``ferminet``)."""
    if isinstance(x, (float, np.floating)) and float(x).is_integer():
        return str(int(x))
    return f"{x:g}" if isinstance(x, (float, np.floating)) else str(x)


def _sigma(e1: float, e2: float) -> float:
    """Error bars added in quadrature (unknown error bars count as 0)."""
    return math.sqrt(np.nan_to_num(e1) ** 2 + np.nan_to_num(e2) ** 2)


def _better(a: pd.Series, b: pd.Series) -> bool:
    """Whether point ``b`` is significantly lower (better) than point ``a``."""
    return a["mean"] - b["mean"] > SIGNIFICANCE * _sigma(a["yerr"], b["yerr"])


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
        from scipy.stats import chi2

        return float(chi2.sf(self.chi2, self.dof))

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
        if not any(_better(line.iloc[i], line.iloc[j]) for j in range(i + 1, len(line))):
            return i
    return len(line) - 1


def _prefix(series: str) -> str:
    """`` (depth 2)`` for a named line, empty for the single line ``all``."""
    return "" if series == "all" else f" ({series})"


def _points(line: pd.DataFrame, key_name: str, unit: str) -> str:
    """``width 8: 12.00 ± 0.40 mHa; width 16: ...``."""
    return "; ".join(f"{key_name} {_num(r['x'])}: {_pm(r['mean'], r['yerr'], unit)}" for _, r in line.iterrows())


# ----------------------------------------------------------------------------- the gate


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
        return (f"no error bar at {key_name} {', '.join(_num(x) for x in no_bar['x'])} "
                "(one seed and no reblocked standard error)"), ""
    single = int((seeds < MIN_SEEDS).sum())
    if single == len(points):
        return None, ("one seed per point: error bars are reblocked standard errors of single runs "
                      "(seed-to-seed scatter not measured)")
    if single:
        return None, f"{single} of {len(points)} points have one seed (their error bar is the reblocked standard error)"
    return None, ""


def points_gate(points: pd.DataFrame, key_name: str, what: str = "") -> str | None:
    """``only 2 widths ...: a trend needs at least 3`` or None."""
    if len(points) >= MIN_POINTS:
        return None
    listed = ", ".join(_num(x) for x in points["x"])
    return f"only {len(points)} {key_name} values{what} ({listed}): a trend needs at least {MIN_POINTS}"


def reversals(line: pd.DataFrame, key_name: str, unit: str) -> list[str]:
    """Every pair where the larger ``x`` is significantly worse than a smaller one, as text."""
    found = []
    for i in range(len(line)):
        for j in range(i + 1, len(line)):
            a, b = line.iloc[i], line.iloc[j]
            if _better(b, a):
                gap, sigma = b["mean"] - a["mean"], _sigma(a["yerr"], b["yerr"])
                found.append(f"{key_name} {_num(b['x'])} ({_pm(b['mean'], b['yerr'], unit)}) is worse than "
                             f"{key_name} {_num(a['x'])} ({_pm(a['mean'], a['yerr'], unit)}) by "
                             f"{gap / sigma:.1f} sigma")
    return found


def _join(*parts: str | None) -> str:
    """Non-empty parts joined by ``; ``."""
    return "; ".join(p for p in parts if p)


# ----------------------------------------------------------------------------- width


WIDTH_EXPONENTIAL = "error falls exponentially with one-electron width"
WIDTH_POWER = "error falls as a power law of one-electron width"
WIDTH_EITHER = "error falls with one-electron width (exponential and power law fit alike)"


def width_claims(data: pd.DataFrame) -> list[Claim]:
    """The width claim for each line of width (or width × depth) data."""
    if data.empty:
        return []
    if data["y_name"].iloc[0] != "error_mha":
        return [Claim("width", WIDTH_EXPONENTIAL, INCONCLUSIVE, "no reference energy for this system, so no error to fit")]
    return [_width_claim(series, line) for series, line in lines(data)]


def width_fits(line: pd.DataFrame) -> tuple[LineFit, LineFit]:
    """(exponential, power law) weighted fits of ln(error) vs width and vs ln(width)."""
    width = line["x"].to_numpy(float)
    mean, err = line["mean"].to_numpy(float), line["yerr"].to_numpy(float)
    y, sigma = np.log(mean), err / mean
    return weighted_line(width, y, sigma), weighted_line(np.log(width), y, sigma)


def _fit_text(exp: LineFit, power: LineFit, n: int) -> str:
    """Both width models with their parameters, χ²/dof and ΔAIC."""
    def quality(fit: LineFit) -> str:
        return f"χ²/dof {fit.chi2:.1f}/{fit.dof}" + (f", p {fit.p_value:.2g}" if fit.dof > 0 else "")

    decay = -1.0 / exp.slope if exp.slope != 0 else math.inf
    decay_se = exp.slope_se / exp.slope**2 if exp.slope != 0 else math.nan
    delta = power.aic - exp.aic
    winner = "exponential" if delta > 0 else "power law"
    return (f"exponential fit ln(error) = a + b·width: b = {exp.slope:.4g} ± {exp.slope_se:.2g} per unit width "
            f"(e-fold every {decay:.3g} ± {decay_se:.2g}), {quality(exp)}; "
            f"power-law fit ln(error) = a + p·ln(width): p = {power.slope:.2f} ± {power.slope_se:.2f} "
            f"(error x {2 ** power.slope:.2f} per doubling), {quality(power)}; "
            f"ΔAIC (power − exponential) {delta:+.1f}: {winner} fits better; weighted by the error bars, "
            f"{n} widths")


def _width_claim(series: str, line: pd.DataFrame) -> Claim:
    """Fit both width models on one line and judge the fall (rules in the module docstring)."""
    prefix = _prefix(series)
    positive = line[line["mean"] > 0].reset_index(drop=True)
    excluded = line[line["mean"] <= 0]
    note = ""
    if len(excluded):
        note = (f"widths {', '.join(_num(x) for x in excluded['x'])} have error <= 0 (below the reference "
                f"within noise): left out of the fit, drawn at their error bar")
    pts = _points(line, "width", "mHa")
    seed_fail, seed_note = seed_gate(line, "width")
    failures = [convergence_gate(line), points_gate(positive, "width", " with error > 0"), seed_fail]
    if len(positive) < 2 or seed_fail:
        if len(positive) < 2:
            failures.insert(0, "the log of a non-positive error is undefined and fewer than 2 widths have error > 0")
        return Claim("width", WIDTH_EXPONENTIAL + prefix, INCONCLUSIVE, _join(*failures, pts, seed_note, note))
    exp, power = width_fits(positive)
    delta = power.aic - exp.aic
    if delta > DECISIVE_DELTA_AIC:
        statement, best = WIDTH_EXPONENTIAL, exp
    elif delta < -DECISIVE_DELTA_AIC:
        statement, best = WIDTH_POWER, power
    else:
        statement, best = WIDTH_EITHER, exp if delta >= 0 else power
    statement += prefix
    fits = _fit_text(exp, power, len(positive))
    if any(failures):
        return Claim("width", statement, INCONCLUSIVE, _join(*failures, fits, pts, seed_note, note))
    z = best.significance
    if z > SIGNIFICANCE:
        return Claim("width", statement, NOT_SUPPORTED,
                     _join(f"the error grows with width (slope {z:.1f} sigma)", fits, pts, seed_note, note))
    if z >= -SIGNIFICANCE:
        return Claim("width", statement, INCONCLUSIVE,
                     _join(f"no significant trend (slope {z:.1f} sigma, needs beyond ±{SIGNIFICANCE:g})",
                           fits, pts, seed_note, note))
    rev = reversals(positive, "width", "mHa")
    if rev:
        return Claim("width", statement, INCONCLUSIVE,
                     _join("significant reversal: " + ", ".join(rev), fits, pts, seed_note, note))
    if best.dof > 0 and best.p_value < MIN_FIT_P:
        return Claim("width", statement, INCONCLUSIVE,
                     _join(f"the error falls ({abs(z):.1f} sigma) but neither model fits within the error bars",
                           fits, pts, seed_note, note))
    return Claim("width", statement, SUPPORTED,
                 _join(f"falls at {abs(z):.1f} sigma", fits, pts, seed_note, note))


# ----------------------------------------------------------------------------- saturation (depth, pairwise, K)


def saturation_claim(topic: str, key_name: str, statement: str, series: str, line: pd.DataFrame, unit: str) -> Claim:
    """Where the error stops improving along one line (depth, pairwise width, determinants, steps).

    Model: the error falls until X and is flat beyond it (no larger value better by > 2σ)."""
    statement = statement + _prefix(series)
    pts = _points(line, key_name, unit)
    seed_fail, seed_note = seed_gate(line, key_name)
    failures = [convergence_gate(line), points_gate(line, key_name), seed_fail]
    if any(failures):
        return Claim(topic, statement, INCONCLUSIVE, _join(*failures, pts, seed_note))
    rev = reversals(line, key_name, unit)
    if rev:
        return Claim(topic, statement, INCONCLUSIVE,
                     _join("significant reversal, so a saturation model (falls, then flat) does not describe it: "
                           + ", ".join(rev) + " (under-trained at this scale?)", pts, seed_note))
    pairs = [(i, j) for i in range(len(line)) for j in range(len(line)) if i != j]
    if not any(_better(line.iloc[i], line.iloc[j]) for i, j in pairs):
        largest = float(np.nanmax(line["yerr"].to_numpy(float)))
        return Claim(topic, statement, INCONCLUSIVE,
                     _join(f"no two values differ beyond their error bars (largest error bar {largest:.2f} {unit}): "
                           f"saturated already at the smallest {key_name}, or too noisy to tell", pts, seed_note))
    d = saturation_index(line)
    sat = line.iloc[d]
    if d == len(line) - 1:
        prev = line.iloc[d - 1]
        return Claim(topic, statement, NOT_SUPPORTED,
                     _join(f"no saturation in this range: the error still falls significantly from {key_name} "
                           f"{_num(prev['x'])} to {_num(sat['x'])}", pts, seed_note))
    return Claim(topic, statement, SUPPORTED,
                 _join(f"no gain beyond {key_name} {_num(sat['x'])} within error bars (saturation model: falls "
                       f"significantly up to {_num(sat['x'])}, flat within 2 sigma beyond)", pts, seed_note))


def depth_claims(data: pd.DataFrame) -> list[Claim]:
    """"No gain beyond depth D within error bars", per line."""
    unit = _unit(data)
    return [saturation_claim("depth", "depth", "error saturates with depth", s, line, unit)
            for s, line in lines(data)]


def depth_claims_from_width_depth(data: pd.DataFrame) -> list[Claim]:
    """Depth saturation at each width of a width × depth study (lines are depths there)."""
    if data.empty or "network.depth" not in data:
        return []
    unit = _unit(data)
    claims = []
    for width, points in data.groupby("x", sort=True):
        line = points.assign(x=points["network.depth"]).sort_values("x").reset_index(drop=True)
        claims.append(saturation_claim("depth", "depth", "error saturates with depth", f"width {_num(width)}", line, unit))
    return claims


def pairwise_claims(data: pd.DataFrame) -> list[Claim]:
    """"Pairwise width saturates at W", per line."""
    unit = _unit(data)
    return [saturation_claim("pairwise_width", "pairwise width", "error saturates with two-electron (pairwise) width",
                             s, line, unit) for s, line in lines(data)]


# ----------------------------------------------------------------------------- determinants


def _network_column(data: pd.DataFrame) -> str | None:
    """The column of determinant data that names the ansatz, if the lines are split by it."""
    for key in NETWORK_KEYS:
        if key in data.columns:
            return key
    return None


def _comparison_gate(points: pd.DataFrame) -> tuple[str | None, str]:
    """(failure, note) of the convergence and seed gates for a comparison (no trend, no 3 points)."""
    seed_fail, seed_note = seed_gate(points, "K")
    return _join(convergence_gate(points), seed_fail) or None, seed_note


def determinant_claims(data: pd.DataFrame) -> list[Claim]:
    """FermiNet vs Slater–Jastrow at equal K, and where each ansatz saturates in K."""
    if data.empty:
        return []
    unit = _unit(data)
    net = _network_column(data)
    claims = [saturation_claim("determinants", "K", f"{_ansatz(s)} gains little from more determinants",
                               "all" if s in NETWORK_NAMES.values() else s, line, unit)
              for s, line in lines(data)]
    statement = "FermiNet is more accurate than Slater–Jastrow at the same number of determinants"
    ran = sorted({str(v) for v in data[net].dropna()}) if net else []
    if len(ran) < 2:
        names = ", ".join(NETWORK_NAMES.get(r, r) for r in ran) or "one ansatz"
        return claims + [Claim("determinants", statement, INCONCLUSIVE, f"only {names} has complete trials: no comparison")]
    others = [k for k in data.attrs.get("series_keys", [net]) if k != net and k in data.columns]
    fn = data[data[net].astype(str) == "ferminet"]
    sj = data[data[net].astype(str) == "slater_jastrow"]
    both = fn.merge(sj, on=[*others, "x"], suffixes=("_fn", "_sj"))
    if both.empty:
        return claims + [Claim("determinants", statement, INCONCLUSIVE,
                               "FermiNet and Slater–Jastrow have no complete K in common")]
    parts, gaps = [], []
    for _, r in both.sort_values("x").iterrows():
        gap, sigma = r["mean_sj"] - r["mean_fn"], _sigma(r["yerr_fn"], r["yerr_sj"])
        gaps.append((gap, sigma))
        parts.append(f"K={_num(r['x'])}: FermiNet {_pm(r['mean_fn'], r['yerr_fn'], unit)} vs Slater–Jastrow "
                     f"{_pm(r['mean_sj'], r['yerr_sj'], unit)} (gap {gap:.2f} ± {sigma:.2f})")
    compared = pd.concat([fn[fn["x"].isin(both["x"])], sj[sj["x"].isin(both["x"])]])
    failure, seed_note = _comparison_gate(compared)
    evidence = _join("; ".join(parts), seed_note)
    if failure:
        claims.append(Claim("determinants", statement, INCONCLUSIVE, _join(failure, evidence)))
    elif all(g > SIGNIFICANCE * s for g, s in gaps):
        claims.append(Claim("determinants", statement, SUPPORTED, evidence))
    elif any(-g > SIGNIFICANCE * s for g, s in gaps):
        claims.append(Claim("determinants", statement, NOT_SUPPORTED, evidence))
    else:
        claims.append(Claim("determinants", statement, INCONCLUSIVE, "not every gap exceeds 2 sigma; " + evidence))
    claims.append(_single_det_claim(fn, sj, unit))
    return claims


def _single_det_claim(fn: pd.DataFrame, sj: pd.DataFrame, unit: str) -> Claim:
    """FermiNet with its fewest determinants vs the best Slater–Jastrow at any K."""
    statement = "FermiNet with its fewest determinants beats Slater–Jastrow with any number"
    a = fn.sort_values("x").iloc[0]
    b = sj.sort_values("mean").iloc[0]
    failure, seed_note = _comparison_gate(pd.DataFrame([a, b]))
    evidence = _join(f"FermiNet K={_num(a['x'])}: {_pm(a['mean'], a['yerr'], unit)}; best Slater–Jastrow "
                     f"K={_num(b['x'])}: {_pm(b['mean'], b['yerr'], unit)}", seed_note)
    if failure:
        return Claim("determinants", statement, INCONCLUSIVE, _join(failure, evidence))
    if _better(b, a):
        return Claim("determinants", statement, SUPPORTED, evidence)
    if _better(a, b):
        return Claim("determinants", statement, NOT_SUPPORTED, evidence)
    return Claim("determinants", statement, INCONCLUSIVE, "difference within 2 sigma; " + evidence)


def _ansatz(series: str) -> str:
    """The ansatz name in a series label (``FermiNet`` when the lines are not split by ansatz)."""
    for name in NETWORK_NAMES.values():
        if name in series:
            return name
    return "the network"


# ----------------------------------------------------------------------------- sampler


def sampler_claims(data: pd.DataFrame) -> list[Claim]:
    """Error-bar scaling with walkers, and where the error stops improving with MCMC steps."""
    claims = []
    if data.empty:
        return claims
    for series, line in lines(data, "stderr_mha vs batch_size"):
        claims.append(_sqrt_walkers_claim(series, line))
    for series, line in lines(data, "stderr_mha vs mcmc.steps"):
        claims.append(_exponent_note("sampler", "error bar vs MCMC steps per iteration" + _prefix(series), "steps", line))
    response = [p for p in dict.fromkeys(data["panel"]) if p.endswith("vs mcmc.steps") and not p.startswith("stderr")]
    for panel in response:
        sub = data[data["panel"] == panel]
        for series, line in lines(sub):
            claims.append(saturation_claim("sampler", "steps", "error saturates with MCMC steps per iteration",
                                           series, line, _unit(sub)))
    return claims


def _sqrt_walkers_claim(series: str, line: pd.DataFrame) -> Claim:
    """Fit ln(error bar) vs ln(walkers): independent walkers give exponent -1/2."""
    statement = "the error bar shrinks like 1/sqrt(walkers)" + _prefix(series)
    if len(line) < 2 or (line["y"] <= 0).any():
        return Claim("sampler", statement, INCONCLUSIVE, "fewer than 2 batch sizes with an error bar")
    x, y = np.log(line["x"].to_numpy(float)), np.log(line["y"].to_numpy(float))
    bars = line["yerr"].to_numpy(float)
    if (line["n_seeds"] >= MIN_SEEDS).all() and (bars > 0).all():
        fit = weighted_line(x, y, bars / line["y"].to_numpy(float))
        p, se, how = fit.slope, fit.slope_se, "weighted by the seeds' spread of the error bar"
    else:
        p, se, _ = log_fit(x, y)
        how = "one seed per batch size: unweighted fit (the error of an error bar is not measured)"
    tol = max(SIGNIFICANCE * se, SQRT_WALKERS_TOLERANCE) if math.isfinite(se) else SQRT_WALKERS_TOLERANCE
    evidence = _join(f"model ln(error bar) = a + p·ln(walkers): fitted exponent p = {p:.2f}"
                     + (f" ± {se:.2f}" if math.isfinite(se) else "")
                     + f" over batch {', '.join(_num(x) for x in line['x'])} (expected -0.5, tolerance {tol:.2f})", how)
    failure = _join(convergence_gate(line), points_gate(line, "batch size"))
    if failure:
        return Claim("sampler", statement, INCONCLUSIVE, _join(failure, evidence))
    return Claim("sampler", statement, SUPPORTED if abs(p + 0.5) <= tol else NOT_SUPPORTED, evidence)


def _exponent_note(topic: str, statement: str, key_name: str, line: pd.DataFrame) -> Claim:
    """A power-law exponent of y vs x, reported without a verdict."""
    if len(line) < 2 or (line["y"] <= 0).any():
        return Claim(topic, statement, NOTE, f"fewer than 2 {key_name} values with an error bar")
    p, se, _ = log_fit(np.log(line["x"].to_numpy(float)), np.log(line["y"].to_numpy(float)))
    pts = "; ".join(f"{key_name} {_num(r['x'])}: {r['y']:.3f} mHa" for _, r in line.iterrows())
    return Claim(topic, statement, NOTE, f"error bar ~ {key_name}^{p:.2f}" + (f" ± {se:.2f}" if math.isfinite(se) else "")
                 + f" ({pts})")


# ----------------------------------------------------------------------------- tuning


def tuning_claims(trials: pd.DataFrame, importances: pd.DataFrame | None, reason: str | None) -> list[Claim]:
    """Best trial and the most important hyperparameters (notes, no paper claim)."""
    keys = tuning_keys(trials)
    if not keys:
        return []
    claims = []
    done = complete_trials(trials)
    done = done[pd.to_numeric(done["value"], errors="coerce").notna()]
    if not done.empty:
        maximize = str(trials.attrs.get("direction", "minimize")) == "maximize"
        best = done.loc[done["value"].astype(float).idxmax() if maximize else done["value"].astype(float).idxmin()]
        settings = ", ".join(f"{k}={_num(best[k])}" for k in keys if pd.notna(best[k]))
        objective = trials.attrs.get("objective") or "objective"
        claims.append(Claim("tuning", "best trial", NOTE, f"t{int(best['trial'])}: {objective} {float(best['value']):.4g} "
                            f"with {settings}{_convergence_suffix(best)}"))
    if importances is None:
        claims.append(Claim("tuning", "parameter importances", INCONCLUSIVE, reason or "not computed"))
    else:
        top = ", ".join(f"{r['param']} {r['importance']:.2f}" for _, r in importances.head(3).iterrows())
        claims.append(Claim("tuning", "parameter importances (Optuna, normalised)", NOTE, top))
    return claims


def _convergence_suffix(row: pd.Series) -> str:
    """`` (converged)``, `` (not converged: ...)`` or `` (convergence not measured)``."""
    flag = row.get("converged")
    if flag is None or flag is pd.NA or (isinstance(flag, float) and math.isnan(flag)):
        return " (convergence not measured)"
    return " (converged)" if bool(flag) else f" (not converged: {row.get('convergence_reason')})"


# ----------------------------------------------------------------------------- all


def _ablation(kind: str):
    """The claim builder of an issue-9 figure kind, from analysis/ablations.py (imported when called:
    that module imports the helpers above)."""
    def build(data: pd.DataFrame) -> list[Claim]:
        from .ablations import CLAIM_BUILDERS as ABLATIONS

        return ABLATIONS[kind](data)

    return build


CLAIM_BUILDERS = {
    "width_depth": lambda d: width_claims(d) + depth_claims_from_width_depth(d),
    "width": width_claims,
    "depth": depth_claims,
    "pairwise_width": pairwise_claims,
    "determinants": determinant_claims,
    "sampler": sampler_claims,
    # issue 9: optimizer, |r| features, sampler moves, batch size (rules in analysis/ablations.py)
    **{kind: _ablation(kind) for kind in ("optimizer", "features", "sampler_moves", "batch")},
}


def clipping_note(figure_data: Mapping[str, pd.DataFrame]) -> list[Claim]:
    """One note listing the points drawn at their error bar because their mean error was <= 0."""
    clipped = []
    for name, data in figure_data.items():
        if "clipped" in data and len(data):
            rows = data[data["clipped"].astype(bool)]
            clipped += [f"{name}: {r['x_name']}={_num(r['x'])} ({r['series']}) mean {r['mean']:.2f} mHa"
                        for _, r in rows.iterrows()]
    if not clipped:
        return []
    return [Claim("study", "errors <= 0 on log axes", NOTE,
                  "the energy fell below the reference within noise; these points are drawn at their error bar "
                  "(open triangles) because the log of a non-positive error is undefined: " + "; ".join(clipped))]


def convergence_note(trials: pd.DataFrame) -> list[Claim]:
    """How many complete trials converged (analysis.convergence), naming those that did not."""
    done = complete_trials(trials)
    if done.empty or "converged" not in done:
        return []
    flags = done["converged"].astype("boolean")
    ok, bad, unknown = int(flags.fillna(False).sum()), done[flags.fillna(True).eq(False)], int(flags.isna().sum())
    text = f"{ok} of {len(done)} complete trials converged (flat training tail and evaluation agreeing with it)"
    if unknown:
        text += f"; {unknown} not measured"
    if len(bad):
        text += "; not converged: " + "; ".join(f"t{int(r['trial'])} {r['convergence_reason']}" for _, r in bad.iterrows())
    return [Claim("study", "trial convergence", NOTE, text)]


FAR_FROM_REFERENCE_MHA = 50.0  # median error above which the study is called far from the reference


def accuracy_note(trials: pd.DataFrame) -> list[Claim]:
    """A warning when the complete trials are far from the reference energy (median error > 50 mHa):
    the paper's claims are about accurate networks, so verdicts then describe short training."""
    errors = pd.to_numeric(complete_trials(trials)["error_mha"], errors="coerce").dropna()
    if errors.empty or errors.median() <= FAR_FROM_REFERENCE_MHA:
        return []
    return [Claim("study", "trials far from the reference energy", NOTE,
                  f"median error {errors.median():.1f} mHa (chemical accuracy: 1.6 mHa); the paper's claims are "
                  "about accurate networks, so the verdicts below describe short training, not architectures")]


def check_claims(
    trials: pd.DataFrame,
    figure_data: Mapping[str, pd.DataFrame],
    importances: pd.DataFrame | None = None,
    importance_reason: str | None = None,
) -> list[Claim]:
    """All claims this study can speak to, from the figure data keyed by figure name."""
    claims: list[Claim] = convergence_note(trials) + accuracy_note(trials)
    for name, data in figure_data.items():
        builder = CLAIM_BUILDERS.get(name)
        if builder is not None:
            claims += builder(data)
    claims += tuning_claims(trials, importances, importance_reason)
    claims += clipping_note(figure_data)
    return claims
