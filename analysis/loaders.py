"""Loaders: an Optuna study (plus its run directories) or a W&B group -> tidy pandas frames.

Units follow docs/contracts.md: energies in Hartree (``energy``, ``energy_stderr``,
``reference_energy``, ``hf_energy``), errors in mHa (columns ending ``_mha``), times in
seconds (``wall_time_s``) and milliseconds (``ms_per_iteration``), correlation energy in
percent (``correlation_pct``).

The trial frame (:func:`load_study`) has one row per Optuna trial and these columns, in order:
``trial``, ``state``, every swept parameter (flat keys as in the trial params, e.g.
``network.width``; ``seed`` when it is swept), ``seed`` (when not swept), then
:data:`RECORD_COLUMNS`, then the columns derived from each run directory
(``analysis.run_columns.RUN_COLUMNS``: scale, planned iterations, convergence). ``frame.attrs`` holds ``study``, ``params`` (the swept keys),
``objective``, ``direction``, ``storage``, ``source`` and ``grid`` (the grid sampler's
search space when known).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import optuna
import pandas as pd

from ablate.jsonio import flatten
from ablate.run_record import RunSummary
from ablate.study_record import default_storage_url, sqlite_path, trial_params

HARTREE_TO_MHA = 1000.0
DEFAULT_OUTPUT_ROOT = "runs"
MIN_IMPORTANCE_TRIALS = 10

# Columns after the parameters, in order (see the module docstring for units).
RECORD_COLUMNS = (
    "system",
    "network",
    "status",
    "value",
    "energy",
    "energy_stderr",
    "reference_energy",
    "hf_energy",
    "error_mha",
    "error_stderr_mha",
    "correlation_pct",
    "correlation_pct_stderr",
    "param_count",
    "iterations",
    "wall_time_s",
    "ms_per_iteration",
    # issue 10: cost (ablate.cost) and the evaluation variance (Hartree^2)
    "variance",
    "devices",
    "device_seconds",
    "flops_per_iteration",
    "training_flops",
    "reason",
    "run_dir",
)

# Keys read from summary.json, falling back to the trial's user attrs of the same name.
_SUMMARY_KEYS = (
    "system",
    "network",
    "status",
    "energy",
    "energy_stderr",
    "reference_energy",
    "hf_energy",
    "error_mha",
    "error_stderr_mha",
    "param_count",
    "iterations",
    "wall_time_s",
    "ms_per_iteration",
    "variance",  # issue 10: cost and variance columns
    "devices",
    "device_seconds",
    "flops_per_iteration",
    "training_flops",
    "reason",
    "seed",
)

# Optuna trial states are reported by name; W&B runs are mapped onto the same names.
_STATUS_TO_STATE = {
    "completed": "COMPLETE",
    "failed": "FAIL",
    "pruned": "PRUNED",
    "running": "RUNNING",
}
_WANDB_STATE_TO_STATE = {
    "finished": "COMPLETE",
    "failed": "FAIL",
    "crashed": "FAIL",
    "killed": "FAIL",
    "running": "RUNNING",
    "pending": "WAITING",
    "preempting": "RUNNING",
    "preempted": "FAIL",
}


class AnalysisError(Exception):
    """A problem the CLI reports as one line on stderr and exit code 2."""


class StudyNotFound(AnalysisError):
    """The storage does not exist or holds no study of that name."""


class EmptyStudy(AnalysisError):
    """The study has no complete trial to analyse."""


# ----------------------------------------------------------------------------- storage


def default_storage(output_root: str | os.PathLike | None = None) -> str:
    """The default study storage URL: ``sqlite:///<output_root>/studies.db`` (absolute)."""
    return default_storage_url(output_root if output_root is not None else DEFAULT_OUTPUT_ROOT)


def open_study(name: str, storage: str | None = None, output_root: str | os.PathLike | None = None):
    """Open an existing Optuna study read-only in spirit (never creates a storage or a study).

    Raises :class:`StudyNotFound` (one-line message) when the SQLite file is absent or the
    storage holds no study ``name``, and :class:`AnalysisError` when the storage cannot be read.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage or default_storage(output_root)
    db_file = sqlite_path(url)
    if db_file is not None and not db_file.is_file():
        raise StudyNotFound(f"unknown study {name!r}: no study storage at {db_file} ({url})")
    try:
        names = optuna.get_all_study_names(url)
    except Exception as err:  # any driver/schema error: report it on one line
        detail = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise AnalysisError(f"cannot read study storage {url}: {type(err).__name__} {detail}".strip())
    if name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise StudyNotFound(f"unknown study {name!r} in {url} (studies there: {known})")
    return optuna.load_study(study_name=name, storage=url)


# ----------------------------------------------------------------------------- run directories


def read_summary(run_dir: str | os.PathLike | None) -> dict:
    """The run's summary.json as a dict, or {} when the directory or the file is absent/unreadable."""
    summary = RunSummary.read_or_none(run_dir)
    return summary.to_dict() if summary is not None else {}


