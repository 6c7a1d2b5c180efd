"""Optimizer study (swept ``optim``): error per system with KFAC and Adam, and the
Adam/KFAC error ratio vs electrons.

Per system ``s`` with both optimizers complete (Adam ``A ± a``, KFAC ``K ± k``):

* ratio ``R = A / K`` (shown when A, K > 0) with ``sigma_lnR = sqrt((a/A)^2 + (k/K)^2)``;
* "KFAC's error is at least 10x lower than Adam's": on system ``s`` the test statistic is the
  margin ``M = A - 10 K`` with ``sigma_M = sqrt(a^2 + 100 k^2)``. ``M > 2 sigma_M`` is exactly
  "10 lies below the 2-sigma lower bound of A/K" (Fieller's interval for a ratio of two normal
  means, which, unlike a propagated ``R ± 2 sigma_R``, stays valid when K is small or <= 0). The
  claim is ``supported`` when the gate passes and ``M > 2 sigma_M`` on *every* system compared;
  ``not supported`` when on some system ``M < -2 sigma_M`` (the ratio significantly below 10);
  otherwise ``inconclusive`` (the ratio not resolved from 10 on some system);
* "the ratio grows with the number of electrons": weighted least squares ``ln R = c + b n`` over
  the systems with A, K > 0 (weights ``1 / sigma_lnR^2``; ``n`` = electrons), the slope error
  scaled by sqrt(χ²/dof) when that exceeds 1. ``supported``: the gate (>= 3 systems, no
  significant reversal: no system with more electrons whose ln R is significantly below that of
  a system with fewer), ``b / se(b) > 2`` and the line acceptable (χ² p-value >= 0.01);
  ``not supported``: ``b / se(b) < -2``; otherwise ``inconclusive``; ``supported`` also needs
  every system's Adam − KFAC gap stable over training (:mod:`analysis.stability`);
* "KFAC's error is lower than Adam's", per system on its own (margin ``A - K``): the weaker
  comparison, which a quick budget can decide where the 10x claim is refuted.

All three are comparisons at a budget (:mod:`analysis.verdicts`): the trials share one budget
(iterations x walkers), every point has >= 2 seeds, and no convergence is required. The shared per-system rules are in :mod:`analysis.systems`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..study import FigureKind, FigureStudy, claims_by_figure, grid_key_plan
from ..stability import stability_gate
from ..systems import factor_claim, grouped_figure, level_pairs, levels_missing, ratio_fit, ratios, system_points
from ..verdicts import (
    COMPARISON, Claim, INCONCLUSIVE, MIN_FIT_P, NOT_SUPPORTED, SIGNIFICANCE, SUPPORTED, comparison_gate, fmt_num,
    join_parts, points_gate,
)


OPTIM_KEY = "optim"
OPTIMIZER_FACTOR = 10.0  # "KFAC's error is at least 10x lower than Adam's"
OPTIM_NAMES = {"kfac": "KFAC", "adam": "Adam"}


def optim_level(value) -> str:
    """``kfac`` / ``adam`` (lower case) from a swept optimiser value."""
    return str(value).strip().lower()


def optim_label(level: str) -> str:
    return OPTIM_NAMES.get(level, level)


def optimizer_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Error (mHa) per optimiser and system, systems in electron order (the optimizer figure)."""
    return system_points(trials, [OPTIM_KEY], optim_level, optim_label)


def draw_optimizer(data: pd.DataFrame):
    """Figure of :func:`optimizer_data`: error by system (KFAC, Adam) and Adam/KFAC vs electrons
    with its weighted fit."""
    return grouped_figure(data, ["kfac", "adam"], "adam", "kfac", OPTIMIZER_FACTOR, "Adam / KFAC error ratio",
                          with_fit=True, what="the claim's threshold")


OPTIMIZER_FACTOR_STATEMENT = "KFAC's error is at least 10x lower than Adam's"
OPTIMIZER_GROWTH_STATEMENT = "the Adam/KFAC error ratio grows with the number of electrons"
OPTIMIZER_LOWER_STATEMENT = "KFAC's error is lower than Adam's"


def optimizer_claims(data: pd.DataFrame) -> list[Claim]:
    """The 10x claim, the growth of the ratio with electrons, and per system the weaker comparison
    "KFAC's error is lower" (rules in the module docstring)."""
    return [factor_claim("optimizer", OPTIMIZER_FACTOR_STATEMENT, data, "adam", "kfac", OPTIMIZER_FACTOR, optim_label),
            optimizer_growth_claim(data), *lower_claims(data)]


def lower_claims(data: pd.DataFrame) -> list[Claim]:
    """"KFAC's error is lower than Adam's" on each system on its own (factor 1): the comparison the
    data decide when the 10x claim is not supported."""
    if data.empty or levels_missing(data, ["adam", "kfac"], optim_label):
        return []
    claims = []
    for system in dict.fromkeys(data["x"]):
        one = data[data["x"] == system].copy()
        one.attrs.update(data.attrs)
        claims.append(factor_claim("optimizer", f"{OPTIMIZER_LOWER_STATEMENT} ({system})", one, "adam", "kfac", 1.0,
                                   optim_label))
    return claims


