"""The talk's other ablations (issue 9): optimizer, |r| input features, sampler moves, batch size.

One figure kind and one set of claims per study, picked by :func:`planned` from the swept keys:

==========================  ===================  ==============================================
swept key                   figure               claims
==========================  ===================  ==============================================
``optim``                   ``optimizer``        KFAC >= 10x better than Adam; the ratio grows
                                                 with the number of electrons
``network.distance_features`` ``features``       without |r| features the error is far higher
``mcmc.moves``/``method``   ``sampler_moves``    HMC spikes, MH does not; one-electron moves
                                                 lower the error at equal cost (larger systems)
``batch_size`` alone        ``batch``            the error falls with batch size at fixed
                                                 iterations
==========================  ===================  ==============================================

The verdicts follow the rules of :mod:`analysis.claims` (its docstring): a point is the mean error
over its seeds (mHa) with the plotted error bar ``e`` (seed spread, at least the reblocked standard
error; the reblocked standard error for one seed); two points differ *significantly* beyond
``2 sqrt(e1^2 + e2^2)``; every claim on errors passes the *gate* first: all trials behind it
converged (else ``inconclusive: trials not converged (n of m: ...)``), every point has >= 2 seeds
or one seed with a reblocked error (said so), trends need >= 3 points and no significant reversal.

**Optimizer** (per system ``s`` with both optimizers complete: Adam ``A ± a``, KFAC ``K ± k``):

* ratio ``R = A / K`` (shown when A, K > 0) with ``sigma_lnR = sqrt((a/A)^2 + (k/K)^2)``;
* "KFAC's error is at least 10x lower than Adam's": on system ``s`` the test statistic is the
  margin ``M = A - 10 K`` with ``sigma_M = sqrt(a^2 + 100 k^2)``. ``M > 2 sigma_M`` is exactly
  "10 lies below the 2-sigma lower bound of A/K" (Fieller's interval for a ratio of two normal
  means, which, unlike a propagated ``R ± 2 sigma_R``, stays valid when K is small or <= 0). The
  claim is ``supported`` when the gate passes and ``M > 2 sigma_M`` on *every* system compared;
  ``not supported`` when on some system ``M < -2 sigma_M`` (the ratio significantly below 10);
  otherwise ``inconclusive`` (the ratio not resolved from 10 on some system);
* "the ratio grows with the number of electrons": weighted least squares ``ln R = c + b n`` over
  the systems with A, K > 0 (weights ``1 / sigma_lnR^2``; ``n`` = electrons), the slope error
  scaled by sqrt(χ²/dof) when that exceeds 1. ``supported``: the gate (>= 3 systems, no
  significant reversal: no system with more electrons whose ln R is significantly below that of
  a system with fewer), ``b / se(b) > 2`` and the line acceptable (χ² p-value >= 0.01);
  ``not supported``: ``b / se(b) < -2``; otherwise ``inconclusive``.

**|r| features** (per system: without ``W ± w``, with ``F ± f``): "far higher" means at least
:data:`FAR_FACTOR` (3x) and significant: margin ``W - 3 F > 2 sqrt(w^2 + 9 f^2)`` on every system
(``supported``); ``W - 3 F < -2 sqrt(...)`` on some system is ``not supported`` (at most 3x,
significantly); otherwise ``inconclusive``. The evidence also gives the plain difference ``W - F``
in sigma.

**Sampler moves.**

* "HMC produces energy spikes MH does not": the spike count of a trial is summary.json's
  ``energy_spikes`` (training iterations above the median of the previous 100 by more than 10
  MADs). Counts are pooled per method (all moves, systems and seeds) with the training
  iterations as exposure, and compared by the conditional test for two Poisson rates: given the
  total ``S = S_hmc + S_mh``, ``S_hmc ~ Binomial(S, I_hmc / (I_hmc + I_mh))`` under equal rates
  per iteration; one-sided p-value ``P(X >= S_hmc)``. ``supported``: HMC has spikes and
  p < :data:`SPIKE_ALPHA` (0.0228, the one-sided tail beyond 2 sigma); ``not supported``: HMC has
  no spike, or MH's rate is significantly higher (the mirror test); otherwise ``inconclusive``.
  The test assumes independent spikes; bursts within one trial make it optimistic, so the
  evidence lists the counts per trial. *No convergence gate here*: a spike count is a count over
  the training whatever the energy did, and an HMC run that spikes is expected not to converge,
  so gating on convergence would hide the very effect under test; the evidence says how many
  trials converged. Trials without a count (older runs) are left out and named.
* "one-electron moves lower the error at equal cost for the larger systems": the cost of a trial
  is its training time ``t = iterations x ms_per_iteration / 1000`` (s; median step time, so
  start-up, compilation, pretraining and evaluation are not counted: the sampler choice changes
  the cost per step, which is what this measures; wall times are in the CSV). Pairs are (system,
  all-electron, one-electron) at ``mcmc.method=mh`` when the method is swept. *Larger systems*:
  electron count above the median count of the study's systems. Each larger system is judged at
  equal cost, assuming only that more training time does not raise the error: one-electron
  moves *win* when their error is significantly lower and their time at most 10 % above the
  all-electron one (:data:`COST_MATCH`); they *lose* when the all-electron error is
  significantly lower at no more than 10 % more time; times within 10 % and no significant
  difference is *no difference*; anything else (the better one also the costlier by more than
  10 %) *cannot be compared at equal cost*, and the evidence says what training time (and
  iterations) a matched trial needs. ``supported``: the gate and a win on every larger system;
  ``not supported``: a loss on one; otherwise ``inconclusive``. Error per unit time is not used:
  the error does not fall linearly with time, so it would not compare runs at equal cost.

**Batch size** (per line): weighted least squares ``ln(error) = c + p ln(batch)`` (weights from
the error bars, ``sigma = e / mean``) over batches with mean error > 0. ``supported``: every trial
ran the same number of training iterations, the gate (>= 3 batch sizes, no significant reversal),
``p / se(p) < -2`` and χ² p-value >= 0.01; ``not supported``: ``p / se(p) > 2``; otherwise
``inconclusive``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from .claims import (
    INCONCLUSIVE,
    MIN_FIT_P,
    NOT_SUPPORTED,
    SIGNIFICANCE,
    SUPPORTED,
    Claim,
    LineFit,
    _join,
    _num,
    _pm,
    _prefix,
    _sigma,
    convergence_gate,
    lines,
    points_gate,
    reversals,
    seed_gate,
    weighted_line,
)
from .figures import (
    ERROR,
    ERROR_DATA_COLUMNS,
    GRID_KEYS,
    _annotate,
    _legend,
    _log_y_with_band,
    _new_figure,
    _plain_log_labels,
    aggregate_point,
    convergence_counts,
    draw_error_figure,
    error_caption,
    error_data,
    plain_log_tick_labels,
    raise_error_bars,
    series_label,
    swept_keys,
    title_line,
)
from .loaders import complete_trials

OPTIM_KEY = "optim"
FEATURES_KEY = "network.distance_features"
MOVES_KEY = "mcmc.moves"
METHOD_KEY = "mcmc.method"
BATCH_KEY = "batch_size"
OTHER_SAMPLER_KEYS = ("mcmc.steps", "mcmc.adapt", "mcmc.move_width")  # swept with batch: the sampler study

OPTIMIZER_FACTOR = 10.0  # "KFAC's error is at least 10x lower than Adam's"
FAR_FACTOR = 3.0  # "far higher" without |r| features: at least this factor, significantly
COST_MATCH = 0.10  # training times within this fraction count as equal cost
SPIKE_ALPHA = 0.02275  # one-sided p-value of a 2-sigma normal deviation

OPTIM_NAMES = {"kfac": "KFAC", "adam": "Adam"}
METHOD_NAMES = {"mh": "MH", "hmc": "HMC"}
MOVES_NAMES = {"all": "all-electron moves", "one": "one-electron moves"}

POINT_COLUMNS = (*ERROR_DATA_COLUMNS, "level", "electrons", "x_pos")


# ----------------------------------------------------------------------------- planning


def planned(trials: pd.DataFrame) -> list[str]:
    """The figure kinds of this module that the study's swept keys call for (in this order:
    optimizer, features, sampler_moves, batch). ``batch`` needs ``batch_size`` swept without any
    other sampler key (with them it is the sampler study)."""
    keys = set(swept_keys(trials))
    names = []
    if OPTIM_KEY in keys:
        names.append("optimizer")
    if FEATURES_KEY in keys:
        names.append("features")
    if keys & {MOVES_KEY, METHOD_KEY}:
        names.append("sampler_moves")
    if BATCH_KEY in keys and not keys & set(OTHER_SAMPLER_KEYS):
        names.append("batch")
    return names


# ----------------------------------------------------------------------------- levels and labels


def _flag(value) -> bool | None:
    """A swept boolean as True/False (``true``, ``1`` too); None when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def optim_level(value) -> str:
    """``kfac`` / ``adam`` (lower case) from a swept optimiser value."""
    return str(value).strip().lower()


