"""Parse and check a sweep file (``conf/sweep/NAME.yaml``) into a :class:`SweepSpec`.

A sweep file sits under the ``sweep`` key of the composed Hydra config. Its search
space maps flat config keys (``network.width``) to either a list of values (a grid
dimension, or a categorical choice for TPE/random) or a range
``{low, high, log, type}`` (TPE/random only). Nested mappings are flattened, so
``space: {network: {width: [8, 16]}}`` and ``space: {network.width: [8, 16]}`` mean
the same; the nested form is the one ``sweep.space.network.width=[...]`` overrides.

The file's keys are declared once, in :class:`SweepFile`, with the experiment's
``ablate.config.experiment.key`` (meaning, default, allowed values, unit): `parse_spec` checks them with
``ablate.config.experiment.read_group``, and the ``--help`` page and docs/sweeps.md's table are generated
from them. A new key is one ``key(...)`` line in `SweepFile` (a ``parse`` function when the
generic checks of its annotation do not say enough), a field of the same name in
:class:`SweepSpec` (copied over as checked), and ``python -m ablate.cli.sweep_docs`` to regenerate the
table. A nested group of keys (``slurm: {...}``) is its own dataclass of ``key(...)`` fields,
read by a field whose ``parse`` calls `read_declared` with it.

Everything here is pure: parsing never touches storage, Hydra or the disk. Every
problem raises :class:`ablate.records.errors.ConfigError` naming the key, the value and
what is allowed.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, fields
from typing import Any, Iterator, Literal, Mapping, get_args

from ablate.config.experiment import key, read_group
from ablate.records.errors import ConfigError
from ablate.records.jsonio import flatten
from ablate.records.safe_paths import STUDY_NAME_ALLOWED, check_no_password, check_path_text, check_study_name

from .slurm import SlurmOptions, parse_options

# error_mha / energy: the evaluated result; device_seconds / training_flops: the run's cost
# (summary.json, measured by ablate.vmc.cost). Several objectives make a multi-objective study.
OBJECTIVES = ("error_mha", "energy", "device_seconds", "training_flops")
RANGE_KEYS = {"low", "high", "log", "type", "step"}
SCALAR_TYPES = (type(None), bool, int, float, str)
GPUS_ALLOWED = "null (all local GPUs), a list of GPU ids like [0,3], or [] for CPU only"
WORKERS_ALLOWED = "auto or an integer >= 1"

Sampler = Literal["grid", "tpe", "random", "nsga2"]
Pruner = Literal["none", "median", "hyperband"]
Direction = Literal["minimize", "maximize"]
DIRECTIONS = get_args(Direction)


def _study_name(name: str, raw: Any) -> str | None:
    """null (the sweep file's name) or a string; the rest is checked once the default is known."""
    if raw is not None and not isinstance(raw, str):
        raise ConfigError(name, raw, "a string: YAML reads nan, true, 1e3 ... as other types; "
                                     "quote it (name: 'nan')")
    return raw


def _workers(name: str, value: Any) -> int | str:
    """``auto`` or a count >= 1 (resolved by sweeps.workers.cpu_worker_count)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(name, value, WORKERS_ALLOWED)
    return value


def _base(name: str, raw: Any) -> tuple[str, ...]:
    base = raw or []
    if isinstance(base, str) or not isinstance(base, (list, tuple)) or not all(isinstance(b, str) for b in base):
        raise ConfigError(name, base, "a list of override strings, e.g. [system=LiH, scale=quick]")
    for b in base:
        if "=" not in b.lstrip("~"):
            raise ConfigError(name, b, "an override 'key=value'")
    return tuple(base)


def _storage(name: str, raw: Any) -> str | None:
    """null, a database URL without a password (libpq reads it from ~/.pgpass, PGPASSFILE or
    PGPASSWORD: ablate.records.safe_paths.check_no_password) or a journal file path without control characters."""
    if raw is not None and (not isinstance(raw, str) or not raw.strip()):
        raise ConfigError(name, raw, "null (SQLite under output_root), a database URL or a journal file path")
    check_no_password(name, raw)
    check_path_text(name, raw)
    return raw.strip() if raw else None


def _gpus(name: str, value: Any) -> tuple[str, ...] | None:
    """``null`` = every local GPU; ``[0, 3]``, ``"0,3"`` or ``3`` pick; ``[]``/``none`` = CPU only."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(name, value, GPUS_ALLOWED)
    if isinstance(value, int):
        value = [value]
    if isinstance(value, str):
        value = [] if value.strip().lower() in ("", "none", "cpu") else value.split(",")
    if not isinstance(value, (list, tuple)):
        raise ConfigError(name, value, GPUS_ALLOWED)
    ids = tuple(str(v).strip() for v in value)
    if any(not i or isinstance(v, bool) for i, v in zip(ids, value)) or len(set(ids)) != len(ids):
        raise ConfigError(name, list(value), "distinct GPU ids (indices or UUIDs)")
    return ids


def read_declared(cls, node: Mapping[str, Any], prefix: str, what: str = "sweep setting"):
    """``cls`` (a dataclass of `key` fields) from ``node``, every key checked against its
    declaration; a key ``cls`` does not declare is refused with the allowed ones (``what`` names
    the kind of key in that line). ``prefix`` (``sweep.``) makes the names in the error lines. A
    nested mapping of keys is a field whose ``parse`` calls this with its own dataclass."""
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(node) - set(allowed))
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}", node[unknown[0]],
                          f"not a {what}; allowed: {', '.join(allowed)}")
    return read_group(cls, node, prefix)


