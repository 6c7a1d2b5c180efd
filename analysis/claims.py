"""The text report: the FermiNet paper's qualitative claims, checked against one study.

Each check reads the same seed-aggregated data the figures plot (``analysis.figures.*_data``),
so the numbers in the text are the numbers on the axes. Rules used throughout:

* two points differ *significantly* when their means differ by more than twice their error bars
  added in quadrature, ``|m1 - m2| > 2 sqrt(e1^2 + e2^2)`` (error bar = the plotted ``yerr``:
  std of the seeds, or the reblocked standard error for one seed);
* "saturates at X": the smallest swept value X beyond which no larger value is significantly
  better;
* the width decay is a least-squares fit of ln(error) against log2(width) over the widths whose
  mean error is > 0 (a non-positive error has no logarithm: such widths are left out and said so).

A check answers ``supported``, ``not supported``, ``inconclusive`` (with the reason) or ``note``
(a measured number with no paper claim attached).
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
POOR_FIT_R2 = 0.8  # below this the log-linear width fit is called rough
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
    return a["mean"] - b["mean"] > 2 * _sigma(a["yerr"], b["yerr"])


def lines(data: pd.DataFrame, panel_prefix: str | None = None) -> Iterator[tuple[str, pd.DataFrame]]:
    """(series label, points sorted by x) for every line of figure data (optionally one panel)."""
    if panel_prefix is not None:
        data = data[data["panel"].str.startswith(panel_prefix)]
    for series in dict.fromkeys(data["series"]):
        yield series, data[data["series"] == series].sort_values("x").reset_index(drop=True)


def log_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares line y = a + b x: returns (b, standard error of b, R^2); NaN where undefined
    (the standard error and R^2 need at least 3 points)."""
    b, a = np.polyfit(x, y, 1)
    if x.size < 3:
        return float(b), math.nan, math.nan
    resid = y - (a + b * x)
    sxx = float(((x - x.mean()) ** 2).sum())
    se = math.sqrt(float((resid**2).sum()) / (x.size - 2) / sxx)
    sst = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / sst if sst > 0 else math.nan
    return float(b), se, r2


def saturation_index(line: pd.DataFrame) -> int:
    """Index of the smallest x beyond which no larger x is significantly better."""
    for i in range(len(line)):
        if not any(_better(line.iloc[i], line.iloc[j]) for j in range(i + 1, len(line))):
            return i
    return len(line) - 1


def _prefix(series: str) -> str:
    """`` (depth 2)`` for a named line, empty for the single line ``all``."""
    return "" if series == "all" else f" ({series})"


# ----------------------------------------------------------------------------- width


WIDTH_STATEMENT = "error falls roughly exponentially with one-electron width"


def width_claims(data: pd.DataFrame) -> list[Claim]:
    """The width claim for each line of width (or width × depth) data."""
    if data.empty:
        return []
    if data["y_name"].iloc[0] != "error_mha":
        return [Claim("width", WIDTH_STATEMENT, INCONCLUSIVE, "no reference energy for this system, so no error to fit")]
    return [_width_claim(series, line) for series, line in lines(data)]


