"""Antisymmetry and shapes of the ansatzes (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ablate.config.compose import compose
from ablate.config.experiment import validate
from ablate.wavefunction.networks import ferminet_layout, logsumdet, make_ansatz, param_count

VARIANTS = [
    ["system=LiH"],
    ["system=Li", "network.full_det=false", "network.envelope=diagonal"],
    ["system=B", "network.envelope=full", "network.determinants=3"],
    ["system=H_chain", "network.hidden_dims=[[8,4],[8,4],[6,2]]"],
    ["system=LiH", "network=slater_jastrow"],
    ["system=Be", "network=slater_jastrow", "network.backflow=true", "network.full_det=true"],
    ["system=LiH", "network.distance_features=false"],
    ["system=B", "network.distance_features=false", "network.full_det=false"],
    ["system=Li", "network=slater_jastrow", "network.distance_features=false"],
]


def build(overrides):
    exp = validate(compose(["precision=float64", "network.width=8",
                            "network.pairwise_width=4"] + overrides))
    ansatz = make_ansatz(exp)
    return exp, ansatz, ansatz.init(jax.random.PRNGKey(0))


@pytest.fixture(scope="module", params=range(len(VARIANTS)), ids=lambda i: " ".join(VARIANTS[i]))
def network(request):
    exp, ansatz, params = build(VARIANTS[request.param])
    return exp, jax.jit(ansatz.apply), params


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), data=st.data())
def test_same_spin_swap_flips_sign_and_keeps_amplitude(network, seed, data):
    exp, apply, params = network
    n_up, n_down = exp.system.electrons
    groups = [g for g in (range(n_up), range(n_up, n_up + n_down)) if len(g) >= 2]
    if not groups:
        pytest.skip("no two electrons of the same spin")
    group = data.draw(st.sampled_from(groups))
    i, j = data.draw(st.lists(st.sampled_from(list(group)), min_size=2, max_size=2, unique=True))
    x = jnp.asarray(np.random.default_rng(seed).normal(size=(exp.system.n_electrons, 3)) * 1.5)
    perm = np.arange(exp.system.n_electrons)
    perm[[i, j]] = perm[[j, i]]
    s1, l1 = apply(params, x)
    s2, l2 = apply(params, x[perm])
    assert float(s1) == -float(s2)
    assert float(l1) == pytest.approx(float(l2), abs=1e-9)


def test_opposite_spin_swap_is_not_a_symmetry():
    exp, ansatz, params = build(["system=H2"])
    x = jnp.asarray([[0.3, -0.2, 0.5], [-0.4, 0.6, 1.2]])
    _, l1 = ansatz.apply(params, x)
    _, l2 = ansatz.apply(params, x[::-1])
    assert abs(float(l1) - float(l2)) > 1e-6


def test_logsumdet_matches_the_direct_sum():
    m = jnp.asarray(np.random.default_rng(3).normal(size=(5, 4, 4)))
    sign, log = logsumdet([m])
    assert float(sign * jnp.exp(log)) == pytest.approx(float(jnp.sum(jnp.linalg.det(m))))


def test_orbital_shapes_and_parameter_count_grow_with_width():
    exp, ansatz, params = build(["system=LiH", "network.determinants=2"])
    up, down = ansatz.orbitals(params, jnp.ones((4, 3)) * 0.1 + jnp.arange(12.).reshape(4, 3))
    assert up.shape == (2, 2, 4) and down.shape == (2, 2, 4)
    _, _, wider = build(["system=LiH", "network.determinants=2", "network.width=16"])
    assert param_count(wider) > param_count(params)


def test_without_distance_features_the_streams_take_the_vectors_only():
    # LiH: 2 atoms, both spins present. First layer input = own one-electron features,
    # their spin-up and spin-down means, and the spin-up and spin-down means of pair features.
    exp, ansatz, with_r = build(["system=LiH"])
    _, ansatz_v, vectors = build(["system=LiH", "network.distance_features=false"])
    first = lambda p: p["layers"][0]
    assert first(with_r)["one"]["w"].shape == (3 * 4 * 2 + 2 * 4, 8)
    assert first(vectors)["one"]["w"].shape == (3 * 3 * 2 + 2 * 3, 8)
    assert first(with_r)["two"]["w"].shape == (4, 4)
    assert first(vectors)["two"]["w"].shape == (3, 4)
    # everything after the inputs is the same shape
    rest = lambda p: [a.shape for a in jax.tree.leaves({**p, "layers": p["layers"][1:]})]
    assert rest(with_r) == rest(vectors)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)))
    sign, log = ansatz_v.apply(vectors, x)
    assert np.isfinite(float(log)) and float(sign) in (-1.0, 1.0)
    _, _, sj = build(["system=LiH", "network=slater_jastrow", "network.distance_features=false"])
    assert sj["layers"][0]["w"].shape == (3 * 2, 8)


def test_distance_features_must_be_a_boolean():
    from ablate.records.errors import ConfigError

    with pytest.raises(ConfigError, match="network.distance_features"):
        validate(compose(["network.distance_features=maybe"]))


@pytest.mark.parametrize("overrides", [v for v in VARIANTS if "network=slater_jastrow" not in v]
                         + [["system=H"], ["system=H2", "network.residual=false", "network.depth=3"]])
def test_the_layout_both_the_network_and_its_laplacian_read_describes_the_parameters(overrides):
    """`ferminet_layout` (read by ablate.hamiltonian.ferminet_laplacian) has every parameter's shape."""
    exp, _, params = build(overrides)
    net = exp.network
    layout = ferminet_layout(exp.system, net, net.layers, net.distance_features)
    assert len(layout.layers) == len(params["layers"])
    widths = layout.features.width * layout.n_atoms, layout.features.width
    for layer, layer_params in zip(layout.layers, params["layers"]):
        one, two = layer.params(layer_params)
        assert (layer.mixed.one, layer.mixed.pair) == widths
        assert one["w"].shape == (layer.mixed.width, layer.one)
        assert (two is None) == (layer.two is None) == ("two" not in layer_params)
        if two is not None:
            assert two["w"].shape == (layer.mixed.pair, layer.two)
        assert layer.residual_one == (net.residual and layer.one == widths[0])
        widths = layer.one, layer.two
    K = layout.orbitals.determinants
    for spin in layout.orbitals.spins:
        orbital, envelope = spin.orbital_params(params)
        assert orbital["w"].shape == (layout.output_width, K * spin.columns)
        assert envelope["pi"].shape == (layout.n_atoms, K * spin.columns)
    assert [s.size for s in layout.orbitals.occupied] == [e for e in exp.system.electrons if e > 0]


