"""Limits study (every study): the extrapolated limits of :mod:`analysis.extrapolate` as figures
and claims of kind LIMIT: the converged energy of each training curve, the energy-variance
extrapolation per series, and the energy carried to infinite width."""

from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from ..extrapolate import Limit, SERIES_KEYS, TRAINING_MODEL, power_curve, training_limit, variance_limit, width_limit
from ..loaders import HARTREE_TO_MHA, complete_trials
from ..plotting import new_figure
from ..points import GRID_KEYS, point_label, swept_keys, tuning_keys, varying_keys
from ..study import FigureKind, FigureStudy
from ..inference import ALPHA, TTest
from ..verdicts import Claim, Decision, INCONCLUSIVE, LIMIT, NOTE, Rules, decided, rules_of


def numeric_columns(frame: pd.DataFrame, cols) -> pd.DataFrame:
    out = frame.copy()
    for col in cols:
        out[col] = pd.to_numeric(out[col], errors="coerce") if col in out else np.nan
    return out


def series_groups(trials: pd.DataFrame, key: str | None) -> list[tuple[str, pd.DataFrame]]:
    """(label, complete trials) of each series along ``key``: trials that share every other swept
    grid key (the seed apart) and the system. A tuning study, or ``key`` None, is one series per
    system (``all trials``)."""
    done = numeric_columns(complete_trials(trials), ("energy", "energy_stderr", "variance", "reference_energy"))
    if done.empty:
        return []
    others = [] if key is None or tuning_keys(trials) else \
        [k for k in swept_keys(trials) if k in GRID_KEYS and k not in (key, "seed", "system")]
    by = ["system"] + [k for k in others if done[k].nunique(dropna=True) > 1]
    groups = []
    for values, part in done.groupby(by, sort=True, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        bits = [f"{k.rsplit('.', 1)[-1]} {v}" for k, v in zip(by[1:], values[1:])]
        label = ", ".join(bits) or "all trials"
        if done["system"].nunique(dropna=True) > 1:
            label = f"{values[0]}: {label}"
        groups.append((label, part))
    return groups


def variance_series_key(trials: pd.DataFrame) -> str | None:
    """The key a variance series runs along: width, else determinants, depth, pairwise width;
    None (all trials together) for a tuning study or a study sweeping none of them."""
    if tuning_keys(trials):
        return None
    return next((k for k in SERIES_KEYS if k in swept_keys(trials)), None)


def _reference(part: pd.DataFrame) -> float:
    refs = part["reference_energy"].dropna().unique()
    return float(refs[0]) if len(refs) == 1 else math.nan


def _limit_row(series: str, lim: Limit, ref: float) -> dict:
    diff = (lim.value - ref) * HARTREE_TO_MHA if math.isfinite(ref) else math.nan
    return {"series": series, "kind": "limit", "limit": lim.value, "limit_stderr": lim.stderr,
            "usable": lim.usable, "reason": lim.reason, "model": lim.model, "n_points": lim.n_points,
            "chi2_dof": lim.chi2_dof, "p_value": lim.p_value, "reference_energy": ref,
            "limit_minus_reference_mha": diff,
            "limit_minus_reference_stderr_mha": lim.stderr * HARTREE_TO_MHA if math.isfinite(ref) else math.nan,
            **{f"fit_{k}": v for k, v in lim.params.items()}}


def energy_variance_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Plotted data of the energy-variance figure: one ``trial`` row per point (``variance``
    Hartree^2, ``energy`` and ``stderr`` Hartree) and one ``limit`` row per series with the fit
    (``limit``, ``limit_stderr``, ``usable``, ``reason``, ``fit_slope`` ...)."""
    rows = []
    keys = varying_keys(trials, complete_trials(trials))
    for series, part in series_groups(trials, variance_series_key(trials)):
        part = part[np.isfinite(part["variance"]) & np.isfinite(part["energy"])]
        if len(part) < 2:
            continue
        for _, r in part.iterrows():
            rows.append({"series": series, "kind": "trial", "trial": int(r["trial"]), "label": point_label(r, keys),
                         "variance": r["variance"], "energy": r["energy"], "stderr": r["energy_stderr"]})
        lim = variance_limit(part["variance"], part["energy"], part["energy_stderr"])
        rows.append(_limit_row(series, lim, _reference(part)))
    return pd.DataFrame(rows)


def width_limit_data(trials: pd.DataFrame) -> pd.DataFrame:
    """Plotted data of the width-limit figure: ``trial`` rows (``width``, ``energy``, ``stderr``)
    and a ``limit`` row per series with the fit (``fit_a_at_widest``, ``fit_b``, ``fit_width_max``)."""
    if "network.width" not in swept_keys(trials) or tuning_keys(trials):
        return pd.DataFrame()
    rows = []
    for series, part in series_groups(trials, "network.width"):
        part = numeric_columns(part, ("network.width",))
        part = part[np.isfinite(part["energy"]) & np.isfinite(part["network.width"])]
        if len(part) < 2:
            continue
        for _, r in part.iterrows():
            rows.append({"series": series, "kind": "trial", "trial": int(r["trial"]), "width": r["network.width"],
                         "energy": r["energy"], "stderr": r["energy_stderr"]})
        lim = width_limit(part["network.width"], part["energy"], part["energy_stderr"])
        rows.append(_limit_row(series, lim, _reference(part)))
    return pd.DataFrame(rows)


def training_limit_data(trials: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per complete trial with a training curve: the evaluated energy and the predicted
    converged energy (``limit`` ± ``limit_stderr``, ``usable``, ``reason``, fit details), Hartree."""
    if history is None or history.empty or "energy" not in history:
        return pd.DataFrame()
    done = numeric_columns(complete_trials(trials), ("energy", "energy_stderr", "reference_energy"))
    keys = varying_keys(trials, done)
    rows = []
    for _, r in done.iterrows():
        curve = history[history["trial"] == r["trial"]]
        if curve.empty:
            continue
        lim = training_limit(curve["step"].to_numpy(float), pd.to_numeric(curve["energy"], errors="coerce"))
        ref = float(r["reference_energy"]) if pd.notna(r["reference_energy"]) else math.nan
        diff = (r["energy"] - lim.value) * HARTREE_TO_MHA
        rows.append({"trial": int(r["trial"]), "label": point_label(r, keys), "iterations": len(curve),
                     "energy": r["energy"], "energy_stderr": r["energy_stderr"], "limit": lim.value,
                     "limit_stderr": lim.stderr, "usable": lim.usable, "reason": lim.reason, "model": lim.model,
                     "n_blocks": lim.n_points, "chi2_dof": lim.chi2_dof, "p_value": lim.p_value,
                     "evaluated_minus_limit_mha": diff,
                     "evaluated_minus_limit_stderr_mha": math.hypot(r["energy_stderr"], lim.stderr) * HARTREE_TO_MHA,
                     "reference_energy": ref,
                     **{f"fit_{k}": v for k, v in lim.params.items()}})
    return pd.DataFrame(rows)


def planned(trials: pd.DataFrame) -> list[str]:
    """The extrapolation figure kinds a study allows: training-curve limits always (trials with
    metrics), energy-variance when a series has 3 trials with a variance, width limit for a width
    series of 4 widths."""
    names = ["training_limit"]
    done = numeric_columns(complete_trials(trials), ("variance",))
    if done["variance"].notna().sum() >= 3:
        names.append("energy_variance")
    if "network.width" in swept_keys(trials) and not tuning_keys(trials) \
            and pd.to_numeric(done["network.width"], errors="coerce").nunique() >= 4:
        names.append("width_limit")
    return names


def limit_series(data: pd.DataFrame):
    """(colour, series, its trial rows, its limit row) for every series of limit-figure data."""
    for j, series in enumerate(dict.fromkeys(data["series"])):
        part = data[data["series"] == series]
        yield f"C{j % 10}", series, part[part["kind"] == "trial"], part[part["kind"] == "limit"].iloc[0]


def draw_energy_variance(data: pd.DataFrame):
    """Energy against local-energy variance per series, the fitted line carried to zero variance,
    the extrapolated E_0 with its error bar (open marker when too poor to use), reference dashed."""
    fig, (ax,) = new_figure(panel_size=(4.6, 3.2))
    for colour, series, pts, lim in limit_series(data):
        ax.errorbar(pts["variance"], pts["energy"], yerr=pts["stderr"], fmt="o", ms=3, color=colour, lw=0.8,
                    label=series if series != "all trials" or data["series"].nunique() > 1 else "trials")
        if math.isfinite(lim["limit"]) and math.isfinite(lim.get("fit_slope", math.nan)):
            xs = np.linspace(0.0, float(pts["variance"].max()), 50)
            ax.plot(xs, lim["limit"] + lim["fit_slope"] * xs, color=colour, lw=0.8, ls="-" if lim["usable"] else ":")
            ax.errorbar([0.0], [lim["limit"]], yerr=[lim["limit_stderr"]] if math.isfinite(lim["limit_stderr"]) else None,
                        fmt="D", ms=4, color=colour, mfc=colour if lim["usable"] else "none", lw=0.8,
                        label=f"E_0 ({'fit' if lim['usable'] else 'too poor to use'})")
    refs = data["reference_energy"].dropna().unique() if "reference_energy" in data else []
    if len(refs) == 1:
        ax.axhline(float(refs[0]), color="black", ls="--", lw=0.8, label="reference")
    ax.set_xlim(left=-0.02 * float(np.nanmax(data["variance"])))
    ax.set_xlabel("local-energy variance (Ha$^2$)")
    ax.set_ylabel("energy (Ha)")
    ax.legend(fontsize=6, frameon=False)
    return fig


def draw_width_limit(data: pd.DataFrame):
    """Energy against width (log2 axis) per series, the fitted E_inf + a w^-b, and E_inf as a band."""
    fig, (ax,) = new_figure(panel_size=(4.6, 3.2))
    for colour, series, pts, lim in limit_series(data):
        ax.errorbar(pts["width"], pts["energy"], yerr=pts["stderr"], fmt="o", ms=3, color=colour, lw=0.8,
                    label=series if data["series"].nunique() > 1 else "trials")
        if math.isfinite(lim["limit"]) and "fit_b" in lim and math.isfinite(lim["fit_b"]):
            xs = np.geomspace(float(pts["width"].min()), 8 * float(pts["width"].max()), 60)
            ys = power_curve(lim["limit"], lim["fit_a_at_widest"], lim["fit_b"], xs, lim["fit_width_max"])
            ax.plot(xs, ys, color=colour, lw=0.8, ls="-" if lim["usable"] else ":")
            if lim["usable"]:
                ax.axhspan(lim["limit"] - lim["limit_stderr"], lim["limit"] + lim["limit_stderr"], color=colour,
                           alpha=0.15, lw=0, label="E_inf ± error")
    refs = data["reference_energy"].dropna().unique() if "reference_energy" in data else []
    if len(refs) == 1:
        ax.axhline(float(refs[0]), color="black", ls="--", lw=0.8, label="reference")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("one-electron width")
    ax.set_ylabel("energy (Ha)")
    ax.legend(fontsize=6, frameon=False)
    return fig


def draw_training_limit(data: pd.DataFrame):
    """Per trial: the evaluated energy and the converged energy predicted from its training curve
    (filled when usable, open when too poor to use), relative to the reference when known."""
    fig, (ax,) = new_figure(panel_size=(max(3.6, 0.35 * len(data) + 1.5), 3.0))
    ref = data["reference_energy"].dropna().unique()
    shift = float(ref[0]) if len(ref) == 1 else 0.0
    scale = HARTREE_TO_MHA if len(ref) == 1 else 1.0
    x = np.arange(len(data))
    ax.errorbar(x - 0.1, (data["energy"] - shift) * scale, yerr=data["energy_stderr"] * scale, fmt="o", ms=3,
                color="C0", lw=0.8, label="evaluated")
    usable = data["usable"].astype(bool).to_numpy()
    finite = np.isfinite(data["limit"].to_numpy(float))
    for mask, face, label in ((usable & finite, "C3", "predicted limit"), (~usable & finite, "none", "limit (too poor to use)")):
        if mask.any():
            err = data["limit_stderr"].to_numpy(float)[mask] * scale
            ax.errorbar(x[mask] + 0.1, (data["limit"].to_numpy(float)[mask] - shift) * scale,
                        yerr=np.where(np.isfinite(err), err, 0.0), fmt="s", ms=3, color="C3", mfc=face, lw=0.8,
                        label=label)
    if len(ref) == 1:
        ax.axhline(0.0, color="black", ls="--", lw=0.8, label="reference")
        ax.set_ylabel("energy - reference (mHa)")
        values = np.concatenate([(data["energy"] - shift) * scale,
                                 (data["limit"].to_numpy(float)[usable & finite] - shift) * scale])
        values = values[np.isfinite(values)]
        if values.size:
            pad = 0.15 * max(values.max() - min(values.min(), 0.0), 1.0)
            ax.set_ylim(min(values.min(), 0.0) - pad, values.max() + pad)
    else:
        ax.set_ylabel("energy (Ha)")
    ax.set_xticks(x)
    ax.set_xticklabels([f"t{t}" for t in data["trial"]], fontsize=6, rotation=90)
    ax.set_xlabel("trial")
    ax.legend(fontsize=6, frameon=False)
    return fig


def _mha(value: float, err: float) -> str:
    return f"{value:.2f} ± {err:.2f} mHa" if math.isfinite(err) else f"{value:.2f} mHa"


def training_limit_claim(data: pd.DataFrame, rules: Rules | None = None) -> Claim:
    """Whether the evaluated energies are consistent with the limits of their training curves: no
    evaluated energy below its predicted limit by more than the margin (each trial's
    non-inferiority z test must reject: intersection–union); refuted when some trial's evaluated
    energy is below its limit significantly (Bonferroni over the trials)."""
    rules = rules or rules_of(data)
    margin = rules.margin_mha
    statement = (f"training-curve limits are consistent with the evaluated energies (E_eval not below E_inf "
                 f"by more than {rules.margin_text('mHa')})")
    good = data[data["usable"].astype(bool)]
    poor = data[~data["usable"].astype(bool)]
    parts = []
    for _, r in good.iterrows():
        text = (f"t{r['trial']} {r['label']}: E_inf {r['limit']:.5f} ± {r['limit_stderr']:.5f} Ha, evaluated "
                f"minus limit {_mha(r['evaluated_minus_limit_mha'], r['evaluated_minus_limit_stderr_mha'])}")
        if math.isfinite(r["reference_energy"]):
            text += (f", limit vs reference "
                     f"{_mha((r['limit'] - r['reference_energy']) * HARTREE_TO_MHA, r['limit_stderr'] * HARTREE_TO_MHA)}")
        parts.append(text)
    if len(poor):
        reasons = "; ".join(f"t{r['trial']}: {r['reason']}" for _, r in poor.head(6).iterrows())
        more = f" (and {len(poor) - 6} more)" if len(poor) > 6 else ""
        parts.append(f"too poor to use for {len(poor)} trial(s): {reasons}{more}")
    body = f"model {TRAINING_MODEL}; {len(good)} of {len(data)} fits usable. " + "; ".join(parts)
    if good.empty:
        return Claim("extrapolation", statement, INCONCLUSIVE, body, decision=Decision(blocked="no usable fit", body=body))
    tests = [TTest(float(r["evaluated_minus_limit_mha"]), float(r["evaluated_minus_limit_stderr_mha"]), math.inf)
             for _, r in good.iterrows()]
    p_within = max(t.against(-margin).p_greater for t in tests)
    p_below = min(1.0, len(tests) * min(t.p_less for t in tests))
    below = [f"t{r['trial']}" for (_, r), t in zip(good.iterrows(), tests) if t.p_less * len(tests) <= ALPHA]
    decision = Decision(
        p_support=p_within, p_refute=p_below,
        supported=f"every evaluated energy lies above its limit minus {rules.margin_text('mHa')}",
        refuted=f"evaluated energy below the predicted limit for {', '.join(below) or 'some trial'}",
        undecided="consistency within the margin not shown for every trial",
        test=(f"per trial, z test of E_eval − E_inf > −{margin:g} mHa (all must reject) and of E_eval − E_inf < 0 "
              f"(Bonferroni over {len(tests)} trials)"),
        body=body, trials=tuple(sorted(int(t) for t in good["trial"])))
    return decided(Claim("extrapolation", statement, INCONCLUSIVE, "", decision=decision))


def _fit_stats(row) -> str:
    return f"{int(row['n_points'])} points, chi^2/dof {row['chi2_dof']:.2f}, p {row['p_value']:.2g}"


def series_limits(data: pd.DataFrame):
    """(limit row, `` (series)`` or empty for the single series) for every series of limit data."""
    for _, lim in data[data["kind"] == "limit"].iterrows():
        yield lim, "" if lim["series"] == "all trials" else f" ({lim['series']})"


def poor_fit_claim(statement: str, lim: pd.Series) -> Claim:
    """``inconclusive: too poor to use: <reason> (model ...; fit statistics)``."""
    return Claim("extrapolation", statement, INCONCLUSIVE,
                 f"too poor to use: {lim['reason']} (model {lim['model']}; {_fit_stats(lim)})")


VARIANCE_STATEMENT = "the energy-variance extrapolation agrees with the reference energy"
WIDTH_LIMIT_STATEMENT = "energy carried to infinite width"


def usable_limit_claims(data: pd.DataFrame, statement: str, judge: Callable[[pd.Series, str], Claim]) -> list[Claim]:
    """Per series of limit data: ``judge(limit row, series suffix)`` for a usable fit, else the
    too-poor-to-use claim of ``statement``."""
    return [judge(lim, series) if lim["usable"] else poor_fit_claim(statement + series, lim)
            for lim, series in series_limits(data)]


def variance_claims(data: pd.DataFrame) -> list[Claim]:
    """Per series: the zero-variance energy against the reference (or a note without one)."""
    rules = rules_of(data)
    return usable_limit_claims(data, VARIANCE_STATEMENT, lambda lim, series: variance_claim(lim, series, rules))


def variance_claim(lim: pd.Series, series: str, rules: Rules | None = None) -> Claim:
    """The claim of one series' usable energy-variance limit: agreement with the reference within
    the margin by two one-sided tests (t with the fit's degrees of freedom); refuted when the
    limit lies outside the margin (Bonferroni over the two sides)."""
    rules = rules or Rules()
    est = (f"E_0 = {lim['limit']:.5f} ± {lim['limit_stderr']:.5f} Ha (slope {lim['fit_slope']:.3g} ± "
           f"{lim['fit_slope_stderr']:.2g} Ha/Ha^2; {_fit_stats(lim)}; model {lim['model']})")
    if not math.isfinite(lim["reference_energy"]):
        return Claim("extrapolation", "energy-variance estimate of the exact energy" + series, NOTE,
                     est + "; no reference energy to compare with")
    diff, err = lim["limit_minus_reference_mha"], lim["limit_minus_reference_stderr_mha"]
    margin = rules.margin_mha
    df = float(lim["n_points"]) - 2 if math.isfinite(float(lim["n_points"])) and lim["n_points"] > 2 else math.inf
    test = TTest(float(diff), float(err), df)
    upper, lower = test.against(margin), test.against(-margin)
    decision = Decision(
        p_support=max(upper.p_less, lower.p_greater), p_refute=min(1.0, 2 * min(upper.p_greater, lower.p_less)),
        supported=f"E_0 − reference {_mha(diff, err)} lies within ±{rules.margin_text('mHa')}",
        refuted=f"E_0 − reference {_mha(diff, err)} lies outside ±{rules.margin_text('mHa')}",
        undecided=f"E_0 − reference {_mha(diff, err)} is not resolved within ±{rules.margin_text('mHa')}",
        test=f"two one-sided t tests against ±{margin:g} mHa: {test.text()}",
        body=f"{est}; reference {lim['reference_energy']:.5f} Ha")
    statement = VARIANCE_STATEMENT.replace("agrees with", f"agrees (within {margin:g} mHa) with") + series
    return decided(Claim("extrapolation", statement, INCONCLUSIVE, "", decision=decision))


def width_limit_claims(data: pd.DataFrame) -> list[Claim]:
    """Per width series: the error a network of unlimited width would keep (a note)."""
    return usable_limit_claims(data, WIDTH_LIMIT_STATEMENT, width_limit_claim)


def width_limit_claim(lim: pd.Series, series: str) -> Claim:
    """The note of one width series' usable limit."""
    text = (f"E_inf = {lim['limit']:.5f} ± {lim['limit_stderr']:.5f} Ha (b = {lim['fit_b']:.2f}; "
            f"{_fit_stats(lim)}; model {lim['model']})")
    if math.isfinite(lim["reference_energy"]):
        text += (f"; error left at infinite width "
                 f"{_mha(lim['limit_minus_reference_mha'], lim['limit_minus_reference_stderr_mha'])}")
    return Claim("extrapolation", WIDTH_LIMIT_STATEMENT + series, NOTE, text)


def extrapolation_claims(trials: pd.DataFrame, figure_data: Mapping[str, pd.DataFrame] | None = None,
                         history: pd.DataFrame | None = None) -> list[Claim]:
    """Every extrapolation this study allows, from the figure data when drawn (else computed from
    the trials and the loaded ``history``)."""
    figure_data = figure_data or {}
    claims = []
    training = figure_data.get("training_limit")
    training = training_limit_data(trials, history) if training is None else training
    if training is not None and len(training):
        claims.append(training_limit_claim(training, rules_of(trials)))
    variance = figure_data.get("energy_variance")
    variance = energy_variance_data(trials) if variance is None else variance
    if variance is not None and len(variance):
        claims += variance_claims(variance)
    width = figure_data.get("width_limit")
    width = width_limit_data(trials) if width is None else width
    if width is not None and len(width):
        claims += width_limit_claims(width)
    return claims


TRAINING_LIMIT = FigureKind(
    "training_limit", "trials+history", training_limit_data, draw_training_limit,
    "Evaluated energy and the converged energy predicted by fitting E(t) = E_inf + a t^-b to the second "
    "half of each training curve (open: too poor to use).")
ENERGY_VARIANCE = FigureKind(
    "energy_variance", "trials", energy_variance_data, draw_energy_variance,
    "Energy vs local-energy variance per series, the weighted line carried to zero variance (E_0 with "
    "its error bar; dotted and open when too poor to use).")
WIDTH_LIMIT = FigureKind(
    "width_limit", "trials", width_limit_data, draw_width_limit,
    "Energy vs width with the fit E(w) = E_inf + a w^-b and E_inf ± its error (dotted when too poor "
    "to use).")
STUDY = FigureStudy("limits", (TRAINING_LIMIT, ENERGY_VARIANCE, WIDTH_LIMIT), planned,
                    lambda inputs, data: extrapolation_claims(inputs.trials, data, inputs.history), claim_kind=LIMIT,
                    every_study=True)
