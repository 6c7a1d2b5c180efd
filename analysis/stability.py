"""Comparisons at a budget: the shared budget of the trials compared, and whether a gap is stable.

A *comparison at a budget* (|r| features on/off, KFAC vs Adam, FermiNet vs Slater–Jastrow at equal
K, error vs width at fixed iterations, ...) is judged on the evaluated energies of trials that ran
the same budget. Two things are measured here, from what every trial already records:

**The budget** (:func:`points_budget`): training iterations (summary.json's ``iterations``, the
iterations the run completed) and walkers (the config's ``batch_size``), with the scale preset
when known. Trials whose budgets differ are never compared: the verdict says so and stops.

**Stability in training time** (:func:`window_energy`, :func:`closing`). A comparison that holds at
the end of training could be a transient: the better setting may merely converge faster. Each
trial's training energies (metrics.csv, one per iteration, Hartree) are averaged over two windows
of equal length, **mid-training** (iterations 40–60 % of the run, centre 50 %) and the **end**
(80–100 %, centre 90 %). Training energies are means of unclipped local energies, so the two
windows measure the same quantity at two points of training, at no extra cost (no second frozen
evaluation is run). Within a window the energies are cut into contiguous blocks at least as long
as their reblocking block length (:func:`analysis.convergence.block_length`), a line is fitted
through the block means (the energy still falls within the window), and the window's energy is
the line at the window's centre, with the standard error of that value from the scatter of the
block means about the line.

A claim's *margin* is the quantity whose sign decides it, with its standard error ``s``. Claims
about errors are tested on ln(error) (:mod:`analysis.inference`), so their margin is a log ratio,
``M = ln W - ln F - ln 3`` for "at least 3x higher", ``M = ln A - ln K`` for "lower", from the
seeds' window errors: both errors usually fall during training, so an absolute gap shrinks while
the ratio holds, and only a shrinking *ratio* is a transient. Claims with a margin in mHa (energies,
"matches within 1.6 mHa") use the linear margin ``M = A - K``. With the margin measured at
both windows, the gap is **closing** when

1. it shrank significantly: ``M_mid - M_end > 2 sqrt(s_mid^2 + s_end^2)``, and
2. it would be gone, within its error, if it kept shrinking at that rate for as many iterations
   again as lie between the two windows (40 % of the run): ``M_end - (M_mid - M_end) <=
   2 sqrt(s_end^2 + s_mid^2 + s_end^2)``.

A margin that narrows but would survive that much more training is stable enough to state at this
budget (the evidence gives both values); a margin that was never significant at mid-training and
is at the end (the gap *opened*) is stable by this rule. Windows need at least
:data:`MIN_WINDOW` iterations each.

Units: energies and standard errors in Hartree here; the claims convert to mHa.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .convergence import block_length
from .inference import Sample

MID_WINDOW = (0.4, 0.6)  # fractions of the training iterations: the mid-training window
END_WINDOW = (0.8, 1.0)  # the end window (the same iterations as the convergence tail)
MIN_WINDOW = 20  # fewer iterations in a window than this: stability not measured
CLOSING_Z = 2.0  # a margin shrank significantly beyond this many standard errors

STABILITY_COLUMNS = ("mid_energy", "mid_stderr", "end_energy", "end_stderr")


@dataclass(frozen=True)
class Window:
    """The training energy over one window of iterations: ``energy`` at the window's centre and its
    standard error (Hartree); ``start``/``stop`` are iteration indices (stop exclusive)."""

    start: int
    stop: int
    energy: float
    stderr: float


def window_energy(energies, fractions: tuple[float, float]) -> Window | None:
    """The energy at the centre of the window ``fractions`` of the run (see the module docstring).

    Args:
        energies: training energies (Hartree), one per iteration, in order (non-finite ones dropped).
        fractions: (start, stop) as fractions of the number of iterations.

    Returns:
        The :class:`Window`, or None when the window holds fewer than :data:`MIN_WINDOW` iterations.
    """
    e = np.asarray(energies, dtype=float)
    e = e[np.isfinite(e)]
    start, stop = int(math.floor(fractions[0] * e.size)), int(math.ceil(fractions[1] * e.size))
    window = e[start:stop]
    if window.size < MIN_WINDOW:
        return None
    length = block_length(window)
    n_blocks = window.size // length
    used = window[: n_blocks * length]
    means = used.reshape(n_blocks, length).mean(axis=1)
    centres = (np.arange(n_blocks) + 0.5) * length
    middle = used.size / 2.0
    slope, intercept = np.polyfit(centres - middle, means, 1)
    resid = means - (intercept + slope * (centres - middle))
    dof = max(n_blocks - 2, 1)
    stderr = math.sqrt(float((resid**2).sum()) / dof / n_blocks)
    return Window(start, start + used.size, float(intercept), stderr)


def stability_columns(energies) -> dict:
    """The :data:`STABILITY_COLUMNS` of one trial from its training energies (NaN when too short)."""
    out = dict.fromkeys(STABILITY_COLUMNS, math.nan)
    if energies is None:
        return out
    for name, fractions in (("mid", MID_WINDOW), ("end", END_WINDOW)):
        w = window_energy(energies, fractions)
        if w is not None:
            out[f"{name}_energy"], out[f"{name}_stderr"] = w.energy, w.stderr
    return out


@dataclass(frozen=True)
class Margin:
    """A claim's margin and its standard error (mHa; with ``log``, a log ratio)."""

    value: float
    sigma: float
    log: bool = False

    @property
    def z(self) -> float:
        """value / sigma (±inf for an exact margin)."""
        return self.value / self.sigma if self.sigma > 0 else math.copysign(math.inf, self.value)

    def text(self) -> str:
        return f"{self.value:+.2f} ± {self.sigma:.2f}" + ("" if self.log else " mHa")


