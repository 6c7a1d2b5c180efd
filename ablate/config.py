"""Composing and validating experiment configs.

`compose` builds a config from the Hydra groups in ``conf/`` (the same tree the CLI uses);
`validate` checks every value a run depends on and raises `ConfigError` with one line
naming the key, the value and what is allowed, before any expensive work starts.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from ablate.errors import ConfigError
from ablate.systems import System, build_system

CONF_DIR = Path(os.environ.get("ABLATE_CONF_DIR", Path(__file__).resolve().parents[1] / "conf"))
GROUPS = ("system", "network", "mcmc", "optim", "pretrain", "logger", "scale", "sweep")


def group_options(group: str) -> list[str]:
    """Names of the configs available in a Hydra group (``conf/<group>/*.yaml``)."""
    folder = CONF_DIR / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def check_group_overrides(overrides: list[str]) -> None:
    """Raises ConfigError for ``group=option`` overrides naming an option that does not exist.

    Hydra's own message for this is several lines long; users get one line from us.
    """
    if any(item.lstrip("+").startswith("hydra.searchpath") for item in overrides):
        return  # configs may come from other folders: Hydra itself checks them
    for item in overrides:
        m = re.fullmatch(r"[+~]{0,2}([A-Za-z_]+)=(.*)", item)
        if not m or m.group(1) not in GROUPS:
            continue
        group, option = m.group(1), m.group(2)
        if option not in group_options(group):
            raise ConfigError(group, option, "allowed: " + ", ".join(group_options(group)))


def compose(overrides: list[str] | None = None) -> DictConfig:
    """Composes ``conf/config.yaml`` with Hydra overrides (``["system=He", "seed=3"]``).

    Safe to call many times in one process (and inside a Hydra app).
    Raises ConfigError for an unknown group option or config key.
    """
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = list(overrides or [])
    check_group_overrides(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            return hydra_compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError("overrides", " ".join(overrides), first) from None


def flatten(cfg, prefix: str = "") -> dict:
    """Flat ``{"network.width": 32, ...}`` view of a (resolved) config; lists kept as lists."""
    if isinstance(cfg, (DictConfig, ListConfig)):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    out = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "params":
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A validated run: the config, the system and the resolved layer widths."""

    cfg: DictConfig
    system: System
    hidden_dims: tuple[tuple[int, int], ...]


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _positive_int(cfg, key: str, minimum: int = 1) -> int:
    value = OmegaConf.select(cfg, key)
    if not _is_int(value) or value < minimum:
        raise ConfigError(key, value, f"must be an integer >= {minimum}")
    return value


def _positive_float(cfg, key: str, allow_zero: bool = False) -> float:
    value = OmegaConf.select(cfg, key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ConfigError(key, value, "must be a number " + (">= 0" if allow_zero else "> 0"))
    return float(value)


def _choice(cfg, key: str, allowed: tuple):
    value = OmegaConf.select(cfg, key)
    if value not in allowed:
        raise ConfigError(key, value, "allowed: " + ", ".join(map(str, allowed)))
    return value


def _hidden_dims(cfg) -> tuple[tuple[int, int], ...]:
    dims = cfg.network.get("hidden_dims")
    if dims is None:
        depth = _positive_int(cfg, "network.depth")
        width = _positive_int(cfg, "network.width")
        pair = _positive_int(cfg, "network.pairwise_width")
        return tuple((width, pair) for _ in range(depth))
    if not isinstance(dims, (list, ListConfig)) or not dims:
        raise ConfigError("network.hidden_dims", dims, "a non-empty list of [one, two] widths")
    out = []
    for layer in dims:
        layer = list(layer) if isinstance(layer, (list, ListConfig)) else layer
        if not (isinstance(layer, list) and len(layer) == 2 and all(_is_int(w) and w >= 1
                                                                    for w in layer)):
            raise ConfigError("network.hidden_dims", OmegaConf.to_container(dims),
                              "each layer is [one_electron_width, two_electron_width], both >= 1")
        out.append((layer[0], layer[1]))
    return tuple(out)


def validate(cfg: DictConfig, device_count: int | None = None) -> Experiment:
    """Checks every value a run depends on; raises ConfigError naming the first bad key."""
    system = build_system(cfg.system)
    _choice(cfg, "network.type", ("ferminet", "slater_jastrow"))
    hidden = _hidden_dims(cfg)
    _positive_int(cfg, "network.determinants")
    _choice(cfg, "network.envelope", ("isotropic", "diagonal", "full"))
    _choice(cfg, "network.activation", ("tanh", "silu", "gelu"))
    _choice(cfg, "network.full_det", (True, False))
    _choice(cfg, "network.distance_features", (True, False))   # issue 9

    _positive_int(cfg, "mcmc.steps")
    _positive_float(cfg, "mcmc.move_width")
    _positive_float(cfg, "mcmc.init_width")
    _positive_int(cfg, "mcmc.burn_in", minimum=0)
    target = OmegaConf.select(cfg, "mcmc.target_acceptance")
    if not (isinstance(target, (int, float)) and 0 < target < 1):
        raise ConfigError("mcmc.target_acceptance", target, "must be between 0 and 1")
    # issue 9: sampler method and moves (HMC keys are checked whichever method is chosen)
    _choice(cfg, "mcmc.method", ("mh", "hmc"))
    _choice(cfg, "mcmc.moves", ("all", "one"))
    _positive_float(cfg, "mcmc.hmc_step_size")
    _positive_int(cfg, "mcmc.hmc_path_length")
    hmc_target = OmegaConf.select(cfg, "mcmc.hmc_target_acceptance")
    if not (isinstance(hmc_target, (int, float)) and not isinstance(hmc_target, bool)
            and 0 < hmc_target < 1):
        raise ConfigError("mcmc.hmc_target_acceptance", hmc_target, "must be between 0 and 1")

    name = _choice(cfg, "optim.name", ("kfac", "adam"))
    _positive_int(cfg, "optim.iterations", minimum=0)
    _positive_float(cfg, "optim.lr")
    _positive_float(cfg, "optim.lr_delay")
    _positive_float(cfg, "optim.lr_decay", allow_zero=True)
    _positive_float(cfg, "optim.clip_width")
    if name == "kfac":
        _positive_float(cfg, "optim.damping")
        _positive_float(cfg, "optim.norm_constraint")
        _positive_float(cfg, "optim.momentum", allow_zero=True)

    _choice(cfg, "pretrain.method", ("hf", "none"))
    _positive_int(cfg, "pretrain.iterations", minimum=0)
    _positive_float(cfg, "pretrain.lr")

    batch = _positive_int(cfg, "batch_size")
    if device_count is None:
        import jax
        device_count = jax.device_count()
    if batch % device_count:
        raise ConfigError("batch_size", batch,
                          f"must be divisible by the number of devices ({device_count})")
    if not _is_int(cfg.get("seed")):
        raise ConfigError("seed", cfg.get("seed"), "must be an integer")
    _choice(cfg, "precision", ("float32", "float64"))
    _choice(cfg, "laplacian", ("forward", "hessian"))
    _positive_int(cfg, "evaluation.iterations")
    _positive_int(cfg, "evaluation.burn_in", minimum=0)
    _positive_int(cfg, "checkpoint_every")
    _choice(cfg, "logger.kind", ("wandb", "none"))
    _choice(cfg, "logger.mode", ("offline", "online", "disabled"))
    nan_step = OmegaConf.select(cfg, "debug.inject_nan_step")
    if nan_step is not None and not _is_int(nan_step):
        raise ConfigError("debug.inject_nan_step", nan_step, "must be null or an integer")
    return Experiment(cfg=cfg, system=system, hidden_dims=hidden)
