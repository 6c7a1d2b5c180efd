"""Orchestration: load a study, pick its figures from the swept keys, write files, print the report.

Writes, under ``<output_root>/<study>/``:

* ``figures/<name>.png``, ``figures/<name>.pdf`` and ``figures/<name>.csv`` (the data exactly as
  plotted) for every figure kind that applies;
* ``trials.csv``: the tidy trial frame (:func:`analysis.load_study`);
* ``report.md``: status, the trial table, the figures and the checked claims;
* ``report.html``: the same, with the Pareto fronts and extrapolated limits, on one
  self-contained page (``analysis/html_report.py``).
"""

from __future__ import annotations

import itertools
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

import pandas as pd

from . import cost as C  # issue 10: cost, extrapolated limits, report.html
from . import extrapolate as X
from . import ablations as A  # issue 9: optimizer, |r| features, sampler moves, batch
from . import figures as F
from . import html_report
from .claims import Claim, check_claims
from .loaders import (
    DEFAULT_OUTPUT_ROOT,
    EmptyStudy,
    default_storage,
    frame_from_study,
    load_history,
    open_study,
    param_importances,
)

PNG_DPI = 150
MAX_MISSING_LISTED = 10


@dataclass(frozen=True)
class FigureKind:
    """How one figure kind is built: ``data(frame) -> DataFrame`` then ``draw(data) -> Figure``.

    ``source`` says which frame ``data`` takes: ``trials``, ``history`` or ``importances``.
    """

    name: str
    source: str
    data: Callable[[pd.DataFrame], pd.DataFrame]
    draw: Callable[[pd.DataFrame], object]
    caption: str


def _identity(frame: pd.DataFrame) -> pd.DataFrame:
    """Importances are plotted as they come."""
    return frame.reset_index(drop=True)


FIGURE_KINDS: dict[str, FigureKind] = {k.name: k for k in (
    FigureKind("width_depth", "trials", F.width_depth_data, F.draw_error_figure,
               "Error vs one-electron width, one line per depth (mean ± spread over seeds)."),
    FigureKind("width", "trials", F.width_data, F.draw_error_figure,
               "Error vs one-electron width (error bars as the figure's caption says)."),
    FigureKind("depth", "trials", F.depth_data, F.draw_error_figure, "Error vs number of layers."),
    FigureKind("pairwise_width", "trials", F.pairwise_width_data, F.draw_error_figure,
               "Error vs two-electron (pairwise) width."),
    FigureKind("determinants", "trials", F.determinants_data, F.draw_error_figure,
               "Error vs number of determinants (log2 axis), per ansatz."),
    FigureKind("sampler", "trials", F.sampler_data, F.draw_error_figure,
               "Error and reblocked (autocorrelation-corrected) error bar vs MCMC steps and batch size."),
    FigureKind("importances", "importances", _identity, F.importances_figure,
               "Optuna parameter importances (normalised)."),
    FigureKind("optimization_history", "trials", F.optimization_history_data, F.draw_optimization_history,
               "Objective of each complete trial and the best so far."),
    FigureKind("training_curves", "history", F.training_curves_data, F.draw_training_curves,
               "Training energy above the reference vs iteration for every trial, whole run, trailing mean "
               "(window on the figure), symmetric log axis."),
)}

# --- issue 10: cost (analysis/cost.py) and extrapolated limits (analysis/extrapolate.py) ---
FIGURE_KINDS.update({k.name: k for k in (
    FigureKind("pareto_flops", "trials", C.pareto_flops_data, C.draw_pareto,
               "Error vs total training FLOPs (XLA's count of one iteration x iterations); Pareto-optimal trials "
               "in red, joined by the front."),
    FigureKind("pareto_device_hours", "trials", C.pareto_device_hours_data, C.draw_pareto,
               "Error vs device-hours (devices x wall time of the run); Pareto-optimal trials in red."),
    FigureKind("training_limit", "trials", X.training_limit_data, X.draw_training_limit,
               "Evaluated energy and the converged energy predicted by fitting E(t) = E_inf + a t^-b to the second "
               "half of each training curve (open: too poor to use)."),
    FigureKind("energy_variance", "trials", X.energy_variance_data, X.draw_energy_variance,
               "Energy vs local-energy variance per series, the weighted line carried to zero variance (E_0 with "
               "its error bar; dotted and open when too poor to use)."),
    FigureKind("width_limit", "trials", X.width_limit_data, X.draw_width_limit,
               "Energy vs width with the fit E(w) = E_inf + a w^-b and E_inf ± its error (dotted when too poor "
               "to use)."),
)})
# --- end issue 10 ---


