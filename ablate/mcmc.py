"""Metropolis-Hastings sampling of |psi|^2 with Gaussian all-electron moves.

Walkers have shape (batch, n_electrons, 3) in bohr. `make_sampler` returns a pure
``sample(params, walkers, key, width) -> (walkers, pmove)`` doing ``steps`` moves per call;
`adapt_width` is the pure rule that steers the move width toward a target acceptance.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


def _share(n: int, weights: np.ndarray) -> np.ndarray:
    """Splits n items over bins in proportion to weights (largest remainder)."""
    exact = weights * n / weights.sum()
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    return counts


def electron_sites(system) -> np.ndarray:
    """Index of the nucleus each electron starts at (spin-up electrons first).

    Electrons are shared over the nuclei in proportion to their charge, then paired on each
    nucleus; unpaired ones are spin up until the system's n_up is reached.
    """
    n_up, n_down = system.electrons
    counts = _share(n_up + n_down, np.asarray(system.charges, dtype=float))
    up, down = counts // 2, counts // 2
    need = n_up - up.sum()
    for a in np.flatnonzero(counts % 2):
        if need > 0:
            up[a], need = up[a] + 1, need - 1
        else:
            down[a] += 1
    for a in np.argsort(-down, kind="stable"):      # high spin: turn pairs up
        flip = min(need, down[a])
        up[a], down[a], need = up[a] + flip, down[a] - flip, need - flip
    sites = np.concatenate([np.repeat(np.arange(len(counts)), up),
                            np.repeat(np.arange(len(counts)), down)])
    return sites.astype(int)


def init_walkers(key, system, batch: int, width: float = 1.0, dtype=jnp.float32):
    """Walkers (batch, n, 3) in Gaussian clouds of std `width` bohr around their nuclei."""
    centres = jnp.asarray(system.positions[electron_sites(system)], dtype)
    noise = jax.random.normal(key, (batch, system.n_electrons, 3), dtype)
    return centres[None] + width * noise


def make_mh_step(apply: Callable) -> tuple[Callable, Callable]:
    """One Metropolis-Hastings move of every walker, and the batched log|psi| it needs.

    Returns ``(mh_step, log_abs)``: ``mh_step(params, x, logp, key, width) -> (x, logp,
    accepted fraction, key)`` with ``logp = log_abs(params, x)`` of shape (batch,); the proposal
    is x' = x + width * N(0, 1) for all electrons at once, accepted with probability
    min(1, |psi(x')|^2 / |psi(x)|^2). `make_sampler` loops it; ablate.cost compiles it alone
    (XLA counts a loop body once).
    """
    log_abs = jax.vmap(lambda p, x: apply(p, x)[1], in_axes=(None, 0))

    def mh_step(params, x, logp, key, width):
        key, kmove, kacc = jax.random.split(key, 3)
        proposal = x + width * jax.random.normal(kmove, x.shape, x.dtype)
        logp_new = log_abs(params, proposal)
        log_u = jnp.log(jax.random.uniform(kacc, logp.shape, x.dtype))
        accept = log_u < 2.0 * (logp_new - logp)
        x = jnp.where(accept[:, None, None], proposal, x)
        logp = jnp.where(accept, logp_new, logp)
        return x, logp, jnp.mean(accept.astype(x.dtype)), key

    return mh_step, log_abs


def make_sampler(apply: Callable, steps: int) -> Callable:
    """Returns sample(params, walkers, key, width) -> (walkers, acceptance in [0, 1]).

    `apply(params, x)` gives (sign, log|psi|) for one walker; each of the ``steps`` moves is
    `make_mh_step`'s all-electron Gaussian proposal with the Metropolis acceptance.
    """
    mh_step, log_abs = make_mh_step(apply)

    def sample(params, walkers, key, width):
        def one_step(i, carry):
            x, logp, accepted, key = carry
            x, logp, accepted_now, key = mh_step(params, x, logp, key, width)
            return x, logp, accepted + accepted_now, key

        init = (walkers, log_abs(params, walkers), jnp.zeros((), walkers.dtype), key)
        walkers, _, accepted, _ = jax.lax.fori_loop(0, steps, one_step, init)
        return walkers, accepted / steps

    return sample


def adapt_width(width, pmove, target: float = 0.5, rate: float = 0.5,
                lower: float = 1e-3, upper: float = 10.0):
    """Multiplicative move-width update toward the target acceptance (bohr, pure)."""
    return jnp.clip(width * jnp.exp(rate * (pmove - target)), lower, upper)
