"""Studies that add seeds until their claims decide: the looks, their levels, and the decide step.

A study run with ``sweep.max_seeds`` greater than ``sweep.seeds`` runs in rounds. Round 1 runs
every grid point at ``seeds`` seeds; after each round the claims are judged (a *look*); while a
confirmatory claim is undecided and the seeds are below ``max_seeds``, the next round doubles the
seeds (at most ``max_seeds``) of the grid points the undecided claims rest on, and only of those.
The command line records the seeds of each look in the study (``looks``, with ``max_seeds``), so
``python -m analysis NAME`` judges the same looks again from the trials:

* look k reads the trials with seed < its seed count (the data that existed at that look);
* its level is the nominal level of the Pocock-type alpha-spending function at information
  fraction seeds / max_seeds (:func:`analysis.inference.nominal_levels`), Holm over the claims
  still undecided at that look;
* a claim decided (supported or not supported) at a look keeps that verdict and that look's
  evidence; a claim undecided at the last look is inconclusive, with what it would take.

A study without recorded looks has one look at its seeds with level 0.025 (one-sided).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from .inference import ALPHA, nominal_levels
from .verdicts import DIAGNOSTICS, NOT_SUPPORTED, SUPPORTED, Claim, judge, rules_of


@dataclass(frozen=True)
class Look:
    """One look: its ``number`` (from 1), the ``seeds`` per point it reads, the information
    ``fraction`` (seeds / max seeds) and its one-sided nominal ``level``."""

    number: int
    seeds: int
    fraction: float
    level: float
    of: int = 1

    def text(self) -> str:
        return f"look {self.number} of {self.of} planned ({self.seeds} seeds per point)"


@dataclass(frozen=True)
class LookRecord:
    """What a look decided: its :class:`Look` and per claim (statement, p for, p against, verdict)."""

    look: Look
    rows: tuple[tuple[str, float | None, float | None, str], ...] = field(default_factory=tuple)


def schedule(seeds: int, max_seeds: int) -> list[int]:
    """The seeds per point at each look: ``seeds``, then doubling, capped at ``max_seeds``."""
    out = [max(1, int(seeds))]
    while out[-1] < max_seeds:
        out.append(min(int(max_seeds), out[-1] * 2))
    return out


def looks_of(trials: pd.DataFrame) -> list[Look]:
    """The looks of a study (module docstring), from ``trials.attrs`` (``looks``, ``max_seeds``)."""
    alpha = rules_of(trials).alpha
    recorded = trials.attrs.get("looks")
    max_seeds = trials.attrs.get("max_seeds")
    if not recorded or not max_seeds:
        return [Look(1, 0, 1.0, alpha)]
    seeds = sorted({int(n) for n in recorded})
    max_seeds = max(int(max_seeds), seeds[-1])
    fractions = [n / max_seeds for n in seeds]
    planned = len(schedule(seeds[0], max_seeds))
    levels = nominal_levels(fractions, alpha)
    return [Look(i + 1, n, f, lv, max(planned, len(seeds))) for i, (n, f, lv) in enumerate(zip(seeds, fractions, levels))]


def seed_of(trials: pd.DataFrame) -> pd.Series:
    """Each trial's seed (NaN when not recorded)."""
    return pd.to_numeric(trials["seed"], errors="coerce") if "seed" in trials else pd.Series(math.nan, index=trials.index)


def at_look(trials: pd.DataFrame, look: Look) -> pd.DataFrame:
    """The trials a look reads: seed < its seeds (every trial for a study without looks)."""
    if look.seeds <= 0:
        return trials
    seeds = seed_of(trials)
    kept = trials[seeds.isna() | (seeds < look.seeds)].copy()
    kept.attrs.update(trials.attrs)
    return kept


def decide_looks(trials: pd.DataFrame, claims_of: Callable[[pd.DataFrame], list[Claim]]
                 ) -> tuple[list[Claim], list[LookRecord]]:
    """Judge every look (module docstring): ``claims_of(trials)`` makes the study's undecided
    claims from a trial frame. Returns the final claims (each decided claim as its deciding look
    left it) and what each look decided."""
    looks = looks_of(trials)
    final: dict[tuple[str, str], Claim] = {}
    records, latest = [], []
    for look in looks:
        text = look.text() if len(looks) > 1 or look.fraction < 1 else ""
        latest = judge(claims_of(at_look(trials, look)), look.level, text, skip=frozenset(final))
        rows = []
        for claim in latest:
            if claim.key in final or claim.decision is None:
                continue
            rows.append((claim.statement, claim.decision.p_support, claim.decision.p_refute, claim.verdict))
            if claim.verdict in (SUPPORTED, NOT_SUPPORTED):
                final[claim.key] = claim
        records.append(LookRecord(look, tuple(rows)))
    return [final.get(c.key, c) for c in latest], records


SEEDS_GATE = "seeds per point"  # the words of the gate more seeds lift (analysis.verdicts.replicate_gate)


def pending(claims: list[Claim]) -> list[Claim]:
    """Confirmatory claims more seeds could still decide (the diagnostics every study gets, such as
    the extrapolated limits, never call for seeds): testable and undecided, or blocked only
    by the seeds gate (every ``; ``-separated part of the gate failure is about seeds per point;
    "only 2 width values" or unequal budgets are not lifted by seeds)."""
    out = []
    for claim in claims:
        d = claim.decision
        if d is None or claim.verdict in (SUPPORTED, NOT_SUPPORTED) or claim.family == DIAGNOSTICS:
            continue
        if d.testable or (d.blocked and all(SEEDS_GATE in part for part in d.blocked.split("; "))):
            out.append(claim)
    return out


def looks_table(records: list[LookRecord]) -> list[str]:
    """The looks as text lines: ``look 1 of 3 planned (2 seeds per point), level 0.0089: ...``."""
    lines = []
    for rec in records:
        decided = [f"{statement} [{verdict}, p {p_s:.2g} for]" if p_s is not None else f"{statement} [{verdict}]"
                   for statement, p_s, _, verdict in rec.rows]
        lines.append(f"{rec.look.text()}, one-sided level {rec.look.level:.3g}: " + ("; ".join(decided) or "no claim"))
    return lines


__all__ = ["ALPHA", "Look", "LookRecord", "at_look", "decide_looks", "looks_of", "looks_table", "pending", "schedule"]
