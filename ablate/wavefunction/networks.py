"""Wave-function ansatzes: FermiNet, Psiformer and Slater-Jastrow, as pure functions over pytrees.

An `Ansatz` has
  ``init(key) -> params``,
  ``apply(params, x) -> (sign, log|psi|)`` for one walker ``x`` of shape (n_electrons, 3) in
  bohr, electrons ordered spin-up first,
  ``orbitals(params, x) -> (up, down)``: the determinant matrices' rows for the spin-up and
  spin-down electrons, shapes (K, n_up, n_cols) and (K, n_down, n_cols), used by pretraining,
  ``values(params, x) -> (sign, log|psi|)``: apply's numbers with small determinants taken by
  `ablate.wavefunction.small_det` (no LAPACK call per batch), for the Metropolis-Hastings samplers, which
  need values only; ``apply`` (and so every derivative: gradients, Laplacians, KFAC, HMC)
  keeps ``jnp.linalg.slogdet``.
Batches are made with ``jax.vmap``. Dense layers are plain ``x @ w + b`` over per-electron
leading axes, so kfac-jax recognises them as (repeated) dense layers.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ablate.config.experiment import FermiNetConfig, PsiformerConfig, SlaterJastrowConfig
from ablate.runtime.jax_setup import dtype_of
from ablate.wavefunction import small_det
from ablate.wavefunction.attention import (AttentionLayout, simple_ee_init, simple_ee_jastrow,
                                           spin_column)
from ablate.wavefunction.envelopes import envelope_named
from ablate.wavefunction.network_layout import (FermiNetLayout, InputFeatures, OrbitalLayout, dense,
                                                dense_init)

ACTIVATIONS = {"tanh": jnp.tanh, "silu": jax.nn.silu, "gelu": jax.nn.gelu}


@dataclasses.dataclass(frozen=True)
class Ansatz:
    init: Callable
    apply: Callable
    orbitals: Callable
    full_det: bool
    n_determinants: int
    values: Callable


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


def _stream_inputs(features: InputFeatures, ae, r_ae, ee, r_ee):
    """Inputs of the one- and two-electron streams: (n, A * width) and (n, n, width)."""
    return features.per_electron(features.columns(ae, r_ae)), features.columns(ee, r_ee)


# ---------------------------------------------------------------- determinants

def logsumdet(matrices: list, slogdet: Callable = jnp.linalg.slogdet):
    """sign and log|sum_k prod_blocks det(M_k)| for blocks of shape (K, m, m), stably.

    ``slogdet``: LAPACK's (``jnp.linalg.slogdet``, with JAX's and folx's derivative rules) or,
    for values only, ``small_det.slogdet``."""
    sign, logdet = 1.0, 0.0
    for m in matrices:
        if m.shape[-1] == 0:
            continue
        s, l = slogdet(m)
        sign, logdet = sign * s, logdet + l
    shift = jax.lax.stop_gradient(jnp.max(logdet))
    total = jnp.sum(sign * jnp.exp(logdet - shift))
    return jnp.sign(total), jnp.log(jnp.abs(total)) + shift


def _values(apply: Callable) -> Callable:
    """`apply` with its determinants taken by `small_det.slogdet`: the `Ansatz.values` of it."""
    def values(params, x):
        return apply(params, x, slogdet=small_det.slogdet)
    return values


def _orbital_matrices(layout: OrbitalLayout, params, h, ae, r_ae):
    """Per-spin orbital rows (K, n_spin, n_cols) = dense(h) * envelope."""
    out = []
    for spin in layout.spins:
        hs = h[spin.start:spin.stop]
        if spin.size == 0:
            out.append(jnp.zeros((layout.determinants, 0, spin.columns), h.dtype))
            continue
        orbital, envelope = spin.orbital_params(params)
        orb = dense(orbital, hs) * layout.envelope.apply(envelope, ae[spin.start:spin.stop],
                                                          r_ae[spin.start:spin.stop])
        out.append(layout.determinant_major(orb))
    return out[0], out[1]


# ---------------------------------------------------------------- FermiNet

def ferminet_layout(system, cfg: FermiNetConfig, hidden_dims,
                    distance_features: bool = True) -> FermiNetLayout:
    """The layout of the FermiNet `make_ferminet` builds with these arguments."""
    return FermiNetLayout.of(system.electrons, len(system.positions), hidden_dims, cfg.determinants,
                             cfg.full_det, envelope_named(cfg.envelope), cfg.residual,
                             distance_features)


def make_ferminet(system, cfg: FermiNetConfig, dtype, distance_features: bool = True) -> Ansatz:
    """FermiNet: one- and two-electron streams with spin-mean mixing, K determinants.

    distance_features=True (the paper): the streams' inputs are r_i - R_I with |r_i - R_I|
    and r_i - r_j with |r_i - r_j|; False: the vectors only, for both streams. Either way
    the envelopes use |r_i - R_I| (bohr): they are not inputs to the streams.
    The shapes and the parameters' names are `ferminet_layout`'s (`ablate.wavefunction.network_layout`).
    """
    atoms = jnp.asarray(system.positions, dtype)
    act = ACTIVATIONS[cfg.activation]
    layout = ferminet_layout(system, cfg, cfg.layers, distance_features)

    def init(key):
        return layout.init(key, dtype)

    def features(params, x):
        ae, r_ae, ee, r_ee = _pair_features(x, atoms)
        h1, h2 = _stream_inputs(layout.features, ae, r_ae, ee, r_ee)
        for layer, layer_params in layout.layer_params(params):
            one, two = layer.params(layer_params)
            new1 = act(dense(one, layer.mixed.concatenate(h1, h2)))
            h1 = new1 + h1 if layer.residual_one else new1
            if two is not None:
                new2 = act(dense(two, h2))
                h2 = new2 + h2 if layer.residual_two else new2
        return h1, ae, r_ae

    def orbitals(params, x):
        h1, ae, r_ae = features(params, x)
        return _orbital_matrices(layout.orbitals, params, h1, ae, r_ae)

    def apply(params, x, slogdet=jnp.linalg.slogdet):
        return logsumdet(layout.orbitals.blocks(orbitals(params, x)), slogdet)

    return Ansatz(init, apply, orbitals, cfg.full_det, cfg.determinants, _values(apply))


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


def make_slater_jastrow(system, cfg: SlaterJastrowConfig, dtype, distance_features: bool = True) -> Ansatz:
    """Slater-Jastrow(-backflow): single-particle orbitals, envelopes, a cusp Jastrow.

    distance_features=False drops |r_i - R_I| from the orbital MLP's inputs (vectors only);
    the envelopes, the Jastrow factor (a function of |r_i - r_j|) and the backflow network
    (whose input is |r_i - r_j|) are unchanged.
    """
    atoms = jnp.asarray(system.positions, dtype)
    n_up = system.electrons[0]
    n_atoms = atoms.shape[0]
    act = ACTIVATIONS[cfg.activation]
    backflow = cfg.backflow
    hidden_dims = cfg.layers
    features = InputFeatures(distance_features)
    orbital_layout = OrbitalLayout.of(system.electrons, cfg.determinants, cfg.full_det,
                                      envelope_named(cfg.envelope))

    def init(key):
        params = {"layers": []}
        d = features.width * n_atoms
        for w1, _ in hidden_dims:
            key, k = jax.random.split(key)
            params["layers"].append(dense_init(k, d, w1, dtype))
            d = w1
        key, korb, kb1, kb2 = jax.random.split(key, 4)
        params.update(orbital_layout.init(korb, d, n_atoms, dtype))
        params["jastrow"] = {"b_par": jnp.asarray(1.0, dtype), "b_anti": jnp.asarray(1.0, dtype)}
        if backflow:
            width = hidden_dims[0][1]
            params["backflow"] = {"hidden": dense_init(kb1, 1, width, dtype),
                                  "out": jax.tree.map(lambda a: a * 0.1,
                                                      dense_init(kb2, width, 1, dtype))}
        return params

    def coordinates(params, x):
        if not backflow:
            return x
        _, _, ee, r_ee = _pair_features(x, atoms)
        eta = dense(params["backflow"]["out"], act(dense(params["backflow"]["hidden"], r_ee)))
        return x + jnp.sum(eta * ee, axis=1)          # ee_ii = 0: no self term

    def orbitals(params, x):
        q = coordinates(params, x)
        ae, r_ae, ee, r_ee = _pair_features(q, atoms)
        h, _ = _stream_inputs(features, ae, r_ae, ee, r_ee)
        for layer in params["layers"]:
            new = act(dense(layer, h))
            h = new + h if (cfg.residual and new.shape == h.shape) else new
        return _orbital_matrices(orbital_layout, params, h, ae, r_ae)

    def apply(params, x, slogdet=jnp.linalg.slogdet):
        sign, logabs = logsumdet(orbital_layout.blocks(orbitals(params, x)), slogdet)
        _, _, _, r_ee = _pair_features(x, atoms)
        return sign, logabs + _jastrow(params["jastrow"], r_ee, n_up)

    return Ansatz(init, apply, orbitals, cfg.full_det, cfg.determinants, _values(apply))


# ---------------------------------------------------------------- Psiformer

def psiformer_layout(cfg: PsiformerConfig) -> AttentionLayout:
    """The attention stack `make_psiformer` builds from ``network.*``."""
    return AttentionLayout(cfg.num_layers, cfg.num_heads, cfg.heads_dim, tuple(cfg.mlp_hidden_dims),
                           cfg.layer_norm)


def make_psiformer(system, cfg: PsiformerConfig, dtype, distance_features: bool = True) -> Ansatz:
    """Psiformer (von Glehn et al. 2023): self-attention over the electrons (`ablate.wavefunction.attention`),
    FermiNet's orbitals, envelopes and K determinants, and with ``network.jastrow=simple_ee`` the
    paper's e-e Jastrow factor.

    Parameters: {"attention": {"embed", "layers"}, "orb_up", "orb_down", "env_up", "env_down"
    [, "jastrow": {"alpha_par", "alpha_anti"}]}.
    """
    atoms = jnp.asarray(system.positions, dtype)
    n_up = system.electrons[0]
    act = ACTIVATIONS[cfg.activation]
    features = InputFeatures(distance_features)
    attention = psiformer_layout(cfg)
    orbital_layout = OrbitalLayout.of(system.electrons, cfg.determinants, cfg.full_det,
                                      envelope_named(cfg.envelope))
    spins = spin_column(system.electrons, dtype)
    n_in = features.width * atoms.shape[0] + 1

    def init(key):
        katt, korb = jax.random.split(key)
        params = {"attention": attention.init(katt, n_in, dtype)}
        params.update(orbital_layout.init(korb, attention.width, atoms.shape[0], dtype))
        if cfg.jastrow == "simple_ee":
            params["jastrow"] = simple_ee_init(dtype)
        return params

    def orbitals(params, x):
        ae, r_ae, _, _ = _pair_features(x, atoms)
        inputs = jnp.concatenate([features.per_electron(features.columns(ae, r_ae)), spins], axis=-1)
        h = attention.apply(params["attention"], inputs, act)
        return _orbital_matrices(orbital_layout, params, h, ae, r_ae)

    def apply(params, x, slogdet=jnp.linalg.slogdet):
        sign, logabs = logsumdet(orbital_layout.blocks(orbitals(params, x)), slogdet)
        if cfg.jastrow == "simple_ee":
            _, _, _, r_ee = _pair_features(x, atoms)
            logabs = logabs + simple_ee_jastrow(params["jastrow"], r_ee, n_up)
        return sign, logabs

    return Ansatz(init, apply, orbitals, cfg.full_det, cfg.determinants, _values(apply))


MAKERS = {"ferminet": make_ferminet, "psiformer": make_psiformer, "slater_jastrow": make_slater_jastrow}


def make_ansatz(experiment) -> Ansatz:
    """The ansatz named by ``network.type`` for the experiment's system (an `Experiment`)."""
    net = experiment.network
    return MAKERS[net.type](experiment.system, net, dtype_of(experiment.run.precision),
                            distance_features=net.distance_features)


def param_count(params) -> int:
    return int(sum(np.size(p) for p in jax.tree.leaves(params)))