def _width_claim(series: str, line: pd.DataFrame) -> Claim:
    """Fit ln(error) vs log2(width) on one line and judge the fall from the smallest to the largest width."""
    statement = WIDTH_STATEMENT + _prefix(series)
    if len(line) < 2:
        return Claim("width", statement, INCONCLUSIVE, f"only width {_num(line['x'].iloc[0])} is complete")
    first, last = line.iloc[0], line.iloc[-1]
    drop, sigma = first["mean"] - last["mean"], _sigma(first["yerr"], last["yerr"])
    ends = (f"error {_pm(first['mean'], first['yerr'], 'mHa')} at width {_num(first['x'])} -> "
            f"{_pm(last['mean'], last['yerr'], 'mHa')} at width {_num(last['x'])}")
    positive = line[line["mean"] > 0]
    excluded = line[line["mean"] <= 0]
    note = ""
    if len(excluded):
        note = (f"; widths {', '.join(_num(x) for x in excluded['x'])} have error <= 0 (below the reference "
                f"within noise): left out of the fit, drawn at their error bar")
    if len(positive) < 2:
        return Claim("width", statement, INCONCLUSIVE,
                     f"the log of a non-positive error is undefined and fewer than 2 widths have error > 0; {ends}{note}")
    slope, slope_se, r2 = log_fit(np.log2(positive["x"].to_numpy(float)), np.log(positive["mean"].to_numpy(float)))
    factor = math.exp(slope)
    factor_txt = f"{factor:.2f}" + (f" ± {factor * slope_se:.2f}" if math.isfinite(slope_se) else "")
    fit = (f"fitted decay per doubling {100 * (1 - factor):.0f}% (error x {factor_txt} per doubling of the width; "
           f"fit of log(error) vs log2(width) over {len(positive)} widths"
           + (f", R^2 {r2:.2f}" if math.isfinite(r2) else "") + ")")
    evidence = f"{fit}; {ends}{note}"
    if drop > 2 * sigma and factor < 1:
        caveat = ""
        if r2 < POOR_FIT_R2:
            caveat = f"; the log-linear fit is poor (R^2 {r2:.2f}), so 'exponential' is rough"
        elif len(positive) == 2:
            caveat = "; only 2 widths: the error falls, but the shape of the fall is untested"
        return Claim("width", statement, SUPPORTED, evidence + caveat)
    if -drop > 2 * sigma:
        return Claim("width", statement, NOT_SUPPORTED, f"the error grows with width; {evidence}")
    if drop > 2 * sigma:
        return Claim("width", statement, INCONCLUSIVE,
                     f"the largest width is significantly better, but the fit over the widths with error > 0 "
                     f"does not fall; {evidence}")
    return Claim("width", statement, INCONCLUSIVE,
                 f"the change from the smallest to the largest width ({drop:.2f} ± {sigma:.2f} mHa) is within "
                 f"2 sigma: too noisy, or already converged; {evidence}")


# ----------------------------------------------------------------------------- saturation (depth, pairwise, K)


def saturation_claim(topic: str, key_name: str, statement: str, series: str, line: pd.DataFrame, unit: str) -> Claim:
    """Where the error stops improving along one line (depth, pairwise width, determinants, steps)."""
    statement = statement + _prefix(series)
    if len(line) < 2:
        return Claim(topic, statement, INCONCLUSIVE, f"only {key_name} {_num(line['x'].iloc[0])} is complete")
    pts = "; ".join(f"{key_name} {_num(r['x'])}: {_pm(r['mean'], r['yerr'], unit)}" for _, r in line.iterrows())
    pairs = [(i, j) for i in range(len(line)) for j in range(len(line)) if i != j]
    if not any(_better(line.iloc[i], line.iloc[j]) for i, j in pairs):
        largest = float(np.nanmax(line["yerr"].to_numpy(float)))
        return Claim(topic, statement, INCONCLUSIVE,
                     f"no two values differ beyond their error bars (largest error bar {largest:.2f} {unit}): "
                     f"saturated already at the smallest {key_name}, or too noisy to tell ({pts})")
    d = saturation_index(line)
    sat = line.iloc[d]
    if d == len(line) - 1:
        prev = line.iloc[d - 1]
        return Claim(topic, statement, NOT_SUPPORTED,
                     f"no saturation in this range: the error still falls significantly from {key_name} "
                     f"{_num(prev['x'])} to {_num(sat['x'])} ({pts})")
    worse = [line.iloc[j] for j in range(d + 1, len(line)) if _better(line.iloc[j], sat)]
    caveat = ""
    if worse:
        caveat = (f"; larger {key_name} {', '.join(_num(r['x']) for r in worse)} significantly worse "
                  f"(under-trained at this scale?)")
    return Claim(topic, statement, SUPPORTED,
                 f"no gain beyond {key_name} {_num(sat['x'])} within error bars ({pts}){caveat}")


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
    evidence = "; ".join(parts)
    if all(g > 2 * s for g, s in gaps):
        verdict = SUPPORTED
    elif any(-g > 2 * s for g, s in gaps):
        verdict = NOT_SUPPORTED
    else:
        verdict = INCONCLUSIVE
        evidence = "not every gap exceeds 2 sigma; " + evidence
    claims.append(Claim("determinants", statement, verdict, evidence))
    claims.append(_single_det_claim(fn, sj, unit))
    return claims


