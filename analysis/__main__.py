"""``python -m analysis STUDY [--storage URL] [--output-root DIR] [--wandb ENTITY/PROJECT]``.

Prints the trial table and the checked claims, and writes ``<output_root>/<study>/figures/``
(PNG, PDF and CSV per figure), ``trials.csv``, ``report.md`` and ``report.html`` (the same on one
self-contained page). An unknown study, a missing
storage or a study without complete trials prints one line on stderr and exits with code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ablate.records.errors import ConfigError

from .loaders import DEFAULT_OUTPUT_ROOT, AnalysisError
from .records import ArgumentParser, check_inside, check_no_password, check_path_text, check_study_name, redact_text
from .report import report_from_frame, run_report
from .wandb_loader import load_wandb_study


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = ArgumentParser(   # argparse's, its usage errors redacted
        prog="python -m analysis",
        description="Tables, paper-style figures and a claims report for an ablate study.",
    )
    parser.add_argument("study", help="study name (the sweep file's study, e.g. width)")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL (default: sqlite:///<output-root>/studies.db)")
    parser.add_argument("--output-root", default=DEFAULT_OUTPUT_ROOT,
                        help="folder of the study's run directories; figures go to <output-root>/<study>/figures "
                             f"(default: {DEFAULT_OUTPUT_ROOT})")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", default=None,
                        help="read the trials from the W&B runs grouped under STUDY instead of Optuna")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the report; returns the exit code (0, or 2 with one line on stderr)."""
    args = parse_args(argv)
    try:
        check_arguments(args)
    except ConfigError as err:
        print(f"analysis: {err}", file=sys.stderr)
        return 2
    try:
        if args.wandb:
            report_from_frame(_wandb_frame(args.study, args.wandb), args.output_root)
        else:
            run_report(args.study, storage=args.storage, output_root=args.output_root)
    except AnalysisError as err:
        print(redact_text(f"analysis: {err}"), file=sys.stderr)
        return 2
    return 0


def check_arguments(args: argparse.Namespace) -> None:
    """The edge checks, before anything is read or written (ConfigError, one line): a study
    name that is one plain folder name, an output root without control characters (the report
    goes to ``<output-root>/<study>/``, which must stay inside it) and a storage URL without a
    password (libpq reads it from ~/.pgpass, PGPASSFILE or PGPASSWORD)."""
    check_study_name("study", args.study)
    check_path_text("--output-root", args.output_root)
    check_no_password("--storage", args.storage)
    check_path_text("--storage", args.storage)
    check_inside("study", Path(args.output_root) / args.study, args.output_root)


def _wandb_frame(study: str, path: str):
    """The trial frame from W&B; any API failure becomes one AnalysisError line."""
    entity, _, project = path.rpartition("/")
    try:
        return load_wandb_study(study, project=project, entity=entity or None)
    except AnalysisError:
        raise
    except Exception as err:  # network, auth, unknown project: one line for the user
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise AnalysisError(f"cannot read W&B runs of {path} group {study!r}: {type(err).__name__} {first}".strip())


if __name__ == "__main__":
    sys.exit(main())
