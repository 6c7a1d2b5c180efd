"""The registry of studies, in report order (figures and claims appear in this order).

Each module here is one study behind the :class:`analysis.study.Study` interface. To add a
study: write ``analysis/studies/NAME.py`` with its figure kinds and a ``STUDY`` object (usually
:class:`analysis.study.FigureStudy`), and add ``NAME.STUDY`` to :data:`STUDIES` below
(docs/analysis.md has the steps).
"""

from __future__ import annotations

import pandas as pd

from ..study import FigureKind, Study
from . import (
    architecture,
    batch,
    cost,
    depth,
    determinants,
    features,
    limits,
    optimizer,
    pairwise,
    sampler,
    sampler_moves,
    training_curves,
    tuning,
    width,
)

STUDIES: tuple[Study, ...] = (
    width.STUDY,
    depth.STUDY,
    pairwise.STUDY,
    determinants.STUDY,
    architecture.STUDY,
    optimizer.STUDY,
    features.STUDY,
    sampler_moves.STUDY,
    batch.STUDY,
    sampler.STUDY,
    tuning.STUDY,
    training_curves.STUDY,
    cost.STUDY,
    limits.STUDY,
)

FIGURE_KINDS: dict[str, FigureKind] = {kind.name: kind for study in STUDIES for kind in study.kinds}
STUDY_OF: dict[str, Study] = {kind.name: study for study in STUDIES for kind in study.kinds}


def plan_figures(trials: pd.DataFrame, every_study: bool = False) -> list[str]:
    """The figure kinds the trials call for, in registry order: those of the studies of the swept
    keys (training curves last), plus with ``every_study`` those of cost and limits."""
    return [kind.name for study in STUDIES if every_study or not study.every_study
            for kind in study.figures(trials)]


__all__ = ["FIGURE_KINDS", "STUDIES", "STUDY_OF", "plan_figures"]