def resolve_run_dir(
    stored: str | None, study: str, number: int, output_root: str | os.PathLike | None
) -> str | None:
    """Where a trial's run directory is on this machine.

    The stored absolute path wins when it exists; a study copied or moved elsewhere is found as
    ``<output_root>/<study>/<basename of the stored path>``, and a trial without the attribute as
    ``<output_root>/<study>/t<NNNN>``. Returns the stored path (or None) when nothing exists.
    """
    candidates: list[Path] = []
    if stored:
        candidates.append(Path(stored))
    if output_root is not None:
        base = Path(output_root) / study
        if stored:
            candidates.append(base / Path(stored).name)
        candidates.append(base / f"t{number:04d}")
    for cand in candidates:
        if cand.is_dir():
            return str(cand.resolve())
    return stored or None


# ----------------------------------------------------------------------------- rows


def _first(*values: Any) -> Any:
    """The first value that is neither None nor a float NaN."""
    for value in values:
        if value is None:
            continue
        if isinstance(value, float) and math.isnan(value):
            continue
        return value
    return None


def _as_float(value: Any) -> float:
    """``value`` as a float, NaN when missing or not numeric."""
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def derive_energies(rec: dict) -> dict:
    """Fill the derived energy columns of one record in place and return it.

    ``error_mha = 1000 (energy - reference_energy)`` and ``error_stderr_mha = 1000 energy_stderr``
    when not recorded; ``correlation_pct = 100 (E_HF - E) / (E_HF - E_ref)`` (and its standard
    error ``100 energy_stderr / (E_HF - E_ref)``) when the HF and reference energies are known.
    """
    energy = _as_float(rec.get("energy"))
    stderr = _as_float(rec.get("energy_stderr"))
    ref = _as_float(rec.get("reference_energy"))
    hf = _as_float(rec.get("hf_energy"))
    if math.isnan(_as_float(rec.get("error_mha"))):
        rec["error_mha"] = (energy - ref) * HARTREE_TO_MHA
    if math.isnan(_as_float(rec.get("error_stderr_mha"))) and not math.isnan(ref):
        rec["error_stderr_mha"] = stderr * HARTREE_TO_MHA
    gap = hf - ref  # HF minus exact: the correlation energy's magnitude, Hartree
    if gap > 0 and not math.isnan(energy):
        rec["correlation_pct"] = 100.0 * (hf - energy) / gap
        rec["correlation_pct_stderr"] = 100.0 * stderr / gap
    else:
        rec["correlation_pct"] = math.nan
        rec["correlation_pct_stderr"] = math.nan
    return rec


def merge_record(
    *,
    number: int,
    state: str,
    value: float | None,
    params: Mapping[str, Any],
    user_attrs: Mapping[str, Any],
    summary: Mapping[str, Any],
    run_dir: str | None,
) -> dict:
    """One tidy row from a trial's Optuna record and its summary.json (the summary wins).

    ``params`` are the flat swept keys and are stored under ``("param", key)`` so that a swept key
    never collides with a record column; :func:`build_frame` unpacks them.
    """
    rec: dict[str, Any] = {"trial": int(number), "state": state, "value": _as_float(value)}
    for key in _SUMMARY_KEYS:
        rec[key] = _first(summary.get(key), user_attrs.get(key))
    rec["reason"] = _first(summary.get("reason"), user_attrs.get("fail_reason"), user_attrs.get("reason"))
    rec["seed"] = _first(params.get("seed"), rec.get("seed"))
    rec["run_dir"] = run_dir
    derive_energies(rec)
    for key, val in params.items():
        rec[("param", key)] = val
    return rec


