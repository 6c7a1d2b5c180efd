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

* **"FermiNet beats Slater–Jastrow"** at equal iterations: ``supported`` when FermiNet's error is
  lower by more than 2 sigma, ``not supported`` when Slater–Jastrow's is, else ``inconclusive``.
* **"Psiformer matches or beats FermiNet at equal iterations"** and **"... at equal cost"** (once
  per cost: device-seconds, training FLOPs). *Matches* is a statement about a bound: the Psiformer
  is not worse by more than 2 sigma **and** the test could have seen a difference of
  :data:`MATCH_TOLERANCE` of FermiNet's error or of chemical accuracy (1.6 mHa), whichever is
  larger (2 sigma of the gap below it); wider error bars are ``inconclusive``. At equal cost the two runs' costs must agree within :data:`COST_MATCH`, or the
  better-or-equal one must also be the cheaper: a Psiformer that matches FermiNet at no more cost
  is ``supported``; one significantly worse at no less cost ``not supported``; anything else (the
  one that does better also spent more) cannot be judged at equal cost from these runs and is
  ``inconclusive``, and the evidence says how much more training the cheaper one would need. This
  assumes only that more training does not raise the error.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..loaders import HARTREE_TO_MHA
from ..plotting import new_figure, plain_log_labels
from ..points import (CHEMICAL_ACCURACY_MHA, NETWORK_KEYS, NETWORK_NAMES, aggregate_point, point_facts,
                      response_metric, swept_keys, title_line, tuning_keys)
from ..stability import stability_gate
from ..study import FigureKind, FigureStudy, claims_by_figure
from ..verdicts import (COMPARISON, INCONCLUSIVE, NOT_SUPPORTED, SIGNIFICANCE, SUPPORTED, Claim, combined_sigma,
                        comparison_gate, fmt_pm, join_parts)
from .cost import with_cost_columns

