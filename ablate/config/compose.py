"""Composing configs with Hydra from ``conf/``, and the command line's one-line errors for it.

`compose` builds a config from the Hydra groups in ``conf/`` (the same tree the CLI uses) with
overrides; `check_group_overrides`, `quote_group_choices` and `yaml_error_line` turn Hydra's and
YAML's multi-line complaints into one line naming the key, the value and what is allowed (or
the file and line). The keys themselves are declared in `ablate.config.experiment`; an ansatz's keys and
their defaults reach Hydra through `store_declared_defaults` (``conf/network/<ansatz>.yaml``
composes ``/declared/network/<ansatz>``). Hydra is imported inside functions only: the sweep
workers and ``validate`` need OmegaConf alone.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import yaml
from omegaconf import DictConfig

from ablate.config.experiment import ANSATZ_TYPES, check_network_key, declared_defaults, to_container
from ablate.records import jsonio
from ablate.records.errors import ConfigError, ConfigFileError

CONF_DIR = Path(os.environ.get("ABLATE_CONF_DIR", Path(__file__).resolve().parents[2] / "conf"))
GROUPS = ("system", "network", "mcmc", "optim", "pretrain", "logger", "scale", "sweep")


# Where the ansätze's declared keys and defaults sit in Hydra's config store: each
# conf/network/<ansatz>.yaml starts from /declared/network/<ansatz> (its defaults list).
DECLARED_NETWORK = "declared/network"


def store_declared_defaults() -> None:
    """Puts each ansatz's keys with their declared defaults (`ablate.config.experiment.declared_defaults`)
    into Hydra's config store, where ``conf/network/<ansatz>.yaml`` composes them from. Call it
    before Hydra composes (`compose` does; so does the command line before Hydra's app runs)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name, cls in ANSATZ_TYPES.items():
        store.store(group=DECLARED_NETWORK, name=name, node=declared_defaults(cls))


def group_options(group: str) -> list[str]:
    """Names of the configs available in a Hydra group (``conf/<group>/*.yaml``)."""
    folder = CONF_DIR / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def did_you_mean(word: str, candidates) -> str:
    """``"; did you mean network.width?"`` for the closest names (difflib), or an empty string."""
    lowered = {str(c).lower(): str(c) for c in candidates}
    close = difflib.get_close_matches(str(word).lower(), list(lowered), n=2, cutoff=0.75)
    return f"; did you mean {' or '.join(lowered[c] for c in close)}?" if close else ""


def check_group_overrides(overrides: list[str]) -> None:
    """Raises ConfigError for ``group=option`` overrides naming an option that does not exist,
    and for ``sweep=NAME`` written without its ``+``.

    Hydra's own message for this is several lines long; users get one line from us.
    """
    if any(item.lstrip("+").startswith("hydra.searchpath") for item in overrides):
        return  # configs may come from other folders: Hydra itself checks them
    for item in overrides:
        m = re.fullmatch(r"([+~]{0,2})([A-Za-z_]+)=(.*)", item)
        if not m or m.group(2) not in GROUPS:
            continue
        prefix, group, option = m.group(1), m.group(2), _unquote(m.group(3))
        options = group_options(group)
        if group == "sweep" and not prefix:
            hint = f"write +sweep={option} (a sweep is added to the config with a +)"
            if option not in options:
                hint += did_you_mean(option, options)
            raise ConfigError(group, option, hint)
        if option not in options:
            raise ConfigError(group, option, "allowed: " + ", ".join(options) + did_you_mean(option, options))


def _unknown_key_error(overrides: list[str], text: str) -> ConfigError | None:
    """One line with the closest valid names for Hydra's "Could not override 'KEY'" errors."""
    m = re.search(r"Could not override '([^']+)'", text)
    if not m:
        return None
    bad = m.group(1)
    value = next((o.split("=", 1)[1] for o in overrides if "=" in o and o.lstrip("+~").split("=", 1)[0] == bad), None)
    rest = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] != bad]
    if bad.startswith("network."):
        try:   # a key of another ansatz (network.num_heads under network=ferminet): say so
            check_network_key(bad, _override_value(value or ""), str(compose(rest).network.type))
        except ConfigError as err:
            return err
    try:
        known = set(jsonio.flatten(to_container(compose(rest)), keep=()))
    except ConfigError:
        known = set(jsonio.flatten(to_container(compose([])), keep=()))
    known |= {k.rsplit(".", 1)[0] for k in known if "." in k} | set(GROUPS)
    return ConfigError(bad, value, "unknown key" + did_you_mean(bad, known))


