"""FermiNet's kinetic energy by a forward Laplacian written for its structure.

folx's forward Laplacian carries (value, Jacobian, Laplacian) through any function, one
primitive at a time. This module does the same for `ablate.wavefunction.networks.make_ferminet` only, by
hand, so that it can use what folx cannot see in a traced graph:

- the layer-0 one-electron inputs (r_i - R_I, |r_i - R_I|) and the envelopes depend on r_i
  alone: their Jacobians are (n, 3, F), not (n, 3n, F);
- a pair-stream value is a function of d_ij = r_i - r_j alone, so one 3-vector Jacobian per
  pair serves both electrons (d/dr_j = -d/dr_i) and its Laplacian over all 3n coordinates is
  twice the one over d (off the diagonal; the diagonal i = j is constant);
- the spin means of the one-electron stream are the same for every electron: their Jacobian is
  multiplied by its slice of the layer's weights once per walker, not once per electron, and
  the layer's input is never concatenated;
- the determinant's derivatives need A^-1 dA/dx_c for the 3n coordinates c: one matrix product
  A^-1 [dA/dx_1 ... dA/dx_3n] per determinant, and the sum over the K determinants gives
  lap psi / psi = sum_k w_k (lap log det_k + |grad log det_k|^2), w_k = det_k / psi, directly.

The arithmetic is the same as the network's (`tests/test_ferminet_laplacian.py` checks the
kinetic energy against folx and the Hessian trace in float64 over activations, residuals,
determinant layouts, envelopes, distance features and spin configurations), only arranged to
do less of it. The network's shapes, column orders and parameter names come from the layout
both modules read (`ablate.wavefunction.network_layout.FermiNetLayout`), its envelopes from
`ablate.wavefunction.envelopes`. Units: bohr in, Hartree out.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ablate.wavefunction.envelopes import Envelope
from ablate.wavefunction.network_layout import (InputFeatures, LayerLayout, MixedInput, OrbitalLayout,
                                                dense_weights)
from ablate.wavefunction.networks import ACTIVATIONS, ferminet_layout


class Local(NamedTuple):
    """Per-electron values that depend on that electron's own coordinates only."""
    v: jax.Array   # (m, F)
    j: jax.Array   # (m, 3, F): d v_i / d r_i
    lap: jax.Array  # (m, F): Laplacian over r_i


class Pair(NamedTuple):
    """Pair-stream values, functions of d_ij = r_i - r_j (zero derivatives on the diagonal)."""
    v: jax.Array   # (n, n, F)
    j: jax.Array   # (n, n, 3, F): d v_ij / d d_ij  (= d/dr_i = -d/dr_j)
    lap: jax.Array  # (n, n, F): Laplacian over d_ij (half the Laplacian over all coordinates)


class Full(NamedTuple):
    """One-electron-stream values that depend on every electron."""
    v: jax.Array   # (m, F)
    j: jax.Array   # (m, n, 3, F): d v_i / d r_k
    lap: jax.Array  # (m, F): Laplacian over all 3n coordinates


def _activation_derivatives(name: str) -> Callable:
    """z -> (act(z), act'(z), act''(z)), elementwise."""
    act = ACTIVATIONS[name]
    if name == "tanh":
        def tanh3(z):
            t = jnp.tanh(z)
            d1 = 1.0 - t * t
            return t, d1, -2.0 * t * d1
        return tanh3

    def derivatives(z):
        first = lambda u: jax.jvp(act, (u,), (jnp.ones_like(u),))
        (value, d1), (_, d2) = jax.jvp(first, (z,), (jnp.ones_like(z),))
        return value, d1, d2
    return derivatives


def _local_of(fn: Callable, xs) -> Local:
    """Value, Jacobian and Laplacian of fn: R^3 -> R^F at every row of xs (m, 3)."""
    def one(x):
        value = fn(x)
        jac = jax.jacfwd(fn)(x)                       # (F, 3)
        hess = jax.jacfwd(jax.jacfwd(fn))(x)          # (F, 3, 3)
        return value, jac.T, jnp.trace(hess, axis1=-2, axis2=-1)
    return Local(*jax.vmap(one)(xs))


def _embed(local: Local, n: int, first: int) -> Full:
    """A local value of electrons first..first+m as a Full one (zero off its own electron)."""
    m = local.v.shape[0]
    own = (np.arange(n)[None, :] == first + np.arange(m)[:, None]).astype(local.v.dtype)
    return Full(local.v, own[:, :, None, None] * local.j[:, None], local.lap)


def _activated(activate: Callable, z_v, z_j, z_lap, lap_axes):
    """act(z) with its Jacobian and Laplacian; lap_axes: z_j's coordinate axes."""
    a, d1, d2 = activate(z_v)
    jac = jnp.expand_dims(d1, tuple(range(d1.ndim - 1, d1.ndim - 1 + len(lap_axes)))) * z_j
    lap = d1 * z_lap + d2 * jnp.sum(z_j * z_j, axis=lap_axes)
    return a, jac, lap


