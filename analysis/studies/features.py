"""|r| features study (swept ``network.distance_features``): error per system with and
without the |r| input features.

Per system (without ``W ± w``, with ``F ± f``): "far higher" means at least
:data:`FAR_FACTOR` (3x) and significant: margin ``W - 3 F > 2 sqrt(w^2 + 9 f^2)`` on every system
(``supported``); ``W - 3 F < -2 sqrt(...)`` on some system is ``not supported`` (at most 3x,
significantly); otherwise ``inconclusive``. The evidence also gives the plain difference ``W - F``
in sigma.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd

from ..study import FigureKind, FigureStudy, claims_by_figure, grid_key_plan
from ..systems import factor_claim, grouped_figure, levels_missing, ratios, system_points
from ..verdicts import Claim, join_parts


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
    """"Far higher": at least 3x and significant on every system (module docstring)."""
    claim = factor_claim("features", FEATURES_STATEMENT + f" (at least {FAR_FACTOR:g}x)", data, "without", "with",
                         FAR_FACTOR, features_label)
    if data.empty or levels_missing(data, ["without", "with"], features_label):
        return [claim]
    table = ratios(data, "without", "with", FAR_FACTOR)
    diffs = []
    for _, r in table.iterrows():
        gap, sigma = r["num_mean"] - r["den_mean"], math.hypot(r["num_err"], r["den_err"])
        diffs.append(f"{r['x']} {gap:+.2f} ± {sigma:.2f} mHa ({gap / sigma:+.1f}σ)" if sigma > 0 else f"{r['x']} {gap:+.2f} mHa")
    return [replace(claim, evidence=join_parts(claim.evidence, "without − with: " + "; ".join(diffs) if diffs else ""))]


FEATURES = FigureKind("features", "trials", features_data, draw_features,
                      "Error per system with and without the |r| input features, and the without/with ratio; "
                      "dotted: 3x.")
STUDY = FigureStudy("features", (FEATURES,), grid_key_plan(FEATURES_KEY, "features"),
                    claims_by_figure({"features": features_claims}))
