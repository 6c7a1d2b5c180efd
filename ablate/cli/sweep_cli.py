"""The command line's ``+sweep=NAME`` path: the study's plan, the driver, and the analysis the
driver is handed.

The command line sits on top of the layers and is the one place that calls both the sweeps and
the analysis; the sweeps import nothing of the analysis. What it hands the driver:

* ``decide`` (:func:`decide_round`): after each round of a study with rounds of seeds
  (``sweep.max_seeds`` above ``sweep.seeds``), the claims at the last look and the trials the
  pending ones rest on (:func:`analysis.rounds.next_round`); the driver records and runs the
  next round (:mod:`sweeps.rounds`);
* ``analyse`` (:func:`analyse_study`): at the study's end, whatever the logger, the report
  (``analysis.run_report``: report.md, report.html, figures) and its main figure, from one load
  of the study; the W&B study log uploads them when W&B logging is on.

``sweep.plan=true`` prints the study's plan (grid, seeds, looks and levels, the smallest effect
each claim detects; :func:`analysis.rounds.plan_lines`) and runs nothing; a grid study prints the
same block when it starts. ``ablate/__main__.py`` imports this module only for ``+sweep=`` (it
imports Optuna); the analysis (pandas, matplotlib, scipy) is imported when it is used.
"""

from __future__ import annotations

import io

from ablate.config.compose import compose
from ablate.tracking.wandb_sink import warn
from sweeps.driver import run_plan
from sweeps.plan import StudyPlan, build_plan
from sweeps.rounds import Look
from sweeps.study_log import StudyAnalysis


def run(cfg, task_overrides: list[str]) -> int:
    """Runs (or resumes, or joins) the study of ``cfg.sweep``, or prints its plan
    (``sweep.plan=true``); returns the exit code."""
    plan = build_plan(cfg, list(task_overrides))
    if plan.spec.plan:
        for line in plan_text(plan):
            print(line, flush=True)
        return 0
    if plan.spec.launcher == "local" and plan.spec.sampler == "grid":
        for line in plan_text(plan, quiet=True):
            print(f"[{plan.study_name}] {line}", flush=True)
    return run_plan(plan, list(task_overrides), analyse=analyse_study, decide=decide_round)


def plan_text(plan: StudyPlan, quiet: bool = False) -> list[str]:
    """The plan's lines: the study, its grid and seeds, then (grid studies) the looks and the power
    of each claim (:func:`analysis.rounds.plan_lines`). With ``quiet`` (a study starting) a failure
    of the power plan is one line and never stops the study."""
    spec = plan.spec
    head = f"plan of study '{plan.study_name}' ({spec.sampler}"
    if spec.sampler != "grid":
        return [head + f", {spec.n_planned()} trials): no grid, so no rounds of seeds and no power per claim "
                       "(both need the grid sampler)"]
    axes = [d for d in spec.dimensions if d.key != "seed"]
    points = [dict(p) for p in {_key(p): p for p in ({k: v for k, v in q.items() if k != "seed"}
                                                     for q in spec.grid_points())}.values()]
    grid = "; ".join(f"{d.key} {', '.join(_text(v) for v in d.values)}" for d in axes)
    rounds = (f"max_seeds {spec.max_seeds}: rounds double the seeds of the points of undecided claims"
              if spec.rounds else "no rounds of seeds (max_seeds = seeds)")
    lines = [head + f", {len(points)} points: {grid})",
             f"seeds: {spec.seeds} per point ({len(points) * spec.seeds} trials), {rounds}"
             + (f" (at most {len(points) * spec.max_seeds} trials)" if spec.rounds else "")]
    try:
        from analysis.rounds import plan_lines  # lazy: pandas, scipy

        base = compose(list(plan.trial_overrides))
        lines += plan_lines(points, [d.key for d in axes], seeds=spec.seeds, max_seeds=spec.max_seeds,
                            claims=spec.claims.as_attr(), study=plan.study_name, system=plan.system,
                            network=str(base.network.type), iterations=int(base.optim.iterations),
                            walkers=int(base.batch_size))
    except Exception as err:  # noqa: BLE001 - the plan informs; it never stops a study
        if not quiet:
            raise
        lines.append(f"power plan skipped ({type(err).__name__}: {err})")
    return lines


def _text(value) -> str:
    """A grid value as the sweep file writes it (true, false, null; the rest as they print)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def _key(point: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in point.items()))


def decide_round(study_name: str, storage_url: str, output_root: str) -> Look:
    """The driver's decide step (:data:`sweeps.rounds.Decide`): the study's claims at its last
    look, the pending ones and the trials they rest on (:func:`analysis.rounds.next_round`)."""
    from analysis.rounds import next_round  # lazy: pandas, matplotlib, scipy
    from analysis.study import Inputs

    step = next_round(Inputs.load(study_name, storage_url, output_root))
    return Look(seeds=step.looked, next_seeds=step.seeds, pending=tuple(c.statement for c in step.claims),
                trials=step.trials)


def analyse_study(study_name: str, storage_url: str, output_root: str) -> StudyAnalysis:
    """The finished study's report (``analysis.run_report``: figures, report.md, report.html; its
    headlines printed) and its main figure for the W&B study log, from one load of the study;
    None for both, with one warning line, when the report fails."""
    import matplotlib.pyplot  # noqa: F401  (wandb.Image looks pyplot up to recognise a figure)

    from analysis import run_report  # lazy: pandas, matplotlib, scipy
    from analysis.verdicts import NOTE

    figure = page = None
    try:
        result = run_report(study_name, storage=storage_url, output_root=output_root, stream=io.StringIO())
        page, figure = result.html_path, result.main_figure  # the study read once: report and figure
        heads = [f"  {c.headline()}" for c in result.claims if c.verdict != NOTE]
        lines = ([f"[{study_name}] claims:", *heads] if heads else []) + \
            [f"[{study_name}] report: {page or result.report_path}"]
        print("\n".join(lines), flush=True)
    except Exception as err:  # noqa: BLE001 - never fail a finished study for its report
        warn(f"report for study {study_name!r} failed ({type(err).__name__}: {err})")
    return StudyAnalysis(figure, page)
