"""Width study: error vs one-electron width (and width x depth, one line per depth).

Two claims per line. *At the study's budget* (a comparison, :func:`analysis.verdicts.trend_claim`):
"the error is lower at larger one-electron width". *In the limit* (the form of the curve, which
only converged trials can show):  ln(error) is fitted against width (*exponential*: error ∝ exp(-width / w0))
and against ln(width) (*power law*: error ∝ width^p), both by least squares weighted by the error
bars (ln-error error bar = e / mean), over the widths whose mean error is > 0 (a non-positive
error has no logarithm: such widths are left out and said so). Both have 2 parameters, so
AIC = χ² + 4 and ΔAIC = χ²(power) − χ²(exponential). The statement names the better model:
"error falls exponentially with width" only when the exponential is better by ΔAIC > 2, "error
falls as a power law of width" when the power law is better by ΔAIC > 2, otherwise "error falls
with width (exponential and power law fit alike)". ``supported`` needs the gate of
:mod:`analysis.verdicts`, the better model's slope significant (|slope| / its standard error > 2,
the error scaled by sqrt(χ²/dof) when that exceeds 1) and falling, and the better model
acceptable (χ² p-value >= 0.01); a significantly rising slope is ``not supported``. With depth
swept too, the depth saturation claims of :mod:`analysis.studies.depth` are made per width.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from ..plotting import draw_error_figure
from ..points import error_data, swept_keys, tuning_keys
from ..study import FigureKind, FigureStudy, claims_by_figure
from ..verdicts import (
    LIMIT, Claim, DECISIVE_DELTA_AIC, INCONCLUSIVE, LineFit, MIN_FIT_P, NOT_SUPPORTED, SIGNIFICANCE, SUPPORTED,
    convergence_gate, trend_claim, fmt_num, join_parts, lines, points_gate, points_text, reversals, seed_gate, series_suffix,
    weighted_line,
)
from .depth import depth_claims_from_width_depth


WIDTH_EXPONENTIAL = "error falls exponentially with one-electron width"
WIDTH_POWER = "error falls as a power law of one-electron width"
WIDTH_EITHER = "error falls with one-electron width (exponential and power law fit alike)"
WIDTH_FALLS = "the error is lower at larger one-electron width"


def width_depth_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Error vs one-electron width, one line per depth (the paper's width-versus-depth figure)."""
    return error_data(trials, "network.width")


def width_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Error vs one-electron width (network.width)."""
    return error_data(trials, "network.width")


def width_figure(trials: pd.DataFrame):
    """Figure of :func:`width_data`."""
    return draw_error_figure(width_data(trials))


def width_claims(data: pd.DataFrame) -> list[Claim]:
    """For each line of width (or width × depth) data: the form of the curve (a limit) and the
    fall with width at the study's budget (a comparison)."""
    if data.empty:
        return []
    if data["y_name"].iloc[0] != "error_mha":
        return [Claim("width", WIDTH_EXPONENTIAL, INCONCLUSIVE, "no reference energy for this system, so no error to fit",
                      kind=LIMIT)]
    claims = []
    for series, line in lines(data):
        claims += [replace(_width_claim(series, line), kind=LIMIT),
                   trend_claim("width", WIDTH_FALLS + series_suffix(series), line, "width")]
    return claims


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
    prefix = series_suffix(series)
    positive = line[line["mean"] > 0].reset_index(drop=True)
    excluded = line[line["mean"] <= 0]
    note = ""
    if len(excluded):
        note = (f"widths {', '.join(fmt_num(x) for x in excluded['x'])} have error <= 0 (below the reference "
                f"within noise): left out of the fit, drawn at their error bar")
    pts = points_text(line, "width", "mHa")
    seed_fail, seed_note = seed_gate(line, "width")
    failures = [convergence_gate(line), points_gate(positive, "width", " with error > 0"), seed_fail]
    if len(positive) < 2 or seed_fail:
        if len(positive) < 2:
            failures.insert(0, "the log of a non-positive error is undefined and fewer than 2 widths have error > 0")
        return Claim("width", WIDTH_EXPONENTIAL + prefix, INCONCLUSIVE, join_parts(*failures, pts, seed_note, note))
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
        return Claim("width", statement, INCONCLUSIVE, join_parts(*failures, fits, pts, seed_note, note))
    z = best.significance
    if z > SIGNIFICANCE:
        return Claim("width", statement, NOT_SUPPORTED,
                     join_parts(f"the error grows with width (slope {z:.1f} sigma)", fits, pts, seed_note, note))
    if z >= -SIGNIFICANCE:
        return Claim("width", statement, INCONCLUSIVE,
                     join_parts(f"no significant trend (slope {z:.1f} sigma, needs beyond ±{SIGNIFICANCE:g})",
                                fits, pts, seed_note, note))
    rev = reversals(positive, "width", "mHa")
    if rev:
        return Claim("width", statement, INCONCLUSIVE,
                     join_parts("significant reversal: " + ", ".join(rev), fits, pts, seed_note, note))
    if best.dof > 0 and best.p_value < MIN_FIT_P:
        return Claim("width", statement, INCONCLUSIVE,
                     join_parts(f"the error falls ({abs(z):.1f} sigma) but neither model fits within the error bars",
                                fits, pts, seed_note, note))
    return Claim("width", statement, SUPPORTED,
                 join_parts(f"falls at {abs(z):.1f} sigma", fits, pts, seed_note, note))


WIDTH_DEPTH = FigureKind("width_depth", "trials", width_depth_data, draw_error_figure,
                         "Error vs one-electron width, one line per depth (mean ± spread over seeds).")
WIDTH = FigureKind("width", "trials", width_data, draw_error_figure,
                   "Error vs one-electron width (error bars as the figure's caption says).")


def planned(trials: pd.DataFrame) -> list[str]:
    """``width_depth`` when width and depth are both swept, ``width`` when width alone is (grid
    studies only)."""
    keys = set(swept_keys(trials))
    if tuning_keys(trials) or "network.width" not in keys:
        return []
    return ["width_depth"] if "network.depth" in keys else ["width"]


STUDY = FigureStudy("width", (WIDTH_DEPTH, WIDTH), planned, claims_by_figure({
    "width_depth": lambda d: width_claims(d) + depth_claims_from_width_depth(d),
    "width": width_claims,
}))
