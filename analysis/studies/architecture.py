"""Architecture study: FermiNet, Psiformer and Slater–Jastrow on each system, at equal iterations and
at equal cost (``+sweep=architecture``).

Data: one point per (system, ansatz): the seed-aggregated error (mHa; the energy when no reference
is known) with the study's usual error bar (:mod:`analysis.points`), and the seeds' mean cost from
summary.json: ``device_seconds`` (devices x wall time of the run's phases) and ``training_flops``
(XLA's count of one training iteration x iterations). Device-seconds include the compilation a
trial pays when its engine is new (the first seed of an ansatz, not the next ones) and whatever
else loaded the machine; training FLOPs are the steadier cost. The figure has one panel per system and cost
(error against cost, log-log, one marker per ansatz); errors of different systems are never compared.

Claims, per system, all comparisons at a budget (:mod:`analysis.verdicts`: one shared budget of
iterations x walkers, >= 2 seeds per point, and for ``supported`` a margin stable from
mid-training to the end, :func:`analysis.stability.stability_gate`):

* **"FermiNet beats Slater–Jastrow"** at equal iterations: Welch t on ln(error) (the energy when
  no reference is known), support FermiNet lower, refutation Slater–Jastrow lower.
* **"Psiformer matches or beats FermiNet at equal iterations"** and **"... at equal cost"** (once
  per cost: device-seconds, training FLOPs). *Matches* is non-inferiority within the study's
  margin (the sweep file's ``claims.margin_mha``, default chemical accuracy 1.6 mHa): support when
  Psiformer − FermiNet is significantly below the margin (Welch t on the linear error, where the
  margin lives), refutation when it is significantly above it. At equal cost the two runs' costs
  must agree within :data:`COST_MATCH`, or the better-or-equal one must also be the cheaper: a
  match can be supported only when the Psiformer spent no more (within 10 %), a loss refuted only
  when it spent no less; otherwise the claim cannot be judged at equal cost from these runs and
  the evidence says how much more training the cheaper one would need. This assumes only that
  more training does not raise the error.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from ..loaders import HARTREE_TO_MHA
from ..plotting import new_figure, plain_log_labels
from ..points import (CHEMICAL_ACCURACY_MHA, NETWORK_KEYS, NETWORK_NAMES, aggregate_point, lost_at, lost_trials,
                      point_facts,
                      response_metric, swept_keys, title_line, tuning_keys)
from ..stability import stability_gate
from ..study import FigureKind, FigureStudy, claims_by_figure
from ..inference import difference
from ..verdicts import (COMPARISON, INCONCLUSIVE, Claim, Decision, comparison_gate, decided, fmt_factor, fmt_pm,
                        join_parts, lost_hold, lost_note, min_seeds, need_text, power_text, rules_of, sample,
                        trial_numbers)
from .cost import with_cost_columns

COST_MATCH = 0.10  # costs within this fraction of each other count as equal cost
ORDER = ("ferminet", "psiformer", "slater_jastrow")
MARKERS = {"ferminet": ("o", "C0"), "psiformer": ("s", "C3"), "slater_jastrow": ("^", "C2")}
COSTS = {"device_seconds": ("device-seconds (devices x wall time)", "device-seconds"),
         "training_flops": ("training FLOPs", "training FLOPs")}
OTHER_NETWORK_KEYS = ("network.width", "network.depth", "network.pairwise_width", "network.determinants",
                      "network.num_layers", "network.num_heads", "network.heads_dim")


def network_column(trials: pd.DataFrame) -> str:
    """The column naming each trial's ansatz: the swept key (``network`` or ``network.type``)."""
    for key in NETWORK_KEYS:
        if key in swept_keys(trials) and key in trials:
            return key
    return "network"


