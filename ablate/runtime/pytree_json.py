"""Pytree structures as JSON, rebuilt only from node types of known packages: what checkpoints
and the program store keep instead of a pickle.

A pickle runs whatever code its bytes name, so a file that ablate reads back from a run
directory or a cache folder (which a shared storage, another user or a copied folder may have
put there) must not be one. Arrays go to ``.npy``/``.npz`` (read with ``allow_pickle=False``);
the tree around them (dicts, lists, tuples, None, and the registered pytree classes of the
optimisers: kfac-jax's states, optax's named tuples) is this JSON:

- a leaf: ``"*"``;
- a node: ``{"type": T, "aux": A, "children": [...]}``, where ``T`` is ``dict``, ``list``,
  ``tuple``, ``None`` or ``"module:QualName"`` of a class in an allowed package
  (:data:`PACKAGES`), and ``A`` is the node's auxiliary data (dict keys, a dataclass's field
  names) in JSON, tuples tagged ``{"tuple": [...]}``.

Reading resolves a class by its module and name, never imports a module outside
:data:`PACKAGES`, and builds the node through JAX's own pytree registry
(``PyTreeDef.from_node_data_and_children``), so it constructs registered pytree containers and
nothing else.

Files keep module paths, and ablate's modules have moved: ablate was one flat folder
(``ablate.training``, ``ablate.config``...) before its modules went into folders by layer
(``ablate.vmc.training``, ``ablate.config.experiment``...; docs/architecture.md).
:data:`MOVED_MODULES` is the one map from each old module path to its new one, and
:func:`current_module` applies it: reading a tree here and unpickling an old checkpoint
(``ablate.vmc.checkpoint.decode_pickle``) both go through it, so a file written before the move
still loads. Add to it whenever a module moves again.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import jax

PACKAGES = ("ablate", "kfac_jax", "optax", "jax", "flax", "haiku")   # node classes come from these only
_BUILTIN = {dict: "dict", list: "list", tuple: "tuple", type(None): "None"}
_BY_NAME = {v: k for k, v in _BUILTIN.items()}

# old module path -> where it lives now (see the module docstring); exact names, no prefixes
MOVED_MODULES = {
    "ablate.run_record": "ablate.records.run_record",
    "ablate.study_record": "ablate.records.study_record",
    "ablate.jsonio": "ablate.records.jsonio",
    "ablate.provenance": "ablate.records.provenance",
    "ablate.errors": "ablate.records.errors",
    "ablate.redact": "ablate.records.redact",
    "ablate.safe_paths": "ablate.records.safe_paths",
    "ablate.stats": "ablate.records.stats",
    "ablate.config": "ablate.config.experiment",
    "ablate.compose": "ablate.config.compose",
    "ablate.systems": "ablate.config.systems",
    "ablate.jax_setup": "ablate.runtime.jax_setup",
    "ablate.xla_env": "ablate.runtime.xla_env",
    "ablate.program_store": "ablate.runtime.program_store",
    "ablate.startup": "ablate.runtime.startup",
    "ablate.kfac_tracing": "ablate.runtime.kfac_tracing",
    "ablate.pytree_json": "ablate.runtime.pytree_json",
    "ablate.networks": "ablate.wavefunction.networks",
    "ablate.attention": "ablate.wavefunction.attention",
    "ablate.envelopes": "ablate.wavefunction.envelopes",
    "ablate.network_layout": "ablate.wavefunction.network_layout",
    "ablate.small_det": "ablate.wavefunction.small_det",
    "ablate.hamiltonian": "ablate.hamiltonian.local_energy",
    "ablate.ferminet_laplacian": "ablate.hamiltonian.ferminet_laplacian",
    "ablate.gto": "ablate.hamiltonian.gto",
    "ablate.wandb_sink": "ablate.tracking.wandb_sink",
    "ablate.wandb_records": "ablate.tracking.wandb_records",
    "ablate.mcmc": "ablate.vmc.mcmc",
    "ablate.optimizers": "ablate.vmc.optimizers",
    "ablate.pretrain": "ablate.vmc.pretrain",
    "ablate.training": "ablate.vmc.training",
    "ablate.checkpoint": "ablate.vmc.checkpoint",
    "ablate.preemption": "ablate.vmc.preemption",
    "ablate.stretch": "ablate.vmc.stretch",
    "ablate.cost": "ablate.vmc.cost",
    "ablate.recorder": "ablate.vmc.recorder",
    "ablate.fingerprint": "ablate.vmc.fingerprint",
    "ablate.run": "ablate.vmc.run",
    "ablate.help": "ablate.cli.help",
    "ablate.contract_docs": "ablate.cli.contract_docs",
    "ablate.sweep_cli": "ablate.cli.sweep_cli",
}


def current_module(module: str) -> str:
    """Where the module a file names lives now: :data:`MOVED_MODULES`' new path for an old one,
    else ``module`` itself."""
    return MOVED_MODULES.get(module, module)


class TreeFormatError(ValueError):
    """A structure that cannot be written as JSON, or JSON that does not describe one."""


# ----------------------------------------------------------------------------- writing


def structure_to_json(treedef) -> Any:
    """A ``PyTreeDef`` as JSON (see the module docstring); TreeFormatError for a node type or
    auxiliary data this format does not hold."""
    data = treedef.node_data()
    if data is None:
        return "*"
    cls, aux = data
    return {"type": _type_name(cls), "aux": _aux_to_json(aux),
            "children": [structure_to_json(c) for c in treedef.children()]}


def _type_name(cls: type) -> str:
    if cls in _BUILTIN:
        return _BUILTIN[cls]
    name = f"{cls.__module__}:{cls.__qualname__}"
    if cls.__module__.split(".")[0] not in PACKAGES or "<locals>" in cls.__qualname__:
        raise TreeFormatError(f"pytree node type {name} is not from {', '.join(PACKAGES)}")
    return name


def _aux_to_json(aux: Any) -> Any:
    if aux is None or isinstance(aux, (bool, int, float, str)):
        return aux
    if isinstance(aux, tuple):
        return {"tuple": [_aux_to_json(a) for a in aux]}
    if isinstance(aux, list):
        return [_aux_to_json(a) for a in aux]
    raise TreeFormatError(f"pytree auxiliary data of type {type(aux).__name__} ({aux!r:.60})")


# ----------------------------------------------------------------------------- reading


def structure_from_json(data: Any):
    """The ``PyTreeDef`` that :func:`structure_to_json` wrote; TreeFormatError when the JSON is
    not such a structure or names a class outside :data:`PACKAGES` or not a pytree node."""
    if data == "*":
        return jax.tree.structure(0)
    if not isinstance(data, dict) or not isinstance(data.get("children"), list):
        raise TreeFormatError(f"not a pytree node: {str(data)[:80]}")
    cls = _resolve_type(data.get("type"))
    children = [structure_from_json(c) for c in data["children"]]
    try:
        return jax.tree_util.PyTreeDef.from_node_data_and_children(
            jax.tree_util.default_registry, (cls, _aux_from_json(data.get("aux"))), children)
    except Exception as err:  # noqa: BLE001 - e.g. a class that is not a registered pytree node
        raise TreeFormatError(f"cannot build a {data.get('type')} node ({type(err).__name__}: {err})") from None


def _resolve_type(name: Any) -> type:
    if name in _BY_NAME:
        return _BY_NAME[name]
    if not isinstance(name, str) or ":" not in name:
        raise TreeFormatError(f"not a node type: {name!r:.80}")
    module, _, qualname = name.partition(":")
    module = current_module(module)
    if module.split(".")[0] not in PACKAGES:
        raise TreeFormatError(f"node type {name} is not from {', '.join(PACKAGES)}: refused")
    try:
        obj = sys.modules.get(module) or importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise TreeFormatError(f"unknown node type {name} ({err})") from None
    if not isinstance(obj, type):
        raise TreeFormatError(f"node type {name} is not a class")
    return obj


def _aux_from_json(aux: Any) -> Any:
    if isinstance(aux, dict):
        if set(aux) != {"tuple"} or not isinstance(aux["tuple"], list):
            raise TreeFormatError(f"bad auxiliary data {str(aux)[:80]}")
        return tuple(_aux_from_json(a) for a in aux["tuple"])
    if isinstance(aux, list):
        return [_aux_from_json(a) for a in aux]
    return aux