def features_level(value) -> str:
    """``with`` / ``without`` from a swept ``network.distance_features``."""
    return "with" if _flag(value) else "without"


def optim_label(level: str) -> str:
    return OPTIM_NAMES.get(level, level)


def features_label(level: str) -> str:
    return f"{level} |r| features"


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


# ----------------------------------------------------------------------------- grouping by system


def _other_keys(trials: pd.DataFrame, own: Sequence[str]) -> list[str]:
    """Other swept grid keys that vary among the complete trials (they split the points too)."""
    done = complete_trials(trials)
    keys = [k for k in swept_keys(trials) if k in GRID_KEYS and k not in (*own, "system", "seed")]
    return [k for k in keys if k in done and done[k].nunique(dropna=True) > 1]


def _electrons(group: pd.DataFrame) -> float:
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
    others = _other_keys(trials, keys)
    done["system"] = done["system"].fillna("unknown system").astype(str)
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
                   "y_name": ERROR.column, **aggregate_point(errors, stderrs, log=True), **convergence_counts(group),
                   "level": lev, "electrons": _electrons(group), **{k: named[k] for k in present + others}}
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


# ----------------------------------------------------------------------------- ratios


RATIO_COLUMNS = ("x", "electrons", "x_pos", "num_mean", "num_err", "den_mean", "den_err", "ratio",
                 "ln_ratio_err", "factor", "margin", "margin_err", "fieller_low", "trials")


def ratios(data: pd.DataFrame, numerator: str, denominator: str, factor: float) -> pd.DataFrame:
    """Per system (and other varying key): numerator/denominator of the mean errors.

    Columns :data:`RATIO_COLUMNS` (+ the other keys): ``ratio`` = N/D and ``ln_ratio_err`` =
    sqrt((n/N)^2 + (d/D)^2) (NaN unless N, D > 0); ``margin`` = N - factor·D and
    ``margin_err`` = sqrt(n^2 + factor^2 d^2); ``fieller_low``: the 2-sigma lower bound of N/D
    (Fieller), finite when D > 2 d, else NaN (the ratio is then unbounded above).
    """
    others = [k for k in data.attrs.get("other_keys", []) if k in data]
    num = data[data["level"] == numerator]
    den = data[data["level"] == denominator]
    both = num.merge(den, on=["x", *others], suffixes=("_n", "_d"))
    rows = []
    for _, r in both.iterrows():
        n_mean, n_err, d_mean, d_err = (float(r[c]) for c in ("mean_n", "yerr_n", "mean_d", "yerr_d"))
        ok = n_mean > 0 and d_mean > 0
        ratio = n_mean / d_mean if ok else math.nan
        ln_err = math.hypot(n_err / n_mean, d_err / d_mean) if ok else math.nan
        z = SIGNIFICANCE
        low = math.nan
        if d_mean > z * d_err:
            disc = n_err**2 * d_mean**2 + d_err**2 * n_mean**2 - z**2 * n_err**2 * d_err**2
            low = (n_mean * d_mean - z * math.sqrt(max(disc, 0.0))) / (d_mean**2 - z**2 * d_err**2)
        rows.append({"x": r["x"], "electrons": r["electrons_n"], "x_pos": r["x_pos_n"],
                     "num_mean": n_mean, "num_err": n_err, "den_mean": d_mean, "den_err": d_err,
                     "ratio": ratio, "ln_ratio_err": ln_err, "factor": factor,
                     "margin": n_mean - factor * d_mean, "margin_err": math.hypot(n_err, factor * d_err),
                     "fieller_low": low, "trials": f"{r['trials_n']} | {r['trials_d']}",
                     **{k: r[k] for k in others}})
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


