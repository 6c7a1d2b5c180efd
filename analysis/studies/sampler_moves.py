"""Sampler-moves study (swept ``mcmc.moves`` and/or ``mcmc.method``): energy spikes per
sampler and the error vs training time.

* "HMC produces energy spikes MH does not": the spike count of a trial is summary.json's
  ``energy_spikes`` (training iterations above the median of the previous 100 by more than 10
  MADs). Spikes cluster: one unstable trial can spike many times in a row, so counts pooled over
  iterations would treat a burst as independent evidence. The unit is therefore the *trial*: a
  trial either spiked (at least one spike) or did not, and the 2x2 table (method x spiked) is
  judged by Fisher's exact test (``scipy.stats.fisher_exact``), one-sided, for *support* (HMC
  trials spike more often). A trial that ended without a result (failed, diverged or pruned)
  counts as a trial that spiked, and is named. *Refutation* needs evidence that HMC spikes no
  more often than MH beyond a margin: the score test of non-inferiority of the difference of the
  two fractions (``statsmodels.stats.proportion.test_proportions_2indep``) against the sweep file's
  ``claims.rate_margin`` (default 0.3: HMC spikes in at most 30 percentage points more of its
  trials); "no HMC trial spiked" among a few trials is not evidence. Both tests join the study's
  Holm adjustment. *No convergence gate here*: a spike count is a count over the training
  whatever the energy did, and an HMC run that spikes is expected not to converge, so gating on
  convergence would hide the very effect under test. It is a comparison at a budget: the trials
  compared share one budget (iterations x walkers). Trials without a count (older runs) are left
  out and named.
* "one-electron moves lower the error at equal cost for the larger systems": the cost of a trial
  is its training time ``t = iterations x ms_per_iteration / 1000`` (s; median step time, so
  start-up, compilation, pretraining and evaluation are not counted: the sampler choice changes
  the cost per step, which is what this measures; wall times are in the CSV). Pairs are (system,
  all-electron, one-electron) at ``mcmc.method=mh`` when the method is swept. *Larger systems*:
  electron count above the median count of the study's systems. One test over the larger systems:
  the mean over them of ln(all-electron error) − ln(one-electron error), a Welch contrast of the
  seeds' ln errors; assuming only that more training time does not raise the error, support
  (one-electron better) is tested only when the one-electron runs trained no longer than 10 %
  more (:data:`COST_MATCH`) on every larger system, refutation only when they trained no shorter;
  otherwise the data cannot compare the moves at equal cost and the evidence says what training
  time (and iterations) a matched trial needs. ``supported`` is held when a larger system's log
  ratio shrinks over training (:mod:`analysis.stability`, windows at the same fractions of each
  run, i.e. of its cost). The scope of this comparison is equal training time, not equal
  iterations. Error per unit time is not used: the error does not fall linearly with time, so it
  would not compare runs at equal cost.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import stats

from ..loaders import complete_trials
from ..points import lost_trials
from ..plotting import annotate, legend, log_y_with_band, new_figure, plain_log_tick_labels, raise_error_bars
from ..points import ERROR, error_caption, swept_keys, title_line, tuning_keys
from ..study import FigureKind, FigureStudy, claims_by_figure
from ..stability import stability_gate
from ..systems import offsets, system_axis, system_points, system_positions
from ..inference import contrast
from ..verdicts import (
    COMPARISON, Claim, Decision, Gate, INCONCLUSIVE, comparison_gate, decided, fmt_factor, fmt_num, fmt_pm,
    join_parts, lost_hold, lost_note, min_seeds, need_text, power_text, replicate_gate, rules_of, sample, seeds_text, trial_numbers,
)


MOVES_KEY = "mcmc.moves"
METHOD_KEY = "mcmc.method"
COST_MATCH = 0.10  # training times within this fraction count as equal cost
METHOD_NAMES = {"mh": "MH", "hmc": "HMC"}
MOVES_NAMES = {"all": "all-electron moves", "one": "one-electron moves"}


def sampler_level(method, moves) -> str:
    """``mh/all``, ``hmc/one``; a key that was not swept reads ``-``."""
    m = "-" if method is None or (isinstance(method, float) and math.isnan(method)) else str(method).lower()
    v = "-" if moves is None or (isinstance(moves, float) and math.isnan(moves)) else str(moves).lower()
    return f"{m}/{v}"


def sampler_label(level: str) -> str:
    """``MH, one-electron moves`` (only the parts that were swept)."""
    method, moves = level.split("/")
    parts = [METHOD_NAMES.get(method, method) if method != "-" else None,
             MOVES_NAMES.get(moves, f"{moves} moves") if moves != "-" else None]
    return ", ".join(p for p in parts if p) or "all trials"


SPIKE_COLUMNS = ("panel", "series", "level", "x_name", "x", "x_pos", "electrons", "trial", "y", "y_name",
                 "iterations", "converged", "state", "reason")


def _training_time(group: pd.DataFrame) -> dict:
    """Training time (s) = iterations x median step time, mean and spread over the seeds; wall time."""
    its = pd.to_numeric(group["iterations"], errors="coerce").to_numpy(float)
    ms = pd.to_numeric(group["ms_per_iteration"], errors="coerce").to_numpy(float)
    t = its * ms / 1000.0
    wall = pd.to_numeric(group["wall_time_s"], errors="coerce").to_numpy(float)
    finite = t[np.isfinite(t)]
    return {"train_time_s": float(finite.mean()) if finite.size == t.size and t.size else math.nan,
            "train_time_spread_s": float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
            "ms_per_iteration": float(np.nanmean(ms)) if np.isfinite(ms).any() else math.nan,
            "iterations": float(np.nanmean(its)) if np.isfinite(its).any() else math.nan,
            "wall_time_s": float(np.nanmean(wall)) if np.isfinite(wall).any() else math.nan}


def sampler_moves_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Two panels: ``energy_spikes per trial`` (one row per complete trial: ``y`` = its spike
    count, ``iterations``) and ``error_mha vs training time`` (one row per (method/moves, system):
    seed-aggregated error and ``train_time_s`` = iterations x median step time, s)."""
    keys = [METHOD_KEY, MOVES_KEY]
    points = system_points(trials, keys, sampler_level, sampler_label, extra=_training_time)
    points["panel"] = "error_mha vs training time"
    done = pd.concat([complete_trials(trials), lost_trials(trials)]).sort_values("trial", kind="stable")
    rows = []
    positions = system_positions(points) if len(points) else {}
    for _, r in done.iterrows():
        lev = sampler_level(r.get(METHOD_KEY), r.get(MOVES_KEY))
        system = str(r["system"]) if pd.notna(r["system"]) else "unknown system"
        spikes = pd.to_numeric(pd.Series([r.get("energy_spikes")]), errors="coerce").iloc[0]
        flag = r.get("converged")
        state = str(r["state"])
        reason = r.get("reason") if state != "COMPLETE" else None
        rows.append({"panel": "energy_spikes per trial", "series": sampler_label(lev), "level": lev,
                     "x_name": "system", "x": system, "x_pos": positions.get(system, math.nan),
                     "electrons": float(r["n_electrons"]) if pd.notna(r.get("n_electrons")) else math.nan,
                     "trial": int(r["trial"]), "y": spikes if state == "COMPLETE" else math.nan, "y_name": "energy_spikes",
                     "iterations": pd.to_numeric(pd.Series([r.get("iterations")]), errors="coerce").iloc[0],
                     "converged": None if flag is None or flag is pd.NA else bool(flag),
                     "state": state, "reason": reason if isinstance(reason, str) else ""})
    spikes = pd.DataFrame(rows, columns=list(SPIKE_COLUMNS))
    if len(spikes) and spikes["x_pos"].isna().any():  # trials without an error still have spikes
        known = dict(positions)
        for system in spikes.loc[spikes["x_pos"].isna(), "x"].unique():
            known[system] = len(known)
        spikes["x_pos"] = spikes["x"].map(known)
    data = pd.concat([spikes, points], ignore_index=True) if len(points) else spikes
    data.attrs.update(points.attrs)
    data.attrs["title"] = title_line(trials)
    return data


