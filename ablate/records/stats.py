"""Statistics of energy series: the reblocked error bar and the spike count of a training run.

:func:`reblock` defines ``energy_stderr``: the engine writes it and the analysis recomputes it
on training tails, so both use this one estimator. It is plain Python (no numpy), so it runs
wherever the records are read; :func:`count_spikes` (numpy) only the engine calls.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable

import numpy as np

# Successive MCMC energies are correlated, so the naive standard error sigma/sqrt(N) is too small.
# Averaging neighbouring pairs again and again (Flyvbjerg & Petersen, J. Chem. Phys. 91, 461
# (1989)) makes the blocks independent once they are longer than the correlation time; the block
# length is chosen by the criterion of Lee, Drummond & Needs (Phys. Rev. B 83, 245117 (2011)):
# the smallest block length B with B^3 > 2 N (s_B / s_1)^4. Plain Python: a few thousand
# energies take milliseconds.


@dataclasses.dataclass(frozen=True)
class Reblocked:
    """Mean and error bars of a correlated series (units of the series)."""

    mean: float
    stderr: float          # standard error of the mean at the chosen block length
    naive_stderr: float    # sigma / sqrt(N), ignoring correlation
    block_size: int
    n: int

    @property
    def autocorrelation_time(self) -> float:
        """Integrated autocorrelation time (in samples) implied by the two error bars."""
        if self.naive_stderr == 0:
            return 1.0
        return float((self.stderr / self.naive_stderr) ** 2)


def _stderr(x: list[float]) -> float:
    mean = math.fsum(x) / len(x)
    var = math.fsum((v - mean) ** 2 for v in x) / (len(x) - 1)
    return math.sqrt(var / len(x))


def reblock_levels(series: Iterable[float]) -> list[tuple[int, int, float]]:
    """(block size, number of blocks, standard error of the mean) at each blocking level."""
    x = [float(v) for v in series]
    levels, size = [], 1
    while len(x) >= 2:
        levels.append((size, len(x), _stderr(x)))
        if len(x) % 2:
            x = x[:-1]
        x = [0.5 * (x[i] + x[i + 1]) for i in range(0, len(x), 2)]
        size *= 2
    return levels


def reblock(series: Iterable[float]) -> Reblocked:
    """Mean and reblocked standard error of a correlated series."""
    x = [float(v) for v in series]
    if not x:
        raise ValueError("reblock needs at least one value")
    if len(x) == 1:
        return Reblocked(x[0], math.nan, math.nan, 1, 1)
    levels = reblock_levels(x)
    s1 = levels[0][2]
    chosen = levels[-1]
    for size, count, se in levels:
        if s1 == 0 or size**3 > 2 * len(x) * (se / s1) ** 4:
            chosen = (size, count, se)
            break
    return Reblocked(math.fsum(x) / len(x), chosen[2], s1, chosen[0], len(x))


def count_spikes(energies, window: int = 100, n_mads: float = 10.0, min_history: int = 10) -> int:
    """Number of iterations whose energy (Hartree) exceeds the running median by more than
    `n_mads` running MADs: spikes of a training run.

    The running median and MAD (median absolute deviation from that median, unscaled) at
    iteration t are those of the finite energies among the `window` iterations before t
    (fewer at the start; iterations with fewer than `min_history` finite predecessors are not
    tested). Only upward excursions count: a falling energy is what training does. A
    non-finite energy counts as a spike. Returns 0 for an empty series.
    """
    if window < 1 or min_history < 1 or not n_mads > 0:
        raise ValueError(f"count_spikes: window={window}, min_history={min_history} and "
                         f"n_mads={n_mads} must be positive")
    e = np.asarray(energies, dtype=np.float64).ravel()
    finite = np.isfinite(e)
    spikes = int(np.sum(~finite))
    if e.size < 2:
        return spikes
    # history[t] = the `window` energies before t, NaN-padded at the start and where not finite
    padded = np.concatenate([np.full(window, np.nan), np.where(finite, e, np.nan)])
    history = np.lib.stride_tricks.sliding_window_view(padded[:-1], window)   # (n, window)
    count = np.sum(~np.isnan(history), axis=1)
    for rows, median_of in ((np.flatnonzero(finite & (count == window)), np.median),   # fast path
                            (np.flatnonzero(finite & (count >= min_history) & (count < window)),
                             np.nanmedian)):
        for chunk in np.array_split(rows, max(1, rows.size // 20000)):  # bounded memory
            h = history[chunk]
            median = median_of(h, axis=1)
            mad = median_of(np.abs(h - median[:, None]), axis=1)
            spikes += int(np.sum(e[chunk] - median > n_mads * mad))
    return spikes
