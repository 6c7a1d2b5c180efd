"""Contracted Gaussian basis functions evaluated in JAX from a pyscf molecule's basis data.

`cartesian_basis(mol)` reads pyscf's shells (centre, angular momentum, exponents and the
normalised contraction coefficients pyscf itself uses) into flat arrays with one row per
Cartesian function, in pyscf's order. `eval_cartesian(basis, r)` evaluates them at points
(bohr); multiplying by ``mol.cart2sph_coeff()`` gives pyscf's spherical (``GTOval_sph``)
values exactly (tests/test_pretrain.py: to 1e-10 through f shells), so molecular orbitals are
one matrix product (`orbital_matrix`). This lets the Hartree-Fock density be sampled inside a
jitted step, on any device, without a host round trip per Metropolis-Hastings move.

Written by hand (not taken from a library) because pyscf evaluates on the host only and the
JAX quantum-chemistry packages would be a large dependency for some thirty lines.

`CartesianBasis` is a JAX pytree: its arrays are leaves (arguments of a compiled program, so
one program serves every molecule with the same basis shapes), ``l_max`` is static.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

# pyscf folds the angular normalisation of s and p shells into its Cartesian functions
# (libcint's common factors 1/sqrt(4 pi) and sqrt(3/(4 pi))); d and higher get theirs from
# the Cartesian-to-spherical transform.
_COMMON_FACTOR = {0: 0.282094791773878143, 1: 0.488602511902919921}


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class CartesianBasis:
    """One row per Cartesian Gaussian x^a y^b z^c sum_p c_p exp(-alpha_p r^2) (bohr)."""

    centres: np.ndarray        # (n_cart, 3) bohr
    powers: np.ndarray         # (n_cart, 3) integer exponents (a, b, c)
    exponents: np.ndarray      # (n_cart, n_prim) alpha in bohr^-2, padded with 0
    coefficients: np.ndarray   # (n_cart, n_prim) normalised, padded with 0
    l_max: int = dataclasses.field(metadata={"static": True})

    def astype(self, dtype) -> "CartesianBasis":
        """The arrays as JAX arrays (exponents and coefficients in `dtype`)."""
        return dataclasses.replace(
            self, centres=jnp.asarray(self.centres, dtype), powers=jnp.asarray(self.powers),
            exponents=jnp.asarray(self.exponents, dtype),
            coefficients=jnp.asarray(self.coefficients, dtype))


def _cartesian_powers(l: int) -> list[tuple[int, int, int]]:
    """pyscf's order of Cartesian components of angular momentum l (xx, xy, xz, yy, ...)."""
    return [(lx, ly, l - lx - ly) for lx in range(l, -1, -1) for ly in range(l - lx, -1, -1)]


def cartesian_basis(mol) -> CartesianBasis:
    """Flat arrays of a pyscf ``gto.Mole``'s Cartesian basis functions (general contractions
    give one block of functions per contracted coefficient column, as in pyscf)."""
    rows = []
    for shell in range(mol.nbas):
        l = mol.bas_angular(shell)
        alpha = np.asarray(mol.bas_exp(shell), np.float64)
        coeff = np.asarray(mol._libcint_ctr_coeff(shell), np.float64) * _COMMON_FACTOR.get(l, 1.0)
        centre = np.asarray(mol.atom_coord(mol.bas_atom(shell)), np.float64)
        for k in range(coeff.shape[1]):
            for power in _cartesian_powers(l):
                rows.append((centre, power, alpha, coeff[:, k]))
    n_prim = max(len(r[2]) for r in rows)

    def pad(v):
        return np.pad(v, (0, n_prim - len(v)))

    powers = np.asarray([r[1] for r in rows], np.int32)
    return CartesianBasis(
        centres=np.stack([r[0] for r in rows]), powers=powers,
        exponents=np.stack([pad(r[2]) for r in rows]),
        coefficients=np.stack([pad(r[3]) for r in rows]),
        l_max=int(powers.sum(axis=1).max()))


def eval_cartesian(basis: CartesianBasis, r):
    """Cartesian basis functions at points r (..., 3) in bohr -> (..., n_cart). Pure JAX;
    computed in r's dtype."""
    dtype = r.dtype
    d = r[..., None, :] - jnp.asarray(basis.centres, dtype)              # (..., n_cart, 3)
    r2 = jnp.sum(d * d, axis=-1)                                         # (..., n_cart)
    radial = jnp.sum(jnp.asarray(basis.coefficients, dtype)
                     * jnp.exp(-jnp.asarray(basis.exponents, dtype) * r2[..., None]), axis=-1)
    # d^k for k = 0..l_max, then each function's power per axis (no pow of negative numbers)
    monomials = [jnp.ones_like(d)]
    for _ in range(basis.l_max):
        monomials.append(monomials[-1] * d)
    monomials = jnp.stack(monomials, axis=-1)                            # (..., n_cart, 3, l+1)
    powers = jnp.broadcast_to(jnp.asarray(basis.powers)[..., None], d.shape + (1,))
    angular = jnp.prod(jnp.take_along_axis(monomials, powers, axis=-1)[..., 0], axis=-1)
    return angular * radial


def orbital_matrix(mol, mo_coeff: np.ndarray) -> np.ndarray:
    """(n_cart, n_mo): molecular orbitals = eval_cartesian(...) @ this matrix, for pyscf's
    spherical-basis MO coefficients `mo_coeff` (n_ao, n_mo)."""
    if mol.cart:
        return np.asarray(mo_coeff, np.float64)
    return np.asarray(mol.cart2sph_coeff() @ mo_coeff, np.float64)
