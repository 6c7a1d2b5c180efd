"""Parse and check a sweep file (``conf/sweep/NAME.yaml``) into a :class:`SweepSpec`.

A sweep file sits under the ``sweep`` key of the composed Hydra config. Its search
space maps flat config keys (``network.width``) to either a list of values (a grid
dimension, or a categorical choice for TPE/random) or a range
``{low, high, log, type}`` (TPE/random only). Nested mappings are flattened, so
``space: {network: {width: [8, 16]}}`` and ``space: {network.width: [8, 16]}`` mean
the same; the nested form is the one ``sweep.space.network.width=[...]`` overrides.

Everything here is pure: parsing never touches storage, Hydra or the disk. Every
problem raises :class:`ablate.errors.ConfigError` naming the key, the value and
what is allowed.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from ablate.errors import ConfigError
from ablate.jsonio import flatten

from .slurm import LAUNCHERS, SlurmOptions, parse_options

SAMPLERS = ("grid", "tpe", "random", "nsga2")
PRUNERS = ("none", "median", "hyperband")
# error_mha / energy: the evaluated result; device_seconds / training_flops: the run's cost
# (summary.json, measured by ablate.cost). Several objectives make a multi-objective study.
OBJECTIVES = ("error_mha", "energy", "device_seconds", "training_flops")
DIRECTIONS = ("minimize", "maximize")
RANGE_KEYS = {"low", "high", "log", "type", "step"}
SCALAR_TYPES = (type(None), bool, int, float, str)

# Every key a sweep file may hold, with its default. A user file may leave any
# out, but only keys present in the file can be overridden without a "+".
DEFAULTS: dict[str, Any] = {
    "name": None,
    "sampler": "grid",
    "space": None,
    "objective": "error_mha",
    "direction": "minimize",
    "directions": None,
    "n_trials": None,
    "seeds": 1,
    "pruner": "none",
    "report_every": 50,
    "prune_warmup_steps": 100,
    "prune_startup_trials": 4,
    "sampler_seed": 0,
    "base": [],
    "storage": None,
    "workers": 1,
    "gpus": None,
    "trials_per_gpu": 1,
    "gpus_per_trial": 1,
    "max_failures": 10,
    "retry_failed": False,
    "stale_after_s": 600,
    "storage_retry_s": 300,
    "progress_every_s": 30,
    "launcher": "local",
    "slurm": None,
}


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
    """A parsed, checked sweep file.

    ``objectives``/``directions`` list every objective of the study (one for a single-objective
    study, where they equal ``(objective,)``/``(direction,)``; empty tuples mean the same).
    """

    name: str
    sampler: str
    dimensions: tuple[Dimension, ...]
    objective: str = "error_mha"
    direction: str = "minimize"
    objectives: tuple[str, ...] = ()
    directions: tuple[str, ...] = ()
    n_trials: int | None = None
    seeds: int = 1
    pruner: str = "none"
    report_every: int = 50
    prune_warmup_steps: int = 100
    prune_startup_trials: int = 4
    sampler_seed: int | None = 0
    base: tuple[str, ...] = ()
    storage: str | None = None
    workers: int = 1
    gpus: tuple[str, ...] | None = None
    trials_per_gpu: int = 1
    gpus_per_trial: int = 1
    max_failures: int = 10
    retry_failed: bool = False
    stale_after_s: float = 600.0
    storage_retry_s: float = 300.0
    progress_every_s: float = 30.0
    launcher: str = "local"           # local: drive the study here; slurm: submit drivers (sweeps/submit.py)
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
    """Check a plain mapping (the ``sweep`` node as a container) and build a spec."""
    if not isinstance(node, Mapping):
        raise ConfigError("sweep", node, "a mapping (a sweep file under conf/sweep/)")
    unknown = sorted(set(node) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"sweep.{unknown[0]}", node[unknown[0]],
                          f"not a sweep setting; allowed: {', '.join(DEFAULTS)}")
    raw = {**DEFAULTS, **{k: v for k, v in node.items()}}

    name = raw["name"] if raw["name"] is not None else default_name
    if name is not None and not isinstance(name, str):
        raise ConfigError("sweep.name", name, "a string: YAML reads nan, true, 1e3 ... as other types; "
                                              "quote it (name: 'nan')")
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ "):
        raise ConfigError("sweep.name", name, "a non-empty study name without '/', '\\' or spaces")
    sampler = _choice("sweep.sampler", raw["sampler"], SAMPLERS)
    objectives, directions = _parse_objectives(raw["objective"], raw["direction"], raw["directions"])
    pruner = _choice("sweep.pruner", "none" if raw["pruner"] is None else raw["pruner"], PRUNERS)
    if len(objectives) > 1 and pruner != "none":
        raise ConfigError("sweep.pruner", pruner, "none for a multi-objective study (Optuna prunes one objective only)")

    seeds = _int("sweep.seeds", raw["seeds"], low=1)
    dims = list(_parse_space(raw["space"], sampler))
    if seeds > 1:
        if sampler != "grid":
            raise ConfigError("sweep.seeds", seeds, "1 for tpe/random (repeat seeds only in grid sweeps)")
        if "seed" in [d.key for d in dims]:
            raise ConfigError("sweep.seeds", seeds, "1 when the space already sweeps 'seed'")
        dims.append(Dimension("seed", "choice", tuple(range(seeds))))

    n_trials = raw["n_trials"]
    if sampler == "grid":
        n_trials = None
    else:
        n_trials = _int("sweep.n_trials", n_trials, low=1)

    base = raw["base"] or []
    if isinstance(base, str) or not isinstance(base, (list, tuple)) or not all(isinstance(b, str) for b in base):
        raise ConfigError("sweep.base", base, "a list of override strings, e.g. [system=LiH, scale=quick]")
    for b in base:
        if "=" not in b.lstrip("~"):
            raise ConfigError("sweep.base", b, "an override 'key=value'")

    storage = raw["storage"]
    if storage is not None and (not isinstance(storage, str) or not storage.strip()):
        raise ConfigError("sweep.storage", storage, "null (SQLite under output_root), a database URL or a journal file path")

    return SweepSpec(
        name=name,
        sampler=sampler,
        dimensions=tuple(dims),
        objective=objectives[0],
        direction=directions[0],
        objectives=objectives if len(objectives) > 1 else (),
        directions=directions if len(objectives) > 1 else (),
        n_trials=n_trials,
        seeds=seeds,
        pruner=pruner,
        report_every=_int("sweep.report_every", raw["report_every"], low=1),
        prune_warmup_steps=_int("sweep.prune_warmup_steps", raw["prune_warmup_steps"], low=0),
        prune_startup_trials=_int("sweep.prune_startup_trials", raw["prune_startup_trials"], low=0),
        sampler_seed=None if raw["sampler_seed"] is None else _int("sweep.sampler_seed", raw["sampler_seed"]),
        base=tuple(base),
        storage=storage.strip() if storage else None,
        workers=_int("sweep.workers", raw["workers"], low=1),
        gpus=_parse_gpus(raw["gpus"]),
        trials_per_gpu=_int("sweep.trials_per_gpu", raw["trials_per_gpu"], low=1),
        gpus_per_trial=_int("sweep.gpus_per_trial", raw["gpus_per_trial"], low=1),
        max_failures=_int("sweep.max_failures", raw["max_failures"], low=1),
        retry_failed=_bool("sweep.retry_failed", raw["retry_failed"]),
        stale_after_s=_number("sweep.stale_after_s", raw["stale_after_s"], positive=True),
        storage_retry_s=_number("sweep.storage_retry_s", raw["storage_retry_s"], positive=True),
        progress_every_s=_number("sweep.progress_every_s", raw["progress_every_s"], positive=True),
        launcher=_choice("sweep.launcher", raw["launcher"], LAUNCHERS),
        slurm=parse_options(raw["slurm"]),
    )


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
        dirs = [_choice("sweep.direction", direction, DIRECTIONS)] * len(names)
    else:
        if isinstance(directions, str) or not isinstance(directions, (list, tuple)) or len(directions) != len(names):
            raise ConfigError("sweep.directions", directions,
                              f"null or a list of {len(names)} direction(s) (minimize | maximize), one per objective")
        dirs = [_choice("sweep.directions", d, DIRECTIONS) for d in directions]
    return tuple(names), tuple(dirs)


def _parse_space(space: Any, sampler: str) -> Iterator[Dimension]:
    if not isinstance(space, Mapping) or not space:
        raise ConfigError("sweep.space", space, "a non-empty mapping of config keys to value lists or ranges")
    for key, spec in flatten(space, keep=(), is_leaf=_is_range).items():
        yield _parse_dimension(key, spec, sampler)


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


def _parse_gpus(value: Any) -> tuple[str, ...] | None:
    """``null`` = every local GPU; ``[0, 3]``, ``"0,3"`` or ``3`` pick; ``[]``/``none`` = CPU only."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError("sweep.gpus", value, "null (all local GPUs), a list of GPU ids like [0,3], or [] for CPU only")
    if isinstance(value, int):
        value = [value]
    if isinstance(value, str):
        value = [] if value.strip().lower() in ("", "none", "cpu") else value.split(",")
    if not isinstance(value, (list, tuple)):
        raise ConfigError("sweep.gpus", value, "null (all local GPUs), a list of GPU ids like [0,3], or [] for CPU only")
    ids = tuple(str(v).strip() for v in value)
    if any(not i or isinstance(v, bool) for i, v in zip(ids, value)) or len(set(ids)) != len(ids):
        raise ConfigError("sweep.gpus", list(value), "distinct GPU ids (indices or UUIDs)")
    return ids


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(key, value, "one of " + " | ".join(allowed))
    return value


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, value, "true or false")
    return value


def _int(key: str, value: Any, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        raise ConfigError(key, value, "an integer" + (f" >= {low}" if low is not None else ""))
    return value


def _number(key: str, value: Any, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (positive and value <= 0):
        raise ConfigError(key, value, "a positive number" if positive else "a number")
    return float(value)
