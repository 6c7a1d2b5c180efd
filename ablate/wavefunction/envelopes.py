"""The orbitals' exponential envelopes, one small object per form, chosen by ``network.envelope``.

An envelope multiplies orbital o of electron i by sum_A pi_Ao exp(-|sigma_Ao (r_i - R_A)|):
``isotropic`` (sigma a scalar per atom and orbital: |sigma| |r_i - R_A|), ``diagonal`` (a
3-vector scaling each axis) or ``full`` (a 3 x 3 matrix). Distances in bohr; pi and sigma are
the parameters, in a dict ``{"pi": (A, n_out), "sigma": ...}``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Envelope:
    """``init(n_atoms, n_out, dtype) -> params``; ``apply(params, ae, r_ae) -> (m, n_out)`` for the
    electron-nucleus vectors ae (m, A, 3) and distances r_ae (m, A, 1) of m electrons (bohr)."""
    name: str
    init: Callable
    apply: Callable


def _params(n_atoms: int, n_out: int, sigma) -> dict:
    return {"pi": jnp.ones((n_atoms, n_out), sigma.dtype), "sigma": sigma}


def _sum_over_atoms(p: dict, decay):
    """sum_A pi_Ao exp(-|decay_mAo|): (m, A, n_out) -> (m, n_out)."""
    return jnp.sum(jnp.exp(-jnp.abs(decay)) * p["pi"][None], axis=1)


def _isotropic_apply(p: dict, ae, r_ae):
    return _sum_over_atoms(p, r_ae * p["sigma"][None])                     # (m, A, n_out)


def _diagonal_apply(p: dict, ae, r_ae):
    scaled = ae[..., None] * p["sigma"][None]                              # (m, A, 3, n_out)
    return _sum_over_atoms(p, jnp.sqrt(jnp.sum(scaled**2, axis=2) + 1e-12))


def _full_apply(p: dict, ae, r_ae):
    scaled = jnp.einsum("mai,aijo->majo", ae, p["sigma"])                 # (m, A, 3, n_out)
    return _sum_over_atoms(p, jnp.sqrt(jnp.sum(scaled**2, axis=2) + 1e-12))


ENVELOPES = {
    "isotropic": Envelope(
        "isotropic",
        lambda n_atoms, n_out, dtype: _params(n_atoms, n_out, jnp.ones((n_atoms, n_out), dtype)),
        _isotropic_apply),
    "diagonal": Envelope(
        "diagonal",
        lambda n_atoms, n_out, dtype: _params(n_atoms, n_out, jnp.ones((n_atoms, 3, n_out), dtype)),
        _diagonal_apply),
    "full": Envelope(
        "full",
        lambda n_atoms, n_out, dtype: _params(
            n_atoms, n_out, jnp.tile(jnp.eye(3, dtype=dtype)[None, :, :, None], (n_atoms, 1, 1, n_out))),
        _full_apply),
}


def envelope_named(name: str) -> Envelope:
    """The envelope ``network.envelope`` names; a ValueError naming the key for another name."""
    if name not in ENVELOPES:
        raise ValueError(f"network.envelope={name!r}: allowed: {', '.join(ENVELOPES)}")
    return ENVELOPES[name]
