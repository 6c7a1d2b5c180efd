"""Training curves of every study: the smoothed training energy above the reference vs
iteration for every trial, the whole run, on a symmetric-log axis, with the smoothing window
stated. No claims (convergence is judged in :mod:`analysis.convergence`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..convergence import TAIL_FRACTION
from ..loaders import HARTREE_TO_MHA
from ..plotting import annotate, legend, new_figure
from ..points import CHEMICAL_ACCURACY_MHA, swept_keys, title_line, value_label, values_text
from ..study import FigureKind, FigureStudy


def smoothing_window(n_steps: int) -> int:
    """Trailing moving-average window (iterations): a tenth of the run, between 1 and 100."""
    return int(max(1, min(100, round(n_steps / 10))))


def trial_label(row: pd.Series, params: Sequence[str]) -> str:
    """``t3: width 32, depth 2, seed 0``: a trial's number and its swept values."""
    parts = [value_label(k, row[k]) for k in params if k in row.index and pd.notna(row[k])]
    return f"t{int(row['trial'])}" + (": " + ", ".join(parts) if parts else "")


MAX_LEGEND_TRIALS = 10  # more trials than this: lines coloured and labelled by their group
MAX_CURVE_POINTS = 2000  # plotted points per training curve (longer runs are thinned after smoothing)
SYMLOG_LINEAR_MHA = 1.0  # the training-curve axis is linear within ± this many mHa of the reference
CURVE_COLUMNS = ("trial", "system", "label", "group", "step", "energy", "energy_smoothed", "window", "reference_energy",
                 "error_smoothed_mha")


def training_curves_data(history: pd.DataFrame, window: int | None = None,
                         max_points: int = MAX_CURVE_POINTS) -> pd.DataFrame:
    """Smoothed training energy vs iteration for every trial, the whole run.

    Columns: ``trial``, ``system`` (one panel each), ``label`` (trial and swept values), ``group`` (the value of the first swept
    key other than seed, which colours the lines when there are many trials), ``step``, ``energy``
    (Hartree, raw), ``energy_smoothed`` (Hartree, trailing mean over ``window`` iterations; the
    first ``window - 1`` iterations average what there is), ``window``, ``reference_energy`` and
    ``error_smoothed_mha`` = 1000 (energy_smoothed - reference_energy) (NaN without a reference).
    Runs longer than ``max_points`` iterations are thinned to every k-th iteration (and the last)
    after smoothing, so the figure and its CSV stay small at paper scale.
    """
    columns = list(CURVE_COLUMNS)
    if history.empty or "energy" not in history:
        return pd.DataFrame(columns=columns)
    params = [k for k in swept_keys(history) if k in history.columns]
    group_key = next((k for k in params if k not in ("seed", "system")), None)
    pieces = []
    for _, run in history.groupby("trial", sort=True):
        run = run.sort_values("step")
        w = window or smoothing_window(len(run))
        energy = pd.to_numeric(run["energy"], errors="coerce")
        smoothed = energy.rolling(w, min_periods=1).mean().to_numpy(float)
        ref = (pd.to_numeric(run["reference_energy"], errors="coerce").to_numpy(float)
               if "reference_energy" in run else np.full(len(run), np.nan))
        keep = _thin(len(run), max_points)
        pieces.append(pd.DataFrame({
            "trial": run["trial"].to_numpy(),
            "system": str(run["system"].iloc[0]) if "system" in run and pd.notna(run["system"].iloc[0]) else "",
            "label": trial_label(run.iloc[0], [k for k in params if k != "system"]),
            "group": value_label(group_key, run[group_key].iloc[0]) if group_key else "all",
            "step": run["step"].to_numpy(),
            "energy": energy.to_numpy(float),
            "energy_smoothed": smoothed,
            "window": w,
            "reference_energy": ref,
            "error_smoothed_mha": (smoothed - ref) * HARTREE_TO_MHA,
        }).iloc[keep])
    data = pd.concat(pieces, ignore_index=True)[columns]
    data.attrs["title"] = title_line(history) if "state" in history else None
    return data


def _thin(n: int, max_points: int) -> np.ndarray:
    """Indices of every k-th of ``n`` rows (k so that at most ``max_points`` remain), plus the last."""
    stride = max(1, math.ceil(n / max_points))
    idx = np.arange(0, n, stride)
    return idx if n == 0 or idx[-1] == n - 1 else np.append(idx, n - 1)