COST_MATCH = 0.10  # costs within this fraction of each other count as equal cost
MATCH_TOLERANCE = 0.10  # "matches" needs 2 sigma of the gap below this fraction of FermiNet's error
# (or below chemical accuracy, whichever is larger)
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
    rows = []
    for (system, network), group in done.groupby(["system", net], sort=False):
        values = pd.to_numeric(group[metric.column], errors="coerce").to_numpy(float)
        if not np.isfinite(values).any():
            continue
        stderrs = pd.to_numeric(group.get(err_col), errors="coerce").to_numpy(float)
        point = aggregate_point(values, stderrs, metric.log)
        rows.append({"system": system, "network": str(network), "series": NETWORK_NAMES.get(str(network), str(network)),
                     "x_name": "network", "x": str(network), "y_name": metric.column, **point, **point_facts(group),
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


def _claim(statement: str, verdict: str, reason: str, evidence: str, gate, pair_for_stability) -> Claim:
    """Gate first, then (for ``supported``) stability of the margin over training."""
    unstable, note = stability_gate([pair_for_stability])
    if gate.failure:
        verdict, reason = INCONCLUSIVE, gate.failure
    elif verdict == SUPPORTED and unstable:
        verdict, reason = INCONCLUSIVE, unstable
    return Claim("architecture", statement, verdict, join_parts(reason, evidence, note), kind=COMPARISON,
                 scope=gate.scope)


def beats_claim(system: str, points: pd.DataFrame, better: str, worse: str) -> Claim | None:
    """``better`` beats ``worse`` at equal iterations on one system (None when either did not run)."""
    pair = _pair(points, better, worse)
    if pair is None:
        return None
    a, b = pair
    unit = "mHa" if a["y_name"] == "error_mha" else "Ha"
    statement = f"{a['series']} beats {b['series']} at equal iterations ({system})"
    gap, sigma = b["mean"] - a["mean"], combined_sigma(a["yerr"], b["yerr"])
    evidence = (f"{a['series']} {fmt_pm(a['mean'], a['yerr'], unit)} vs {b['series']} "
                f"{fmt_pm(b['mean'], b['yerr'], unit)} (gap {gap:.2f} ± {sigma:.2f})")
    gate = comparison_gate(pd.DataFrame([a, b]), "network")
    if gap > SIGNIFICANCE * sigma:
        verdict, reason = SUPPORTED, f"lower by {gap / sigma:.1f} sigma" if sigma > 0 else "lower"
    elif -gap > SIGNIFICANCE * sigma:
        verdict, reason = NOT_SUPPORTED, f"{b['series']} is lower by {-gap / sigma:.1f} sigma"
    else:
        verdict, reason = INCONCLUSIVE, "difference within 2 sigma"
    return _claim(statement, verdict, reason, evidence, gate, (f"{b['series']} − {a['series']}", b, a, 1.0))


def _match(a: pd.Series, b: pd.Series) -> tuple[str, str]:
    """("better" | "match" | "worse" | "wide", text) for ``a`` against reference ``b`` (errors)."""
    gap, sigma = a["mean"] - b["mean"], combined_sigma(a["yerr"], b["yerr"])
    z = gap / sigma if sigma > 0 else math.copysign(math.inf, gap)
    text = f"difference {gap:+.2f} ± {sigma:.2f} ({z:+.1f} sigma)"
    if z < -SIGNIFICANCE:
        return "better", text
    if z > SIGNIFICANCE:
        return "worse", text
    bound = max(MATCH_TOLERANCE * abs(b["mean"]), CHEMICAL_ACCURACY_MHA if b["y_name"] == "error_mha" else 0.0)
    what = f"the larger of {MATCH_TOLERANCE:.0%} of {b['series']}'s error and chemical accuracy ({bound:.2f})"
    if SIGNIFICANCE * sigma > bound:
        return "wide", text + f"; 2 sigma = {SIGNIFICANCE * sigma:.2f} exceeds {what}: error bars too wide to call a match"
    return "match", text + f"; 2 sigma within {what}"


def matches_claim(system: str, points: pd.DataFrame, cost: str | None) -> Claim | None:
    """Psiformer matches or beats FermiNet on one system, at equal iterations (``cost`` None) or at
    equal ``cost`` (module docstring)."""
    pair = _pair(points, "psiformer", "ferminet")
    if pair is None:
        return None
    a, b = pair
    unit = "mHa" if a["y_name"] == "error_mha" else "Ha"
    where = "equal iterations" if cost is None else f"equal cost ({COSTS[cost][1]})"
    statement = f"Psiformer matches or beats FermiNet at {where} ({system})"
    outcome, text = _match(a, b)
    evidence = (f"Psiformer {fmt_pm(a['mean'], a['yerr'], unit)} vs FermiNet {fmt_pm(b['mean'], b['yerr'], unit)}; "
                f"{text}")
    gate = comparison_gate(pd.DataFrame([a, b]), "network")
    stability = ("FermiNet − Psiformer", b, a, 1.0)
    if cost is None:
        verdict = {"better": SUPPORTED, "match": SUPPORTED, "worse": NOT_SUPPORTED}.get(outcome, INCONCLUSIVE)
        return _claim(statement, verdict, "", evidence, gate, stability)
    ratio = float(a[cost]) / float(b[cost]) if float(b[cost]) > 0 else math.nan
    if not math.isfinite(ratio):
        return _claim(statement, INCONCLUSIVE, f"{COSTS[cost][1]} not recorded", evidence, gate, stability)
    evidence = join_parts(evidence, f"Psiformer/FermiNet {COSTS[cost][1]} {ratio:.2f} "
                                    f"({a[cost]:.3g} vs {b[cost]:.3g})")
    if outcome in ("better", "match") and ratio <= 1 + COST_MATCH:
        return _claim(statement, SUPPORTED, "at no more cost", evidence, gate, stability)
    if outcome == "worse" and ratio >= 1 - COST_MATCH:
        return _claim(statement, NOT_SUPPORTED, "worse at no less cost", evidence, gate, stability)
    if outcome == "wide":
        return _claim(statement, INCONCLUSIVE, "no verdict on a match", evidence, gate, stability)
    if ratio > 1:
        need = f"FermiNet trained about {ratio:.1f}x as long (or the Psiformer {1 / ratio:.2f}x as long)"
    else:
        need = f"the Psiformer trained about {1 / ratio:.1f}x as long"
    return _claim(statement, INCONCLUSIVE, f"not comparable at equal cost: the one that does at least as well also "
                                           f"spent more (needs {need})", evidence, gate, stability)


def architecture_claims(data: pd.DataFrame) -> list[Claim]:
    """Per system: FermiNet vs Slater–Jastrow, Psiformer vs FermiNet at equal iterations and at
    equal device-seconds and training FLOPs (module docstring)."""
    if data.empty:
        return []
    claims = []
    for system in dict.fromkeys(data["system"]):
        points = data[data["system"] == system]
        found = [beats_claim(system, points, "ferminet", "slater_jastrow"), matches_claim(system, points, None),
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
