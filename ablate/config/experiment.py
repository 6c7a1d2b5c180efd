"""The config keys' declarations, and validating a composed config into a typed :class:`Experiment`.

`validate` checks every value a run depends on and returns an :class:`Experiment`: frozen
dataclasses per group (system, network, MCMC, optimiser, pretraining, evaluation, logger),
which is all the engine ever sees (never a DictConfig). The network's is the config of its
ansatz (:class:`FermiNetConfig`, :class:`PsiformerConfig`, :class:`SlaterJastrowConfig`), which
has only the keys that ansatz reads. A bad value raises `ConfigError` with one line naming the
key, the value and what is allowed, before any expensive work starts.

The allowed values live in one place: the field declarations below (their types, ``Literal``
choices, bounds, meanings and units), made with `key`; `read_group` checks a mapping against
them and `key_table` lists them. Validation, the ``--help`` page and docs read them; the sweep
file's keys (`sweeps.space.SweepFile`) are declared the same way. The ansätze's declared
defaults are their only defaults: ``conf/network/*.yaml`` composes them (`ablate.config.compose`).
Composing a config with Hydra from ``conf/`` is `ablate.config.compose`'s. This module imports neither
JAX nor Hydra (the sweep driver and ``--help`` use it).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import typing
from typing import Any, Literal, Mapping

from omegaconf import DictConfig, ListConfig, OmegaConf

from ablate.config.systems import System, build_system
from ablate.records import jsonio
from ablate.records.errors import ConfigError
from ablate.records.safe_paths import check_path_text


# ----------------------------------------------------------------------------- declaring keys


def key(doc: str, default: Any = dataclasses.MISSING, *, unit: str | None = None,
        low: float | None = None, high: float | None = None, low_open: bool = False,
        high_open: bool = False, parse=None, allowed: str | None = None):
    """A config key: its meaning, unit and bounds (``low <= value`` or ``low < value`` with
    ``low_open``). The type annotation gives the kind (int, float, bool, str, a ``Literal`` of
    choices, ``X | None`` for nullable); ``parse(name, raw)`` replaces the generic check."""
    meta = {"doc": doc, "unit": unit, "low": low, "high": high, "low_open": low_open,
            "high_open": high_open, "parse": parse, "allowed": allowed}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _bounds_text(meta) -> str:
    parts = []
    if meta["low"] is not None:
        parts.append((">" if meta["low_open"] else ">=") + f" {meta['low']:g}")
    if meta["high"] is not None:
        parts.append(("<" if meta["high_open"] else "<=") + f" {meta['high']:g}")
    return " and ".join(parts)


def _in_bounds(value, meta) -> bool:
    low, high = meta["low"], meta["high"]
    if low is not None and (value <= low if meta["low_open"] else value < low):
        return False
    if high is not None and (value >= high if meta["high_open"] else value > high):
        return False
    return True


def _kind(tp) -> tuple[Any, bool]:
    """(base type, nullable) of an annotation like ``int | None``."""
    args = typing.get_args(tp)
    if type(tp).__name__ in ("UnionType", "_UnionGenericAlias") or typing.get_origin(tp) is typing.Union:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else tp), len(rest) != len(args)
    return tp, False


def choices(tp) -> tuple | None:
    """The allowed values of a ``Literal[...]`` annotation (else None)."""
    base, _ = _kind(tp)
    return typing.get_args(base) if typing.get_origin(base) is Literal else None


def describe(tp, meta) -> str:
    """What a key allows, as the error message and the help page say it."""
    base, nullable = _kind(tp)
    opts = choices(tp)
    if meta.get("allowed"):
        text = meta["allowed"]
    elif opts is not None:
        text = "allowed: " + ", ".join("true" if o is True else "false" if o is False else str(o) for o in opts)
    elif base is bool:
        text = "true or false"
    elif base is int:
        text = "an integer" + (f" {_bounds_text(meta)}" if _bounds_text(meta) else "")
    elif base is float:
        text = "a number" + (f" {_bounds_text(meta)}" if _bounds_text(meta) else "")
    elif base is str:
        text = "a string"
    else:
        text = meta["doc"]
    return text + (" (or null)" if nullable and opts is None else "")


def _check(name: str, raw: Any, tp, meta) -> Any:
    if meta["parse"] is not None:
        return meta["parse"](name, raw)
    base, nullable = _kind(tp)
    if raw is None and nullable:
        return None
    opts = choices(tp)
    bad = ConfigError(name, raw, describe(tp, meta) if opts is not None else "must be " + describe(tp, meta))
    if opts is not None:
        if raw not in opts or isinstance(raw, bool) != any(isinstance(o, bool) for o in opts):
            raise bad
        return raw
    if base is bool:
        if not isinstance(raw, bool):
            raise bad
        return raw
    if base is int:
        if not _is_int(raw) or not _in_bounds(raw, meta):
            raise bad
        return int(raw)
    if base is float:
        if not _is_number(raw) or not _in_bounds(raw, meta):
            raise bad
        return float(raw)
    if base is str:
        if not isinstance(raw, str):
            raise bad
        return raw
    return raw


def to_container(node) -> Any:
    """A DictConfig/ListConfig as plain (resolved) Python containers; anything else as it is."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def read_group(cls, node: Mapping | None, prefix: str):
    """Builds the frozen dataclass ``cls`` from a config mapping, checking every key."""
    node = to_container(node) or {}
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        name = f"{prefix}{f.name}"
        if f.name in node:
            values[f.name] = _check(name, node[f.name], hints[f.name], f.metadata)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(name, None, "missing: " + describe(hints[f.name], f.metadata))
    return cls(**values)


