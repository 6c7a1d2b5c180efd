"""Batch-size study (``batch_size`` swept without any other sampler key; with them it is the
sampler study): error vs walkers at fixed iterations.

Per line: weighted least squares ``ln(error) = c + p ln(batch)`` (weights from
the error bars, ``sigma = e / mean``) over batches with mean error > 0. A comparison at a budget
(:mod:`analysis.verdicts`; the budget is the training iterations, the walkers being what is
compared). ``supported``: every trial ran the same number of training iterations, >= 2 seeds per
point, >= 3 batch sizes, no significant reversal, ``p / se(p) < -2``, χ² p-value >= 0.01, and the
gap between the smallest and the largest batch stable over training (:mod:`analysis.stability`);
``not supported``: ``p / se(p) > 2``; otherwise ``inconclusive``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..loaders import complete_trials
from ..plotting import draw_error_figure, legend
from ..points import ERROR, error_data, swept_keys, tuning_keys
from ..stability import stability_gate
from ..study import FigureKind, FigureStudy, claims_by_figure
from ..verdicts import (
    COMPARISON, Claim, INCONCLUSIVE, LineFit, MIN_FIT_P, NOT_SUPPORTED, SIGNIFICANCE, SUPPORTED, comparison_gate,
    fmt_num, fmt_pm, join_parts, lines, points_gate, replicate_gate, reversals, series_suffix, weighted_line,
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
    """Weighted ln(error) = c + p·ln(batch) over the points with mean > 0 and an error bar (None
    with fewer than 2)."""
    positive = line[(line["mean"] > 0) & (line["yerr"] > 0)]
    if len(positive) < 2:
        return None
    mean = positive["mean"].to_numpy(float)
    return weighted_line(np.log(positive["x"].to_numpy(float)), np.log(mean), positive["yerr"].to_numpy(float) / mean)


def batch_claims(data: pd.DataFrame) -> list[Claim]:
    """The batch claim for each line of batch data (rules in the module docstring)."""
    if data.empty:
        return []
    if data["y_name"].iloc[0] != ERROR.column:
        return [Claim("batch", BATCH_STATEMENT, INCONCLUSIVE, "no reference energy for this system, so no error to fit")]
    return [_batch_claim(series, line) for series, line in lines(data)]


def _batch_claim(series: str, line: pd.DataFrame) -> Claim:
    statement = BATCH_STATEMENT + series_suffix(series)
    positive = line[line["mean"] > 0].reset_index(drop=True)
    excluded = line[line["mean"] <= 0]
    note = (f"batch {', '.join(fmt_num(x) for x in excluded['x'])} have error <= 0 (below the reference within noise): "
            "left out of the fit" if len(excluded) else "")
    pts = "; ".join(f"batch {fmt_num(r['x'])}: {fmt_pm(r['mean'], r['yerr'], 'mHa')}" for _, r in line.iterrows())
    iterations = sorted({v for text in line.get("iterations", pd.Series(dtype=str)).astype(str) for v in text.split()})
    fixed = (None if len(iterations) <= 1 else
             f"training iterations differ ({', '.join(iterations)}): the claim is at fixed iterations")
    gate = comparison_gate(line, "batch", walkers_vary=True)
    seed_note = ""
    # unequal iterations are said in the batch study's own words (the gate would say "unequal budgets")
    failures = [fixed, replicate_gate(line, "batch") if fixed else gate.failure,
                points_gate(positive, "batch size", " with error > 0")]
    unstable, stability_note = (stability_gate([(f"batch {fmt_num(line.iloc[0]['x'])} vs {fmt_num(line.iloc[-1]['x'])}",
                                                 line.iloc[0], line.iloc[-1], 1.0)]) if len(line) else (None, ""))
    note = join_parts(note, stability_note)

    def claim(verdict: str, evidence: str) -> Claim:
        return Claim("batch", statement, verdict, evidence, kind=COMPARISON, scope=gate.scope)

    fit = batch_fit(line)
    fit_text = ""
    if fit is not None:
        fit_text = (f"model ln(error) = c + p·ln(batch), weighted by the error bars: p = {fit.slope:.2f} ± "
                    f"{fit.slope_se:.2f} (error ×{2 ** fit.slope:.2f} per doubling), χ²/dof {fit.chi2:.1f}/{fit.dof}"
                    + (f", p-value {fit.p_value:.2g}" if fit.dof > 0 else ""))
    at = f"at {iterations[0]} iterations" if len(iterations) == 1 else ""
    if any(failures) or fit is None:
        return claim(INCONCLUSIVE, join_parts(*failures, "" if fit else "fewer than 2 batch sizes "
                     "with error > 0 and an error bar: no fit", fit_text, pts, seed_note, note))
    z = fit.significance
    if z > SIGNIFICANCE:
        return claim(NOT_SUPPORTED,
                     join_parts(f"the error grows with batch size (slope {z:.1f} sigma)", fit_text, at, pts, seed_note, note))
    if z >= -SIGNIFICANCE:
        return claim(INCONCLUSIVE,
                     join_parts(f"no significant trend (slope {z:+.1f} sigma, needs beyond ±{SIGNIFICANCE:g})", fit_text, at,
                                pts, seed_note, note))
    rev = reversals(positive, "batch", "mHa")
    if rev:
        return claim(INCONCLUSIVE,
                     join_parts("significant reversal: " + ", ".join(rev), fit_text, at, pts, seed_note, note))
    if fit.dof > 0 and fit.p_value < MIN_FIT_P:
        return claim(INCONCLUSIVE,
                     join_parts(f"the error falls ({abs(z):.1f} sigma) but the power law does not fit within the error bars",
                                fit_text, at, pts, seed_note, note))
    if unstable:
        return claim(INCONCLUSIVE, join_parts(unstable, fit_text, at, pts, seed_note, note))
    return claim(SUPPORTED, join_parts(f"falls at {abs(z):.1f} sigma, stable over training", fit_text, at, pts, seed_note,
                                       note))


BATCH = FigureKind("batch", "trials", batch_data, draw_batch,
                   "Error vs walkers (batch size) at fixed iterations, log2 x and log y, with the weighted power-law "
                   "fit.")


def planned(trials: pd.DataFrame) -> list[str]:
    """``batch`` when ``batch_size`` is swept without another sampler key (grid studies only)."""
    keys = set(swept_keys(trials))
    alone = BATCH_KEY in keys and not keys & set(OTHER_SAMPLER_KEYS)
    return ["batch"] if not tuning_keys(trials) and alone else []


STUDY = FigureStudy("batch", (BATCH,), planned, claims_by_figure({"batch": batch_claims}))
