"""Command line: ``python -m ablate [overrides]`` trains one wave function;
``python -m ablate +sweep=NAME [overrides]`` runs an Optuna study (see sweeps/);
``python -m ablate -m key=a,b ...`` runs a small grid of single runs (Hydra multirun);
``python -m ablate --help`` prints our page (ablate/cli/help.py), ``--hydra-help`` Hydra's.

A command of overrides only is composed once (`ablate.config.compose.compose`) and its run validated
once (`ablate.config.experiment.validate`, in `main`); Hydra's own app runs the rest (``-m``, ``--cfg``,
``--help``, a custom config folder, ``hydra.*`` settings), after `check` has composed (and
validated) every job up front.

Bad input gets one line on stderr naming the key and what is allowed (with the closest valid
names for a misspelling), and exit code 2, before any expensive work, with or without ``-m``.

SIGTERM (a scheduler's warning, ``scancel``, pre-emption) makes a run checkpoint after the
current iteration and exit with code 75 (:data:`ablate.vmc.preemption.EXIT_PREEMPTED`); the same
command with the same ``run_dir`` resumes it. A second SIGTERM kills at once.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import hydra
import yaml  # PyYAML comes with Hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from ablate.cli.help import help_page
from ablate.config.compose import CONF_DIR, compose, quote_group_choices, store_declared_defaults, yaml_error_line
from ablate.config.experiment import validate
from ablate.records.errors import ConfigError, ConfigFileError, RunFailed
from ablate.records.redact import redact_text
from ablate.runtime.xla_env import quiet_xla_on_cpu
from ablate.vmc.preemption import EXIT_PREEMPTED, Preempted, install as install_preemption

# The --help page is Hydra's hydra/help template (conf/hydra/help/ablate.yaml), whose text
# this resolver generates from the config declarations.
OmegaConf.register_new_resolver("ablate_help", help_page, replace=True)
# conf/network/<ansatz>.yaml composes the ansatz's declared keys and defaults from Hydra's store.
store_declared_defaults()

FLAGS_WITH_VALUE = ("--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                    "--config-dir", "-cd", "--info", "--shell-completion", "-sc", "--experimental-rerun")
FAILED_JOBS: list[str] = []   # multirun jobs that failed (the CLI exits 1 when any did)


def _fail(message: str, code: int) -> None:
    """One line on stderr (a database URL's password shown as ***, a control character that came
    with the user's input as its escape, e.g. ``\\n``), then exit with ``code``."""
    line = re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], redact_text(message))
    print(line, file=sys.stderr, flush=True)
    raise SystemExit(code)


def plain_overrides(argv: list[str]) -> list[str] | None:
    """The overrides of argv (flags and their values dropped), or None for help/info/completion
    commands and custom config folders, which Hydra handles itself."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--help", "-h", "--hydra-help", "--info", "--shell-completion", "-sc", "--version") \
                or a.startswith(("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn")):
            return None
        if a in FLAGS_WITH_VALUE:
            skip = True
            continue
        if a.startswith("-"):
            continue  # -m/--multirun, --resolve, --run
        out.append(a)
    return out


MAX_CHECKED_JOBS = 64   # compose+validate at most this many variants of a multirun up front


def variants(overrides: list[str]) -> list[list[str]]:
    """Override lists that cover every value of a multirun: the first value of each sweep
    (``a=1,2``, ``range(...)``), then each other value of one sweep at a time, so every key and
    value is checked before any job starts."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = []
    for o in parsed:
        prefix = {"ADD": "+", "FORCE_ADD": "++", "DEL": "~"}.get(o.type.name, "")
        if o.is_sweep_override():
            values = list(o.sweep_string_iterator())
        else:
            values = [o.get_value_element_as_str()]
        if o.type.name == "DEL" and o.value() is None:
            choices.append([f"~{o.key_or_group}"])
        else:
            choices.append([f"{prefix}{o.key_or_group}={v}" for v in values])
    first = [c[0] for c in choices]
    out = [first]
    for i, c in enumerate(choices):
        for other in c[1:]:
            out.append(first[:i] + [other] + first[i + 1:])
    return out[:MAX_CHECKED_JOBS]


def own_command(argv: list[str]) -> list[str] | None:
    """The overrides of a command line the CLI composes and runs itself (overrides only: no
    flag, no ``hydra.*`` setting), or None for one Hydra's app runs."""
    if any(a.startswith("-") or re.match(r"[+~]{0,2}hydra[./]", a) for a in argv):
        return None
    return list(argv)