@dataclass(frozen=True)
class ClaimsBlock:
    """The sweep file's ``claims`` block: the margins and level the study's claims are judged by
    (stored with the study as its ``claims`` attribute and read by the analysis,
    ``analysis.verdicts.Rules``) and what the power plan assumes (``sweep.plan=true``)."""

    margin_mha: float = key("margin of every 'no better', 'matches' and 'agrees with the reference' claim "
                            "(default: chemical accuracy)", 1.6, unit="mHa", low=0, low_open=True)
    exponent_margin: float = key("margin around -1/2 of 'the error bar shrinks like 1/sqrt(walkers)'", 0.15,
                                 low=0, low_open=True)
    rate_margin: float = key("margin of 'HMC spikes no more often than MH' (a difference of the fractions of "
                             "trials that spiked)", 0.3, low=0, low_open=True, high=1)
    alpha: float = key("one-sided level of each test direction (Holm over the study's claims; spent over the "
                       "looks of a study with rounds of seeds)", 0.025, low=0, low_open=True, high=0.5, high_open=True)
    scatter: float = key("the power plan's assumed standard deviation of ln(error) between seeds", 0.5,
                         low=0, low_open=True)
    error_mha: float = key("the power plan's assumed typical error", 3.0, unit="mHa", low=0, low_open=True)

    def as_attr(self) -> dict[str, float]:
        """The block as the study's ``claims`` user attribute (every key, defaults filled in)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


# the claims keys that change a verdict; scatter and error_mha only shape the power plan
VERDICT_KEYS = ("margin_mha", "exponent_margin", "rate_margin", "alpha")
CLAIMS_ALLOWED = "a mapping of " + ", ".join(f.name for f in fields(ClaimsBlock)) + " (docs/sweeps.md)"


def _claims(name: str, raw: Any) -> ClaimsBlock:
    """The ``claims`` block: null (every default) or a mapping of `ClaimsBlock` keys."""
    if raw is None:
        return ClaimsBlock()
    if not isinstance(raw, Mapping):
        raise ConfigError(name, raw, CLAIMS_ALLOWED)
    return read_declared(ClaimsBlock, raw, f"{name}.", what="claims setting")


@dataclass(frozen=True)
class SweepFile:
    """The keys of a sweep file (``conf/sweep/NAME.yaml``, under ``sweep``), each declared once:
    meaning, default, allowed values, unit. `parse_spec` checks a file against them; the
    ``--help`` page and docs/sweeps.md's table are generated from them. A user file may leave
    any key out, but only keys present in the file can be overridden without a "+"."""

    name: str | None = key("Optuna study name (null: the sweep file's name); trials go to "
                           "<output_root>/<name>/t0000/, ...", None, parse=_study_name,
                           allowed=STUDY_NAME_ALLOWED)
    sampler: Sampler = key("grid: every point once; tpe, random, or nsga2 (NSGA-II, generations of a "
                           "quarter of n_trials, 2 ... 50); TPE and NSGA-II handle several objectives",
                           "grid")
    space: Any = key("config keys -> a list of values (grid axes; categorical for tpe/random) or a range "
                     "{low, high, log, type: float or int, step} (tpe/random); keys nested "
                     "(network: {width: [...]}) or flat (network.width: [...]); a config group's name "
                     "(network: [ferminet, slater_jastrow]) swaps the group", None,
                     allowed="a non-empty mapping of config keys to value lists or ranges")
    objective: Any = key("error_mha (energy minus the reference, mHa; energy when the system has no "
                         "reference), energy (Hartree), or a cost from summary.json: device_seconds "
                         "(devices x wall seconds) or training_flops (XLA's FLOPs of the training); a list "
                         "([error_mha, device_seconds]) makes a multi-objective study", "error_mha",
                         allowed="allowed: " + ", ".join(OBJECTIVES) + " (or a list of them)")
    direction: Direction = key("used for every objective when directions is null", "minimize")
    directions: Any = key("one direction per objective ([minimize, minimize]); only tune_cost.yaml has "
                          "the key, so elsewhere write +sweep.directions=[...]", None,
                          allowed="null or a list of directions (minimize, maximize), one per objective")
    n_trials: int | None = key("trials of a tpe/random/nsga2 study (COMPLETE + PRUNED + RUNNING + WAITING; "
                               "failed ones are replaced); grid: ignored", None, low=1)
    seeds: int = key("repeat every grid point over seeds 0 ... seeds-1 (seed becomes a grid axis)", 1, low=1)
    max_seeds: int | None = key("rounds of seeds (grid only): after each round the claims are judged, and the grid "
                                "points of the claims still undecided get twice the seeds, up to max_seeds "
                                "(null: seeds, one round; docs/sweeps.md)", None, low=1)
    claims: ClaimsBlock = key("how the claims are judged: margin_mha, exponent_margin, rate_margin, alpha; and what "
                              "the power plan assumes: scatter, error_mha (docs/sweeps.md)", ClaimsBlock(),
                              parse=_claims, allowed=CLAIMS_ALLOWED)
    pruner: Pruner | None = key("prune trials from their intermediate (training) energies (null: none)", "none")
    report_every: int = key("the worker reports the mean training energy of every report_every "
                            "iterations (the pruner's steps)", 50, low=1)
    prune_warmup_steps: int = key("iterations before a trial may be pruned", 100, low=0)
    prune_startup_trials: int = key("trials that finish before any is pruned", 4, low=0)
    sampler_seed: int | None = key("seed of the TPE/random/NSGA-II sampler", 0)
    base: tuple = key("overrides every trial runs under; command-line overrides win over them", (),
                      parse=_base, allowed="a list of override strings, e.g. [system=LiH, scale=quick]")
    storage: Any = key("null: sqlite:///<output_root>/studies.db; a database URL without a password "
                              "(postgresql+psycopg2://user@host/db; the password in ~/.pgpass, PGPASSFILE "
                              "or PGPASSWORD); or a path to an Optuna journal file", None,
                              parse=_storage,
                              allowed="null (SQLite under output_root), a database URL without a password "
                                      "or a journal file path")
    workers: Any = key("CPU trials at once when there is no GPU (each gets cores / workers threads); auto: one "
                       "per core, at most one per planned trial and per 2 GiB of memory (measured fastest: "
                       "README, Speed)", "auto", parse=_workers, allowed=WORKERS_ALLOWED)
    gpus: Any = key("null: every visible GPU (CUDA_VISIBLE_DEVICES, else nvidia-smi -L); [0,3] "
                             "picks; [] forces CPU workers", None, parse=_gpus, allowed=GPUS_ALLOWED)
    trials_per_gpu: int = key("k > 1 runs k workers per GPU, each with XLA_PYTHON_CLIENT_MEM_FRACTION=0.9/k "
                              "and no preallocation", 1, low=1)
    gpus_per_trial: int = key("n > 1 gives each worker n GPUs (a big system; batch_size must divide by n)",
                              1, low=1)
    max_failures: int = key("stop taking new trials after this many failures in one driver run (exit code 1)",
                            10, low=1)
    retry_failed: bool = key("true: on start, enqueue again (in fresh run directories) the grid points whose "
                             "every trial failed", False)
    stale_after_s: float = key("a RUNNING trial whose driver sent no heartbeat for this long is recovered "
                               "(docs/sweeps.md: Choosing stale_after_s)", 600.0, unit="s", low=0, low_open=True)
    storage_retry_s: float = key("ride out a storage outage this long: storage calls retry connection errors "
                                 "with back-off; then exit 1", 300.0, unit="s", low=0, low_open=True)
    progress_every_s: float = key("seconds between study lines", 30.0, unit="s", low=0, low_open=True)
    plan: bool = key("true: print the study's plan (grid, seeds, looks and their levels, the smallest effect "
                     "each claim detects) and run nothing", False)
    launcher: Literal["local", "slurm"] = key("local: drive the study in this process; slurm: submit one driver "
                                              "per node as a Slurm job array (docs/sweeps.md)", "local")
    slurm: SlurmOptions = key("the Slurm job (sweep.slurm.nodes, gpus_per_node, cpus_per_task, time, partition, "
                              "account, signal_s, dry_run), read when launcher is slurm", SlurmOptions(),
                              parse=lambda name, raw: parse_options(raw),
                              allowed="a mapping of the Slurm settings in docs/sweeps.md")


KEYS = tuple(f.name for f in fields(SweepFile))


@dataclass(frozen=True)
class Dimension:
    """One axis of the search space.

    ``kind`` is ``choice`` (``values`` holds the list), ``float`` or ``int``
    (``low``/``high``/``log``/``step`` hold the range).
    """

    key: str
    kind: str
    values: tuple = ()
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None

    def suggest(self, trial) -> Any:
        """Ask an Optuna trial for this dimension's value (fixed params win)."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.values))
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)

    def probe_values(self) -> list:
        """Values worth composing and validating up front: every choice, or both ends."""
        return list(self.values) if self.kind == "choice" else [self.low, self.high]