# ----------------------------------------------------------------------------- choosing figures


# --- issue 9: the talk's other ablations (analysis/ablations.py) ---
FIGURE_KINDS.update({k.name: k for k in (
    FigureKind("optimizer", "trials", A.optimizer_data, A.draw_optimizer,
               "Error per system (ordered by electron count) with KFAC and Adam, and the Adam/KFAC error ratio vs "
               "electrons with its weighted fit; dotted: 10x."),
    FigureKind("features", "trials", A.features_data, A.draw_features,
               "Error per system with and without the |r| input features, and the without/with ratio; dotted: 3x."),
    FigureKind("sampler_moves", "trials", A.sampler_moves_data, A.draw_sampler_moves,
               "Energy spikes of every trial per system and sampler (MH/HMC, all-/one-electron moves), and the error "
               "vs training time (iterations x median step time)."),
    FigureKind("batch", "trials", A.batch_data, A.draw_batch,
               "Error vs walkers (batch size) at fixed iterations, log2 x and log y, with the weighted power-law fit."),
)})
# --- end issue 9 ---


def plan_figures(trials: pd.DataFrame) -> list[str]:
    """Figure kinds for the study's swept keys.

    Grid keys give error-vs-key figures (width and depth together give width_depth); any other
    swept key (optimiser settings) makes it a tuning study: importances and optimisation history
    instead, since averaging over tuned settings would mislead. Training curves always.
    """
    keys = set(F.swept_keys(trials))
    names: list[str] = []
    if F.tuning_keys(trials):
        names += ["importances", "optimization_history"]
    else:
        if {"network.width", "network.depth"} <= keys:
            names.append("width_depth")
        elif "network.width" in keys:
            names.append("width")
        elif "network.depth" in keys:
            names.append("depth")
        if "network.pairwise_width" in keys:
            names.append("pairwise_width")
        if "network.determinants" in keys:
            names.append("determinants")
        names += A.planned(trials)  # issue 9: optimizer, features, sampler_moves, batch
        if keys & {"mcmc.steps", "batch_size"}:
            names.append("sampler")
    names.append("training_curves")
    return names


def build_figure_data(
    names: list[str], trials: pd.DataFrame, history: pd.DataFrame, importances: pd.DataFrame | None
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The plotted data of each planned figure; kinds with nothing to plot are skipped with a note."""
    sources = {"trials": trials, "history": history, "importances": importances}
    data, notes = {}, []
    for name in names:
        kind = FIGURE_KINDS[name]
        frame = sources[kind.source]
        if frame is None or frame.empty:
            notes.append(f"{name}: not drawn (no {kind.source} to plot)")
            continue
        plotted = kind.data(frame)
        if plotted.empty:
            notes.append(f"{name}: not drawn (no complete points)")
            continue
        data[name] = plotted
    return data, notes


def save_figure(fig, data: pd.DataFrame, directory: Path, name: str) -> list[Path]:
    """Write NAME.png, NAME.pdf and NAME.csv (the plotted data) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{name}.{ext}" for ext in ("png", "pdf", "csv")]
    fig.savefig(paths[0], dpi=PNG_DPI)
    fig.savefig(paths[1])
    data.to_csv(paths[2], index=False)
    return paths


# ----------------------------------------------------------------------------- completeness and table


@dataclass
class Completeness:
    """Trial counts by state and the grid points (or parameter sets) with no complete trial."""

    counts: dict[str, int]
    missing: list[str] = field(default_factory=list)
    planned: int | None = None  # trials the sweep plans (study attr n_planned), when known

    def line(self, study: str) -> str:
        """``study width: 4 of 6 trials complete (1 RUNNING, 1 FAIL)``."""
        total = sum(self.counts.values())
        done = self.counts.get("COMPLETE", 0)
        others = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()) if s != "COMPLETE")
        text = f"study {study}: {done} of {total} trials complete" + (f" ({others})" if others else "")
        if self.planned and self.planned > total:
            text += f"; {self.planned - total} of {self.planned} planned trials not created yet"
        return text


