"""Sampling |psi|^2: Metropolis-Hastings (Gaussian moves) or Hamiltonian Monte Carlo.

Walkers have shape (batch, n_electrons, 3) in bohr. `make_sampler` (MH, all-electron or
one-electron moves) and `make_hmc_sampler` (leapfrog on log|psi|^2) return a pure
``sample(params, walkers, key, width) -> (walkers, pmove)`` doing ``steps`` steps per call,
where width is the MH proposal std or the HMC step size (bohr); `make_mcmc` picks one by
name. `adapt_width` is the pure rule that steers that width toward a target acceptance, for
either sampler.
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


METHODS = ("mh", "hmc")
MOVES = ("all", "one")


def _check_walkers(walkers) -> None:
    """Walkers must be (batch, n_electrons, 3), bohr (checked once, at trace time)."""
    if walkers.ndim != 3 or walkers.shape[-1] != 3:
        raise ValueError(f"walkers must have shape (batch, n_electrons, 3); got {walkers.shape}")


def _check_moves(moves: str) -> None:
    if moves not in MOVES:
        raise ValueError(f"moves={moves!r}: allowed: {', '.join(MOVES)}")


def _electron_masks(n: int, moves: str, dtype):
    """Rows of (n_moves, n, 1): which electrons one move changes (all at once, or one each)."""
    if moves == "all":
        return jnp.ones((1, n, 1), dtype)
    return jnp.eye(n, dtype=dtype)[:, :, None]


def _accept(key, log_ratio, log_new, log_old):
    """Metropolis test per walker: accept with probability min(1, exp(log_ratio)).

    A proposal whose log|psi| (or Hamiltonian) is not finite is always rejected; a walker
    whose current value is not finite accepts any finite proposal (it leaves a node).
    """
    log_u = jnp.log(jax.random.uniform(key, log_ratio.shape, log_ratio.dtype))
    ok_new = jnp.isfinite(log_new)
    return ok_new & ((log_u < log_ratio) | ~jnp.isfinite(log_old))


def _mh_move(log_abs: Callable, params, x, logp, key, width, mask):
    """One Metropolis-Hastings move of every walker: x' = x + mask * width * N(0, 1) (mask picks
    the electrons that move), accepted per walker; returns (x, logp, key, accepted fraction)."""
    key, kmove, kacc = jax.random.split(key, 3)
    proposal = x + mask * (width * jax.random.normal(kmove, x.shape, x.dtype))
    logp_new = log_abs(params, proposal)
    accept = _accept(kacc, 2.0 * (logp_new - logp), logp_new, logp)
    x = jnp.where(accept[:, None, None], proposal, x)
    logp = jnp.where(accept, logp_new, logp)
    return x, logp, key, jnp.mean(accept.astype(x.dtype))


def make_mh_step(apply: Callable) -> tuple[Callable, Callable]:
    """One all-electron Metropolis-Hastings move of every walker, and the batched log|psi|.

    Returns ``(mh_step, log_abs)``: ``mh_step(params, x, logp, key, width) -> (x, logp,
    accepted fraction, key)``, the very move `make_sampler(moves="all")` loops (same code, same
    random numbers). ablate.vmc.cost compiles it alone: XLA counts a loop body once.
    """
    log_abs = jax.vmap(lambda p, x: apply(p, x)[1], in_axes=(None, 0))

    def mh_step(params, x, logp, key, width):
        mask = _electron_masks(x.shape[1], "all", x.dtype)[0]
        x, logp, key, accepted = _mh_move(log_abs, params, x, logp, key, width, mask)
        return x, logp, accepted, key

    return mh_step, log_abs


def make_sampler(apply: Callable, steps: int, moves: str = "all") -> Callable:
    """Metropolis-Hastings: sample(params, walkers, key, width) -> (walkers, acceptance).

    `apply(params, x)` gives (sign, log|psi|) for one walker x of shape (n, 3), bohr; walkers
    are (batch, n, 3). Each of the `steps` steps proposes
      moves="all": x' = x + width * N(0, 1) for all electrons at once, one test per walker;
      moves="one": for each electron i in turn (0 .. n-1), x_i' = x_i + width * N(0, 1) with
        the others fixed, accepted or rejected on its own (Metropolis-within-Gibbs). log|psi|
        is recomputed by a full network evaluation per electron move (no low-rank
        determinant update), so one step costs n network evaluations instead of one.
    Acceptance probability min(1, |psi(x')|^2 / |psi(x)|^2); a non-finite log|psi(x')| is
    rejected. The returned acceptance is the mean over walkers and moves, i.e. per electron
    move for moves="one". `width` is the Gaussian proposal std in bohr.
    """
    _check_moves(moves)
    log_abs = jax.vmap(lambda p, x: apply(p, x)[1], in_axes=(None, 0))

    def sample(params, walkers, key, width):
        _check_walkers(walkers)
        masks = _electron_masks(walkers.shape[1], moves, walkers.dtype)

        def one_move(carry, mask):
            x, logp, key = carry
            x, logp, key, accepted = _mh_move(log_abs, params, x, logp, key, width, mask)
            return (x, logp, key), accepted

        def one_step(i, carry):
            x, logp, accepted, key = carry
            (x, logp, key), acc = jax.lax.scan(one_move, (x, logp, key), masks)
            return x, logp, accepted + jnp.mean(acc), key

        init = (walkers, log_abs(params, walkers), jnp.zeros((), walkers.dtype), key)
        walkers, _, accepted, _ = jax.lax.fori_loop(0, steps, one_step, init)
        return walkers, accepted / steps

    return sample


def make_hmc_sampler(apply: Callable, steps: int, path_length: int,
                     moves: str = "all") -> Callable:
    """Hamiltonian Monte Carlo on |psi|^2: sample(params, walkers, key, step_size) ->
    (walkers, acceptance).

    Potential U(x) = -2 log|psi(x)| (its gradient by `jax.grad`), unit masses, momenta
    p ~ N(0, 1) per coordinate. Each of the `steps` steps runs `path_length` leapfrog
    (velocity Verlet) steps  p -= eps/2 grad U; x += eps p; p -= eps/2 grad U  of step size
    eps = `step_size` (bohr per unit momentum, so bohr for the displacement of one step), then
    accepts the end point with probability min(1, exp(H(x, p) - H(x', p'))),
    H = U + |p|^2 / 2. A non-finite H at the end point is rejected.
    moves="one" runs the same trajectory on one electron's coordinates at a time (the others'
    momenta are zero), all electrons in turn, each accepted on its own; every leapfrog step
    still evaluates the full network and its gradient. One step costs path_length gradient
    evaluations per move. The acceptance is the mean over walkers and moves.
    """
    _check_moves(moves)
    if path_length < 1:
        raise ValueError(f"path_length={path_length}: must be >= 1")

    def potential(params, x):
        return -2.0 * apply(params, x)[1]

    u_and_grad = jax.vmap(jax.value_and_grad(potential, argnums=1), in_axes=(None, 0))

    def sample(params, walkers, key, step_size):
        _check_walkers(walkers)
        masks = _electron_masks(walkers.shape[1], moves, walkers.dtype)

        def leapfrog(_, state):
            x, p, u, g, mask = state
            g = jnp.where(mask > 0, g, 0.0)       # frozen electrons: no force (0 * inf is nan)
            p = p - 0.5 * step_size * g
            x = x + step_size * p
            u, g = u_and_grad(params, x)
            p = p - 0.5 * step_size * jnp.where(mask > 0, g, 0.0)
            return x, p, u, g, mask

        def one_move(carry, mask):
            x, u, g, key = carry
            key, kmom, kacc = jax.random.split(key, 3)
            p = mask * jax.random.normal(kmom, x.shape, x.dtype)
            h_old = u + 0.5 * jnp.sum(p**2, axis=(1, 2))
            x_new, p_new, u_new, g_new, _ = jax.lax.fori_loop(
                0, path_length, leapfrog, (x, p, u, g, mask))
            h_new = u_new + 0.5 * jnp.sum(p_new**2, axis=(1, 2))
            accept = _accept(kacc, h_old - h_new, h_new, h_old)
            x = jnp.where(accept[:, None, None], x_new, x)
            u = jnp.where(accept, u_new, u)
            g = jnp.where(accept[:, None, None], g_new, g)
            return (x, u, g, key), jnp.mean(accept.astype(x.dtype))

        def one_step(i, carry):
            x, u, g, accepted, key = carry
            (x, u, g, key), acc = jax.lax.scan(one_move, (x, u, g, key), masks)
            return x, u, g, accepted + jnp.mean(acc), key

        u, g = u_and_grad(params, walkers)
        init = (walkers, u, g, jnp.zeros((), walkers.dtype), key)
        walkers, _, _, accepted, _ = jax.lax.fori_loop(0, steps, one_step, init)
        return walkers, accepted / steps

    return sample


def make_mcmc(apply: Callable, *, method: str = "mh", steps: int, moves: str = "all",
              path_length: int = 10, values: Callable | None = None) -> Callable:
    """The sampler named by `method` ("mh" or "hmc"); same signature either way:
    sample(params, walkers, key, width) -> (walkers, acceptance), where width is the MH
    proposal std or the HMC leapfrog step size (bohr). `path_length` is used by HMC only.
    `values` (default `apply`): the same (sign, log|psi|) for Metropolis-Hastings, which
    differentiates nothing (an `Ansatz.values`); HMC needs gradients and uses `apply`."""
    if method == "mh":
        return make_sampler(values or apply, steps, moves)
    if method == "hmc":
        return make_hmc_sampler(apply, steps, path_length, moves)
    raise ValueError(f"method={method!r}: allowed: {', '.join(METHODS)}")


def adapt_width(width, pmove, target: float = 0.5, rate: float = 0.5,
                lower: float = 1e-3, upper: float = 10.0):
    """Multiplicative update of the MH move width or HMC step size (bohr) toward the target
    acceptance: larger when moves are accepted more often than the target (pure)."""
    return jnp.clip(width * jnp.exp(rate * (pmove - target)), lower, upper)
