"""Cost study (every study with recorded costs): error against training FLOPs and device-hours,
and the Pareto front.

The cost columns of the trial frame come from each run's summary.json (or the trial's user
attributes), measured by ``ablate.vmc.cost``: ``training_flops`` (XLA's count of one training
iteration x iterations), ``device_seconds`` (devices x wall seconds of the run's phases) and
``flops_per_iteration``. Pareto figures plot every complete trial's error (mHa, log axis; the
energy in Hartree when no reference is known) against one cost, and mark the Pareto-optimal
trials: those no other trial *of the same system* beats on both the mean error and the cost
(error bars are drawn but not used to build the front). Errors of different molecules are not
comparable, so a study over several systems gets one front, one panel and one note per system. The report lists the front and, for each trial on it, the
dominated trial it saves most against ("width 64 x depth 2 reaches 3.47 mHa at 40% of the
training FLOPs of width 32 x depth 4").
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Mapping

import numpy as np
import pandas as pd

from ..loaders import complete_trials
from ..plotting import new_figure, plain_log_labels
from ..points import CHEMICAL_ACCURACY_MHA, point_label, response_metric, varying_keys
from ..study import FigureKind, FigureStudy
from ..verdicts import Claim, NOTE


SECONDS_PER_HOUR = 3600.0
COSTS = {
    "training_flops": ("total training FLOPs", "training FLOPs"),
    "device_hours": ("device-hours (devices x wall time)", "device-hours"),
}
PARETO_COLUMNS = ("trial", "system", "label", "x_name", "x", "y_name", "y", "yerr", "y_plot", "at_error_bar", "pareto")
MAX_COMPARISONS = 5  # sentences per cost axis in the report


def pareto_mask(cost: np.ndarray, error: np.ndarray) -> np.ndarray:
    """True for the points no other point dominates, both coordinates minimised.

    A point is dominated when another has cost <= and error <= with at least one strictly less.
    Equal points are all kept. NaNs are never on the front.
    """
    cost, error = np.asarray(cost, float), np.asarray(error, float)
    ok = np.isfinite(cost) & np.isfinite(error)
    mask = np.zeros(cost.shape, bool)
    for i in np.flatnonzero(ok):
        others = ok.copy()
        others[i] = False
        dominated = others & (cost <= cost[i]) & (error <= error[i]) & ((cost < cost[i]) | (error < error[i]))
        mask[i] = not dominated.any()
    return mask


def with_cost_columns(trials: pd.DataFrame) -> pd.DataFrame:
    """Complete trials with ``device_hours`` (device_seconds / 3600) and numeric cost columns."""
    done = complete_trials(trials).copy()
    for col in ("training_flops", "device_seconds", "flops_per_iteration", "error_mha", "error_stderr_mha",
                "energy", "energy_stderr"):
        done[col] = pd.to_numeric(done[col], errors="coerce") if col in done else np.nan
    done["device_hours"] = done["device_seconds"] / SECONDS_PER_HOUR
    return done


def pareto_data(trials: pd.DataFrame, x: str) -> pd.DataFrame:
    """The plotted data of one Pareto figure: every complete trial with a cost ``x``.

    Columns :data:`PARETO_COLUMNS`: ``y`` is the error in mHa (or the energy in Hartree without a
    reference), ``y_plot`` what is drawn on the log axis (an error <= 0 is drawn at its error bar,
    ``at_error_bar``), ``pareto`` True on the front (built from ``x`` and ``y``).
    """
    metric = response_metric(trials)
    done = with_cost_columns(trials)
    y_col, err_col = (("error_mha", "error_stderr_mha") if metric.column == "error_mha"
                      else ("energy", "energy_stderr"))
    done = done[np.isfinite(done[x]) & np.isfinite(done[y_col]) & (done[x] > 0)]
    if done.empty:
        return pd.DataFrame(columns=PARETO_COLUMNS)
    keys = [k for k in varying_keys(trials, done) if k != "system"]
    systems = done["system"].fillna("unknown system").astype(str).to_numpy() if "system" in done else \
        np.full(len(done), "unknown system")
    y = done[y_col].to_numpy(float)
    yerr = done[err_col].to_numpy(float)
    clipped = (y <= 0) if metric.log else np.zeros(len(y), bool)
    y_plot = np.where(clipped, np.where(np.isfinite(yerr) & (yerr > 0), yerr, 1e-3), y)
    data = pd.DataFrame({
        "trial": done["trial"].to_numpy(int),
        "system": systems,
        "label": [point_label(r, keys) for _, r in done.iterrows()],
        "x_name": x, "x": done[x].to_numpy(float),
        "y_name": y_col, "y": y, "yerr": yerr, "y_plot": y_plot, "at_error_bar": clipped,
        "pareto": False,
    })
    for system in dict.fromkeys(systems):
        mine = data["system"].to_numpy() == system
        data.loc[mine, "pareto"] = pareto_mask(data.loc[mine, "x"].to_numpy(float), y[mine])
    return data.sort_values("x", kind="stable").reset_index(drop=True)[list(PARETO_COLUMNS)]


def pareto_flops_data(trials: pd.DataFrame) -> pd.DataFrame:
    """:func:`pareto_data` against total training FLOPs."""
    return pareto_data(trials, "training_flops")


def pareto_device_hours_data(trials: pd.DataFrame) -> pd.DataFrame:
    """:func:`pareto_data` against device-hours."""
    return pareto_data(trials, "device_hours")


def has_costs(trials: pd.DataFrame) -> bool:
    """Whether any complete trial recorded a cost (runs made before ablate recorded costs did not)."""
    done = with_cost_columns(trials)
    return bool(np.isfinite(done[["training_flops", "device_hours"]].to_numpy(float)).any())


def _log_x(ax) -> None:
    """Log x axis with ticks at 1, 2 and 5 per decade, labelled ``2e+10`` (no crowded minor labels)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def draw_pareto(data: pd.DataFrame):
    """Error (log) against cost (log), one panel per system: every trial grey with its error bar,
    the system's Pareto front in colour joined by a staircase and labelled."""
    systems = list(dict.fromkeys(data["system"]))
    fig, axes = new_figure(ncols=len(systems), panel_size=(4.8, 3.4))
    for ax, system in zip(axes, systems):
        draw_pareto_panel(ax, data[data["system"] == system])
        if len(systems) > 1:
            ax.set_title(system, fontsize=8)
    return fig


