"""Paper-style figures (after Pfau et al., Phys. Rev. Research 2, 033429, 2020).

Every figure kind has a ``<kind>_data(frame) -> DataFrame`` function giving the tidy data
exactly as plotted (the CSV written next to the figure) and a ``<kind>_figure(frame) -> Figure``
function that draws that data. Figures are ``matplotlib.figure.Figure`` objects on the Agg
canvas, made without pyplot (no global state, nothing to close); matplotlib is imported only
when a figure is drawn.

Conventions of the error-vs-key figures (data columns in :data:`ERROR_DATA_COLUMNS`):

* y is the error vs the reference energy in mHa on a log axis (the energy in Hartree on a
  linear axis when no reference is known), with the chemical-accuracy band (< 1.6 mHa) shaded;
* seeds are aggregated: ``mean`` over seeds, error bar ``yerr`` = standard deviation of the
  seeds (ddof 1, ``spread``), never below the reblocked standard error of the mean
  (``stderr_combined``), or the reblocked standard error when one seed ran;
* a mean error <= 0 (energy below the reference, i.e. noise) cannot go on a log axis: it is
  drawn at its error bar (``clipped`` True) with an open triangle marker, and the report says so;
* each point lists its ``trials`` and how many of them converged (``n_converged``,
  ``n_not_converged``, ``n_not_measured``; the definition is in :mod:`analysis.convergence`).

Every figure says what it shows without the report: a title line (system, scale, iterations,
walkers, seeds per point: :func:`title_line`), a caption line under the axes saying what the
points, lines and error bars are, error bars with caps drawn above the markers, a legend entry
for every series, and the chemical-accuracy band (< 1.6 mHa) shaded and labelled. Training curves
show the whole run as the smoothed energy above the reference on a symmetric-log axis and state
their smoothing window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .loaders import HARTREE_TO_MHA, complete_trials

CHEMICAL_ACCURACY_MHA = 1.6
LOG_FLOOR_MHA = 1e-3  # where a clipped point without an error bar is drawn, mHa

NETWORK_KEYS = ("network.type", "network")
ARCHITECTURE_KEYS = ("network.width", "network.depth", "network.pairwise_width", "network.determinants")
SAMPLER_KEYS = ("mcmc.steps", "batch_size", "mcmc.adapt", "mcmc.move_width")
# The talk's other ablations (issue 9, analysis/ablations.py): categorical grid axes, not tuning keys.
ABLATION_KEYS = ("optim", "network.distance_features", "mcmc.moves", "mcmc.method")
# Swept keys that define grid points (lines or x axes); any other swept key is a tuning key.
GRID_KEYS = (*ARCHITECTURE_KEYS, *NETWORK_KEYS, *SAMPLER_KEYS, *ABLATION_KEYS, "system", "seed")
LOG2_KEYS = ("network.width", "network.pairwise_width", "network.determinants", "mcmc.steps", "batch_size")

AXIS_LABELS = {
    "network.width": "one-electron width",
    "network.depth": "layers (depth)",
    "network.pairwise_width": "two-electron width",
    "network.determinants": "determinants K",
    "mcmc.steps": "MCMC steps per iteration",
    "batch_size": "walkers (batch size)",
}
SERIES_NAMES = {
    "network.width": "width",
    "network.depth": "depth",
    "network.pairwise_width": "pairwise",
    "network.determinants": "K",
    "mcmc.steps": "steps",
    "batch_size": "batch",
    "mcmc.adapt": "adapt",
    "mcmc.move_width": "move width",
    "seed": "seed",
    "optim": "optimizer",  # issue 9
    "network.distance_features": "|r| features",
    "mcmc.moves": "moves",
    "mcmc.method": "sampler",
}
NETWORK_NAMES = {"ferminet": "FermiNet", "slater_jastrow": "Slater–Jastrow"}

ERROR_DATA_COLUMNS = (
    "panel", "series", "x_name", "x", "y", "yerr", "y_name",
    "mean", "spread", "spread_kind", "stderr_combined", "n_seeds", "clipped",
    "trials", "n_converged", "n_not_converged", "n_not_measured", "not_converged",
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


# ----------------------------------------------------------------------------- matplotlib


def _new_figure(ncols: int = 1, nrows: int = 1, panel_size=(3.6, 2.7)):
    """A constrained-layout Figure on the Agg canvas and its axes (flat list), clean style."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained", dpi=100)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(nrows * ncols)]
    for ax in axes:
        _clean_axes(ax)
    return fig, axes


