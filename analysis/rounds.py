"""A study with rounds of seeds, seen by the analysis before it runs (its plan: looks, levels and
the power of each claim) and between its rounds (the next round: which grid points get more seeds).

The sweep driver never imports this module: the command line (``ablate/cli/sweep_cli.py``) prints
:func:`plan_lines` for ``sweep.plan=true`` and when a study starts, and hands the driver a decide
step that calls :func:`next_round` on the study, loaded as the report loads it, after each round
(:mod:`sweeps.rounds` records and enqueues the round).

**The next round** (:func:`next_round`, pure: a loaded study or a trial frame in, the points to
grow out). The frame's ``looks`` and ``max_seeds`` attributes (the study's) say where the study
stands. Its claims are judged exactly as the report judges them (:func:`judged`: every figure the
trials call for, every look, Holm), and :func:`seeds_could_decide` picks the confirmatory claims
more seeds could still decide: :func:`analysis.sequential.pending`, less a claim blocked by a gate
besides the seeds one (``only 2 width values ...; one seed at ...``: more seeds cannot add a
width). Their trials (each claim's ``decision.trials``) name the grid points they rest on (the
trial's swept values less the seed); those points, and only those, get the next look's seeds:
:func:`analysis.sequential.schedule` doubles the seeds per look, capped at ``max_seeds``.

**The plan** (:func:`plan_lines`): the looks (:func:`analysis.sequential.schedule`), each one's
one-sided nominal level (:func:`analysis.inference.nominal_levels`, from the claims block's
``alpha``), and per claim the smallest effect it detects with 80% power at the planned seeds and
at ``max_seeds``, from the claims a simulated study without a true effect makes
(:func:`analysis.simulate.planned_claims`: every seed at the claims block's ``scatter`` around its
``error_mha``). The power figure is each claim's own (``decision.power``), at the per-test level
its evidence names; a look's level is lower (it spends ``alpha`` over the looks), which the
levels line states.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .inference import ALPHA, POWER, nominal_levels
from .report import build_figure_data, judged_claims
from .sequential import looks_of, pending, schedule
from .simulate import planned_claims
from .studies import plan_figures
from .study import Inputs
from .verdicts import Claim

# "detects a true factor 1.8 beyond no trend (80% power, level 0.025, 2 seeds per point)"
POWER_TEXT = re.compile(r"detects a true (?P<size>.+?) beyond (?P<boundary>.+?) \(\d+% power[^()]*\)\s*$")


@dataclass(frozen=True)
class NextRound:
    """What a study with rounds of seeds does next (module docstring): ``looked`` is the seeds per
    point of its last look (0: the study records no looks), ``seeds`` those of the next look (None:
    ``max_seeds`` reached, or no looks), ``claims`` the pending claims, ``trials`` the trial
    numbers they rest on and ``points`` their grid points less the seed, in trial order."""

    looked: int
    seeds: int | None
    claims: tuple[Claim, ...]
    trials: tuple[int, ...]
    points: tuple[dict, ...]


def judged(inputs: Inputs) -> list[Claim]:
    """The study's claims as the report judges them (every figure's data, every look), drawing
    nothing."""
    names = plan_figures(inputs.trials, every_study=True)
    data, _ = build_figure_data(names, inputs)
    return judged_claims(inputs, names, data)[0]


def next_round(study: Inputs | pd.DataFrame) -> NextRound:
    """The next round of a study with rounds of seeds (module docstring), from the loaded study
    (:meth:`analysis.study.Inputs.load`, as the report reads it) or a bare trial frame."""
    inputs = study if isinstance(study, Inputs) else Inputs(study)
    trials = inputs.trials
    looks = looks_of(trials)
    looked = looks[-1].seeds
    claims = tuple(seeds_could_decide(judged(inputs)))
    numbers = tuple(sorted({int(t) for c in claims for t in c.decision.trials}))
    max_seeds = int(trials.attrs.get("max_seeds") or 0)
    later = [n for n in schedule(looks[0].seeds, max_seeds) if n > looked] if looked > 0 else []
    return NextRound(looked, later[0] if later else None, claims, numbers, points_of(trials, numbers))


def seeds_could_decide(claims: Sequence[Claim]) -> list[Claim]:
    """The claims more seeds could still decide (:func:`analysis.sequential.pending`)."""
    return pending(list(claims))


def points_of(trials: pd.DataFrame, numbers: Sequence[int]) -> tuple[dict, ...]:
    """The grid points (swept values less the seed; a value the trial lacks left out) of the
    trials ``numbers``, each once, in trial order."""
    keys = [k for k in trials.attrs.get("params") or [] if k != "seed" and k in trials]
    rows = trials[trials["trial"].isin(list(numbers))].sort_values("trial")
    out, seen = [], set()
    for _, row in rows.iterrows():
        point = {k: _plain(row[k]) for k in keys if not _missing(row[k])}
        key = tuple(sorted((k, repr(v)) for k, v in point.items()))
        if key not in seen:
            seen.add(key)
            out.append(point)
    return tuple(out)


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _plain(value):
    """A frame cell as a plain Python value (numpy scalars unwrapped)."""
    return value.item() if isinstance(value, np.generic) else value


# ----------------------------------------------------------------------------- the plan


def look_levels(seeds: int, max_seeds: int, alpha: float = ALPHA) -> list[tuple[int, float]]:
    """(seeds per point, one-sided nominal level) of each planned look."""
    planned = schedule(seeds, max(seeds, max_seeds))
    return list(zip(planned, nominal_levels([n / planned[-1] for n in planned], alpha)))


def detects(claim: Claim) -> str:
    """``factor 1.8 beyond no trend``: the smallest effect a claim's test detects, from its
    ``decision.power`` (empty when the claim has no test)."""
    text = claim.decision.power if claim.decision is not None else ""
    m = POWER_TEXT.search(text or "")
    if m:
        return f"{m['size']} beyond {m['boundary']}"
    return (text or "").removeprefix("detects a true ")


def plan_lines(points: Sequence[Mapping], params: Sequence[str], *, seeds: int, max_seeds: int,
               claims: Mapping, study: str, system: str = "LiH", network: str = "ferminet",
               iterations: int = 1000, walkers: int = 256) -> list[str]:
    """The plan of a grid study (module docstring) as text lines: its looks with their levels,
    then per claim the smallest effect it detects at ``seeds`` and at ``max_seeds`` seeds per
    point. ``points`` are the grid points less the seed, ``params`` the swept keys less the seed,
    ``claims`` the sweep file's claims block (margins, alpha, scatter, error_mha)."""
    alpha = float(claims.get("alpha", ALPHA))
    scatter, error = float(claims.get("scatter", 0.5)), float(claims.get("error_mha", 3.0))
    looks = look_levels(seeds, max_seeds, alpha)
    levels = ", ".join(f"{n} seeds {lv:.2g}" for n, lv in looks)
    lines = [f"looks (seeds per point, one-sided level): {levels}"
             + (f" (Pocock-type spending of alpha {alpha:g} over the looks)" if len(looks) > 1 else "")]
    counts = [seeds] + ([max_seeds] if max_seeds > seeds else [])
    attrs = {"study": study, "sweep": study, "claims": dict(claims)}
    found: dict[int, list[Claim]] = {}
    for n in counts:
        found[n] = planned_claims(points, params, seeds=n, scatter=scatter, error_mha=error, attrs=attrs,
                                  system=system, network=network, iterations=iterations, walkers=walkers)
    at_max = {c.key: c for c in found[counts[-1]]}
    shown = 0
    lines.append(f"power ({POWER:.0%}, one-sided level {ALPHA:g} per test; seeds scattered by {scatter:g} in ln "
                 f"error around {error:g} mHa, the claims block's scatter and error_mha):")
    for claim in found[seeds]:
        first = detects(claim)
        last = detects(at_max[claim.key]) if claim.key in at_max else ""
        if not first and not last:
            continue
        shown += 1
        text = f"  {claim.statement}: " + (f"detects a true {first} at {_per_point(seeds)}" if first
                                             else f"no test at {_per_point(seeds)}")
        if len(counts) > 1:
            text += (f", {_size(last)} at {max_seeds}" if first and last else
                     f"; detects a true {last} at {max_seeds}" if last else f"; none at {max_seeds}")
        lines.append(text)
    if not shown:
        lines.append("  no claim of this grid has a test (the report says why)")
    rest = sum(1 for c in found[seeds] if c.decision is not None and not detects(c))
    if shown and rest:
        lines.append(f"  {rest} other claim(s) without a power figure (limit claims and gates; the report says why)")
    return lines


def _per_point(seeds: int) -> str:
    return f"{seeds} seed{'s' if seeds != 1 else ''} per point"


def _size(detected: str) -> str:
    """``factor 1.2`` of ``factor 1.2 beyond no trend`` (the boundary said once, at the planned seeds)."""
    return detected.split(" beyond ", 1)[0]


__all__ = ["NextRound", "detects", "judged", "look_levels", "next_round", "plan_lines", "points_of",
           "seeds_could_decide"]
