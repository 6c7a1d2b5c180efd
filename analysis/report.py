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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, TextIO

import pandas as pd

from . import html_report
from .loaders import DEFAULT_OUTPUT_ROOT, EmptyStudy, default_storage, load_history
from .notes import accuracy_note, clipping_note, convergence_note
from .points import swept_keys, title_line, tuning_keys
from .studies import FIGURE_KINDS, STUDIES, STUDY_OF, plan_figures
from .studies.cost import table_cells
from .sequential import decide_looks, looks_of, looks_table
from .study import Inputs
from .verdicts import NOTE, Claim, judge, rules_of

PNG_DPI = 150
MAX_MISSING_LISTED = 10


def build_figure_data(names: list[str], inputs: Inputs) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The plotted data of each planned figure; kinds with nothing to plot are skipped with a note."""
    data, notes = {}, []
    for name in names:
        kind = FIGURE_KINDS[name]
        plotted = STUDY_OF[name].data(kind, inputs)
        if plotted is None:
            notes.append(f"{name}: not drawn (no {kind.source} to plot)")
            continue
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


def study_claims(inputs: Inputs, figure_data: Mapping[str, pd.DataFrame], every_study: bool = False) -> list[Claim]:
    """The claims of the studies of the swept keys (and with ``every_study`` of cost and limits),
    from the figure data keyed by figure name, between the study-level notes (convergence and
    accuracy first, clipped points last); each decided on its own, before the study's claims are
    judged together (:func:`analysis.verdicts.judge`)."""
    trials = inputs.trials
    claims = convergence_note(trials) + accuracy_note(trials)
    for study in STUDIES:
        if not study.every_study:
            claims += study.claims(inputs, figure_data)
    claims += clipping_note(figure_data)
    if every_study:
        claims += [claim for study in STUDIES if study.every_study for claim in study.claims(inputs, figure_data)]
    return claims


def check_claims(
    trials: pd.DataFrame,
    figure_data: Mapping[str, pd.DataFrame],
    importances: pd.DataFrame | None = None,
    importance_reason: str | None = None,
) -> list[Claim]:
    """The claims of the studies of the swept keys, judged together (Holm over the study's
    claims at the rules' level; one look), between the study-level notes."""
    inputs = Inputs(trials, importances=importances, importance_reason=importance_reason)
    return judge(study_claims(inputs, figure_data), rules_of(trials).alpha)


def judged_claims(inputs: Inputs, names: list[str], figure_data: Mapping[str, pd.DataFrame]
                  ) -> tuple[list[Claim], list[str]]:
    """Every claim of the study, cost and limits included, judged together at each of its looks
    (:func:`analysis.sequential.decide_looks`; one look for a study that did not add seeds), and
    the looks as text lines (empty for one look)."""
    looks = looks_of(inputs.trials)

    def claims_of(trials: pd.DataFrame) -> list[Claim]:
        if len(trials) == len(inputs.trials):
            return study_claims(inputs, figure_data, every_study=True)
        sub = replace(inputs, trials=trials)
        data, _ = build_figure_data(names, sub)
        return study_claims(sub, data, every_study=True)

    claims, records = decide_looks(inputs.trials, claims_of)
    return claims, (looks_table(records) if len(looks) > 1 or looks[0].fraction < 1 else [])


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
    params = swept_keys(trials)
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
    params = swept_keys(trials)
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
        row.update(table_cells(r))
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
    html_path: Path | None = None

    @property
    def main_figure(self):
        """The study's main figure: the first drawn figure of its plan, training curves only when
        nothing else was drawn (what the W&B study log shows); None when none was drawn."""
        for name, fig in self.drawn.items():
            if name != "training_curves":
                return fig
        return self.drawn.get("training_curves")


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
    inputs = Inputs.load(name, url, root)
    _require_complete(inputs.trials, name, str(inputs.trials.attrs.get("storage")))   # the URL redacted
    return write_inputs(inputs, root / name, stream)


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
    return write_inputs(Inputs(trials, history, importances, importance_reason), directory, stream)


def write_inputs(inputs: Inputs, directory: Path, stream: TextIO | None = None) -> ReportResult:
    """:func:`write_report` of a loaded study (:meth:`analysis.study.Inputs.load`)."""
    stream = stream or sys.stdout
    trials, importance_reason = inputs.trials, inputs.importance_reason
    study = str(trials.attrs.get("study", directory.name))
    names = plan_figures(trials, every_study=True)
    data, notes = build_figure_data(names, inputs)
    if importance_reason and "importances" in names:
        notes.append(f"importances: {importance_reason}")
    figure_dir = directory / "figures"
    written, drawn = {}, {}
    title = title_line(trials)
    for fig_name, plotted in data.items():
        plotted.attrs["title"] = title  # the history frame lacks scale and walkers: the trials' line
        drawn[fig_name] = FIGURE_KINDS[fig_name].draw(plotted)
        written[fig_name] = save_figure(drawn[fig_name], plotted, figure_dir, fig_name)
    directory.mkdir(parents=True, exist_ok=True)
    trials.to_csv(directory / "trials.csv", index=False)
    claims, looks = judged_claims(inputs, names, data)
    notes = notes + [f"{line}" for line in looks]
    status = completeness(trials)
    table = summary_table(trials)
    _print_report(stream, study, trials, status, table, claims, notes, written, figure_dir)
    report_path = directory / "report.md"
    report_path.write_text(_markdown_report(study, trials, status, table, claims, notes, written), encoding="utf-8")
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
    heads = [c for c in claims if c.verdict != NOTE]
    if heads:
        print("headlines:", file=stream)
        for claim in heads:
            print("  " + claim.headline(), file=stream)
    print(table.to_string(index=False), file=stream)
    for line in _missing_lines(status):
        print(line, file=stream)
    print("claims:", file=stream)
    for claim in claims or [Claim("study", "no claim applies to the swept keys", "note", ", ".join(swept_keys(trials)))]:
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
    heads = [c for c in claims if c.verdict != NOTE]
    if heads:
        lines += ["## Headlines", "", *[f"- {c.headline()}" for c in heads], ""]
    lines += ["## Trials", "", markdown_table(table), "", "## Figures", ""]
    for fig_name in written:
        lines += [f"### {fig_name}", "", FIGURE_KINDS[fig_name].caption, "",
                  f"![{fig_name}](figures/{fig_name}.png)", "",
                  f"Data: [figures/{fig_name}.csv](figures/{fig_name}.csv), vector: [figures/{fig_name}.pdf](figures/{fig_name}.pdf)", ""]
    lines += ["## Claims", ""]
    lines += [f"- **{c.verdict}**: {c.render()[len(c.verdict) + 3:]}" for c in claims] or ["- none of the paper's claims applies to the swept keys"]
    if notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def sweep_figure(name: str, storage: str | None = None, output_root: str | os.PathLike | None = None):
    """The study's main figure (the first planned kind with data; training curves as a last
    resort), or None when the study has no complete trial. Used by ablate.tracking.wandb_sink.log_study.

    Imports ``matplotlib.pyplot`` (headless: Agg when no display) because ``wandb.Image(fig)``
    looks up ``matplotlib.pyplot`` to recognise a figure; the figure itself is not pyplot-managed.
    """
    import matplotlib.pyplot  # noqa: F401  (see the docstring)

    url = storage or default_storage(output_root if output_root is not None else DEFAULT_OUTPUT_ROOT)
    inputs = Inputs.load(name, url, output_root)
    trials = inputs.trials
    if not (trials["state"] == "COMPLETE").any():
        return None
    names = [n for n in plan_figures(trials) if n != "training_curves"] + ["training_curves"]
    for fig_name in names:
        data = STUDY_OF[fig_name].data(FIGURE_KINDS[fig_name], inputs)
        if data is not None and not data.empty:
            data.attrs["title"] = title_line(trials)
            return FIGURE_KINDS[fig_name].draw(data)
    return None


def report_from_frame(
    trials: pd.DataFrame, output_root: str | os.PathLike, history: pd.DataFrame | None = None,
    stream: TextIO | None = None,
) -> ReportResult:
    """The same report from an already loaded trial frame (e.g. :func:`analysis.load_wandb_study`)."""
    study = str(trials.attrs.get("study"))
    _require_complete(trials, study, str(trials.attrs.get("storage")))
    history = history if history is not None else load_history(trials=trials)
    reason = "needs the Optuna study" if tuning_keys(trials) else None
    return write_report(trials, history, Path(output_root) / study, None, reason, stream)


__all__ = ["check_claims", "completeness", "plan_figures", "report_from_frame", "run_report", "sweep_figure",
           "write_report"]