@dataclass(frozen=True)
class SweepSpec:
    """A parsed, checked sweep file: the `SweepFile` keys as `parse_spec` resolved them (their
    defaults and allowed values are declared there).

    ``dimensions`` is the search space (with ``seed`` appended for ``seeds`` > 1);
    ``max_seeds`` is the resolved value (``seeds`` when the file says null);
    ``objectives``/``directions`` list every objective of a multi-objective study and are empty
    for a single-objective one, whose ``objective``/``direction`` say it all.
    """

    name: str
    sampler: str
    dimensions: tuple[Dimension, ...]
    objective: str
    direction: str
    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    n_trials: int | None
    seeds: int
    max_seeds: int
    claims: ClaimsBlock
    pruner: str
    report_every: int
    prune_warmup_steps: int
    prune_startup_trials: int
    sampler_seed: int | None
    base: tuple[str, ...]
    storage: str | None
    workers: int | str
    gpus: tuple[str, ...] | None
    trials_per_gpu: int
    gpus_per_trial: int
    max_failures: int
    retry_failed: bool
    stale_after_s: float
    storage_retry_s: float
    progress_every_s: float
    plan: bool = False
    launcher: str = "local"
    slurm: SlurmOptions = SlurmOptions()

    @property
    def keys(self) -> list[str]:
        return [d.key for d in self.dimensions]

    @property
    def all_objectives(self) -> tuple[str, ...]:
        return self.objectives or (self.objective,)

    @property
    def all_directions(self) -> tuple[str, ...]:
        return self.directions or (self.direction,)

    @property
    def multi_objective(self) -> bool:
        return len(self.all_objectives) > 1

    @property
    def rounds(self) -> bool:
        """Whether the study adds seeds in rounds (``max_seeds`` above ``seeds``)."""
        return self.max_seeds > self.seeds

    def grid_points(self) -> list[dict[str, Any]]:
        """Every grid point as a flat ``{key: value}`` dict (grid sampler only)."""
        axes = [d.values for d in self.dimensions]
        return [dict(zip(self.keys, combo)) for combo in itertools.product(*axes)]

    def n_planned(self) -> int:
        """Number of trials the study should end with (grid points or n_trials)."""
        if self.sampler == "grid":
            return math.prod(len(d.values) for d in self.dimensions)
        return int(self.n_trials or 0)


