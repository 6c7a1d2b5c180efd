"""Seed-aggregated points and the labels every study's figure data shares.

The error-vs-key data of the studies (columns :data:`ERROR_DATA_COLUMNS`, made by
:func:`error_data`) follows these conventions:

* y is the error vs the reference energy in mHa on a log axis (the energy in Hartree on a
  linear axis when no reference is known), with the chemical-accuracy band (< 1.6 mHa) shaded;
* seeds are aggregated: ``mean`` over seeds, error bar ``yerr`` = standard error of the mean over
  the seeds (their standard deviation, ddof 1, ``spread``, over sqrt(n)), never below the
  reblocked standard error of the mean (``stderr_combined``), or the reblocked standard error
  when one seed ran; the seeds' own values ride along (``seed_values``, ``seed_stderrs``) for the
  tests of :mod:`analysis.inference`;
* a mean error <= 0 (energy below the reference, i.e. noise) cannot go on a log axis: it is
  drawn at its error bar (``clipped`` True) with an open triangle marker, and the report says so;
* each point lists its ``trials`` and how many of them converged (``n_converged``,
  ``n_not_converged``, ``n_not_measured``; the definition is in :mod:`analysis.convergence`),
  the budget its trials share (``budget_iterations``, ``budget_walkers``, ``budget_scale``) and
  its error at mid-training and at the end of training (``mid_mean``, ``end_mean`` ± ``mid_err``,
  ``end_err``, mHa; :mod:`analysis.stability`), which the verdicts on comparisons read.

Also here: the swept-key vocabulary (grid keys, tuning keys, axis and legend names), the title
line of every figure (:func:`title_line`) and the caption of error-vs-key figures
(:func:`error_caption`). No matplotlib here (:mod:`analysis.plotting` draws).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .inference import Sample, format_values
from .loaders import HARTREE_TO_MHA, complete_trials
from .stability import STABILITY_COLUMNS, trial_budget


CHEMICAL_ACCURACY_MHA = 1.6
LOG_FLOOR_MHA = 1e-3  # where a clipped point without an error bar is drawn, mHa
NETWORK_KEYS = ("network.type", "network")
ARCHITECTURE_KEYS = ("network.width", "network.depth", "network.pairwise_width", "network.determinants",
                     "network.num_layers", "network.num_heads", "network.heads_dim")
SAMPLER_KEYS = ("mcmc.steps", "batch_size", "mcmc.adapt", "mcmc.move_width")
ABLATION_KEYS = ("optim", "network.distance_features", "mcmc.moves", "mcmc.method")
GRID_KEYS = (*ARCHITECTURE_KEYS, *NETWORK_KEYS, *SAMPLER_KEYS, *ABLATION_KEYS, "system", "seed")
LOG2_KEYS = ("network.width", "network.pairwise_width", "network.determinants", "network.heads_dim", "mcmc.steps",
             "batch_size")
AXIS_LABELS = {
    "network.width": "one-electron width",
    "network.depth": "layers (depth)",
    "network.pairwise_width": "two-electron width",
    "network.determinants": "determinants K",
    "network.num_layers": "attention layers",
    "network.num_heads": "attention heads",
    "network.heads_dim": "units per attention head",
    "mcmc.steps": "MCMC steps per iteration",
    "batch_size": "walkers (batch size)",
}
SERIES_NAMES = {
    "network.width": "width",
    "network.depth": "depth",
    "network.pairwise_width": "pairwise",
    "network.determinants": "K",
    "network.num_layers": "layers",
    "network.num_heads": "heads",
    "network.heads_dim": "head dim",
    "mcmc.steps": "steps",
    "batch_size": "batch",
    "mcmc.adapt": "adapt",
    "mcmc.move_width": "move width",
    "seed": "seed",
    "optim": "optimizer",
    "network.distance_features": "|r| features",
    "mcmc.moves": "moves",
    "mcmc.method": "sampler",
}
NETWORK_NAMES = {"ferminet": "FermiNet", "psiformer": "Psiformer", "slater_jastrow": "Slater–Jastrow"}
ERROR_DATA_COLUMNS = (
    "panel", "series", "x_name", "x", "y", "yerr", "y_name",
    "mean", "spread", "spread_kind", "stderr_combined", "n_seeds", "clipped",
    "trials", "n_converged", "n_not_converged", "n_not_measured", "not_converged",
    "budget_iterations", "budget_walkers", "budget_scale", "mid_mean", "mid_err", "end_mean", "end_err",
    "seed_values", "seed_stderrs", "mid_values", "mid_stderrs", "end_values", "end_stderrs", "n_lost", "lost",
)


@dataclass(frozen=True)
class Metric:
    """A plotted quantity: its trial-frame column, the column of its standard error, axis label."""

    column: str
    stderr: str | None
    label: str
    log: bool
    chemical_band: bool


ERROR = Metric("error_mha", "error_stderr_mha", "error vs exact (mHa)", log=True, chemical_band=True)
ENERGY = Metric("energy", "energy_stderr", "energy (Ha)", log=False, chemical_band=False)
ERROR_BAR = Metric("stderr_mha", None, "error bar of the energy (mHa)", log=True, chemical_band=False)
METRICS = {m.column: m for m in (ERROR, ENERGY, ERROR_BAR)}


def response_metric(trials: pd.DataFrame) -> Metric:
    """ERROR when any complete trial has a reference energy, else ENERGY."""
    done = trials[trials["state"] == "COMPLETE"]
    has_error = pd.to_numeric(done["error_mha"], errors="coerce").notna().any()
    return ERROR if has_error else ENERGY


def swept_keys(trials: pd.DataFrame) -> list[str]:
    """The swept parameter keys of a trial frame (``frame.attrs['params']``)."""
    return list(trials.attrs.get("params", []))


def tuning_keys(trials: pd.DataFrame) -> list[str]:
    """Swept keys that are not grid keys (optimiser settings and the like)."""
    return [k for k in swept_keys(trials) if k not in GRID_KEYS]


def series_keys(trials: pd.DataFrame, x: str) -> list[str]:
    """Keys that split the points at one x into lines: other grid keys that vary (not seed),
    and the ``network``/``system`` columns when they vary without being swept."""
    done = complete_trials(trials)
    keys = [k for k in swept_keys(trials) if k in GRID_KEYS and k not in (x, "seed")]
    for col in ("network", "system"):
        if col not in keys and not (col == "network" and any(k in keys for k in NETWORK_KEYS)):
            keys.append(col)
    return [k for k in keys if done[k].nunique(dropna=True) > 1]


def value_label(key: str, value) -> str:
    """How one series value reads in a legend (``depth 2``, ``FermiNet``, ``batch 256``)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if key in NETWORK_KEYS:
        return NETWORK_NAMES.get(str(value), str(value))
    if key == "system":
        return str(value)
    if key == "mcmc.adapt":
        return "adaptive moves" if bool(value) else "fixed moves"
    return f"{SERIES_NAMES.get(key, key)} {value}"


