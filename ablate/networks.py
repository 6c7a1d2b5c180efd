"""Wave-function ansatzes: FermiNet and Slater-Jastrow, as pure functions over pytrees.

An `Ansatz` has
  ``init(key) -> params``,
  ``apply(params, x) -> (sign, log|psi|)`` for one walker ``x`` of shape (n_electrons, 3) in
  bohr, electrons ordered spin-up first,
  ``orbitals(params, x) -> (up, down)``: the determinant matrices' rows for the spin-up and
  spin-down electrons, shapes (K, n_up, n_cols) and (K, n_down, n_cols), used by pretraining.
Batches are made with ``jax.vmap``. Dense layers are plain ``x @ w + b`` over per-electron
leading axes, so kfac-jax recognises them as (repeated) dense layers.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ablate.config import NetworkConfig
from ablate.jax_setup import dtype_of

ACTIVATIONS = {"tanh": jnp.tanh, "silu": jax.nn.silu, "gelu": jax.nn.gelu}


@dataclasses.dataclass(frozen=True)
class Ansatz:
    init: Callable
    apply: Callable
    orbitals: Callable
    full_det: bool
    n_determinants: int


def _dense_init(key, n_in: int, n_out: int, dtype) -> dict:
    wkey, bkey = jax.random.split(key)
    return {
        "w": jax.random.normal(wkey, (n_in, n_out), dtype) / np.sqrt(n_in),
        "b": jax.random.normal(bkey, (n_out,), dtype),
    }


def _dense(p: dict, x):
    return x @ p["w"] + p["b"]


def _pair_features(x, atoms):
    """Electron-nucleus and electron-electron vectors and distances (bohr)."""
    n = x.shape[0]
    ae = x[:, None, :] - atoms[None, :, :]                       # (n, A, 3)
    r_ae = jnp.linalg.norm(ae, axis=-1, keepdims=True)           # (n, A, 1)
    ee = x[:, None, :] - x[None, :, :]                           # (n, n, 3)
    eye = jnp.eye(n, dtype=x.dtype)[..., None]
    # |r_ii| would be sqrt(0): its derivative is undefined. Shift the diagonal, then zero it.
    r_ee = jnp.sqrt(jnp.sum(ee**2, axis=-1, keepdims=True) + eye) * (1.0 - eye)
    return ae, r_ae, ee, r_ee


# ---------------------------------------------------------------- envelopes

def _envelope_init(kind: str, n_atoms: int, n_out: int, dtype) -> dict:
    pi = jnp.ones((n_atoms, n_out), dtype)
    sigma_shapes = {
        "isotropic": lambda: jnp.ones((n_atoms, n_out), dtype),
        "diagonal": lambda: jnp.ones((n_atoms, 3, n_out), dtype),
        "full": lambda: jnp.tile(jnp.eye(3, dtype=dtype)[None, :, :, None], (n_atoms, 1, 1, n_out)),
    }
    if kind not in sigma_shapes:
        raise ValueError(f"network.envelope={kind!r}: allowed: {', '.join(sigma_shapes)}")
    return {"pi": pi, "sigma": sigma_shapes[kind]()}


def _envelope(kind: str, p: dict, ae, r_ae):
    """Exponential envelopes sum_A pi_Ao exp(-|sigma_Ao r_iA|); ae (m, A, 3) -> (m, n_out)."""
    if kind == "isotropic":
        decay = r_ae * p["sigma"][None]                                  # (m, A, n_out)
    elif kind == "diagonal":
        scaled = ae[..., None] * p["sigma"][None]                        # (m, A, 3, n_out)
        decay = jnp.sqrt(jnp.sum(scaled**2, axis=2) + 1e-12)
    elif kind == "full":
        scaled = jnp.einsum("mai,aijo->majo", ae, p["sigma"])
        decay = jnp.sqrt(jnp.sum(scaled**2, axis=2) + 1e-12)
    else:
        raise ValueError(f"network.envelope={kind!r}: allowed: isotropic, diagonal, full")
    return jnp.sum(jnp.exp(-jnp.abs(decay)) * p["pi"][None], axis=1)


# ---------------------------------------------------------------- determinants

def logsumdet(matrices: list):
    """sign and log|sum_k prod_blocks det(M_k)| for blocks of shape (K, m, m), stably."""
    sign, logdet = 1.0, 0.0
    for m in matrices:
        if m.shape[-1] == 0:
            continue
        s, l = jnp.linalg.slogdet(m)
        sign, logdet = sign * s, logdet + l
    shift = jax.lax.stop_gradient(jnp.max(logdet))
    total = jnp.sum(sign * jnp.exp(logdet - shift))
    return jnp.sign(total), jnp.log(jnp.abs(total)) + shift


def _orbital_shapes(electrons, full_det: bool):
    n_up, n_down = electrons
    n = n_up + n_down
    return (n, n) if full_det else (n_up, n_down)


def _orbital_init(key, electrons, n_in, cfg, n_atoms, dtype):
    k_up, k_down = jax.random.split(key)
    cols_up, cols_down = _orbital_shapes(electrons, cfg.full_det)
    K = cfg.determinants
    return {
        "orb_up": _dense_init(k_up, n_in, K * cols_up, dtype),
        "orb_down": _dense_init(k_down, n_in, K * cols_down, dtype),
        "env_up": _envelope_init(cfg.envelope, n_atoms, K * cols_up, dtype),
        "env_down": _envelope_init(cfg.envelope, n_atoms, K * cols_down, dtype),
    }


def _orbital_matrices(params, h, ae, r_ae, electrons, cfg):
    """Per-spin orbital rows (K, n_spin, n_cols) = linear(h) * envelope."""
    n_up, _ = electrons
    cols_up, cols_down = _orbital_shapes(electrons, cfg.full_det)
    K = cfg.determinants
    out = []
    for sl, name, cols in ((slice(0, n_up), "up", cols_up), (slice(n_up, None), "down", cols_down)):
        hs = h[sl]
        if hs.shape[0] == 0:
            out.append(jnp.zeros((K, 0, cols), h.dtype))
            continue
        orb = _dense(params[f"orb_{name}"], hs)
        orb = orb * _envelope(cfg.envelope, params[f"env_{name}"], ae[sl], r_ae[sl])
        out.append(jnp.transpose(orb.reshape(hs.shape[0], K, cols), (1, 0, 2)))
    return out[0], out[1]


def _psi_from_orbitals(up, down, full_det: bool):
    if full_det:
        return logsumdet([jnp.concatenate([up, down], axis=1)])
    return logsumdet([up, down])


# ---------------------------------------------------------------- FermiNet

def _spin_means(h, n_up: int, axis: int):
    """Means over spin-up and spin-down electrons along `axis` (skipping an empty spin)."""
    parts = []
    for sl in (slice(0, n_up), slice(n_up, None)):
        sub = jax.lax.slice_in_dim(h, sl.start, sl.stop if sl.stop is not None else h.shape[axis],
                                   axis=axis)
        if sub.shape[axis] > 0:
            parts.append(jnp.mean(sub, axis=axis, keepdims=True))
    return parts


def _mixed_input(h1, h2, n_up: int):
    """FermiNet layer input: own features, spin-mean one-electron features, mean pair features."""
    n = h1.shape[0]
    g1 = [jnp.broadcast_to(g, (n, g.shape[-1])) for g in _spin_means(h1, n_up, axis=0)]
    g2 = [g[:, 0, :] for g in _spin_means(h2, n_up, axis=1)]
    return jnp.concatenate([h1, *g1, *g2], axis=-1)


def _n_spin_groups(electrons) -> int:
    return sum(1 for e in electrons if e > 0)


def _stream_inputs(ae, r_ae, ee, r_ee, distance_features: bool):
    """Inputs of the one- and two-electron streams: (n, A*4) and (n, n, 4) with the distances
    |r_i - R_I|, |r_i - r_j| as extra columns, or (n, A*3) and (n, n, 3) (vectors only)."""
    n = ae.shape[0]
    if distance_features:
        return (jnp.concatenate([ae, r_ae], axis=-1).reshape(n, -1),
                jnp.concatenate([ee, r_ee], axis=-1))
    return ae.reshape(n, -1), ee


def make_ferminet(system, cfg: NetworkConfig, hidden_dims, dtype, distance_features: bool = True) -> Ansatz:
    """FermiNet: one- and two-electron streams with spin-mean mixing, K determinants.

    distance_features=True (the paper): the streams' inputs are r_i - R_I with |r_i - R_I|
    and r_i - r_j with |r_i - r_j|; False: the vectors only, for both streams. Either way
    the envelopes use |r_i - R_I| (bohr): they are not inputs to the streams.
    """
    atoms = jnp.asarray(system.positions, dtype)
    electrons = system.electrons
    n_up = electrons[0]
    n_atoms = atoms.shape[0]
    act = ACTIVATIONS[cfg.activation]
    groups = _n_spin_groups(electrons)

    def init(key):
        params = {"layers": []}
        d1, d2 = (4 * n_atoms, 4) if distance_features else (3 * n_atoms, 3)
        for i, (w1, w2) in enumerate(hidden_dims):
            key, k1, k2 = jax.random.split(key, 3)
            layer = {"one": _dense_init(k1, d1 * (1 + groups) + d2 * groups, w1, dtype)}
            if i < len(hidden_dims) - 1:           # the last pair layer's output is never used
                layer["two"] = _dense_init(k2, d2, w2, dtype)
            params["layers"].append(layer)
            d1, d2 = w1, w2
        key, korb = jax.random.split(key)
        params.update(_orbital_init(korb, electrons, d1, cfg, n_atoms, dtype))
        return params

    def features(params, x):
        ae, r_ae, ee, r_ee = _pair_features(x, atoms)
        h1, h2 = _stream_inputs(ae, r_ae, ee, r_ee, distance_features)
        for layer in params["layers"]:
            new1 = act(_dense(layer["one"], _mixed_input(h1, h2, n_up)))
            h1 = new1 + h1 if (cfg.residual and new1.shape == h1.shape) else new1
            if "two" in layer:
                new2 = act(_dense(layer["two"], h2))
                h2 = new2 + h2 if (cfg.residual and new2.shape == h2.shape) else new2
        return h1, ae, r_ae

    def orbitals(params, x):
        h1, ae, r_ae = features(params, x)
        return _orbital_matrices(params, h1, ae, r_ae, electrons, cfg)

    def apply(params, x):
        up, down = orbitals(params, x)
        return _psi_from_orbitals(up, down, cfg.full_det)

    return Ansatz(init, apply, orbitals, cfg.full_det, cfg.determinants)


# ---------------------------------------------------------------- Slater-Jastrow

def _jastrow(params, r_ee, n_up: int):
    """Pade pair Jastrow sum_{i<j} a r/(1 + b r): a = 1/2 (anti-parallel), 1/4 (parallel).

    The cusp values a make the local energy finite at electron coalescence; b > 0 is learned.
    """
    n = r_ee.shape[0]
    r = r_ee[..., 0]
    spin = jnp.arange(n) < n_up
    parallel = spin[:, None] == spin[None, :]
    a = jnp.where(parallel, 0.25, 0.5)
    b = jnp.where(parallel, jax.nn.softplus(params["b_par"]), jax.nn.softplus(params["b_anti"]))
    u = a * r / (1.0 + b * r)
    upper = jnp.triu(jnp.ones((n, n), bool), k=1)
    return jnp.sum(jnp.where(upper, u, 0.0))


def make_slater_jastrow(system, cfg: NetworkConfig, hidden_dims, dtype, distance_features: bool = True) -> Ansatz:
    """Slater-Jastrow(-backflow): single-particle orbitals, envelopes, a cusp Jastrow.

    distance_features=False drops |r_i - R_I| from the orbital MLP's inputs (vectors only);
    the envelopes, the Jastrow factor (a function of |r_i - r_j|) and the backflow network
    (whose input is |r_i - r_j|) are unchanged.
    """
    atoms = jnp.asarray(system.positions, dtype)
    electrons = system.electrons
    n_up = electrons[0]
    n_atoms = atoms.shape[0]
    act = ACTIVATIONS[cfg.activation]
    backflow = cfg.backflow

    def init(key):
        params = {"layers": []}
        d = (4 if distance_features else 3) * n_atoms
        for w1, _ in hidden_dims:
            key, k = jax.random.split(key)
            params["layers"].append(_dense_init(k, d, w1, dtype))
            d = w1
        key, korb, kb1, kb2 = jax.random.split(key, 4)
        params.update(_orbital_init(korb, electrons, d, cfg, n_atoms, dtype))
        params["jastrow"] = {"b_par": jnp.asarray(1.0, dtype), "b_anti": jnp.asarray(1.0, dtype)}
        if backflow:
            width = hidden_dims[0][1]
            params["backflow"] = {"hidden": _dense_init(kb1, 1, width, dtype),
                                  "out": jax.tree.map(lambda a: a * 0.1,
                                                      _dense_init(kb2, width, 1, dtype))}
        return params

    def coordinates(params, x):
        if not backflow:
            return x
        _, _, ee, r_ee = _pair_features(x, atoms)
        eta = _dense(params["backflow"]["out"], act(_dense(params["backflow"]["hidden"], r_ee)))
        return x + jnp.sum(eta * ee, axis=1)          # ee_ii = 0: no self term

    def orbitals(params, x):
        q = coordinates(params, x)
        ae, r_ae, ee, r_ee = _pair_features(q, atoms)
        h, _ = _stream_inputs(ae, r_ae, ee, r_ee, distance_features)
        for layer in params["layers"]:
            new = act(_dense(layer, h))
            h = new + h if (cfg.residual and new.shape == h.shape) else new
        return _orbital_matrices(params, h, ae, r_ae, electrons, cfg)

    def apply(params, x):
        up, down = orbitals(params, x)
        sign, logabs = _psi_from_orbitals(up, down, cfg.full_det)
        _, _, _, r_ee = _pair_features(x, atoms)
        return sign, logabs + _jastrow(params["jastrow"], r_ee, n_up)

    return Ansatz(init, apply, orbitals, cfg.full_det, cfg.determinants)


MAKERS = {"ferminet": make_ferminet, "slater_jastrow": make_slater_jastrow}


def make_ansatz(experiment) -> Ansatz:
    """The ansatz named by ``network.type`` for the experiment's system (an `Experiment`)."""
    net = experiment.network
    return MAKERS[net.type](experiment.system, net, net.layers, dtype_of(experiment.run.precision),
                            distance_features=net.distance_features)


def param_count(params) -> int:
    return int(sum(np.size(p) for p in jax.tree.leaves(params)))