def check_network_overrides(overrides: list[str], network_type: str) -> None:
    """ConfigError for an override ``network.X=...`` that ``network=network_type`` does not read
    (``network.width`` under ``network=psiformer``): one line naming the key, the value and the
    ansatz's own keys. Scale presets may set keys of other ansatzes; only overrides are checked."""
    for item in overrides:
        m = re.fullmatch(r"[+~]{0,2}(network\.[A-Za-z_]+)=(.*)", item)
        if m:
            check_network_key(m.group(1), _override_value(m.group(2)), network_type)


def _override_value(text: str):
    """An override's value as Hydra reads it (``64`` -> 64, ``[8,6]`` -> [8, 6]), for messages."""
    try:
        return yaml.safe_load(_unquote(text))
    except yaml.YAMLError:
        return _unquote(text)


def _unquote(value: str) -> str:
    v = value.strip()
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"" else v


def _not_a_string(value: str) -> bool:
    """True for an override value Hydra would read as a number, boolean or null (nan, true, 1e3)."""
    if value.lower() in ("nan", "inf", "+inf", "-inf", "true", "false", "null"):
        return True
    try:
        float(value)
    except ValueError:
        return False
    return True


def quote_group_choices(args: list[str], groups: tuple[str, ...] = GROUPS) -> list[str]:
    """``+sweep=nan`` -> ``+sweep='nan'``: a config file whose name YAML reads as a number or a
    boolean (nan.yaml, true.yaml, 1e3.yaml) is still chosen by its name."""
    out = []
    for arg in args:
        m = re.fullmatch(r"([+~]{0,2})([A-Za-z_]+)=(.+)", arg)
        if m and m.group(2) in groups and _not_a_string(m.group(3)):
            arg = f"{m.group(1)}{m.group(2)}='{m.group(3)}'"
        out.append(arg)
    return out


def yaml_error_line(err: Exception) -> str:
    """One line for a YAML syntax error: the file, the line and what is wrong."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f"{mark.name}, line {mark.line + 1}" if mark is not None else "a config file"
    ctx = getattr(err, "context_mark", None)
    if mark is not None and ctx is not None and ctx.line != mark.line:
        where += f" (in what starts at line {ctx.line + 1})"
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"config error: {where}: invalid YAML ({problem})"


def compose(overrides: list[str] | None = None) -> DictConfig:
    """Composes ``conf/config.yaml`` with Hydra overrides (``["system=He", "seed=3"]``).

    Safe to call many times in one process (and inside a Hydra app).
    Raises ConfigError for an unknown group option or config key, and for a `network.*` key the
    chosen ansatz does not read (`check_network_overrides`).
    """
    # Hydra is imported here, not at the top: the sweep workers and `validate` need only OmegaConf.
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = list(overrides or [])
    check_group_overrides(overrides)
    store_declared_defaults()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            cfg = hydra_compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        explained = _unknown_key_error(overrides, str(err))
        if explained is not None:
            raise explained from None
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError("overrides", " ".join(overrides), first) from None
    except yaml.YAMLError as err:
        raise ConfigFileError(yaml_error_line(err)) from None
    network = cfg.get("network")
    if network is not None and network.get("type") is not None:
        check_network_overrides(overrides, str(network.type))
    return cfg
