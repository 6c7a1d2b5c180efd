"""Tuning study: any swept key that is not a grid key (optimiser settings and the like) makes
the study a tuning study: Optuna's parameter importances and the optimisation history instead of
error-vs-key figures (averaging over tuned settings would mislead); the claims are notes: the
best trial and the most important hyperparameters."""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd

from ..loaders import complete_trials
from ..plotting import annotate, legend, log_y_with_band, new_figure
from ..points import tuning_keys
from ..study import FigureKind, Inputs, FigureStudy
from ..verdicts import Claim, INCONCLUSIVE, NOTE, fmt_num


def importances_figure(importances: pd.DataFrame):
    """Horizontal bars of Optuna parameter importances (frame ``param, importance``), largest on top."""
    fig, (ax,) = new_figure(panel_size=(4.6, 1.5 + 0.35 * max(2, len(importances))))  # + title and caption
    order = importances.reset_index(drop=True)
    positions = np.arange(len(order))[::-1]
    ax.barh(positions, order["importance"].to_numpy(float), color="C0", height=0.6, label="importance")
    ax.set_yticks(positions, labels=list(order["param"]))
    ax.set_xlabel("importance (normalised)")
    annotate(fig, importances.attrs.get("title"),
             "Bars: Optuna parameter importances of the complete trials (fANOVA), normalised to sum to 1.")
    return fig


def optimization_history_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Objective value of each complete trial in trial order and the best value so far.

    Columns: ``trial``, ``value`` (the study's objective, unit of ``objective``), ``best_so_far``,
    ``objective``.
    """
    done = complete_trials(trials)
    done = done[pd.to_numeric(done["value"], errors="coerce").notna()].sort_values("trial")
    values = done["value"].astype(float)
    maximize = str(trials.attrs.get("direction", "minimize")).lower() == "maximize"
    best = values.cummax() if maximize else values.cummin()
    return pd.DataFrame({"trial": done["trial"].to_numpy(), "value": values.to_numpy(),
                         "best_so_far": best.to_numpy(), "objective": trials.attrs.get("objective") or "value"})


def draw_optimization_history(data: pd.DataFrame):
    """Draw :func:`optimization_history_data`; log y for an objective in mHa when all values > 0."""
    fig, (ax,) = new_figure(panel_size=(4.2, 2.8))
    x, y, best = (data[c].to_numpy(float) for c in ("trial", "value", "best_so_far"))
    ax.plot(x, y, ls="none", marker="o", ms=4, color="C0", alpha=0.8, label="trial")
    ax.plot(x, best, drawstyle="steps-post", color="C3", lw=1.2, label="best so far")
    objective = str(data["objective"].iloc[0]) if len(data) else "value"
    if len(data) and objective.endswith("_mha") and (y > 0).all():
        log_y_with_band(ax, y, y, band=True)
    ax.set_xlabel("trial")
    ax.set_ylabel("error vs exact (mHa)" if objective == "error_mha" else objective)
    legend(ax)
    annotate(fig, data.attrs.get("title"),
             f"Dots: the objective ({objective}) of each complete trial, single runs without error bars; "
             "line: the best value so far.")
    return fig


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
        settings = ", ".join(f"{k}={fmt_num(best[k])}" for k in keys if pd.notna(best[k]))
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


IMPORTANCES = FigureKind("importances", "importances", lambda frame: frame.reset_index(drop=True), importances_figure,
                         "Optuna parameter importances (normalised).")
OPTIMIZATION_HISTORY = FigureKind("optimization_history", "trials", optimization_history_data,
                                  draw_optimization_history, "Objective of each complete trial and the best so far.")


def planned(trials: pd.DataFrame) -> list[str]:
    """Both figures when any swept key is a tuning key."""
    return ["importances", "optimization_history"] if tuning_keys(trials) else []


def claims(inputs: Inputs, data: Mapping[str, pd.DataFrame]) -> list[Claim]:
    """The tuning notes (they need the trials and the importances, not the figure data)."""
    return tuning_claims(inputs.trials, inputs.importances, inputs.importance_reason)


STUDY = FigureStudy("tuning", (IMPORTANCES, OPTIMIZATION_HISTORY), planned, claims)
