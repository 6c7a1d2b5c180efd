"""Per-system points, ratios and their figures, shared by the optimizer, |r| features and
sampler-moves studies (one point per level of the swept key and system; systems ordered by
electron count).

A point is the mean error over its seeds (mHa) with the plotted error bar (the standard error of
that mean), aggregated as in :func:`analysis.points.aggregate_point`. Ratios are ratios of the
seeds' geometric mean errors, tested on ln(error) (:mod:`analysis.inference`): :func:`factor_claim`
tests "N is at least ``factor`` times D" as one Welch contrast over every system it is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Iterable

import numpy as np
import pandas as pd

from .loaders import complete_trials
from .plotting import annotate, legend, log_y_with_band, new_figure, plain_log_labels, raise_error_bars
from .points import (
    ERROR, ERROR_DATA_COLUMNS, GRID_KEYS, aggregate_point, lost_at, lost_trials, point_facts, error_caption, series_label,
    swept_keys, title_line,
)
from .stability import stability_gate
from .inference import MIN_SEEDS, TTest, contrast, difference
from .verdicts import (
    COMPARISON, Claim, Decision, INCONCLUSIVE, LineFit, comparison_gate, decided, floored_note, fmt_factor, fmt_pm,
    join_parts, lost_hold, lost_note, min_seeds, need_text, power_text, sample, trial_numbers, weighted_line,
)


POINT_COLUMNS = (*ERROR_DATA_COLUMNS, "level", "electrons", "x_pos")


def other_keys(trials: pd.DataFrame, own: Sequence[str]) -> list[str]:
    """Other swept grid keys that vary among the complete trials (they split the points too)."""
    done = complete_trials(trials)
    keys = [k for k in swept_keys(trials) if k in GRID_KEYS and k not in (*own, "system", "seed")]
    return [k for k in keys if k in done and done[k].nunique(dropna=True) > 1]


def group_electrons(group: pd.DataFrame) -> float:
    """The electron count of a group's trials (NaN when not recorded)."""
    if "n_electrons" not in group:
        return math.nan
    counts = pd.to_numeric(group["n_electrons"], errors="coerce").dropna()
    return float(counts.iloc[0]) if len(counts) else math.nan


def system_positions(data: pd.DataFrame) -> dict:
    """System -> x position: systems ordered by electron count (unknown last), then by name."""
    table = data.drop_duplicates("x")[["x", "electrons"]]
    order = sorted(zip(table["x"], table["electrons"]),
                   key=lambda r: (math.inf if not np.isfinite(r[1]) else r[1], str(r[0])))
    return {system: i for i, (system, _) in enumerate(order)}


def system_points(trials: pd.DataFrame, keys: Sequence[str], level: Callable, label: Callable,
                  extra: Callable[[pd.DataFrame], dict] | None = None) -> pd.DataFrame:
    """Seed-aggregated error (mHa) per (level of ``keys``, system, other varying keys).

    ``level(*values)`` names the level of the swept ``keys`` (``kfac``, ``with``, ``mh/one``),
    ``label(level)`` its legend text; ``extra(group)`` adds columns per point (e.g. training time).
    Columns: :data:`POINT_COLUMNS` (x = system, ``electrons`` its count, ``x_pos`` its place in
    electron order, ``level``) plus the swept keys and the other varying keys. Trials without an
    error vs a reference are left out (``attrs["no_error"]`` lists them).
    """
    done = complete_trials(trials).copy()
    present = [k for k in keys if k in done]
    others = other_keys(trials, keys)
    done["system"] = done["system"].fillna("unknown system").astype(str)
    lost = lost_trials(trials)
    error = pd.to_numeric(done[ERROR.column], errors="coerce")
    no_error = [int(t) for t in done.loc[error.isna(), "trial"]]
    done = done[error.notna()]
    rows = []
    if len(done) and present:
        group_cols = [*present, *others, "system"]
        for values, group in done.groupby(group_cols, dropna=False, sort=True):
            values = values if isinstance(values, tuple) else (values,)
            named = dict(zip(group_cols, values))
            lev = level(*[named.get(k) for k in keys])
            errors = pd.to_numeric(group[ERROR.column], errors="coerce").to_numpy(float)
            stderrs = pd.to_numeric(group[ERROR.stderr], errors="coerce").to_numpy(float)
            text = label(lev)
            if others:
                text += ", " + series_label(others, [named[k] for k in others])
            row = {"panel": "error_mha by system", "series": text, "x_name": "system", "x": named["system"],
                   "y_name": ERROR.column, **aggregate_point(errors, stderrs, log=True),
                   **point_facts(group, lost_at(lost, named)),
                   "level": lev, "electrons": group_electrons(group), **{k: named[k] for k in present + others}}
            if extra is not None:
                row.update(extra(group))
            rows.append(row)
    columns = list(dict.fromkeys([*POINT_COLUMNS, *present, *others, *(k for r in rows for k in r)]))
    data = pd.DataFrame(rows, columns=columns)
    if len(data):
        positions = system_positions(data)
        data["x_pos"] = data["x"].map(positions)
        data = data.sort_values(["x_pos", "level"], kind="stable").reset_index(drop=True)
    data.attrs.update({"title": title_line(trials), "other_keys": others, "no_error": no_error})
    return data