def draw_pareto_panel(ax, data: pd.DataFrame) -> None:
    """One system's Pareto panel (see :func:`draw_pareto`)."""
    x_name, y_name = data["x_name"].iloc[0], data["y_name"].iloc[0]
    is_error = y_name == "error_mha"
    off = data[~data["pareto"]]
    on = data[data["pareto"]].sort_values("x")
    for part, colour, size, label in ((off, "0.6", 14, "trials"), (on, "C3", 22, "Pareto-optimal")):
        if part.empty:
            continue
        yerr = np.where(np.isfinite(part["yerr"]), part["yerr"], 0.0)
        low = np.minimum(yerr, part["y_plot"] * 0.999) if is_error else yerr
        ax.errorbar(part["x"], part["y_plot"], yerr=[low, yerr], fmt="none", ecolor=colour, lw=0.7, zorder=2)
        closed = part[~part["at_error_bar"]]
        ax.scatter(closed["x"], closed["y_plot"], s=size, color=colour, zorder=3, label=label)
        opened = part[part["at_error_bar"]]
        if len(opened):
            ax.scatter(opened["x"], opened["y_plot"], s=size, marker="v", facecolors="none",
                       edgecolors=colour, zorder=3, label="error <= 0 (at its error bar)")
    if len(on) > 1:
        ax.step(on["x"], on["y_plot"], where="post", color="C3", lw=0.8, zorder=1)
    for _, r in on.iterrows():
        ax.annotate(r["label"], (r["x"], r["y_plot"]), textcoords="offset points", xytext=(4, 4), fontsize=6,
                    color="C3")
    _log_x(ax)
    low_x, high_x = float(data["x"].min()), float(data["x"].max())
    if high_x < 10 * low_x:  # a narrow range (one system's trials): room for ticks at 1, 2 and 5
        ax.set_xlim(low_x / 2, high_x * 2)
    if is_error:
        ax.set_yscale("log", nonpositive="clip")
        low = float(np.nanmin(data["y_plot"])) / 1.5
        high = float(np.nanmax(data["y_plot"] + np.nan_to_num(data["yerr"]))) * 1.5
        ax.set_ylim(min(low, CHEMICAL_ACCURACY_MHA / 2), max(high, CHEMICAL_ACCURACY_MHA * 2))
        plain_log_labels(ax)
        ax.axhspan(ax.get_ylim()[0], CHEMICAL_ACCURACY_MHA, color="0.88", lw=0, zorder=0, label="chemical accuracy")
        ax.set_ylabel("error vs exact (mHa)")
    else:
        ax.set_ylabel("energy (Ha)")
    ax.set_xlabel(COSTS.get(x_name, (x_name,))[0])
    ax.legend(fontsize=7, frameon=False)


def _cost_text(x: float, x_name: str) -> str:
    return f"{x:.3g} FLOPs" if x_name == "training_flops" else f"{x:.3g} device-hours"


def _pm(y: float, err: float, y_name: str) -> str:
    unit, digits = ("mHa", 2) if y_name == "error_mha" else ("Ha", 5)
    return f"{y:.{digits}f} ± {err:.{digits}f} {unit}" if math.isfinite(err) else f"{y:.{digits}f} {unit}"