def check(argv: list[str]) -> DictConfig | None:
    """Composes the command line: one clear line and exit 2 for any bad key or value, before
    anything runs. Returns the config of a command the CLI runs itself (`own_command`, one job),
    composed here once and validated by `main`; else None, after composing (and validating) every
    job Hydra's app will run."""
    overrides = plain_overrides(argv)
    if overrides is None:
        return None
    try:
        jobs = variants(overrides)
    except HydraException as err:
        _fail(f"config error: {' '.join(overrides)}: {str(err).strip().splitlines()[0]}", 2)
    own = own_command(argv)
    try:
        if own is not None and len(jobs) == 1:
            return compose(own)
        for job in jobs:
            cfg = compose(job)
            if "sweep" not in cfg:
                validate(cfg, device_count=1)
    except ConfigError as err:
        _fail(str(err), 2)
    return None


def _multirun_job(cfg: DictConfig) -> DictConfig:
    """A multirun job's config: its run directory is Hydra's job folder under
    ``<output_root>/multirun/<time>/<job number>``; its W&B runs share one group."""
    hc = HydraConfig.get()
    sweep_dir = hc.sweep.dir
    with open_dict(cfg):
        if not cfg.get("run_dir"):
            cfg.run_dir = str(hc.runtime.output_dir)
        if cfg.logger.get("group") is None:
            cfg.logger.group = "multirun-" + sweep_dir.rstrip("/").rsplit("/", 1)[-1]
        if cfg.logger.get("job_type") in (None, "single"):
            cfg.logger.job_type = "multirun"
    print(redact_text(f"[multirun job {hc.job.num}] {' '.join(hc.overrides.task) or '(defaults)'} -> {cfg.run_dir}"),
          flush=True)
    return cfg


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)
def hydra_main(cfg: DictConfig) -> None:
    """Hydra's app: a multirun job, or a command with Hydra flags or settings."""
    hc = HydraConfig.get()
    main(cfg, list(hc.overrides.task), multirun=hc.mode == RunMode.MULTIRUN)


def main(cfg: DictConfig, overrides: list[str], multirun: bool = False) -> None:
    """Runs a composed command: ``+sweep=`` its study; else one run, validated here (once)."""
    try:
        if "sweep" in cfg:
            if multirun:
                raise ConfigError("sweep", "-m", "run a sweep without -m: +sweep=NAME drives its own trials")
            from ablate.cli import sweep_cli  # lazy: Optuna, only for +sweep= (contracts.md)

            code = sweep_cli.run(cfg, overrides)
            raise SystemExit(code)
        quiet_xla_on_cpu()   # before JAX loads: no XLA:CPU line per cached program
        if multirun:
            cfg = _multirun_job(cfg)
        experiment = validate(cfg)
        install_preemption()
        from ablate.vmc.run import format_result, run_experiment  # lazy: JAX, only on the run path

        summary = run_experiment(experiment)
        print(format_result(summary), flush=True)
    except ConfigError as err:
        _fail(str(err), 2)
    except Preempted as err:
        _fail(f"run stopped: {err}", EXIT_PREEMPTED)
    except KeyboardInterrupt:
        _fail("interrupted: rerun the same command with run_dir=<run directory> to resume", 130)
    except Exception as err:  # the traceback is in summary.json; the user gets one line
        text = str(err) if isinstance(err, RunFailed) else f"{type(err).__name__}: {err}"
        if not multirun:
            _fail(f"run failed: {text}", 1)
        # a failed job must not stop the other jobs of the grid: report it, go on, exit 1 at the end
        FAILED_JOBS.append(HydraConfig.get().job.num)
        print(redact_text(f"run failed: {text}"), file=sys.stderr, flush=True)


def cli() -> None:
    # nan.yaml, true.yaml, 1e3.yaml: quoted, so Hydra reads the name as a string
    sys.argv[1:] = quote_group_choices(sys.argv[1:])
    try:
        if plain_overrides(sys.argv[1:]) is None:
            check_yaml_files(sys.argv[1:])   # --config-dir etc.: Hydra composes, we check the files
        cfg = check(sys.argv[1:])
    except yaml.YAMLError as err:  # a broken config or sweep file: its name and line, not a traceback
        _fail(str(ConfigFileError(yaml_error_line(err))), 2)
    if cfg is not None:   # overrides only: composed once (check), validated once (main)
        main(cfg, sys.argv[1:])
    else:
        hydra_main()
    if FAILED_JOBS:
        _fail(f"{len(FAILED_JOBS)} multirun job(s) failed: {', '.join(map(str, FAILED_JOBS))}", 1)


def check_yaml_files(argv: list[str]) -> None:
    """Parses the YAML files a command with Hydra flags (``--config-dir DIR``) will load: the
    primary config and each ``group=option`` file found in DIR or conf/. Raises yaml.YAMLError."""
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