RATIO_COLUMNS = ("x", "electrons", "x_pos", "num_mean", "num_err", "den_mean", "den_err", "ratio",
                 "ln_ratio", "ln_ratio_err", "ln_ratio_df", "factor", "t", "p_above", "p_below", "trials")


def ln_ratio_test(num_row, den_row, factor: float = 1.0) -> TTest:
    """Welch's t test of ln N - ln D against ln ``factor`` from two points' seeds (errors floored at
    their reblocked error before the log, :meth:`analysis.inference.Sample.logged`)."""
    return difference(sample(num_row, log=True), sample(den_row, log=True), null=math.log(factor))


def ratios(data: pd.DataFrame, numerator: str, denominator: str, factor: float) -> pd.DataFrame:
    """Per system (and other varying key): the ratio of the numerator's to the denominator's error.

    Columns :data:`RATIO_COLUMNS` (+ the other keys): ``ratio`` = exp(mean ln N - mean ln D), the
    ratio of the seeds' geometric mean errors; ``ln_ratio`` its logarithm with standard error
    ``ln_ratio_err`` and Welch–Satterthwaite ``ln_ratio_df``; ``t``, ``p_above``, ``p_below``: the
    one-sided tests of "the ratio exceeds ``factor``" and "is below it" (NaN without 2 seeds a side).
    """
    others = [k for k in data.attrs.get("other_keys", []) if k in data]
    num = data[data["level"] == numerator]
    den = data[data["level"] == denominator]
    both = num.merge(den, on=["x", *others], suffixes=("_n", "_d"))
    rows = []
    for _, r in both.iterrows():
        n_row = {"seed_values": r["seed_values_n"], "seed_stderrs": r["seed_stderrs_n"]}
        d_row = {"seed_values": r["seed_values_d"], "seed_stderrs": r["seed_stderrs_d"]}
        test = ln_ratio_test(n_row, d_row, factor)
        testable = min(int(r["n_seeds_n"]), int(r["n_seeds_d"])) >= MIN_SEEDS
        rows.append({"x": r["x"], "electrons": r["electrons_n"], "x_pos": r["x_pos_n"],
                     "num_mean": float(r["mean_n"]), "num_err": float(r["yerr_n"]),
                     "den_mean": float(r["mean_d"]), "den_err": float(r["yerr_d"]),
                     "ratio": math.exp(test.estimate), "ln_ratio": test.estimate, "ln_ratio_err": test.se,
                     "ln_ratio_df": test.df, "factor": factor, "t": test.t if testable else math.nan,
                     "p_above": test.p_greater if testable else math.nan,
                     "p_below": test.p_less if testable else math.nan,
                     "trials": f"{r['trials_n']} | {r['trials_d']}", **{k: r[k] for k in others}})
    out = pd.DataFrame(rows, columns=[*RATIO_COLUMNS, *others])
    return out.sort_values("x_pos", kind="stable").reset_index(drop=True)


def ratio_fit(table: pd.DataFrame) -> LineFit | None:
    """Weighted ln(ratio) = c + b·electrons over the rows with a ratio and an electron count
    (None with fewer than 2 such rows or a zero error)."""
    rows = table[np.isfinite(table["ratio"].astype(float)) & np.isfinite(table["electrons"].astype(float))]
    if len(rows) < 2 or not (rows["ln_ratio_err"] > 0).all() or rows["electrons"].nunique() < 2:
        return None
    return weighted_line(rows["electrons"].to_numpy(float), np.log(rows["ratio"].to_numpy(float)),
                         rows["ln_ratio_err"].to_numpy(float))


