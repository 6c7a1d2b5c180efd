"""Every figure the analysis draws keeps its texts apart: titles, axis and tick labels, legends and
captions never overlap (the layout engine does not prevent a long axis label from running into the
title or the next panel; :func:`analysis.plotting.fit_axis_labels` wraps them). Drawn from simulated
studies (:mod:`analysis.simulate`) of every kind the sweep files run, two seeds per point."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.plotting import overlapping_texts
from analysis.simulate import trial_frame
from analysis.studies import FIGURE_KINDS, STUDY_OF, plan_figures
from analysis.study import Inputs

STUDIES = {
    "width": ([{"network.width": w} for w in (8, 16, 32, 64)], ["network.width"]),
    "width_depth": ([{"network.width": w, "network.depth": d} for w in (8, 16, 32) for d in (1, 2)],
                    ["network.width", "network.depth"]),
    "depth": ([{"network.depth": d} for d in (1, 2, 3, 4)], ["network.depth"]),
    "pairwise": ([{"network.pairwise_width": w} for w in (4, 8, 16, 32)], ["network.pairwise_width"]),
    "determinants": ([{"network.determinants": k, "network": n} for k in (1, 4, 16)
                      for n in ("ferminet", "slater_jastrow")], ["network.determinants", "network"]),
    "architecture": ([{"network": n, "system": s} for n in ("ferminet", "psiformer", "slater_jastrow")
                      for s in ("Li", "LiH")], ["network", "system"]),
    "optimizer": ([{"optim": o, "system": s} for o in ("kfac", "adam") for s in ("Li", "Be", "LiH", "B")],
                  ["optim", "system"]),
    "features": ([{"network.distance_features": d, "system": s} for d in (True, False) for s in ("He", "Li", "LiH")],
                 ["network.distance_features", "system"]),
    "batch": ([{"batch_size": b} for b in (64, 128, 256, 512, 1024)], ["batch_size"]),
    "sampler": ([{"mcmc.steps": s, "batch_size": b} for s in (2, 5, 10) for b in (64, 256, 1024)],
                ["mcmc.steps", "batch_size"]),
    "sampler_moves": ([{"mcmc.moves": m, "mcmc.method": h, "system": s} for m in ("all", "one") for h in ("mh", "hmc")
                       for s in ("Li", "Be")], ["mcmc.moves", "mcmc.method", "system"]),
}


def history_of(trials: pd.DataFrame, steps: int = 200) -> pd.DataFrame:
    """Training energies (Hartree) falling onto each trial's evaluated energy."""
    rows = []
    for _, r in trials.iterrows():
        step = np.arange(steps)
        energy = r["energy"] + 0.05 * np.exp(-step / 30.0)
        rows.append(pd.DataFrame({"trial": r["trial"], **{k: r[k] for k in trials.attrs["params"]}, "seed": r["seed"],
                                  "state": r["state"], "system": r["system"], "network": r["network"],
                                  "reference_energy": r["reference_energy"], "step": step, "energy": energy}))
    history = pd.concat(rows, ignore_index=True)
    history.attrs.update(trials.attrs)
    return history


@pytest.mark.parametrize("study", list(STUDIES))
def test_no_figure_has_overlapping_texts(study: str):
    points, params = STUDIES[study]
    trials = trial_frame(points, params, lambda p: 3.0 * (5.0 if p.get("optim") == "adam" else 1.0), seeds=2,
                         scatter=0.5, rng=np.random.default_rng(0))
    inputs = Inputs(trials, history_of(trials))
    drawn = 0
    for name in plan_figures(trials, every_study=True):
        kind = FIGURE_KINDS[name]
        if kind.source == "importances":
            continue
        data = STUDY_OF[name].data(kind, inputs)
        if data is None or data.empty:
            continue
        data.attrs["title"] = "LiH · quick scale · 1000 iterations · 256 walkers · 2 seeds per point"
        fig = kind.draw(data)
        assert overlapping_texts(fig) == [], name
        drawn += 1
    assert drawn >= 2