def _stream_inputs(features: InputFeatures, atoms, x):
    """The streams' inputs with their derivatives: one-electron (Local) and pair (Pair)."""
    n = x.shape[0]
    ae = x[:, None, :] - atoms[None]                          # (n, A, 3)
    r_ae = jnp.sqrt(jnp.sum(ae**2, axis=-1))                   # (n, A)
    eye3 = jnp.broadcast_to(jnp.eye(3, dtype=x.dtype), ae.shape + (3,))  # (n, A, 3, 3): [.., feature, coord]
    unit = ae / r_ae[..., None]
    v1 = features.columns(ae, r_ae[..., None])                             # (n, A, width)
    j1 = features.columns(eye3, unit[..., None, :], axis=-2)               # (n, A, width, 3)
    l1 = features.columns(jnp.zeros_like(ae), 2.0 / r_ae[..., None])
    one = Local(features.per_electron(v1), features.per_electron(jnp.moveaxis(j1, -1, 1)),
                features.per_electron(l1))

    ee = x[:, None, :] - x[None, :, :]                         # (n, n, 3)
    eye = jnp.eye(n, dtype=x.dtype)
    off = (1.0 - eye)[..., None]
    r_ee = jnp.sqrt(jnp.sum(ee**2, axis=-1, keepdims=True) + eye[..., None])  # 1 on the diagonal
    eye3p = jnp.broadcast_to(jnp.eye(3, dtype=x.dtype), (n, n, 3, 3))
    v2 = features.columns(ee, r_ee * off)
    j2 = features.columns(eye3p, (ee / r_ee)[..., None, :], axis=-2)     # (n, n, width, 3)
    l2 = features.columns(jnp.zeros_like(ee), 2.0 / r_ee) * off
    return one, Pair(v2, jnp.swapaxes(j2, -1, -2) * off[..., None], l2)


def _one_electron_layer(mixed: MixedInput, one: dict, h, pair: Pair, n: int):
    """z_i = [h_i, spin means of h, spin means of the pair stream over j] @ w + b, with its
    Jacobian (n, n, 3, W) and Laplacian; h is a Local (layer 0) or a Full."""
    w, b = dense_weights(one)
    w_h, w_g, w_p = mixed.weights(w)
    v = h.v @ w_h + b
    lap = h.lap @ w_h
    local = isinstance(h, Local)
    jac = _embed(Local(v, h.j @ w_h, lap), n, 0).j if local else h.j @ w_h
    for spin, wg in zip(mixed.spins, w_g):
        a, c = spin.start, spin.stop
        v = v + jnp.mean(h.v[a:c], axis=0) @ wg
        lap = lap + jnp.mean(h.lap[a:c], axis=0) @ wg
        if local:   # d mean_s h / d r_k = h_k's own Jacobian / n_s for k in s
            g = jnp.zeros((n, 3, wg.shape[-1]), v.dtype).at[a:c].set((h.j[a:c] @ wg) / spin.size)
        else:
            g = jnp.mean(h.j[a:c], axis=0) @ wg                  # (n, 3, W)
        jac = jac + g[None]
    # pair means: d mean_{j in s} p_ij / d r_k = (delta_ik sum_{j in s} J_ij - [k in s] J_ik) / n_s
    summed, parts = 0.0, []
    for spin, wp in zip(mixed.spins, w_p):
        a, c = spin.start, spin.stop
        wp = wp / spin.size
        v = v + jnp.sum(pair.v[:, a:c], axis=1) @ wp
        lap = lap + (2.0 * jnp.sum(pair.lap[:, a:c], axis=1)) @ wp
        summed = summed + jnp.sum(pair.j[:, a:c], axis=1) @ wp          # (n, 3, W)
        parts.append(pair.j[:, a:c] @ wp)                               # (n, n_s, 3, W)
    r = jnp.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    own = jnp.eye(n, dtype=v.dtype)[:, :, None, None]
    return v, jac + own * summed[:, None] - r, lap


def _layer(layer: LayerLayout, layer_params: dict, activate: Callable, h, pair: Pair, n: int):
    """One FermiNet layer over the one-electron (Local or Full) and pair streams."""
    one, two = layer.params(layer_params)
    new = Full(*_activated(activate, *_one_electron_layer(layer.mixed, one, h, pair, n), (1, 2)))
    if layer.residual_one:
        old = _embed(h, n, 0) if isinstance(h, Local) else h
        new = Full(new.v + old.v, new.j + old.j, new.lap + old.lap)
    if two is not None:
        w, b = dense_weights(two)
        v2, j2, l2 = _activated(activate, pair.v @ w + b, pair.j @ w, pair.lap @ w, (2,))
        if layer.residual_two:
            v2, j2, l2 = v2 + pair.v, j2 + pair.j, l2 + pair.lap
        pair = Pair(v2, j2, l2)
    return new, pair