def system_axis(ax, data: pd.DataFrame) -> None:
    """Categorical x: one tick per system in electron order, labelled ``Li`` / ``3 e``."""
    table = data.drop_duplicates("x").sort_values("x_pos")
    labels = [f"{s}\n{int(n)} e⁻" if np.isfinite(n) else str(s)
              for s, n in zip(table["x"], table["electrons"].astype(float))]
    ax.set_xticks(table["x_pos"].to_numpy(float), labels=labels)
    ax.set_xlim(-0.6, max(0.6, len(table) - 0.4))
    ax.set_xlabel("system (ordered by electron count)")


def offsets(n: int, width: float = 0.5) -> list[float]:
    """Horizontal offsets of ``n`` series side by side within one system's slot."""
    if n <= 1:
        return [0.0]
    step = width / (n - 1)
    return [-width / 2 + i * step for i in range(n)]


def series_order(data: pd.DataFrame, order: Sequence[str]) -> list[str]:
    """The series of ``data`` with levels in ``order`` first."""
    rank = {lev: i for i, lev in enumerate(order)}
    table = data.drop_duplicates("series")
    return list(table.sort_values("level", key=lambda s: s.map(lambda v: rank.get(v, len(rank))), kind="stable")["series"])


def draw_points_by_system(ax, data: pd.DataFrame, order: Sequence[str]) -> None:
    """Error (mHa, log y) per system, one marker series per level, error bars with caps."""
    series = series_order(data, order)
    for i, (name, dx) in enumerate(zip(series, offsets(len(series)))):
        rows = data[data["series"] == name].sort_values("x_pos")
        x = rows["x_pos"].to_numpy(float) + dx
        container = ax.errorbar(x, rows["y"].to_numpy(float), yerr=rows["yerr"].to_numpy(float), marker="os^Dv"[i % 5],
                                ms=5, mfc="white", mew=1.1, ls="none", capsize=3, capthick=1.0, elinewidth=1.0,
                                color=f"C{i}", label=name)
        raise_error_bars(container)
        clipped = rows["clipped"].astype(bool).to_numpy()
        if clipped.any():
            ax.plot(x[clipped], rows["y"].to_numpy(float)[clipped], ls="none", marker="v", ms=6, mfc="white",
                    mec="black", mew=0.8, zorder=5,
                    label="error ≤ 0: drawn at its error bar" if i == 0 else None)
    ys, errs = data["y"].to_numpy(float), data["yerr"].to_numpy(float)
    log_y_with_band(ax, np.where(ys - errs > 0, ys - errs, ys), ys + errs, band=True)
    ax.set_ylabel(ERROR.label)
    system_axis(ax, data)
    ax.set_title("error by system", fontsize=8)
    legend(ax)


def draw_ratio_panel(ax, table: pd.DataFrame, name: str, factor: float, fit: LineFit | None) -> None:
    """Ratio vs electrons (log y), ±1 sigma of ln(ratio), the threshold and (optional) the fit."""
    rows = table[np.isfinite(table["ratio"].astype(float))]
    x = rows["electrons"].to_numpy(float)
    if len(rows) and np.isfinite(x).all():
        r, s = rows["ratio"].to_numpy(float), rows["ln_ratio_err"].to_numpy(float)
        container = ax.errorbar(x, r, yerr=[r - r * np.exp(-s), r * np.exp(s) - r], marker="o", ms=5, mfc="white",
                                mew=1.1, ls="none", capsize=3, color="black", label=name)
        raise_error_bars(container)
        seen: dict[float, int] = {}
        for xi, ri, system in zip(x, r, rows["x"]):
            k = seen[xi] = seen.get(xi, -1) + 1  # systems with the same electron count: stacked labels
            ax.annotate(str(system), (xi, ri), textcoords="offset points", xytext=(5, 3 - 9 * k), fontsize=6.5)
        if fit is not None:
            grid = np.linspace(x.min(), x.max(), 50)
            ax.plot(grid, np.exp(fit.intercept + fit.slope * grid), color="C2", lw=1.0, ls="--",
                    label=f"weighted fit: ln ratio = c + ({fit.slope:.2f} ± {fit.slope_se:.2f}) n")
        ax.set_xticks(sorted(set(x)))
        low = np.concatenate([r * np.exp(-s), [factor]])
        high = np.concatenate([r * np.exp(s), [factor]])
        ax.set_yscale("log")
        ax.set_ylim(max(low.min() / 1.5, 1e-3), high.max() * 1.5)
        plain_log_labels(ax)
    else:
        ax.text(0.5, 0.5, "no ratio: needs both settings with error > 0\nand electron counts",
                ha="center", va="center", fontsize=7, transform=ax.transAxes)
    ax.axhline(factor, color="0.4", ls=":", lw=1.0, label=f"{factor:g}x")
    ax.set_xlabel("electrons")
    ax.set_ylabel(name)
    ax.set_title(f"{name} vs electrons", fontsize=8)
    legend(ax)


