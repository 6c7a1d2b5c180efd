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

The figures and claims built on these fits are the limits study (:mod:`analysis.studies.limits`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import numpy as np
from scipy import stats

from .loaders import HARTREE_TO_MHA


P_MIN = 0.01                    # chi^2 p-value below which a model is rejected
N_BOOT = 200                    # bootstrap refits
REACH_FACTOR = 5.0              # training curve: predicted further decrease <= 5 x the observed one
MAX_BLOCKS, MIN_BLOCK_LEN, MIN_BLOCKS = 20, 5, 8
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


def power_curve(c: float, a: float, b: float, x, x_max: float) -> np.ndarray:
    return c + a * (np.asarray(x, float) / x_max) ** (-b)


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
    first, last = power_curve(c, a, b, [tb.min(), t_max], t_max)
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
    fitted = power_curve(c, a, b, x, x_max)
    rng = np.random.default_rng(seed)
    redrawn = fitted[None, :] + rng.normal(size=(n_boot, n)) * (s * scale)[None, :]
    cs, _, sses = _profile(np.broadcast_to(x / x_max, redrawn.shape), redrawn,
                           np.broadcast_to(w, redrawn.shape), W_EXPONENTS)
    best = cs[np.arange(n_boot), np.argmin(sses, axis=1)]
    stderr_c = _spread(best)
    narrow, wide = power_curve(c, a, b, [x.min(), x_max], x_max)
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
