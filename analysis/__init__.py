"""Analysis of ablate studies: tidy pandas frames, paper-style figures and a claims report.

    import analysis
    trials = analysis.load_study("width", storage="sqlite:///runs/studies.db")
    history = analysis.load_history("width", storage="sqlite:///runs/studies.db")
    from analysis.studies import width
    fig = width.width_figure(trials)

Command line: ``python -m analysis STUDY [--storage URL] [--output-root DIR]``.
This package reads files and storages only; it never imports the engine or the sweep driver.
"""

from .loaders import (
    AnalysisError,
    EmptyStudy,
    StudyNotFound,
    load_history,
    load_study,
)
from .report import run_report, sweep_figure
from .wandb_loader import load_wandb_study

__all__ = [
    "AnalysisError",
    "EmptyStudy",
    "StudyNotFound",
    "load_history",
    "load_study",
    "load_wandb_study",
    "run_report",
    "sweep_figure",
]
