"""Local energies of known wave functions; agreement of the two Laplacians (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ablate.config.compose import compose
from ablate.config.experiment import validate
from ablate.config.systems import build_system
from ablate.hamiltonian.local_energy import local_energy, potential_energy
from ablate.wavefunction.networks import make_ansatz


def atom(name):
    return build_system({"name": name, "atoms": None, "units": "bohr", "charge": 0,
                         "spin": None, "bond_length": None, "n_atoms": None})


@pytest.mark.parametrize("method", ["forward", "hessian"])
def test_hydrogen_1s_is_an_eigenstate(method):
    e_l = jax.jit(local_energy(lambda p, x: (1.0, -jnp.linalg.norm(x[0])), atom("H"), method,
                               jnp.float64))
    points = np.random.default_rng(0).normal(size=(20, 1, 3)) * 2
    energies = [float(e_l(None, jnp.asarray(x))) for x in points]
    assert np.allclose(energies, -0.5, atol=1e-10)


@pytest.mark.parametrize("method", ["forward", "hessian"])
def test_hydrogenic_helium_product_has_the_analytic_local_energy(method):
    # psi = exp(-2 r1 - 2 r2): E_L = -4 + 1/r12 exactly (the kinetic and nuclear terms cancel
    # to -Z^2 per electron).
    apply = lambda p, x: (1.0, -2 * jnp.linalg.norm(x[0]) - 2 * jnp.linalg.norm(x[1]))
    e_l = jax.jit(local_energy(apply, atom("He"), method, jnp.float64))
    for x in np.random.default_rng(1).normal(size=(10, 2, 3)):
        expected = -4.0 + 1.0 / np.linalg.norm(x[0] - x[1])
        assert float(e_l(None, jnp.asarray(x))) == pytest.approx(expected, abs=1e-9)


def test_potential_energy_of_a_molecule():
    s = build_system({"name": "LiH", "atoms": None, "units": "bohr", "charge": 0, "spin": None,
                      "bond_length": None, "n_atoms": None})
    x = np.random.default_rng(2).normal(size=(4, 3))
    expected = s.nuclear_repulsion()
    for i in range(4):
        for a in range(2):
            expected -= s.charges[a] / np.linalg.norm(x[i] - s.positions[a])
        for j in range(i):
            expected += 1 / np.linalg.norm(x[i] - x[j])
    got = potential_energy(jnp.asarray(x), jnp.asarray(s.positions), jnp.asarray(s.charges))
    assert float(got) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("overrides", [["system=LiH"], ["system=Li", "network.envelope=full"],
                                       ["system=Be", "network=slater_jastrow",
                                        "network.backflow=true"]])
def test_forward_laplacian_agrees_with_hessian_trace(overrides):
    exp = validate(compose(overrides + ["precision=float64", "network.width=16"]))
    ansatz = make_ansatz(exp)
    params = ansatz.init(jax.random.PRNGKey(1))
    forward = jax.jit(local_energy(ansatz.apply, exp.system, "forward", jnp.float64))
    hessian = jax.jit(local_energy(ansatz.apply, exp.system, "hessian", jnp.float64))
    for x in np.random.default_rng(3).normal(size=(3, exp.system.n_electrons, 3)):
        a, b = float(forward(params, jnp.asarray(x))), float(hessian(params, jnp.asarray(x)))
        assert a == pytest.approx(b, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("overrides", [["system=Li"], ["system=LiH"],
                                       ["system=Li", "network=slater_jastrow", "network.backflow=true"],
                                       ["system=LiH", "network=slater_jastrow"]])
def test_sparse_and_dense_forward_laplacians_agree(overrides):
    """folx's sparse Jacobians (threshold 6: one electron pair of the 3n coordinates) give
    the dense local energy, for an atom and a molecule, FermiNet and Slater-Jastrow."""
    exp = validate(compose(overrides + ["precision=float64", "network.width=8", "network.depth=1",
                                        "network.determinants=2"]))
    ansatz = make_ansatz(exp)
    params = ansatz.init(jax.random.PRNGKey(2))
    dense = jax.jit(local_energy(ansatz.apply, exp.system, "forward", jnp.float64, sparsity=0))
    sparse = jax.jit(local_energy(ansatz.apply, exp.system, "forward", jnp.float64, sparsity=6))
    for x in np.random.default_rng(4).normal(size=(2, exp.system.n_electrons, 3)):
        a, b = float(dense(params, jnp.asarray(x))), float(sparse(params, jnp.asarray(x)))
        assert np.isfinite(a) and a == pytest.approx(b, rel=1e-10, abs=1e-10)


def test_sparsity_setting_resolves_by_system_size():
    from ablate.hamiltonian.local_energy import AUTO_SPARSE_FROM_ELECTRONS, AUTO_SPARSE_THRESHOLD, sparsity_threshold

    assert sparsity_threshold("dense", 14) == 0
    assert sparsity_threshold(9, 4) == 9
    assert sparsity_threshold("auto", AUTO_SPARSE_FROM_ELECTRONS) == AUTO_SPARSE_THRESHOLD
    assert sparsity_threshold("auto", AUTO_SPARSE_FROM_ELECTRONS - 1) == 0
