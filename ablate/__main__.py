"""Command line: ``python -m ablate [overrides]`` trains one wave function;
``python -m ablate +sweep=NAME [overrides]`` runs an Optuna study (see sweeps/).

Bad input gets one line on stderr naming the key and what is allowed, and exit code 2,
before any expensive work.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ablate.config import CONF_DIR, compose, quote_group_choices, validate, yaml_error_line
from ablate.errors import ConfigError, ConfigFileError, RunFailed


def _fail(message: str, code: int) -> None:
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(code)


def _overrides(argv: list[str]) -> list[str] | None:
    """The plain overrides of argv, or None when Hydra flags (--help, --cfg, -m) are given."""
    if any(a.startswith("-") for a in argv):
        return None
    return argv


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    try:
        if "sweep" in cfg:
            from sweeps.driver import run_sweep  # lazy: Optuna, only for +sweep= (contracts.md)

            code = run_sweep(cfg, list(HydraConfig.get().overrides.task))
            raise SystemExit(code)
        validate(cfg)
        from ablate.run import format_result, run_experiment  # lazy: JAX, only on the run path

        summary = run_experiment(cfg)
        print(format_result(summary), flush=True)
    except ConfigError as err:
        _fail(str(err), 2)
    except RunFailed as err:
        _fail(f"run failed: {err}", 1)
    except KeyboardInterrupt:
        _fail("interrupted: rerun the same command with run_dir=<run directory> to resume", 130)
    except Exception as err:  # the traceback is in summary.json; the user gets one line
        _fail(f"run failed: {type(err).__name__}: {err}", 1)


def cli() -> None:
    import yaml  # PyYAML comes with Hydra

    # nan.yaml, true.yaml, 1e3.yaml: quoted, so Hydra reads the name as a string
    sys.argv[1:] = quote_group_choices(sys.argv[1:])
    overrides = _overrides(sys.argv[1:])
    try:
        if overrides is not None:
            compose(overrides)  # one clear line for an unknown group option or key
        else:
            check_yaml_files(sys.argv[1:])
    except ConfigError as err:
        _fail(str(err), 2)
    except yaml.YAMLError as err:  # a broken config or sweep file: its name and line, not a traceback
        _fail(str(ConfigFileError(yaml_error_line(err))), 2)
    main()


def check_yaml_files(argv: list[str]) -> None:
    """Parses the YAML files a command with Hydra flags (``--config-dir DIR``) will load: the
    primary config and each ``group=option`` file found in DIR or conf/. Raises yaml.YAMLError."""
    import yaml

    dirs, args = [], list(argv)
    for i, arg in enumerate(args):
        if arg in ("--config-dir", "-cd") and i + 1 < len(args):
            dirs.append(Path(args[i + 1]))
        elif arg.startswith("--config-dir="):
            dirs.append(Path(arg.split("=", 1)[1]))
    dirs.append(CONF_DIR)
    files = [CONF_DIR / "config.yaml"]
    for arg in args:
        m = re.fullmatch(r"[+~]{0,2}([A-Za-z_]+)=(.+)", arg)
        if not m:
            continue
        option = m.group(2).strip().strip("'\"")
        files += [d / m.group(1) / f"{option}.yaml" for d in dirs]
    for path in files:
        if path.is_file():
            with open(path, encoding="utf-8") as fh:  # a file object: the error names the file
                yaml.safe_load(fh)


if __name__ == "__main__":
    cli()
