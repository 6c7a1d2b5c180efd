"""The VMC loss and one optimiser seam over kfac-jax and optax.

The energy E = <E_L> over walkers drawn from |psi|^2 has the gradient
2 <(E_L - E) d log|psi|>; we use the FermiNet convention of dropping the factor 2 (it is
absorbed into the learning rate, so the paper's lr = 0.05 means the same here) and clip
E_L to median +- clip_width * mean|E_L - median| inside the gradient only, so outliers near
nodes do not blow up the update. The loss is a `jax.custom_jvp` whose tangent is that
estimator; its jvp rule registers log|psi| as a normal predictive distribution, so kfac-jax
builds the Fisher of the wave function's log-amplitude.

`make_optimizer(cfg, loss, ...)` returns an `Optimizer(init, step)` for kfac or adam; ``step``
maps (params, opt_state, walkers, key, iteration) -> (params, opt_state, loss, aux).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import kfac_jax
import optax

from ablate.config import OptimConfig


class LossAux(NamedTuple):
    local_energy: jnp.ndarray   # (batch,) Hartree, unclipped
    variance: jnp.ndarray       # Hartree^2


def clip_local_energy(e_local, clip_width: float):
    """Clips E_L to median +- clip_width * mean absolute deviation from the median."""
    median = jnp.median(e_local)
    spread = jnp.mean(jnp.abs(e_local - median))
    return jnp.clip(e_local, median - clip_width * spread, median + clip_width * spread)


def make_loss(apply: Callable, e_local: Callable, clip_width: float) -> Callable:
    """loss(params, key, walkers) -> (mean E_L, LossAux) with the clipped VMC gradient."""
    batch_e_local = jax.vmap(e_local, in_axes=(None, 0))
    batch_log_abs = jax.vmap(lambda p, x: apply(p, x)[1], in_axes=(None, 0))

    @jax.custom_jvp
    def loss(params, key, walkers):
        del key
        energies = batch_e_local(params, walkers)
        mean = jnp.mean(energies)
        return mean, LossAux(energies, jnp.mean((energies - mean) ** 2))

    @loss.defjvp
    def loss_jvp(primals, tangents):
        params, key, walkers = primals
        value, aux = loss(params, key, walkers)
        clipped = clip_local_energy(aux.local_energy, clip_width)
        centred = clipped - jnp.mean(clipped)
        log_abs, log_abs_tangent = jax.jvp(
            batch_log_abs, (params, walkers), (tangents[0], tangents[2]))
        kfac_jax.register_normal_predictive_distribution(log_abs[:, None])
        value_tangent = jnp.mean(centred * log_abs_tangent)
        return (value, aux), (value_tangent, jax.tree.map(jnp.zeros_like, aux))

    return loss


def learning_rate(cfg: OptimConfig, dtype=jnp.float32) -> Callable:
    """lr / (1 + t/delay)^decay, the FermiNet schedule (t = iteration), in `dtype`."""
    lr, delay, decay = cfg.lr, cfg.lr_delay, cfg.lr_decay

    def schedule(t):
        t = jnp.asarray(t).astype(dtype)
        return (lr * jnp.power(1.0 / (1.0 + t / delay), decay)).astype(dtype)
    return schedule


@dataclasses.dataclass(frozen=True)
class Optimizer:
    name: str
    init: Callable       # (params, key, walkers) -> opt_state
    step: Callable       # (params, opt_state, walkers, key, iteration) -> (params, state, loss, aux)
    schedule: Callable   # iteration -> learning rate
    backend: object = None  # the kfac_jax.Optimizer (kfac only)


def make_kfac(cfg: OptimConfig, loss: Callable, dtype) -> Optimizer:
    schedule = learning_rate(cfg, dtype)
    optimizer = kfac_jax.Optimizer(
        value_and_grad_func=jax.value_and_grad(loss, has_aux=True),
        l2_reg=0.0,
        norm_constraint=cfg.norm_constraint,
        value_func_has_aux=True,
        value_func_has_rng=True,
        learning_rate_schedule=schedule,
        curvature_ema=cfg.cov_ema_decay,
        inverse_update_period=1,
        min_damping=1e-6,
        num_burnin_steps=0,
        estimation_mode="fisher_exact",
        multi_device=False,
    )
    momentum = jnp.asarray(cfg.momentum, dtype)
    damping = jnp.asarray(cfg.damping, dtype)

    def init(params, key, walkers):
        return optimizer.init(params, key, walkers)

    def step(params, state, walkers, key, iteration):
        params, state, stats = optimizer.step(
            params, state, key, batch=walkers, momentum=momentum, damping=damping)
        return params, state, stats["loss"], stats["aux"]

    return Optimizer("kfac", init, step, schedule, optimizer)


def make_adam(cfg: OptimConfig, loss: Callable, dtype) -> Optimizer:
    schedule = learning_rate(cfg, dtype)
    tx = optax.adam(learning_rate=schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
    grad = jax.value_and_grad(loss, has_aux=True)

    @jax.jit
    def step(params, state, walkers, key, iteration):
        (value, aux), grads = grad(params, key, walkers)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value, aux

    return Optimizer("adam", lambda params, key, walkers: tx.init(params), step, schedule)


def kfac_blocks(optimizer: Optimizer, params) -> dict[str, str]:
    """Curvature block type per parameter path (after init), e.g. to check that every dense
    layer got a Kronecker-factored block rather than a generic diagonal one."""
    estimator = optimizer.backend._estimator
    names = [jax.tree_util.keystr(path) for path, _ in
             jax.tree_util.tree_flatten_with_path(params)[0]]
    return {names[i]: type(block).__name__
            for indices, block in estimator.indices_to_block_map.items() for i in indices}


MAKERS = {"kfac": make_kfac, "adam": make_adam}


def make_optimizer(cfg: OptimConfig, loss: Callable, dtype=jnp.float32) -> Optimizer:
    """The optimiser named by ``optim.name``: kfac (kfac-jax) or adam (optax); scalars in
    `dtype` (the parameters' precision)."""
    return MAKERS[cfg.name](cfg, loss, dtype)
