"""The molecular Hamiltonian in atomic units: local energies E_L(x) in Hartree.

E_L = -1/2 (lap log|psi| + |grad log|psi||^2) + V(x), with V the Coulomb energy of electrons
and nuclei. The Laplacian comes from folx's forward Laplacian (default: one forward pass
carrying value, gradient and Laplacian) or from the trace of the Hessian (a Hessian-vector
product per coordinate), selectable with ``laplacian=forward|hessian``.
"""

from __future__ import annotations

from typing import Callable

import folx
import jax
import jax.numpy as jnp

LAPLACIANS = ("forward", "hessian")


def potential_energy(x, atoms, charges):
    """Coulomb energy (Hartree) of electrons x (n, 3) and nuclei atoms (A, 3) in bohr."""
    n = x.shape[0]
    r_ae = jnp.linalg.norm(x[:, None, :] - atoms[None], axis=-1)
    v = -jnp.sum(charges[None, :] / r_ae)
    if n > 1:
        i, j = jnp.triu_indices(n, k=1)
        v += jnp.sum(1.0 / jnp.linalg.norm(x[i] - x[j], axis=-1))
    if atoms.shape[0] > 1:
        a, b = jnp.triu_indices(atoms.shape[0], k=1)
        v += jnp.sum(charges[a] * charges[b] / jnp.linalg.norm(atoms[a] - atoms[b], axis=-1))
    return v


def kinetic_energy(log_abs: Callable, method: str = "forward") -> Callable:
    """Returns T(params, x) = -1/2 (lap f + |grad f|^2) for f = log|psi|, x of shape (n, 3)."""
    if method not in LAPLACIANS:
        raise ValueError(f"laplacian={method!r}: allowed: {', '.join(LAPLACIANS)}")

    if method == "forward":
        def kinetic(params, x):
            flat = lambda y: log_abs(params, y.reshape(x.shape))
            out = folx.forward_laplacian(flat, sparsity_threshold=0)(x.reshape(-1))
            grad = out.jacobian.dense_array
            return -0.5 * (out.laplacian + jnp.sum(grad**2))
        return kinetic

    def kinetic(params, x):
        flat = lambda y: log_abs(params, y.reshape(x.shape))
        y = x.reshape(-1)
        grad_f = jax.grad(flat)
        eye = jnp.eye(y.shape[0], dtype=y.dtype)

        def second(carry, v):
            _, hv = jax.jvp(grad_f, (y,), (v,))
            return carry + jnp.dot(hv, v), None

        lap, _ = jax.lax.scan(second, jnp.zeros((), y.dtype), eye)
        g = grad_f(y)
        return -0.5 * (lap + jnp.sum(g**2))
    return kinetic


def local_energy(apply: Callable, system, method: str = "forward", dtype=jnp.float32) -> Callable:
    """E_L(params, x) in Hartree for one walker x (n, 3), given apply -> (sign, log|psi|)."""
    atoms = jnp.asarray(system.positions, dtype)
    charges = jnp.asarray(system.charges, dtype)
    log_abs = lambda params, x: apply(params, x)[1]
    kinetic = kinetic_energy(log_abs, method)

    def e_local(params, x):
        return kinetic(params, x) + potential_energy(x, atoms, charges)
    return e_local
