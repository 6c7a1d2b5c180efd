"""The VMC loss and one optimiser seam over kfac-jax and optax.

The energy E = <E_L> over walkers drawn from |psi|^2 has the gradient
2 <(E_L - E) d log|psi|>; we use the FermiNet convention of dropping the factor 2 (it is
absorbed into the learning rate, so the paper's lr = 0.05 means the same here) and clip
E_L to median +- clip_width * mean|E_L - median| inside the gradient only, so outliers near
nodes do not blow up the update. The loss is a `jax.custom_jvp` whose tangent is that
estimator; kfac-jax builds the Fisher of the wave function's log-amplitude from a separate
estimator function that registers log|psi| as a normal predictive distribution (so the
curvature never evaluates the local energy).

`make_optimizer(spec, loss, log_abs, dtype)` returns an `Optimizer(init, step)` for kfac or
adam. Every scalar a sweep tunes (learning rate and its schedule, damping, norm constraint,
momentum, clipping width) is a `Hyper` passed to ``step`` as an argument, never a constant
baked into the compiled program, so one compiled engine serves trials that differ only in
those. ``step`` maps (params, opt_state, walkers, key, iteration, hyper) ->
(params, opt_state, loss, aux) and is traceable: the trainer compiles it together with the
MCMC moves into one program.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import kfac_jax
import optax

from ablate.config.experiment import OptimConfig
from ablate.runtime.kfac_tracing import make_deterministic

make_deterministic()   # one traced KFAC step in every process: the compilation cache finds it


class LossAux(NamedTuple):
    local_energy: jnp.ndarray   # (batch,) Hartree, unclipped
    variance: jnp.ndarray       # Hartree^2


class Hyper(NamedTuple):
    """Scalar hyperparameters, passed to the compiled steps as (traced) arguments.

    Changing any of them between runs reuses the compiled engine. Units: learning rate and
    damping dimensionless, lr_delay in iterations, clip_width in mean absolute deviations.
    """

    lr: jnp.ndarray
    lr_delay: jnp.ndarray
    lr_decay: jnp.ndarray
    clip_width: jnp.ndarray
    damping: jnp.ndarray           # KFAC only (ignored by Adam)
    norm_constraint: jnp.ndarray   # KFAC only
    momentum: jnp.ndarray          # KFAC only


def hyper_of(cfg: OptimConfig, dtype=jnp.float32) -> Hyper:
    """The run's scalar hyperparameters as arrays of the parameters' dtype."""
    return Hyper(*(jnp.asarray(v, dtype) for v in (
        cfg.lr, cfg.lr_delay, cfg.lr_decay, cfg.clip_width, cfg.damping, cfg.norm_constraint,
        cfg.momentum)))


@dataclasses.dataclass(frozen=True)
class OptimSpec:
    """What of the optimiser shapes its compiled program (an engine cache key): everything
    else is a `Hyper`. ``cov_ema_decay`` and ``inverse_update_period`` are KFAC constructor
    constants; ``b1, b2, eps`` Adam's."""

    name: str
    cov_ema_decay: float = 0.95
    inverse_update_period: int = 1
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    @classmethod
    def of(cls, cfg: OptimConfig) -> "OptimSpec":
        return cls(cfg.name, cfg.cov_ema_decay, cfg.inverse_update_period, cfg.b1, cfg.b2, cfg.eps)


def clip_local_energy(e_local, clip_width):
    """Clips E_L to median +- clip_width * mean absolute deviation from the median."""
    median = jnp.median(e_local)
    spread = jnp.mean(jnp.abs(e_local - median))
    return jnp.clip(e_local, median - clip_width * spread, median + clip_width * spread)


def make_loss(apply: Callable, batch_e_local: Callable) -> Callable:
    """loss(params, key, (walkers, clip_width)) -> (mean E_L, LossAux), clipped VMC gradient.

    ``batch_e_local(params, walkers)``: the local energies of a batch (Hartree), e.g.
    `ablate.hamiltonian.local_energy.over_batch` of a one-walker E_L. The clipping width travels with the
    batch so that it is an argument of the compiled step.
    """
    batch_log_abs = jax.vmap(lambda p, x: apply(p, x)[1], in_axes=(None, 0))

    @jax.custom_jvp
    def loss(params, key, batch):
        del key
        energies = batch_e_local(params, batch[0])
        mean = jnp.mean(energies)
        return mean, LossAux(energies, jnp.mean((energies - mean) ** 2))

    @loss.defjvp
    def loss_jvp(primals, tangents):
        params, key, (walkers, clip_width) = primals
        value, aux = loss(params, key, (walkers, clip_width))
        clipped = clip_local_energy(aux.local_energy, clip_width)
        centred = clipped - jnp.mean(clipped)
        log_abs, log_abs_tangent = jax.jvp(
            batch_log_abs, (params, walkers), (tangents[0], tangents[2][0]))
        kfac_jax.register_normal_predictive_distribution(log_abs[:, None])
        value_tangent = jnp.mean(centred * log_abs_tangent)
        return (value, aux), (value_tangent, jax.tree.map(jnp.zeros_like, aux))

    return loss


def make_curvature_function(apply: Callable) -> Callable:
    """f(params, key, (walkers, clip_width)) whose only registered loss is log|psi| as a
    normal predictive distribution: what kfac-jax needs to estimate the Fisher, without the
    local energy (which does not enter the curvature)."""
    batch_log_abs = jax.vmap(lambda p, x: apply(p, x)[1], in_axes=(None, 0))

    def log_abs_loss(params, key, batch):
        del key
        log_abs = batch_log_abs(params, batch[0])
        kfac_jax.register_normal_predictive_distribution(log_abs[:, None])
        return jnp.mean(log_abs)

    return log_abs_loss