def _single_det_claim(fn: pd.DataFrame, sj: pd.DataFrame, unit: str) -> Claim:
    """FermiNet with its fewest determinants vs the best Slater–Jastrow at any K."""
    statement = "FermiNet with its fewest determinants beats Slater–Jastrow with any number"
    a = fn.sort_values("x").iloc[0]
    b = sj.sort_values("mean").iloc[0]
    evidence = (f"FermiNet K={_num(a['x'])}: {_pm(a['mean'], a['yerr'], unit)}; best Slater–Jastrow "
                f"K={_num(b['x'])}: {_pm(b['mean'], b['yerr'], unit)}")
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
    p, se, _ = log_fit(np.log(line["x"].to_numpy(float)), np.log(line["y"].to_numpy(float)))
    tol = max(2 * se, SQRT_WALKERS_TOLERANCE) if math.isfinite(se) else SQRT_WALKERS_TOLERANCE
    evidence = f"fitted exponent {p:.2f}" + (f" ± {se:.2f}" if math.isfinite(se) else "") + \
        f" over batch {', '.join(_num(x) for x in line['x'])} (expected -0.5)"
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
        claims.append(Claim("tuning", "best trial", NOTE, f"t{int(best['trial'])}: {objective} {float(best['value']):.4g} with {settings}"))
    if importances is None:
        claims.append(Claim("tuning", "parameter importances", INCONCLUSIVE, reason or "not computed"))
    else:
        top = ", ".join(f"{r['param']} {r['importance']:.2f}" for _, r in importances.head(3).iterrows())
        claims.append(Claim("tuning", "parameter importances (Optuna, normalised)", NOTE, top))
    return claims


# ----------------------------------------------------------------------------- all


CLAIM_BUILDERS = {
    "width_depth": lambda d: width_claims(d) + depth_claims_from_width_depth(d),
    "width": width_claims,
    "depth": depth_claims,
    "pairwise_width": pairwise_claims,
    "determinants": determinant_claims,
    "sampler": sampler_claims,
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


FAR_FROM_CONVERGED_MHA = 50.0  # median error above which the study is called far from converged


def convergence_note(trials: pd.DataFrame) -> list[Claim]:
    """A warning when the complete trials are far from converged (median error > 50 mHa): the
    paper's claims are about converged networks, so verdicts then reflect short training."""
    errors = pd.to_numeric(complete_trials(trials)["error_mha"], errors="coerce").dropna()
    if errors.empty or errors.median() <= FAR_FROM_CONVERGED_MHA:
        return []
    return [Claim("study", "trials far from converged", NOTE,
                  f"median error {errors.median():.1f} mHa (chemical accuracy: 1.6 mHa); the paper's claims are "
                  "about converged networks, so the verdicts below describe short training, not architectures")]


def check_claims(
    trials: pd.DataFrame,
    figure_data: Mapping[str, pd.DataFrame],
    importances: pd.DataFrame | None = None,
    importance_reason: str | None = None,
) -> list[Claim]:
    """All claims this study can speak to, from the figure data keyed by figure name."""
    claims: list[Claim] = convergence_note(trials)
    for name, data in figure_data.items():
        builder = CLAIM_BUILDERS.get(name)
        if builder is not None:
            claims += builder(data)
    claims += tuning_claims(trials, importances, importance_reason)
    claims += clipping_note(figure_data)
    return claims