def comparisons(data: pd.DataFrame) -> list[str]:
    """For each trial on the front, the dominated trial it saves most against, as a sentence.

    ``A reaches 3.47 ± 0.67 mHa at 40% of the training FLOPs of B (4.10 ± 0.60 mHa)``; whether the
    errors differ beyond 2 sigma is said. Sorted by the saving, at most :data:`MAX_COMPARISONS`.
    """
    if data.empty:
        return []
    x_name, y_name = data["x_name"].iloc[0], data["y_name"].iloc[0]
    noun = COSTS.get(x_name, (x_name, x_name))[1]
    found = []
    for _, a in data[data["pareto"]].iterrows():
        worse = data[~data["pareto"] & (data["system"] == a["system"]) & (data["x"] >= a["x"]) & (data["y"] >= a["y"])]
        if worse.empty:
            continue
        b = worse.sort_values(["y", "x"]).iloc[0]  # the closest competitor in error among those A dominates
        ratio = a["x"] / b["x"]
        if ratio >= 1.0:
            continue  # the same cost: no saving to state
        sigma = math.sqrt(np.nan_to_num(a["yerr"]) ** 2 + np.nan_to_num(b["yerr"]) ** 2)
        same = (b["y"] - a["y"]) <= 2 * sigma
        how = "no worse within 2 sigma than" if same else "and more accurately than"
        found.append((ratio, f"{a['label']} (t{int(a['trial'])}) reaches {_pm(a['y'], a['yerr'], y_name)} at "
                             f"{100 * ratio:.0f}% of the {noun} of {b['label']} (t{int(b['trial'])}, "
                             f"{_pm(b['y'], b['yerr'], y_name)}): {how} it"))
    return [text for _, text in sorted(found)[:MAX_COMPARISONS]]


def pareto_claims(data: pd.DataFrame) -> list[Claim]:
    """One note per system (:func:`pareto_claim`); the statement names the system when there are
    several."""
    systems = list(dict.fromkeys(data["system"]))
    claims = [pareto_claim(data[data["system"] == system]) for system in systems]
    if len(systems) > 1:
        claims = [replace(c, statement=f"{c.statement} ({system})") for c, system in zip(claims, systems)]
    return claims


def pareto_claim(data: pd.DataFrame) -> Claim:
    """The Pareto-optimal trials of one cost axis (one system), and what they save, as a note."""
    x_name = data["x_name"].iloc[0]
    noun = COSTS.get(x_name, (x_name, x_name))[1]
    front = data[data["pareto"]].sort_values("x")
    listed = "; ".join(f"{r['label']} (t{int(r['trial'])}): {_pm(r['y'], r['yerr'], r['y_name'])} at "
                       f"{_cost_text(r['x'], x_name)}" for _, r in front.iterrows())
    said = comparisons(data)
    evidence = (f"{len(front)} of {len(data)} complete trials are Pareto-optimal (mean error vs {noun}; error "
                f"bars not used): {listed}")
    if said:
        evidence += ". " + "; ".join(said)
    return Claim("cost", f"Pareto-optimal trials, error vs {noun}", NOTE, evidence)


FIGURES = {"training_flops": "pareto_flops", "device_hours": "pareto_device_hours"}


def planned(trials: pd.DataFrame) -> list[str]:
    """The Pareto figure kinds when any complete trial recorded its cost."""
    return list(FIGURES.values()) if has_costs(trials) else []


def cost_claims(trials: pd.DataFrame, figure_data: Mapping[str, pd.DataFrame] | None = None) -> list[Claim]:
    """One note per cost axis with data: the front and its savings (from the figure data when
    drawn); a note when no complete trial recorded a cost."""
    claims = []
    for x, name in FIGURES.items():
        data = (figure_data or {}).get(name)
        data = pareto_data(trials, x) if data is None else data
        if len(data):
            claims += pareto_claims(data)
    if not claims and len(complete_trials(trials)):
        claims.append(Claim("cost", "Pareto-optimal trials", NOTE,
                            "no complete trial recorded its cost (runs made before ablate recorded FLOPs and "
                            "device-seconds)"))
    return claims


def table_cells(row: pd.Series) -> dict[str, str]:
    """The cost columns of the printed trial table: device-seconds and training FLOPs."""
    dev = pd.to_numeric(pd.Series([row.get("device_seconds")]), errors="coerce").iloc[0]
    flops = pd.to_numeric(pd.Series([row.get("training_flops")]), errors="coerce").iloc[0]
    return {"device s": f"{dev:.0f}" if pd.notna(dev) else "",
            "train FLOP": f"{flops:.3g}" if pd.notna(flops) else ""}


PARETO_FLOPS = FigureKind(
    "pareto_flops", "trials", pareto_flops_data, draw_pareto,
    "Error vs total training FLOPs (XLA's count of one iteration x iterations); Pareto-optimal trials "
    "in red, joined by the front.")
PARETO_DEVICE_HOURS = FigureKind(
    "pareto_device_hours", "trials", pareto_device_hours_data, draw_pareto,
    "Error vs device-hours (devices x wall time of the run); Pareto-optimal trials in red.")
STUDY = FigureStudy("cost", (PARETO_FLOPS, PARETO_DEVICE_HOURS), planned,
                    lambda inputs, data: cost_claims(inputs.trials, data), every_study=True)