def _clean_axes(ax) -> None:
    """Paper style: no top/right spines, outward ticks, small fonts."""
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.tick_params(direction="out", labelsize=8, length=3)
    ax.xaxis.label.set_size(9)
    ax.yaxis.label.set_size(9)


LEGEND_TEXT = {"all": "all trials", "chemical accuracy": f"chemical accuracy (< {CHEMICAL_ACCURACY_MHA:g} mHa)"}


def _legend(ax, outside: bool = False) -> None:
    """A frameless small legend of every labelled artist (the single line ``all`` reads
    ``all trials``, the band says its threshold); ``outside`` puts it right of the axes."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    where = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)} if outside else {"loc": "best"}
    ax.legend(handles, [LEGEND_TEXT.get(lab, lab) for lab in labels], fontsize=6.5, frameon=False,
              handlelength=1.5, ncols=2 if len(handles) > 12 else 1, **where)


def raise_error_bars(container) -> None:
    """Draw an errorbar container's bars and caps above its markers (markers white-filled), so a
    bar shorter than the marker still shows."""
    line, caps, bars = container.lines
    line.set_zorder(2.5)
    for artist in (*caps, *bars):
        artist.set_zorder(3)


def _log2_x(ax, values: Iterable[float]) -> None:
    """Log2 x axis with a tick at every plotted value, labelled plainly (16, 32, ...)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ticks = sorted({float(v) for v in values})
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    if len(ticks) == 1:
        ax.set_xlim(ticks[0] / 1.5, ticks[0] * 1.5)


def _integer_x(ax, values: Iterable[float]) -> None:
    """Linear x axis with a tick at every plotted integer value."""
    from matplotlib.ticker import FixedLocator

    ticks = sorted({float(v) for v in values})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    if len(ticks) == 1:
        ax.set_xlim(ticks[0] - 1, ticks[0] + 1)


def _log_y_with_band(ax, low: np.ndarray, high: np.ndarray, band: bool) -> None:
    """Log y axis spanning the data (low..high, mHa) and, if ``band``, the shaded < 1.6 mHa region."""
    low = low[np.isfinite(low) & (low > 0)]
    high = high[np.isfinite(high) & (high > 0)]
    ax.set_yscale("log", nonpositive="clip")
    if low.size == 0 or high.size == 0:
        _plain_log_labels(ax)
        return
    bottom, top = low.min() / 1.5, high.max() * 1.5
    if band:
        bottom = min(bottom, CHEMICAL_ACCURACY_MHA / 2)
        top = max(top, CHEMICAL_ACCURACY_MHA * 2)
    ax.set_ylim(bottom, top)
    _plain_log_labels(ax)
    if band:
        ax.axhspan(bottom, CHEMICAL_ACCURACY_MHA, color="0.85", zorder=0, lw=0, label="chemical accuracy")


