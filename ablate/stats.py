"""Statistics of correlated Monte Carlo series: Flyvbjerg-Petersen reblocking.

Successive MCMC energies are correlated, so the naive standard error sigma/sqrt(N) is too
small. Averaging neighbouring pairs again and again (Flyvbjerg & Petersen, J. Chem. Phys.
91, 461 (1989)) makes the blocks independent once they are longer than the correlation
time; the block size is chosen by the criterion of Lee, Drummond & Needs (Phys. Rev. B 83,
245117 (2011)): the smallest block length B with B^3 > 2 N (s_B / s_1)^4.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Reblocked:
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


def reblock_levels(series) -> list[tuple[int, int, float]]:
    """(block size, number of blocks, standard error of the mean) at each blocking level."""
    x = np.asarray(series, dtype=np.float64)
    levels, size = [], 1
    while x.size >= 2:
        levels.append((size, x.size, float(np.std(x, ddof=1) / np.sqrt(x.size))))
        if x.size % 2:
            x = x[:-1]
        x = 0.5 * (x[0::2] + x[1::2])
        size *= 2
    return levels


def reblock(series) -> Reblocked:
    """Mean and reblocked standard error of a correlated series."""
    x = np.asarray(series, dtype=np.float64)
    if x.size == 0:
        raise ValueError("reblock needs at least one value")
    if x.size == 1:
        return Reblocked(float(x[0]), float("nan"), float("nan"), 1, 1)
    levels = reblock_levels(x)
    s1 = levels[0][2]
    chosen = levels[-1]
    for size, count, se in levels:
        if s1 == 0 or size**3 > 2 * x.size * (se / s1) ** 4:
            chosen = (size, count, se)
            break
    return Reblocked(float(x.mean()), chosen[2], s1, chosen[0], int(x.size))
