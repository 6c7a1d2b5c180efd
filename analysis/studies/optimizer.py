"""Optimizer study (swept ``optim``): error per system with KFAC and Adam, and the
Adam/KFAC error ratio vs electrons.

Per system ``s`` with both optimizers complete: the ratio of the seeds' geometric mean errors
``R = Adam / KFAC``, tested on ln(error) (:mod:`analysis.inference`; Welch t with
Satterthwaite degrees of freedom, one-sided, Holm over the study's claims):

* "KFAC's error is at least 10x lower than Adam's": one test over all systems, the mean over
  systems of ln A - ln K against ln 10 (:func:`analysis.systems.factor_claim`); support above,
  refutation below;
* "the ratio grows with the number of electrons": the least-squares slope of ln R against
  electrons (>= 3 electron counts) as one Welch contrast; support: slope > 0, refutation: < 0;
  the weighted line drawn in the figure is shown as evidence;
* "KFAC's error is lower than Adam's", per system on its own (ln A - ln K against 0): the weaker
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
from ..inference import contrast, slope_weights
from ..systems import (
    factor_claim, figure_pool, grouped_figure, level_pairs, levels_missing, ratio_fit, ratios, system_points,
)
from ..verdicts import (
    COMPARISON, Claim, Decision, INCONCLUSIVE, comparison_gate, decided, fmt_factor, fmt_num, join_parts, lost_hold,
    lost_note, min_seeds,
    need_text, points_gate, power_text, sample, trial_numbers,
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
    pool = figure_pool(data, ["adam", "kfac"])
    for system in dict.fromkeys(data["x"]):
        one = data[data["x"] == system].copy()
        one.attrs.update(data.attrs)
        claims.append(factor_claim("optimizer", f"{OPTIMIZER_LOWER_STATEMENT} ({system})", one, "adam", "kfac", 1.0,
                                   optim_label, pool=pool if len(pool) > 2 else None))
    return claims


def optimizer_growth_claim(data: pd.DataFrame) -> Claim:
    """The least-squares slope of the per-system ln(Adam/KFAC) against electrons as one Welch
    contrast of the seeds' ln errors; the gate, >= 3 electron counts; support: slope > 0."""
    statement, topic = OPTIMIZER_GROWTH_STATEMENT, "optimizer"
    if data.empty:
        return Claim(topic, statement, INCONCLUSIVE, "no complete trial with an error vs a reference", kind=COMPARISON)
    missing = levels_missing(data, ["adam", "kfac"], optim_label)
    if missing:
        return Claim(topic, statement, INCONCLUSIVE, missing, kind=COMPARISON)
    table = ratios(data, "adam", "kfac", OPTIMIZER_FACTOR)
    usable = table[np.isfinite(table["electrons"].astype(float))]
    left_out = table[~table.index.isin(usable.index)]
    note = f"left out (no electron count): {', '.join(map(str, left_out['x']))}" if len(left_out) else ""
    pts = "; ".join(f"{r['x']} ({fmt_num(r['electrons'])} e): ratio {r['ratio']:.3g} (ln {r['ln_ratio']:.2f} ± "
                    f"{r['ln_ratio_err']:.2f})" for _, r in usable.iterrows())
    compared = data[data["x"].isin(usable["x"]) & data["level"].isin(["adam", "kfac"])]
    gate = comparison_gate(compared, "system")
    pairs = level_pairs(data, usable, "adam", "kfac")
    few = points_gate(usable.drop_duplicates("electrons").assign(x=lambda t: t["electrons"]), "electron-count")
    fit = ratio_fit(usable)
    fit_text = (f"weighted line ln(Adam/KFAC) = c + b·electrons: b = {fit.slope:.3f} ± {fit.slope_se:.3f} per "
                f"electron (ratio ×{math.exp(fit.slope):.2f} per electron), χ²/dof {fit.chi2:.1f}/{fit.dof}"
                if fit is not None else "")
    body = join_parts(fit_text, pts, note, lost_note(compared))
    blocked = join_parts(gate.failure, few)
    if blocked:
        return Claim(topic, statement, INCONCLUSIVE, join_parts(blocked, body), kind=COMPARISON, scope=gate.scope,
                     decision=Decision(blocked=blocked, body=body, trials=trial_numbers(compared)))
    unstable, stability_note = stability_gate([(lab, a, b, 1.0) for lab, a, b in pairs], log=True)
    weights = slope_weights(usable["electrons"].to_numpy(float))
    samples, w = [], []
    for (lab, a, b), wi in zip(pairs, weights):
        samples += [sample(a, log=True), sample(b, log=True)]
        w += [wi, -wi]
    test = contrast(samples, w)
    seeds = min_seeds(compared)
    decision = Decision(
        p_support=test.p_greater, p_refute=test.p_less, hold=join_parts(unstable, lost_hold(compared, "a point")),
        supported=f"the ratio grows by {fmt_factor(test.estimate)} per electron",
        refuted=f"the ratio falls with electrons ({fmt_factor(test.estimate)} per electron)",
        undecided=f"no significant trend ({fmt_factor(test.estimate)} per electron)",
        test=f"Welch t on the least-squares slope of ln(Adam/KFAC) vs electrons: {test.text()}",
        body=join_parts(body, stability_note), need=need_text(test, seeds),
        power=power_text(test, seeds, True, "", "no growth"), trials=trial_numbers(compared))
    return decided(Claim(topic, statement, INCONCLUSIVE, "", kind=COMPARISON, scope=gate.scope, decision=decision))


OPTIMIZER = FigureKind("optimizer", "trials", optimizer_data, draw_optimizer,
                       "Error per system (ordered by electron count) with KFAC and Adam, and the Adam/KFAC error "
                       "ratio vs electrons with its weighted fit; dotted: 10x.")
STUDY = FigureStudy("optimizer", (OPTIMIZER,), grid_key_plan(OPTIM_KEY, "optimizer"),
                    claims_by_figure({"optimizer": optimizer_claims}))
