"""Sampler study: error and its reblocked error bar vs MCMC steps and batch size.

Claims: saturation of the error with MCMC steps (rules in :mod:`analysis.verdicts`); the error
bar vs walkers: ln(error bar) vs ln(walkers), expected exponent −1/2 (independent walkers); the
fit is unweighted with one seed (the error of an error bar is not measured) and says so; the
error-bar exponent vs MCMC steps as a note.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..plotting import draw_error_figure
from ..points import ERROR_BAR, ERROR_DATA_COLUMNS, error_data, response_metric, swept_keys, tuning_keys
from ..study import FigureKind, FigureStudy, claims_by_figure
from ..verdicts import (
    LIMIT, Claim, INCONCLUSIVE, MIN_SEEDS, NOTE, NOT_SUPPORTED, SIGNIFICANCE, SQRT_WALKERS_TOLERANCE, SUPPORTED,
    convergence_gate, fmt_num, join_parts, lines, log_fit, points_gate, saturation_claim, series_suffix,
    weighted_line, y_unit,
)


def sampler_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Error and its autocorrelation-corrected (reblocked) error bar vs MCMC steps and batch size.

    One pair of panels per swept sampler key among ``mcmc.steps`` and ``batch_size``; the error-bar
    panel's y is the seeds' mean reblocked standard error of the energy in mHa.
    """
    pieces = [error_data(trials, x, [response_metric(trials), ERROR_BAR])
              for x in ("mcmc.steps", "batch_size") if x in swept_keys(trials)]
    pieces = [p for p in pieces if not p.empty]
    if not pieces:
        return pd.DataFrame(columns=ERROR_DATA_COLUMNS)
    return pd.concat(pieces, ignore_index=True)


def sampler_claims(data: pd.DataFrame) -> list[Claim]:
    """Error-bar scaling with walkers, and where the error stops improving with MCMC steps."""
    claims = []
    if data.empty:
        return claims
    for series, line in lines(data, "stderr_mha vs batch_size"):
        claims.append(_sqrt_walkers_claim(series, line))
    for series, line in lines(data, "stderr_mha vs mcmc.steps"):
        claims.append(_exponent_note("sampler", "error bar vs MCMC steps per iteration" + series_suffix(series), "steps", line))
    response = [p for p in dict.fromkeys(data["panel"]) if p.endswith("vs mcmc.steps") and not p.startswith("stderr")]
    for panel in response:
        sub = data[data["panel"] == panel]
        for series, line in lines(sub):
            claims.append(saturation_claim("sampler", "steps", "error saturates with MCMC steps per iteration",
                                           series, line, y_unit(sub)))
    return claims


def _sqrt_walkers_claim(series: str, line: pd.DataFrame) -> Claim:
    """Fit ln(error bar) vs ln(walkers): independent walkers give exponent -1/2."""
    statement = "the error bar shrinks like 1/sqrt(walkers)" + series_suffix(series)
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
    evidence = join_parts(f"model ln(error bar) = a + p·ln(walkers): fitted exponent p = {p:.2f}"
                          + (f" ± {se:.2f}" if math.isfinite(se) else "")
                          + f" over batch {', '.join(fmt_num(x) for x in line['x'])} (expected -0.5, tolerance {tol:.2f})", how)
    failure = join_parts(convergence_gate(line), points_gate(line, "batch size"))
    if failure:
        return Claim("sampler", statement, INCONCLUSIVE, join_parts(failure, evidence))
    return Claim("sampler", statement, SUPPORTED if abs(p + 0.5) <= tol else NOT_SUPPORTED, evidence)


def _exponent_note(topic: str, statement: str, key_name: str, line: pd.DataFrame) -> Claim:
    """A power-law exponent of y vs x, reported without a verdict."""
    if len(line) < 2 or (line["y"] <= 0).any():
        return Claim(topic, statement, NOTE, f"fewer than 2 {key_name} values with an error bar")
    p, se, _ = log_fit(np.log(line["x"].to_numpy(float)), np.log(line["y"].to_numpy(float)))
    pts = "; ".join(f"{key_name} {fmt_num(r['x'])}: {r['y']:.3f} mHa" for _, r in line.iterrows())
    return Claim(topic, statement, NOTE, f"error bar ~ {key_name}^{p:.2f}" + (f" ± {se:.2f}" if math.isfinite(se) else "")
                 + f" ({pts})")


SAMPLER = FigureKind("sampler", "trials", sampler_data, draw_error_figure,
                     "Error and reblocked (autocorrelation-corrected) error bar vs MCMC steps and batch size.")


def planned(trials: pd.DataFrame) -> list[str]:
    """``sampler`` when MCMC steps or the batch size is swept (grid studies only)."""
    keys = set(swept_keys(trials))
    return ["sampler"] if not tuning_keys(trials) and keys & {"mcmc.steps", "batch_size"} else []


STUDY = FigureStudy("sampler", (SAMPLER,), planned, claims_by_figure({"sampler": sampler_claims}), claim_kind=LIMIT)