def _norm(value) -> object:
    """A parameter value in a form that compares equal across int/float/str round trips."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def completeness(trials: pd.DataFrame) -> Completeness:
    """Count trials per state and list what is missing.

    With a grid search space on record, every grid point without a COMPLETE trial is missing
    (with the state of its latest trial, or ``not started``); otherwise every parameter set whose
    trials all ended other than COMPLETE.
    """
    counts = trials["state"].value_counts().to_dict()
    planned = trials.attrs.get("n_planned")
    planned = int(planned) if isinstance(planned, (int, float)) and planned == planned else None
    params = F.swept_keys(trials)
    if not params:
        return Completeness(counts, planned=planned)
    key = lambda row: tuple(_norm(row[k]) for k in params)  # noqa: E731
    done = {key(r) for _, r in trials[trials["state"] == "COMPLETE"].iterrows()}
    latest = {key(r): r["state"] for _, r in trials.sort_values("trial").iterrows()}
    grid = trials.attrs.get("grid")
    if grid and set(grid) == set(params):
        points = [tuple(_norm(dict(zip(grid, combo))[k]) for k in params)
                  for combo in itertools.product(*grid.values())]
    else:
        points = list(latest)
    missing = [p for p in points if p not in done]
    text = [", ".join(f"{k}={_fmt_value(v)}" for k, v in zip(params, p)) + f" ({latest.get(p, 'not started')})"
            for p in missing]
    return Completeness(counts, text, planned)


def _fmt_value(value) -> str:
    """A parameter value for the table (integers without a decimal point)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _pm(mean, err, digits: int) -> str:
    """``mean ± err`` with fixed decimals; empty when the mean is unknown."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    if err is None or (isinstance(err, float) and math.isnan(err)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {err:.{digits}f}"


def summary_table(trials: pd.DataFrame) -> pd.DataFrame:
    """The printed table: one row per trial with its parameters, energy, error and cost (strings)."""
    params = F.swept_keys(trials)
    rows = []
    for _, r in trials.iterrows():
        row = {"trial": int(r["trial"]), "state": r["state"]}
        row.update({k: _fmt_value(r[k]) if pd.notna(r[k]) else "" for k in params})
        if "seed" not in params:
            row["seed"] = _fmt_value(r["seed"]) if pd.notna(r["seed"]) else ""
        row["energy (Ha)"] = _pm(r["energy"], r["energy_stderr"], 5)
        row["error (mHa)"] = _pm(r["error_mha"], r["error_stderr_mha"], 2)
        row["corr. energy (%)"] = _pm(r["correlation_pct"], r["correlation_pct_stderr"], 1)
        row["n params"] = str(int(r["param_count"])) if pd.notna(r["param_count"]) else ""
        row["wall (s)"] = f"{r['wall_time_s']:.0f}" if pd.notna(r["wall_time_s"]) else ""
        row["ms/it"] = f"{r['ms_per_iteration']:.1f}" if pd.notna(r["ms_per_iteration"]) else ""
        row.update(C.table_cells(r))  # issue 10: device-seconds and training FLOPs
        if pd.notna(r["reason"]) and r["state"] != "COMPLETE":
            row["reason"] = str(r["reason"])[:60]
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.fillna("") if "reason" in table else table


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table of string cells."""
    header = "| " + " | ".join(table.columns) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"
    body = ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


# ----------------------------------------------------------------------------- the report


@dataclass
class ReportResult:
    """What a report run produced."""

    study: str
    directory: Path
    figures: dict[str, list[Path]]  # name -> [png, pdf, csv]
    drawn: dict[str, object]  # name -> the matplotlib Figure that was saved
    data: dict[str, pd.DataFrame]  # name -> the plotted data (as in the CSV)
    claims: list[Claim]
    completeness: Completeness
    notes: list[str]
    report_path: Path
    html_path: Path | None = None  # issue 10: report.html