def series_label(keys: Sequence[str], values: Sequence) -> str:
    """Legend label of one line; ``all`` when there is a single line."""
    return ", ".join(value_label(k, v) for k, v in zip(keys, values)) or "all"


def aggregate_point(values: np.ndarray, stderrs: np.ndarray, log: bool) -> dict:
    """Aggregate the seeds of one point.

    Args:
        values: the metric of each seed (NaN entries ignored).
        stderrs: the reblocked standard error of each seed, same unit (may be NaN).
        log: whether the point goes on a log axis (then a mean <= 0 is clipped to its error bar).

    Returns:
        dict with ``mean``, ``spread`` (std of the seeds, ddof 1; the standard error for one seed),
        ``spread_kind``, ``stderr_combined`` (sqrt(sum stderr^2)/n), ``n_seeds``, the plotted
        ``y``, ``yerr`` (the standard error of the mean, :attr:`analysis.inference.Sample.sem`:
        ``spread / sqrt(n)``, never below ``stderr_combined``; the reblocked standard error for one
        seed; 0 when unknown) and ``clipped``, and the seeds themselves (``seed_values``,
        ``seed_stderrs``: space-separated, in trial order) that the tests read.
    """
    sample = Sample.of(values, stderrs)
    n = sample.n
    mean = sample.mean
    combined = sample.reblocked_sem
    if n > 1:
        spread, kind = sample.sd, "seed std"
    else:
        spread, kind = float(sample.stderrs[0]), "stderr"
    sem = sample.sem
    yerr = float(sem) if math.isfinite(sem) else 0.0
    y, clipped = mean, False
    if log and mean <= 0:
        y, clipped = (yerr if yerr > 0 else LOG_FLOOR_MHA), True
    return {"mean": mean, "spread": spread, "spread_kind": kind, "stderr_combined": combined,
            "n_seeds": n, "y": y, "yerr": yerr, "clipped": clipped,
            "seed_values": format_values(sample.values), "seed_stderrs": format_values(sample.stderrs)}


