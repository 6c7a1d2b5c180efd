"""|r| features study (swept ``network.distance_features``): error per system with and
without the |r| input features.

"Far higher" means at least :data:`FAR_FACTOR` (3x): one test over all systems together (the
mean over systems of ln W - ln F against ln 3, a Welch contrast of the seeds' ln errors,
:func:`analysis.systems.factor_claim`), and with several systems one line per system, each its own
test; all of them are adjusted together by Holm with the study's other claims.
"""

from __future__ import annotations

import math

import pandas as pd

from ..study import FigureKind, FigureStudy, claims_by_figure, grid_key_plan
from ..systems import factor_claim, figure_pool, grouped_figure, levels_missing, system_points
from ..verdicts import Claim


FEATURES_KEY = "network.distance_features"
FAR_FACTOR = 3.0  # "far higher" without |r| features: at least this factor, significantly


def _flag(value) -> bool | None:
    """A swept boolean as True/False (``true``, ``1`` too); None when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def features_level(value) -> str:
    """``with`` / ``without`` from a swept ``network.distance_features``."""
    return "with" if _flag(value) else "without"


def features_label(level: str) -> str:
    return f"{level} |r| features"


def features_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Error (mHa) with and without the |r| input features per system (the features figure)."""
    return system_points(trials, [FEATURES_KEY], features_level, features_label)


def draw_features(data: pd.DataFrame):
    """Figure of :func:`features_data`: error by system with and without |r| features, and
    without/with vs electrons."""
    return grouped_figure(data, ["with", "without"], "without", "with", FAR_FACTOR,
                          "without / with |r| features error ratio", with_fit=False, what="'far higher'")


FEATURES_STATEMENT = "without |r| features the error is far higher"


def features_claims(data: pd.DataFrame) -> list[Claim]:
    """"Far higher": at least 3x, one test over the systems together and a line per system
    (module docstring)."""
    statement = FEATURES_STATEMENT + f" (at least {FAR_FACTOR:g}x)"
    claims = [factor_claim("features", statement, data, "without", "with", FAR_FACTOR, features_label)]
    systems = list(dict.fromkeys(data["x"])) if len(data) else []
    if len(systems) > 1 and not levels_missing(data, ["without", "with"], features_label):
        pool = figure_pool(data, ["without", "with"])
        for system in systems:
            one = data[data["x"] == system].copy()
            one.attrs.update(data.attrs)
            claims.append(factor_claim("features", f"{statement} ({system})", one, "without", "with", FAR_FACTOR,
                                       features_label, pool=pool))
    return claims


FEATURES = FigureKind("features", "trials", features_data, draw_features,
                      "Error per system with and without the |r| input features, and the without/with ratio; "
                      "dotted: 3x.")
STUDY = FigureStudy("features", (FEATURES,), grid_key_plan(FEATURES_KEY, "features"),
                    claims_by_figure({"features": features_claims}))
