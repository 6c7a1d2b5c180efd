"""The optimiser seam: KFAC curvature blocks, the clipped VMC gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ablate.config.compose import compose
from ablate.config.experiment import validate
from ablate.runtime.jax_setup import setup_jax
from ablate.vmc import training
from ablate.vmc.optimizers import clip_local_energy, kfac_blocks, learning_rate


@pytest.mark.parametrize("network", ["ferminet", "slater_jastrow"])
def test_kfac_gives_every_dense_layer_a_kronecker_factored_block(network):
    cfg = compose(["system=LiH", f"network={network}", "pretrain=none", "logger=none",
                   "batch_size=16", "network.width=8", "precision=float64"])
    setup_jax(precision="float64")
    engine = training.build_engine(validate(cfg))
    state = training.init_optimizer(engine, training.initial_state(engine))
    blocks = kfac_blocks(engine.optimizer, state.params)
    dense = {k: v for k, v in blocks.items() if k.endswith("['w']") or k.endswith("['b']")}
    assert dense and set(dense.values()) == {"RepeatedDenseKroneckerFactored"}, blocks
    assert len(blocks) == len(jax.tree.leaves(state.params))


def test_vmc_gradient_matches_the_covariance_formula():
    """d<E>/dtheta (FermiNet convention, factor 2 dropped) = <(E_L - <E_L>) dlog|psi|/dtheta>."""
    cfg = compose(["system=He", "pretrain=none", "logger=none", "batch_size=64",
                   "network.width=8", "precision=float64", "optim.clip_width=1e6"])
    setup_jax(precision="float64")
    engine = training.build_engine(validate(cfg))
    state = training.initial_state(engine)
    params, walkers = state.params, state.walkers
    (value, aux), grad = jax.value_and_grad(engine.loss, has_aux=True)(params, state.key,
                                                                        walkers)
    log_abs = lambda p: jax.vmap(lambda x: engine.ansatz.apply(p, x)[1])(walkers)
    centred = aux.local_energy - jnp.mean(aux.local_energy)
    _, vjp = jax.vjp(log_abs, params)
    (expected,) = vjp(centred / walkers.shape[0])
    for a, b in zip(jax.tree.leaves(grad), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    assert float(value) == pytest.approx(float(jnp.mean(aux.local_energy)))


def test_clipping_and_schedule():
    e = jnp.asarray(np.append(np.random.default_rng(0).normal(size=999), 1e4))
    clipped = clip_local_energy(e, 5.0)
    assert float(clipped.max()) < 100.0                      # the outlier is pulled in
    np.testing.assert_array_equal(clipped[:999][jnp.abs(e[:999]) < 3], e[:999][jnp.abs(e[:999]) < 3])
    schedule = learning_rate(validate(compose([]), device_count=1).optim)
    assert float(schedule(0)) == pytest.approx(0.05)
    assert float(schedule(1000)) == pytest.approx(0.05 / 2)   # quick scale: lr_delay 1000


@pytest.mark.parametrize("norm_constraint, momentum", [(1e-5, 0.0), (1e-5, 0.5), (10.0, 0.5)])
def test_norm_constraint_as_an_argument_matches_kfac_jax_own(norm_constraint, momentum):
    """Our KFAC step takes the norm constraint c as an argument (kfac-jax's step with constraint
    1 and learning rate lr/sqrt(c), rescaled by sqrt(c)); kfac-jax with c built in must agree,
    with the constraint binding (small c) or not (large c), with momentum or without."""
    import kfac_jax

    from ablate.vmc.optimizers import make_curvature_function, schedule

    cfg = compose(["system=He", "pretrain=none", "logger=none", "batch_size=32", "network.width=8",
                   "network.depth=1", "precision=float64", f"optim.norm_constraint={norm_constraint}",
                   f"optim.momentum={momentum}", "optim.lr=0.2"])
    setup_jax(precision="float64")
    engine = training.build_engine(validate(cfg), reuse=False)
    state = training.initial_state(engine)
    hyper = engine.hyper
    theirs = kfac_jax.Optimizer(
        value_and_grad_func=jax.value_and_grad(engine.programs.loss, has_aux=True), l2_reg=0.0,
        norm_constraint=norm_constraint, value_func_has_aux=True, value_func_has_rng=True,
        value_func_for_estimator=make_curvature_function(engine.ansatz.apply),
        learning_rate_schedule=lambda t: schedule(t, hyper), curvature_ema=0.95,
        inverse_update_period=1, min_damping=1e-6, num_burnin_steps=0,
        estimation_mode="fisher_exact", multi_device=False)
    batch = (state.walkers, hyper.clip_width)
    start = jax.device_get(state.params)      # kfac-jax donates what it is given: copies each
    ours_p, theirs_p = jax.device_put(start), jax.device_put(start)
    ours_s = engine.optimizer.init(ours_p, state.key, state.walkers, hyper)
    theirs_s = theirs.init(theirs_p, state.key, batch)
    step = jax.jit(engine.optimizer.step)
    for i in range(4):
        key = jax.random.PRNGKey(10 + i)
        ours_p, ours_s, _, _ = step(ours_p, ours_s, state.walkers, key, i, hyper)
        theirs_p, theirs_s, _ = theirs.step(theirs_p, theirs_s, key, batch=batch,
                                            momentum=hyper.momentum, damping=hyper.damping)
        moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                                             ours_p, start))
        assert max(moved) > 0
        for a, b in zip(jax.tree.leaves(ours_p), jax.tree.leaves(theirs_p)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
