"""The Study interface: what every module of :mod:`analysis.studies` provides.

A study is one question the report answers about a set of trials (does the error fall with
width? is KFAC's error 10x lower than Adam's? what does a trial's training curve converge to?).
It says

* ``applies(trials)``: whether the trials call for it (their swept keys and recorded columns);
* ``figures(trials)``: the figure kinds it draws for them, each with its caption and the
  function that makes its data (the CSV written beside the figure) and the one that draws it;
* ``data(kind, inputs)``: the data of one figure kind, from the frame the kind reads;
* ``claims(inputs, data)``: the claims that data supports, each with its kind
  (:data:`analysis.verdicts.COMPARISON` or :data:`analysis.verdicts.LIMIT`).

The registry (:mod:`analysis.studies`) lists the studies in report order. Most studies speak to
the swept keys of a grid study and make claims from their drawn figures only; a study with
``every_study`` set (cost, extrapolated limits) looks at any study and makes its claims from the
trials whether or not its figures were drawn, after the others.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Mapping, Protocol

import pandas as pd

from .loaders import default_storage, frame_from_study, load_history, open_study, param_importances
from .points import swept_keys, tuning_keys
from .verdicts import COMPARISON, DIAGNOSTICS, LIMIT, LIMIT_SCOPE, NOTE, Claim

SOURCES = ("trials", "history", "importances", "trials+history")


@dataclass(frozen=True)
class Inputs:
    """A study as the analysis reads it, loaded once (:meth:`load`): the trial frame
    (:func:`analysis.load_study`), the history (one row per trial and training step,
    :func:`analysis.load_history`), and Optuna's parameter importances (or None, with the reason).
    The study modules, the verdicts and the report writers all read this value; none of them
    opens the storage or a run directory again."""

    trials: pd.DataFrame
    history: pd.DataFrame | None = None
    importances: pd.DataFrame | None = None
    importance_reason: str | None = None

    @classmethod
    def load(cls, name: str, storage: str | None = None, output_root=None) -> "Inputs":
        """Read study ``name`` once: the storage is opened once and every run directory's
        summary.json and metrics.csv read once (:mod:`analysis.run_files`' cache)."""
        url = storage or default_storage(output_root)
        study = open_study(name, url, output_root)
        cache: dict = {}
        trials = frame_from_study(study, output_root, storage=url, cache=cache)
        history = load_history(trials=trials, cache=cache)
        importances, reason = param_importances(study) if tuning_keys(trials) else (None, None)
        return cls(trials, history, importances, reason)

    def frame(self, source: str) -> pd.DataFrame | None:
        """The frame named ``source`` (one of :data:`SOURCES`)."""
        if source == "trials+history":
            return self.trials
        return {"trials": self.trials, "history": self.history, "importances": self.importances}[source]


@dataclass(frozen=True)
class FigureKind:
    """One figure: ``data(frame) -> DataFrame`` (exactly what is plotted) then ``draw(data) -> Figure``.

    ``source`` says which frame ``data`` takes (one of :data:`SOURCES`); ``caption`` is the line
    the reports print under the figure.
    """

    name: str
    source: str
    data: Callable[[pd.DataFrame], pd.DataFrame]
    draw: Callable[[pd.DataFrame], object]
    caption: str


class Study(Protocol):
    """The interface every study provides (see the module docstring)."""

    name: str
    kinds: tuple[FigureKind, ...]
    every_study: bool

    def applies(self, trials: pd.DataFrame) -> bool: ...

    def figures(self, trials: pd.DataFrame) -> list[FigureKind]: ...

    def data(self, kind: FigureKind, inputs: Inputs) -> pd.DataFrame | None: ...

    def claims(self, inputs: Inputs, data: Mapping[str, pd.DataFrame]) -> list[Claim]: ...


ClaimRules = Callable[[Inputs, Mapping[str, pd.DataFrame]], list[Claim]]


@dataclass(frozen=True)
class FigureStudy:
    """A :class:`Study` from its figure kinds, a plan and its claim rules.

    ``plan(trials)`` names the kinds to draw, in order (empty: the study does not apply);
    ``rules(inputs, data)`` makes the claims from the figure data keyed by kind name; every claim
    gets ``claim_kind``.
    """

    name: str
    kinds: tuple[FigureKind, ...]
    plan: Callable[[pd.DataFrame], list[str]]
    rules: ClaimRules
    claim_kind: str = COMPARISON
    every_study: bool = False

    def applies(self, trials: pd.DataFrame) -> bool:
        return bool(self.plan(trials))

    def figures(self, trials: pd.DataFrame) -> list[FigureKind]:
        by_name = {kind.name: kind for kind in self.kinds}
        return [by_name[name] for name in self.plan(trials)]

    def data(self, kind: FigureKind, inputs: Inputs) -> pd.DataFrame | None:
        """The plotted data of ``kind``, or None when its source frame is missing or empty."""
        if kind.source == "trials+history":
            plotted = kind.data(inputs.trials, inputs.history) if not inputs.trials.empty else None
        else:
            frame = inputs.frame(kind.source)
            if frame is None or frame.empty:
                return None
            plotted = kind.data(frame)
        if plotted is not None:
            plotted.attrs["claims"] = inputs.trials.attrs.get("claims")  # the rules its claims are judged by
        return plotted

    def claims(self, inputs: Inputs, data: Mapping[str, pd.DataFrame]) -> list[Claim]:
        """The rules' claims; a claim whose rule set no kind gets the study's ``claim_kind``, a
        limit without a scope gets :data:`analysis.verdicts.LIMIT_SCOPE`, and the claims of a study
        every study gets (cost, extrapolated limits) form the family :data:`DIAGNOSTICS`, adjusted
        apart from the study's own confirmatory claims (:func:`analysis.verdicts.judge`)."""
        out = []
        family = DIAGNOSTICS if self.every_study else ""
        for claim in self.rules(inputs, data):
            kind = claim.kind or self.claim_kind
            scope = claim.scope or (LIMIT_SCOPE if kind == LIMIT and claim.verdict != NOTE else "")
            out.append(replace(claim, kind=kind, scope=scope, family=family))
        return out


def claims_by_figure(builders: Mapping[str, Callable[[pd.DataFrame], list[Claim]]]) -> ClaimRules:
    """Claim rules that run ``builders[name](data)`` for every drawn figure of those names, in the
    order the figures were drawn."""

    def rules(inputs: Inputs, data: Mapping[str, pd.DataFrame]) -> list[Claim]:
        return [claim for name, frame in data.items() if name in builders for claim in builders[name](frame)]

    return rules


def grid_key_plan(key: str, figure: str) -> Callable[[pd.DataFrame], list[str]]:
    """A plan that draws ``figure`` when ``key`` is swept in a grid study (no tuning keys)."""

    def plan(trials: pd.DataFrame) -> list[str]:
        return [figure] if key in swept_keys(trials) and not tuning_keys(trials) else []

    return plan
