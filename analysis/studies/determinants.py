"""Determinants study: error vs number of determinants K, one line per ansatz.

Claims: saturation with K per line (a limit; rules in :mod:`analysis.verdicts`), and two
comparisons at the study's budget: FermiNet vs Slater–Jastrow at equal K (the gap at every
common K exceeds 2σ: ``supported`` when also stable over training; the other way by 2σ at some K:
``not supported``), and FermiNet with its fewest determinants vs the best Slater–Jastrow.
"""

from __future__ import annotations

import pandas as pd

from ..plotting import draw_error_figure
from ..points import NETWORK_KEYS, NETWORK_NAMES, error_data, swept_keys
from ..stability import stability_gate
from ..study import FigureKind, FigureStudy, claims_by_figure, grid_key_plan
from ..verdicts import (
    COMPARISON, Claim, Gate, INCONCLUSIVE, NOT_SUPPORTED, SIGNIFICANCE, SUPPORTED, combined_sigma,
    comparison_gate, fmt_num, fmt_pm, is_better, join_parts, lines, saturation_claim, y_unit,
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


def ansatz_claim(statement: str, gate: Gate, pairs: list[tuple], verdict: str, evidence: str, reason: str = "") -> Claim:
    """A FermiNet-vs-Slater–Jastrow comparison at the study's budget: ``verdict`` from the gaps,
    turned ``inconclusive`` by the gate or, for ``supported``, by a gap closing over training
    (``pairs``: (label, Slater–Jastrow point, FermiNet point) per K compared)."""
    unstable, stability_note = stability_gate([(label, sj, fn, 1.0) for label, sj, fn in pairs])
    evidence = join_parts(evidence, stability_note)
    if gate.failure:
        verdict, reason = INCONCLUSIVE, gate.failure
    elif verdict == SUPPORTED and unstable:
        verdict, reason = INCONCLUSIVE, unstable
    return Claim("determinants", statement, verdict, join_parts(reason, evidence), kind=COMPARISON, scope=gate.scope)


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
        return claims + [Claim("determinants", statement, INCONCLUSIVE, f"only {names} has complete trials: no comparison",
                               kind=COMPARISON)]
    others = [k for k in data.attrs.get("series_keys", [net]) if k != net and k in data.columns]
    fn = data[data[net].astype(str) == "ferminet"]
    sj = data[data[net].astype(str) == "slater_jastrow"]
    both = fn.merge(sj, on=[*others, "x"], suffixes=("_fn", "_sj"))
    if both.empty:
        return claims + [Claim("determinants", statement, INCONCLUSIVE,
                               "FermiNet and Slater–Jastrow have no complete K in common", kind=COMPARISON)]
    parts, gaps = [], []
    for _, r in both.sort_values("x").iterrows():
        gap, sigma = r["mean_sj"] - r["mean_fn"], combined_sigma(r["yerr_fn"], r["yerr_sj"])
        gaps.append((gap, sigma))
        parts.append(f"K={fmt_num(r['x'])}: FermiNet {fmt_pm(r['mean_fn'], r['yerr_fn'], unit)} vs Slater–Jastrow "
                     f"{fmt_pm(r['mean_sj'], r['yerr_sj'], unit)} (gap {gap:.2f} ± {sigma:.2f})")
    compared = pd.concat([fn[fn["x"].isin(both["x"])], sj[sj["x"].isin(both["x"])]])
    gate = comparison_gate(compared, "K")
    pairs = [(f"K={fmt_num(k)}", sj[sj["x"] == k].iloc[0], fn[fn["x"] == k].iloc[0]) for k in sorted(both["x"])]
    evidence = "; ".join(parts)
    if all(g > SIGNIFICANCE * s for g, s in gaps):
        claims.append(ansatz_claim(statement, gate, pairs, SUPPORTED, evidence, "every gap exceeds 2 sigma"))
    elif any(-g > SIGNIFICANCE * s for g, s in gaps):
        claims.append(ansatz_claim(statement, gate, pairs, NOT_SUPPORTED, evidence,
                                   "Slater–Jastrow is better by more than 2 sigma at some K"))
    else:
        claims.append(ansatz_claim(statement, gate, pairs, INCONCLUSIVE, evidence, "not every gap exceeds 2 sigma"))
    claims.append(_single_det_claim(fn, sj, unit))
    return claims


def _single_det_claim(fn: pd.DataFrame, sj: pd.DataFrame, unit: str) -> Claim:
    """FermiNet with its fewest determinants vs the best Slater–Jastrow at any K."""
    statement = "FermiNet with its fewest determinants beats Slater–Jastrow with any number"
    a = fn.sort_values("x").iloc[0]
    b = sj.sort_values("mean").iloc[0]
    gate = comparison_gate(pd.DataFrame([a, b]), "K")
    pairs = [(f"FermiNet K={fmt_num(a['x'])} vs Slater–Jastrow K={fmt_num(b['x'])}", b, a)]
    evidence = (f"FermiNet K={fmt_num(a['x'])}: {fmt_pm(a['mean'], a['yerr'], unit)}; best Slater–Jastrow "
                f"K={fmt_num(b['x'])}: {fmt_pm(b['mean'], b['yerr'], unit)}")
    if is_better(b, a):
        return ansatz_claim(statement, gate, pairs, SUPPORTED, evidence)
    if is_better(a, b):
        return ansatz_claim(statement, gate, pairs, NOT_SUPPORTED, evidence)
    return ansatz_claim(statement, gate, pairs, INCONCLUSIVE, evidence, "difference within 2 sigma")


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
