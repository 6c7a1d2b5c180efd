"""The FermiNet's parameter and feature layout: the contract `ablate.wavefunction.networks` builds the network
from and `ablate.hamiltonian.ferminet_laplacian` differentiates it by.

Parameters are a pytree of dicts (checkpoints store it as it is)::

    {"layers": [{"one": dense, "two": dense}, ..., {"one": dense}],   # no "two" on the last layer
     "orb_up": dense, "orb_down": dense,                              # orbitals, K*cols columns
     "env_up": envelope, "env_down": envelope}                        # `ablate.wavefunction.envelopes`

with ``dense = {"w": (n_in, n_out), "b": (n_out,)}``. The key names are written and read here
only: `FermiNetLayout.init` builds the pytree, and the accessors below
(`FermiNetLayout.layer_params`, `LayerLayout.params`, `Spin.orbital_params`, `dense`,
`dense_weights`) hand the network and its Laplacian the arrays. The column orders are declared here too:

- `InputFeatures`: per atom (one-electron stream) or per pair (two-electron stream), the vector
  (3 columns) then its length (1, with distance features); atoms atom-major;
- `MixedInput`: a layer's one-electron input is [h_i, the spin means of h over each occupied
  spin, the spin means over j of the pair stream h_ij for each occupied spin];
- `OrbitalLayout`: column k * cols + c of a spin's orbital rows is determinant k's column c.

Distances in bohr.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ablate.wavefunction.envelopes import Envelope


def dense_init(key, n_in: int, n_out: int, dtype) -> dict:
    """A dense layer's parameters: w ~ N(0, 1/n_in), b ~ N(0, 1)."""
    wkey, bkey = jax.random.split(key)
    return {
        "w": jax.random.normal(wkey, (n_in, n_out), dtype) / np.sqrt(n_in),
        "b": jax.random.normal(bkey, (n_out,), dtype),
    }


def dense_weights(p: dict):
    """A dense layer's (w, b)."""
    return p["w"], p["b"]


def dense(p: dict, x):
    """x @ w + b over x's leading axes (kfac-jax sees a (repeated) dense layer)."""
    return x @ p["w"] + p["b"]


@dataclasses.dataclass(frozen=True)
class InputFeatures:
    """Columns of the streams' inputs: per atom (one-electron) or per pair (two-electron), the
    vector r (3 columns) then, with ``distances``, its length |r| (1 column)."""
    distances: bool

    @property
    def width(self) -> int:
        """Columns per atom or per pair."""
        return 4 if self.distances else 3

    def columns(self, vector, length, axis: int = -1):
        """The vector's columns then the length's (dropped without distances) along ``axis``:
        the order of the features and of their derivatives."""
        return jnp.concatenate([vector, length], axis=axis) if self.distances else vector

    @staticmethod
    def per_electron(per_atom):
        """(..., A, width) -> (..., A * width), atom-major: the one-electron stream's input."""
        return per_atom.reshape(per_atom.shape[:-2] + (-1,))


class Spin(NamedTuple):
    """One spin's electrons (rows start..stop of a walker) and its determinant block's columns."""
    name: str        # "up" or "down"
    start: int
    stop: int
    columns: int     # n (one n x n determinant) or the spin's own count

    @property
    def size(self) -> int:
        return self.stop - self.start

    def orbital_params(self, params: dict):
        """(dense, envelope) parameters of this spin's orbitals."""
        return params[f"orb_{self.name}"], params[f"env_{self.name}"]


@dataclasses.dataclass(frozen=True)
class MixedInput:
    """Column blocks of a layer's one-electron input, in order: own features (``one``), the mean of
    the one-electron stream over each occupied spin (``one`` each), the mean over j of the pair
    stream h_ij for each occupied spin (``pair`` each)."""
    one: int
    pair: int
    spins: tuple[Spin, ...]          # the occupied spins

    @property
    def width(self) -> int:
        return self.one * (1 + len(self.spins)) + self.pair * len(self.spins)

    def weights(self, w):
        """A layer's weights (width, out) split by block: own, [per spin one-electron means],
        [per spin pair means]."""
        g = len(self.spins)
        own = w[:self.one]
        one_means = [w[self.one * (1 + k):self.one * (2 + k)] for k in range(g)]
        start = self.one * (1 + g)
        pair_means = [w[start + self.pair * k:start + self.pair * (k + 1)] for k in range(g)]
        return own, one_means, pair_means

    def concatenate(self, h1, h2):
        """The layer input (n, width) from h1 (n, one) and h2 (n, n, pair)."""
        n = h1.shape[0]
        one_means = [jnp.broadcast_to(jnp.mean(h1[s.start:s.stop], axis=0, keepdims=True),
                                      (n, self.one)) for s in self.spins]
        pair_means = [jnp.mean(h2[:, s.start:s.stop], axis=1, keepdims=True)[:, 0, :]
                      for s in self.spins]
        return jnp.concatenate([h1, *one_means, *pair_means], axis=-1)


