"""Batch-size study (``batch_size`` swept without any other sampler key; with them it is the
sampler study): error vs walkers at fixed iterations.

Per line, a comparison at a budget (:mod:`analysis.verdicts`; the budget is the training
iterations, the walkers being what is compared): the least-squares slope of the points' mean
ln(error) per doubling of the batch, tested by Welch t (:mod:`analysis.inference`; seeds floored at
their reblocked error before the log). Gates: every trial ran the same number of training
iterations, >= 2 seeds per point, >= 3 batch sizes. Support: slope < 0; refutation: slope > 0;
``supported`` is held when the gap between the smallest and the largest batch shrinks over
training (log ratio, :mod:`analysis.stability`) or a larger batch is significantly worse than a
smaller one. The weighted power-law fit ``ln(error) = c + p ln(batch)`` is drawn and given as
evidence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..loaders import complete_trials
from ..plotting import draw_error_figure, legend
from ..points import ERROR, error_data, swept_keys, tuning_keys
from ..stability import stability_gate
from ..study import FigureKind, FigureStudy, claims_by_figure
from ..inference import slope
from ..verdicts import (
    COMPARISON, Claim, Decision, INCONCLUSIVE, LineFit, comparison_gate, decided, floored_note, fmt_factor, fmt_num,
    fmt_pm, join_parts, lines, lost_hold, lost_note, min_seeds, need_text, points_gate, power_text, replicate_gate, reversals, sample,
    series_suffix, trial_numbers, weighted_line,
)


BATCH_KEY = "batch_size"
OTHER_SAMPLER_KEYS = ("mcmc.steps", "mcmc.adapt", "mcmc.move_width")  # swept with batch: the sampler study


def batch_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Error vs walkers (batch size) at fixed iterations, one line per other varying key, with
    ``iterations`` (the distinct training iterations of each point's trials, e.g. ``1000``)."""
    data = error_data(trials, BATCH_KEY, [ERROR] if _has_error(trials) else None)
    done = complete_trials(trials).set_index("trial")
    its = pd.to_numeric(done["iterations"], errors="coerce")
    def iterations_text(trial_numbers: str) -> str:
        found = {float(its[int(t)]) for t in str(trial_numbers).split() if int(t) in its.index and pd.notna(its[int(t)])}
        return " ".join(fmt_num(v) for v in sorted(found))

    data["iterations"] = [iterations_text(t) for t in data["trials"]]
    return data


def _has_error(trials: pd.DataFrame) -> bool:
    return pd.to_numeric(complete_trials(trials)[ERROR.column], errors="coerce").notna().any()


def draw_batch(data: pd.DataFrame):
    """Figure of :func:`batch_data`: error vs batch on log2 x and log y (as the other error
    figures) with the weighted power-law fit of each line dashed."""
    fig = draw_error_figure(data)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    for ax, (panel, sub) in zip(axes, ((p, data[data["panel"] == p]) for p in dict.fromkeys(data["panel"]))):
        if sub.empty or sub["y_name"].iloc[0] != ERROR.column:
            continue
        for i, (series, line) in enumerate(lines(sub)):
            fit = batch_fit(line)
            if fit is None:
                continue
            x = np.geomspace(line["x"].min(), line["x"].max(), 50)
            ax.plot(x, np.exp(fit.intercept) * x**fit.slope, ls="--", lw=0.9, color="0.35",
                    label=f"fit: error ∝ batch^({fit.slope:.2f} ± {fit.slope_se:.2f})" + series_suffix(series))
        legend(ax, outside=True)
    return fig


BATCH_STATEMENT = "the error falls with batch size at fixed iterations"


def batch_fit(line: pd.DataFrame) -> LineFit | None:
    """Weighted ln(error) = c + p·ln(batch) over the points' mean ln error (seeds floored at their
    reblocked error), weighted by the standard errors of those means (None with fewer than 2
    points with a standard error)."""
    usable = line[line["yerr"] > 0]
    if len(usable) < 2:
        return None
    samples = [sample(r, log=True) for _, r in usable.iterrows()]
    return weighted_line(np.log(usable["x"].to_numpy(float)), np.array([s.mean for s in samples]),
                         np.array([s.sem for s in samples]))