def key_table(cls, prefix: str) -> list[tuple[str, str, str | None, str]]:
    """(dotted key, meaning, unit, allowed values) for every key of a group (the help page)."""
    hints = typing.get_type_hints(cls)
    return [(f"{prefix}{f.name}", f.metadata["doc"], f.metadata["unit"], describe(hints[f.name], f.metadata))
            for f in dataclasses.fields(cls) if f.init and "doc" in f.metadata]


# ----------------------------------------------------------------------------- the groups


def _folder(name: str, raw) -> str | None:
    """A folder path as text (None stays None): a path with a control character (a newline in a
    batch script's line, an escape in a log) is bad input (ablate.records.safe_paths)."""
    if raw is None:
        if name == "output_root":
            raise ConfigError(name, raw, "a folder path without control characters")
        return None
    if not isinstance(raw, str) or not raw:
        raise ConfigError(name, raw, "a folder path without control characters")
    check_path_text(name, raw)
    return raw


def _hidden_dims(name: str, raw) -> tuple[tuple[int, int], ...] | None:
    if raw is None:
        return None
    ok = isinstance(raw, (list, tuple)) and bool(raw) and all(
        isinstance(layer, (list, tuple)) and len(layer) == 2 and all(_is_int(w) and w >= 1 for w in layer)
        for layer in raw)
    if not ok:
        raise ConfigError(name, raw, "a non-empty list of [one_electron_width, two_electron_width], both >= 1")
    return tuple((int(a), int(b)) for a, b in raw)


def _widths(name: str, raw) -> tuple[int, ...]:
    ok = isinstance(raw, (list, tuple)) and all(_is_int(w) and w >= 1 for w in raw)
    if not ok:
        raise ConfigError(name, raw, "a list of layer widths, each an integer >= 1 (may be empty)")
    return tuple(int(w) for w in raw)


NetworkType = Literal["ferminet", "psiformer", "slater_jastrow"]
Envelope = Literal["isotropic", "diagonal", "full"]
Activation = Literal["tanh", "silu", "gelu"]
Jastrow = Literal["none", "simple_ee"]

# The ansätze's keys, each declared once (meaning, default, bounds). A key several ansätze read is
# declared by one function here; each ansatz's config below lists the keys it reads, in the order
# its config and records show them, so a key an ansatz does not read is not in its config. These
# declared defaults are the only ones: ``conf/network/<ansatz>.yaml`` takes them from here
# (`ablate.config.compose` hands them to Hydra) and holds only what differs; the scale presets set sizes.


def _type(name: str):
    return key("ansatz: FermiNet, Psiformer or Slater-Jastrow(-backflow), chosen by network=NAME", name)


def _width():
    return key("one-electron stream units per layer (Slater-Jastrow: hidden units of the orbital MLP)", 32, low=1)


def _depth():
    return key("number of layers", 2, low=1)


def _pairwise_width():
    return key("two-electron stream units per layer (Slater-Jastrow: backflow units, with backflow only)", 8, low=1)


