"""The Psiformer's pieces (von Glehn, Spencer and Pfau, ICLR 2023), as pure functions over pytrees.

Our own implementation from the paper's description, not code from elsewhere:

- **Embedding**: each electron's input row is, per atom (atom-major), r_i - R_I (3 columns,
  bohr) then |r_i - R_I| (1 column; dropped with ``network.distance_features=false``), then its
  spin (+1 up, -1 down); one dense layer maps it to the model width d = num_heads x heads_dim.
  There is no pairwise (electron-electron) stream.
- **Layers** (``num_layers``): multi-head self-attention over the electrons' rows, then an MLP,
  each with a residual::

      f = h + W_o concat_heads( softmax(q k^T / sqrt(heads_dim)) v ),  q, k, v = h W_q, h W_k, h W_v
      h' = f + MLP(f)                     MLP: tanh dense layers through mlp_hidden_dims back to d

  with ``layer_norm`` an (optional) LayerNorm of h before the attention and of f before the MLP.
  Attention treats the electrons as an unordered set: permuting the input rows permutes the
  output rows (permutation equivariance), so the orbitals built on top are equivariant and the
  determinants antisymmetric.
- **Jastrow factor** ``simple_ee`` (the paper's e-e form, cusp-satisfying)::

      J = sum_{i<j, same spin} -1/4 a_par^2 / (a_par + r_ij) + sum_{i<j, opposite} -1/2 a_anti^2 / (a_anti + r_ij)

  with a = |alpha| learned (alpha starts at 1 bohr), so a + r_ij > 0.

  dJ/dr_ij at r_ij = 0 is 1/4 (parallel) and 1/2 (anti-parallel) whatever a: Kato's cusps.

The orbitals, envelopes and determinants are FermiNet's (`ablate.wavefunction.networks` assembles them).
Dense layers are ``x @ w (+ b)`` over per-electron leading axes, so kfac-jax registers them as
(repeated) dense layers; the attention weights q k^T and softmax are parameter-free.
Distances in bohr; log|psi| dimensionless.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ablate.wavefunction.network_layout import dense, dense_init

LAYER_NORM_EPS = 1e-5


def weight_init(key, n_in: int, n_out: int, dtype) -> dict:
    """A dense layer without bias: {"w": (n_in, n_out)}, w ~ N(0, 1/n_in)."""
    return {"w": jax.random.normal(key, (n_in, n_out), dtype) / np.sqrt(n_in)}


def linear(p: dict, x):
    """x @ w over x's leading axes (a dense layer without bias)."""
    return x @ p["w"]


def layer_norm(p: dict, x):
    """LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * scale + offset."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean((x - mean) ** 2, axis=-1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + LAYER_NORM_EPS) * p["scale"] + p["offset"]


def layer_norm_init(width: int, dtype) -> dict:
    return {"scale": jnp.ones((width,), dtype), "offset": jnp.zeros((width,), dtype)}


@dataclasses.dataclass(frozen=True)
class AttentionLayout:
    """Shape of the Psiformer's attention stack: model width ``num_heads * heads_dim``."""

    num_layers: int
    num_heads: int
    heads_dim: int
    mlp_hidden_dims: tuple[int, ...]
    layer_norm: bool

    @property
    def width(self) -> int:
        """Model width d (the per-electron stream the orbitals read)."""
        return self.num_heads * self.heads_dim

    def init(self, key, n_in: int, dtype) -> dict:
        """{"embed": dense (n_in, d), "layers": [{"q", "k", "v", "o", "mlp": [dense...], "ln1", "ln2"}]}."""
        d = self.width
        key, kemb = jax.random.split(key)
        params = {"embed": dense_init(kemb, n_in, d, dtype), "layers": []}
        for _ in range(self.num_layers):
            key, kq, kk, kv, ko, kmlp = jax.random.split(key, 6)
            layer = {"q": weight_init(kq, d, d, dtype), "k": weight_init(kk, d, d, dtype),
                     "v": weight_init(kv, d, d, dtype), "o": weight_init(ko, d, d, dtype), "mlp": []}
            widths = (d, *self.mlp_hidden_dims, d)
            for a, b in zip(widths[:-1], widths[1:]):
                kmlp, k = jax.random.split(kmlp)
                layer["mlp"].append(dense_init(k, a, b, dtype))
            if self.layer_norm:
                layer["ln1"], layer["ln2"] = layer_norm_init(d, dtype), layer_norm_init(d, dtype)
            params["layers"].append(layer)
        return params

    def self_attention(self, layer: dict, h):
        """Multi-head self-attention over the rows of h (n, d) -> (n, d), before W_o."""
        n = h.shape[0]
        split = lambda p: linear(p, h).reshape(n, self.num_heads, self.heads_dim)
        q, k, v = split(layer["q"]), split(layer["k"]), split(layer["v"])
        logits = jnp.einsum("ihc,jhc->hij", q, k) / np.sqrt(self.heads_dim)
        weights = jax.nn.softmax(logits, axis=-1)                  # (heads, n, n): rows sum to 1
        return jnp.einsum("hij,jhc->ihc", weights, v).reshape(n, self.width)

    def apply(self, params: dict, inputs, act=jnp.tanh):
        """The stream h (n, d) from the per-electron inputs (n, n_in)."""
        h = dense(params["embed"], inputs)
        for layer in params["layers"]:
            a = layer_norm(layer["ln1"], h) if self.layer_norm else h
            f = h + linear(layer["o"], self.self_attention(layer, a))
            m = layer_norm(layer["ln2"], f) if self.layer_norm else f
            for p in layer["mlp"]:
                m = act(dense(p, m))
            h = f + m
        return h


def spin_column(electrons, dtype):
    """(n, 1): +1 for the spin-up electrons (first), -1 for the spin-down ones."""
    n_up, n_down = electrons
    return jnp.concatenate([jnp.ones((n_up, 1), dtype), -jnp.ones((n_down, 1), dtype)])


# ---------------------------------------------------------------- the Jastrow factor

def simple_ee_init(dtype) -> dict:
    return {"alpha_par": jnp.asarray(1.0, dtype), "alpha_anti": jnp.asarray(1.0, dtype)}


def simple_ee_jastrow(params: dict, r_ee, n_up: int):
    """The paper's e-e Jastrow J (module docstring) from the distances r_ee (n, n, 1), bohr.

    Sums over i < j only; psi is multiplied by exp(J), so log|psi| gains J.
    """
    n = r_ee.shape[0]
    r = r_ee[..., 0]
    spin = jnp.arange(n) < n_up
    parallel = spin[:, None] == spin[None, :]
    a = jnp.abs(jnp.where(parallel, params["alpha_par"], params["alpha_anti"]))   # a + r > 0
    c = jnp.where(parallel, 0.25, 0.5)
    u = -c * a**2 / (a + r)
    upper = jnp.triu(jnp.ones((n, n), bool), k=1)
    return jnp.sum(jnp.where(upper, u, 0.0))