# ----------------------------------------------------------------------------- figure kinds: data


def optimizer_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Error (mHa) per optimiser and system, systems in electron order (the optimizer figure)."""
    return system_points(trials, [OPTIM_KEY], optim_level, optim_label)


def features_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Error (mHa) with and without the |r| input features per system (the features figure)."""
    return system_points(trials, [FEATURES_KEY], features_level, features_label)


SPIKE_COLUMNS = ("panel", "series", "level", "x_name", "x", "x_pos", "electrons", "trial", "y", "y_name",
                 "iterations", "converged")


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
    done = complete_trials(trials)
    rows = []
    positions = system_positions(points) if len(points) else {}
    for _, r in done.iterrows():
        lev = sampler_level(r.get(METHOD_KEY), r.get(MOVES_KEY))
        system = str(r["system"]) if pd.notna(r["system"]) else "unknown system"
        spikes = pd.to_numeric(pd.Series([r.get("energy_spikes")]), errors="coerce").iloc[0]
        flag = r.get("converged")
        rows.append({"panel": "energy_spikes per trial", "series": sampler_label(lev), "level": lev,
                     "x_name": "system", "x": system, "x_pos": positions.get(system, math.nan),
                     "electrons": float(r["n_electrons"]) if pd.notna(r.get("n_electrons")) else math.nan,
                     "trial": int(r["trial"]), "y": spikes, "y_name": "energy_spikes",
                     "iterations": pd.to_numeric(pd.Series([r.get("iterations")]), errors="coerce").iloc[0],
                     "converged": None if flag is None or flag is pd.NA else bool(flag)})
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