def error_data(trials: pd.DataFrame, x: str, metrics: Sequence[Metric] | None = None,
               label_keys: Sequence[str] = ()) -> pd.DataFrame:
    """Seed-aggregated metric(s) vs the swept key ``x``, one row per (panel, series, x).

    Uses complete trials only. ``metrics`` default to the response metric (error in mHa, or the
    energy when no reference is known); each metric is one panel named ``"<metric> vs <x>"``.
    ``label_keys`` are columns that always name the lines, even when they do not vary.
    Columns: :data:`ERROR_DATA_COLUMNS` plus the raw series-key columns.
    """
    done = complete_trials(trials).copy()
    done["stderr_mha"] = pd.to_numeric(done["energy_stderr"], errors="coerce") * HARTREE_TO_MHA
    metrics = list(metrics) if metrics else [response_metric(trials)]
    lost = lost_trials(trials)
    keys = series_keys(trials, x)
    keys += [k for k in label_keys if k not in keys and k in done.columns]
    rows = []
    for metric in metrics:
        usable = done[pd.to_numeric(done[metric.column], errors="coerce").notna() & done[x].notna()]
        if usable.empty:
            continue
        for group_values, group in usable.groupby([*keys, x], dropna=False, sort=True):
            *series_values, x_value = group_values
            values = pd.to_numeric(group[metric.column], errors="coerce").to_numpy(float)
            if metric.stderr:
                stderrs = pd.to_numeric(group[metric.stderr], errors="coerce").to_numpy(float)
            else:
                stderrs = np.full(values.shape, np.nan)
            point = aggregate_point(values, stderrs, metric.log)
            row = {"panel": f"{metric.column} vs {x}", "series": series_label(keys, series_values),
                   "x_name": x, "x": x_value, "y_name": metric.column, **point,
                   **point_facts(group, lost_at(lost, dict(zip([*keys, x], group_values))))}
            row.update(dict(zip(keys, series_values)))
            rows.append(row)
    columns = [*ERROR_DATA_COLUMNS, *keys]
    data = pd.DataFrame(rows, columns=columns)
    data.attrs["series_keys"] = keys
    data.attrs["title"] = title_line(trials)
    return data


def convergence_counts(group: pd.DataFrame) -> dict:
    """The trials of one point (``"3 7"``), how many converged, did not, or were not measured, and
    the numbers of those that did not (``not_converged``)."""
    trials = " ".join(str(int(t)) for t in group["trial"])
    if "converged" not in group:
        return {"trials": trials, "n_converged": 0, "n_not_converged": 0, "n_not_measured": len(group),
                "not_converged": ""}
    flags = group["converged"].astype("boolean")
    bad = flags.fillna(True).eq(False).to_numpy()
    return {"trials": trials, "n_converged": int(flags.fillna(False).sum()), "n_not_converged": int(bad.sum()),
            "n_not_measured": int(flags.isna().sum()),
            "not_converged": " ".join(str(int(t)) for t in group["trial"][bad])}


def point_facts(group: pd.DataFrame, lost: pd.DataFrame | None = None) -> dict:
    """What the verdicts need of one point's trials besides its mean: :func:`convergence_counts`,
    the budget they share (:func:`budget_facts`), their errors in the training windows
    (:func:`window_facts`) and the trials of the point that ended without a result (``n_lost``,
    ``lost``: :func:`lost_trials` at this point)."""
    lost = lost if lost is not None else group.iloc[0:0]
    return {**convergence_counts(group), **budget_facts(group), **window_facts(group),
            "n_lost": int(len(lost)), "lost": lost_text(lost) if len(lost) else ""}


def lost_at(lost: pd.DataFrame, named: Mapping) -> pd.DataFrame:
    """The rows of ``lost`` at one point: every named column equal (compared as text)."""
    if lost.empty:
        return lost
    mask = pd.Series(True, index=lost.index)
    for key, value in named.items():
        if key not in lost:
            continue
        mask &= lost[key].map(_same_value(value))
    return lost[mask]