def build_frame(records: Iterable[dict], params: list[str], attrs: Mapping[str, Any]) -> pd.DataFrame:
    """Assemble merged records into the tidy trial frame (column order in the module docstring)."""
    rows = []
    for rec in records:
        row = {k: v for k, v in rec.items() if not isinstance(k, tuple)}
        for key in params:
            row[key] = rec.get(("param", key), row.get(key) if key in ("seed", "network") else None)
        rows.append(row)
    columns = ["trial", "state", *params]
    if "seed" not in params:
        columns.append("seed")
    columns += [c for c in RECORD_COLUMNS if c not in columns]
    columns += [c for c in _ordered_keys(rows) if c not in columns]  # e.g. wandb_id
    frame = pd.DataFrame(rows, columns=columns)
    if not frame.empty:
        frame = frame.sort_values("trial", kind="stable").reset_index(drop=True)
    for col in ("trial", "param_count", "iterations"):
        if frame[col].notna().all():
            frame[col] = frame[col].astype("int64")
    frame.attrs.update({k: v for k, v in attrs.items()})
    frame.attrs["params"] = list(params)
    return frame


def _ordered_keys(dicts: Iterable[Mapping[str, Any]]) -> list[str]:
    """Union of the keys of several dicts, in order of first appearance."""
    keys: dict[str, None] = {}
    for d in dicts:
        for key in d:
            keys.setdefault(key, None)
    return list(keys)


# ----------------------------------------------------------------------------- Optuna


def _grid_space(trials) -> dict | None:
    """The grid sampler's search space (param -> list of values) stored on the trials, if any."""
    for trial in trials:
        space = trial.system_attrs.get("search_space")
        if isinstance(space, dict) and space:
            return {k: list(v) for k, v in space.items()}
    return None


def frame_from_study(study, output_root: str | os.PathLike | None = None, storage: str | None = None) -> pd.DataFrame:
    """The tidy trial frame of an opened Optuna study (see :func:`load_study`)."""
    trials = study.get_trials(deepcopy=False)
    attrs = dict(study.user_attrs)
    root = output_root if output_root is not None else attrs.get("output_root")
    records, all_params = [], []
    for trial in trials:
        run_dir = resolve_run_dir(trial.user_attrs.get("run_dir"), study.study_name, trial.number, root)
        params = trial_params(trial)
        all_params.append(params)
        records.append(
            merge_record(
                number=trial.number,
                state=trial.state.name,
                value=trial.value if trial.values is not None and len(trial.values) == 1 else None,
                params=params,
                user_attrs=trial.user_attrs,
                summary=read_summary(run_dir),
                run_dir=run_dir,
            )
        )
    try:
        direction = study.direction.name.lower()
    except RuntimeError:  # multi-objective study
        direction = str(attrs.get("direction", "minimize"))
    meta = {
        "study": study.study_name,
        "source": "optuna",
        "storage": storage,
        # issue 10: a multi-objective study records a list; the frame keeps one string (and the list)
        "objective": ", ".join(map(str, attrs["objective"])) if isinstance(attrs.get("objective"), list)
        else attrs.get("objective"),
        "objectives": attrs.get("objective") if isinstance(attrs.get("objective"), list) else None,
        "direction": direction,
        "sweep": attrs.get("sweep"),
        "output_root": str(root) if root is not None else None,
        "grid": _grid_space(trials),
        "n_planned": attrs.get("n_planned"),
        "base_overrides": attrs.get("base_overrides"),  # the figure titles (scale) and report.html
    }
    space = attrs.get("space") if isinstance(attrs.get("space"), list) else []
    frame = build_frame(records, _ordered_keys([dict.fromkeys(map(str, space)), *all_params]), meta)
    from .run_columns import add_run_columns  # scale, planned iterations, convergence

    return add_run_columns(frame)