def run_report(
    name: str,
    storage: str | None = None,
    output_root: str | os.PathLike | None = None,
    stream: TextIO | None = None,
) -> ReportResult:
    """Analyse the Optuna study ``name``: figures, CSVs, report.md; print the table and claims.

    Raises:
        StudyNotFound: unknown storage or study.
        EmptyStudy: the study has no complete trial.
    """
    root = Path(output_root if output_root is not None else DEFAULT_OUTPUT_ROOT)
    url = storage or default_storage(root)
    study = open_study(name, url, root)
    trials = frame_from_study(study, root, storage=url)
    _require_complete(trials, name, url)
    history = load_history(trials=trials)
    importances, reason = (param_importances(study) if F.tuning_keys(trials) else (None, None))
    return write_report(trials, history, root / name, importances, reason, stream)


def _require_complete(trials: pd.DataFrame, name: str, where: str) -> None:
    """Raise EmptyStudy when no trial is COMPLETE."""
    if not (trials["state"] == "COMPLETE").any():
        counts = ", ".join(f"{n} {s}" for s, n in trials["state"].value_counts().items()) or "no trials"
        raise EmptyStudy(f"study {name!r} has no complete trials yet ({counts}) in {where}")


def write_report(
    trials: pd.DataFrame,
    history: pd.DataFrame,
    directory: Path,
    importances: pd.DataFrame | None = None,
    importance_reason: str | None = None,
    stream: TextIO | None = None,
) -> ReportResult:
    """Draw and write every planned figure, check the claims, print and write report.md."""
    stream = stream or sys.stdout
    study = str(trials.attrs.get("study", directory.name))
    names = plan_figures(trials) + C.planned(trials) + X.planned(trials)  # issue 10: Pareto fronts, limits
    data, notes = build_figure_data(names, trials, history, importances)
    if importance_reason and "importances" in names:
        notes.append(f"importances: {importance_reason}")
    figure_dir = directory / "figures"
    written, drawn = {}, {}
    title = F.title_line(trials)
    for fig_name, plotted in data.items():
        plotted.attrs["title"] = title  # the history frame lacks scale and walkers: the trials' line
        drawn[fig_name] = FIGURE_KINDS[fig_name].draw(plotted)
        written[fig_name] = save_figure(drawn[fig_name], plotted, figure_dir, fig_name)
    directory.mkdir(parents=True, exist_ok=True)
    trials.to_csv(directory / "trials.csv", index=False)
    claims = check_claims(trials, data, importances, importance_reason)
    claims += C.cost_claims(trials, data) + X.extrapolation_claims(trials, data)  # issue 10
    status = completeness(trials)
    table = summary_table(trials)
    _print_report(stream, study, trials, status, table, claims, notes, written, figure_dir)
    report_path = directory / "report.md"
    report_path.write_text(_markdown_report(study, trials, status, table, claims, notes, written), encoding="utf-8")
    # --- issue 10: the same report as one self-contained page (analysis/html_report.py) ---
    status_line = status.line(study) + (f"; {_header(trials)}" if _header(trials) else "")
    html_path = html_report.write_html(
        directory / "report.html", trials=trials, status_line=status_line, table=table, claims=claims,
        notes=notes, missing=_missing_lines(status), figure_data=data,
        figures=[(n, FIGURE_KINDS[n].caption, paths[0]) for n, paths in written.items()])
    print(f"wrote {len(written)} figures to {figure_dir}, {report_path} and {html_path}", file=stream)
    return ReportResult(study, directory, written, drawn, data, claims, status, notes, report_path, html_path)


def _header(trials: pd.DataFrame) -> str:
    """Sweep, objective and storage of the study, as one line."""
    a = trials.attrs
    parts = [f"{k} {a[k]}" for k in ("sweep", "objective", "direction") if a.get(k)]
    if a.get("storage"):
        parts.append(f"storage {a['storage']}")
    return ", ".join(parts)