def grouped_figure(data: pd.DataFrame, order: Sequence[str], numerator: str, denominator: str, factor: float,
                   ratio_name: str, with_fit: bool, what: str):
    """Two panels: error by system (markers per level) and the error ratio vs electrons."""
    fig, (left, right) = new_figure(ncols=2, panel_size=(4.4, 3.0))
    if len(data):
        draw_points_by_system(left, data, order)
    table = ratios(data, numerator, denominator, factor) if len(data) else pd.DataFrame(columns=RATIO_COLUMNS)
    draw_ratio_panel(right, table, ratio_name, factor, ratio_fit(table) if with_fit else None)
    caption = error_caption(data) if len(data) else ""
    caption += (f" Right: the ratio of the seeds' geometric mean errors ({ratio_name}), bars ±1σ of its logarithm; "
                f"dotted: {factor:g}x ({what}).")
    annotate(fig, data.attrs.get("title"), caption.strip())
    return fig


def no_error_note(data: pd.DataFrame) -> str:
    missing = data.attrs.get("no_error") or []
    return f"trials without an error vs a reference left out: {', '.join('t' + str(t) for t in missing)}" if missing else ""


def levels_missing(data: pd.DataFrame, needed: Iterable[str], label: Callable) -> str | None:
    """``only KFAC has complete trials with an error`` when a needed level is absent."""
    have = set(data["level"]) if len(data) else set()
    missing = [lev for lev in needed if lev not in have]
    if not missing:
        return None
    ran = ", ".join(label(lev) for lev in needed if lev in have) or "neither setting"
    return f"only {ran} has complete trials with an error vs a reference: no comparison"


def figure_pool(data: pd.DataFrame, levels: Sequence[str]) -> list:
    """The ln-error samples of every point of ``data`` at ``levels``: the cells whose seed variance
    a figure's tests pool (:func:`analysis.inference.contrast`)."""
    return [sample(r, log=True) for _, r in data[data["level"].isin(list(levels))].iterrows()]


def ratio_text(r: pd.Series, num: str, den: str) -> str:
    """``Li (3 e): Adam 40.00 ± 2.00 vs KFAC 2.00 ± 0.10 mHa, ratio 20.0 (×/÷ 1.06, df 2.1)``."""
    electrons = f" ({int(r['electrons'])} e)" if np.isfinite(float(r["electrons"])) else ""
    return (f"{r['x']}{electrons}: {num} {fmt_pm(r['num_mean'], r['num_err'], 'mHa')} vs {den} "
            f"{fmt_pm(r['den_mean'], r['den_err'], 'mHa')}, ratio of geometric means {r['ratio']:.3g} "
            f"(×/÷ {math.exp(r['ln_ratio_err']):.2f}, df {r['ln_ratio_df']:.1f})")


def level_pairs(data: pd.DataFrame, table: pd.DataFrame, numerator: str, denominator: str) -> list[tuple]:
    """(label, numerator point, denominator point) for each row of a :func:`ratios` table: the
    rows of ``data`` the ratio was made from (same system and other varying keys)."""
    others = [k for k in data.attrs.get("other_keys", []) if k in data]
    pairs = []
    for _, r in table.iterrows():
        same = data["x"].eq(r["x"])
        for k in others:
            same &= data[k].eq(r[k])
        num, den = data[same & data["level"].eq(numerator)], data[same & data["level"].eq(denominator)]
        label = str(r["x"]) + (" (" + series_label(others, [r[k] for k in others]) + ")" if others else "")
        pairs.append((label, num.iloc[0], den.iloc[0]))
    return pairs