def plain_log_tick_labels(axis, low: float, high: float) -> None:
    """Tick labels of a log `axis` (``ax.xaxis`` or ``ax.yaxis``) spanning [low, high] as plain
    numbers (0.2, 1, 10); minor ticks 2, 3, 5 labelled too when it spans less than 1.5 decades,
    so a narrow range still has numbers on it."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    if low > 0 and math.log10(high / low) < 1.5:
        def minor(v, _pos):
            mantissa = round(v / 10 ** math.floor(math.log10(v))) if v > 0 else 0
            return f"{v:g}" if mantissa in (2, 3, 5) else ""

        axis.set_minor_formatter(FuncFormatter(minor))
    else:
        axis.set_minor_formatter(NullFormatter())


def _plain_log_labels(ax) -> None:
    """Log y tick labels as plain numbers (`plain_log_tick_labels` over the current y range)."""
    plain_log_tick_labels(ax.yaxis, *ax.get_ylim())
    ax.tick_params(axis="y", which="both", labelsize=8)


# ----------------------------------------------------------------------------- aggregation


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


def _value_label(key: str, value) -> str:
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
    return ", ".join(_value_label(k, v) for k, v in zip(keys, values)) or "all"


def aggregate_point(values: np.ndarray, stderrs: np.ndarray, log: bool) -> dict:
    """Aggregate the seeds of one point.

    Args:
        values: the metric of each seed (NaN entries ignored).
        stderrs: the reblocked standard error of each seed, same unit (may be NaN).
        log: whether the point goes on a log axis (then a mean <= 0 is clipped to its error bar).

    Returns:
        dict with ``mean``, ``spread`` (std of the seeds, ddof 1; the standard error for one seed),
        ``spread_kind``, ``stderr_combined`` (sqrt(sum stderr^2)/n), ``n_seeds``, and the plotted
        ``y``, ``yerr`` (``spread``, but never below ``stderr_combined``: two seeds that agree by
        chance do not make a point more precise than its Monte Carlo noise; 0 when unknown) and
        ``clipped``.
    """
    ok = np.isfinite(values)
    values, stderrs = values[ok], stderrs[ok]
    n = int(values.size)
    mean = float(values.mean())
    known = stderrs[np.isfinite(stderrs)]
    combined = float(math.sqrt((known**2).sum()) / n) if known.size == n else math.nan
    if n > 1:
        spread, kind = float(values.std(ddof=1)), "seed std"
    else:
        spread, kind = float(stderrs[0]), "stderr"
    yerr = float(np.nanmax([spread, combined, 0.0]))  # NaN (unknown) entries ignored
    y, clipped = mean, False
    if log and mean <= 0:
        y, clipped = (yerr if yerr > 0 else LOG_FLOOR_MHA), True
    return {"mean": mean, "spread": spread, "spread_kind": kind, "stderr_combined": combined,
            "n_seeds": n, "y": y, "yerr": yerr, "clipped": clipped}


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
                   "x_name": x, "x": x_value, "y_name": metric.column, **point, **convergence_counts(group)}
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


# ----------------------------------------------------------------------------- title and caption


def _values_text(values: Sequence, unit: str = "") -> str | None:
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
        parts.append(_values_text(done["system"].dropna().unique()))
    if "scale" in done:
        scale = _values_text(done["scale"].dropna().unique())
        parts.append(f"{scale} scale" if scale else "scale not recorded")
    if "iterations" in done:
        parts.append(_values_text(pd.to_numeric(done["iterations"], errors="coerce").dropna().unique(), " iterations"))
    elif "step" in done and len(done):
        parts.append(_values_text((done.groupby("trial")["step"].max() + 1).unique(), " iterations"))
    if "batch_size" in done:
        parts.append(_values_text(pd.to_numeric(done["batch_size"], errors="coerce").dropna().unique(), " walkers"))
    if "run_dir" in frame:
        seeds = seeds_per_point(frame)
        if seeds:
            n = _values_text(seeds)
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
        seeds_txt = _values_text(seeds.unique())
        text = (f"Points: mean over {seeds_txt} seeds; error bars: standard deviation of the seeds "
                "(at least the reblocked standard error of the mean).")
    elif seeds.max() == 1:
        text = ("Points: one run each; error bars: reblocked (autocorrelation-corrected) standard error of "
                "its evaluated energy; seed-to-seed scatter not measured.")
    else:
        text = ("Points: mean over the seeds run (1 at some points); error bars: standard deviation of the "
                "seeds, or the reblocked standard error where one seed ran.")
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


def _wrap(text: str, fig, per_inch: float = 17) -> str:
    """Wrap text to the figure width (about 17 characters per inch at 7 pt, 14 at 8.5 pt)."""
    import textwrap

    width = max(30, int(fig.get_figwidth() * per_inch))
    return "\n".join(textwrap.wrap(text, width=width, break_on_hyphens=False))


def _wrap_title(title: str, fig) -> str:
    """The title line, broken between its `` · `` parts when it is wider than the figure."""
    width, lines = max(30, int(fig.get_figwidth() * 14)), [""]
    for part in title.split(" · "):
        joined = f"{lines[-1]} · {part}" if lines[-1] else part
        if len(joined) > width and lines[-1]:
            lines.append(part)
        else:
            lines[-1] = joined
    return "\n".join(lines)


def _annotate(fig, title: str | None, caption: str | None) -> None:
    """The title line above the axes and the caption line below them (both in the layout)."""
    if title:
        fig.suptitle(_wrap_title(title, fig), fontsize=8.5)
    if caption:
        fig.supxlabel(_wrap(caption, fig), fontsize=7, color="0.25")


def draw_error_figure(data: pd.DataFrame, title: str | None = None):
    """Draw error-vs-key data (from :func:`error_data`): one panel per ``panel``, one errorbar
    line per ``series`` (label = series), clipped points marked with open triangles; the title line
    (``title``, else ``data.attrs["title"]``) above and the caption (:func:`error_caption`) below."""
    panels = list(dict.fromkeys(data["panel"]))
    ncols = min(2, max(1, len(panels)))
    nrows = max(1, math.ceil(len(panels) / ncols))
    fig, axes = _new_figure(ncols=ncols, nrows=nrows, panel_size=(5.0, 2.8))  # room for the legend
    for ax, panel in zip(axes, panels):
        _draw_error_panel(ax, data[data["panel"] == panel], titled=len(panels) > 1)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if not panels:
        axes[0].text(0.5, 0.5, "no complete trials", ha="center", va="center", transform=axes[0].transAxes)
    _annotate(fig, title or data.attrs.get("title"), error_caption(data) if len(data) else None)
    return fig


def _draw_error_panel(ax, panel: pd.DataFrame, titled: bool) -> None:
    """One panel of an error-vs-key figure."""
    x_name = panel["x_name"].iloc[0]
    metric = METRICS[panel["y_name"].iloc[0]]
    for series in dict.fromkeys(panel["series"]):
        line = panel[panel["series"] == series].sort_values("x")
        container = ax.errorbar(line["x"].to_numpy(float), line["y"].to_numpy(float),
                                yerr=line["yerr"].to_numpy(float), marker="o", ms=4, mfc="white", mew=1.0,
                                lw=1.2, capsize=3, capthick=1.0, elinewidth=1.0, label=series)
        raise_error_bars(container)
    clipped = panel[panel["clipped"].astype(bool)]
    if not clipped.empty:
        ax.plot(clipped["x"].to_numpy(float), clipped["y"].to_numpy(float), ls="none", marker="v", ms=6,
                mfc="white", mec="black", mew=0.8, zorder=5, label="error ≤ 0: drawn at its error bar")
    xs = panel["x"].to_numpy(float)
    if x_name in LOG2_KEYS and (xs > 0).all():
        _log2_x(ax, xs)
    else:
        _integer_x(ax, xs)
    ys, errs = panel["y"].to_numpy(float), panel["yerr"].to_numpy(float)
    if metric.log and (ys > 0).all():
        _log_y_with_band(ax, np.where(ys - errs > 0, ys - errs, ys), ys + errs, metric.chemical_band)
    ax.set_xlabel(AXIS_LABELS.get(x_name, x_name))
    ax.set_ylabel(metric.label)
    if titled:
        ax.set_title(f"{metric.label.split(' (')[0]} vs {AXIS_LABELS.get(x_name, x_name)}", fontsize=8)
    _legend(ax, outside=True)


# ----------------------------------------------------------------------------- kinds: architecture


def width_depth_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Error vs one-electron width, one line per depth (the paper's width-versus-depth figure)."""
    return error_data(trials, "network.width")