def _envelope_rows(envelope: Envelope, p: dict, atoms, xs) -> Local:
    """The network's envelopes of electrons at xs (m, 3), as a Local (m, K*cols)."""
    def of_one(xi):
        d = xi[None, :] - atoms                                 # (A, 3)
        r = jnp.linalg.norm(d, axis=-1, keepdims=True)
        return envelope.apply(p, d[None], r[None])[0]
    return _local_of(of_one, xs)


def _orbital_rows(layout: OrbitalLayout, params: dict, atoms, h: Full, x, n: int) -> list:
    """Per occupied spin, the orbital rows of its electrons: value (m, K*cols), Jacobian
    (m, n, 3, K*cols) and Laplacian (m, K*cols)."""
    rows = []
    for spin in layout.occupied:
        a, c = spin.start, spin.stop
        orbital, envelope = spin.orbital_params(params)
        w, b = dense_weights(orbital)
        o = h.v[a:c] @ w + b
        o_j = h.j[a:c] @ w                                        # (m, n, 3, KC)
        o_lap = h.lap[a:c] @ w
        env = _envelope_rows(layout.envelope, envelope, atoms, x[a:c])
        own = _embed(Local(o, env.j, env.lap), n, a).j            # env's Jacobian on own electron
        idx = np.arange(spin.size)
        o_own = o_j[idx, a + idx]                                 # (m, 3, KC): d o_i / d r_i
        v = o * env.v
        jac = o_j * env.v[:, None, None, :] + own * o[:, None, None, :]
        lap = o_lap * env.v + 2.0 * jnp.sum(o_own * env.j, axis=1) + o * env.lap
        rows.append((v, jac, lap))
    return rows


def _determinant_blocks(layout: OrbitalLayout, rows: list, n: int) -> list:
    """The determinants' blocks as (values (K, m, m), Jacobians (K, m, 3n, m), Laplacians (K, m, m))."""
    per_spin = [(layout.determinant_major(v),
                 layout.determinant_major(jac.reshape(v.shape[0], n * 3, -1)),
                 layout.determinant_major(lap)) for v, jac, lap in rows]
    return list(zip(*(layout.blocks(part) for part in zip(*per_spin))))


def _log_det_terms(matrix, jac, lap):
    """For blocks (K, m, m) with Jacobian (K, m, c, m): sign, log|det|, d log|det|/dx_c
    (K, c) and lap log|det| (K,)."""
    sign, logdet = jnp.linalg.slogdet(matrix)
    inv = jnp.linalg.inv(matrix)
    t = jnp.einsum("kab,kbcd->kacd", inv, jac)                 # A^-1 dA/dx_c: (K, m, c, m)
    grad = jnp.einsum("kaca->kc", t)
    lap_log = (jnp.einsum("kab,kba->k", inv, lap)
               - jnp.sum(t * jnp.transpose(t, (0, 3, 2, 1)), axis=(1, 2, 3)))
    return sign, logdet, grad, lap_log


def _kinetic_of_blocks(blocks: list):
    """-1/2 lap psi / psi (Hartree) from the determinants' blocks:
    lap psi / psi = sum_k w_k (lap log|det_k| + |grad log|det_k||^2), w_k = det_k / psi."""
    sign, logdet, grad, lap_log = 1.0, 0.0, 0.0, 0.0
    for block in blocks:
        s, l, g, lp = _log_det_terms(*block)
        sign, logdet, grad, lap_log = sign * s, logdet + l, grad + g, lap_log + lp
    scaled = sign * jnp.exp(logdet - jnp.max(logdet))
    weights = scaled / jnp.sum(scaled)
    return -0.5 * jnp.sum(weights * (lap_log + jnp.sum(grad**2, axis=-1)))


def make_kinetic(system, cfg, dtype, distance_features: bool = True) -> Callable:
    """T(params, x) = -1/2 lap psi / psi (Hartree) of the network `make_ferminet` builds with the
    same system, network config (its ``layers``), dtype and distance_features, for one walker
    x (n, 3) in bohr; vmap it over a batch."""
    atoms = jnp.asarray(system.positions, dtype)
    n = sum(system.electrons)
    layout = ferminet_layout(system, cfg, cfg.layers, distance_features)
    activate = _activation_derivatives(cfg.activation)

    def kinetic(params, x):
        h, pair = _stream_inputs(layout.features, atoms, x)
        for layer, layer_params in layout.layer_params(params):
            h, pair = _layer(layer, layer_params, activate, h, pair, n)
        rows = _orbital_rows(layout.orbitals, params, atoms, h, x, n)
        return _kinetic_of_blocks(_determinant_blocks(layout.orbitals, rows, n))

    return kinetic
