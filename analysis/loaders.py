"""Loaders: an Optuna study (plus its run directories) -> tidy pandas frames (a W&B group: wandb_loader.py).

Units follow docs/contracts.md: energies in Hartree (``energy``, ``energy_stderr``,
``reference_energy``, ``hf_energy``), errors in mHa (columns ending ``_mha``), times in
seconds (``wall_time_s``) and milliseconds (``ms_per_iteration``), correlation energy in
percent (``correlation_pct``).

The trial frame (:func:`load_study`) has one row per Optuna trial and these columns, in order:
``trial``, ``state``, every swept parameter (flat keys as in the trial params, e.g.
``network.width``; ``seed`` when it is swept), ``seed`` (when not swept), then
:data:`RECORD_COLUMNS`, then the columns derived from each run directory
(``analysis.run_columns.RUN_COLUMNS``: scale, planned iterations, convergence). ``frame.attrs`` holds ``study``, ``params`` (the swept keys),
``objective``, ``direction``, ``storage``, ``source``, ``grid`` (the grid sampler's
search space when known), ``claims`` (the sweep file's claim settings, :class:`analysis.verdicts.Rules`),
``looks`` and ``max_seeds`` (a study that adds seeds, :mod:`analysis.sequential`).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import optuna
import pandas as pd

from .records import FRAME_KEYS, default_storage_url, redact_text, redact_url, sqlite_path, trial_dir_name, trial_params
from .run_columns import add_run_columns
from .run_files import read_metrics, read_summary

HARTREE_TO_MHA = 1000.0
DEFAULT_OUTPUT_ROOT = "runs"
MIN_IMPORTANCE_TRIALS = 10

# Columns the frame derives or merges itself: ``value`` (the trial's objective), the
# correlation energy recovered (:func:`derive_energies`), ``reason`` (summary.json's, else the
# trial's ``fail_reason``) and ``run_dir`` (where the run directory is on this machine).
DERIVED_COLUMNS = ("value", "correlation_pct", "correlation_pct_stderr", "reason", "run_dir")

# Columns after the parameters, in order (see the module docstring for units): the summary
# fields declared as frame columns (``ablate.records.run_record.FRAME_KEYS``, in their order there; each
# read from summary.json, else the trial's user attribute of the same name), then the above.
RECORD_COLUMNS = (*(k for k in FRAME_KEYS if k != "seed"), *DERIVED_COLUMNS)

# Keys read from summary.json, falling back to the trial's user attrs of the same name.
_SUMMARY_KEYS = FRAME_KEYS

# Optuna trial states are reported by name; summary.json's status maps onto the same names.
STATUS_TO_STATE = {
    "completed": "COMPLETE",
    "failed": "FAIL",
    "pruned": "PRUNED",
    "running": "RUNNING",
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
        raise StudyNotFound(f"unknown study {name!r}: no study storage at {db_file} ({redact_url(url)})")
    try:
        names = optuna.get_all_study_names(url)
    except Exception as err:  # any driver/schema error: report it on one line
        detail = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise AnalysisError(redact_text(f"cannot read study storage {url}: {type(err).__name__} {detail}".strip()))
    if name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise StudyNotFound(f"unknown study {name!r} in {redact_url(url)} (studies there: {known})")
    return optuna.load_study(study_name=name, storage=url)


# ----------------------------------------------------------------------------- run directories


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
        candidates.append(base / trial_dir_name(number))
    for cand in candidates:
        if cand.is_dir():
            return str(cand.resolve())
    return stored or None


# ----------------------------------------------------------------------------- rows


def first_value(*values: Any) -> Any:
    """The first value that is neither None nor a float NaN."""
    for value in values:
        if value is None:
            continue
        if isinstance(value, float) and math.isnan(value):
            continue
        return value
    return None


def as_float(value: Any) -> float:
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
    energy = as_float(rec.get("energy"))
    stderr = as_float(rec.get("energy_stderr"))
    ref = as_float(rec.get("reference_energy"))
    hf = as_float(rec.get("hf_energy"))
    if math.isnan(as_float(rec.get("error_mha"))):
        rec["error_mha"] = (energy - ref) * HARTREE_TO_MHA
    if math.isnan(as_float(rec.get("error_stderr_mha"))) and not math.isnan(ref):
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
    rec: dict[str, Any] = {"trial": int(number), "state": state, "value": as_float(value)}
    for key in _SUMMARY_KEYS:
        rec[key] = first_value(summary.get(key), user_attrs.get(key))
    rec["reason"] = first_value(summary.get("reason"), user_attrs.get("fail_reason"), user_attrs.get("reason"))
    rec["seed"] = first_value(params.get("seed"), rec.get("seed"))
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
    columns += [c for c in ordered_keys(rows) if c not in columns]  # e.g. wandb_id
    frame = pd.DataFrame(rows, columns=columns)
    if not frame.empty:
        frame = frame.sort_values("trial", kind="stable").reset_index(drop=True)
    for col in ("trial", "param_count", "iterations"):
        if frame[col].notna().all():
            frame[col] = frame[col].astype("int64")
    frame.attrs.update({k: v for k, v in attrs.items()})
    frame.attrs["params"] = list(params)
    return frame


def ordered_keys(dicts: Iterable[Mapping[str, Any]]) -> list[str]:
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


def frame_from_study(study, output_root: str | os.PathLike | None = None, storage: str | None = None,
                     cache: dict | None = None) -> pd.DataFrame:
    """The tidy trial frame of an opened Optuna study (see :func:`load_study`); ``cache`` keeps the
    run files read (:mod:`analysis.run_files`) for the rest of the same load."""
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
                summary=read_summary(run_dir, cache),
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
        "storage": redact_url(storage) if storage else storage,   # shown in report.md/html
        # a multi-objective study records a list; the frame keeps one string (and the list)
        "objective": ", ".join(map(str, attrs["objective"])) if isinstance(attrs.get("objective"), list)
        else attrs.get("objective"),
        "objectives": attrs.get("objective") if isinstance(attrs.get("objective"), list) else None,
        "direction": direction,
        "sweep": attrs.get("sweep"),
        "output_root": str(root) if root is not None else None,
        "grid": _grid_space(trials),
        "n_planned": attrs.get("n_planned"),
        "base_overrides": attrs.get("base_overrides"),  # the figure titles (scale) and report.html
        # how the claims are judged (analysis.verdicts.Rules) and the looks of a study that adds
        # seeds (analysis.sequential): written by the command line, absent in older studies
        "claims": attrs.get("claims") if isinstance(attrs.get("claims"), dict) else None,
        "looks": attrs.get("looks") if isinstance(attrs.get("looks"), list) else None,
        "max_seeds": attrs.get("max_seeds"),
    }
    space = attrs.get("space") if isinstance(attrs.get("space"), list) else []
    frame = build_frame(records, ordered_keys([dict.fromkeys(map(str, space)), *all_params]), meta)
    return add_run_columns(frame, cache)


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
    varying = [k for k in ordered_keys(t.params for t in complete) if len({repr(t.params.get(k)) for t in complete}) > 1]
    if not varying:
        return None, "no parameter took more than one value among the complete trials"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # a multi-objective study ranks the parameters by its first objective (the error)
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
    cache: dict | None = None,
) -> pd.DataFrame:
    """Per-iteration training metrics of every trial in long form.

    One row per (trial, step): ``trial``, the swept parameters, ``seed``, ``state``, ``system``,
    ``network``, ``reference_energy`` (Hartree), then the columns of each run's metrics.csv
    (``step``, ``energy`` Hartree, ``variance`` Hartree^2, ``pmove``, ``move_width`` bohr,
    ``learning_rate``, ``step_time_s`` seconds). Trials that share a run directory (a retried
    trial) appear once, under the trial that completed (else the latest one).

    Pass ``trials`` (a frame from :func:`load_study`) to avoid reading the storage again, and the
    ``cache`` of that load to avoid reading the run directories again.
    """
    if trials is None:
        if name is None:
            raise ValueError("load_history needs a study name or a trial frame")
        trials = load_study(name, storage=storage, output_root=output_root)
    params = list(trials.attrs.get("params", []))
    lead = ["trial", *params] + [c for c in ("seed", "state", "system", "network", "reference_energy") if c not in params]
    pieces = []
    for _, row in _one_trial_per_run_dir(trials).iterrows():
        metrics = read_metrics(row["run_dir"], cache)
        if metrics is None or metrics.empty:
            continue
        metrics = metrics.copy()
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


# ----------------------------------------------------------------------------- W&B


def complete_trials(frame: pd.DataFrame) -> pd.DataFrame:
    """COMPLETE trials only, one per run directory (a retried trial is not counted twice)."""
    done = frame[frame["state"] == "COMPLETE"]
    with_dir = done[done["run_dir"].notna()].drop_duplicates("run_dir", keep="last")
    return pd.concat([with_dir, done[done["run_dir"].isna()]]).sort_values("trial", kind="stable")