def _hidden_dims_key():
    return key("explicit per-layer [[one, two], ...]; overrides width/depth/pairwise_width", None,
               parse=_hidden_dims, allowed="a list of [one, two] layer widths, each >= 1")


def _residual():
    return key("residual connections between equal-width layers (the Psiformer always has them)", True)


def _determinants():
    return key("number of determinants K", 4, low=1)


def _full_det(default: bool = True):
    return key("true: one n x n determinant; false: det(up) * det(down)", default)


def _envelope():
    return key("exponential envelope of the orbitals", "isotropic")


def _activation():
    return key("activation function (the Psiformer: of its MLPs)", "tanh")


def _distance_features():
    return key("inputs include |r_i - R_I| and |r_i - r_j| (the paper); false: the vectors only, for both "
               "streams (the envelopes keep |r_i - R_I|)", True)


class _Streams:
    """What FermiNet and Slater-Jastrow, which have one- and two-electron streams, derive from
    their widths."""

    @property
    def layers(self) -> tuple[tuple[int, int], ...]:
        """(one-electron, two-electron) widths of each layer, units."""
        if self.hidden_dims is not None:
            return self.hidden_dims
        return tuple((self.width, self.pairwise_width) for _ in range(self.depth))

    @property
    def stream_width(self) -> int:
        """Units per electron of the widest layer (the one-electron stream's)."""
        return max(one for one, _ in self.layers)


@dataclasses.dataclass(frozen=True)
class FermiNetConfig(_Streams):
    """FermiNet (``network=ferminet``; Pfau et al. 2020): one- and two-electron streams, K determinants."""

    type: NetworkType = _type("ferminet")
    width: int = _width()
    depth: int = _depth()
    pairwise_width: int = _pairwise_width()
    hidden_dims: tuple | None = _hidden_dims_key()
    determinants: int = _determinants()
    full_det: bool = _full_det()
    envelope: Envelope = _envelope()
    residual: bool = _residual()
    activation: Activation = _activation()
    distance_features: bool = _distance_features()


@dataclasses.dataclass(frozen=True)
class PsiformerConfig:
    """Psiformer (``network=psiformer``; von Glehn, Spencer and Pfau, ICLR 2023): self-attention
    over the electrons, FermiNet's orbitals, envelopes and K determinants, an e-e Jastrow factor.
    The defaults are quick sizes, our choice: model width 2 x 16 = 32, FermiNet's one-electron
    width."""

    type: NetworkType = _type("psiformer")
    num_layers: int = key("self-attention layers", 2, low=1)
    num_heads: int = key("attention heads per layer", 2, low=1)
    heads_dim: int = key("units per head (model width = num_heads x heads_dim)", 16, low=1)
    mlp_hidden_dims: tuple = key("hidden widths of each layer's MLP ([]: one tanh layer back to the model width, "
                                 "as the paper)", (), parse=_widths,
                                 allowed="a list of layer widths, each an integer >= 1 (may be empty)")
    layer_norm: bool = key("LayerNorm before the attention and before the MLP", False)
    jastrow: Jastrow = key("simple_ee: the paper's cusp-satisfying e-e Jastrow factor; none: determinants only",
                           "simple_ee")
    determinants: int = _determinants()
    full_det: bool = _full_det()
    envelope: Envelope = _envelope()
    activation: Activation = _activation()
    distance_features: bool = _distance_features()

    @property
    def stream_width(self) -> int:
        """Units per electron of the widest layer: the model width num_heads x heads_dim."""
        return self.num_heads * self.heads_dim


@dataclasses.dataclass(frozen=True)
class SlaterJastrowConfig(_Streams):
    """Slater-Jastrow (``network=slater_jastrow``): K determinants of single-particle orbitals (a
    per-electron MLP, no electron mixing) times the envelopes, and a cusp-satisfying pairwise
    Jastrow factor; ``backflow`` adds a pairwise shift of the coordinates before the orbitals."""

    type: NetworkType = _type("slater_jastrow")
    width: int = _width()
    depth: int = _depth()
    pairwise_width: int = _pairwise_width()
    hidden_dims: tuple | None = _hidden_dims_key()
    determinants: int = _determinants()
    full_det: bool = _full_det(False)
    envelope: Envelope = _envelope()
    residual: bool = _residual()
    activation: Activation = _activation()
    distance_features: bool = _distance_features()
    backflow: bool = key("pairwise backflow of the electron coordinates", False)


