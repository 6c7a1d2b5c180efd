"""Paper-style drawing helpers (after Pfau et al., Phys. Rev. Research 2, 033429, 2020).

Figures are ``matplotlib.figure.Figure`` objects on the Agg canvas, made without pyplot (no
global state, nothing to close); matplotlib is imported inside the functions that draw, so that
importing :mod:`analysis` does not import it.

Every figure says what it shows without the report: a title line (system, scale, iterations,
walkers, seeds per point: :func:`analysis.points.title_line`), a caption line under the axes
saying what the points, lines and error bars are, error bars with caps drawn above the markers,
a legend entry for every series, and the chemical-accuracy band (< 1.6 mHa) shaded and labelled.
:func:`draw_error_figure` draws any error-vs-key data of :func:`analysis.points.error_data`.
"""

from __future__ import annotations

import math
import textwrap
from typing import Iterable

import numpy as np
import pandas as pd

from .points import AXIS_LABELS, CHEMICAL_ACCURACY_MHA, LOG2_KEYS, METRICS, error_caption


def new_figure(ncols: int = 1, nrows: int = 1, panel_size=(3.6, 2.7)):
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


def legend(ax, outside: bool = False) -> None:
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


def log2_x(ax, values: Iterable[float]) -> None:
    """Log2 x axis with a tick at every plotted value, labelled plainly (16, 32, ...)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ticks = sorted({float(v) for v in values})
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    if len(ticks) == 1:
        ax.set_xlim(ticks[0] / 1.5, ticks[0] * 1.5)


def integer_x(ax, values: Iterable[float]) -> None:
    """Linear x axis with a tick at every plotted integer value."""
    from matplotlib.ticker import FixedLocator

    ticks = sorted({float(v) for v in values})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    if len(ticks) == 1:
        ax.set_xlim(ticks[0] - 1, ticks[0] + 1)


def log_y_with_band(ax, low: np.ndarray, high: np.ndarray, band: bool) -> None:
    """Log y axis spanning the data (low..high, mHa) and, if ``band``, the shaded < 1.6 mHa region."""
    low = low[np.isfinite(low) & (low > 0)]
    high = high[np.isfinite(high) & (high > 0)]
    ax.set_yscale("log", nonpositive="clip")
    if low.size == 0 or high.size == 0:
        plain_log_labels(ax)
        return
    bottom, top = low.min() / 1.5, high.max() * 1.5
    if band:
        bottom = min(bottom, CHEMICAL_ACCURACY_MHA / 2)
        top = max(top, CHEMICAL_ACCURACY_MHA * 2)
    ax.set_ylim(bottom, top)
    plain_log_labels(ax)
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


def plain_log_labels(ax) -> None:
    """Log y tick labels as plain numbers (`plain_log_tick_labels` over the current y range)."""
    plain_log_tick_labels(ax.yaxis, *ax.get_ylim())
    ax.tick_params(axis="y", which="both", labelsize=8)


def _wrap(text: str, fig, per_inch: float = 17) -> str:
    """Wrap text to the figure width (about 17 characters per inch at 7 pt, 14 at 8.5 pt)."""
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


def annotate(fig, title: str | None, caption: str | None) -> None:
    """The title line above the axes and the caption line below them (both in the layout), and
    every axis label wrapped to its axis (:func:`fit_axis_labels`)."""
    if title:
        fig.suptitle(_wrap_title(title, fig), fontsize=8.5)
    if caption:
        fig.supxlabel(_wrap(caption, fig), fontsize=7, color="0.25")
    fit_axis_labels(fig)


def fit_axis_labels(fig, chars_per_point: float = 0.62) -> None:
    """Break every axis label longer than its axis into lines that fit it: a y label longer than
    the axes' height would otherwise run into the title above and the panel beside it, which the
    constrained layout does not prevent. (Character width is estimated as ``chars_per_point`` x
    the font size; :func:`overlapping_texts` checks the result.)"""
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        pos = ax.get_position()
        height_pt = pos.height * fig.get_figheight() * 72
        width_pt = pos.width * fig.get_figwidth() * 72
        for label, room in ((ax.yaxis.label, height_pt), (ax.xaxis.label, width_pt)):
            text = label.get_text().replace("\n", " ")
            per_line = max(12, int(room / (label.get_fontsize() * chars_per_point)))
            if text and len(text) > per_line:
                label.set_text("\n".join(textwrap.wrap(text, width=per_line, break_on_hyphens=False)))


def overlapping_texts(fig) -> list[tuple[str, str]]:
    """Pairs of drawn, non-empty texts of a figure whose boxes overlap (titles, axis and tick
    labels, legends, captions): a figure should have none. Tick labels count only for ticks inside
    their axis's view (matplotlib keeps the others, undrawn)."""
    from matplotlib.axis import Tick
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    tick_texts = {id(t) for ax in fig.axes for tick in ax.findobj(Tick) for t in (tick.label1, tick.label2)}
    drawn = [t for t in fig.findobj(Text) if id(t) not in tick_texts]
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            span = (high - low) * 1e-9
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if low - span <= tick.get_loc() <= high + span:
                    drawn += [t for t in (tick.label1, tick.label2) if t.get_visible()]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in drawn
             if t.get_visible() and t.get_text().strip() and (t.axes is None or t.axes.get_visible())]
    boxes = [(text, box) for text, box in boxes if box.width > 0 and box.height > 0]
    found = []
    for i, (text_a, a) in enumerate(boxes):
        for text_b, b in boxes[i + 1:]:
            if a.overlaps(b):
                found.append((text_a, text_b))
    return found


def draw_error_figure(data: pd.DataFrame, title: str | None = None):
    """Draw error-vs-key data (from :func:`analysis.points.error_data`): one panel per ``panel``,
    one errorbar line per ``series`` (label = series), clipped points marked with open triangles;
    the title line (``title``, else ``data.attrs["title"]``) above and the caption
    (:func:`analysis.points.error_caption`) below."""
    panels = list(dict.fromkeys(data["panel"]))
    ncols = min(2, max(1, len(panels)))
    nrows = max(1, math.ceil(len(panels) / ncols))
    fig, axes = new_figure(ncols=ncols, nrows=nrows, panel_size=(5.0, 2.8))  # room for the legend
    for ax, panel in zip(axes, panels):
        _draw_error_panel(ax, data[data["panel"] == panel], titled=len(panels) > 1)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if not panels:
        axes[0].text(0.5, 0.5, "no complete trials", ha="center", va="center", transform=axes[0].transAxes)
    annotate(fig, title or data.attrs.get("title"), error_caption(data) if len(data) else None)
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
        log2_x(ax, xs)
    else:
        integer_x(ax, xs)
    ys, errs = panel["y"].to_numpy(float), panel["yerr"].to_numpy(float)
    if metric.log and (ys > 0).all():
        log_y_with_band(ax, np.where(ys - errs > 0, ys - errs, ys), ys + errs, metric.chemical_band)
    ax.set_xlabel(AXIS_LABELS.get(x_name, x_name))
    ax.set_ylabel(metric.label)
    if titled:
        ax.set_title(f"{metric.label.split(' (')[0]} vs {AXIS_LABELS.get(x_name, x_name)}", fontsize=8)
    legend(ax, outside=True)
