"""Which ``network.*`` keys each ansatz reads, and the one-line error for one it does not.

`ablate.compose` checks every ``network.X=...`` override against the composed ``network.type``:
``network.width=64`` under ``network=psiformer`` is refused before any work (exit code 2). Scale
presets may set keys of other ansatzes (``scale=paper`` sets FermiNet's and the Psiformer's
sizes); only what the user overrides is checked. Imports neither JAX nor Hydra.
"""

from __future__ import annotations

import dataclasses

from ablate.config import NetworkConfig
from ablate.errors import ConfigError

_COMMON_NETWORK_KEYS = ("type", "determinants", "full_det", "envelope", "activation", "distance_features")
# The keys of ``network.*`` each ansatz reads; any other is a bad input for it.
NETWORK_KEYS_OF: dict[str, tuple[str, ...]] = {
    "ferminet": (*_COMMON_NETWORK_KEYS, "width", "depth", "pairwise_width", "hidden_dims", "residual"),
    "psiformer": (*_COMMON_NETWORK_KEYS, "num_layers", "num_heads", "heads_dim", "mlp_hidden_dims",
                  "layer_norm", "jastrow"),
    "slater_jastrow": (*_COMMON_NETWORK_KEYS, "width", "depth", "pairwise_width", "hidden_dims", "residual",
                       "backflow"),
}


def check_network_key(name: str, value, network_type: str) -> None:
    """ConfigError when the dotted key ``network.X`` set to ``value`` is not read by
    ``network=network_type`` (keys of other groups pass)."""
    field = name.split(".", 1)[1] if name.startswith("network.") else ""
    known = {f.name for f in dataclasses.fields(NetworkConfig)}
    if field not in known or field in NETWORK_KEYS_OF.get(network_type, known):
        return
    own = ", ".join(k for k in NETWORK_KEYS_OF[network_type] if k not in _COMMON_NETWORK_KEYS)
    users = [t for t, keys in NETWORK_KEYS_OF.items() if field in keys]
    raise ConfigError(name, value, f"does not apply to network={network_type} (it is a key of "
                                   f"network={'/'.join(users)}); network={network_type}'s own keys: {own}")
