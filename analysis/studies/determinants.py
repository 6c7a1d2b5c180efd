"""Determinants study: error vs number of determinants K, one line per ansatz.

Claims: saturation with K per line (a limit; rules in :mod:`analysis.verdicts`), and two
comparisons at the study's budget, on ln(error) (:mod:`analysis.inference`): FermiNet vs
Slater–Jastrow at equal K, one Welch contrast averaged over the common K (support: FermiNet lower;
refutation: Slater–Jastrow lower; ``supported`` held when a log ratio shrinks over training); and
FermiNet with its fewest determinants vs Slater–Jastrow at *every* K it ran, an intersection–union
test (each comparison must reject, so picking the best Slater–Jastrow run is never compared as if
it were one trial; refuted when some Slater–Jastrow K is better, Bonferroni over the K).
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from ..plotting import draw_error_figure
from ..points import NETWORK_KEYS, NETWORK_NAMES, error_data, swept_keys
from ..stability import stability_gate
from ..study import FigureKind, FigureStudy, claims_by_figure, grid_key_plan
from ..inference import contrast, difference
from ..verdicts import (
    COMPARISON, Claim, Decision, Gate, INCONCLUSIVE, comparison_gate, decided, fmt_factor, fmt_num, fmt_pm,
    join_parts, lines, lost_hold, lost_note, min_seeds, need_text, power_text, rules_of, sample, saturation_claim, trial_numbers,
    y_unit,
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


def ansatz_claim(statement: str, gate: Gate, pairs: list[tuple], decision: Decision, effect: str = "") -> Claim:
    """A FermiNet-vs-Slater–Jastrow comparison at the study's budget, decided from ``decision``
    (blocked by the gate; ``supported`` held when a log ratio shrinks over training; ``pairs``:
    (label, Slater–Jastrow point, FermiNet point) per K compared)."""
    unstable, stability_note = stability_gate([(label, sj, fn, 1.0) for label, sj, fn in pairs], log=True)
    favoured = [fn for _, _, fn in pairs]
    decision = replace(decision, blocked=gate.failure or "", hold=join_parts(unstable, lost_hold(favoured, "FermiNet")),
                       body=join_parts(decision.body, stability_note,
                                       lost_note([row for _, sj, fn in pairs for row in (sj, fn)])),
                       trials=trial_numbers([row for _, sj, fn in pairs for row in (sj, fn)]))
    return decided(Claim("determinants", statement, INCONCLUSIVE, "", kind=COMPARISON, scope=gate.scope, effect=effect,
                         decision=decision))


def determinant_claims(data: pd.DataFrame) -> list[Claim]:
    """FermiNet vs Slater–Jastrow at equal K, and where each ansatz saturates in K."""
    if data.empty:
        return []
    unit = y_unit(data)
    net = _network_column(data)
    rules = rules_of(data)
    claims = [saturation_claim("determinants", "K", f"{_ansatz(s)} gains little from more determinants",
                               "all" if s in NETWORK_NAMES.values() else s, line, unit, rules)
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
    log = unit == "mHa"
    ks = sorted(both["x"])
    pairs = [(f"K={fmt_num(k)}", sj[sj["x"] == k].iloc[0], fn[fn["x"] == k].iloc[0]) for k in ks]
    parts = [f"K={fmt_num(k)}: FermiNet {fmt_pm(f['mean'], f['yerr'], unit)} vs Slater–Jastrow "
             f"{fmt_pm(j['mean'], j['yerr'], unit)}" for (_, j, f), k in zip(pairs, ks)]
    compared = pd.concat([fn[fn["x"].isin(both["x"])], sj[sj["x"].isin(both["x"])]])
    gate = comparison_gate(compared, "K")
    seeds = min_seeds(compared)
    if gate.failure:
        claims.append(ansatz_claim(statement, gate, pairs, Decision(body="; ".join(parts))))
    else:
        samples, weights = [], []
        for _, j, f in pairs:
            samples += [sample(j, log), sample(f, log)]
            weights += [1.0 / len(pairs), -1.0 / len(pairs)]
        test = contrast(samples, weights)
        size = fmt_factor(test.estimate) if log else f"{test.estimate:.3g} {unit}"
        what = "ln(error)" if log else "energy"
        claims.append(ansatz_claim(statement, gate, pairs, Decision(
            p_support=test.p_greater, p_refute=test.p_less,
            supported=f"Slater–Jastrow / FermiNet {size} averaged over K = {', '.join(fmt_num(k) for k in ks)}",
            refuted=f"Slater–Jastrow is more accurate on average over K ({size})",
            undecided=f"the difference averaged over K ({size}) is not significant",
            test=f"Welch t on Slater–Jastrow minus FermiNet {what}, averaged over the common K: {test.text()}",
            body="; ".join(parts), need=need_text(test, seeds),
            power=power_text(test, seeds, log, unit, "no difference")),
            effect=size))
    claims.append(_single_det_claim(fn, sj, unit, log))
    return claims


def _single_det_claim(fn: pd.DataFrame, sj: pd.DataFrame, unit: str, log: bool) -> Claim:
    """FermiNet with its fewest determinants vs Slater–Jastrow at every K it ran: an
    intersection–union test (every comparison must reject; no best-of selection)."""
    statement = "FermiNet with its fewest determinants beats Slater–Jastrow with any number"
    a = fn.sort_values("x").iloc[0]
    others = [r for _, r in sj.sort_values("x").iterrows()]
    gate = comparison_gate(pd.DataFrame([a, *others]), "K")
    pairs = [(f"FermiNet K={fmt_num(a['x'])} vs Slater–Jastrow K={fmt_num(b['x'])}", b, a) for b in others]
    evidence = (f"FermiNet K={fmt_num(a['x'])}: {fmt_pm(a['mean'], a['yerr'], unit)}; Slater–Jastrow "
                + ", ".join(f"K={fmt_num(b['x'])}: {fmt_pm(b['mean'], b['yerr'], unit)}" for b in others))
    if gate.failure:
        return ansatz_claim(statement, gate, pairs, Decision(body=evidence))
    pool = [sample(r, log) for _, r in pd.concat([fn, sj]).iterrows()] if log else None
    tests = [difference(sample(b, log), sample(a, log), pool=pool) for b in others]
    worst = max(range(len(tests)), key=lambda i: tests[i].p_greater)
    best_sj = min(range(len(tests)), key=lambda i: tests[i].estimate)
    seeds = min_seeds(pd.DataFrame([a, *others]))
    return ansatz_claim(statement, gate, pairs, Decision(
        p_support=tests[worst].p_greater, p_refute=min(1.0, len(tests) * min(t.p_less for t in tests)),
        supported=f"lower than Slater–Jastrow at every K it ran ({len(tests)} tests, each must reject)",
        refuted=f"Slater–Jastrow at K={fmt_num(others[best_sj]['x'])} is more accurate (Bonferroni over {len(tests)} K)",
        undecided=f"not lower than Slater–Jastrow at K={fmt_num(others[worst]['x'])} significantly",
        test=("Welch t on ln(error) per Slater–Jastrow K, intersection–union: "
              + "; ".join(f"K={fmt_num(b['x'])} {t.text()}" for b, t in zip(others, tests))),
        body=evidence, need=need_text(tests[worst], seeds),
        power=power_text(tests[worst], seeds, log, unit, "no difference")))


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
