"""Simulated studies: trial frames with the loaders' columns, for the verdicts' error rates and a
study's power before it runs.

A simulated trial is what :func:`analysis.load_study` would return for a trial whose evaluated
error (mHa) is drawn from a stated model, so the real study code (each study's figure data and
claims, the Holm adjustment, the looks) runs on it unchanged:

* the *true* error of a grid point is ``truth(point)`` (mHa; its seeds' geometric mean);
* seed-to-seed scatter is lognormal: a seed's error is ``truth * exp(scatter * z)`` with z
  standard normal (``scatter`` is the standard deviation of ln(error) between seeds; a relative
  SD of 0.3-1.0, as measured between quick-scale seeds);
* each trial's reblocked standard error of the energy is ``stderr_mha`` (its evaluated energy is
  its error plus a normal draw of that size);
* the training windows (:mod:`analysis.stability`): mid-training error ``mid_factor`` x the end
  error (the ratio between settings held over training), end window = the evaluated energy;
* every trial converged, on one budget (``iterations`` x ``walkers``, quick scale), unless the
  point's ``state`` says FAIL/PRUNED; ``energy_spikes`` from ``spikes(point, rng)``.

A grid point may override these for its own seeds (the calibration harness,
benchmarks/verdict_calibration.py, draws them per point): ``"_truth"`` (its true error, instead of
``truth(point)``), ``"_scatter"`` (its log-SD between seeds: a heteroscedastic study),
``"_stderr"`` (its reblocked standard error, mHa: error bars that shrink with the walkers) and
``"_stderr_scatter"`` (the log-SD of that error bar between seeds; 0 by default).

With ``exact=True`` the seeds' z are fixed quantiles scaled to mean 0 and standard deviation 1
(no randomness): a study's *planned* standard errors, from which each claim states the smallest
effect it detects (:func:`planned_claims`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd
from scipy import stats

from .report import build_figure_data, judged_claims, study_claims
from .sequential import decide_looks, looks_of, looks_table
from .studies import plan_figures
from .study import Inputs

HARTREE_TO_MHA = 1000.0


@lru_cache(maxsize=1)
def _systems() -> dict[str, tuple[int, float]]:
    """System -> (electrons, reference energy in Hartree) from ablate/data/energies.csv."""
    text = resources.files("ablate").joinpath("data/energies.csv").read_text()
    out = {}
    for row in csv.DictReader(text.splitlines()):
        out[row["system"]] = (int(row["electrons_up"]) + int(row["electrons_down"]), float(row["energy_hartree"]))
    return out


def system_facts(system: str) -> tuple[int, float]:
    """(electrons, reference energy in Hartree) of a known system; (0, -1.0) for an unknown one."""
    return _systems().get(str(system), (0, -1.0))


def seed_scores(n: int, rng: np.random.Generator | None) -> np.ndarray:
    """n standard-normal draws, or (``rng`` None) n fixed quantiles scaled to mean 0, SD 1."""
    if rng is not None:
        return rng.standard_normal(n)
    if n == 1:
        return np.zeros(1)
    z = stats.norm.ppf((np.arange(n) + 0.5) / n)
    return (z - z.mean()) / z.std(ddof=1)


class _SharedList(list):
    """A list in a simulated frame's attrs that pandas shares instead of deep-copying (pandas
    deep-copies ``attrs`` on every operation; the study code never changes them in place)."""

    def __deepcopy__(self, memo):
        return self


class _SharedDict(dict):
    """A dict in a simulated frame's attrs that pandas shares instead of deep-copying."""

    def __deepcopy__(self, memo):
        return self


