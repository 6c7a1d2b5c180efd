"""The study-level W&B run: one run of job_type ``analysis`` in a finished study's group.

The driver calls :func:`log_study` when a study completes; it logs the Optuna trial table and,
when the caller passes what the analysis made of the study (:class:`StudyAnalysis`: the command
line's ``analyse`` function writes the report at every study's end, whatever the logger), the
sweep's main figure and the study's one-page report (``report.html``, as a ``wandb.Html``). It
lives with the sweeps because it reads Optuna studies; the engine (``ablate``) knows nothing of
studies, and the sweeps import nothing of the analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
from omegaconf import OmegaConf

from ablate.records.jsonio import finite_or_none
from ablate.records.redact import redact_url
from ablate.records.run_record import RunDir
from ablate.records.safe_paths import is_inside
from ablate.records.study_record import TrialRow
from ablate.tracking.wandb_records import wait_complete
from ablate.tracking.wandb_sink import FLUSH_TIMEOUT_S, init_run, run_id_for, warn


@dataclass(frozen=True)
class StudyAnalysis:
    """What the analysis made of a finished study: its main figure (a matplotlib Figure) and the
    path of its report.html; either None when it could not be made."""

    figure: Any = None
    report: Path | None = None


# (study name, storage URL, output root) -> StudyAnalysis: writes the finished study's report
# and draws its figure; it warns and never raises.
Analyse = Callable[[str, str, str], StudyAnalysis]


def _cell(value):
    """Table cell: scalars as they are (NaN as None), other values as their text."""
    value = finite_or_none(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def study_table(study) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of an Optuna study: one row per trial.

    Columns: ``number, state, value, duration_s``, then ``params.<key>`` for every swept key and
    ``attrs.<key>`` for every user attribute (``run_dir``, ``energy``, ``error_mha``, ...).
    """
    trials = study.get_trials(deepcopy=False)
    rows_ = [TrialRow.from_trial(t) for t in trials]
    param_keys = sorted({k for r in rows_ for k in r.params})
    attr_keys = sorted({k for r in rows_ for k in r.attrs})
    columns = ["number", "state", "value", "duration_s"]
    columns += [f"params.{k}" for k in param_keys] + [f"attrs.{k}" for k in attr_keys]
    rows = []
    for t, r in zip(trials, rows_):
        duration = t.duration.total_seconds() if t.duration is not None else None
        row = [r.number, r.state, r.value, duration]
        row += [r.params.get(k) for k in param_keys] + [r.attrs.get(k) for k in attr_keys]
        rows.append([_cell(v) for v in row])
    return columns, rows


def _trial_logger_settings(study, output_root: str | Path) -> dict[str, Any]:
    """logger.* of the first trial whose run directory (under ``output_root``: the storage names
    it, and it decides where the study's W&B run goes) holds a config.yaml (empty if none)."""
    for t in study.get_trials(deepcopy=False):
        run_dir = t.user_attrs.get("run_dir")
        if not run_dir or not is_inside(run_dir, output_root) or not RunDir(run_dir).config_file.is_file():
            continue
        cfg = OmegaConf.load(RunDir(run_dir).config_file)
        logger_cfg = OmegaConf.select(cfg, "logger")
        if logger_cfg is not None:
            return dict(OmegaConf.to_container(logger_cfg, resolve=True))
    return {}


def log_study(
    study_name: str,
    storage_url: str,
    output_root: str | Path,
    *,
    mode: str | None = None,
    project: str | None = None,
    entity: str | None = None,
    init_timeout: float | None = None,
    analysis: StudyAnalysis | None = None,
) -> Path | None:
    """One W&B run of job_type ``analysis`` in the study's group, with the trial table and, from
    ``analysis`` when given (what the command line's ``analyse`` made), the sweep figure and the
    report page.

    Mode, project, entity and tags default to those of the study's trials (their config.yaml);
    nothing is written when the trials ran with ``logger=none`` or mode ``disabled``. Its W&B files
    go under ``<output_root>/<study>/analysis/``. Returns that directory, or None. Never raises.
    """
    try:
        study = optuna.load_study(study_name=study_name, storage=storage_url)
        trial_logger = _trial_logger_settings(study, output_root)
        if mode is None and trial_logger.get("kind", "wandb") != "wandb":
            return None
        mode = mode or trial_logger.get("mode") or "offline"
        if mode == "disabled":
            return None
        project = project or trial_logger.get("project") or "ablate"
        entity = entity or trial_logger.get("entity")
        timeout = init_timeout if init_timeout is not None else trial_logger.get("init_timeout", 30)
        tags = [str(t)[:64] for t in trial_logger.get("tags") or []]
        attrs = dict(study.user_attrs)
        out_dir = Path(output_root) / study_name / "analysis"

        import wandb  # lazy: heavy

        run = init_run(
            wandb,
            run_dir=out_dir,
            mode=mode,
            init_timeout=float(timeout),
            id=run_id_for(out_dir),
            project=project,
            entity=entity,
            group=study_name,
            job_type="analysis",
            name=f"{study_name}-analysis",
            tags=tags,
            config={f"study.{k}": _cell(v) if not isinstance(v, (list, dict)) else v for k, v in attrs.items()}
            | {"study.name": study_name, "study.storage": redact_url(storage_url)},
        )
    except Exception as err:  # noqa: BLE001
        warn(f"study run for {study_name!r} could not start ({type(err).__name__}: {err})")
        return None

    try:
        columns, rows = study_table(study)
        payload: dict[str, Any] = {"study_table": wandb.Table(columns=columns, data=rows, allow_mixed_types=True)}
        made = analysis or StudyAnalysis()
        figure, page = made.figure, made.report
        if figure is not None:
            # saved as a PNG first: wandb.Image(figure) needs pyplot, and the analysis figures
            # are plain matplotlib Figures
            png = out_dir / "sweep_figure.png"
            figure.savefig(png, dpi=150, bbox_inches="tight")
            payload["sweep_figure"] = wandb.Image(str(png), caption=study_name)
        if page is not None:
            payload["report"] = wandb.Html(page.read_text(encoding="utf-8"), inject=False)
        run.log(payload)
        states = [r[1] for r in rows]
        summary: dict[str, Any] = {
            "n_trials": len(rows),
            "n_complete": states.count("COMPLETE"),
            "n_failed": states.count("FAIL"),
            "n_pruned": states.count("PRUNED"),
        }
        try:
            if len(study.directions) > 1:  # a multi-objective study has a front, not a best
                summary["n_pareto_front"] = len(study.best_trials)
            else:
                best = study.best_trial
                summary.update(best_value=best.value, best_trial=best.number,
                               **{f"best.{k}": v for k, v in best.params.items()})
        except Exception:  # noqa: BLE001 - no complete trial
            pass
        run.summary.update({k: finite_or_none(v) for k, v in summary.items()})
        path = run.settings.sync_file
        run.finish(exit_code=0)
        wait_complete(path, timeout=FLUSH_TIMEOUT_S)
    except Exception as err:  # noqa: BLE001
        warn(f"study run for {study_name!r} failed ({type(err).__name__}: {err})")
        try:
            run.finish(exit_code=1)
        except Exception:  # noqa: BLE001
            pass
        return None
    return out_dir