def parse_spec(node: Mapping[str, Any], default_name: str | None = None) -> SweepSpec:
    """Check a plain mapping (the ``sweep`` node as a container) and build a spec: every key
    against its `SweepFile` declaration, then the rules that tie keys together."""
    if not isinstance(node, Mapping):
        raise ConfigError("sweep", node, "a mapping (a sweep file under conf/sweep/)")
    file = read_declared(SweepFile, node, "sweep.")

    # one folder under output_root, a Slurm job name and a file name: ablate.records.safe_paths
    name = check_study_name("sweep.name", file.name if file.name is not None else default_name)
    objectives, directions = _parse_objectives(file.objective, file.direction, file.directions)
    pruner = file.pruner or "none"
    if len(objectives) > 1 and pruner != "none":
        raise ConfigError("sweep.pruner", pruner, "none for a multi-objective study (Optuna prunes one objective only)")

    dims = list(_parse_space(file.space, file.sampler))
    if file.seeds > 1:
        if file.sampler != "grid":
            raise ConfigError("sweep.seeds", file.seeds, "1 for tpe/random (repeat seeds only in grid sweeps)")
        if "seed" in [d.key for d in dims]:
            raise ConfigError("sweep.seeds", file.seeds, "1 when the space already sweeps 'seed'")
    max_seeds = _max_seeds(file, dims)
    if file.seeds > 1:
        dims.append(Dimension("seed", "choice", tuple(range(file.seeds))))
    if file.sampler != "grid" and file.n_trials is None:
        raise ConfigError("sweep.n_trials", None, "an integer >= 1")

    as_declared = {f.name: getattr(file, f.name) for f in fields(SweepSpec) if f.name in KEYS}
    return SweepSpec(**{
        **as_declared,
        "name": name,
        "dimensions": tuple(dims),
        "objective": objectives[0],
        "direction": directions[0],
        "objectives": objectives if len(objectives) > 1 else (),
        "directions": directions if len(objectives) > 1 else (),
        "n_trials": file.n_trials if file.sampler != "grid" else None,
        "max_seeds": max_seeds,
        "pruner": pruner,
    })