class LayerLayout(NamedTuple):
    """One FermiNet layer: its one-electron input blocks, output widths and residual connections."""
    mixed: MixedInput
    one: int                 # one-electron stream output width
    two: int | None          # pair stream output width; None: no pair layer (the last layer)
    residual_one: bool       # h1 + layer(h1): residuals on and equal widths
    residual_two: bool

    def params(self, layer: dict):
        """(one, two) dense parameters of the layer; two is None without a pair layer."""
        return layer["one"], (layer["two"] if self.two is not None else None)

    def init(self, k_one, k_two, dtype) -> dict:
        """The layer's parameters; the pair stream enters with ``mixed.pair`` columns."""
        layer = {"one": dense_init(k_one, self.mixed.width, self.one, dtype)}
        if self.two is not None:           # the last pair layer's output is never used
            layer["two"] = dense_init(k_two, self.mixed.pair, self.two, dtype)
        return layer


@dataclasses.dataclass(frozen=True)
class OrbitalLayout:
    """Per-spin orbital rows: (m, K * cols) = dense(h) * envelope, columns determinant-major."""
    spins: tuple[Spin, Spin]         # up, down (a spin may have no electrons)
    determinants: int
    full_det: bool
    envelope: Envelope

    @staticmethod
    def of(electrons, determinants: int, full_det: bool, envelope: Envelope) -> "OrbitalLayout":
        n_up, n_down = electrons
        n = n_up + n_down
        cols_up, cols_down = (n, n) if full_det else (n_up, n_down)
        return OrbitalLayout((Spin("up", 0, n_up, cols_up), Spin("down", n_up, n, cols_down)),
                             determinants, full_det, envelope)

    @property
    def occupied(self) -> tuple[Spin, ...]:
        return tuple(s for s in self.spins if s.size > 0)

    def init(self, key, n_in: int, n_atoms: int, dtype) -> dict:
        k_up, k_down = jax.random.split(key)
        up, down = self.spins
        K = self.determinants
        return {
            "orb_up": dense_init(k_up, n_in, K * up.columns, dtype),
            "orb_down": dense_init(k_down, n_in, K * down.columns, dtype),
            "env_up": self.envelope.init(n_atoms, K * up.columns, dtype),
            "env_down": self.envelope.init(n_atoms, K * down.columns, dtype),
        }

    def determinant_major(self, rows):
        """(..., K * cols) -> (K, ..., cols): determinant k's columns first."""
        K = self.determinants
        split = rows.reshape(rows.shape[:-1] + (K, rows.shape[-1] // K))
        return jnp.moveaxis(split, -2, 0)

    def blocks(self, per_spin: Sequence) -> list:
        """The determinants' blocks from the spins' (K, m_s, ...) rows: one n x n block stacked
        along the rows (full_det) or one per spin."""
        return [jnp.concatenate(list(per_spin), axis=1)] if self.full_det else list(per_spin)


@dataclasses.dataclass(frozen=True)
class FermiNetLayout:
    """Everything about a FermiNet's shape: inputs, layers and orbitals."""
    features: InputFeatures
    n_atoms: int
    layers: tuple[LayerLayout, ...]
    orbitals: OrbitalLayout

    @staticmethod
    def of(electrons, n_atoms: int, hidden_dims, determinants: int, full_det: bool,
           envelope: Envelope, residual: bool, distance_features: bool) -> "FermiNetLayout":
        features = InputFeatures(distance_features)
        orbitals = OrbitalLayout.of(electrons, determinants, full_det, envelope)
        layers = []
        d1, d2 = features.width * n_atoms, features.width
        for i, (w1, w2) in enumerate(hidden_dims):
            last = i == len(hidden_dims) - 1
            layers.append(LayerLayout(MixedInput(d1, d2, orbitals.occupied), w1,
                                      None if last else w2,
                                      residual and w1 == d1, residual and not last and w2 == d2))
            d1, d2 = w1, w2
        return FermiNetLayout(features, n_atoms, tuple(layers), orbitals)

    @property
    def output_width(self) -> int:
        """Width of the one-electron stream the orbitals read."""
        return self.layers[-1].one if self.layers else self.features.width * self.n_atoms

    def init(self, key, dtype) -> dict:
        """The parameters: three keys split off per layer, then one for the orbitals."""
        params = {"layers": []}
        for layer in self.layers:
            key, k1, k2 = jax.random.split(key, 3)
            params["layers"].append(layer.init(k1, k2, dtype))
        key, korb = jax.random.split(key)
        params.update(self.orbitals.init(korb, self.output_width, self.n_atoms, dtype))
        return params

    def layer_params(self, params: dict):
        """(LayerLayout, its parameters) for every layer."""
        return zip(self.layers, params["layers"])