def _shared(value):
    """``value`` with its lists and dicts shared across pandas' copies (:class:`_SharedList`)."""
    if isinstance(value, Mapping):
        return _SharedDict({k: _shared(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return _SharedList(_shared(v) for v in value)
    return value


def trial_frame(points: Sequence[Mapping], params: Sequence[str], truth: Callable[[Mapping], float], *,
                seeds: int = 2, scatter: float = 0.5, stderr_mha: float = 0.2, mid_factor: float = 1.5,
                rng: np.random.Generator | None = None, iterations: int = 1000, walkers: int = 256,
                system: str = "LiH", network: str = "ferminet",
                spikes: Callable[[Mapping, np.random.Generator | None], int] | None = None,
                attrs: Mapping | None = None) -> pd.DataFrame:
    """The trial frame of a simulated grid study (module docstring).

    Args:
        points: grid points without the seed (``{"network.width": 8}``; ``system``/``network``
            keys set those columns); a point may carry ``"_state"`` (FAIL/PRUNED) for all its seeds
            and the per-point overrides of the module docstring (``_truth``, ``_scatter``,
            ``_stderr``, ``_stderr_scatter``).
        params: the swept keys, as the frame's ``attrs["params"]`` (``seed`` added when seeds > 1).
        truth: the true (geometric-mean) error of a point, mHa.
        seeds: seeds per point (0 ... seeds-1); a point may carry ``"_seeds"`` to override.
        rng: the random generator; None for exact planned scatter (:func:`seed_scores`).
    """
    rows = []
    number = 0
    for point in points:
        n = int(point.get("_seeds", seeds))
        z = seed_scores(n, rng)
        sys_name = str(point.get("system", system))
        electrons, reference = system_facts(sys_name)
        params_of = {k: v for k, v in point.items() if not k.startswith("_")}
        state = str(point.get("_state", "COMPLETE"))
        true = float(point["_truth"]) if "_truth" in point else float(truth(params_of))
        spread = float(point.get("_scatter", scatter))
        point_stderr = float(point.get("_stderr", stderr_mha))
        bar_spread = float(point.get("_stderr_scatter", 0.0))
        bar_z = seed_scores(n, rng) if bar_spread > 0 else np.zeros(n)
        for seed in range(n):
            error = true * math.exp(spread * float(z[seed]))
            se = point_stderr * math.exp(bar_spread * float(bar_z[seed]))
            noise = float(rng.standard_normal()) * se if rng is not None else 0.0
            measured = error + noise
            energy = reference + measured / HARTREE_TO_MHA
            row = {"trial": number, "state": state, **params_of, "seed": seed, "system": sys_name,
                   "network": str(point.get("network", point.get("network.type", network))),
                   "status": {"COMPLETE": "completed", "FAIL": "failed", "PRUNED": "pruned"}.get(state, "running"),
                   "reason": None if state == "COMPLETE" else f"simulated {state.lower()}",
                   "run_dir": None, "scale": "quick", "iterations_planned": iterations, "batch_size":
                   int(point.get("batch_size", walkers)), "n_electrons": float(electrons),
                   "energy_spikes": float(spikes(params_of, rng)) if spikes is not None else 0.0,
                   "ms_per_iteration": float(point.get("_ms", 10.0)), "wall_time_s": 60.0,
                   "device_seconds": 60.0, "training_flops": 1e12, "param_count": 1000, "devices": 1,
                   "flops_per_iteration": 1e9, "variance": 0.01}
            if state == "COMPLETE":
                row.update({"value": measured, "energy": energy, "energy_stderr": se / HARTREE_TO_MHA,
                            "reference_energy": reference, "error_mha": measured, "error_stderr_mha": se,
                            "iterations": iterations, "converged": True,
                            "mid_energy": reference + mid_factor * measured / HARTREE_TO_MHA,
                            "mid_stderr": se / HARTREE_TO_MHA, "end_energy": energy,
                            "end_stderr": se / HARTREE_TO_MHA})
            else:
                row.update({"value": math.nan, "energy": math.nan, "energy_stderr": math.nan,
                            "reference_energy": reference, "error_mha": math.nan, "error_stderr_mha": math.nan,
                            "iterations": math.nan, "converged": pd.NA, "mid_energy": math.nan,
                            "mid_stderr": math.nan, "end_energy": math.nan, "end_stderr": math.nan})
            rows.append(row)
            number += 1
    frame = pd.DataFrame(rows)
    frame["converged"] = frame["converged"].astype("boolean")
    keys = list(params) + (["seed"] if "seed" not in params and max(int(p.get("_seeds", seeds)) for p in points) > 1
                           else [])
    frame.attrs.update({"study": "simulated", "source": "simulation", "params": keys,
                        "base_overrides": ["scale=quick"], **dict(attrs or {})})
    # shared, not deep-copied by every pandas operation (about a tenth of a simulated study's time)
    frame.attrs.update({k: _shared(v) for k, v in frame.attrs.items()})
    return frame


def figure_claims(frame: pd.DataFrame, every_study: bool = True):
    """The study's claims on a trial frame as the report judges them (every figure the trials call
    for, every claim judged together at each look): (claims, look lines).

    ``every_study=False`` leaves out the studies that look at every study (cost, extrapolated
    limits: :attr:`analysis.study.Study.every_study`), which roughly halves the time of a small
    study. It gives the report's verdicts whenever those studies make no testable claim (their
    notes and blocked claims do not join the Holm adjustment), as in a simulated frame, whose
    trials all have one variance and one cost; the calibration harness checks this on the first
    simulated study of every scenario."""

    names = plan_figures(frame, every_study=False)
    inputs = Inputs(frame)
    data, _ = build_figure_data(names, inputs)
    if every_study:
        return judged_claims(inputs, names, data)

    def claims_of(trials: pd.DataFrame):  # judged_claims without the every-study studies
        if len(trials) == len(frame):
            return study_claims(inputs, data)
        sub = replace(inputs, trials=trials)
        sub_data, _ = build_figure_data(names, sub)
        return study_claims(sub, sub_data)

    looks = looks_of(frame)
    claims, records = decide_looks(frame, claims_of)
    return claims, (looks_table(records) if len(looks) > 1 or looks[0].fraction < 1 else [])


def planned_claims(points: Sequence[Mapping], params: Sequence[str], *, seeds: int, scatter: float,
                   error_mha: float, stderr_mha: float = 0.2, attrs: Mapping | None = None,
                   system: str = "LiH", network: str = "ferminet", iterations: int = 1000, walkers: int = 256):
    """The claims a study would make with ``seeds`` seeds per point and exactly the stated scatter
    around a flat error of ``error_mha`` (no true effect): each claim's evidence states the smallest
    effect its test detects at 80% power (:func:`analysis.verdicts.power_text`). ``system``,
    ``network``, ``iterations`` and ``walkers`` are the study's base values (:func:`trial_frame`)."""
    frame = trial_frame(points, params, lambda p: error_mha, seeds=seeds, scatter=scatter, stderr_mha=stderr_mha,
                        rng=None, attrs=attrs, system=system, network=network, iterations=iterations,
                        walkers=walkers)
    return figure_claims(frame)[0]


__all__ = ["figure_claims", "planned_claims", "seed_scores", "system_facts", "trial_frame"]
