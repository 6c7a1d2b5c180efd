"""Width study: error vs one-electron width (and width x depth, one line per depth).

Two claims per line. *At the study's budget* (a comparison, :func:`analysis.verdicts.trend_claim`):
"the error is lower at larger one-electron width" (Welch t on the slope of ln error against
log2 width). *In the limit* (the form of the curve, which only converged trials can show): the
points' mean ln(error) (each seed floored at its reblocked error, :mod:`analysis.inference`) is
fitted against width (*exponential*: error ∝ exp(-width / w0)) and against ln(width) (*power
law*: error ∝ width^p), weighted by the standard errors of those means. Both have 2 parameters,
so AIC = χ² + 4 and ΔAIC = χ²(power) − χ²(exponential). The statement names the better model:
"error falls exponentially with width" only when the exponential is better by ΔAIC > 2, "error
falls as a power law of width" when the power law is better by ΔAIC > 2, otherwise "error falls
with width (exponential and power law fit alike)". The test is the Welch t of the least-squares
slope of mean ln(error) against the better model's axis (support: falling; refutation: rising);
``supported`` is held when the model does not fit the points (χ² p-value < 0.01) or a larger width
is significantly worse than a smaller one. With depth swept too, the depth saturation claims of
:mod:`analysis.studies.depth` are made per width.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from ..plotting import draw_error_figure
from ..points import error_data, swept_keys, tuning_keys
from ..study import FigureKind, FigureStudy, claims_by_figure
from ..inference import slope
from ..verdicts import (
    LIMIT, Claim, DECISIVE_DELTA_AIC, Decision, INCONCLUSIVE, LineFit, MIN_FIT_P, decided, floored_note, join_parts,
    limit_gate, lines, min_seeds, lost_hold, lost_note, need_text, points_gate, points_text, power_text, reversals, sample, series_suffix, trial_numbers,
    trend_claim, weighted_line,
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


def log_points(line: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list]:
    """(mean ln error, its standard error, the logged samples) of each point of a line."""
    samples = [sample(r, log=True) for _, r in line.iterrows()]
    return (np.array([s.mean for s in samples]), np.array([s.sem for s in samples]), samples)


def width_fits(line: pd.DataFrame) -> tuple[LineFit, LineFit]:
    """(exponential, power law) fits of the points' mean ln(error) vs width and vs ln(width),
    weighted by the standard errors of those means."""
    width = line["x"].to_numpy(float)
    y, sigma, _ = log_points(line)
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
            f"ΔAIC (power − exponential) {delta:+.1f}: {winner} fits better; weighted by the standard errors, "
            f"{n} widths")


def _width_claim(series: str, line: pd.DataFrame) -> Claim:
    """Fit both width models on one line and test the fall (rules in the module docstring)."""
    prefix = series_suffix(series)
    pts = points_text(line, "width", "mHa")
    blocked = join_parts(limit_gate(line, "width"), points_gate(line, "width"))
    if blocked:
        return Claim("width", WIDTH_EXPONENTIAL + prefix, INCONCLUSIVE, join_parts(blocked, pts), kind=LIMIT,
                     decision=Decision(blocked=blocked, body=pts, trials=trial_numbers(line)))
    exp, power = width_fits(line)
    delta = power.aic - exp.aic
    if delta > DECISIVE_DELTA_AIC:
        statement, best, axis = WIDTH_EXPONENTIAL, exp, line["x"].to_numpy(float)
    elif delta < -DECISIVE_DELTA_AIC:
        statement, best, axis = WIDTH_POWER, power, np.log(line["x"].to_numpy(float))
    else:
        statement, best = WIDTH_EITHER, exp if delta >= 0 else power
        axis = line["x"].to_numpy(float) if delta >= 0 else np.log(line["x"].to_numpy(float))
    statement += prefix
    _, _, samples = log_points(line)
    test = slope(axis, samples)
    seeds = min_seeds(line)
    rows = [r for _, r in line.iterrows()]
    rev = reversals(line, "width", "mHa")
    misfit = (f"the error falls but the model does not fit the points (χ² p {best.p_value:.2g} < {MIN_FIT_P:g})"
              if best.dof > 0 and best.p_value < MIN_FIT_P else "")
    model = "width" if axis is not None and np.allclose(axis, line["x"].to_numpy(float)) else "ln(width)"
    decision = Decision(
        p_support=test.p_less, p_refute=test.p_greater,
        hold=join_parts(("significant reversal: " + ", ".join(rev)) if rev else "", misfit, lost_hold(line, "a point")),
        supported="the error falls with width", refuted="the error grows with width",
        undecided="no significant trend",
        test=f"Welch t on the least-squares slope of ln(error) vs {model}: {test.text()}",
        body=join_parts(_fit_text(exp, power, len(line)), pts, floored_note(rows, True), lost_note(line)),
        need=need_text(test, seeds), power=power_text(test, seeds, True, "", f"no trend (per unit of {model})"),
        trials=trial_numbers(line))
    return decided(Claim("width", statement, INCONCLUSIVE, "", kind=LIMIT, decision=decision))


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
