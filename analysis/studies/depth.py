"""Depth study: error vs number of layers; the claim is saturation (rules in
:mod:`analysis.verdicts`). Also the depth claims of a width x depth study, per width."""

from __future__ import annotations

import pandas as pd

from ..plotting import draw_error_figure
from ..points import error_data, swept_keys, tuning_keys
from ..study import FigureKind, FigureStudy, claims_by_figure
from ..verdicts import Claim, fmt_num, lines, rules_of, saturation_claim, y_unit

DEPTH_STATEMENT = "error saturates with depth"


def depth_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Error vs number of layers (network.depth)."""
    return error_data(trials, "network.depth")


def depth_figure(trials: pd.DataFrame):
    """Figure of :func:`depth_data`."""
    return draw_error_figure(depth_data(trials))


def depth_claims(data: pd.DataFrame) -> list[Claim]:
    """"No gain beyond depth D within error bars", per line."""
    unit, rules = y_unit(data), rules_of(data)
    return [saturation_claim("depth", "depth", DEPTH_STATEMENT, s, line, unit, rules) for s, line in lines(data)]


def depth_claims_from_width_depth(data: pd.DataFrame) -> list[Claim]:
    """Depth saturation at each width of a width × depth study (lines are depths there)."""
    if data.empty or "network.depth" not in data:
        return []
    unit, rules = y_unit(data), rules_of(data)
    claims = []
    for width, points in data.groupby("x", sort=True):
        line = points.assign(x=points["network.depth"]).sort_values("x").reset_index(drop=True)
        claims.append(saturation_claim("depth", "depth", DEPTH_STATEMENT, f"width {fmt_num(width)}", line, unit, rules))
    return claims


DEPTH = FigureKind("depth", "trials", depth_data, draw_error_figure, "Error vs number of layers.")


def planned(trials: pd.DataFrame) -> list[str]:
    """``depth`` when depth is swept without width (with width it is the width study's figure)."""
    keys = set(swept_keys(trials))
    return ["depth"] if not tuning_keys(trials) and "network.depth" in keys and "network.width" not in keys else []


STUDY = FigureStudy("depth", (DEPTH,), planned, claims_by_figure({"depth": depth_claims}))