def _max_seeds(file: SweepFile, dims: list[Dimension]) -> int:
    """``max_seeds`` resolved: ``seeds`` when null; above ``seeds`` only for a grid whose space does
    not sweep ``seed`` itself (the rounds add seeds to grid points)."""
    if file.max_seeds is None:
        return file.seeds
    if file.max_seeds < file.seeds:
        raise ConfigError("sweep.max_seeds", file.max_seeds, f"null or an integer >= sweep.seeds ({file.seeds})")
    if file.max_seeds > file.seeds and file.sampler != "grid":
        raise ConfigError("sweep.max_seeds", file.max_seeds,
                          f"null (or sweep.seeds) for a {file.sampler} study: rounds of seeds need the grid sampler")
    if file.max_seeds > file.seeds and "seed" in [d.key for d in dims]:
        raise ConfigError("sweep.max_seeds", file.max_seeds, "null when the space already sweeps 'seed'")
    return file.max_seeds


def _parse_objectives(objective: Any, direction: Any, directions: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(objectives, directions): ``objective`` is a name or a list of distinct names;
    ``directions`` (a list, one per objective) or else ``direction`` for each of them."""
    names = list(objective) if isinstance(objective, (list, tuple)) else [objective]
    if not names:
        raise ConfigError("sweep.objective", [], "an objective name or a non-empty list of them: " + " | ".join(OBJECTIVES))
    for name in names:
        if name not in OBJECTIVES:
            raise ConfigError("sweep.objective", name, "one of " + " | ".join(OBJECTIVES) + " (or a list of them)")
    if len(set(names)) != len(names):
        raise ConfigError("sweep.objective", names, "distinct objectives")
    if directions is None:
        dirs = [direction] * len(names)
    else:
        if isinstance(directions, str) or not isinstance(directions, (list, tuple)) or len(directions) != len(names):
            raise ConfigError("sweep.directions", directions,
                              f"null or a list of {len(names)} direction(s) (minimize | maximize), one per objective")
        for d in directions:
            if d not in DIRECTIONS:
                raise ConfigError("sweep.directions", d, "one of " + " | ".join(DIRECTIONS))
        dirs = list(directions)
    return tuple(names), tuple(dirs)


def _parse_space(space: Any, sampler: str) -> Iterator[Dimension]:
    if not isinstance(space, Mapping) or not space:
        raise ConfigError("sweep.space", space, "a non-empty mapping of config keys to value lists or ranges")
    for name, spec in flatten(space, keep=(), is_leaf=_is_range).items():
        yield _parse_dimension(name, spec, sampler)


def _is_range(v: Mapping) -> bool:
    return bool(v) and set(v) <= RANGE_KEYS and ("low" in v or "high" in v)


def _parse_dimension(key: str, spec: Any, sampler: str) -> Dimension:
    where = f"sweep.space.{key}"
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ConfigError(where, [], "a non-empty list of values")
        for v in spec:
            if not isinstance(v, SCALAR_TYPES):
                raise ConfigError(where, v, "scalar values (numbers, strings, true/false, null)")
        if len({(type(v).__name__, v) for v in spec}) != len(spec):
            raise ConfigError(where, list(spec), "distinct values")
        return Dimension(key, "choice", tuple(spec))
    if isinstance(spec, Mapping):
        if not spec:
            raise ConfigError(where, {}, "a list of values or a range {low, high}")
        if sampler == "grid":
            raise ConfigError(where, dict(spec), "a list of values for the grid sampler (ranges need tpe or random)")
        return _parse_range(where, key, spec)
    raise ConfigError(where, spec, "a list of values or a range {low, high, log, type}")


def _parse_range(where: str, key: str, spec: Mapping) -> Dimension:
    kind = spec.get("type", "float")
    if kind not in ("float", "int"):
        raise ConfigError(f"{where}.type", kind, "float or int")
    if "low" not in spec or "high" not in spec:
        raise ConfigError(where, dict(spec), "both low and high")
    low, high = spec["low"], spec["high"]
    for name, v in (("low", low), ("high", high)):
        ok = isinstance(v, int) if kind == "int" else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok or not math.isfinite(v):
            raise ConfigError(f"{where}.{name}", v, f"a finite {'integer' if kind == 'int' else 'number'}")
    if not low < high:
        raise ConfigError(where, dict(spec), "low < high")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log", log, "true or false")
    if log and low <= 0:
        raise ConfigError(f"{where}.low", low, "a positive number when log: true")
    step = spec.get("step")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0:
            raise ConfigError(f"{where}.step", step, "a positive number or null")
        if log:
            raise ConfigError(f"{where}.step", step, "null when log: true")
    if kind == "float":
        low, high = float(low), float(high)
    return Dimension(key, kind, low=low, high=high, log=log, step=step)
