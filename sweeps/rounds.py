"""Rounds of seeds: a study that adds seeds until its claims decide (``sweep.max_seeds`` above
``sweep.seeds``; issue 31, item 6).

Round 1 runs every grid point at ``seeds`` seeds. When nothing is left to run, the driver asks
the decide step the command line handed it (:data:`Decide`; the command line's runs the
analysis, which the sweeps never import) what the claims say at the last look: which
confirmatory claims more seeds could still decide, the trials they rest on, and the seeds of the
next look. While some claim is pending and the seeds are below ``max_seeds``, the driver records
the next round in the study and enqueues it, under the study mutex:

1. ``rounds`` (user attribute): ``[{"seeds": 4, "points": [{point less its seed}, ...]}, ...]``:
   the grid points of the pending claims' trials and the seeds they grow to.
   :func:`sweeps.grid.study_grid` adds their (point, seed) pairs to the sweep's grid, so the
   reconciliation pass of a rerun (a killed driver) and of every other driver of the study
   (PostgreSQL, another machine) enqueues the same trials;
2. ``looks``: the seeds per point of each look (the analysis judges look k on the trials with
   seed below it, :mod:`analysis.sequential`), appended after ``rounds``: a driver killed between
   the two commits leaves the round's points recorded but its look not, and the next decide step,
   still at the earlier look, asks for the same points again;
3. ``n_planned``: the trials of the grown grid (the study line, ``python -m sweeps status``).

The driver then runs the new trials and asks again; the rounds stop when no claim is pending or
the last look reached ``max_seeds``. A rerun of a finished study asks the same question of the
same trials, gets the same answer and adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ablate.records.study_record import trial_params

from . import grid as gr
from . import storage as st

MAX_CLAIMS_NAMED = 3  # pending claims named in a round's line


@dataclass(frozen=True)
class Look:
    """What the decide step made of the study's last look: its ``seeds`` per point, the
    ``pending`` claims (statements) more seeds could decide, the ``trials`` (numbers) they rest
    on, and ``next_seeds``, the seeds per point of the next look (None: ``max_seeds`` reached)."""

    seeds: int
    next_seeds: int | None
    pending: tuple[str, ...] = ()
    trials: tuple[int, ...] = ()


# (study name, storage URL, output root) -> the Look at the study's last recorded look
Decide = Callable[[str, str, str], Look]


def claims_count(statements: tuple[str, ...], what: str = "") -> str:
    """``3 pending claims``, ``1 claim``."""
    return f"{len(statements)} {what}claim{'s' if len(statements) != 1 else ''}"


def claims_text(statements: tuple[str, ...]) -> str:
    """``a; b; c and 2 more``: the first :data:`MAX_CLAIMS_NAMED` statements."""
    shown = "; ".join(statements[:MAX_CLAIMS_NAMED])
    more = len(statements) - MAX_CLAIMS_NAMED
    return shown + (f" and {more} more" if more > 0 else "")


def points_of(study, numbers, defaults) -> list[dict]:
    """The grid points (less their seed, exact stored types) of the trials ``numbers``, each once,
    in trial order."""
    wanted = set(int(n) for n in numbers)
    out, seen = [], set()
    for t in study.get_trials(deepcopy=False):
        if t.number not in wanted:
            continue
        point = {k: v for k, v in trial_params(t).items() if k != "seed"}
        key = gr.point_key(point, {k: v for k, v in (defaults or {}).items() if k != "seed"})
        if key not in seen:
            seen.add(key)
            out.append(point)
    return out


def record_round(study, seeds: int, points: list[dict], grid: list[dict], defaults) -> list[dict]:
    """Append the round (``points`` grown to ``seeds``) and its look to the study (the module
    docstring's order); returns the study's grid with it. Call it under the study mutex."""
    attrs = study.user_attrs
    rounds = list(attrs.get(gr.ROUNDS) or []) + [{"seeds": int(seeds), "points": points}]
    study.set_user_attr(gr.ROUNDS, rounds)
    looks = [int(n) for n in attrs.get("looks") or []]
    study.set_user_attr("looks", looks + [int(seeds)] if int(seeds) not in looks else looks)
    full = gr.study_grid(grid, study.user_attrs, defaults)
    study.set_user_attr("n_planned", len(full))
    return full


class Rounds:
    """The driver's rounds of seeds (the module docstring): :meth:`next` when the driver has
    nothing left to run."""

    def __init__(self, plan, study, decide: Decide, say: Callable[..., None]):
        self.plan, self.study, self.decide, self.say = plan, study, decide, say
        self.grid = plan.spec.grid_points()   # the sweep's grid; the study's adds its rounds
        self.tag = f"[{plan.study_name}]"

    def next(self, book) -> bool:
        """Under the study mutex: True when there is work to run (missing trials, another
        driver's round, or a new round recorded and enqueued here), False when the rounds are
        over (no claim pending, ``max_seeds`` reached, or the decide step failed)."""
        with book.locked():
            if book.reconcile():
                return True
            waiting, running = book.work_left()
            if waiting or running:
                return True   # another driver recorded a round, or runs its trials
            look = self.ask()
            if look is None:
                return False
            if not look.pending:
                self.say(f"{self.tag} rounds done: no claim pending at {look.seeds} seeds per point")
                return False
            if look.next_seeds is None or look.next_seeds <= look.seeds:
                self.say(f"{self.tag} rounds done at max_seeds {self.plan.spec.max_seeds}: "
                         f"{claims_count(look.pending)} stayed undecided: {claims_text(look.pending)}")
                return False
            points = points_of(self.study, look.trials, self.plan.defaults)
            if not points:
                self.say(f"{self.tag} rounds done: the pending claims name no trial of the grid")
                return False
            book.grid = record_round(self.study, look.next_seeds, points, self.grid, self.plan.defaults)
            number = len(self.study.user_attrs.get("looks") or [])
            total = len({gr.point_key({k: v for k, v in p.items() if k != "seed"}) for p in self.grid})
            self.say(f"{self.tag} round {number}: {look.next_seeds} seeds at {len(points)} of {total} points for "
                     f"{claims_count(look.pending, 'pending ')} ({claims_text(look.pending)})")
            st.enqueue_missing(self.study, book.grid, self.plan.defaults, self.say, quiet=True)
            return True

    def ask(self) -> Look | None:
        """The decide step's Look, or None (with one line) when it failed: a study never fails
        for its analysis."""
        try:
            return self.decide(self.plan.study_name, st.engine_url(self.plan.storage_url), str(self.plan.output_root))
        except Exception as err:  # noqa: BLE001 - the trials are done; the rounds stop, the study does not
            self.say(f"{self.tag} rounds stopped: the claims could not be judged ({type(err).__name__}: {err})")
            return None
