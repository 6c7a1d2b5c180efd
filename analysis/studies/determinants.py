"""Determinants study: error vs number of determinants K, one line per ansatz.

Claims: saturation with K per line (rules in :mod:`analysis.verdicts`), and FermiNet vs
Slater–Jastrow at equal K: the gap at every common K exceeds 2σ (``supported``) or goes the
other way by 2σ at some K (``not supported``), after the convergence and seed gates.
"""

from __future__ import annotations

import pandas as pd

from ..plotting import draw_error_figure
from ..points import NETWORK_KEYS, NETWORK_NAMES, error_data, swept_keys
from ..study import FigureKind, FigureStudy, claims_by_figure, grid_key_plan
from ..verdicts import (
    Claim, INCONCLUSIVE, NOT_SUPPORTED, SIGNIFICANCE, SUPPORTED, combined_sigma, convergence_gate, fmt_num, fmt_pm,
    is_better, join_parts, lines, saturation_claim, seed_gate, y_unit,
)


def determinants_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Error vs number of determinants K; one line per ansatz (FermiNet, Slater–Jastrow), named
    even when only one of them ran."""
    swept_network = [k for k in NETWORK_KEYS if k in swept_keys(trials)]
    return error_data(trials, "network.determinants", label_keys=swept_network[:1] or ["network"])


def _network_column(data: pd.DataFrame) -> str | None:
    """The column of determinant data that names the ansatz, if the lines are split by it."""
    for key in NETWORK_KEYS:
        if key in data.columns:
            return key
    return None


def _comparison_gate(points: pd.DataFrame) -> tuple[str | None, str]:
    """(failure, note) of the convergence and seed gates for a comparison (no trend, no 3 points)."""
    seed_fail, seed_note = seed_gate(points, "K")
    return join_parts(convergence_gate(points), seed_fail) or None, seed_note


def determinant_claims(data: pd.DataFrame) -> list[Claim]:
    """FermiNet vs Slater–Jastrow at equal K, and where each ansatz saturates in K."""
    if data.empty:
        return []
    unit = y_unit(data)
    net = _network_column(data)
    claims = [saturation_claim("determinants", "K", f"{_ansatz(s)} gains little from more determinants",
                               "all" if s in NETWORK_NAMES.values() else s, line, unit)
              for s, line in lines(data)]
    statement = "FermiNet is more accurate than Slater–Jastrow at the same number of determinants"
    ran = sorted({str(v) for v in data[net].dropna()}) if net else []
    if len(ran) < 2:
        names = ", ".join(NETWORK_NAMES.get(r, r) for r in ran) or "one ansatz"
        return claims + [Claim("determinants", statement, INCONCLUSIVE, f"only {names} has complete trials: no comparison")]
    others = [k for k in data.attrs.get("series_keys", [net]) if k != net and k in data.columns]
    fn = data[data[net].astype(str) == "ferminet"]
    sj = data[data[net].astype(str) == "slater_jastrow"]
    both = fn.merge(sj, on=[*others, "x"], suffixes=("_fn", "_sj"))
    if both.empty:
        return claims + [Claim("determinants", statement, INCONCLUSIVE,
                               "FermiNet and Slater–Jastrow have no complete K in common")]
    parts, gaps = [], []
    for _, r in both.sort_values("x").iterrows():
        gap, sigma = r["mean_sj"] - r["mean_fn"], combined_sigma(r["yerr_fn"], r["yerr_sj"])
        gaps.append((gap, sigma))
        parts.append(f"K={fmt_num(r['x'])}: FermiNet {fmt_pm(r['mean_fn'], r['yerr_fn'], unit)} vs Slater–Jastrow "
                     f"{fmt_pm(r['mean_sj'], r['yerr_sj'], unit)} (gap {gap:.2f} ± {sigma:.2f})")
    compared = pd.concat([fn[fn["x"].isin(both["x"])], sj[sj["x"].isin(both["x"])]])
    failure, seed_note = _comparison_gate(compared)
    evidence = join_parts("; ".join(parts), seed_note)
    if failure:
        claims.append(Claim("determinants", statement, INCONCLUSIVE, join_parts(failure, evidence)))
    elif all(g > SIGNIFICANCE * s for g, s in gaps):
        claims.append(Claim("determinants", statement, SUPPORTED, evidence))
    elif any(-g > SIGNIFICANCE * s for g, s in gaps):
        claims.append(Claim("determinants", statement, NOT_SUPPORTED, evidence))
    else:
        claims.append(Claim("determinants", statement, INCONCLUSIVE, "not every gap exceeds 2 sigma; " + evidence))
    claims.append(_single_det_claim(fn, sj, unit))
    return claims


def _single_det_claim(fn: pd.DataFrame, sj: pd.DataFrame, unit: str) -> Claim:
    """FermiNet with its fewest determinants vs the best Slater–Jastrow at any K."""
    statement = "FermiNet with its fewest determinants beats Slater–Jastrow with any number"
    a = fn.sort_values("x").iloc[0]
    b = sj.sort_values("mean").iloc[0]
    failure, seed_note = _comparison_gate(pd.DataFrame([a, b]))
    evidence = join_parts(f"FermiNet K={fmt_num(a['x'])}: {fmt_pm(a['mean'], a['yerr'], unit)}; best Slater–Jastrow "
                          f"K={fmt_num(b['x'])}: {fmt_pm(b['mean'], b['yerr'], unit)}", seed_note)
    if failure:
        return Claim("determinants", statement, INCONCLUSIVE, join_parts(failure, evidence))
    if is_better(b, a):
        return Claim("determinants", statement, SUPPORTED, evidence)
    if is_better(a, b):
        return Claim("determinants", statement, NOT_SUPPORTED, evidence)
    return Claim("determinants", statement, INCONCLUSIVE, "difference within 2 sigma; " + evidence)


def _ansatz(series: str) -> str:
    """The ansatz name in a series label (``FermiNet`` when the lines are not split by ansatz)."""
    for name in NETWORK_NAMES.values():
        if name in series:
            return name
    return "the network"


DETERMINANTS = FigureKind("determinants", "trials", determinants_data, draw_error_figure,
                          "Error vs number of determinants (log2 axis), per ansatz.")
STUDY = FigureStudy("determinants", (DETERMINANTS,), grid_key_plan("network.determinants", "determinants"),
                    claims_by_figure({"determinants": determinant_claims}))
