"""Pretraining to pyscf Hartree-Fock orbitals: the JAX basis, HF-density sampling, the fit."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from ablate.config.compose import compose
from ablate.config.experiment import validate
from ablate.hamiltonian import gto
from ablate.records.errors import ConfigError
from ablate.vmc import mcmc
from ablate.vmc.pretrain import (SAMPLING, hartree_fock, hf_log_abs, hf_orbitals, make_pretrain_step,
                                 make_sampler, targets)
from ablate.vmc.run import run_experiment
from ablate.wavefunction.networks import make_ansatz


@pytest.mark.parametrize("atom, basis, spin", [
    ("Li 0 0 0; H 0 0 3.015", "sto-3g", 0),      # s and p shells
    ("N 0 0 0; N 0 0 2.07", "cc-pvdz", 0),       # d shells, general contractions
    ("Ne 0 0 0; H 0 0 1.5", "cc-pvtz", 1),       # f shells
])
def test_jax_basis_matches_pyscf(atom, basis, spin):
    from pyscf import gto as pyscf_gto

    mol = pyscf_gto.M(atom=atom, unit="Bohr", basis=basis, spin=spin, verbose=0)
    x = np.random.default_rng(0).normal(scale=2.0, size=(5, 7, 3))
    basis_fns = gto.cartesian_basis(mol).astype(jnp.float64)
    ao = jax.jit(gto.eval_cartesian)(basis_fns, jnp.asarray(x))     # the basis as an argument
    mine = np.asarray(ao) @ gto.orbital_matrix(mol, np.eye(mol.nao))
    expected = mol.eval_gto("GTOval_sph", x.reshape(-1, 3)).reshape(5, 7, -1)
    np.testing.assert_allclose(mine, expected, rtol=0, atol=1e-10)


def test_hartree_fock_energies_and_orbitals():
    from pyscf import scf

    lih = validate(compose(["system=LiH"])).system
    hf = hartree_fock(lih, "sto-3g")
    assert -7.87 < hf.energy < -7.85          # RHF/STO-3G LiH at 3.015 bohr: -7.862 Ha
    orbs = hf.on_device(jnp.float64)
    x = np.random.default_rng(0).normal(size=(5, 4, 3))
    mo = scf.RHF(hf.mol).run().mo_coeff[:, :2]
    ao = hf.mol.eval_gto("GTOval_sph", x.reshape(-1, 3)).reshape(5, 4, -1)
    up, down = hf_orbitals(orbs, jnp.asarray(x), lih.electrons)
    # up to each orbital's sign (SCF runs may flip it)
    np.testing.assert_allclose(np.abs(up), np.abs(ao[:, :2] @ mo), atol=1e-10)
    np.testing.assert_allclose(np.abs(down), np.abs(ao[:, 2:] @ mo), atol=1e-10)
    up, down = targets(orbs, jnp.asarray(x), lih.electrons, full_det=True)
    assert up.shape == (5, 2, 4) and down.shape == (5, 2, 4)
    assert np.all(up[:, :, 2:] == 0) and np.all(down[:, :, :2] == 0)
    li = validate(compose(["system=Li"])).system
    uhf = hartree_fock(li, "sto-3g")
    assert uhf.orbitals.up.shape[1] == 2 and uhf.orbitals.down.shape[1] == 1
    h = validate(compose(["system=H"])).system          # no spin-down electron
    h_orbs = hartree_fock(h, "sto-3g").on_device(jnp.float64)
    assert hf_log_abs(h_orbs, jnp.zeros((3, 1, 3)), h.electrons).shape == (3,)


def test_hf_sampling_leaves_the_hf_density_invariant():
    """Walkers moved by Metropolis-Hastings on |Psi_HF|^2 have the HF mean distance of an
    electron from the Li nucleus, <|r - R_Li|> = (1/N) sum_occupied int |phi|^2 |r - R_Li|,
    computed here by pyscf's DFT quadrature grid from pyscf's own orbitals."""
    from pyscf import dft, scf

    lih = validate(compose(["system=LiH"])).system
    hf = hartree_fock(lih, "sto-3g")
    li = np.asarray(lih.positions[0])
    grid = dft.gen_grid.Grids(hf.mol)
    grid.level = 5
    grid.build()
    phi = hf.mol.eval_gto("GTOval_sph", grid.coords) @ scf.RHF(hf.mol).run().mo_coeff[:, :2]
    density = grid.weights[:, None] * phi ** 2
    np.testing.assert_allclose(density.sum(axis=0), 1.0, atol=1e-6)
    exact = float(np.sum(density * np.linalg.norm(grid.coords - li, axis=1)[:, None])) / 2

    sample = jax.jit(make_sampler("hf", None, lih.electrons, steps=10))
    orbs = hf.on_device(jnp.float64)
    key = jax.random.PRNGKey(0)
    walkers = mcmc.init_walkers(key, lih, 2048, 1.0, jnp.float64)
    width = jnp.asarray(0.3)
    for _ in range(100):                   # burn in (adapting the width), then measure
        key, k = jax.random.split(key)
        walkers, pmove = sample(None, orbs, walkers, k, width)
        width = mcmc.adapt_width(width, pmove)
    distances = []
    for _ in range(60):
        key, k = jax.random.split(key)
        walkers, pmove = sample(None, orbs, walkers, k, width)
        distances.append(np.linalg.norm(np.asarray(walkers) - li, axis=-1).mean(axis=1))
    per_walker = np.mean(distances, axis=0)             # independent chains
    mean, stderr = per_walker.mean(), per_walker.std(ddof=1) / np.sqrt(len(per_walker))
    assert 0.2 < float(pmove) < 0.8
    assert stderr < 0.01 * exact                         # precise enough to mean something
    assert abs(mean - exact) < 4 * stderr, (mean, stderr, exact)


@pytest.mark.parametrize("sampling", SAMPLING)
def test_each_sampling_fits_the_orbitals(sampling):
    experiment = validate(compose(["system=LiH", "network.width=16", "network.determinants=2"]))
    ansatz = make_ansatz(experiment)
    electrons = experiment.system.electrons
    orbs = hartree_fock(experiment.system, "sto-3g").on_device(jnp.float64)
    key = jax.random.PRNGKey(1)
    params = ansatz.init(key)
    walkers = mcmc.init_walkers(key, experiment.system, 64, 1.0, jnp.float64)
    init, step = make_pretrain_step(ansatz.apply, ansatz.orbitals, electrons, ansatz.full_det,
                                    steps=5)
    step = jax.jit(step, static_argnames=("sampling", "adapt"))
    opt_state, width, losses = init(params), jnp.asarray(0.3), []
    for _ in range(60):
        params, opt_state, walkers, key, width, loss, pmove = step(
            params, opt_state, walkers, key, width, orbs, 3e-3, 0.5, sampling=sampling)
        losses.append(float(loss))
    assert np.all(np.isfinite(losses)) and 0 < float(pmove) < 1
    assert np.mean(losses[-10:]) < 0.3 * np.mean(losses[:3]), losses


def test_unknown_sampling_names_the_key():
    with pytest.raises(ConfigError) as err:
        validate(compose(["pretrain.sampling=uniform"]))
    assert "pretrain.sampling" in str(err.value) and "mixture" in str(err.value)


def test_pretraining_fits_the_orbitals(tmp_path):
    cfg = compose(["system=LiH", "network.width=16", "batch_size=64", "pretrain.iterations=60",
                   "optim.iterations=1", "mcmc.burn_in=1", "evaluation.iterations=2",
                   "evaluation.burn_in=1", "logger=none", "progress=false",
                   f"output_root={tmp_path}", f"run_dir={tmp_path / 'run'}"])
    summary = run_experiment(validate(cfg))
    loss = pd.read_csv(tmp_path / "run" / "pretrain.csv")["loss"].to_numpy()
    assert len(loss) == 60
    assert loss[-10:].mean() < 0.3 * loss[:3].mean()
    assert summary.hf_energy == pytest.approx(-7.862, abs=0.01)
    assert summary.pretrain_loss == pytest.approx(loss[-10:].mean())
    first = pd.read_csv(tmp_path / "run" / "metrics.csv").iloc[0]
    assert summary.pretrain_energy == pytest.approx(first["energy"])
    assert summary.pretrain_energy_stderr == pytest.approx(np.sqrt(first["variance"] / 64))


@pytest.mark.slow
def test_default_lih_quick_run_is_within_3_mha(tmp_path):
    """The default `python -m ablate` (LiH, quick scale) with a fixed seed: the evaluated
    energy is within 3 mHa of the exact one (issue 8's target), up to twice its own
    statistical error. One run cannot promise more: the trajectory is chaotic, and float
    rounding alone moves a seed's result (seed 0 gave 0.27 +- 0.65 mHa with folx's Laplacian,
    LiH's default, and 3.76 +- 0.72 with ablate's own; both give local energies within 2.5e-6
    Ha rms of the float64 ones); over seeds 0-8 both give 0.3-3.9 mHa, means 1.87 and 2.42
    (README: accuracy)."""
    summary = run_experiment(validate(compose(["seed=0", "logger=none", "progress=false",
                                      f"output_root={tmp_path}"])))
    assert summary.status == "completed"
    assert summary.error_mha > -4 * summary.error_stderr_mha      # variational
    assert summary.error_mha < 3.0 + 2 * summary.error_stderr_mha, summary
