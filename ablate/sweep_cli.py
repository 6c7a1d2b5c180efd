"""The command line's ``+sweep=NAME`` path: run the study driver, and hand its study log the
``analysis`` package's figure and report of the finished study.

The command line sits on top of the layers and is the one place that calls both the sweeps and
the analysis; the sweeps import nothing of the analysis. ``ablate/__main__.py`` imports this
module only for ``+sweep=`` (it imports Optuna); the analysis (pandas, matplotlib, scipy) is
imported only when a finished study is logged to W&B.
"""

from __future__ import annotations

import io

from ablate.wandb_sink import warn
from sweeps.driver import run_sweep
from sweeps.study_log import StudyAnalysis


def run(cfg, task_overrides: list[str]) -> int:
    """Runs (or resumes, or joins) the study of ``cfg.sweep``; returns the driver's exit code."""
    return run_sweep(cfg, task_overrides, analyse=analyse_study)


def analyse_study(study_name: str, storage_url: str, output_root: str) -> StudyAnalysis:
    """The sweep's figure (``analysis.sweep_figure``) and the study's report.html
    (``analysis.run_report``, its console text discarded); a part that fails is None, with one
    warning line."""
    from analysis import run_report, sweep_figure  # lazy: pandas, matplotlib, scipy

    figure = page = None
    try:
        figure = sweep_figure(study_name, storage=storage_url, output_root=output_root)
    except Exception as err:  # noqa: BLE001 - never fail a finished study for its figure
        warn(f"analysis figure for study {study_name!r} failed ({type(err).__name__}: {err})")
    try:
        page = run_report(study_name, storage=storage_url, output_root=output_root,
                          stream=io.StringIO()).html_path
    except Exception as err:  # noqa: BLE001
        warn(f"report.html for study {study_name!r} failed ({type(err).__name__}: {err})")
    return StudyAnalysis(figure, page)