def _same_value(value):
    text = str(float(value)) if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        else str(value)

    def same(other) -> bool:
        if isinstance(other, (int, float, np.integer, np.floating)) and not isinstance(other, bool):
            return str(float(other)) == text
        return str(other) == text
    return same


def budget_facts(group: pd.DataFrame) -> dict:
    """``budget_iterations`` and ``budget_walkers`` shared by the trials of one point (NaN when
    they differ or are unknown: such a point is never compared) and ``budget_scale`` (the scale
    preset when they share one, else empty)."""
    budgets = {trial_budget(row) for _, row in group.iterrows()}
    (iterations, walkers), = budgets if len(budgets) == 1 else {(None, None)}
    scales = {str(v) for v in group["scale"].dropna()} if "scale" in group else set()
    return {"budget_iterations": math.nan if iterations is None else iterations,
            "budget_walkers": math.nan if walkers is None else walkers,
            "budget_scale": scales.pop() if len(scales) == 1 else ""}


def window_facts(group: pd.DataFrame) -> dict:
    """Seed-aggregated error (mHa) in the mid-training and end windows of :mod:`analysis.stability`
    (``mid_mean``/``mid_err``, ``end_mean``/``end_err``; error bars as for the plotted points) and
    the seeds' window errors (``mid_values``/``mid_stderrs``, ``end_values``/``end_stderrs``);
    NaN (empty) unless every trial has both windows and a reference energy."""
    out = {**dict.fromkeys(("mid_mean", "mid_err", "end_mean", "end_err"), math.nan),
           **dict.fromkeys(("mid_values", "mid_stderrs", "end_values", "end_stderrs"), "")}
    if not set(STABILITY_COLUMNS) <= set(group.columns) or "reference_energy" not in group:
        return out
    reference = pd.to_numeric(group["reference_energy"], errors="coerce").to_numpy(float)
    for name in ("mid", "end"):
        energy = pd.to_numeric(group[f"{name}_energy"], errors="coerce").to_numpy(float)
        stderr = pd.to_numeric(group[f"{name}_stderr"], errors="coerce").to_numpy(float)
        errors = (energy - reference) * HARTREE_TO_MHA
        if errors.size and np.isfinite(errors).all():
            point = aggregate_point(errors, stderr * HARTREE_TO_MHA, log=False)
            out[f"{name}_mean"], out[f"{name}_err"] = point["mean"], point["yerr"]
            out[f"{name}_values"], out[f"{name}_stderrs"] = point["seed_values"], point["seed_stderrs"]
    return out


def values_text(values: Sequence, unit: str = "") -> str | None:
    """``2000 iterations`` or ``300–2000 iterations`` for numbers, ``LiH, H2`` for names; None if empty."""
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None
    try:
        nums = sorted({float(v) for v in vals})
    except (TypeError, ValueError):
        return ", ".join(dict.fromkeys(str(v) for v in vals)) + unit
    text = f"{nums[0]:g}" if len(nums) == 1 else f"{nums[0]:g}–{nums[-1]:g}"
    return text + unit


LOST_STATES = ("FAIL", "PRUNED")