def batch_claims(data: pd.DataFrame) -> list[Claim]:
    """The batch claim for each line of batch data (rules in the module docstring)."""
    if data.empty:
        return []
    if data["y_name"].iloc[0] != ERROR.column:
        return [Claim("batch", BATCH_STATEMENT, INCONCLUSIVE, "no reference energy for this system, so no error to fit")]
    return [_batch_claim(series, line) for series, line in lines(data)]


def _batch_claim(series: str, line: pd.DataFrame) -> Claim:
    statement = BATCH_STATEMENT + series_suffix(series)
    pts = "; ".join(f"batch {fmt_num(r['x'])}: {fmt_pm(r['mean'], r['yerr'], 'mHa')}" for _, r in line.iterrows())
    iterations = sorted({v for text in line.get("iterations", pd.Series(dtype=str)).astype(str) for v in text.split()})
    fixed = (None if len(iterations) <= 1 else
             f"training iterations differ ({', '.join(iterations)}): the claim is at fixed iterations")
    gate = comparison_gate(line, "batch", walkers_vary=True)
    # unequal iterations are said in the batch study's own words (the gate would say "unequal budgets")
    blocked = join_parts(fixed, replicate_gate(line, "batch") if fixed else gate.failure,
                         points_gate(line, "batch size"))
    fit = batch_fit(line)
    fit_text = ""
    if fit is not None:
        fit_text = (f"model ln(error) = c + p·ln(batch), weighted: p = {fit.slope:.2f} ± {fit.slope_se:.2f} "
                    f"(error ×{2 ** fit.slope:.2f} per doubling), χ²/dof {fit.chi2:.1f}/{fit.dof}"
                    + (f", p-value {fit.p_value:.2g}" if fit.dof > 0 else ""))
    at = f"at {iterations[0]} iterations" if len(iterations) == 1 else ""
    rows = [r for _, r in line.iterrows()]
    body = join_parts(fit_text, at, pts, floored_note(rows, True), lost_note(rows))
    if blocked:
        return Claim("batch", statement, INCONCLUSIVE, join_parts(blocked, body), kind=COMPARISON, scope=gate.scope,
                     decision=Decision(blocked=blocked, body=body, trials=trial_numbers(line)))
    unstable, stability_note = stability_gate([(f"batch {fmt_num(line.iloc[0]['x'])} vs {fmt_num(line.iloc[-1]['x'])}",
                                                line.iloc[0], line.iloc[-1], 1.0)], log=True)
    rev = reversals(line, "batch", "mHa")
    test = slope(np.log2(line["x"].to_numpy(float)), [sample(r, log=True) for r in rows])
    seeds = min_seeds(line)
    size = fmt_factor(test.estimate)
    decision = Decision(
        p_support=test.p_less, p_refute=test.p_greater,
        hold=join_parts(unstable, ("significant reversal: " + ", ".join(rev)) if rev else "", lost_hold(line, "a point")),
        supported=f"the error changes by {size} per doubling of the batch", refuted=f"the error grows with batch size ({size} per doubling)",
        undecided=f"no significant trend ({size} per doubling)",
        test=f"Welch t on the least-squares slope of ln(error) per doubling of the batch: {test.text()}",
        body=join_parts(body, stability_note), need=need_text(test, seeds),
        power=power_text(test, seeds, True, "", "no trend"), trials=trial_numbers(line))
    return decided(Claim("batch", statement, INCONCLUSIVE, "", kind=COMPARISON, scope=gate.scope, decision=decision))


BATCH = FigureKind("batch", "trials", batch_data, draw_batch,
                   "Error vs walkers (batch size) at fixed iterations, log2 x and log y, with the weighted power-law "
                   "fit.")


def planned(trials: pd.DataFrame) -> list[str]:
    """``batch`` when ``batch_size`` is swept without another sampler key (grid studies only)."""
    keys = set(swept_keys(trials))
    alone = BATCH_KEY in keys and not keys & set(OTHER_SAMPLER_KEYS)
    return ["batch"] if not tuning_keys(trials) and alone else []


STUDY = FigureStudy("batch", (BATCH,), planned, claims_by_figure({"batch": batch_claims}))