def optimizer_growth_claim(data: pd.DataFrame) -> Claim:
    """Weighted fit of ln(Adam/KFAC) vs electrons; the gate, >= 3 systems, no reversal, slope > 2σ."""
    statement, topic = OPTIMIZER_GROWTH_STATEMENT, "optimizer"
    if data.empty:
        return Claim(topic, statement, INCONCLUSIVE, "no complete trial with an error vs a reference", kind=COMPARISON)
    missing = levels_missing(data, ["adam", "kfac"], optim_label)
    if missing:
        return Claim(topic, statement, INCONCLUSIVE, missing, kind=COMPARISON)
    table = ratios(data, "adam", "kfac", OPTIMIZER_FACTOR)
    usable = table[np.isfinite(table["ratio"].astype(float)) & np.isfinite(table["electrons"].astype(float))]
    left_out = table[~table.index.isin(usable.index)]
    note = (f"left out (a mean error <= 0 has no ratio, or no electron count): {', '.join(map(str, left_out['x']))}"
            if len(left_out) else "")
    pts = "; ".join(f"{r['x']} ({fmt_num(r['electrons'])} e): ratio {r['ratio']:.3g} (ln {math.log(r['ratio']):.2f} ± "
                    f"{r['ln_ratio_err']:.2f})" for _, r in usable.iterrows())
    compared = data[data["x"].isin(usable["x"]) & data["level"].isin(["adam", "kfac"])]
    gate = comparison_gate(compared, "system")
    unstable, stability_note = stability_gate([(lab, a, b, 1.0) for lab, a, b in
                                               level_pairs(data, usable, "adam", "kfac")])
    failure, seed_note = gate.failure, stability_note

    def claim(verdict: str, evidence: str) -> Claim:
        return Claim(topic, statement, verdict, evidence, kind=COMPARISON, scope=gate.scope)
    points = usable.assign(mean=np.log(usable["ratio"].astype(float)), yerr=usable["ln_ratio_err"], x=usable["electrons"])
    few = points_gate(points.drop_duplicates("x"), "electron-count", " with a ratio")
    fit = ratio_fit(usable)
    fit_text = (f"model ln(Adam/KFAC) = c + b·electrons, weighted: b = {fit.slope:.3f} ± {fit.slope_se:.3f} "
                f"per electron (ratio ×{math.exp(fit.slope):.2f} per electron), χ²/dof {fit.chi2:.1f}/{fit.dof}"
                + (f", p {fit.p_value:.2g}" if fit.dof > 0 else "") if fit is not None else "")
    if failure or few or fit is None:
        return claim(INCONCLUSIVE,
                     join_parts(failure, few, "" if fit is not None or few else "no fit", fit_text, pts, seed_note, note))
    z = fit.significance
    if z < -SIGNIFICANCE:
        return claim(NOT_SUPPORTED,
                     join_parts(f"the ratio falls with electrons ({z:.1f} sigma)", fit_text, pts, seed_note, note))
    if z <= SIGNIFICANCE:
        return claim(INCONCLUSIVE,
                     join_parts(f"no significant trend (slope {z:+.1f} sigma, needs beyond ±{SIGNIFICANCE:g})",
                                fit_text, pts, seed_note, note))
    rev = ratio_reversals(usable)
    if rev:
        return claim(INCONCLUSIVE, join_parts("significant reversal: " + ", ".join(rev), fit_text, pts,
                                                          seed_note, note))
    if fit.dof > 0 and fit.p_value < MIN_FIT_P:
        return claim(INCONCLUSIVE,
                     join_parts(f"the ratio grows ({z:.1f} sigma) but the line does not fit within the error bars",
                                fit_text, pts, seed_note, note))
    if unstable:
        return claim(INCONCLUSIVE, join_parts(unstable, fit_text, pts, seed_note, note))
    return claim(SUPPORTED, join_parts(f"grows at {z:.1f} sigma; every Adam - KFAC gap stable over "
                                                         "training", fit_text, pts, seed_note, note))


def ratio_reversals(table: pd.DataFrame) -> list[str]:
    """Every pair of systems where the one with more electrons has a significantly smaller
    ln(ratio) (beyond 2 sqrt(s1^2 + s2^2) of the ln-ratio errors), as text."""
    rows = table.sort_values("electrons").reset_index(drop=True)
    found = []
    for i in range(len(rows)):
        for j in range(len(rows)):
            a, b = rows.iloc[i], rows.iloc[j]
            if b["electrons"] <= a["electrons"]:
                continue
            gap = math.log(a["ratio"]) - math.log(b["ratio"])
            sigma = math.hypot(a["ln_ratio_err"], b["ln_ratio_err"])
            if gap > SIGNIFICANCE * sigma:
                found.append(f"{b['x']} ({fmt_num(b['electrons'])} e, ratio {b['ratio']:.3g}) is below {a['x']} "
                             f"({fmt_num(a['electrons'])} e, ratio {a['ratio']:.3g}) by {gap / sigma:.1f} sigma in ln(ratio)")
    return found


OPTIMIZER = FigureKind("optimizer", "trials", optimizer_data, draw_optimizer,
                       "Error per system (ordered by electron count) with KFAC and Adam, and the Adam/KFAC error "
                       "ratio vs electrons with its weighted fit; dotted: 10x.")
STUDY = FigureStudy("optimizer", (OPTIMIZER,), grid_key_plan(OPTIM_KEY, "optimizer"),
                    claims_by_figure({"optimizer": optimizer_claims}))