def width_depth_figure(trials: pd.DataFrame):
    """Figure of :func:`width_depth_data`."""
    return draw_error_figure(width_depth_data(trials))


def width_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Error vs one-electron width (network.width)."""
    return error_data(trials, "network.width")


def width_figure(trials: pd.DataFrame):
    """Figure of :func:`width_data`."""
    return draw_error_figure(width_data(trials))


def depth_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Error vs number of layers (network.depth)."""
    return error_data(trials, "network.depth")


def depth_figure(trials: pd.DataFrame):
    """Figure of :func:`depth_data`."""
    return draw_error_figure(depth_data(trials))


def pairwise_width_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Error vs two-electron width (network.pairwise_width)."""
    return error_data(trials, "network.pairwise_width")


def pairwise_width_figure(trials: pd.DataFrame):
    """Figure of :func:`pairwise_width_data`."""
    return draw_error_figure(pairwise_width_data(trials))


def determinants_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Error vs number of determinants K; one line per ansatz (FermiNet, Slater–Jastrow), named
    even when only one of them ran."""
    swept_network = [k for k in NETWORK_KEYS if k in swept_keys(trials)]
    return error_data(trials, "network.determinants", label_keys=swept_network[:1] or ["network"])


def determinants_figure(trials: pd.DataFrame):
    """Figure of :func:`determinants_data` (log2 K axis)."""
    return draw_error_figure(determinants_data(trials))


