"""Pretraining: fit the network's orbitals to Hartree-Fock orbitals from pyscf.

pyscf runs RHF (closed shell) or UHF (open shell) in the configured Gaussian basis; the
occupied orbitals are then evaluated in JAX (`ablate.hamiltonian.gto`, exact against pyscf's
``eval_gto``), so one pretraining iteration is a single compiled program: Metropolis-Hastings
moves of the walkers, the HF orbitals at the walkers, and an Adam step on the least-squares
distance between every determinant's orbital matrix and the HF one. The HF orbitals and the
learning rate are arguments of that program, so a warm sweep worker reuses it for every trial
of the same shapes (tests/test_engine_reuse.py).

The walkers sample (``pretrain.sampling``):

- ``hf``: the Hartree-Fock density |Psi_HF|^2 (the reference FermiNet's default): the fit is
  weighted where the HF wave function lives, whatever the network currently is;
- ``network``: the network's own |psi|^2 (what ablate did before; an untrained network puts
  its walkers where HF has little weight);
- ``mixture``: the first half of the walkers follow |Psi_HF|^2 and the other half |psi|^2,
  i.e. an equal mixture of the two normalised densities.

Pretraining always moves all electrons at once by Metropolis-Hastings (whatever mcmc.method
says for training), with its own move width, adapted toward mcmc.target_acceptance; the
training phases start from the configured width.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ablate.hamiltonian import gto
from ablate.records.errors import ConfigError
from ablate.vmc import mcmc
from ablate.wavefunction import small_det

SAMPLING = ("hf", "network", "mixture")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class HFOrbitals:
    """Occupied HF orbitals as matrices over Cartesian basis functions (a pytree): orbital j
    at r is ``gto.eval_cartesian(basis, r) @ up[:, j]`` (or ``down``)."""

    basis: gto.CartesianBasis
    up: Any                   # (n_cart, n_up)
    down: Any                 # (n_cart, n_down)


@dataclasses.dataclass(frozen=True)
class HartreeFock:
    """A system's SCF result: pyscf's molecule, the occupied orbitals, the energy (Hartree)."""

    mol: object
    orbitals: HFOrbitals      # numpy arrays; `on_device` gives the JAX ones
    energy: float             # Hartree

    def on_device(self, dtype) -> HFOrbitals:
        o = self.orbitals
        return HFOrbitals(o.basis.astype(dtype), jnp.asarray(o.up, dtype),
                          jnp.asarray(o.down, dtype))


def hartree_fock(system, basis: str) -> HartreeFock:
    """Runs pyscf RHF/UHF; raises ConfigError for a basis pyscf does not know."""
    from pyscf import gto as pyscf_gto  # lazy: pyscf is heavy and not needed without pretraining
    from pyscf import scf

    try:
        mol = pyscf_gto.M(atom=[(s, tuple(p)) for s, p in zip(system.symbols, system.positions)],
                          unit="Bohr", basis=basis, charge=system.charge, spin=system.spin,
                          verbose=0)
    except (KeyError, RuntimeError, ValueError) as err:
        raise ConfigError("pretrain.basis", basis, f"pyscf cannot build it ({err})") from None
    n_up, n_down = system.electrons
    if system.spin == 0:
        mf = scf.RHF(mol)
        mf.kernel()
        up, down = mf.mo_coeff[:, :n_up], mf.mo_coeff[:, :n_down]
    else:
        mf = scf.UHF(mol)
        mf.kernel()
        up, down = mf.mo_coeff[0][:, :n_up], mf.mo_coeff[1][:, :n_down]
    orbitals = HFOrbitals(gto.cartesian_basis(mol), gto.orbital_matrix(mol, up),
                          gto.orbital_matrix(mol, down))
    return HartreeFock(mol, orbitals, float(mf.e_tot))


def hf_orbitals(orbs: HFOrbitals, x, electrons):
    """x (..., n, 3) bohr -> up (..., n_up, n_up), down (..., n_down, n_down): element
    [..., i, j] is occupied orbital j at electron i of that spin (in x's dtype)."""
    n_up = electrons[0]
    ao = gto.eval_cartesian(orbs.basis, x)                                # (..., n, n_cart)
    return (ao[..., :n_up, :] @ jnp.asarray(orbs.up, x.dtype),
            ao[..., n_up:, :] @ jnp.asarray(orbs.down, x.dtype))


def hf_log_abs(orbs: HFOrbitals, x, electrons):
    """log|Psi_HF| (...,) of the HF Slater determinant (det up * det down) at x (..., n, 3).
    Values only (the pretraining sampler): the determinants are `small_det.slogdet`'s."""
    total = jnp.zeros(x.shape[:-2], x.dtype)
    for m in hf_orbitals(orbs, x, electrons):
        if m.shape[-1]:
            total = total + small_det.slogdet(m)[1]
    return total


def targets(orbs: HFOrbitals, x, electrons, full_det: bool):
    """HF target rows shaped like the network's orbitals (without the K axis), x (..., n, 3):
    with full_det the spin blocks sit on the diagonal of an (n, n) matrix, zeros elsewhere."""
    up, down = hf_orbitals(orbs, x, electrons)
    if not full_det:
        return up, down
    n_up, n_down = electrons
    lead = x.shape[:-2]
    up_rows = jnp.concatenate([up, jnp.zeros(lead + (n_up, n_down), x.dtype)], axis=-1)
    down_rows = jnp.concatenate([jnp.zeros(lead + (n_down, n_up), x.dtype), down], axis=-1)
    return up_rows, down_rows


def make_sampler(sampling: str, network_apply: Callable, electrons, steps: int) -> Callable:
    """sample(params, orbs, walkers, key, width) -> (walkers, acceptance) for `sampling` (one
    of SAMPLING): `steps` all-electron Metropolis-Hastings moves on |Psi_HF|^2 (orbs: the
    `HFOrbitals`), on the network's |psi|^2 (`network_apply(params, x) -> (sign, log|psi|)`),
    or half the walkers on each."""
    if sampling not in SAMPLING:
        raise ValueError(f"pretrain.sampling={sampling!r}: allowed: {', '.join(SAMPLING)}")

    def hf_apply(orbs, x):
        return jnp.ones((), x.dtype), hf_log_abs(orbs, x, electrons)

    on_hf = mcmc.make_sampler(hf_apply, steps)
    on_network = mcmc.make_sampler(network_apply, steps)

    def sample(params, orbs, walkers, key, width):
        if sampling == "hf":
            return on_hf(orbs, walkers, key, width)
        half = walkers.shape[0] // 2
        if sampling == "network" or half == 0:
            return on_network(params, walkers, key, width)
        k_hf, k_net = jax.random.split(key)
        x_hf, p_hf = on_hf(orbs, walkers[:half], k_hf, width)
        x_net, p_net = on_network(params, walkers[half:], k_net, width)
        n = walkers.shape[0]
        return jnp.concatenate([x_hf, x_net]), (half * p_hf + (n - half) * p_net) / n

    return sample


def make_pretrain_step(apply: Callable, orbitals: Callable, electrons, full_det: bool,
                       steps: int):
    """(init, step) for Adam on mean_(batch) sum_(K, i, j) |network - HF|^2 / K.

    `orbitals(params, x)` gives the network's (K, n_spin, cols) matrices of one walker;
    `apply(params, x) -> (sign, log|psi|)` serves the network-density sampler only (values:
    pass an `Ansatz.values`).
    ``step(params, opt_state, walkers, key, width, orbs, lr, target, sampling, adapt) ->
    (params, opt_state, walkers, key, width, loss, pmove)`` samples (`make_sampler`), adapts
    the move width toward `target` when `adapt`, then fits on the new walkers. It is pure (the
    caller jits it, `sampling` and `adapt` static); orbs, lr and target are arguments, so one
    compiled step serves every learning rate and every molecule of the same basis shapes.
    """
    batch_orbitals = jax.vmap(orbitals, in_axes=(None, 0))
    samplers = {s: make_sampler(s, apply, electrons, steps) for s in SAMPLING}

    def loss(params, walkers, target_up, target_down):
        up, down = batch_orbitals(params, walkers)           # (batch, K, n_spin, cols)
        err = jnp.sum((up - target_up[:, None]) ** 2, axis=(1, 2, 3))
        err += jnp.sum((down - target_down[:, None]) ** 2, axis=(1, 2, 3))
        return jnp.mean(err) / up.shape[1]

    def step(params, opt_state, walkers, key, width, orbs, lr, target, sampling="hf",
             adapt=True):
        key, kmove = jax.random.split(key)
        walkers, pmove = samplers[sampling](params, orbs, walkers, kmove, width)
        if adapt:
            width = mcmc.adapt_width(width, pmove, target)
        target_up, target_down = targets(orbs, walkers, electrons, full_det)
        value, grads = jax.value_and_grad(loss)(params, walkers, target_up, target_down)
        updates, opt_state = optax.adam(lr).update(grads, opt_state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
        return params, opt_state, walkers, key, width, value, pmove

    return optax.adam(1.0).init, step


def summary_fields(losses: list[float], train_energies: list[float],
                   train_variances: list[float], batch_size: int) -> dict:
    """How close pretraining got, for summary.json: ``pretrain_loss``, the mean loss of the
    last 10 pretraining iterations (dimensionless; None without pretraining), and
    ``pretrain_energy``, the first training iteration's mean local energy (Hartree; the energy
    after pretraining and burn-in, None before training), with ``pretrain_energy_stderr`` =
    sqrt(variance / batch) of that one batch (walkers taken as independent after burn-in)."""
    first = bool(train_energies)
    stderr = (float(np.sqrt(train_variances[0] / batch_size))
              if first and train_variances and batch_size > 0 else None)
    return {"pretrain_loss": float(np.mean(losses[-10:])) if losses else None,
            "pretrain_energy": float(train_energies[0]) if first else None,
            "pretrain_energy_stderr": stderr}
