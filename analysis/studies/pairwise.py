"""Pairwise-width study: error vs two-electron width; the claim is saturation (rules in
:mod:`analysis.verdicts`)."""

from __future__ import annotations

import pandas as pd

from ..plotting import draw_error_figure
from ..points import error_data
from ..study import FigureKind, FigureStudy, claims_by_figure, grid_key_plan
from ..verdicts import Claim, lines, rules_of, saturation_claim, y_unit


def pairwise_width_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Error vs two-electron width (network.pairwise_width)."""
    return error_data(trials, "network.pairwise_width")


def pairwise_claims(data: pd.DataFrame) -> list[Claim]:
    """"Pairwise width saturates at W", per line."""
    unit, rules = y_unit(data), rules_of(data)
    return [saturation_claim("pairwise_width", "pairwise width", "error saturates with two-electron (pairwise) width",
                             s, line, unit, rules) for s, line in lines(data)]


PAIRWISE_WIDTH = FigureKind("pairwise_width", "trials", pairwise_width_data, draw_error_figure,
                            "Error vs two-electron (pairwise) width.")
STUDY = FigureStudy("pairwise", (PAIRWISE_WIDTH,), grid_key_plan("network.pairwise_width", "pairwise_width"),
                    claims_by_figure({"pairwise_width": pairwise_claims}))
