"""Whether a trial's training converged: the one definition every verdict and table uses.

A trial is **converged** when all three hold:

1. **No drift in the tail.** The tail is the last 20 % of the training iterations
   (:data:`TAIL_FRACTION`). Successive training energies are correlated, so the tail is cut into
   contiguous blocks at least as long as the reblocking block length of the detrended tail
   (Flyvbjerg–Petersen with the Lee–Drummond–Needs criterion, ``ablate.records.stats.reblock``):
   :data:`TARGET_BLOCKS` blocks when the correlation allows it, never fewer than
   :data:`MIN_BLOCKS`. A least-squares line through the block means gives the slope ``b`` and its
   standard error ``s_b`` from the scatter of the block means about the line (``n_blocks - 2``
   degrees of freedom). No drift means ``|b| <= 3 s_b`` (:data:`SLOPE_Z`; 3 rather than 2 so
   that a study of many converged trials does not flag one by chance: with 18 degrees of freedom
   a flat tail exceeds 2 s_b 6 % of the time, 3 s_b under 1 %).
2. **Little left to gain.** "No significant drift" means nothing when the tail is so noisy that a
   large drift could hide in it. The drift the test could miss over the tail, ``3 s_b T``
   (``T`` = tail length), or, when the reference energy is known, the most the energy could
   still fall by the variational principle, ``E_eval - E_ref + 2 s_eval``, whichever is smaller,
   must be at most :data:`MAX_REMAINING_GAIN_MHA` (3.2 mHa, twice chemical accuracy). A noisy
   tail far from the reference is "not shown converged": not converged.
3. **Evaluation agrees with training.** The evaluated energy (frozen parameters, reblocked standard
   error ``s_eval``) and the tail mean (standard error ``s_tail`` = std of the block means /
   sqrt(n_blocks)) satisfy ``|E_eval - E_tail| <= 2 sqrt(s_eval^2 + s_tail^2) + 1 mHa``
   (:data:`AGREEMENT_Z`, :data:`AGREEMENT_ALLOWANCE_MHA`). Both are means of unclipped local
   energies (the clipping only shapes the gradient), so no clipping bias enters; the allowance
   covers parameters that still move within the tail and walkers one update behind them.

A trial with fewer than :data:`MIN_TAIL` tail iterations, no metrics.csv or no evaluated energy
is *not measured* (``converged`` is None, ``<NA>`` in the trial frame). The thresholds were set on
real quick-scale trials (He and LiH, 300 to 2000 iterations); docs/analysis.md lists what the rule
said for them.

Units: energies in Hartree as input; slopes in mHa per 1000 iterations, differences in mHa.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .records import reblock

TAIL_FRACTION = 0.2  # the tail: this fraction of the training iterations, at the end
MIN_TAIL = 20  # fewer tail iterations than this: not measured
TARGET_BLOCKS = 20  # blocks in the tail when the correlation length allows
MIN_BLOCKS = 5  # never fewer blocks (the slope's error needs a few degrees of freedom)
SLOPE_Z = 3.0  # no drift: |slope| <= SLOPE_Z * its standard error
MAX_REMAINING_GAIN_MHA = 3.2  # what the tail could hide (or the variational bound) at most, mHa
AGREEMENT_Z = 2.0  # |eval - tail| <= AGREEMENT_Z * combined stderr + allowance
AGREEMENT_ALLOWANCE_MHA = 1.0  # systematic train/eval difference allowed (mHa)

HARTREE_TO_MHA = 1000.0

# Trial-frame columns added by analysis.run_columns (see :class:`Convergence`).
CONVERGENCE_COLUMNS = (
    "converged",
    "convergence_reason",
    "tail_iterations",
    "tail_blocks",
    "tail_mean",
    "tail_stderr",
    "tail_slope_mha_per_kiter",
    "tail_slope_stderr_mha_per_kiter",
    "tail_drift_mha",
    "tail_hidden_drift_mha",
    "variational_bound_mha",
    "eval_minus_tail_mha",
    "eval_minus_tail_stderr_mha",
)


@dataclass(frozen=True)
class Convergence:
    """The convergence measurement of one trial.

    ``converged`` is True, False, or None (not measured); ``reason`` is one line saying why.
    ``tail_mean``/``tail_stderr`` in Hartree; the slope and its standard error in mHa per 1000
    training iterations; ``tail_drift_mha`` = slope x tail length (the fitted change over the
    tail); ``tail_hidden_drift_mha`` = 3 x slope stderr x tail length (the drift the test could
    miss); ``variational_bound_mha`` = E_eval - E_ref + 2 s_eval (NaN without a reference);
    ``eval_minus_tail_mha`` and its standard error; all in mHa.
    """

    converged: bool | None
    reason: str
    tail_iterations: int = 0
    tail_blocks: int = 0
    tail_mean: float = math.nan
    tail_stderr: float = math.nan
    tail_slope_mha_per_kiter: float = math.nan
    tail_slope_stderr_mha_per_kiter: float = math.nan
    tail_drift_mha: float = math.nan
    tail_hidden_drift_mha: float = math.nan
    variational_bound_mha: float = math.nan
    eval_minus_tail_mha: float = math.nan
    eval_minus_tail_stderr_mha: float = math.nan

    def columns(self) -> dict:
        """The trial-frame columns (:data:`CONVERGENCE_COLUMNS`)."""
        row = asdict(self)
        row["convergence_reason"] = row.pop("reason")
        return {k: row[k] for k in CONVERGENCE_COLUMNS}


def block_length(tail: np.ndarray) -> int:
    """Iterations per block: at least the reblocking block length of the detrended tail, at least
    ``len / TARGET_BLOCKS``, and at most ``len / MIN_BLOCKS``."""
    steps = np.arange(tail.size, dtype=float)
    residual = tail - np.polyval(np.polyfit(steps, tail, 1), steps)
    correlated = reblock(residual).block_size
    return int(min(max(correlated, tail.size // TARGET_BLOCKS, 1), tail.size // MIN_BLOCKS))


def tail_fit(energies: np.ndarray) -> dict:
    """Block means of the tail and the least-squares line through them.

    Args:
        energies: training energies (Hartree), one per iteration, in order.

    Returns:
        dict with ``tail_iterations`` (used; the first few are dropped so that the blocks end at
        the last iteration), ``tail_blocks``, ``tail_mean``/``tail_stderr`` (Hartree) and
        ``slope``/``slope_se`` (Hartree per iteration).
    """
    n_tail = math.ceil(TAIL_FRACTION * energies.size)
    tail = energies[energies.size - n_tail:]
    length = block_length(tail)
    n_blocks = tail.size // length
    used = tail[tail.size - n_blocks * length:]
    means = used.reshape(n_blocks, length).mean(axis=1)
    centres = (np.arange(n_blocks) + 0.5) * length  # iterations from the start of the used tail
    slope, intercept = np.polyfit(centres, means, 1)
    resid = means - (intercept + slope * centres)
    sxx = float(((centres - centres.mean()) ** 2).sum())
    slope_se = math.sqrt(float((resid**2).sum()) / (n_blocks - 2) / sxx)
    return {"tail_iterations": int(used.size), "tail_blocks": int(n_blocks), "tail_mean": float(means.mean()),
            "tail_stderr": float(means.std(ddof=1) / math.sqrt(n_blocks)), "slope": float(slope),
            "slope_se": slope_se}


def _finite(value) -> float | None:
    """``value`` as a float, None when missing or not finite."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def assess(energies, eval_energy: float | None, eval_stderr: float | None,
           reference_energy: float | None = None) -> Convergence:
    """Apply the definition in the module docstring to one trial.

    Args:
        energies: the training energies of metrics.csv (Hartree), in iteration order.
        eval_energy: the evaluated energy of summary.json (Hartree), or None.
        eval_stderr: its reblocked standard error (Hartree), or None.
        reference_energy: the exact (or estimated exact) energy (Hartree), or None.
    """
    e = np.asarray(energies if energies is not None else [], dtype=float)
    e = e[np.isfinite(e)]
    n_tail = math.ceil(TAIL_FRACTION * e.size)
    if n_tail < MIN_TAIL:
        return Convergence(None, f"not measured: {e.size} training iterations (the tail needs >= {MIN_TAIL})")
    fit = tail_fit(e)
    mha_per_kiter = HARTREE_TO_MHA * 1000.0
    slope, slope_se = fit["slope"] * mha_per_kiter, fit["slope_se"] * mha_per_kiter
    kiters = fit["tail_iterations"] / 1000.0
    hidden = SLOPE_Z * slope_se * kiters
    base = {"tail_iterations": fit["tail_iterations"], "tail_blocks": fit["tail_blocks"],
            "tail_mean": fit["tail_mean"], "tail_stderr": fit["tail_stderr"], "tail_slope_mha_per_kiter": slope,
            "tail_slope_stderr_mha_per_kiter": slope_se, "tail_drift_mha": slope * kiters,
            "tail_hidden_drift_mha": hidden}
    slope_txt = f"tail slope {slope:+.2f} ± {slope_se:.2f} mHa/kiter over {fit['tail_iterations']} iterations"
    e_eval = _finite(eval_energy)
    if e_eval is None:
        return Convergence(None, f"not measured: no evaluated energy ({slope_txt})", **base)
    s_eval = _finite(eval_stderr) or 0.0
    diff = (e_eval - fit["tail_mean"]) * HARTREE_TO_MHA
    diff_se = math.hypot(s_eval, fit["tail_stderr"]) * HARTREE_TO_MHA
    ref = _finite(reference_energy)
    bound = (e_eval - ref + 2 * s_eval) * HARTREE_TO_MHA if ref is not None else math.nan
    base.update(eval_minus_tail_mha=diff, eval_minus_tail_stderr_mha=diff_se, variational_bound_mha=bound)
    left = min(hidden, bound) if math.isfinite(bound) else hidden
    problems = []
    if abs(slope) > SLOPE_Z * slope_se:
        problems.append(f"still drifting: {slope_txt} ({abs(slope) / slope_se:.1f} sigma)")
    elif left > MAX_REMAINING_GAIN_MHA:
        above = f", and the energy is {bound:.1f} mHa (2 sigma) above the reference" if math.isfinite(bound) else ""
        problems.append(f"tail too noisy to show flat: {slope_txt} could hide {hidden:.1f} mHa{above} "
                        f"(> {MAX_REMAINING_GAIN_MHA:g})")
    tolerance = AGREEMENT_Z * diff_se + AGREEMENT_ALLOWANCE_MHA
    if abs(diff) > tolerance:
        problems.append(f"evaluation {diff:+.2f} ± {diff_se:.2f} mHa from the training tail (> {tolerance:.2f})")
    if problems:
        return Convergence(False, "; ".join(problems), **base)
    how = "the tail" if hidden <= MAX_REMAINING_GAIN_MHA else "the variational bound"
    return Convergence(True, f"{slope_txt}; at most {left:.1f} mHa left to gain ({how}); evaluation "
                             f"{diff:+.2f} ± {diff_se:.2f} mHa from the tail", **base)