@pytest.mark.parametrize("overrides", VARIANTS[:3] + [["system=LiH", "network=psiformer"],
                                                      ["system=Be", "network=slater_jastrow"]],
                         ids=lambda o: " ".join(o))
def test_values_for_the_sampler_equal_apply_without_a_lapack_call(overrides):
    """Ansatz.values (small_det's determinants) gives apply's sign and log|psi| to rounding,
    and the Metropolis-Hastings program built on it holds no LU custom call."""
    from ablate.vmc import mcmc

    if "network=psiformer" in overrides:
        exp = validate(compose(["precision=float64", "network.num_heads=2", "network.heads_dim=4"]
                               + overrides))
        ansatz = make_ansatz(exp)
        params = ansatz.init(jax.random.PRNGKey(0))
    else:
        exp, ansatz, params = build(overrides)
    n = sum(exp.system.electrons)
    x = jax.random.normal(jax.random.PRNGKey(3), (16, n, 3))
    s_ref, l_ref = jax.vmap(ansatz.apply, in_axes=(None, 0))(params, x)
    s, l = jax.jit(jax.vmap(ansatz.values, in_axes=(None, 0)))(params, x)
    np.testing.assert_array_equal(np.asarray(s), np.asarray(s_ref))
    np.testing.assert_allclose(np.asarray(l), np.asarray(l_ref), rtol=1e-11, atol=1e-11)
    sample = mcmc.make_mcmc(ansatz.apply, steps=2, values=ansatz.values)
    hlo = jax.jit(sample).lower(params, x, jax.random.PRNGKey(0), 0.2).as_text()
    assert "getrf" not in hlo
    plain = jax.jit(mcmc.make_mcmc(ansatz.apply, steps=2)).lower(params, x, jax.random.PRNGKey(0), 0.2)
    assert "getrf" in plain.as_text()         # the check can fail: LAPACK's LU is named so