def margin(a: float, a_err: float, b: float, b_err: float, factor: float = 1.0) -> Margin:
    """``a - factor * b`` with the error bars added in quadrature (NaN error bars count as 0)."""
    a_err, b_err = float(np.nan_to_num(a_err)), float(np.nan_to_num(b_err))
    return Margin(a - factor * b, math.sqrt(a_err**2 + (factor * b_err) ** 2))


def closing(mid: Margin | None, end: Margin) -> str | None:
    """``gap closing: ...`` when the margin shrinks as the module docstring defines, else None
    (also None when the mid-training margin is unknown)."""
    if mid is None or not math.isfinite(mid.value):
        return None
    shrink = mid.value - end.value
    shrink_sigma = math.hypot(mid.sigma, end.sigma)
    if not shrink > CLOSING_Z * shrink_sigma:
        return None
    projected = end.value - shrink
    projected_sigma = math.sqrt(end.sigma**2 + shrink_sigma**2)
    if projected > CLOSING_Z * projected_sigma:
        return None
    what, unit = ("ln ratio", "") if end.log else ("margin", " mHa")
    return (f"gap closing: the {what} shrank from {mid.text()} at mid-training to {end.text()} at the end "
            f"({shrink / shrink_sigma:.1f} sigma); at that rate it would be {projected:+.2f} ± "
            f"{projected_sigma:.2f}{unit} after 40 % more training")


# ----------------------------------------------------------------------------- the budget


@dataclass(frozen=True)
class Budget:
    """What every compared trial ran: training ``iterations``, ``walkers`` (batch size) and the
    scale preset (None when unknown)."""

    iterations: int
    walkers: int | None  # None: the walkers are what the comparison varies
    scale: str | None = None

    def text(self) -> str:
        """``1000 iterations x 256 walkers (quick scale)``."""
        scale = f" ({self.scale} scale)" if self.scale else ""
        walkers = f" x {self.walkers} walkers" if self.walkers is not None else " (walkers varied)"
        return f"{self.iterations} iterations{walkers}{scale}"


def _int_or_none(value) -> int | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return int(value) if math.isfinite(value) else None


def trial_budget(row) -> tuple[int | None, int | None]:
    """(iterations, walkers) of one trial row: the iterations it completed (``iterations``, else
    ``iterations_planned``) and its ``batch_size``."""
    iterations = _int_or_none(row.get("iterations"))
    if iterations is None:
        iterations = _int_or_none(row.get("iterations_planned"))
    return iterations, _int_or_none(row.get("batch_size"))