def batch_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Error vs walkers (batch size) at fixed iterations, one line per other varying key, with
    ``iterations`` (the distinct training iterations of each point's trials, e.g. ``1000``)."""
    data = error_data(trials, BATCH_KEY, [ERROR] if _has_error(trials) else None)
    done = complete_trials(trials).set_index("trial")
    its = pd.to_numeric(done["iterations"], errors="coerce")
    def iterations_text(trial_numbers: str) -> str:
        found = {float(its[int(t)]) for t in str(trial_numbers).split() if int(t) in its.index and pd.notna(its[int(t)])}
        return " ".join(_num(v) for v in sorted(found))

    data["iterations"] = [iterations_text(t) for t in data["trials"]]
    return data


def _has_error(trials: pd.DataFrame) -> bool:
    return pd.to_numeric(complete_trials(trials)[ERROR.column], errors="coerce").notna().any()


# ----------------------------------------------------------------------------- figure kinds: drawing


def _system_axis(ax, data: pd.DataFrame) -> None:
    """Categorical x: one tick per system in electron order, labelled ``Li`` / ``3 e``."""
    table = data.drop_duplicates("x").sort_values("x_pos")
    labels = [f"{s}\n{int(n)} e⁻" if np.isfinite(n) else str(s)
              for s, n in zip(table["x"], table["electrons"].astype(float))]
    ax.set_xticks(table["x_pos"].to_numpy(float), labels=labels)
    ax.set_xlim(-0.6, max(0.6, len(table) - 0.4))
    ax.set_xlabel("system (ordered by electron count)")


def _offsets(n: int, width: float = 0.5) -> list[float]:
    """Horizontal offsets of ``n`` series side by side within one system's slot."""
    if n <= 1:
        return [0.0]
    step = width / (n - 1)
    return [-width / 2 + i * step for i in range(n)]


def _series_order(data: pd.DataFrame, order: Sequence[str]) -> list[str]:
    """The series of ``data`` with levels in ``order`` first."""
    rank = {lev: i for i, lev in enumerate(order)}
    table = data.drop_duplicates("series")
    return list(table.sort_values("level", key=lambda s: s.map(lambda v: rank.get(v, len(rank))), kind="stable")["series"])


def _draw_points_by_system(ax, data: pd.DataFrame, order: Sequence[str]) -> None:
    """Error (mHa, log y) per system, one marker series per level, error bars with caps."""
    series = _series_order(data, order)
    for i, (name, dx) in enumerate(zip(series, _offsets(len(series)))):
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
    _log_y_with_band(ax, np.where(ys - errs > 0, ys - errs, ys), ys + errs, band=True)
    ax.set_ylabel(ERROR.label)
    _system_axis(ax, data)
    ax.set_title("error by system", fontsize=8)
    _legend(ax)


def _draw_ratio_panel(ax, table: pd.DataFrame, name: str, factor: float, fit: LineFit | None) -> None:
    """Ratio vs electrons (log y), ±1 sigma of ln(ratio), the threshold and (optional) the fit."""
    rows = table[np.isfinite(table["ratio"].astype(float))]
    x = rows["electrons"].to_numpy(float)
    if len(rows) and np.isfinite(x).all():
        r, s = rows["ratio"].to_numpy(float), rows["ln_ratio_err"].to_numpy(float)
        container = ax.errorbar(x, r, yerr=[r - r * np.exp(-s), r * np.exp(s) - r], marker="o", ms=5, mfc="white",
                                mew=1.1, ls="none", capsize=3, color="black", label=name)
        raise_error_bars(container)
        for xi, ri, system in zip(x, r, rows["x"]):
            ax.annotate(str(system), (xi, ri), textcoords="offset points", xytext=(5, 3), fontsize=6.5)
        if fit is not None:
            grid = np.linspace(x.min(), x.max(), 50)
            ax.plot(grid, np.exp(fit.intercept + fit.slope * grid), color="C2", lw=1.0, ls="--",
                    label=f"weighted fit: ln ratio = c + ({fit.slope:.2f} ± {fit.slope_se:.2f}) n")
        ax.set_xticks(sorted(set(x)))
        low = np.concatenate([r * np.exp(-s), [factor]])
        high = np.concatenate([r * np.exp(s), [factor]])
        ax.set_yscale("log")
        ax.set_ylim(max(low.min() / 1.5, 1e-3), high.max() * 1.5)
        _plain_log_labels(ax)
    else:
        ax.text(0.5, 0.5, "no ratio: needs both settings with error > 0\nand electron counts",
                ha="center", va="center", fontsize=7, transform=ax.transAxes)
    ax.axhline(factor, color="0.4", ls=":", lw=1.0, label=f"{factor:g}x")
    ax.set_xlabel("electrons")
    ax.set_ylabel(name)
    ax.set_title(f"{name} vs electrons", fontsize=8)
    _legend(ax)


def _grouped_figure(data: pd.DataFrame, order: Sequence[str], numerator: str, denominator: str, factor: float,
                    ratio_name: str, with_fit: bool, what: str):
    """Two panels: error by system (markers per level) and the error ratio vs electrons."""
    fig, (left, right) = _new_figure(ncols=2, panel_size=(4.4, 3.0))
    if len(data):
        _draw_points_by_system(left, data, order)
    table = ratios(data, numerator, denominator, factor) if len(data) else pd.DataFrame(columns=RATIO_COLUMNS)
    _draw_ratio_panel(right, table, ratio_name, factor, ratio_fit(table) if with_fit else None)
    caption = error_caption(data) if len(data) else ""
    caption += (f" Right: the ratio of the mean errors ({ratio_name}), bars ±1σ of its logarithm (both error bars "
                f"propagated); dotted: {factor:g}x ({what}).")
    _annotate(fig, data.attrs.get("title"), caption.strip())
    return fig


def draw_optimizer(data: pd.DataFrame):
    """Figure of :func:`optimizer_data`: error by system (KFAC, Adam) and Adam/KFAC vs electrons
    with its weighted fit."""
    return _grouped_figure(data, ["kfac", "adam"], "adam", "kfac", OPTIMIZER_FACTOR, "Adam / KFAC error ratio",
                           with_fit=True, what="the claim's threshold")


def draw_features(data: pd.DataFrame):
    """Figure of :func:`features_data`: error by system with and without |r| features, and
    without/with vs electrons."""
    return _grouped_figure(data, ["with", "without"], "without", "with", FAR_FACTOR,
                           "without / with |r| features error ratio", with_fit=False, what="'far higher'")


SAMPLER_ORDER = ("mh/all", "mh/one", "hmc/all", "hmc/one", "-/all", "-/one", "mh/-", "hmc/-")


def draw_sampler_moves(data: pd.DataFrame):
    """Figure of :func:`sampler_moves_data`: spikes per trial by system (symmetric log y, so 0
    shows) and error vs training time (log-log), colours per method/moves, markers per system."""
    fig, (left, right) = _new_figure(ncols=2, panel_size=(4.4, 3.0))
    spikes = data[data["panel"] == "energy_spikes per trial"]
    points = data[data["panel"] == "error_mha vs training time"]
    levels = [lev for lev in SAMPLER_ORDER if lev in set(data["level"])]
    levels += [lev for lev in dict.fromkeys(data["level"]) if lev not in levels]
    colour = {lev: f"C{i}" for i, lev in enumerate(levels)}
    counted = spikes[pd.to_numeric(spikes["y"], errors="coerce").notna()]
    for lev, dx in zip(levels, _offsets(len(levels))):
        rows = counted[counted["level"] == lev]
        if len(rows):
            left.plot(rows["x_pos"].to_numpy(float) + dx, rows["y"].to_numpy(float), ls="none", marker="o", ms=5,
                      mfc="white", mew=1.1, color=colour[lev], label=sampler_label(lev))
    if len(spikes):
        _system_axis(left, spikes.assign(electrons=spikes["electrons"].astype(float)))
    _spike_axis(left, pd.to_numeric(counted["y"], errors="coerce").to_numpy(float))
    left.set_ylabel("energy spikes per trial")
    left.set_title("energy spikes (one marker per trial)", fontsize=8)
    _legend(left)
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
        _log_y_with_band(right, np.where(ys - errs > 0, ys - errs, ys), ys + errs, band=True)
    right.set_xlabel("training time (s): iterations × median step time")
    right.set_ylabel(ERROR.label)
    right.set_title("error vs training cost", fontsize=8)
    _legend(right)
    caption = ("Left: energy spikes of each trial (training iterations above the median of the previous 100 by "
               "more than 10 MADs), symmetric log axis (0 shows). Right: ")
    caption += (error_caption(points).replace("Points:", "points:") if len(points) else "no errors: ")
    caption += " Horizontal bars: seed spread of the training time."
    _annotate(fig, data.attrs.get("title"), caption)
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


def draw_batch(data: pd.DataFrame):
    """Figure of :func:`batch_data`: error vs batch on log2 x and log y (as the other error
    figures) with the weighted power-law fit of each line dashed."""
    fig = draw_error_figure(data)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    for ax, (panel, sub) in zip(axes, ((p, data[data["panel"] == p]) for p in dict.fromkeys(data["panel"]))):
        if sub.empty or sub["y_name"].iloc[0] != ERROR.column:
            continue
        for i, (series, line) in enumerate(lines(sub)):
            fit = batch_fit(line)
            if fit is None:
                continue
            x = np.geomspace(line["x"].min(), line["x"].max(), 50)
            ax.plot(x, np.exp(fit.intercept) * x**fit.slope, ls="--", lw=0.9, color="0.35",
                    label=f"fit: error ∝ batch^({fit.slope:.2f} ± {fit.slope_se:.2f})" + _prefix(series))
        _legend(ax, outside=True)
    return fig


# ----------------------------------------------------------------------------- claims: shared


def _gate(points: pd.DataFrame, key_name: str) -> tuple[str | None, str]:
    """(failure, seed note) of the convergence and seed gates for a comparison."""
    seed_fail, seed_note = seed_gate(points, key_name)
    return _join(convergence_gate(points), seed_fail) or None, seed_note


def _no_error_note(data: pd.DataFrame) -> str:
    missing = data.attrs.get("no_error") or []
    return f"trials without an error vs a reference left out: {', '.join('t' + str(t) for t in missing)}" if missing else ""


def _levels_missing(data: pd.DataFrame, needed: Iterable[str], label: Callable) -> str | None:
    """``only KFAC has complete trials with an error`` when a needed level is absent."""
    have = set(data["level"]) if len(data) else set()
    missing = [lev for lev in needed if lev not in have]
    if not missing:
        return None
    ran = ", ".join(label(lev) for lev in needed if lev in have) or "neither setting"
    return f"only {ran} has complete trials with an error vs a reference: no comparison"


def _margin_text(r: pd.Series, num: str, den: str) -> str:
    """``Li (3 e): Adam 40.00 ± 2.00 vs KFAC 2.00 ± 0.10 mHa, ratio 20.0 (x/÷ 1.06), Adam − 10·KFAC = 20.0 ± 2.2 (9.0σ), 2σ lower bound 16.1``."""
    electrons = f" ({int(r['electrons'])} e)" if np.isfinite(float(r["electrons"])) else ""
    ratio = (f"ratio {r['ratio']:.3g} (×/÷ {math.exp(r['ln_ratio_err']):.2f})" if np.isfinite(r["ratio"])
             else "ratio undefined (a mean error <= 0)")
    z = r["margin"] / r["margin_err"] if r["margin_err"] > 0 else math.copysign(math.inf, r["margin"])
    low = (f", 2σ lower bound {r['fieller_low']:.3g}" if np.isfinite(r["fieller_low"])
           else f", {den}'s error within 2σ of zero: the ratio has no upper bound")
    return (f"{r['x']}{electrons}: {num} {_pm(r['num_mean'], r['num_err'], 'mHa')} vs {den} "
            f"{_pm(r['den_mean'], r['den_err'], 'mHa')}, {ratio}, {num} − {r['factor']:g}·{den} = "
            f"{r['margin']:.2f} ± {r['margin_err']:.2f} mHa ({z:+.1f}σ){low}")


def factor_claim(topic: str, statement: str, data: pd.DataFrame, numerator: str, denominator: str,
                 factor: float, label: Callable) -> Claim:
    """"numerator's error is at least ``factor`` x the denominator's" on every system (module
    docstring: the margin N − factor·D against 2 sigma, i.e. the Fieller bound)."""
    if data.empty:
        return Claim(topic, statement, INCONCLUSIVE, "no complete trial with an error vs a reference")
    num, den = label(numerator), label(denominator)
    missing = _levels_missing(data, [numerator, denominator], label)
    if missing:
        return Claim(topic, statement, INCONCLUSIVE, _join(missing, _no_error_note(data)))
    table = ratios(data, numerator, denominator, factor)
    if table.empty:
        return Claim(topic, statement, INCONCLUSIVE, f"{num} and {den} have no system in common")
    compared = data[data["x"].isin(table["x"]) & data["level"].isin([numerator, denominator])]
    failure, seed_note = _gate(compared, "system")
    evidence = _join("; ".join(_margin_text(r, num, den) for _, r in table.iterrows()), seed_note,
                     _no_error_note(data))
    if failure:
        return Claim(topic, statement, INCONCLUSIVE, _join(failure, evidence))
    z = table["margin"] / table["margin_err"].where(table["margin_err"] > 0, math.nan)
    z = z.fillna(table["margin"].map(lambda m: math.copysign(math.inf, m)))
    below = table[z < -SIGNIFICANCE]
    if len(below):
        return Claim(topic, statement, NOT_SUPPORTED,
                     _join(f"the ratio is significantly below {factor:g} on {', '.join(map(str, below['x']))}", evidence))
    unresolved = table[z <= SIGNIFICANCE]
    if len(unresolved):
        return Claim(topic, statement, INCONCLUSIVE,
                     _join(f"the ratio is not resolved from {factor:g} at 2σ on {', '.join(map(str, unresolved['x']))}",
                           evidence))
    return Claim(topic, statement, SUPPORTED,
                 _join(f"above {factor:g}x by more than 2σ on all {len(table)} systems", evidence))


# ----------------------------------------------------------------------------- claims: optimizer


OPTIMIZER_FACTOR_STATEMENT = "KFAC's error is at least 10x lower than Adam's"
OPTIMIZER_GROWTH_STATEMENT = "the Adam/KFAC error ratio grows with the number of electrons"


def optimizer_claims(data: pd.DataFrame) -> list[Claim]:
    """The 10x claim and the growth of the ratio with electrons (rules in the module docstring)."""
    return [factor_claim("optimizer", OPTIMIZER_FACTOR_STATEMENT, data, "adam", "kfac", OPTIMIZER_FACTOR, optim_label),
            optimizer_growth_claim(data)]


def optimizer_growth_claim(data: pd.DataFrame) -> Claim:
    """Weighted fit of ln(Adam/KFAC) vs electrons; the gate, >= 3 systems, no reversal, slope > 2σ."""
    statement, topic = OPTIMIZER_GROWTH_STATEMENT, "optimizer"
    if data.empty:
        return Claim(topic, statement, INCONCLUSIVE, "no complete trial with an error vs a reference")
    missing = _levels_missing(data, ["adam", "kfac"], optim_label)
    if missing:
        return Claim(topic, statement, INCONCLUSIVE, missing)
    table = ratios(data, "adam", "kfac", OPTIMIZER_FACTOR)
    usable = table[np.isfinite(table["ratio"].astype(float)) & np.isfinite(table["electrons"].astype(float))]
    left_out = table[~table.index.isin(usable.index)]
    note = (f"left out (a mean error <= 0 has no ratio, or no electron count): {', '.join(map(str, left_out['x']))}"
            if len(left_out) else "")
    pts = "; ".join(f"{r['x']} ({_num(r['electrons'])} e): ratio {r['ratio']:.3g} (ln {math.log(r['ratio']):.2f} ± "
                    f"{r['ln_ratio_err']:.2f})" for _, r in usable.iterrows())
    compared = data[data["x"].isin(usable["x"]) & data["level"].isin(["adam", "kfac"])]
    failure, seed_note = _gate(compared, "system")
    points = usable.assign(mean=np.log(usable["ratio"].astype(float)), yerr=usable["ln_ratio_err"], x=usable["electrons"])
    few = points_gate(points.drop_duplicates("x"), "electron-count", " with a ratio")
    fit = ratio_fit(usable)
    fit_text = (f"model ln(Adam/KFAC) = c + b·electrons, weighted: b = {fit.slope:.3f} ± {fit.slope_se:.3f} "
                f"per electron (ratio ×{math.exp(fit.slope):.2f} per electron), χ²/dof {fit.chi2:.1f}/{fit.dof}"
                + (f", p {fit.p_value:.2g}" if fit.dof > 0 else "") if fit is not None else "")
    if failure or few or fit is None:
        return Claim(topic, statement, INCONCLUSIVE,
                     _join(failure, few, "" if fit is not None or few else "no fit", fit_text, pts, seed_note, note))
    z = fit.significance
    if z < -SIGNIFICANCE:
        return Claim(topic, statement, NOT_SUPPORTED,
                     _join(f"the ratio falls with electrons ({z:.1f} sigma)", fit_text, pts, seed_note, note))
    if z <= SIGNIFICANCE:
        return Claim(topic, statement, INCONCLUSIVE,
                     _join(f"no significant trend (slope {z:+.1f} sigma, needs beyond ±{SIGNIFICANCE:g})",
                           fit_text, pts, seed_note, note))
    rev = ratio_reversals(usable)
    if rev:
        return Claim(topic, statement, INCONCLUSIVE, _join("significant reversal: " + ", ".join(rev), fit_text, pts,
                                                          seed_note, note))
    if fit.dof > 0 and fit.p_value < MIN_FIT_P:
        return Claim(topic, statement, INCONCLUSIVE,
                     _join(f"the ratio grows ({z:.1f} sigma) but the line does not fit within the error bars",
                           fit_text, pts, seed_note, note))
    return Claim(topic, statement, SUPPORTED, _join(f"grows at {z:.1f} sigma", fit_text, pts, seed_note, note))


def ratio_reversals(table: pd.DataFrame) -> list[str]:
    """Every pair of systems where the one with more electrons has a significantly smaller
    ln(ratio) (beyond 2 sqrt(s1^2 + s2^2) of the ln-ratio errors), as text."""
    rows = table.sort_values("electrons").reset_index(drop=True)
    found = []
    for i in range(len(rows)):
        for j in range(len(rows)):
            a, b = rows.iloc[i], rows.iloc[j]
            if b["electrons"] <= a["electrons"]:
                continue
            gap = math.log(a["ratio"]) - math.log(b["ratio"])
            sigma = math.hypot(a["ln_ratio_err"], b["ln_ratio_err"])
            if gap > SIGNIFICANCE * sigma:
                found.append(f"{b['x']} ({_num(b['electrons'])} e, ratio {b['ratio']:.3g}) is below {a['x']} "
                             f"({_num(a['electrons'])} e, ratio {a['ratio']:.3g}) by {gap / sigma:.1f} sigma in ln(ratio)")
    return found


# ----------------------------------------------------------------------------- claims: features


FEATURES_STATEMENT = "without |r| features the error is far higher"


def features_claims(data: pd.DataFrame) -> list[Claim]:
    """"Far higher": at least 3x and significant on every system (module docstring)."""
    claim = factor_claim("features", FEATURES_STATEMENT + f" (at least {FAR_FACTOR:g}x)", data, "without", "with",
                         FAR_FACTOR, features_label)
    if data.empty or _levels_missing(data, ["without", "with"], features_label):
        return [claim]
    table = ratios(data, "without", "with", FAR_FACTOR)
    diffs = []
    for _, r in table.iterrows():
        gap, sigma = r["num_mean"] - r["den_mean"], math.hypot(r["num_err"], r["den_err"])
        diffs.append(f"{r['x']} {gap:+.2f} ± {sigma:.2f} mHa ({gap / sigma:+.1f}σ)" if sigma > 0 else f"{r['x']} {gap:+.2f} mHa")
    return [Claim(claim.topic, claim.statement, claim.verdict,
                  _join(claim.evidence, "without − with: " + "; ".join(diffs) if diffs else ""))]


# ----------------------------------------------------------------------------- claims: sampler moves


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
        claims.append(moves_claim(data))
    return claims


def _binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    from scipy.stats import binom

    return float(binom.sf(k - 1, n, p)) if k > 0 else 1.0


def spikes_claim(data: pd.DataFrame) -> Claim:
    """Pooled spike counts per method, conditional binomial test of the two Poisson rates."""
    topic, statement = "sampler_moves", SPIKES_STATEMENT
    spikes = data[data["panel"] == "energy_spikes per trial"].copy()
    spikes["method"] = spikes["level"].str.split("/").str[0]
    counted = spikes[pd.to_numeric(spikes["y"], errors="coerce").notna()
                     & pd.to_numeric(spikes["iterations"], errors="coerce").gt(0)]
    uncounted = spikes[~spikes.index.isin(counted.index)]
    note = (f"no spike count or iterations recorded for {', '.join('t' + str(int(t)) for t in uncounted['trial'])} "
            "(left out)" if len(uncounted) else "")
    groups = {m: counted[counted["method"] == m] for m in ("hmc", "mh")}
    empty = [METHOD_NAMES[m] for m, g in groups.items() if g.empty]
    if empty:
        return Claim(topic, statement, INCONCLUSIVE,
                     _join(f"no {' or '.join(empty)} trial with a spike count: no comparison", note))
    s = {m: int(g["y"].astype(float).sum()) for m, g in groups.items()}
    its = {m: float(g["iterations"].astype(float).sum()) for m, g in groups.items()}
    per_trial = {m: ", ".join(f"t{int(r['trial'])} {int(r['y'])}" for _, r in g.sort_values("trial").iterrows())
                 for m, g in groups.items()}
    share = its["hmc"] / (its["hmc"] + its["mh"])
    total = s["hmc"] + s["mh"]
    p_more = _binom_sf(s["hmc"], total, share)
    p_less = _binom_sf(s["mh"], total, 1.0 - share)
    converged = sum(1 for v in spikes["converged"] if isinstance(v, (bool, np.bool_)) and v)
    evidence = _join(
        "; ".join(f"{METHOD_NAMES[m]}: {s[m]} spikes in {its[m]:.0f} training iterations "
                  f"({1000 * s[m] / its[m]:.2f} per 1000; {len(groups[m])} trials: {per_trial[m]})" for m in ("hmc", "mh")),
        f"conditional binomial test of equal Poisson rates per iteration (HMC's share of the iterations "
        f"{share:.2f}): one-sided p = {p_more:.2g} for HMC more, {p_less:.2g} for MH more (significant below "
        f"{SPIKE_ALPHA:g}, i.e. 2σ one-sided; assumes independent spikes)",
        f"convergence not required for a spike count ({converged} of {len(spikes)} trials converged)",
        note)
    if s["hmc"] == 0:
        return Claim(topic, statement, NOT_SUPPORTED, _join("HMC produced no spike", evidence))
    if p_less < SPIKE_ALPHA:
        return Claim(topic, statement, NOT_SUPPORTED, _join("MH spikes significantly more often than HMC", evidence))
    if p_more < SPIKE_ALPHA:
        lead = "HMC spikes, MH never does" if s["mh"] == 0 else "HMC spikes significantly more often than MH"
        return Claim(topic, statement, SUPPORTED, _join(lead, evidence))
    return Claim(topic, statement, INCONCLUSIVE,
                 _join(f"HMC's spike rate is not significantly above MH's (p = {p_more:.2g})", evidence))


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
                     f"no system has more electrons than the median ({_num(median)}) of the compared systems "
                     f"({', '.join(map(str, pairs['x']))}): no larger system")
    judged = pairs[pairs["x"].isin(larger)]
    compared = points[points["x"].isin(larger)]
    failure, seed_note = _gate(compared, "system")
    outcomes, texts = [], []
    for _, r in judged.iterrows():
        outcome, text = _equal_cost(r)
        outcomes.append(outcome)
        texts.append(text)
    smaller = pairs[~pairs["x"].isin(larger)]
    context = ("smaller systems (not judged): " + "; ".join(_equal_cost(r)[1] for _, r in smaller.iterrows())
               if len(smaller) else "")
    evidence = _join(f"{scope}; larger systems: more than {_num(median)} electrons", "; ".join(texts), context,
                     seed_note)
    if failure:
        return Claim(topic, statement, INCONCLUSIVE, _join(failure, evidence))
    if "unknown" in outcomes:
        return Claim(topic, statement, INCONCLUSIVE, _join("training time not recorded (iterations, ms per iteration)",
                                                          evidence))
    if "lose" in outcomes:
        return Claim(topic, statement, NOT_SUPPORTED,
                     _join("all-electron moves are significantly better at no more training time", evidence))
    if all(o == "win" for o in outcomes):
        return Claim(topic, statement, SUPPORTED,
                     _join("one-electron moves are significantly better at no more training time on every larger "
                           "system", evidence))
    if "incomparable" in outcomes:
        return Claim(topic, statement, INCONCLUSIVE,
                     _join("the data cannot compare the moves at equal cost: the better setting also trained longer "
                           "(by more than 10 %)", evidence))
    return Claim(topic, statement, INCONCLUSIVE,
                 _join("no significant difference at equal training time", evidence))


