"""Grid points as the study stores them, and the pass that keeps every point enqueued once.

A grid point is a flat ``{config key: value}`` dict. Each grid trial is enqueued with the point
as Optuna's ``fixed_params`` (exact types, read by :func:`ablate.records.study_record.trial_params`) and a
``point_key`` user attribute; the trial never calls ``suggest_*`` for it. Optuna's own params are
only a mirror for the dashboard (:func:`mirror_params`), so growing an axis (a new width, a new
categorical value, more seeds) never meets "CategoricalDistribution does not support dynamic
value space".

Point identity is by *effective* value: a key the point does not name has the base config's
value. So ``{network.width: 8}`` (a study run with ``sweep.seeds=1``) and
``{network.width: 8, seed: 0}`` (the same point once ``sweep.seeds=2`` adds the seed axis) are
the same point, and growing the seeds runs only the new (point, seed) pairs.

:func:`missing_work` is the reconciliation pass (pure: trials in, points to enqueue out). It runs
under the study mutex when a driver starts or joins, and with every stale check, and enqueues:

- grid points no trial has (a grown grid);
- the continuation of a trial that was failed to be enqueued again (``requeued``) when nothing
  enqueued it: a driver killed between the FAIL and the enqueue loses no point.

A study with rounds of seeds (:mod:`sweeps.rounds`) keeps the points each round grew in its
``rounds`` user attribute; :func:`study_grid` adds their (point, seed) pairs to the sweep's grid,
so the reconciliation pass of a rerun, and of every other driver of the study, enqueues them too.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Mapping

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from ablate.records.study_record import trial_params

LIVE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
CONTINUATION_KEYS = ("run_dir", "run_id")
ROUNDS = "rounds"   # study user attr: [{"seeds": 4, "points": [{point less its seed}, ...]}, ...]


def _canon(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and math.isfinite(float(value)):
        return float(value)
    return repr(value)


def point_key(params: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> str:
    """Canonical JSON of a point, with the base config's value for keys it does not name."""
    full = {**dict(defaults or {}), **dict(params)}
    return json.dumps({k: _canon(v) for k, v in sorted(full.items())}, sort_keys=True)


def study_grid(grid: list[dict], attrs: Mapping[str, Any],
               defaults: Mapping[str, Any] | None = None) -> list[dict]:
    """The sweep's ``grid`` plus, for every round in the study's ``rounds`` attribute (``attrs``),
    each of its points at seeds 0 ... seeds-1; each effective point once, the grid's first."""
    out, seen = [], set()
    grown = [{**dict(point), "seed": seed} for r in (attrs.get(ROUNDS) or [])
             for point in r.get("points", []) for seed in range(int(r.get("seeds", 0)))]
    for params in [*grid, *grown]:
        key = point_key(params, defaults)
        if key not in seen:
            seen.add(key)
            out.append(dict(params))
    return out


def trial_key(trial, defaults: Mapping[str, Any] | None = None) -> str:
    return point_key(trial_params(trial), defaults)


def continuation_attrs(trial, retries: int | None = None) -> dict[str, Any]:
    """User attributes of the trial that continues ``trial`` in its run directory."""
    attrs = {k: trial.user_attrs[k] for k in CONTINUATION_KEYS if k in trial.user_attrs}
    attrs["retries"] = trial.user_attrs.get("retries", 0) if retries is None else retries
    attrs["recovered_from"] = trial.number
    return attrs


def missing_work(trials: Iterable, grid: list[dict] | None,
                 defaults: Mapping[str, Any] | None = None) -> list[tuple[dict, dict]]:
    """(params, user_attrs) of the trials to enqueue so that every point has its trial.

    ``grid`` is None for TPE/random studies: then only lost continuations are enqueued.
    Duplicates (``duplicate_of``) do not count as a point's trial.
    """
    trials = [t for t in trials if not t.user_attrs.get("duplicate_of")]
    continued = {t.user_attrs.get("recovered_from") for t in trials}
    out: list[tuple[dict, dict]] = []
    if grid is None:
        for t in trials:
            if t.state == TrialState.FAIL and t.user_attrs.get("requeued") and t.number not in continued:
                out.append((trial_params(t), continuation_attrs(t)))
        return out
    by_key: dict[str, list] = {}
    for t in trials:
        by_key.setdefault(trial_key(t, defaults), []).append(t)
    for params in grid:
        key = point_key(params, defaults)
        ts = by_key.get(key, [])
        if not ts:
            out.append((dict(params), {"point_key": key}))
            continue
        if any(t.state in LIVE for t in ts):
            continue
        latest = max(ts, key=lambda t: t.number)
        if latest.user_attrs.get("requeued") and latest.number not in continued:
            out.append((trial_params(latest), {**continuation_attrs(latest), "point_key": key}))
    return out


def duplicate_of(trial, trials: Iterable, defaults: Mapping[str, Any] | None = None):
    """Another trial that already holds ``trial``'s grid point (COMPLETE, PRUNED or RUNNING), or None."""
    key = trial_key(trial, defaults)
    for t in trials:
        if t.number != trial.number and t.state in LIVE[:3] and not t.user_attrs.get("duplicate_of") \
                and trial_key(t, defaults) == key:
            return t
    return None


def mirror_distribution(values: list) -> Any:
    """A distribution for an axis that stays compatible when the axis grows: Int or Float over
    the axis's range for numbers (Optuna compares only their kind), categorical otherwise."""
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return IntDistribution(min(values), max(values))
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        return FloatDistribution(float(min(values)), float(max(values)))
    return CategoricalDistribution(list(values))


def mirror_params(storage, trial_id: int, point: Mapping[str, Any], axes: Mapping[str, list]) -> None:
    """Copy a grid point into Optuna's params where a compatible distribution exists (for the
    dashboard and importance plots); a value that does not fit is left to ``fixed_params``."""
    for key, value in point.items():
        values = list(axes.get(key) or [value])
        if value not in values:
            values.append(value)
        dist = mirror_distribution(values)
        try:
            internal = dist.to_internal_repr(float(value) if isinstance(dist, FloatDistribution) else value)
            storage.set_trial_param(trial_id, key, internal, dist)
        except (ValueError, TypeError):
            continue  # e.g. the study's first trials used another distribution for this key