def schedule(t, hyper: Hyper):
    """lr / (1 + t/delay)^decay, the FermiNet schedule (t = iteration), in hyper.lr's dtype."""
    t = jnp.asarray(t).astype(hyper.lr.dtype)
    return hyper.lr * jnp.power(1.0 / (1.0 + t / hyper.lr_delay), hyper.lr_decay)


def learning_rate(cfg: OptimConfig, dtype=jnp.float32) -> Callable:
    """The schedule of a config as a function of the iteration (for plots and tests)."""
    hyper = hyper_of(cfg, dtype)
    return lambda t: schedule(t, hyper)


@dataclasses.dataclass(frozen=True)
class Optimizer:
    name: str
    init: Callable       # (params, key, walkers, hyper) -> opt_state
    step: Callable       # (params, opt_state, walkers, key, iteration, hyper) -> (params, state, loss, aux)
    backend: object = None  # the kfac_jax.Optimizer (kfac only)


# kfac-jax reads the step as a Python int only to decide burn-in (off), initial damping
# calibration and damping adaptation (off) and the curvature-update period (1); with the
# settings below every step traces to the same program whatever this number, so the step
# runs inside our compiled program without reading the device's counter back to the host.
# The inverse-update period is decided on the device from the optimiser state's own counter.
_KFAC_STATIC_STEP = 1


def make_kfac(spec: OptimSpec, loss: Callable, curvature: Callable, dtype) -> Optimizer:
    """KFAC (kfac-jax), the FermiNet settings: exact Fisher of log|psi|, norm constraint.

    kfac-jax takes the norm constraint c as a constructor constant; to make it an argument we
    use that the constrained update is scale-equivariant. kfac-jax's step with constraint 1
    and learning rate lr/s (s = sqrt(c)) proposes delta = min(lr/s, 1/sqrt(q)) F^-1 g
    (+ momentum * previous delta), q = g.F^-1.g; the update with constraint c is
    min(lr, sqrt(c/q)) F^-1 g = s * delta. We apply s * delta and keep kfac-jax's delta as the
    velocity, so momentum stays exact too (tests/test_optimizers.py checks it against
    kfac-jax's own constraint).
    """
    assert not isinstance(spec.inverse_update_period, bool)
    backend = kfac_jax.Optimizer(
        value_and_grad_func=jax.value_and_grad(loss, has_aux=True),
        l2_reg=0.0,
        norm_constraint=1.0,
        value_func_has_aux=True,
        value_func_has_rng=True,
        value_func_for_estimator=curvature,
        learning_rate_schedule=None,
        curvature_ema=spec.cov_ema_decay,
        curvature_update_period=1,
        inverse_update_period=spec.inverse_update_period,
        min_damping=1e-6,
        num_burnin_steps=0,
        estimation_mode="fisher_exact",
        multi_device=False,
    )

    def init(params, key, walkers, hyper: Hyper):
        return backend.init(params, key, (walkers, hyper.clip_width))

    def step(params, state, walkers, key, iteration, hyper: Hyper):
        scale = jnp.sqrt(hyper.norm_constraint)
        _, state, stats = backend.step(
            params, state, key, batch=(walkers, hyper.clip_width),
            learning_rate=schedule(iteration, hyper) / scale, momentum=hyper.momentum,
            damping=hyper.damping, global_step_int=_KFAC_STATIC_STEP)
        params = jax.tree.map(lambda p, d: p + scale * d, params, state.velocities)
        return params, state, stats["loss"], stats["aux"]

    return Optimizer("kfac", init, step, backend)


def make_adam(spec: OptimSpec, loss: Callable, curvature: Callable, dtype) -> Optimizer:
    """Adam (optax's scale_by_adam) times the schedule's learning rate."""
    del curvature
    tx = optax.scale_by_adam(b1=spec.b1, b2=spec.b2, eps=spec.eps)
    grad = jax.value_and_grad(loss, has_aux=True)

    def step(params, state, walkers, key, iteration, hyper: Hyper):
        (value, aux), grads = grad(params, key, (walkers, hyper.clip_width))
        updates, state = tx.update(grads, state, params)
        lr = schedule(iteration, hyper)
        return jax.tree.map(lambda p, u: p - lr * u, params, updates), state, value, aux

    return Optimizer("adam", lambda params, key, walkers, hyper: tx.init(params), step)


def kfac_blocks(optimizer: Optimizer, params) -> dict[str, str]:
    """Curvature block type per parameter path (after init), e.g. to check that every dense
    layer got a Kronecker-factored block rather than a generic diagonal one."""
    estimator = optimizer.backend._estimator
    names = [jax.tree_util.keystr(path) for path, _ in
             jax.tree_util.tree_flatten_with_path(params)[0]]
    return {names[i]: type(block).__name__
            for indices, block in estimator.indices_to_block_map.items() for i in indices}


MAKERS = {"kfac": make_kfac, "adam": make_adam}


def make_optimizer(spec: OptimSpec, loss: Callable, curvature: Callable,
                   dtype=jnp.float32) -> Optimizer:
    """The optimiser named by ``spec.name``: kfac (kfac-jax) or adam (optax)."""
    return MAKERS[spec.name](spec, loss, curvature, dtype)
