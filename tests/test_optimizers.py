"""The optimiser seam: KFAC curvature blocks, the clipped VMC gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ablate import training
from ablate.config import compose, validate
from ablate.optimizers import clip_local_energy, kfac_blocks, learning_rate
from ablate.jax_setup import setup_jax


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
