"""Command line: ``python -m ablate [overrides]`` trains one wave function;
``python -m ablate +sweep=NAME [overrides]`` runs an Optuna study (see sweeps/).

Bad input gets one line on stderr naming the key and what is allowed, and exit code 2,
before any expensive work.
"""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ablate.config import CONF_DIR, compose, validate
from ablate.errors import ConfigError, RunFailed


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
    overrides = _overrides(sys.argv[1:])
    if overrides is not None:
        try:
            compose(overrides)  # one clear line for an unknown group option or key
        except ConfigError as err:
            _fail(str(err), 2)
    main()


if __name__ == "__main__":
    cli()