def curves_caption(data: pd.DataFrame, above_reference: bool) -> str:
    """What the training-curve lines are: the quantity, the smoothing window, the axis."""
    windows = values_text(pd.to_numeric(data["window"], errors="coerce").dropna().unique())
    text = (f"Lines: training energy{' minus the reference' if above_reference else ''}, trailing mean over "
            f"{windows} iterations (a tenth of each run, at most 100); the whole run is shown")
    if above_reference:
        text += (f", on a symmetric log axis (linear within ±{SYMLOG_LINEAR_MHA:g} mHa, so energies below the "
                 f"reference show as negative). Grey band: chemical accuracy (< {CHEMICAL_ACCURACY_MHA:g} mHa).")
    else:
        text += " (no single reference energy: energies in Hartree on a linear axis)."
    return text


def draw_training_curves(data: pd.DataFrame):
    """One smoothed line per trial over its whole run, one panel per system (errors of different
    molecules are not compared on one axis).

    With a reference energy for every trial, y is the smoothed energy above it in mHa on a
    symmetric log axis (linear within ±1 mHa), the reference at 0 and the chemical-accuracy band
    above it; otherwise the smoothed energy in Hartree on a linear axis. Nothing is cropped.
    """
    systems = list(dict.fromkeys(data["system"])) if len(data) else [""]
    fig, axes = new_figure(ncols=len(systems), panel_size=(6.0, 3.2))
    above = len(data) > 0 and bool(np.isfinite(data["error_smoothed_mha"].to_numpy(float)).all())
    for ax, system in zip(axes, systems):
        draw_curves_panel(ax, data[data["system"] == system] if len(data) else data, above)
        if len(systems) > 1:
            ax.set_title(system, fontsize=8)
    annotate(fig, data.attrs.get("title"), curves_caption(data, above) if len(data) else None)
    return fig


def draw_curves_panel(ax, data: pd.DataFrame, above: bool) -> None:
    """The lines of one system's trials (see :func:`draw_training_curves`)."""
    from matplotlib import colormaps

    trials = list(dict.fromkeys(data["trial"]))
    per_trial = len(trials) <= MAX_LEGEND_TRIALS
    groups = list(dict.fromkeys(data["group"]))
    colour_of = trials if per_trial else groups
    cmap = colormaps["viridis"]
    column = "error_smoothed_mha" if above else "energy_smoothed"
    labelled: set = set()
    for trial in trials:
        run = data[data["trial"] == trial]
        key = trial if per_trial else run["group"].iloc[0]
        colour = cmap(colour_of.index(key) / max(1, len(colour_of) - 1) * 0.9)
        label = run["label"].iloc[0] if per_trial else (None if key in labelled else key)
        labelled.add(key)
        ax.plot(run["step"].to_numpy(float), run[column].to_numpy(float), lw=1.0,
                color=colour, label=label, gid=f"trial {trial}")
    if above:
        ax.set_yscale("symlog", linthresh=SYMLOG_LINEAR_MHA, linscale=0.5)
        ax.axhline(0.0, color="black", ls="--", lw=0.8, label="reference energy")
        ax.axhspan(0.0, CHEMICAL_ACCURACY_MHA, color="0.85", lw=0, zorder=0, label="chemical accuracy")
        ax.yaxis.set_major_formatter(_plain_formatter())
        ax.set_ylabel("E − E_ref (mHa)")
    else:
        refs = pd.unique(data["reference_energy"].dropna()) if len(data) else []
        if len(refs) == 1:
            ax.axhline(float(refs[0]), color="black", ls="--", lw=0.8, label="reference energy")
        ax.set_ylabel("energy (Ha)")
    lengths = data.groupby("trial")["step"].max() + 1 if len(data) else pd.Series(dtype=float)
    if len(lengths) and lengths.nunique() == 1:
        ax.axvline(float(lengths.iloc[0]) * (1 - TAIL_FRACTION), color="0.5", ls=":", lw=0.8,
                   label=f"convergence tail (last {TAIL_FRACTION:.0%})")
    ax.set_xlabel("training iteration")
    legend(ax, outside=True)


def _plain_formatter():
    """Tick labels as plain numbers (-10, 0, 1, 100)."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: f"{v:g}")


TRAINING_CURVES = FigureKind(
    "training_curves", "history", training_curves_data, draw_training_curves,
    "Training energy above the reference vs iteration for every trial, whole run, trailing mean "
    "(window on the figure), symmetric log axis.")
STUDY = FigureStudy("training_curves", (TRAINING_CURVES,), lambda trials: ["training_curves"],
                    lambda inputs, data: [])
