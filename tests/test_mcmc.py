"""The sampler reproduces known densities; walkers start around the nuclei."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ablate.config.systems import build_system
from ablate.vmc import mcmc


def system(name):
    return build_system({"name": name, "atoms": None, "units": "bohr", "charge": 0,
                         "spin": None, "bond_length": None, "n_atoms": None})


def test_hydrogen_1s_mean_radius_is_one_and_a_half_bohr():
    # |psi|^2 = exp(-2r)/pi gives <r> = 1.5 bohr and <r^2> = 3 bohr^2.
    apply = lambda p, x: (1.0, -jnp.linalg.norm(x[0]))
    sample = jax.jit(mcmc.make_sampler(apply, steps=10))
    key = jax.random.PRNGKey(0)
    walkers = mcmc.init_walkers(key, system("H"), 2048, 1.0, jnp.float64)
    width = jnp.asarray(0.5)
    radii = []
    for i in range(200):
        key, k = jax.random.split(key)
        walkers, pmove = sample(None, walkers, k, width)
        width = mcmc.adapt_width(width, pmove)
        if i >= 50:
            radii.append(np.linalg.norm(np.asarray(walkers)[:, 0], axis=-1))
    r = np.concatenate(radii)
    assert r.mean() == pytest.approx(1.5, abs=0.03)
    assert (r**2).mean() == pytest.approx(3.0, abs=0.1)
    assert float(pmove) == pytest.approx(0.5, abs=0.1)


def test_width_adaptation_moves_toward_the_target():
    assert float(mcmc.adapt_width(1.0, 0.9, 0.5)) > 1.0
    assert float(mcmc.adapt_width(1.0, 0.1, 0.5)) < 1.0
    assert float(mcmc.adapt_width(1.0, 0.5, 0.5)) == pytest.approx(1.0)


def test_walkers_start_on_the_nuclei_by_charge_and_spin():
    lih = system("LiH")
    sites = mcmc.electron_sites(lih)
    # Li takes 3 of 4 electrons, H one; both spins get one electron on Li.
    assert sorted(sites.tolist()) == [0, 0, 0, 1]
    assert sites[0] == 0 and sites[2] == 0
    walkers = mcmc.init_walkers(jax.random.PRNGKey(0), lih, 4096, 0.5, jnp.float64)
    near_h = np.linalg.norm(np.asarray(walkers) - lih.positions[1], axis=-1) < 1.5
    assert near_h.mean(axis=0).sum() == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("name", ["H", "Li", "N", "N2", "CH4", "H2O", "LiH", "C2H4"])
def test_every_electron_gets_a_site_with_the_right_spin_counts(name):
    s = system(name)
    sites = mcmc.electron_sites(s)
    assert len(sites) == s.n_electrons
    per_atom = np.bincount(sites, minlength=len(s.charges))
    assert np.all(np.abs(per_atom - s.charges) <= 1)
