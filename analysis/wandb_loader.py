"""The trial frame of a study synced to Weights & Biases (:func:`load_wandb_study`).

The same columns as :func:`analysis.load_study` (module :mod:`analysis.loaders`), from the W&B
runs grouped under the study's name; ``wandb`` is imported only when the API is called.
"""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from .loaders import STATUS_TO_STATE, as_float, build_frame, first_value, merge_record, ordered_keys
from .records import flatten
from .run_columns import add_run_columns

# W&B run states mapped onto Optuna's trial state names.
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


def _wandb_params(config: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, Any]:
    """The swept parameters of a W&B run.

    ablate.tracking.wandb_sink writes a flat config with each swept value at its own key and the list of
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
    """Map one W&B run record to a merged trial record (as :func:`analysis.loaders.merge_record` returns).

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
    number = first_value(summary.get("trial"), flat_config.get("trial.number"), trial_cfg.get("number"))
    status = summary.get("status")
    state = STATUS_TO_STATE.get(str(status)) or _WANDB_STATE_TO_STATE.get(str(record.get("state")).lower(), "FAIL")
    fallback = {
        "system": summary.get("system"),
        "network": first_value(flat_config.get("network.type"), flat_config.get("network")),
        "seed": flat_config.get("seed"),
    }
    rec = merge_record(
        number=int(number) if number is not None else -1,
        state=state,
        value=None,
        params=params,
        user_attrs={k: v for k, v in fallback.items() if v is not None},
        summary=summary,
        run_dir=first_value(summary.get("run_dir"), flat_config.get("run_dir")),
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

    Returns the same columns as :func:`analysis.load_study` (``value`` is the ``objective`` summary
    key, ``wandb_id`` is added); the sink's ``analysis`` run of the group is left out. Trials
    without a recorded number are numbered in creation order.
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
        row["value"] = as_float(row.get(objective))
        if row["trial"] < 0:
            row["trial"] = next_free
            next_free += 1
    params = ordered_keys({k[1]: None for k in r if isinstance(k, tuple)} for r in rows)
    meta = {"study": name, "source": "wandb", "storage": f"wandb:{path}", "objective": objective,
            "direction": "minimize", "sweep": None, "output_root": None, "grid": None}
    return add_run_columns(build_frame(rows, params, meta))
