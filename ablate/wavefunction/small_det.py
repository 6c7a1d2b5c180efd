"""sign and log|det| of many small matrices, without a LAPACK call per batch.

XLA:CPU runs ``jnp.linalg.slogdet`` as one batched LAPACK ``getrf`` custom call. For the
4 x 4 blocks of a small atom (LiH at quick scale: 256 walkers x 4 determinants) that call
costs ~0.15-0.19 ms however few flops it does, and a Metropolis-Hastings step makes one.
`slogdet` below is Gaussian elimination with partial pivoting (the algorithm getrf runs),
written out for the static size n as fused elementwise XLA operations over the batch.

It is meant for values only (the sampler's log|psi|): it is differentiable, but its
derivatives are those of the elimination, not the closed form; training keeps
``jnp.linalg.slogdet`` and its rules (and folx's). Results agree with LAPACK's to rounding
(tests/test_small_det.py); a singular matrix gives sign 0 and log|det| = -inf like LAPACK's.
"""

from __future__ import annotations

import jax.numpy as jnp

# `python benchmarks/small_det.py` (jit, 512 float32 matrices: the quick network's 128 walkers x 4
# determinants; 2-core AMD EPYC, 2026-12-08, benchmarks/results/small_det-2026-12-08.json), median
# ms of this elimination against one batched LAPACK call: n=4 0.083/0.258, 8 0.261/0.555,
# 10 0.586/0.736, 12 0.956/1.071, 14 1.093/1.506, 16 1.002/1.939, 20 1.314/2.499. It is used up to
# 16: Ne's 10 x 10 and N2's 14 x 14 full determinants (one per Metropolis-Hastings move) included;
# the tests compare it with LAPACK at every size up to 16.
MAX_UNROLLED = 16


def slogdet(a):
    """(sign, log|det a|) over the last two axes of ``a`` (..., n, n); LAPACK above MAX_UNROLLED."""
    if a.shape[-1] > MAX_UNROLLED or not jnp.issubdtype(a.dtype, jnp.floating):
        return jnp.linalg.slogdet(a)
    return eliminate(a)


def eliminate(a):
    """(sign, log|det a|) by the elimination written out, at any size n (floating ``a``, (..., n, n));
    `slogdet` calls it up to MAX_UNROLLED, benchmarks/small_det.py at every size it times."""
    n = a.shape[-1]
    batch = a.shape[:-2]
    sign = jnp.ones(batch, a.dtype)
    logdet = jnp.zeros(batch, a.dtype)
    s = a                                          # the trailing (m, m) block still to eliminate
    for m in range(n, 0, -1):
        if m > 1:
            p = jnp.argmax(jnp.abs(s[..., :, 0]), axis=-1)                  # pivot row
            at_p = (jnp.arange(m) == p[..., None])[..., None]              # (..., m, 1)
            pivot_row = jnp.sum(jnp.where(at_p, s, 0.0), axis=-2)           # (..., m)
            sign = jnp.where(p != 0, -sign, sign)                          # one row swap
            # rows 1..m-1 after the swap: row p takes row 0's place, the pivot row leaves
            rest = jnp.where(at_p, s[..., :1, :], s)[..., 1:, :]           # (..., m-1, m)
        else:
            pivot_row = s[..., 0, :]
        pivot = pivot_row[..., 0]
        sign = sign * jnp.sign(pivot)
        logdet = logdet + jnp.log(jnp.abs(pivot))
        if m > 1:
            # a zero pivot means a zero column: the factors are 0 and log|det| is already -inf
            safe = jnp.where(pivot == 0, jnp.ones_like(pivot), pivot)
            factors = rest[..., :, :1] / safe[..., None, None]             # (..., m-1, 1)
            s = rest[..., :, 1:] - factors * pivot_row[..., None, 1:]
    return sign, logdet
