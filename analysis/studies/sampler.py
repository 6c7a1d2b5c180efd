"""Sampler study: error and its reblocked error bar vs MCMC steps and batch size.

Claims: saturation of the error with MCMC steps (rules in :mod:`analysis.verdicts`); the error
bar vs walkers: the slope of ln(error bar) vs ln(walkers) agrees with −1/2 (independent walkers)
within the sweep file's ``claims.exponent_margin`` (default 0.15), by two one-sided t tests; with
one seed per point the slope is the unweighted fit through the points (its residual scatter gives
the standard error) and says so; the error-bar exponent vs MCMC steps as a note.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..plotting import draw_error_figure
from ..points import ERROR_BAR, ERROR_DATA_COLUMNS, error_data, response_metric, swept_keys, tuning_keys
from ..study import FigureKind, FigureStudy, claims_by_figure
from ..inference import MIN_SEEDS, TTest, slope
from ..verdicts import (
    LIMIT, Claim, Decision, INCONCLUSIVE, NOTE, Rules, convergence_gate, decided, fmt_num, join_parts, lines, log_fit,
    min_seeds, need_text, points_gate, rules_of, sample, saturation_claim, series_suffix, trial_numbers, y_unit,
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
    rules = rules_of(data)
    for series, line in lines(data, "stderr_mha vs batch_size"):
        claims.append(_sqrt_walkers_claim(series, line, rules))
    for series, line in lines(data, "stderr_mha vs mcmc.steps"):
        claims.append(_exponent_note("sampler", "error bar vs MCMC steps per iteration" + series_suffix(series), "steps", line))
    response = [p for p in dict.fromkeys(data["panel"]) if p.endswith("vs mcmc.steps") and not p.startswith("stderr")]
    for panel in response:
        sub = data[data["panel"] == panel]
        for series, line in lines(sub):
            claims.append(saturation_claim("sampler", "steps", "error saturates with MCMC steps per iteration",
                                           series, line, y_unit(sub), rules))
    return claims


def _sqrt_walkers_claim(series: str, line: pd.DataFrame, rules: Rules) -> Claim:
    """ln(error bar) vs ln(walkers): independent walkers give exponent -1/2. Equivalence within
    ``rules.exponent_margin`` by two one-sided t tests (TOST); refuted when the exponent lies
    outside the margin on either side (Bonferroni over the two sides)."""
    statement = "the error bar shrinks like 1/sqrt(walkers)" + series_suffix(series)
    if len(line) < 2 or (line["y"] <= 0).any():
        return Claim("sampler", statement, INCONCLUSIVE, "fewer than 2 batch sizes with an error bar")
    x = np.log(line["x"].to_numpy(float))
    rows = [r for _, r in line.iterrows()]
    blocked = join_parts(convergence_gate(line), points_gate(line, "batch size"))
    margin = rules.exponent_margin
    if (line["n_seeds"] >= MIN_SEEDS).all():
        test = slope(x, [sample(r, log=True) for r in rows])
        how = "Welch t on the least-squares slope of the seeds' mean ln(error bar)"
    else:
        p, se, _ = log_fit(x, np.log(line["y"].to_numpy(float)))
        test = TTest(p, se, float(len(line) - 2)) if math.isfinite(se) else TTest(p, math.nan, math.nan)
        how = "one seed per batch size: t on the unweighted least-squares slope (residual scatter, df points - 2)"
    body = (f"model ln(error bar) = a + p·ln(walkers): fitted exponent p = {test.estimate:.2f}"
            + (f" ± {test.se:.2f}" if math.isfinite(test.se) else "")
            + f" over batch {', '.join(fmt_num(v) for v in line['x'])} (expected -0.5 within ±{margin:g})")
    if blocked or not math.isfinite(test.se):
        blocked = blocked or "no standard error of the exponent (2 batch sizes and one seed)"
        return Claim("sampler", statement, INCONCLUSIVE, join_parts(blocked, body),
                     decision=Decision(blocked=blocked, body=body, trials=trial_numbers(line)))
    upper, lower = test.against(-0.5 + margin), test.against(-0.5 - margin)
    seeds = min_seeds(line)
    binding = upper if upper.p_less > lower.p_greater else lower
    decision = Decision(
        p_support=max(upper.p_less, lower.p_greater),
        p_refute=min(1.0, 2 * min(upper.p_greater, lower.p_less)),
        supported=f"the exponent {test.estimate:.2f} lies within -0.5 ± {margin:g}",
        refuted=f"the exponent {test.estimate:.2f} lies outside -0.5 ± {margin:g}",
        undecided=f"the exponent {test.estimate:.2f} is not resolved within -0.5 ± {margin:g}",
        test=f"{how}, two one-sided tests against -0.5 ± {margin:g}: {test.text()}", body=body,
        need=need_text(binding, seeds, f"for margin ±{margin:g}"), trials=trial_numbers(line))
    return decided(Claim("sampler", statement, INCONCLUSIVE, "", decision=decision))


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