NetworkConfig = FermiNetConfig | PsiformerConfig | SlaterJastrowConfig
# network.type -> the config of that ansatz
ANSATZ_TYPES: dict[str, type] = {"ferminet": FermiNetConfig, "psiformer": PsiformerConfig,
                                 "slater_jastrow": SlaterJastrowConfig}


def declared_defaults(cls) -> dict[str, Any]:
    """A config's keys and their declared defaults, as plain YAML values (tuples as lists): what
    ``conf/network/<ansatz>.yaml`` composes from (`ablate.config.compose`)."""
    out = {}
    for f in dataclasses.fields(cls):
        value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def ansatz_keys(network_type: str) -> tuple[str, ...]:
    """The ``network.*`` keys ``network=network_type`` reads (those of its config)."""
    return tuple(f.name for f in dataclasses.fields(ANSATZ_TYPES[network_type]))


def read_network(node: Mapping | None, prefix: str = "network."):
    """The typed config of the ansatz ``network.type`` names, from a config mapping. Keys of other
    ansätze in it (a scale preset sets the sizes of several) are not read."""
    node = to_container(node) or {}
    kind = node.get("type", "ferminet")
    if kind not in ANSATZ_TYPES:
        raise ConfigError(f"{prefix}type", kind, "allowed: " + ", ".join(ANSATZ_TYPES))
    return read_group(ANSATZ_TYPES[kind], node, prefix)


def ansatze_reading(name: str) -> list[str]:
    """The ansätze whose config has the dotted key ``network.X`` (none for any other key)."""
    field = name.split(".", 1)[1] if name.startswith("network.") else ""
    return [t for t in ANSATZ_TYPES if field in ansatz_keys(t)]


def check_network_key(name: str, value, network_type: str) -> None:
    """ConfigError when the dotted key ``network.X`` set to ``value`` is a key of another ansatz,
    not of ``network=network_type`` (keys of other groups, unknown names and unknown ansätze pass)."""
    users = ansatze_reading(name)
    if network_type not in ANSATZ_TYPES or not users or network_type in users:
        return
    common = set.intersection(*(set(ansatz_keys(t)) for t in ANSATZ_TYPES))
    own = ", ".join(k for k in ansatz_keys(network_type) if k not in common)
    raise ConfigError(name, value, f"does not apply to network={network_type} (it is a key of "
                                   f"network={'/'.join(users)}); network={network_type}'s own keys: {own}")


def network_key_table(prefix: str = "network.") -> list[tuple[str, str, str | None, str]]:
    """(dotted key, meaning, unit, allowed values) for every key of every ansatz, once each in
    the order the ansätze declare them; a key not every ansatz reads names the ones that do."""
    rows, seen = [], set()
    for kind, cls in ANSATZ_TYPES.items():
        for name, doc, unit, allowed in key_table(cls, prefix):
            field = name[len(prefix):]
            if field in seen:
                continue
            seen.add(field)
            users = ansatze_reading(name)
            if field == "type":
                allowed = "allowed: " + ", ".join(ANSATZ_TYPES)
            elif len(users) < len(ANSATZ_TYPES):
                doc = f"network={', '.join(users)}: {doc}"
            rows.append((name, doc, unit, allowed))
    return rows


McmcMethod = Literal["mh", "hmc"]
McmcMoves = Literal["all", "one"]


