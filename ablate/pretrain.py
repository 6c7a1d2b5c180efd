"""Pretraining: fit the network's orbitals to Hartree-Fock orbitals from pyscf.

pyscf runs RHF (closed shell) or UHF (open shell) in the configured Gaussian basis. During
pretraining the walkers follow the network's own |psi|^2 (Metropolis-Hastings); at each step
the occupied HF orbitals are evaluated at the walkers on the host (pyscf's ``eval_gto``) and
every determinant's orbital matrix is pulled toward them by least squares with Adam. We do
not rewrite Gaussian basis functions in JAX: pyscf's evaluation is exact and its cost
(milliseconds per step) is small beside the network's.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ablate.errors import ConfigError


@dataclasses.dataclass
class HartreeFock:
    """Occupied HF orbitals of a system; `orbitals(x)` evaluates them at electrons (bohr)."""

    mol: object
    coeff_up: np.ndarray      # (n_ao, n_up)
    coeff_down: np.ndarray    # (n_ao, n_down)
    energy: float             # Hartree

    def orbitals(self, x: np.ndarray, electrons) -> tuple[np.ndarray, np.ndarray]:
        """x (batch, n, 3) -> up (batch, n_up, n_up) and down (batch, n_down, n_down) matrices:
        element [b, i, j] is occupied orbital j at electron i of that spin."""
        n_up, n_down = electrons
        batch = x.shape[0]
        ao = self.mol.eval_gto("GTOval_sph", np.asarray(x, np.float64).reshape(-1, 3))
        ao = ao.reshape(batch, n_up + n_down, -1)
        up = ao[:, :n_up] @ self.coeff_up
        down = ao[:, n_up:] @ self.coeff_down
        return up, down


def hartree_fock(system, basis: str) -> HartreeFock:
    """Runs pyscf RHF/UHF; raises ConfigError for a basis pyscf does not know."""
    from pyscf import gto, scf  # lazy: pyscf is heavy and not needed without pretraining

    try:
        mol = gto.M(atom=[(s, tuple(p)) for s, p in zip(system.symbols, system.positions)],
                    unit="Bohr", basis=basis, charge=system.charge, spin=system.spin,
                    verbose=0)
    except (KeyError, RuntimeError, ValueError) as err:
        raise ConfigError("pretrain.basis", basis, f"pyscf cannot build it ({err})") from None
    n_up, n_down = system.electrons
    if system.spin == 0:
        mf = scf.RHF(mol)
        mf.kernel()
        coeff = mf.mo_coeff
        up, down = coeff[:, :n_up], coeff[:, :n_down]
    else:
        mf = scf.UHF(mol)
        mf.kernel()
        up, down = mf.mo_coeff[0][:, :n_up], mf.mo_coeff[1][:, :n_down]
    return HartreeFock(mol, np.asarray(up), np.asarray(down), float(mf.e_tot))


def targets(hf: HartreeFock, walkers: np.ndarray, electrons, full_det: bool):
    """HF target rows shaped like the network's orbitals (without the K axis)."""
    up, down = hf.orbitals(walkers, electrons)
    if not full_det:
        return up, down
    n_up, n_down = electrons
    batch = walkers.shape[0]
    up_rows = np.concatenate([up, np.zeros((batch, n_up, n_down))], axis=2)
    down_rows = np.concatenate([np.zeros((batch, n_down, n_up)), down], axis=2)
    return up_rows, down_rows


def make_pretrain_step(orbitals):
    """Adam step on mean_(batch) sum |network orbitals - HF orbitals|^2 over all determinants.

    Returns (init(params) -> opt_state, step(params, opt_state, walkers, target_up,
    target_down, lr) -> (params, opt_state, loss)); the learning rate is an argument, so one
    compiled step serves every rate. ``step`` is pure (the caller jits it).
    """
    batch_orbitals = jax.vmap(orbitals, in_axes=(None, 0))

    def loss(params, walkers, target_up, target_down):
        up, down = batch_orbitals(params, walkers)           # (batch, K, n_spin, cols)
        err = jnp.sum((up - target_up[:, None]) ** 2, axis=(1, 2, 3))
        err += jnp.sum((down - target_down[:, None]) ** 2, axis=(1, 2, 3))
        return jnp.mean(err) / up.shape[1]

    def step(params, opt_state, walkers, target_up, target_down, lr):
        value, grads = jax.value_and_grad(loss)(params, walkers, target_up, target_down)
        updates, opt_state = optax.adam(lr).update(grads, opt_state, params)
        return jax.tree.map(lambda p, u: p + u, params, updates), opt_state, value

    return optax.adam(1.0).init, step