def _equal_cost(r: pd.Series) -> tuple[str, str]:
    """(win / lose / same / incomparable / unknown, text) for one system's one- vs all-electron pair."""
    one, all_ = r["mean_one"], r["mean_all"]
    sigma = _sigma(r["yerr_one"], r["yerr_all"])
    t_one, t_all = float(r["train_time_s_one"]), float(r["train_time_s_all"])
    head = (f"{r['x']} ({_num(r['electrons_one'])} e): one-electron {_pm(one, r['yerr_one'], 'mHa')} in "
            f"{t_one:.1f} s, all-electron {_pm(all_, r['yerr_all'], 'mHa')} in {t_all:.1f} s")
    if not (np.isfinite(t_one) and np.isfinite(t_all) and t_one > 0 and t_all > 0):
        return "unknown", head + " (training time not recorded)"
    cost = t_one / t_all
    z = (all_ - one) / sigma if sigma > 0 else math.copysign(math.inf, all_ - one)
    head += f"; one/all training time {cost:.2f}, error difference (all − one) {z:+.1f}σ"
    one_better, all_better = z > SIGNIFICANCE, z < -SIGNIFICANCE
    if one_better and cost <= 1 + COST_MATCH:
        return "win", head + ": one-electron better at no more cost"
    if all_better and cost >= 1 - COST_MATCH:
        return "lose", head + ": all-electron better at no more cost"
    if abs(cost - 1) <= COST_MATCH:
        return "same", head + ": no significant difference at equal cost"
    ms_one = float(r["ms_per_iteration_one"]) if np.isfinite(r["ms_per_iteration_one"]) else math.nan
    ms_all = float(r["ms_per_iteration_all"]) if np.isfinite(r["ms_per_iteration_all"]) else math.nan
    if cost > 1:
        need = (f"a one-electron run of about {t_all * 1000 / ms_one:.0f} iterations ({t_all:.1f} s), or an "
                f"all-electron run of about {t_one * 1000 / ms_all:.0f} iterations ({t_one:.1f} s)")
    else:
        need = (f"an all-electron run of about {t_one * 1000 / ms_all:.0f} iterations ({t_one:.1f} s), or a "
                f"one-electron run of about {t_all * 1000 / ms_one:.0f} iterations ({t_all:.1f} s)")
    return "incomparable", head + f": not comparable at equal cost (needs {need})"


