"""The shape of analysis/: one registry whose studies name their figures. Import cycles, imports
hidden inside functions and private names across modules are checked for every package, analysis
included, by tests/test_architecture.py."""

from __future__ import annotations

from analysis.studies import FIGURE_KINDS, STUDIES
from analysis.study import SOURCES


def test_registry_names_every_figure_once_with_a_caption():
    kinds = [kind for study in STUDIES for kind in study.kinds]
    assert len({kind.name for kind in kinds}) == len(kinds) == len(FIGURE_KINDS)
    assert len({study.name for study in STUDIES}) == len(STUDIES)
    assert all(kind.caption and kind.source in SOURCES for kind in kinds)