def lost_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials that ended without a result (FAIL, including diverged runs, or PRUNED) at a grid point
    and seed that has no COMPLETE trial: what a claim over that point lost, and must say."""
    if trials.empty or "state" not in trials:
        return trials.iloc[0:0]
    keys = [k for k in swept_keys(trials) if k in trials.columns]
    if "seed" not in keys and "seed" in trials.columns:
        keys.append("seed")
    bad = trials[trials["state"].isin(LOST_STATES)]
    if bad.empty or not keys:
        return bad
    done = {tuple(str(v) for v in row) for row in complete_trials(trials)[keys].itertuples(index=False)}
    mask = [tuple(str(v) for v in row) not in done for row in bad[keys].itertuples(index=False)]
    lost = bad[mask]
    return lost.drop_duplicates(keys, keep="last") if len(lost) else lost


def lost_text(lost: pd.DataFrame) -> str:
    """``t5 FAIL (diverged: energy NaN at iteration 120), t7 PRUNED``."""
    parts = []
    for _, r in lost.sort_values("trial").iterrows():
        reason = r.get("reason")
        why = f" ({str(reason)[:80]})" if isinstance(reason, str) and reason else ""
        parts.append(f"t{int(r['trial'])} {r['state']}{why}")
    return ", ".join(parts)


def seeds_per_point(trials: pd.DataFrame) -> list[int]:
    """Complete trials (seeds) at each grid point: the swept keys other than ``seed``."""
    done = complete_trials(trials)
    keys = [k for k in swept_keys(trials) if k != "seed" and k in done.columns]
    if done.empty:
        return []
    if not keys:
        return [len(done)]
    return [int(n) for n in done.groupby(keys, dropna=False).size()]


def title_line(frame: pd.DataFrame) -> str:
    """``LiH · quick scale · 2000 iterations · 256 walkers · 2 seeds per point`` from the complete
    trials of a trial frame (a history frame works too: iterations from its steps)."""
    done = complete_trials(frame) if "run_dir" in frame else frame[frame["state"] == "COMPLETE"]
    parts = []
    if "system" in done:
        parts.append(values_text(done["system"].dropna().unique()))
    if "scale" in done:
        scale = values_text(done["scale"].dropna().unique())
        parts.append(f"{scale} scale" if scale else "scale not recorded")
    if "iterations" in done:
        parts.append(values_text(pd.to_numeric(done["iterations"], errors="coerce").dropna().unique(), " iterations"))
    elif "step" in done and len(done):
        parts.append(values_text((done.groupby("trial")["step"].max() + 1).unique(), " iterations"))
    if "batch_size" in done:
        parts.append(values_text(pd.to_numeric(done["batch_size"], errors="coerce").dropna().unique(), " walkers"))
    if "run_dir" in frame:
        seeds = seeds_per_point(frame)
        if seeds:
            n = values_text(seeds)
            parts.append(f"{n} seed{'s' if max(seeds) > 1 else ''} per point")
    elif "seed" in done and len(done):
        n = done.groupby("trial")["seed"].first().nunique()
        parts.append(f"{n} seed{'s' if n > 1 else ''}")
    return " · ".join(p for p in parts if p)


def error_caption(data: pd.DataFrame) -> str:
    """What the points and error bars of error-vs-key data are, in one or two sentences."""
    seeds = pd.to_numeric(data["n_seeds"], errors="coerce").dropna().astype(int)
    if seeds.empty:
        return ""
    if seeds.min() >= 2:
        seeds_txt = values_text(seeds.unique())
        text = (f"Points: mean over {seeds_txt} seeds; error bars: standard error of that mean "
                "(seed standard deviation / sqrt(seeds), at least the reblocked standard error of the mean).")
    elif seeds.max() == 1:
        text = ("Points: one run each; error bars: reblocked (autocorrelation-corrected) standard error of "
                "its evaluated energy; seed-to-seed scatter not measured.")
    else:
        text = ("Points: mean over the seeds run (1 at some points); error bars: standard error of that mean, "
                "or the reblocked standard error where one seed ran.")
    if (data["y_name"] == ERROR.column).any():
        text += f" Grey band: chemical accuracy (< {CHEMICAL_ACCURACY_MHA:g} mHa)."
    if data["clipped"].astype(bool).any():
        text += " Open triangles: mean error <= 0, drawn at its error bar."
    if "n_converged" in data:
        points = data.drop_duplicates("trials") if "trials" in data else data
        total = int(points[["n_converged", "n_not_converged", "n_not_measured"]].to_numpy().sum())
        if total:
            text += f" Converged: {int(points['n_converged'].sum())} of {total} trials."
    return text


def short_key(key: str) -> str:
    return SERIES_NAMES.get(key, key.rsplit(".", 1)[-1])


def short_value(value) -> str:
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return str(int(value)) if value.is_integer() else f"{value:.3g}"
    return str(value)


def point_label(row: pd.Series, keys) -> str:
    """``width 64 x depth 2`` (the swept values other than the seed), or ``t3`` without any."""
    parts = [f"{short_key(k)} {short_value(row[k])}" for k in keys if k != "seed" and k in row.index and pd.notna(row[k])]
    return " x ".join(parts) or f"t{int(row['trial'])}"


def varying_keys(trials: pd.DataFrame, rows: pd.DataFrame) -> list[str]:
    """The swept keys (not the seed) that take more than one value among ``rows`` (for labels)."""
    return [k for k in swept_keys(trials) if k != "seed" and k in rows and rows[k].nunique(dropna=True) > 1]