# ----------------------------------------------------------------------------- claims: batch


BATCH_STATEMENT = "the error falls with batch size at fixed iterations"


def batch_fit(line: pd.DataFrame) -> LineFit | None:
    """Weighted ln(error) = c + p·ln(batch) over the points with mean > 0 and an error bar (None
    with fewer than 2)."""
    positive = line[(line["mean"] > 0) & (line["yerr"] > 0)]
    if len(positive) < 2:
        return None
    mean = positive["mean"].to_numpy(float)
    return weighted_line(np.log(positive["x"].to_numpy(float)), np.log(mean), positive["yerr"].to_numpy(float) / mean)


def batch_claims(data: pd.DataFrame) -> list[Claim]:
    """The batch claim for each line of batch data (rules in the module docstring)."""
    if data.empty:
        return []
    if data["y_name"].iloc[0] != ERROR.column:
        return [Claim("batch", BATCH_STATEMENT, INCONCLUSIVE, "no reference energy for this system, so no error to fit")]
    return [_batch_claim(series, line) for series, line in lines(data)]


def _batch_claim(series: str, line: pd.DataFrame) -> Claim:
    statement = BATCH_STATEMENT + _prefix(series)
    positive = line[line["mean"] > 0].reset_index(drop=True)
    excluded = line[line["mean"] <= 0]
    note = (f"batch {', '.join(_num(x) for x in excluded['x'])} have error <= 0 (below the reference within noise): "
            "left out of the fit" if len(excluded) else "")
    pts = "; ".join(f"batch {_num(r['x'])}: {_pm(r['mean'], r['yerr'], 'mHa')}" for _, r in line.iterrows())
    iterations = sorted({v for text in line.get("iterations", pd.Series(dtype=str)).astype(str) for v in text.split()})
    fixed = (None if len(iterations) <= 1 else
             f"training iterations differ ({', '.join(iterations)}): the claim is at fixed iterations")
    seed_fail, seed_note = seed_gate(line, "batch")
    failures = [convergence_gate(line), fixed, points_gate(positive, "batch size", " with error > 0"), seed_fail]
    fit = batch_fit(line)
    fit_text = ""
    if fit is not None:
        fit_text = (f"model ln(error) = c + p·ln(batch), weighted by the error bars: p = {fit.slope:.2f} ± "
                    f"{fit.slope_se:.2f} (error ×{2 ** fit.slope:.2f} per doubling), χ²/dof {fit.chi2:.1f}/{fit.dof}"
                    + (f", p-value {fit.p_value:.2g}" if fit.dof > 0 else ""))
    at = f"at {iterations[0]} iterations" if len(iterations) == 1 else ""
    if any(failures) or fit is None:
        return Claim("batch", statement, INCONCLUSIVE, _join(*failures, "" if fit else "fewer than 2 batch sizes "
                     "with error > 0 and an error bar: no fit", fit_text, pts, seed_note, note))
    z = fit.significance
    if z > SIGNIFICANCE:
        return Claim("batch", statement, NOT_SUPPORTED,
                     _join(f"the error grows with batch size (slope {z:.1f} sigma)", fit_text, at, pts, seed_note, note))
    if z >= -SIGNIFICANCE:
        return Claim("batch", statement, INCONCLUSIVE,
                     _join(f"no significant trend (slope {z:+.1f} sigma, needs beyond ±{SIGNIFICANCE:g})", fit_text, at,
                           pts, seed_note, note))
    rev = reversals(positive, "batch", "mHa")
    if rev:
        return Claim("batch", statement, INCONCLUSIVE,
                     _join("significant reversal: " + ", ".join(rev), fit_text, at, pts, seed_note, note))
    if fit.dof > 0 and fit.p_value < MIN_FIT_P:
        return Claim("batch", statement, INCONCLUSIVE,
                     _join(f"the error falls ({abs(z):.1f} sigma) but the power law does not fit within the error bars",
                           fit_text, at, pts, seed_note, note))
    return Claim("batch", statement, SUPPORTED, _join(f"falls at {abs(z):.1f} sigma", fit_text, at, pts, seed_note, note))


# ----------------------------------------------------------------------------- registry


CLAIM_BUILDERS = {
    "optimizer": optimizer_claims,
    "features": features_claims,
    "sampler_moves": sampler_moves_claims,
    "batch": batch_claims,
}

__all__ = [
    "CLAIM_BUILDERS",
    "batch_data",
    "batch_fit",
    "draw_batch",
    "draw_features",
    "draw_optimizer",
    "draw_sampler_moves",
    "features_data",
    "optimizer_data",
    "planned",
    "ratio_fit",
    "ratios",
    "sampler_moves_data",
]