def _missing_lines(status: Completeness) -> list[str]:
    """``missing (2): ...`` lines, at most MAX_MISSING_LISTED points named."""
    if not status.missing:
        return []
    shown = status.missing[:MAX_MISSING_LISTED]
    more = len(status.missing) - len(shown)
    return [f"missing ({len(status.missing)} points without a complete trial; figures show the complete ones):"] + \
        [f"  {m}" for m in shown] + ([f"  ... and {more} more"] if more else [])


def _print_report(stream, study, trials, status, table, claims, notes, written, figure_dir) -> None:
    """The console report: status, table, missing points, claims, notes."""
    print(status.line(study) + (f"; {_header(trials)}" if _header(trials) else ""), file=stream)
    print(table.to_string(index=False), file=stream)
    for line in _missing_lines(status):
        print(line, file=stream)
    print("claims:", file=stream)
    for claim in claims or [Claim("study", "no claim applies to the swept keys", "note", ", ".join(F.swept_keys(trials)))]:
        print("  " + claim.render(), file=stream)
    for note in notes:
        print("note: " + note, file=stream)


def _markdown_report(study, trials, status, table, claims, notes, written) -> str:
    """report.md: status, table, figures (with their captions), claims, notes."""
    lines = [f"# Study `{study}`", "", status.line(study) + ".", ""]
    if _header(trials):
        lines += [_header(trials) + ".", ""]
    missing = _missing_lines(status)
    if missing:
        lines += [missing[0], "", *[f"- {m.strip()}" for m in missing[1:]], ""]
    lines += ["## Trials", "", markdown_table(table), "", "## Figures", ""]
    for fig_name in written:
        lines += [f"### {fig_name}", "", FIGURE_KINDS[fig_name].caption, "",
                  f"![{fig_name}](figures/{fig_name}.png)", "",
                  f"Data: [figures/{fig_name}.csv](figures/{fig_name}.csv), vector: [figures/{fig_name}.pdf](figures/{fig_name}.pdf)", ""]
    lines += ["## Claims", ""]
    lines += [f"- **{c.verdict}**: {c.statement}: {c.evidence}" for c in claims] or ["- none of the paper's claims applies to the swept keys"]
    if notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def sweep_figure(name: str, storage: str | None = None, output_root: str | os.PathLike | None = None):
    """The study's main figure (the first planned kind with data; training curves as a last
    resort), or None when the study has no complete trial. Used by ablate.wandb_sink.log_study.

    Imports ``matplotlib.pyplot`` (headless: Agg when no display) because ``wandb.Image(fig)``
    looks up ``matplotlib.pyplot`` to recognise a figure; the figure itself is not pyplot-managed.
    """
    import matplotlib.pyplot  # noqa: F401  (see the docstring)

    url = storage or default_storage(output_root if output_root is not None else DEFAULT_OUTPUT_ROOT)
    study = open_study(name, url, output_root)
    trials = frame_from_study(study, output_root, storage=url)
    if not (trials["state"] == "COMPLETE").any():
        return None
    names = [n for n in plan_figures(trials) if n != "training_curves"] + ["training_curves"]
    for fig_name in names:
        kind = FIGURE_KINDS[fig_name]
        if kind.source == "history":
            frame = load_history(trials=trials)
        elif kind.source == "importances":
            frame = param_importances(study)[0]
        else:
            frame = trials
        if frame is None or frame.empty:
            continue
        data = kind.data(frame)
        if not data.empty:
            data.attrs["title"] = F.title_line(trials)
            return kind.draw(data)
    return None


def report_from_frame(
    trials: pd.DataFrame, output_root: str | os.PathLike, history: pd.DataFrame | None = None,
    stream: TextIO | None = None,
) -> ReportResult:
    """The same report from an already loaded trial frame (e.g. :func:`analysis.load_wandb_study`)."""
    study = str(trials.attrs.get("study"))
    _require_complete(trials, study, str(trials.attrs.get("storage")))
    history = history if history is not None else load_history(trials=trials)
    reason = "needs the Optuna study" if F.tuning_keys(trials) else None
    return write_report(trials, history, Path(output_root) / study, None, reason, stream)


__all__ = ["FIGURE_KINDS", "plan_figures", "run_report", "report_from_frame", "sweep_figure", "write_report",
           "completeness"]
