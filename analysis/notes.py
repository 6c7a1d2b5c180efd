"""Study-level notes of the report: how many trials converged, whether the trials are far from
the reference energy, and which points of the figures were drawn at their error bar."""

from __future__ import annotations

from typing import Mapping

import pandas as pd

from .loaders import complete_trials
from .verdicts import Claim, NOTE, fmt_num


def clipping_note(figure_data: Mapping[str, pd.DataFrame]) -> list[Claim]:
    """One note listing the points drawn at their error bar because their mean error was <= 0."""
    clipped = []
    for name, data in figure_data.items():
        if "clipped" in data and len(data):
            rows = data[data["clipped"].eq(True)]  # rows without the column (e.g. spike counts) are NaN, not clipped
            clipped += [f"{name}: {r['x_name']}={fmt_num(r['x'])} ({r['series']}) mean {r['mean']:.2f} mHa"
                        for _, r in rows.iterrows()]
    if not clipped:
        return []
    return [Claim("study", "errors <= 0 on log axes", NOTE,
                  "the energy fell below the reference within noise; these points are drawn at their error bar "
                  "(open triangles) because the log of a non-positive error is undefined: " + "; ".join(clipped))]


def convergence_note(trials: pd.DataFrame) -> list[Claim]:
    """How many complete trials converged (analysis.convergence), naming those that did not."""
    done = complete_trials(trials)
    if done.empty or "converged" not in done:
        return []
    flags = done["converged"].astype("boolean")
    ok, bad, unknown = int(flags.fillna(False).sum()), done[flags.fillna(True).eq(False)], int(flags.isna().sum())
    text = f"{ok} of {len(done)} complete trials converged (flat training tail and evaluation agreeing with it)"
    if unknown:
        text += f"; {unknown} not measured"
    if len(bad):
        text += "; not converged: " + "; ".join(f"t{int(r['trial'])} {r['convergence_reason']}" for _, r in bad.iterrows())
    return [Claim("study", "trial convergence", NOTE, text)]


FAR_FROM_REFERENCE_MHA = 50.0  # median error above which the study is called far from the reference


def accuracy_note(trials: pd.DataFrame) -> list[Claim]:
    """A warning when the complete trials are far from the reference energy (median error > 50 mHa):
    the paper's claims are about accurate networks, so verdicts then describe short training."""
    errors = pd.to_numeric(complete_trials(trials)["error_mha"], errors="coerce").dropna()
    if errors.empty or errors.median() <= FAR_FROM_REFERENCE_MHA:
        return []
    return [Claim("study", "trials far from the reference energy", NOTE,
                  f"median error {errors.median():.1f} mHa (chemical accuracy: 1.6 mHa); the paper's claims are "
                  "about accurate networks, so the verdicts below describe short training, not architectures")]