# ----------------------------------------------------------------------------- kinds: sampler


def sampler_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Error and its autocorrelation-corrected (reblocked) error bar vs MCMC steps and batch size.

    One pair of panels per swept sampler key among ``mcmc.steps`` and ``batch_size``; the error-bar
    panel's y is the seeds' mean reblocked standard error of the energy in mHa.
    """
    pieces = [error_data(trials, x, [response_metric(trials), ERROR_BAR])
              for x in ("mcmc.steps", "batch_size") if x in swept_keys(trials)]
    pieces = [p for p in pieces if not p.empty]
    if not pieces:
        return pd.DataFrame(columns=ERROR_DATA_COLUMNS)
    return pd.concat(pieces, ignore_index=True)


def sampler_figure(trials: pd.DataFrame):
    """Figure of :func:`sampler_data`."""
    return draw_error_figure(sampler_data(trials))


# ----------------------------------------------------------------------------- kinds: tuning


def importances_figure(importances: pd.DataFrame):
    """Horizontal bars of Optuna parameter importances (frame ``param, importance``), largest on top."""
    fig, (ax,) = _new_figure(panel_size=(4.6, 1.5 + 0.35 * max(2, len(importances))))  # + title and caption
    order = importances.reset_index(drop=True)
    positions = np.arange(len(order))[::-1]
    ax.barh(positions, order["importance"].to_numpy(float), color="C0", height=0.6, label="importance")
    ax.set_yticks(positions, labels=list(order["param"]))
    ax.set_xlabel("importance (normalised)")
    _annotate(fig, importances.attrs.get("title"),
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


def optimization_history_figure(trials: pd.DataFrame):
    """Objective vs trial number (dots) with the best-so-far staircase."""
    return draw_optimization_history(optimization_history_data(trials))


def draw_optimization_history(data: pd.DataFrame):
    """Draw :func:`optimization_history_data`; log y for an objective in mHa when all values > 0."""
    fig, (ax,) = _new_figure(panel_size=(4.2, 2.8))
    x, y, best = (data[c].to_numpy(float) for c in ("trial", "value", "best_so_far"))
    ax.plot(x, y, ls="none", marker="o", ms=4, color="C0", alpha=0.8, label="trial")
    ax.plot(x, best, drawstyle="steps-post", color="C3", lw=1.2, label="best so far")
    objective = str(data["objective"].iloc[0]) if len(data) else "value"
    if len(data) and objective.endswith("_mha") and (y > 0).all():
        _log_y_with_band(ax, y, y, band=True)
    ax.set_xlabel("trial")
    ax.set_ylabel("error vs exact (mHa)" if objective == "error_mha" else objective)
    _legend(ax)
    _annotate(fig, data.attrs.get("title"),
              f"Dots: the objective ({objective}) of each complete trial, single runs without error bars; "
              "line: the best value so far.")
    return fig


# ----------------------------------------------------------------------------- kinds: training curves


def smoothing_window(n_steps: int) -> int:
    """Trailing moving-average window (iterations): a tenth of the run, between 1 and 100."""
    return int(max(1, min(100, round(n_steps / 10))))


def trial_label(row: pd.Series, params: Sequence[str]) -> str:
    """``t3: width 32, depth 2, seed 0``: a trial's number and its swept values."""
    parts = [_value_label(k, row[k]) for k in params if k in row.index and pd.notna(row[k])]
    return f"t{int(row['trial'])}" + (": " + ", ".join(parts) if parts else "")