@dataclasses.dataclass(frozen=True)
class McmcConfig:
    """Sampling of |psi|^2: Metropolis-Hastings (the paper) or Hamiltonian Monte Carlo."""

    method: McmcMethod = key("mh: Metropolis-Hastings with Gaussian moves; hmc: Hamiltonian Monte Carlo "
                             "(leapfrog on log|psi|^2)", "mh")
    moves: McmcMoves = key("all: every step moves all electrons at once; one: each step moves the electrons "
                           "one at a time, in turn (a full network evaluation per electron move)", "all")
    steps: int = key("MCMC steps per training iteration", 10, low=1)
    move_width: float = key("initial Gaussian proposal width", 0.02, unit="bohr", low=0, low_open=True)
    adapt: bool = key("adapt the move width toward target_acceptance", True)
    target_acceptance: float = key("acceptance the width adaptation steers to", 0.5, low=0, high=1,
                                   low_open=True, high_open=True)
    burn_in: int = key("MCMC iterations (of `steps` moves) before training", 100, low=0)
    init_width: float = key("std of the initial walker cloud around each nucleus", 1.0, unit="bohr",
                            low=0, low_open=True)
    hmc_step_size: float = key("HMC: initial leapfrog step size (adapted like move_width)", 0.05, unit="bohr",
                               low=0, low_open=True)
    hmc_path_length: int = key("HMC: leapfrog steps per trajectory", 10, low=1)
    hmc_target_acceptance: float = key("HMC: acceptance the step-size adaptation steers to", 0.65, low=0,
                                       high=1, low_open=True, high_open=True)

    @property
    def initial_width(self) -> float:
        """The starting move width (MH) or leapfrog step size (HMC), bohr."""
        return self.hmc_step_size if self.method == "hmc" else self.move_width

    @property
    def target(self) -> float:
        """The acceptance the adaptation steers to for this method."""
        return self.hmc_target_acceptance if self.method == "hmc" else self.target_acceptance


OptimName = Literal["kfac", "adam"]


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """The optimiser (``optim=kfac|adam``) and the learning-rate schedule lr / (1 + t/delay)^decay."""

    name: OptimName = key("optimiser: KFAC (kfac-jax) or Adam (optax)", "kfac")
    iterations: int = key("training iterations", 2000, low=0)
    lr: float = key("learning rate", 0.05, low=0, low_open=True)
    lr_delay: float = key("schedule delay (iterations)", 10000.0, low=0, low_open=True)
    lr_decay: float = key("schedule decay exponent", 1.0, low=0)
    clip_width: float = key("local energies clipped to median +- clip_width * mean|E_L - median| in the gradient",
                            5.0, low=0, low_open=True)
    damping: float = key("KFAC damping", 1e-3, low=0, low_open=True)
    norm_constraint: float = key("KFAC norm constraint on the update", 1e-3, low=0, low_open=True)
    momentum: float = key("KFAC momentum", 0.0, low=0)
    cov_ema_decay: float = key("KFAC curvature moving-average decay", 0.95, low=0, high=1, high_open=True)
    inverse_update_period: int = key("KFAC: iterations between inversions of the curvature factors "
                                     "(1: every iteration, as FermiNet)", 1, low=1)
    b1: float = key("Adam beta1", 0.9, low=0, high=1, high_open=True)
    b2: float = key("Adam beta2", 0.999, low=0, high=1, high_open=True)
    eps: float = key("Adam epsilon", 1e-8, low=0, low_open=True)


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """Pretraining of the orbitals to pyscf Hartree-Fock (``pretrain=hf|none``)."""

    method: Literal["hf", "none"] = key("hf: fit the orbitals to Hartree-Fock; none: start from random", "hf")
    basis: str = key("Gaussian basis of the HF calculation (pyscf name)", "sto-3g")
    iterations: int = key("pretraining iterations", 100, low=0)
    lr: float = key("pretraining (Adam) learning rate", 1e-3, low=0, low_open=True)
    sampling: Literal["hf", "network", "mixture"] = key(
        "walkers sample hf: the Hartree-Fock density (the reference's default); network: the "
        "network's |psi|^2; mixture: half the walkers each", "hf")


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """Frozen-parameter evaluation after training."""

    iterations: int = key("MCMC iterations with frozen parameters whose energies are averaged (at most this "
                          "many when target_stderr_mha is set)", 500, low=1)
    burn_in: int = key("MCMC iterations to re-equilibrate the walkers before evaluation", 100, low=0)
    target_stderr_mha: float | None = key(
        "stop the evaluation once the reblocked standard error of its energy is at most this (checked every "
        "check_every iterations from min_iterations on); null: always run evaluation.iterations",
        None, unit="mHa", low=0, low_open=True)
    min_iterations: int = key("evaluation iterations before target_stderr_mha may stop it", 200, low=1)
    check_every: int = key("iterations between checks of target_stderr_mha", 50, low=1)