SAMPLER_ORDER = ("mh/all", "mh/one", "hmc/all", "hmc/one", "-/all", "-/one", "mh/-", "hmc/-")


def draw_sampler_moves(data: pd.DataFrame):
    """Figure of :func:`sampler_moves_data`: spikes per trial by system (symmetric log y, so 0
    shows) and error vs training time (log-log), colours per method/moves, markers per system."""
    fig, (left, right) = new_figure(ncols=2, panel_size=(4.4, 3.0))
    spikes = data[data["panel"] == "energy_spikes per trial"]
    points = data[data["panel"] == "error_mha vs training time"]
    levels = [lev for lev in SAMPLER_ORDER if lev in set(data["level"])]
    levels += [lev for lev in dict.fromkeys(data["level"]) if lev not in levels]
    colour = {lev: f"C{i}" for i, lev in enumerate(levels)}
    counted = spikes[pd.to_numeric(spikes["y"], errors="coerce").notna()]
    for lev, dx in zip(levels, offsets(len(levels))):
        rows = counted[counted["level"] == lev]
        if len(rows):
            left.plot(rows["x_pos"].to_numpy(float) + dx, rows["y"].to_numpy(float), ls="none", marker="o", ms=5,
                      mfc="white", mew=1.1, color=colour[lev], label=sampler_label(lev))
    if len(spikes):
        system_axis(left, spikes.assign(electrons=spikes["electrons"].astype(float)))
    _spike_axis(left, pd.to_numeric(counted["y"], errors="coerce").to_numpy(float))
    left.set_ylabel("energy spikes per trial")
    left.set_title("energy spikes (one marker per trial)", fontsize=8)
    legend(left)
    markers = {s: "osD^vP"[i % 6] for i, s in enumerate(points.sort_values("x_pos")["x"].unique())}
    for lev in levels:
        for system, marker in markers.items():
            rows = points[(points["level"] == lev) & (points["x"] == system)]
            if rows.empty:
                continue
            x = rows["train_time_s"].to_numpy(float)
            container = right.errorbar(x, rows["y"].to_numpy(float), yerr=rows["yerr"].to_numpy(float),
                                       xerr=rows["train_time_spread_s"].to_numpy(float), marker=marker, ms=5,
                                       mfc="white", mew=1.1, ls="none", capsize=3, color=colour[lev])
            raise_error_bars(container)
    for lev in levels:
        if (points["level"] == lev).any():
            right.plot([], [], ls="none", marker="s", color=colour[lev], label=sampler_label(lev))
    for system, marker in markers.items():
        right.plot([], [], ls="none", marker=marker, mfc="white", color="black", label=str(system))
    if len(points):
        xs = points["train_time_s"].to_numpy(float)
        if (xs > 0).all():
            _plain_log_x(right, xs)
        ys, errs = points["y"].to_numpy(float), points["yerr"].to_numpy(float)
        log_y_with_band(right, np.where(ys - errs > 0, ys - errs, ys), ys + errs, band=True)
    right.set_xlabel("training time (s): iterations × median step time")
    right.set_ylabel(ERROR.label)
    right.set_title("error vs training cost", fontsize=8)
    legend(right)
    caption = ("Left: energy spikes of each trial (training iterations above the median of the previous 100 by "
               "more than 10 MADs), symmetric log axis (0 shows). Right: ")
    caption += (error_caption(points).replace("Points:", "points:") if len(points) else "no errors: ")
    caption += " Horizontal bars: seed spread of the training time."
    annotate(fig, data.attrs.get("title"), caption)
    return fig