MAX_LEGEND_TRIALS = 10  # more trials than this: lines coloured and labelled by their group
MAX_CURVE_POINTS = 2000  # plotted points per training curve (longer runs are thinned after smoothing)
SYMLOG_LINEAR_MHA = 1.0  # the training-curve axis is linear within ± this many mHa of the reference
CURVE_COLUMNS = ("trial", "label", "group", "step", "energy", "energy_smoothed", "window", "reference_energy",
                 "error_smoothed_mha")


def training_curves_data(history: pd.DataFrame, window: int | None = None,
                         max_points: int = MAX_CURVE_POINTS) -> pd.DataFrame:
    """Smoothed training energy vs iteration for every trial, the whole run.

    Columns: ``trial``, ``label`` (trial and swept values), ``group`` (the value of the first swept
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
    group_key = next((k for k in params if k != "seed"), None)
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
            "label": trial_label(run.iloc[0], params),
            "group": _value_label(group_key, run[group_key].iloc[0]) if group_key else "all",
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


def training_curves_figure(history: pd.DataFrame, trials: pd.DataFrame | None = None):
    """Figure of :func:`training_curves_data` (history from ``load_history``; pass the trial frame
    for the full title line: scale and walkers are not in the history)."""
    data = training_curves_data(history)
    if trials is not None:
        data.attrs["title"] = title_line(trials)
    return draw_training_curves(data)


def curves_caption(data: pd.DataFrame, above_reference: bool) -> str:
    """What the training-curve lines are: the quantity, the smoothing window, the axis."""
    windows = _values_text(pd.to_numeric(data["window"], errors="coerce").dropna().unique())
    text = (f"Lines: training energy{' minus the reference' if above_reference else ''}, trailing mean over "
            f"{windows} iterations (a tenth of each run, at most 100); the whole run is shown")
    if above_reference:
        text += (f", on a symmetric log axis (linear within ±{SYMLOG_LINEAR_MHA:g} mHa, so energies below the "
                 f"reference show as negative). Grey band: chemical accuracy (< {CHEMICAL_ACCURACY_MHA:g} mHa).")
    else:
        text += " (no single reference energy: energies in Hartree on a linear axis)."
    return text


def draw_training_curves(data: pd.DataFrame):
    """One smoothed line per trial over its whole run.

    With a reference energy for every trial, y is the smoothed energy above it in mHa on a
    symmetric log axis (linear within ±1 mHa), the reference at 0 and the chemical-accuracy band
    above it; otherwise the smoothed energy in Hartree on a linear axis. Nothing is cropped.
    """
    from matplotlib import colormaps

    fig, (ax,) = _new_figure(panel_size=(6.0, 3.2))
    trials = list(dict.fromkeys(data["trial"]))
    per_trial = len(trials) <= MAX_LEGEND_TRIALS
    groups = list(dict.fromkeys(data["group"]))
    colour_of = trials if per_trial else groups
    cmap = colormaps["viridis"]
    above = len(data) > 0 and bool(np.isfinite(data["error_smoothed_mha"].to_numpy(float)).all())
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
        from .convergence import TAIL_FRACTION

        ax.axvline(float(lengths.iloc[0]) * (1 - TAIL_FRACTION), color="0.5", ls=":", lw=0.8,
                   label=f"convergence tail (last {TAIL_FRACTION:.0%})")
    ax.set_xlabel("training iteration")
    _legend(ax, outside=True)
    _annotate(fig, data.attrs.get("title"), curves_caption(data, above) if len(data) else None)
    return fig


def _plain_formatter():
    """Tick labels as plain numbers (-10, 0, 1, 100)."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: f"{v:g}")
