"""Statistics of training curves that only the engine computes (numpy).

The reblocked error bar, which the engine and the analysis share, is ``ablate.records.reblock``.
"""

from __future__ import annotations

import numpy as np


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