def load_study(name: str, storage: str | None = None, output_root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per trial of the Optuna study ``name``, merged with each trial's summary.json.

    Args:
        name: the study name (the sweep file's study name, e.g. ``width``).
        storage: an Optuna storage URL; default ``sqlite:///<output_root>/studies.db``.
        output_root: where the study's run directories live (default: the study's recorded
            ``output_root``, else ``runs``); used to find moved run directories.

    Returns:
        The tidy trial frame described in the module docstring, sorted by trial number.

    Raises:
        StudyNotFound: no such storage file or study.
    """
    url = storage or default_storage(output_root)
    study = open_study(name, url, output_root)
    return frame_from_study(study, output_root, storage=url)


def param_importances(study, min_trials: int = MIN_IMPORTANCE_TRIALS) -> tuple[pd.DataFrame | None, str | None]:
    """Optuna's parameter importances of a study as a frame ``param, importance`` (sums to 1).

    Returns ``(None, reason)`` instead of unreliable numbers: fewer than ``min_trials`` complete
    trials, no parameter that took more than one value, or Optuna warning that the importances
    are degenerate.
    """
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < min_trials:
        return None, f"too few complete trials for parameter importances ({len(complete)} < {min_trials})"
    varying = [k for k in _ordered_keys(t.params for t in complete) if len({repr(t.params.get(k)) for t in complete}) > 1]
    if not varying:
        return None, "no parameter took more than one value among the complete trials"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # issue 10: a multi-objective study ranks the parameters by its first objective (the error)
        target = (lambda t: t.values[0]) if len(study.directions) > 1 else None
        try:
            result = optuna.importance.get_param_importances(study, params=varying, target=target)
        except (RuntimeError, ValueError, ZeroDivisionError) as err:
            return None, f"parameter importances failed: {err}"
    degenerate = [str(w.message) for w in caught if "will be equal" in str(w.message)]
    if degenerate:
        return None, f"parameter importances are degenerate: {degenerate[0]}"
    frame = pd.DataFrame({"param": list(result), "importance": [float(v) for v in result.values()]})
    return frame, None


# ----------------------------------------------------------------------------- history


def load_history(
    name: str | None = None,
    storage: str | None = None,
    output_root: str | os.PathLike | None = None,
    trials: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per-iteration training metrics of every trial in long form.

    One row per (trial, step): ``trial``, the swept parameters, ``seed``, ``state``, ``system``,
    ``network``, ``reference_energy`` (Hartree), then the columns of each run's metrics.csv
    (``step``, ``energy`` Hartree, ``variance`` Hartree^2, ``pmove``, ``move_width`` bohr,
    ``learning_rate``, ``step_time_s`` seconds). Trials that share a run directory (a retried
    trial) appear once, under the trial that completed (else the latest one).

    Pass ``trials`` (a frame from :func:`load_study`) to avoid reading the storage again.
    """
    if trials is None:
        if name is None:
            raise ValueError("load_history needs a study name or a trial frame")
        trials = load_study(name, storage=storage, output_root=output_root)
    params = list(trials.attrs.get("params", []))
    lead = ["trial", *params] + [c for c in ("seed", "state", "system", "network", "reference_energy") if c not in params]
    pieces = []
    for _, row in _one_trial_per_run_dir(trials).iterrows():
        metrics = read_metrics(row["run_dir"])
        if metrics is None or metrics.empty:
            continue
        for col in reversed(lead):
            metrics.insert(0, col, [row[col]] * len(metrics))
        pieces.append(metrics)
    if not pieces:
        history = pd.DataFrame(columns=[*lead, "step"])
    else:
        history = pd.concat(pieces, ignore_index=True).sort_values(["trial", "step"], kind="stable")
        history = history.reset_index(drop=True)
    history.attrs.update(trials.attrs)
    return history


def _one_trial_per_run_dir(trials: pd.DataFrame) -> pd.DataFrame:
    """Rows with a run directory, one per directory: the COMPLETE trial, else the latest."""
    rows = trials[trials["run_dir"].notna()].copy()
    rows["_complete"] = rows["state"].eq("COMPLETE")
    rows = rows.sort_values(["_complete", "trial"], kind="stable")
    return rows.drop_duplicates("run_dir", keep="last").drop(columns="_complete").sort_values("trial")


def read_metrics(run_dir: str | None) -> pd.DataFrame | None:
    """A run's metrics.csv, or None when absent, empty or unreadable."""
    if not run_dir:
        return None
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None


# ----------------------------------------------------------------------------- W&B


def _wandb_params(config: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, Any]:
    """The swept parameters of a W&B run.

    ablate.wandb_sink writes a flat config with each swept value at its own key and the list of
    swept keys in ``trial.swept``; a nested ``trial.params`` dict (config or summary ``params``) is
    read too.
    """
    swept = config.get("trial.swept")
    if isinstance(swept, (list, tuple)) and swept:
        flat = flatten(config, keep=())
        return {str(k): flat.get(str(k)) for k in swept}
    for candidate in (
        summary.get("params"),
        config.get("trial.params"),
        (config.get("trial") or {}).get("params") if isinstance(config.get("trial"), Mapping) else None,
    ):
        if isinstance(candidate, Mapping) and candidate:
            return dict(candidate)
    return {}


def wandb_row(record: Mapping[str, Any]) -> dict:
    """Map one W&B run record to a merged trial record (as :func:`merge_record` returns).

    ``record`` is a plain dict: ``id``, ``name``, ``state`` (W&B run state), ``job_type``,
    ``config`` and ``summary`` (dicts; the sink copies summary.json, less its nested ``config`` and
    ``params``, into the run summary). The trial state comes from the summary's ``status`` when
    present, else from the W&B run state; the trial number from the summary's ``trial``, else the
    config's ``trial.number``.
    """
    config = dict(record.get("config") or {})
    summary = dict(record.get("summary") or {})
    params = _wandb_params(config, summary)
    flat_config = flatten({k: v for k, v in config.items() if k != "trial"}, keep=())
    trial_cfg = config.get("trial") if isinstance(config.get("trial"), Mapping) else {}
    number = _first(summary.get("trial"), flat_config.get("trial.number"), trial_cfg.get("number"))
    status = summary.get("status")
    state = _STATUS_TO_STATE.get(str(status)) or _WANDB_STATE_TO_STATE.get(str(record.get("state")).lower(), "FAIL")
    fallback = {
        "system": summary.get("system"),
        "network": _first(flat_config.get("network.type"), flat_config.get("network")),
        "seed": flat_config.get("seed"),
    }
    rec = merge_record(
        number=int(number) if number is not None else -1,
        state=state,
        value=None,
        params=params,
        user_attrs={k: v for k, v in fallback.items() if v is not None},
        summary=summary,
        run_dir=_first(summary.get("run_dir"), flat_config.get("run_dir")),
    )
    rec["wandb_id"] = record.get("id")
    return rec


def wandb_record(run) -> dict:
    """The plain-dict record :func:`wandb_row` reads, from a ``wandb.apis.public.Run``."""
    return {
        "id": run.id,
        "name": run.name,
        "state": run.state,
        "job_type": getattr(run, "job_type", None),
        "config": dict(run.config),
        "summary": dict(run.summary_metrics),
    }


def is_trial_record(record: Mapping[str, Any]) -> bool:
    """Whether a W&B run of the study's group is a trial (not the sink's ``analysis`` run)."""
    return record.get("job_type") != "analysis"


def load_wandb_study(
    name: str,
    project: str,
    entity: str | None = None,
    api=None,
    objective: str = "error_mha",
) -> pd.DataFrame:
    """The trial frame of a study synced to W&B: the runs of ``project`` whose group is ``name``.

    Returns the same columns as :func:`load_study` (``value`` is the ``objective`` summary key,
    ``wandb_id`` is added); the sink's ``analysis`` run of the group is left out. Trials without a recorded number are numbered in creation order.
    ``api`` defaults to ``wandb.Api()``; pass one for a custom server or timeout.
    """
    if api is None:
        import wandb

        api = wandb.Api()
    path = f"{entity}/{project}" if entity else project
    records = [wandb_record(run) for run in api.runs(path, filters={"group": name}, order="+created_at")]
    rows = [wandb_row(rec) for rec in records if is_trial_record(rec)]
    used = {r["trial"] for r in rows if r["trial"] >= 0}
    next_free = (max(used) + 1) if used else 0
    for row in rows:
        row["value"] = _as_float(row.get(objective))
        if row["trial"] < 0:
            row["trial"] = next_free
            next_free += 1
    params = _ordered_keys({k[1]: None for k in r if isinstance(k, tuple)} for r in rows)
    meta = {"study": name, "source": "wandb", "storage": f"wandb:{path}", "objective": objective,
            "direction": "minimize", "sweep": None, "output_root": None, "grid": None}
    from .run_columns import add_run_columns  # scale, planned iterations, convergence

    return add_run_columns(build_frame(rows, params, meta))


def complete_trials(frame: pd.DataFrame) -> pd.DataFrame:
    """COMPLETE trials only, one per run directory (a retried trial is not counted twice)."""
    done = frame[frame["state"] == "COMPLETE"]
    with_dir = done[done["run_dir"].notna()].drop_duplicates("run_dir", keep="last")
    return pd.concat([with_dir, done[done["run_dir"].isna()]]).sort_values("trial", kind="stable")