def ratio_range(table: pd.DataFrame, num: str, den: str) -> str:
    """``adam/kfac error ratio 1.2-2.9`` over the rows with a ratio (empty when none has)."""
    finite = table["ratio"].astype(float)
    finite = finite[np.isfinite(finite)]
    if finite.empty:
        return ""
    low, high = float(finite.min()), float(finite.max())
    span = f"{low:.2g}" if f"{low:.2g}" == f"{high:.2g}" else f"{low:.2g}-{high:.2g}"
    return f"{num}/{den} error ratio {span}"


def factor_claim(topic: str, statement: str, data: pd.DataFrame, numerator: str, denominator: str,
                 factor: float, label: Callable, pool: list | None = None) -> Claim:
    """"numerator's error is at least ``factor`` x the denominator's", one test over every system
    (and other varying key) in ``data``: the mean over them of ln N - ln D (each a Welch difference
    of the seeds' ln errors) against ln ``factor``, a Welch–Satterthwaite contrast
    (:mod:`analysis.inference`). Support: above; refutation: below. A comparison at a budget
    (:mod:`analysis.verdicts`): one budget and >= 2 seeds per point, and ``supported`` is held when
    some system's ln ratio shrinks over training (:func:`analysis.stability.stability_gate`).
    ``pool``: the samples whose ln-error variance is pooled (a system's line within a figure of
    several: :func:`figure_pool`); default the compared points (pooled when more than two)."""
    if data.empty:
        return Claim(topic, statement, INCONCLUSIVE, "no complete trial with an error vs a reference", kind=COMPARISON)
    num, den = label(numerator), label(denominator)
    missing = levels_missing(data, [numerator, denominator], label)
    if missing:
        return Claim(topic, statement, INCONCLUSIVE, join_parts(missing, no_error_note(data)), kind=COMPARISON)
    table = ratios(data, numerator, denominator, factor)
    if table.empty:
        return Claim(topic, statement, INCONCLUSIVE, f"{num} and {den} have no system in common", kind=COMPARISON)
    compared = data[data["x"].isin(table["x"]) & data["level"].isin([numerator, denominator])]
    gate = comparison_gate(compared, "system")
    pairs = [(lab, a, b, factor) for lab, a, b in level_pairs(data, table, numerator, denominator)]
    body = join_parts("; ".join(ratio_text(r, num, den) for _, r in table.iterrows()),
                      floored_note([r for _, r in compared.iterrows()], True), no_error_note(data), lost_note(compared))
    effect = ratio_range(table, numerator, denominator)
    if gate.failure:
        return Claim(topic, statement, INCONCLUSIVE, join_parts(gate.failure, body), kind=COMPARISON, scope=gate.scope,
                     effect=effect, decision=Decision(blocked=gate.failure, body=body, trials=trial_numbers(compared)))
    unstable, stability_note = stability_gate(pairs, log=True)
    samples, weights = [], []
    for lab, a, b, _ in pairs:
        samples += [sample(a, log=True), sample(b, log=True)]
        weights += [1.0 / len(pairs), -1.0 / len(pairs)]
    test = contrast(samples, weights, null=math.log(factor), pool=pool)
    where = str(table["x"].iloc[0]) if len(table) == 1 else f"the mean over {len(table)} systems"
    pooled = "" if len(table) == 1 else " averaged over systems"
    seeds = min_seeds(compared)
    decision = Decision(
        p_support=test.p_greater, p_refute=test.p_less,
        hold=join_parts(unstable, lost_hold(compared[compared["level"] == denominator], den)),
        supported=f"above {factor:g}x on {where}: {fmt_factor(test.estimate)}",
        refuted=f"below {factor:g}x on {where}: {fmt_factor(test.estimate)}",
        undecided=f"{fmt_factor(test.estimate)} on {where} is not resolved from {factor:g}x",
        test=f"Welch t on ln({num} error) - ln({den} error){pooled} vs ln {factor:g}: {test.text()}",
        body=join_parts(body, stability_note), need=need_text(test, seeds),
        power=power_text(test, seeds, True, "", f"{factor:g}x"), trials=trial_numbers(compared))
    return decided(Claim(topic, statement, INCONCLUSIVE, "", kind=COMPARISON, scope=gate.scope, effect=effect,
                         decision=decision))