def architecture_data(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (system, ansatz): error (or energy) over seeds and the mean costs.

    Columns: ``system``, ``network``, ``series`` (the ansatz's name), ``x_name``/``x`` (``network``
    and its value, for the shared verdict gates), ``y_name``, ``mean``, ``yerr``, ``y``, ``n_seeds``,
    ``clipped``, the point facts of :func:`analysis.points.point_facts` (trials, convergence,
    budget, training-window errors), and ``device_seconds``, ``training_flops`` (seed means).
    """
    metric = response_metric(trials)
    done = with_cost_columns(trials)
    net = network_column(trials)
    if done.empty or net not in done:
        return pd.DataFrame()
    done["stderr_mha"] = pd.to_numeric(done["energy_stderr"], errors="coerce") * HARTREE_TO_MHA
    err_col = "error_stderr_mha" if metric.column == "error_mha" else "energy_stderr"
    done["system"] = done["system"].fillna("unknown system").astype(str) if "system" in done else "unknown system"
    lost = lost_trials(trials)
    rows = []
    for (system, network), group in done.groupby(["system", net], sort=False):
        values = pd.to_numeric(group[metric.column], errors="coerce").to_numpy(float)
        if not np.isfinite(values).any():
            continue
        stderrs = pd.to_numeric(group.get(err_col), errors="coerce").to_numpy(float)
        point = aggregate_point(values, stderrs, metric.log)
        facts = point_facts(group, lost_at(lost, {"system": system, net: network}))
        rows.append({"system": system, "network": str(network), "series": NETWORK_NAMES.get(str(network), str(network)),
                     "x_name": "network", "x": str(network), "y_name": metric.column, **point, **facts,
                     "device_seconds": float(group["device_seconds"].mean()),
                     "training_flops": float(group["training_flops"].mean())})
    data = pd.DataFrame(rows)
    if data.empty:
        return data
    rank = {n: i for i, n in enumerate(ORDER)}
    data = data.sort_values(["system", "network"], key=lambda s: s.map(rank).fillna(99) if s.name == "network" else s,
                            kind="stable").reset_index(drop=True)
    data.attrs["title"] = title_line(trials)
    return data


def draw_architecture(data: pd.DataFrame):
    """Error (log) against each cost (log): a row per cost, a column per system, one marker per ansatz."""
    systems = list(dict.fromkeys(data["system"]))
    costs = [c for c in COSTS if np.isfinite(data[c].to_numpy(float)).any()] or ["device_seconds"]
    fig, axes = new_figure(ncols=len(systems), nrows=len(costs), panel_size=(3.4, 2.8))
    is_error = data["y_name"].iloc[0] == "error_mha"
    for row, cost in enumerate(costs):
        for col, system in enumerate(systems):
            ax = axes[row * len(systems) + col]
            mine = data[data["system"] == system]
            for _, r in mine.iterrows():
                marker, colour = MARKERS.get(r["network"], ("D", "0.4"))
                ax.errorbar([r[cost]], [r["y"]], yerr=[[min(r["yerr"], r["y"] * 0.999) if is_error else r["yerr"]],
                                                       [r["yerr"]]],
                            fmt=marker, color=colour, ms=6, capsize=2, lw=0.8,
                            mfc="none" if r["clipped"] else colour, label=r["series"])
            _log_x(ax, mine[cost].to_numpy(float))
            if is_error:
                ax.set_yscale("log", nonpositive="clip")
                top = float(np.nanmax(mine["y"] + mine["yerr"])) * 1.5
                bottom = min(float(np.nanmin(mine["y"])) / 1.5, CHEMICAL_ACCURACY_MHA / 2)
                ax.set_ylim(bottom, max(top, CHEMICAL_ACCURACY_MHA * 2))
                ax.axhspan(bottom, CHEMICAL_ACCURACY_MHA, color="0.88", lw=0, zorder=0)
                plain_log_labels(ax)
            ax.set_xlabel(COSTS[cost][0])
            ax.set_ylabel("error vs exact (mHa)" if is_error else "energy (Ha)")
            ax.set_title(system, fontsize=8)
            ax.legend(fontsize=6.5, frameon=False)
    if data.attrs.get("title"):
        fig.suptitle(data.attrs["title"], fontsize=8)
    return fig


def _log_x(ax, values: np.ndarray) -> None:
    """Log x axis over ``values`` (padded 2x each side), major ticks at 1, 2, 5 per decade, no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    values = values[np.isfinite(values) & (values > 0)]
    if values.size:
        ax.set_xlim(values.min() / 2, values.max() * 2)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


# ----------------------------------------------------------------------------- claims


def _pair(points: pd.DataFrame, a: str, b: str) -> tuple[pd.Series, pd.Series] | None:
    rows = {r["network"]: r for _, r in points.iterrows()}
    return (rows[a], rows[b]) if a in rows and b in rows else None


def _claim(statement: str, decision: Decision, gate, pair_for_stability, log: bool) -> Claim:
    """Gate first (blocks), then for ``supported`` the stability of the gap over training (holds)."""
    unstable, note = stability_gate([pair_for_stability], log=log)
    favoured = pair_for_stability[2]  # (label, reference, favoured, factor)
    decision = replace(decision, blocked=join_parts(gate.failure, decision.blocked),
                       hold=join_parts(unstable, lost_hold([favoured], str(favoured["series"]))),
                       body=join_parts(decision.body, note, lost_note([pair_for_stability[1], favoured])),
                       trials=trial_numbers([pair_for_stability[1], pair_for_stability[2]]))
    return decided(Claim("architecture", statement, INCONCLUSIVE, "", kind=COMPARISON, scope=gate.scope,
                         decision=decision))


def beats_claim(system: str, points: pd.DataFrame, better: str, worse: str, pool: list | None = None) -> Claim | None:
    """``better`` beats ``worse`` at equal iterations on one system (None when either did not run):
    t on ln(error) with the variance pooled over ``pool`` (every point of the figure; Welch on the
    energy when no reference is known)."""
    pair = _pair(points, better, worse)
    if pair is None:
        return None
    a, b = pair
    unit = "mHa" if a["y_name"] == "error_mha" else "Ha"
    log = unit == "mHa"
    statement = f"{a['series']} beats {b['series']} at equal iterations ({system})"
    evidence = f"{a['series']} {fmt_pm(a['mean'], a['yerr'], unit)} vs {b['series']} {fmt_pm(b['mean'], b['yerr'], unit)}"
    gate = comparison_gate(pd.DataFrame([a, b]), "network")
    stability = (f"{b['series']} − {a['series']}", b, a, 1.0)
    if gate.failure:
        return _claim(statement, Decision(body=evidence), gate, stability, log)
    test = difference(sample(b, log), sample(a, log), pool=pool if log else None)
    size = fmt_factor(test.estimate) if log else f"{test.estimate:.3g} {unit}"
    seeds = min_seeds(pd.DataFrame([a, b]))
    return _claim(statement, Decision(
        p_support=test.p_greater, p_refute=test.p_less,
        supported=f"lower ({b['series']} / {a['series']} {size})", refuted=f"{b['series']} is lower ({size})",
        undecided=f"the difference ({size}) is not significant",
        test=(f"t on ln(error), variance pooled over the figure's points: {test.text()}" if log and pool else
              f"Welch t on {'ln(error)' if log else 'energy'}: {test.text()}"), body=evidence,
        need=need_text(test, seeds), power=power_text(test, seeds, log, unit, "no difference")), gate, stability, log)


def matches_claim(system: str, points: pd.DataFrame, cost: str | None) -> Claim | None:
    """Psiformer matches or beats FermiNet on one system, at equal iterations (``cost`` None) or at
    equal ``cost`` (module docstring): non-inferiority within the study's margin."""
    pair = _pair(points, "psiformer", "ferminet")
    if pair is None:
        return None
    a, b = pair
    unit = "mHa" if a["y_name"] == "error_mha" else "Ha"
    rules = rules_of(points)
    margin = rules.margin(unit)
    where = "equal iterations" if cost is None else f"equal cost ({COSTS[cost][1]})"
    statement = f"Psiformer matches or beats FermiNet at {where} ({system})"
    evidence = f"Psiformer {fmt_pm(a['mean'], a['yerr'], unit)} vs FermiNet {fmt_pm(b['mean'], b['yerr'], unit)}"
    gate = comparison_gate(pd.DataFrame([a, b]), "network")
    stability = ("FermiNet − Psiformer", b, a, 1.0)
    if gate.failure:
        return _claim(statement, Decision(body=evidence), gate, stability, False)
    test = difference(sample(a, False), sample(b, False), null=margin)
    seeds = min_seeds(pd.DataFrame([a, b]))
    decision = Decision(
        p_support=test.p_less, p_refute=test.p_greater,
        supported=f"Psiformer − FermiNet = {test.estimate:+.3g} {unit}, below the margin {rules.margin_text(unit)}",
        refuted=f"Psiformer is worse by more than the margin {rules.margin_text(unit)} ({test.estimate:+.3g} {unit})",
        undecided=f"Psiformer − FermiNet = {test.estimate:+.3g} {unit} is not resolved from the margin "
                  f"{rules.margin_text(unit)}",
        test=f"Welch non-inferiority t on Psiformer − FermiNet {'error' if unit == 'mHa' else 'energy'} against "
             f"+{margin:g} {unit}: {test.text()}",
        hypothesis=f"Psiformer matches or beats FermiNet ({system})",
        body=evidence, need=need_text(test, seeds),
        power=power_text(test, seeds, False, unit, f"the margin {rules.margin_text(unit)}"))
    if cost is None:
        return _claim(statement, decision, gate, stability, False)
    ratio = float(a[cost]) / float(b[cost]) if float(b[cost]) > 0 else math.nan
    if not math.isfinite(ratio):
        return _claim(statement, replace(decision, blocked=f"{COSTS[cost][1]} not recorded"), gate, stability, False)
    cost_text = f"Psiformer/FermiNet {COSTS[cost][1]} {ratio:.2f} ({a[cost]:.3g} vs {b[cost]:.3g})"
    support_ok, refute_ok = ratio <= 1 + COST_MATCH, ratio >= 1 - COST_MATCH
    if ratio > 1:
        need = f"FermiNet trained about {ratio:.1f}x as long (or the Psiformer {1 / ratio:.2f}x as long)"
    else:
        need = f"the Psiformer trained about {1 / ratio:.1f}x as long"
    decision = replace(decision, body=join_parts(decision.body, cost_text),
                       p_support=decision.p_support if support_ok else None,
                       p_refute=decision.p_refute if refute_ok else None,
                       supported=decision.supported + " at no more cost",
                       refuted=decision.refuted + " at no less cost",
                       undecided=(decision.undecided if support_ok and refute_ok else
                                  f"{decision.undecided}; a match can only be judged at no more cost and a loss at "
                                  f"no less cost: {'the Psiformer spent more' if ratio > 1 else 'the Psiformer spent less'} "
                                  f"(equal cost needs {need})"))
    return _claim(statement, decision, gate, stability, False)


def architecture_claims(data: pd.DataFrame) -> list[Claim]:
    """Per system: FermiNet vs Slater–Jastrow, Psiformer vs FermiNet at equal iterations and at
    equal device-seconds and training FLOPs (module docstring)."""
    if data.empty:
        return []
    claims = []
    pool = ([sample(r, log=True) for _, r in data.iterrows()] if data["y_name"].iloc[0] == "error_mha" else None)
    for system in dict.fromkeys(data["system"]):
        points = data[data["system"] == system]
        found = [beats_claim(system, points, "ferminet", "slater_jastrow", pool), matches_claim(system, points, None),
                 *(matches_claim(system, points, cost) for cost in COSTS)]
        claims += [c for c in found if c is not None]
    if not claims:
        ran = ", ".join(sorted({NETWORK_NAMES.get(n, n) for n in data["network"]}))
        claims.append(Claim("architecture", "FermiNet beats Slater–Jastrow; Psiformer matches or beats FermiNet",
                            INCONCLUSIVE, f"only {ran} ran: no pair to compare", kind=COMPARISON))
    return claims


def planned(trials: pd.DataFrame) -> list[str]:
    """``architecture`` when the ansatz is swept in a grid study without a size key (a sweep of
    widths or determinants per ansatz is its size study's)."""
    keys = set(swept_keys(trials))
    if tuning_keys(trials) or not keys & set(NETWORK_KEYS) or keys & set(OTHER_NETWORK_KEYS):
        return []
    return ["architecture"]


ARCHITECTURE = FigureKind(
    "architecture", "trials", architecture_data, draw_architecture,
    "Error vs cost per system, one marker per ansatz (FermiNet circles, Psiformer squares, Slater–Jastrow "
    "triangles): mean over seeds with the seeds' standard deviation (at least the reblocked standard error); "
    "cost = the seeds' mean device-seconds (top) and training FLOPs (bottom). Grey band: chemical accuracy.")
STUDY = FigureStudy("architecture", (ARCHITECTURE,), planned, claims_by_figure({"architecture": architecture_claims}))