def points_budget(points: pd.DataFrame, walkers_vary: bool = False) -> tuple[Budget | None, str | None]:
    """(the budget every point's trials share, None) or (None, why the points cannot be compared).

    ``points`` are seed-aggregated points with the ``budget_*`` columns of
    :func:`analysis.points.budget_facts` (NaN where a point's own trials differ). With
    ``walkers_vary`` (the batch-size comparison) only the iterations must agree."""
    if points.empty:
        return None, "no points to compare"
    groups: dict[tuple, list[str]] = {}
    for _, r in points.iterrows():
        its = _int_or_none(r.get("budget_iterations"))
        walkers = None if walkers_vary else _int_or_none(r.get("budget_walkers"))
        groups.setdefault((its, walkers), []).append(f"{r['series']} at {r['x_name']} {r['x']}")
    known = all(its is not None and (walkers_vary or walkers is not None) for its, walkers in groups)
    if len(groups) == 1 and known:
        (iterations, walkers), = groups
        scales = {str(v) for v in points.get("budget_scale", pd.Series(dtype=object)).dropna() if str(v)}
        return Budget(iterations, walkers, scales.pop() if len(scales) == 1 else None), None
    def budget_text(its: int | None, w: int | None) -> str:
        if its is None or (w is None and not walkers_vary):
            return "trials of mixed or unrecorded budgets"
        return f"{its} iterations" + ("" if walkers_vary else f" x {w} walkers")

    listed = "; ".join(f"{budget_text(its, w)} ({', '.join(names)})" for (its, w), names in groups.items())
    what = "unequal budgets" if len(groups) > 1 else "budget not recorded"
    return None, f"{what}: {listed}; trials of unequal or unknown budget are not compared"


def window_margin(a, b, window: str, factor: float = 1.0, log: bool = False) -> Margin | None:
    """The margin ``a - factor * b`` of two points (rows with ``{window}_mean``/``{window}_err``,
    mHa) in the training window ``mid`` or ``end``; with ``log`` the margin of the ratio,
    ``ln a - ln b - ln factor`` from the seeds' window errors (``{window}_values``, floored at their
    reblocked error as :meth:`analysis.inference.Sample.logged` does). None when either is not
    measured."""
    if log:
        sa, sb = Sample.from_row(a, window), Sample.from_row(b, window)
        if not (sa.n and sb.n):
            return None
        la, lb = sa.logged(), sb.logged()
        sigma = math.hypot(la.sem, lb.sem)
        return Margin(la.mean - lb.mean - math.log(factor), sigma if math.isfinite(sigma) else 0.0, log=True)
    a_mean, b_mean = a.get(f"{window}_mean"), b.get(f"{window}_mean")
    if a_mean is None or b_mean is None or not (math.isfinite(float(a_mean)) and math.isfinite(float(b_mean))):
        return None
    return margin(float(a_mean), float(a.get(f"{window}_err")), float(b_mean), float(b.get(f"{window}_err")), factor)


def stability_gate(pairs, log: bool = False) -> tuple[str | None, str]:
    """(failure, note) of the stability rule over the compared pairs.

    ``pairs``: (label, a, b, factor) for each comparison the claim makes (``a``/``b`` point rows):
    the failure is ``gap closing on ...`` or ``stability over training not measured on ...``; the
    note lists the margin at mid-training and at the end for each pair. With ``log`` the margin is
    the log ratio ``ln a - ln b - ln factor`` (both errors usually fall during training, so an
    absolute gap shrinks while the ratio holds: the ratio is what the claims test)."""
    closing_on, unmeasured, notes = [], [], []
    for label, a, b, factor in pairs:
        mid, end = window_margin(a, b, "mid", factor, log), window_margin(a, b, "end", factor, log)
        if mid is None or end is None:
            unmeasured.append(str(label))
            continue
        notes.append(f"{label} {mid.text()} -> {end.text()}")
        shrinking = closing(mid, end)
        if shrinking:
            closing_on.append(f"{label} ({shrinking})")
    failure = None
    if closing_on:
        failure = "; ".join(closing_on)
    elif unmeasured:
        failure = (f"stability over training not measured on {', '.join(unmeasured)} (each trial needs >= "
                   f"{int(MIN_WINDOW / (MID_WINDOW[1] - MID_WINDOW[0]))} training iterations in metrics.csv and a "
                   "reference energy)")
    what = "ln ratio" if log else "margin"
    note = (f"{what} at mid-training -> end of training (training-window energies): " + "; ".join(notes)) if notes else ""
    return failure, note
