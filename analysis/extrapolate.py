"""Extrapolated limits, each with an error bar, a stated model, and a verdict on its fit.

Three estimates of what more training or a bigger network would give (energies in Hartree):

* **Per trial, the converged energy from the training curve**: the training energies of the
  second half of training are cut into blocks (at most 20, at least 5 iterations each); the block
  means are fitted with ``E(t) = E_inf + a t^-b`` (least squares, the exponent b profiled over
  [0.05, 4]). The error bar of ``E_inf`` is half the central 68% range of 200 refits to blocks
  resampled with replacement (bootstrap over blocks), or the half-width of the 1-sigma profile
  interval of ``E_inf`` over b when that is larger (a factor-2 window in t fixes b poorly, and the
  bootstrap alone then under-covers). It is checked against the evaluated energy (frozen
  parameters), which should not lie below the limit beyond 2 sigma.
* **Per series, energy-variance extrapolation**: across the trials of a width (or determinants,
  depth, pairwise-width) series, the evaluated energy against the evaluated local-energy variance
  is fitted with a line ``E = E_0 + k var`` weighted by 1/stderr^2 (the variances' own noise is
  ignored), and carried to zero variance, where an exact eigenstate lies: ``E_0`` estimates the
  exact energy. Its error bar comes from the fit's covariance, scaled by sqrt(chi^2/dof) when that
  exceeds 1. Compared with the reference energy when one is known.
* **Width to infinity**: the energies of a width series are fitted with
  ``E(w) = E_inf + a w^-b`` (weighted by 1/stderr^2, b profiled over [0.1, 4]); ``E_inf - E_ref``
  is the error a network of unlimited width would keep (depth, determinants, training length
  stay as they were). The error bar is half the central 68% range of 200 refits to energies redrawn
  within their error bars (parametric bootstrap, scaled by sqrt(chi^2/dof) when above 1).

A fit is **too poor to use** (reported with the reason, its number never used) when:

1. it has too few points: fewer than 8 blocks (training curve), 3 trials (variance), 4 widths
   (width: three parameters need one degree of freedom);
2. chi^2 rejects the model: p < 0.01 (training curve: the noise of a block mean is the larger of
   the estimate from second differences of successive blocks, which a smooth trend barely
   affects, and the scatter inside the blocks divided by their length);
3. the exponent b is not determined: at the edge of its search range (width), or with a 1-sigma
   profile range reaching an edge (training curve); E_inf and a are then not separately fixed;
4. its error bar exceeds the change the data themselves show (the decrease of the fitted curve
   over the second half of training; the energy spread of the variance series; the decrease of
   the fitted curve from the narrowest to the widest network);
5. it reaches too far: the predicted decrease beyond the last point is more than 5 times the
   decrease over the second half (training curve) or more than the decrease across the widths
   (width); the variance fit needs a positive slope (lower variance, lower energy).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from .claims import INCONCLUSIVE, NOT_SUPPORTED, NOTE, SUPPORTED, Claim
from .cost import point_label, varying_keys
from .figures import GRID_KEYS, _new_figure, swept_keys, tuning_keys
from .loaders import HARTREE_TO_MHA, complete_trials, load_history

P_MIN = 0.01                    # chi^2 p-value below which a model is rejected
N_BOOT = 200                    # bootstrap refits
MAX_BLOCKS, MIN_BLOCK_LEN, MIN_BLOCKS = 20, 5, 8
REACH_FACTOR = 5.0              # training curve: predicted further decrease <= 5 x the observed one
T_EXPONENTS = np.geomspace(0.05, 4.0, 400)
W_EXPONENTS = np.geomspace(0.1, 4.0, 300)
SERIES_KEYS = ("network.width", "network.determinants", "network.depth", "network.pairwise_width")

TRAINING_MODEL = ("E(t) = E_inf + a t^-b, second half of training, block means; error bar: bootstrap over "
                  "blocks (or the profile interval over b when wider)")
VARIANCE_MODEL = "E = E_0 + k var, weighted least squares, carried to zero variance"
WIDTH_MODEL = "E(w) = E_inf + a w^-b, weighted least squares; error bar: parametric bootstrap"


@dataclasses.dataclass(frozen=True)
class Limit:
    """One extrapolated limit (Hartree) and the verdict on its fit."""

    model: str
    value: float
    stderr: float
    usable: bool
    reason: str
    n_points: int
    chi2_dof: float = math.nan
    p_value: float = math.nan
    params: Mapping = dataclasses.field(default_factory=dict)

    def text(self) -> str:
        """``-8.07123 ± 0.00045 Ha`` or ``too poor to use (reason)``."""
        if not self.usable:
            return f"too poor to use ({self.reason})"
        return f"{self.value:.5f} ± {self.stderr:.5f} Ha"


def _poor(model: str, reason: str, n: int, **kw) -> Limit:
    return Limit(model, kw.pop("value", math.nan), kw.pop("stderr", math.nan), False, reason, n, **kw)


# ----------------------------------------------------------------------------- power-law core


def _profile(u: np.ndarray, y: np.ndarray, w: np.ndarray, exponents: np.ndarray):
    """Weighted least squares of y = c + a u^-b for every b in ``exponents`` (vectorised).

    ``u``, ``y``, ``w`` may carry a leading replica axis (R, n). Returns (c, a, sse) of shape
    (..., len(exponents)).
    """
    f = u[..., None, :] ** (-exponents[:, None])            # (..., G, n)
    y, w = y[..., None, :], w[..., None, :]
    s, sf, sff = w.sum(-1), (w * f).sum(-1), (w * f * f).sum(-1)
    sy, sfy = (w * y).sum(-1), (w * f * y).sum(-1)
    det = s * sff - sf * sf
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (s * sfy - sf * sy) / det
        c = (sy - a * sf) / s
    sse = (w * (y - c[..., None] - a[..., None] * f) ** 2).sum(-1)
    sse = np.where(np.isfinite(sse), sse, np.inf)
    return c, a, sse


def fit_power_limit(x, y, w, exponents):
    """Best (limit c, a, b, sse, index of b) of y = c + a (x / x_max)^-b, b from ``exponents``."""
    x, y, w = (np.asarray(v, float) for v in (x, y, w))
    u = x / x.max()
    c, a, sse = _profile(u, y, w, exponents)
    i = int(np.argmin(sse))
    return float(c[i]), float(a[i]), float(exponents[i]), float(sse[i]), i


def _spread(replicas: np.ndarray) -> float:
    """Bootstrap standard error: half the central 68% interval of the replicas (robust to the
    heavy tail a nearly flat exponent direction gives; a plain standard deviation otherwise)."""
    replicas = np.asarray(replicas, float)
    if np.count_nonzero(np.isfinite(replicas)) < 3 or not np.isfinite(replicas).all():
        return math.inf
    low, high = np.percentile(replicas, [15.87, 84.13])
    return float((high - low) / 2)


def _profile_halfwidth(u: np.ndarray, y: np.ndarray, noise2: float, exponents: np.ndarray):
    """The 1-sigma profile interval of y = c + a u^-b (equal weights, block noise^2 ``noise2``):
    over every b with chi^2(b) <= chi^2_min + 1, half the range of c(b) ± its standard error at
    that fixed b; and the (lowest, highest) such b."""
    if not noise2 > 0:
        return math.inf, (exponents[0], exponents[-1])
    c, _, sse = _profile(u, y, np.ones_like(y), exponents)
    f = u[None, :] ** (-exponents[:, None])
    n = u.size
    det = n * (f * f).sum(1) - f.sum(1) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(noise2 * (f * f).sum(1) / det)
    keep = (sse / noise2 <= sse.min() / noise2 + 1.0) & np.isfinite(c) & np.isfinite(se)
    if not keep.any():
        return math.inf, (exponents[0], exponents[-1])
    kept = exponents[keep]
    return float(((c + se)[keep].max() - (c - se)[keep].min()) / 2), (float(kept.min()), float(kept.max()))


def _curve(c: float, a: float, b: float, x, x_max: float) -> np.ndarray:
    return c + a * (np.asarray(x, float) / x_max) ** (-b)


# ----------------------------------------------------------------------------- per trial: E(t)


def training_limit(steps, energies, seed: int = 0, n_boot: int = N_BOOT) -> Limit:
    """The converged energy predicted from one training curve (see the module docstring).

    ``steps``: training iterations (0-based, as in metrics.csv); ``energies``: the batch-mean
    training energy of each (Hartree).
    """
    t = np.asarray(steps, float) + 1.0
    e = np.asarray(energies, float)
    ok = np.isfinite(t) & np.isfinite(e)
    t, e = t[ok], e[ok]
    order = np.argsort(t)
    t, e = t[order], e[order]
    if t.size == 0:
        return _poor(TRAINING_MODEL, "no training energies", 0)
    half = t > t.max() / 2
    t, e = t[half], e[half]
    n_blocks = min(MAX_BLOCKS, t.size // MIN_BLOCK_LEN)
    if n_blocks < MIN_BLOCKS:
        return _poor(TRAINING_MODEL, f"{n_blocks} blocks of >= {MIN_BLOCK_LEN} iterations in the second half "
                                     f"(needs {MIN_BLOCKS}: at least {2 * MIN_BLOCKS * MIN_BLOCK_LEN} iterations)",
                     n_blocks)
    length = t.size // n_blocks
    cut = t.size - n_blocks * length                     # drop the oldest leftovers, keep the end
    tb = t[cut:].reshape(n_blocks, length).mean(1)
    eb = e[cut:].reshape(n_blocks, length).mean(1)
    ones = np.ones(n_blocks)
    c, a, b, sse, i = fit_power_limit(tb, eb, ones, T_EXPONENTS)
    t_max = tb.max()
    # block noise^2: second differences of the block means (a smooth trend barely enters; robust to
    # correlation inside a block), or the scatter inside the blocks / length when larger (more samples)
    inside = e[cut:].reshape(n_blocks, length)
    inside = inside - inside.mean(1, keepdims=True)
    noise2 = max(float(np.mean(np.diff(eb, 2) ** 2) / 6.0),
                 float(np.sum(inside**2) / (n_blocks * (length - 1)) / length))
    dof = n_blocks - 3
    chi2 = sse / noise2 if noise2 > 0 else math.inf
    p = float(stats.chi2.sf(chi2, dof)) if math.isfinite(chi2) else 0.0
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_blocks, size=(n_boot, n_blocks))
    cs, _, sses = _profile(tb[idx] / t_max, eb[idx], np.ones_like(eb[idx]), T_EXPONENTS)
    best = cs[np.arange(n_boot), np.argmin(sses, axis=1)]
    boot = _spread(best)
    profile, (b_low, b_high) = _profile_halfwidth(tb / t_max, eb, noise2, T_EXPONENTS)
    stderr = max(boot, profile)
    first, last = _curve(c, a, b, [tb.min(), t_max], t_max)
    drop, gain = float(first - last), float(last - c)
    params = {"a_at_last": a, "b": b, "b_low": b_low, "b_high": b_high, "t_first": float(tb.min()),
              "t_last": float(t_max), "drop": drop, "gain": gain, "block_len": length,
              "block_noise": math.sqrt(noise2), "stderr_bootstrap": boot, "stderr_profile": profile}
    common = dict(value=c, stderr=stderr, chi2_dof=chi2 / dof, p_value=p, params=params)
    reason = ""
    if b_low <= T_EXPONENTS[0] or b_high >= T_EXPONENTS[-1]:
        reason = (f"exponent b = {b:.3g} not determined (its 1-sigma range {b_low:.3g}..{b_high:.3g} reaches the "
                  f"edge of [{T_EXPONENTS[0]:g}, {T_EXPONENTS[-1]:g}]): E_inf and a are not separately fixed")
    elif p < P_MIN:
        reason = f"chi^2/dof {chi2 / dof:.2f} (p {p:.2g}): the model misses the curve's shape"
    elif drop <= 0 or not stderr <= drop:
        reason = (f"error bar {stderr * HARTREE_TO_MHA:.2f} mHa exceeds the decrease over the second half "
                  f"({drop * HARTREE_TO_MHA:.2f} mHa): the curve does not constrain the limit")
    elif gain > REACH_FACTOR * drop:
        reason = (f"predicted further decrease {gain * HARTREE_TO_MHA:.2f} mHa is more than {REACH_FACTOR:g}x "
                  f"the decrease over the second half ({drop * HARTREE_TO_MHA:.2f} mHa)")
    if reason:
        return _poor(TRAINING_MODEL, reason, n_blocks, **common)
    return Limit(TRAINING_MODEL, c, stderr, True, "", n_blocks, chi2 / dof, p, params)


# ----------------------------------------------------------------------------- per series: E vs variance


def variance_limit(variance, energy, stderr) -> Limit:
    """Energy-variance extrapolation of one series to zero variance (see the module docstring)."""
    v, e, s = (np.asarray(x, float) for x in (variance, energy, stderr))
    ok = np.isfinite(v) & np.isfinite(e) & np.isfinite(s) & (s > 0)
    v, e, s = v[ok], e[ok], s[ok]
    n = int(v.size)
    if n < 3:
        return _poor(VARIANCE_MODEL, f"{n} trials with an energy, error bar and variance (needs 3)", n)
    if np.ptp(v) <= 0:
        return _poor(VARIANCE_MODEL, "every trial has the same variance", n)
    w = 1.0 / s**2
    design = np.stack([np.ones(n), v], axis=1)
    cov = np.linalg.inv(design.T @ (w[:, None] * design))
    e0, k = cov @ (design.T @ (w * e))
    resid = e - (e0 + k * v)
    chi2 = float(np.sum(w * resid**2))
    dof = n - 2
    p = float(stats.chi2.sf(chi2, dof))
    scale = max(1.0, chi2 / dof)
    err_e0, err_k = math.sqrt(cov[0, 0] * scale), math.sqrt(cov[1, 1] * scale)
    spread = float(np.ptp(e))
    params = {"slope": float(k), "slope_stderr": err_k, "variance_min": float(v.min()),
              "variance_max": float(v.max()), "birge_scale": math.sqrt(scale)}
    common = dict(value=float(e0), stderr=err_e0, chi2_dof=chi2 / dof, p_value=p, params=params)
    reason = ""
    if p < P_MIN:
        reason = f"chi^2/dof {chi2 / dof:.2f} (p {p:.2g}): the energies do not lie on a line in the variance"
    elif k <= 0:
        reason = f"slope {k:.3g} Ha/Ha^2 <= 0: lower variance does not mean lower energy in this series"
    elif not err_e0 <= spread:
        reason = (f"error bar {err_e0 * HARTREE_TO_MHA:.2f} mHa exceeds the spread of the series' energies "
                  f"({spread * HARTREE_TO_MHA:.2f} mHa)")
    if reason:
        return _poor(VARIANCE_MODEL, reason, n, **common)
    return Limit(VARIANCE_MODEL, float(e0), err_e0, True, "", n, chi2 / dof, p, params)


# ----------------------------------------------------------------------------- per series: width


def width_limit(width, energy, stderr, seed: int = 0, n_boot: int = N_BOOT) -> Limit:
    """The energy of a width series carried to infinite width (see the module docstring)."""
    x, e, s = (np.asarray(v, float) for v in (width, energy, stderr))
    ok = np.isfinite(x) & np.isfinite(e) & np.isfinite(s) & (s > 0) & (x > 0)
    x, e, s = x[ok], e[ok], s[ok]
    n, distinct = int(x.size), int(np.unique(x).size)
    if distinct < 4:
        return _poor(WIDTH_MODEL, f"{distinct} widths (needs 4: three parameters and one degree of freedom)", n)
    w = 1.0 / s**2
    c, a, b, sse, i = fit_power_limit(x, e, w, W_EXPONENTS)
    x_max = x.max()
    dof = n - 3
    chi2 = sse
    p = float(stats.chi2.sf(chi2, dof))
    scale = math.sqrt(max(1.0, chi2 / dof))
    fitted = _curve(c, a, b, x, x_max)
    rng = np.random.default_rng(seed)
    redrawn = fitted[None, :] + rng.normal(size=(n_boot, n)) * (s * scale)[None, :]
    cs, _, sses = _profile(np.broadcast_to(x / x_max, redrawn.shape), redrawn,
                           np.broadcast_to(w, redrawn.shape), W_EXPONENTS)
    best = cs[np.arange(n_boot), np.argmin(sses, axis=1)]
    stderr_c = _spread(best)
    narrow, wide = _curve(c, a, b, [x.min(), x_max], x_max)
    drop, gain = float(narrow - wide), float(wide - c)
    params = {"a_at_widest": a, "b": b, "width_min": float(x.min()), "width_max": float(x_max), "drop": drop,
              "gain": gain}
    common = dict(value=c, stderr=stderr_c, chi2_dof=chi2 / dof, p_value=p, params=params)
    reason = ""
    if i in (0, len(W_EXPONENTS) - 1):
        reason = (f"exponent b = {b:.3g} at the edge of [{W_EXPONENTS[0]:g}, {W_EXPONENTS[-1]:g}]: E_inf and a are "
                  "not separately determined")
    elif p < P_MIN:
        reason = f"chi^2/dof {chi2 / dof:.2f} (p {p:.2g}): the model misses the energies"
    elif drop <= 0:
        reason = "the fitted energy does not fall with width"
    elif not stderr_c <= drop:
        reason = (f"error bar {stderr_c * HARTREE_TO_MHA:.2f} mHa exceeds the decrease across the widths "
                  f"({drop * HARTREE_TO_MHA:.2f} mHa)")
    elif gain > drop:
        reason = (f"predicted decrease beyond width {x_max:g} ({gain * HARTREE_TO_MHA:.2f} mHa) exceeds the "
                  f"decrease across the widths studied ({drop * HARTREE_TO_MHA:.2f} mHa)")
    if reason:
        return _poor(WIDTH_MODEL, reason, n, **common)
    return Limit(WIDTH_MODEL, c, stderr_c, True, "", n, chi2 / dof, p, params)


# ----------------------------------------------------------------------------- series of a study


def _numeric(frame: pd.DataFrame, cols) -> pd.DataFrame:
    out = frame.copy()
    for col in cols:
        out[col] = pd.to_numeric(out[col], errors="coerce") if col in out else np.nan
    return out


def series_groups(trials: pd.DataFrame, key: str | None) -> list[tuple[str, pd.DataFrame]]:
    """(label, complete trials) of each series along ``key``: trials that share every other swept
    grid key (the seed apart) and the system. A tuning study, or ``key`` None, is one series per
    system (``all trials``)."""
    done = _numeric(complete_trials(trials), ("energy", "energy_stderr", "variance", "reference_energy"))
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
        part = _numeric(part, ("network.width",))
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
    if history is None:
        history = load_history(trials=trials)
    if history.empty or "energy" not in history:
        return pd.DataFrame()
    done = _numeric(complete_trials(trials), ("energy", "energy_stderr", "reference_energy"))
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
    done = _numeric(complete_trials(trials), ("variance",))
    if done["variance"].notna().sum() >= 3:
        names.append("energy_variance")
    if "network.width" in swept_keys(trials) and not tuning_keys(trials) \
            and pd.to_numeric(done["network.width"], errors="coerce").nunique() >= 4:
        names.append("width_limit")
    return names


# ----------------------------------------------------------------------------- figures


def draw_energy_variance(data: pd.DataFrame):
    """Energy against local-energy variance per series, the fitted line carried to zero variance,
    the extrapolated E_0 with its error bar (open marker when too poor to use), reference dashed."""
    fig, (ax,) = _new_figure(panel_size=(4.6, 3.2))
    for j, series in enumerate(dict.fromkeys(data["series"])):
        part = data[data["series"] == series]
        pts, lim = part[part["kind"] == "trial"], part[part["kind"] == "limit"].iloc[0]
        colour = f"C{j % 10}"
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
    fig, (ax,) = _new_figure(panel_size=(4.6, 3.2))
    for j, series in enumerate(dict.fromkeys(data["series"])):
        part = data[data["series"] == series]
        pts, lim = part[part["kind"] == "trial"], part[part["kind"] == "limit"].iloc[0]
        colour = f"C{j % 10}"
        ax.errorbar(pts["width"], pts["energy"], yerr=pts["stderr"], fmt="o", ms=3, color=colour, lw=0.8,
                    label=series if data["series"].nunique() > 1 else "trials")
        if math.isfinite(lim["limit"]) and "fit_b" in lim and math.isfinite(lim["fit_b"]):
            xs = np.geomspace(float(pts["width"].min()), 8 * float(pts["width"].max()), 60)
            ys = _curve(lim["limit"], lim["fit_a_at_widest"], lim["fit_b"], xs, lim["fit_width_max"])
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
    fig, (ax,) = _new_figure(panel_size=(max(3.6, 0.35 * len(data) + 1.5), 3.0))
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


# ----------------------------------------------------------------------------- claims


def _mha(value: float, err: float) -> str:
    return f"{value:.2f} ± {err:.2f} mHa" if math.isfinite(err) else f"{value:.2f} mHa"


def training_limit_claim(data: pd.DataFrame) -> Claim:
    """Whether the evaluated energies are consistent with the limits of their training curves."""
    statement = ("training-curve limits are consistent with the evaluated energies (E_eval not below E_inf "
                 "beyond 2 sigma)")
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
    evidence = f"model {TRAINING_MODEL}; {len(good)} of {len(data)} fits usable. " + "; ".join(parts)
    if good.empty:
        return Claim("extrapolation", statement, INCONCLUSIVE, evidence)
    below = good["evaluated_minus_limit_mha"] < -2 * good["evaluated_minus_limit_stderr_mha"]
    verdict = NOT_SUPPORTED if below.any() else SUPPORTED
    if below.any():
        evidence = (f"evaluated energy below the predicted limit beyond 2 sigma for "
                    f"{', '.join(f't{t}' for t in good.loc[below, 'trial'])}; " + evidence)
    return Claim("extrapolation", statement, verdict, evidence)


def _fit_stats(row) -> str:
    return f"{int(row['n_points'])} points, chi^2/dof {row['chi2_dof']:.2f}, p {row['p_value']:.2g}"


def variance_claims(data: pd.DataFrame) -> list[Claim]:
    """Per series: the zero-variance energy against the reference (or a note without one)."""
    claims = []
    for _, lim in data[data["kind"] == "limit"].iterrows():
        series = "" if lim["series"] == "all trials" else f" ({lim['series']})"
        statement = "the energy-variance extrapolation agrees with the reference energy" + series
        model = f"model {lim['model']}"
        if not lim["usable"]:
            claims.append(Claim("extrapolation", statement, INCONCLUSIVE,
                                f"too poor to use: {lim['reason']} ({model}; {_fit_stats(lim)})"))
            continue
        est = (f"E_0 = {lim['limit']:.5f} ± {lim['limit_stderr']:.5f} Ha (slope {lim['fit_slope']:.3g} ± "
               f"{lim['fit_slope_stderr']:.2g} Ha/Ha^2; {_fit_stats(lim)}; {model})")
        if not math.isfinite(lim["reference_energy"]):
            claims.append(Claim("extrapolation", "energy-variance estimate of the exact energy" + series, NOTE,
                                est + "; no reference energy to compare with"))
            continue
        diff, err = lim["limit_minus_reference_mha"], lim["limit_minus_reference_stderr_mha"]
        verdict = SUPPORTED if abs(diff) <= 2 * err else NOT_SUPPORTED
        claims.append(Claim("extrapolation", statement, verdict,
                            f"{est}; reference {lim['reference_energy']:.5f} Ha: E_0 - reference {_mha(diff, err)}"))
    return claims


def width_claims(data: pd.DataFrame) -> list[Claim]:
    """Per width series: the error a network of unlimited width would keep (a note)."""
    claims = []
    for _, lim in data[data["kind"] == "limit"].iterrows():
        series = "" if lim["series"] == "all trials" else f" ({lim['series']})"
        statement = "energy carried to infinite width" + series
        if not lim["usable"]:
            claims.append(Claim("extrapolation", statement, INCONCLUSIVE,
                                f"too poor to use: {lim['reason']} (model {lim['model']}; {_fit_stats(lim)})"))
            continue
        text = (f"E_inf = {lim['limit']:.5f} ± {lim['limit_stderr']:.5f} Ha (b = {lim['fit_b']:.2f}; "
                f"{_fit_stats(lim)}; model {lim['model']})")
        if math.isfinite(lim["reference_energy"]):
            text += (f"; error left at infinite width "
                     f"{_mha(lim['limit_minus_reference_mha'], lim['limit_minus_reference_stderr_mha'])}")
        claims.append(Claim("extrapolation", statement, NOTE, text))
    return claims


def extrapolation_claims(trials: pd.DataFrame, figure_data: Mapping[str, pd.DataFrame] | None = None) -> list[Claim]:
    """Every extrapolation this study allows, from the figure data when drawn (else computed)."""
    figure_data = figure_data or {}
    claims = []
    training = figure_data.get("training_limit")
    training = training_limit_data(trials) if training is None else training
    if training is not None and len(training):
        claims.append(training_limit_claim(training))
    variance = figure_data.get("energy_variance")
    variance = energy_variance_data(trials) if variance is None else variance
    if variance is not None and len(variance):
        claims += variance_claims(variance)
    width = figure_data.get("width_limit")
    width = width_limit_data(trials) if width is None else width
    if width is not None and len(width):
        claims += width_claims(width)
    return claims