@dataclasses.dataclass(frozen=True)
class LoggerConfig:
    """Weights & Biases (``logger=wandb|none``)."""

    kind: Literal["wandb", "none"] = key("wandb: every run is a W&B run; none: run directory only", "none")
    mode: Literal["offline", "online", "disabled"] = key("W&B mode (offline: `wandb sync` uploads later)", "disabled")
    project: str = key("W&B project", "ablate")
    entity: str | None = key("W&B entity (team or user)", None)
    group: str | None = key("W&B group (the study name for sweep trials)", None)
    job_type: str | None = key("W&B job type (the sweep name for sweep trials)", "single")
    name: str | None = key("W&B run name (the trial id for sweep trials)", None)
    tags: list = key("W&B tags", [])
    init_timeout: float = key("seconds to wait for wandb to start before going on without it", 30.0, unit="s",
                              low=0, low_open=True)
    finish_timeout: float = key("seconds to wait for uploads when an online run ends", 300.0, unit="s", low=0)


@dataclasses.dataclass(frozen=True)
class TrialInfo:
    """Set by the sweep driver; copied into summary.json."""

    study: str | None = key("sweep study name", None)
    number: int | None = key("Optuna trial number", None)
    params: dict = key("the swept values, flat keys", {})
    study_uuid: str | None = key("uuid of the study (a run directory of another study is refused)", None)


Precision = Literal["float32", "float64"]
Laplacian = Literal["forward", "hessian"]
MatmulPrecision = Literal["highest", "default", "tensorfloat32"]
SPARSITY_WORDS = ("auto", "dense")
ForwardLaplacian = Literal["auto", "ferminet", "folx"]
CHUNK_WORDS = ("auto", "whole")


def _sparsity(name: str, raw):
    """``auto``, ``dense`` or an integer threshold >= 1 (folx's ``sparsity_threshold``)."""
    if raw in SPARSITY_WORDS or (_is_int(raw) and raw >= 1):
        return raw
    raise ConfigError(name, raw, "allowed: auto, dense or an integer threshold >= 1")


