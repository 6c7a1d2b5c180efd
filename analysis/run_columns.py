"""Trial-frame columns the analysis derives from each run directory, added in one place.

:func:`add_run_columns` appends :data:`RUN_COLUMNS` to a trial frame (from
:func:`analysis.load_study` or :func:`analysis.load_wandb_study`):

* ``scale``: the scale preset the trial ran under: summary.json's ``config["scale"]`` when the
  engine records it, else the last ``scale=...`` of the study's ``base_overrides`` (the sweep's
  base plus the user's overrides), else missing;
* ``iterations_planned``: ``config["optim.iterations"]``; ``batch_size``: ``config["batch_size"]``
  (walkers); ``n_electrons`` (n_up + n_down) and ``energy_spikes`` from summary.json;
* the convergence columns of :mod:`analysis.convergence` (``converged``: True, False or <NA> when
  not measured; ``convergence_reason``; the tail slope and its standard error in mHa per 1000
  iterations; ``eval_minus_tail_mha``; ...), measured for every COMPLETE trial from its
  metrics.csv training energies and its evaluated energy ± reblocked standard error;
* the training-window energies of :mod:`analysis.stability` (``mid_energy``/``mid_stderr`` at
  mid-training, ``end_energy``/``end_stderr`` at the end; Hartree), from the same energies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from .convergence import CONVERGENCE_COLUMNS, Convergence, assess
from .stability import STABILITY_COLUMNS, stability_columns
from .run_files import read_metrics, read_summary

RUN_COLUMNS = ("scale", "iterations_planned", "batch_size", "n_electrons", "energy_spikes", *CONVERGENCE_COLUMNS,
               *STABILITY_COLUMNS)


def scale_from_overrides(overrides: Sequence[str] | None) -> str | None:
    """The value of the last ``scale=NAME`` override (``+scale=``/``++scale=`` too), or None."""
    found = None
    for item in overrides or ():
        key, sep, value = str(item).lstrip("+").partition("=")
        if sep and key == "scale":
            found = value
    return found


def training_energies(run_dir: str | None, cache: dict | None = None) -> list[float] | None:
    """The ``energy`` column of a run's metrics.csv (Hartree), or None when it cannot be read."""
    metrics = read_metrics(run_dir, cache)
    if metrics is None or "energy" not in metrics:
        return None
    return pd.to_numeric(metrics["energy"], errors="coerce").tolist()


def _finite(value: Any) -> float | None:
    """``value`` as a float, None when missing or NaN."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def run_columns(row: Mapping[str, Any], summary: Mapping[str, Any], study_scale: str | None,
                cache: dict | None = None) -> dict:
    """The :data:`RUN_COLUMNS` of one trial from its frame row and summary.json (``cache``: the
    study load's cache of run files, :mod:`analysis.run_files`)."""
    config = summary.get("config") if isinstance(summary.get("config"), Mapping) else {}
    out = {"scale": config.get("scale") or study_scale,
           "iterations_planned": config.get("optim.iterations"),
           "batch_size": config.get("batch_size"),
           **ablation_facts(row, summary)}
    energies = None
    if row.get("state") != "COMPLETE":
        conv = Convergence(None, f"not measured: trial {str(row.get('state')).lower()}")
    else:
        energies = training_energies(row.get("run_dir"), cache)
        if energies is None:
            conv = Convergence(None, "not measured: no metrics.csv (training energies) for this trial")
        else:
            conv = assess(energies, _finite(row.get("energy")), _finite(row.get("energy_stderr")),
                          _finite(row.get("reference_energy")))
    out.update(conv.columns())
    out.update(stability_columns(energies))
    return out


def ablation_facts(row: Mapping[str, Any], summary: Mapping[str, Any]) -> dict:
    """``n_electrons`` (n_up + n_down of summary.json's ``electrons``) and ``energy_spikes`` (its
    count of training-energy spikes), falling back to the row's values of the same name; None when
    not recorded (runs written before the engine counted spikes)."""
    electrons = summary.get("electrons")
    n = sum(int(e) for e in electrons) if isinstance(electrons, Sequence) and electrons else row.get("n_electrons")
    spikes = summary.get("energy_spikes")
    spikes = row.get("energy_spikes") if spikes is None else spikes
    return {"n_electrons": _finite(n), "energy_spikes": _finite(spikes)}


def add_run_columns(frame: pd.DataFrame, metrics: dict | None = None) -> pd.DataFrame:
    """``frame`` with :data:`RUN_COLUMNS` appended (swept keys of the same name are kept as they are);
    ``metrics``: the study load's cache of run files (:mod:`analysis.run_files`), so each is read once."""
    study_scale = scale_from_overrides(frame.attrs.get("base_overrides"))
    rows = []
    for record in frame.to_dict("records"):
        run_dir = record.get("run_dir")
        record["run_dir"] = run_dir if isinstance(run_dir, str) and run_dir else None  # NaN in a frame
        rows.append(run_columns(record, read_summary(record["run_dir"], metrics), study_scale, metrics))
    extra = pd.DataFrame(rows, columns=list(RUN_COLUMNS), index=frame.index)
    extra["converged"] = extra["converged"].astype("boolean")
    for col in ("iterations_planned", "batch_size", "n_electrons", "energy_spikes", "tail_iterations", "tail_blocks"):
        extra[col] = pd.to_numeric(extra[col], errors="coerce").astype("Int64")
    new = [c for c in RUN_COLUMNS if c not in frame.columns]
    attrs = dict(frame.attrs)
    out = pd.concat([frame, extra[new]], axis=1)
    out.attrs.update(attrs)
    return out