def _spike_axis(ax, counts: np.ndarray) -> None:
    """Symmetric log y (linear below 1, so 0 shows) from 0 to above the largest count, plain ticks."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    top = max(2.0, float(np.nanmax(counts)) if counts.size else 0.0) * 1.6
    ax.set_yscale("symlog", linthresh=1.0, linscale=0.5)
    ax.set_ylim(-0.3, top)
    steps = [m * 10**e for e in range(7) for m in (1, 2, 5)]
    ax.yaxis.set_major_locator(FixedLocator([0.0, *[v for v in steps if v <= top]]))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))


def _plain_log_x(ax, values: np.ndarray) -> None:
    """Log x spanning ``values`` with margins, ticks labelled as plain numbers (minor ticks 2, 3, 5
    too when the range is under 1.5 decades)."""
    ax.set_xscale("log")
    low, high = float(values.min()) / 1.4, float(values.max()) * 1.4
    ax.set_xlim(low, high)
    plain_log_tick_labels(ax.xaxis, low, high)


SPIKES_STATEMENT = "HMC produces energy spikes MH does not"
MOVES_STATEMENT = "one-electron moves lower the error at equal cost for the larger systems"


def sampler_moves_claims(data: pd.DataFrame) -> list[Claim]:
    """The spike comparison (if the method was swept) and the equal-cost moves comparison (if the
    moves were swept)."""
    claims = []
    levels = set(data["level"]) if len(data) else set()
    if any(lev.startswith(("mh/", "hmc/")) for lev in levels):
        claims.append(spikes_claim(data))
    if any(lev.endswith(("/all", "/one")) for lev in levels):
        points = data[data["panel"] == "error_mha vs training time"]
        claims.append(replace(moves_claim(data), kind=COMPARISON,
                              scope=f"at equal training time (within {COST_MATCH:.0%}), {seeds_text(points)}"))
    return claims


def spiked_table(counted: pd.DataFrame) -> tuple[dict, dict]:
    """(trials that spiked, trials) per method (``hmc``/``mh``) of the spike rows: a trial spiked
    when its count is > 0 or it ended without a result (failed, diverged or pruned)."""
    unstable = counted["y"].astype(float).gt(0) | counted["state"].ne("COMPLETE")
    spiked = {m: int((unstable & counted["method"].eq(m)).sum()) for m in ("hmc", "mh")}
    total = {m: int((counted["method"] == m).sum()) for m in ("hmc", "mh")}
    return spiked, total


def spikes_claim(data: pd.DataFrame) -> Claim:
    """Trials that spiked per method: Fisher's exact test for support, a score test of
    non-inferiority within the rate margin for refutation (module docstring)."""
    from statsmodels.stats.proportion import test_proportions_2indep

    topic, statement = "sampler_moves", SPIKES_STATEMENT
    rules = rules_of(data)
    spikes = data[data["panel"] == "energy_spikes per trial"].copy()
    spikes["method"] = spikes["level"].str.split("/").str[0]
    lost = spikes["state"].ne("COMPLETE")
    counted = spikes[lost | (pd.to_numeric(spikes["y"], errors="coerce").notna()
                             & pd.to_numeric(spikes["iterations"], errors="coerce").gt(0))]
    uncounted = spikes[~spikes.index.isin(counted.index)]
    note = (f"no spike count or iterations recorded for {', '.join('t' + str(int(t)) for t in uncounted['trial'])} "
            "(left out)" if len(uncounted) else "")
    failed = spikes[lost]
    failed_note = ("trials without a result count as spiked: " + ", ".join(
        f"t{int(r['trial'])} {METHOD_NAMES.get(r['method'], r['method'])} {r['state']}"
        + (f" ({str(r['reason'])[:60]})" if r["reason"] else "") for _, r in failed.iterrows())) if len(failed) else ""
    points = data[data["panel"] == "error_mha vs training time"]
    gate = comparison_gate(points, "system") if len(points) else Gate(None, "")

    groups = {m: counted[counted["method"] == m] for m in ("hmc", "mh")}
    empty = [METHOD_NAMES[m] for m, g in groups.items() if g.empty]
    if empty:
        return Claim(topic, statement, INCONCLUSIVE, join_parts(f"no {' or '.join(empty)} trial with a spike count: "
                                                                "no comparison", note), kind=COMPARISON, scope=gate.scope)
    spiked, total = spiked_table(counted)
    _, p_more = stats.fisher_exact([[spiked["hmc"], total["hmc"] - spiked["hmc"]],
                                    [spiked["mh"], total["mh"] - spiked["mh"]]], alternative="greater")
    margin = rules.rate_margin
    with np.errstate(divide="ignore", invalid="ignore"):
        p_within = float(test_proportions_2indep(spiked["hmc"], total["hmc"], spiked["mh"], total["mh"], value=margin,
                                                 method="score", compare="diff", alternative="smaller").pvalue)
    counts = {m: int(g["y"].astype(float).fillna(0).sum()) for m, g in groups.items()}
    its = {m: float(g["iterations"].astype(float).fillna(0).sum()) for m, g in groups.items()}
    per_trial = {m: ", ".join(f"t{int(r['trial'])} " + (str(int(r['y'])) if r["state"] == "COMPLETE" else r["state"])
                              for _, r in g.sort_values("trial").iterrows()) for m, g in groups.items()}
    converged = sum(1 for v in spikes["converged"] if isinstance(v, (bool, np.bool_)) and v)
    body = join_parts(
        "; ".join(f"{METHOD_NAMES[m]}: {spiked[m]} of {total[m]} trials spiked ({counts[m]} spikes in {its[m]:.0f} "
                  f"training iterations; per trial: {per_trial[m]})" for m in ("hmc", "mh")),
        failed_note, f"convergence not required for a spike count ({converged} of {len(spikes)} trials converged)",
        note)
    effect = f"{spiked['hmc']} of {total['hmc']} HMC vs {spiked['mh']} of {total['mh']} MH trials spiked"
    decision = Decision(
        p_support=float(p_more), p_refute=p_within, blocked=gate.failure or "",
        supported=("HMC trials spike, MH trials never do" if spiked["mh"] == 0 else
                   "HMC trials spike significantly more often"),
        refuted=(f"HMC trials spike in at most {margin:.0%} more of their trials than MH trials "
                 f"({spiked['hmc']}/{total['hmc']} vs {spiked['mh']}/{total['mh']})"),
        undecided="neither more spiking nor a rate within the margin is shown",
        test=(f"the unit is the trial (a burst within one trial counts once): Fisher's exact test for HMC more "
              f"(support); score test of HMC − MH spike rate < {margin:g} (refutation, the sweep file's "
              "claims.rate_margin)"),
        body=body, trials=tuple(sorted(int(t) for t in counted["trial"])))
    return replace(decided(Claim(topic, statement, INCONCLUSIVE, "", kind=COMPARISON, scope=gate.scope,
                                 decision=decision)), effect=effect)


def larger_systems(points: pd.DataFrame) -> tuple[list, float]:
    """(systems whose electron count is above the median of the study's systems, that median)."""
    table = points.drop_duplicates("x")
    counts = table["electrons"].astype(float)
    median = float(np.median(counts)) if len(counts) else math.nan
    return list(table.loc[counts > median, "x"]), median


def moves_claim(data: pd.DataFrame) -> Claim:
    """One- vs all-electron moves at equal training time on the larger systems (module docstring)."""
    topic, statement = "sampler_moves", MOVES_STATEMENT
    points = data[data["panel"] == "error_mha vs training time"].copy()
    if points.empty:
        return Claim(topic, statement, INCONCLUSIVE, "no complete trial with an error vs a reference")
    points["method"] = points["level"].str.split("/").str[0]
    points["moves"] = points["level"].str.split("/").str[1]
    if (points["method"] == "mh").any():
        points = points[points["method"].isin(["mh", "-"])]
    scope = "Metropolis–Hastings trials" if (points["method"] == "mh").any() else "all trials"
    if not {"all", "one"} <= set(points["moves"]):
        ran = ", ".join(MOVES_NAMES.get(m, m) for m in sorted(set(points["moves"])))
        return Claim(topic, statement, INCONCLUSIVE, f"only {ran} have complete trials with an error: no comparison")
    if points["electrons"].astype(float).isna().any():
        return Claim(topic, statement, INCONCLUSIVE, "electron counts not recorded (summary.json electrons): "
                     "cannot tell the larger systems")
    others = [k for k in data.attrs.get("other_keys", []) if k in points]
    pairs = points[points["moves"] == "one"].merge(points[points["moves"] == "all"], on=["x", *others],
                                                    suffixes=("_one", "_all"))
    if pairs.empty:
        return Claim(topic, statement, INCONCLUSIVE, "one- and all-electron moves have no system in common")
    larger, median = larger_systems(pairs.assign(electrons=pairs["electrons_one"]))
    if not larger:
        return Claim(topic, statement, INCONCLUSIVE,
                     f"no system has more electrons than the median ({fmt_num(median)}) of the compared systems "
                     f"({', '.join(map(str, pairs['x']))}): no larger system")
    judged = pairs[pairs["x"].isin(larger)]
    compared = points[points["x"].isin(larger)]
    compared.attrs.update(data.attrs)
    texts = [_equal_cost(r) for _, r in judged.iterrows()]
    smaller = pairs[~pairs["x"].isin(larger)]
    context = ("smaller systems (not judged): " + "; ".join(_equal_cost(r)[1] for _, r in smaller.iterrows())
               if len(smaller) else "")
    body = join_parts(f"{scope}; larger systems: more than {fmt_num(median)} electrons", "; ".join(t for _, t in texts),
                      context, lost_note(compared))
    blocked = replicate_gate(compared, "system")
    costs = [c for c, _ in texts]
    if not blocked and any(not math.isfinite(c) for c in costs):
        blocked = "training time not recorded (iterations, ms per iteration)"
    if blocked:
        return Claim(topic, statement, INCONCLUSIVE, join_parts(blocked, body),
                     decision=Decision(blocked=blocked, body=body, trials=trial_numbers(compared)))
    support_ok = all(c <= 1 + COST_MATCH for c in costs)
    refute_ok = all(c >= 1 - COST_MATCH for c in costs)
    mpairs = moves_pairs(compared)
    unstable, stability_note = stability_gate([(r["x"], r_all, r_one, 1.0) for r, r_all, r_one in mpairs], log=True)
    samples, weights = [], []
    for _, r_all, r_one in mpairs:
        samples += [sample(r_all, log=True), sample(r_one, log=True)]
        weights += [1.0 / len(mpairs), -1.0 / len(mpairs)]
    test = contrast(samples, weights, pool=[sample(r, log=True) for _, r in points.iterrows()])
    seeds = min_seeds(compared)
    incomparable = ("" if support_ok and refute_ok else
                    "a win can only be judged where the one-electron runs trained no longer (within 10 %) and a loss "
                    "where they trained no shorter: the better setting also trained longer on some larger system")
    decision = Decision(
        p_support=test.p_greater if support_ok else None, p_refute=test.p_less if refute_ok else None,
        hold=join_parts(unstable, lost_hold([r_one for _, _, r_one in mpairs], "one-electron moves")),
        supported=f"one-electron moves are better at no more training time on the larger systems "
                  f"(all / one {fmt_factor(test.estimate)})",
        refuted=f"all-electron moves are better at no more training time (all / one {fmt_factor(test.estimate)})",
        undecided=join_parts(f"no significant difference at equal training time (all / one "
                             f"{fmt_factor(test.estimate)})", incomparable),
        test=f"Welch t on ln(all-electron error) − ln(one-electron error), averaged over the larger systems: "
             f"{test.text()}",
        body=join_parts(body, stability_note), need=need_text(test, seeds),
        power=power_text(test, seeds, True, "", "no difference"), trials=trial_numbers(compared))
    return decided(Claim(topic, statement, INCONCLUSIVE, "", decision=decision))


def moves_pairs(points: pd.DataFrame) -> list[tuple]:
    """(any row, all-electron point, one-electron point) per system (and other varying keys)."""
    others = [k for k in points.attrs.get("other_keys", []) if k in points]
    pairs = []
    for _, group in points.groupby(["x", *others], sort=False, dropna=False):
        one, all_ = group[group["moves"] == "one"], group[group["moves"] == "all"]
        if len(one) and len(all_):
            pairs.append((one.iloc[0], all_.iloc[0], one.iloc[0]))
    return pairs


def _equal_cost(r: pd.Series) -> tuple[float, str]:
    """(one/all training-time ratio, NaN when unknown; text) for one system's one- vs all-electron pair."""
    one, all_ = r["mean_one"], r["mean_all"]
    t_one, t_all = float(r["train_time_s_one"]), float(r["train_time_s_all"])
    head = (f"{r['x']} ({fmt_num(r['electrons_one'])} e): one-electron {fmt_pm(one, r['yerr_one'], 'mHa')} in "
            f"{t_one:.1f} s, all-electron {fmt_pm(all_, r['yerr_all'], 'mHa')} in {t_all:.1f} s")
    if not (np.isfinite(t_one) and np.isfinite(t_all) and t_one > 0 and t_all > 0):
        return math.nan, head + " (training time not recorded)"
    cost = t_one / t_all
    head += f"; one/all training time {cost:.2f}"
    if abs(cost - 1) <= COST_MATCH:
        return cost, head
    ms_one = float(r["ms_per_iteration_one"]) if np.isfinite(r["ms_per_iteration_one"]) else math.nan
    ms_all = float(r["ms_per_iteration_all"]) if np.isfinite(r["ms_per_iteration_all"]) else math.nan
    if cost > 1:
        need = (f"a one-electron run of about {t_all * 1000 / ms_one:.0f} iterations ({t_all:.1f} s), or an "
                f"all-electron run of about {t_one * 1000 / ms_all:.0f} iterations ({t_one:.1f} s)")
    else:
        need = (f"an all-electron run of about {t_one * 1000 / ms_all:.0f} iterations ({t_one:.1f} s), or a "
                f"one-electron run of about {t_all * 1000 / ms_one:.0f} iterations ({t_all:.1f} s)")
    return cost, head + f" (equal cost needs {need})"


SAMPLER_MOVES = FigureKind(
    "sampler_moves", "trials", sampler_moves_data, draw_sampler_moves,
    "Energy spikes of every trial per system and sampler (MH/HMC, all-/one-electron moves), and the error "
    "vs training time (iterations x median step time).")


def planned(trials: pd.DataFrame) -> list[str]:
    """``sampler_moves`` when the moves or the method is swept (grid studies only)."""
    keys = set(swept_keys(trials))
    return ["sampler_moves"] if not tuning_keys(trials) and keys & {MOVES_KEY, METHOD_KEY} else []


STUDY = FigureStudy("sampler_moves", (SAMPLER_MOVES,), planned,
                    claims_by_figure({"sampler_moves": sampler_moves_claims}))