def _chunk(name: str, raw):
    """``auto``, ``whole`` or an integer number of walkers >= 1."""
    if raw in CHUNK_WORDS or (_is_int(raw) and raw >= 1):
        return raw
    raise ConfigError(name, raw, "allowed: auto, whole or an integer number of walkers >= 1")


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Top-level keys of conf/config.yaml."""

    seed: int = key("random seed (parameters, walkers, MCMC)", 0)
    batch_size: int = key("walkers, split over all visible devices", 256, low=1)
    precision: Precision = key("floating-point precision of parameters and walkers", "float32")
    laplacian: Laplacian = key("kinetic energy: forward Laplacian or the trace of the Hessian", "forward")
    forward_laplacian: ForwardLaplacian = key(
        "forward Laplacian: ferminet: ablate's own, written for FermiNet's structure (network=ferminet "
        "only); folx: folx's generic one; auto: ferminet for network=ferminet from 5 electrons, "
        "folx otherwise", "auto")
    laplacian_sparsity: Any = key(
        "forward Laplacian: propagate Jacobians sparsely through values that depend on at most "
        "this many electron coordinates (folx sparsity_threshold); dense: never; auto: by system size",
        "auto", parse=_sparsity, allowed="auto, dense or an integer threshold >= 1")
    energy_chunk: Any = key(
        "local energies are computed this many walkers at a time (a loop over chunks that keeps "
        "the forward Laplacian's intermediates in cache); whole: the whole batch at once; auto: "
        "by size for the forward Laplacian on a CPU, else whole", "auto", parse=_chunk,
        allowed="auto, whole or an integer number of walkers >= 1")
    matmul_precision: MatmulPrecision = key(
        "float32 matrix products: highest (full float32), default or tensorfloat32 (faster on GPUs, "
        "10-bit mantissa inputs)", "highest")
    checkpoint_every: int = key("iterations between checkpoints (a killed run loses at most this many)", 200, low=1)
    output_root: str = key("folder everything a run or study writes goes under", "runs",
                           parse=_folder, allowed="a folder path without control characters")
    run_dir: str | None = key("explicit run directory; the same one again resumes it", None,
                              parse=_folder, allowed="null or a folder path without control characters")
    progress: bool = key("print a progress line every few seconds", True)
    compilation_cache: str | None = key(
        "JAX persistent compilation cache folder, shared by runs and sweeps: auto (per user: $ABLATE_CACHE_DIR, "
        "else $XDG_CACHE_HOME/ablate/jax, else ~/.cache/ablate/jax), a folder, or null (off); safe to delete",
        "auto", parse=_folder, allowed="auto, null or a folder path without control characters")
    scale: str | None = key("the scale preset the run was composed with (set by scale=quick or scale=paper)", None)


@dataclasses.dataclass(frozen=True)
class DebugConfig:
    inject_nan_step: int | None = key("fault injection: energies become NaN from this training step on", None)


# The groups of an Experiment besides its system and its network (`read_network`): (attribute,
# config key prefix, dataclass).
GROUP_TYPES = (
    ("mcmc", "mcmc.", McmcConfig),
    ("optim", "optim.", OptimConfig),
    ("pretrain", "pretrain.", PretrainConfig),
    ("evaluation", "evaluation.", EvaluationConfig),
    ("logger", "logger.", LoggerConfig),
    ("trial", "trial.", TrialInfo),
    ("debug", "debug.", DebugConfig),
    ("run", "", RunSettings),
)


def config_key_table() -> list[tuple[str, str, str | None, str]]:
    """(dotted key, meaning, unit, allowed values) for every key `validate` checks but the
    system's: the network's (`network_key_table`), then each group's (the help page, the docs)."""
    return network_key_table() + [row for _, prefix, cls in GROUP_TYPES for row in key_table(cls, prefix)]


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A validated run: what the engine needs, typed (`validate` makes it; `ablate.vmc.run.run_experiment`
    takes it). ``resolved`` is the composed config, resolved, as nested plain containers (the run
    directory's config.yaml); ``config`` the same flat (dotted keys), recorded in summary.json and W&B."""

    system: System
    network: NetworkConfig
    mcmc: McmcConfig
    optim: OptimConfig
    pretrain: PretrainConfig
    evaluation: EvaluationConfig
    logger: LoggerConfig
    trial: TrialInfo
    debug: DebugConfig
    run: RunSettings
    resolved: dict

    @property
    def config(self) -> dict:
        """The flat resolved config: ``{"network.width": 32, ...}``."""
        return jsonio.flatten(self.resolved)

    @property
    def hidden_dims(self) -> tuple[tuple[int, int], ...]:
        """FermiNet's and Slater-Jastrow's layer widths (`FermiNetConfig.layers`)."""
        return self.network.layers


# ----------------------------------------------------------------------------- validation


def check_devices(run: RunSettings, devices: int) -> None:
    """ConfigError unless the walkers split evenly over ``devices`` (a machine's fact: `validate`
    checks it when told the count, ``ablate.vmc.run`` where the run starts)."""
    if run.batch_size % devices:
        raise ConfigError("batch_size", run.batch_size,
                          f"must be divisible by the number of devices ({devices})")


def validate(cfg, device_count: int | None = None) -> Experiment:
    """Checks every value a run depends on and returns the typed Experiment.

    ``cfg``: a composed DictConfig or the same as a plain dict. ``device_count``: the devices the
    run will be split over, when known here (the sweep driver passes its worker slot's); None
    leaves `check_devices` to where the run starts. Imports no JAX. Raises ConfigError naming the
    first bad key.
    """
    node = to_container(cfg)
    if not isinstance(node, Mapping):
        raise ConfigError("config", node, "a mapping")
    node = copy.deepcopy(dict(node)) if node is cfg else node   # the Experiment's own
    system = build_system(node.get("system") or {})
    groups = {"network": read_network(node.get("network"))}
    for attr, prefix, cls in GROUP_TYPES:
        sub = node if prefix == "" else (node.get(attr) or {})
        groups[attr] = read_group(cls, sub, prefix)
    run = groups["run"]
    if run.forward_laplacian == "ferminet" and groups["network"].type != "ferminet":
        raise ConfigError("forward_laplacian", run.forward_laplacian,
                          f"needs network=ferminet (network.type is {groups['network'].type!r}); "
                          "allowed here: auto, folx")
    evaluation = groups["evaluation"]
    if evaluation.target_stderr_mha is not None and evaluation.min_iterations > evaluation.iterations:
        raise ConfigError("evaluation.min_iterations", evaluation.min_iterations,
                          f"at most evaluation.iterations ({evaluation.iterations})")
    if device_count is not None:
        check_devices(run, device_count)
    return Experiment(system=system, resolved=node, **groups)
