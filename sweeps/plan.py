"""Resolve a sweep before anything runs: the spec, the trials' overrides, and their configs.

:func:`build_plan` does every check that can fail (sweep file, config keys, each swept
value composed and validated, storage URL, worker slots) without writing anything, so
a bad sweep leaves no storage file and no study behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf, open_dict

from ablate.config.compose import compose
from ablate.config.experiment import Experiment, ansatze_reading, validate
from ablate.records.errors import ConfigError
from ablate.records.safe_paths import check_inside
from ablate.records.study_record import default_storage_url
from ablate.runtime.xla_env import cache_folder

from . import overrides as ov
from .space import SweepSpec, parse_spec
from .storage import check_storage_url
from .workers import Slot, plan_slots

_MISSING = object()
MAX_FULL_GRID_CHECK = 64  # compose+validate every grid point when there are at most this many


@dataclass(frozen=True)
class StudyPlan:
    """Everything the driver needs to know about a study before it starts."""

    spec: SweepSpec
    sweep_name: str                 # the sweep file (``+sweep=NAME``)
    study_name: str                 # ``sweep.name`` (defaults to the file name)
    trial_overrides: tuple[str, ...]  # sweep.base + the user's overrides
    output_root: Path               # absolute
    storage_url: str
    slots: tuple[Slot, ...]
    system: str
    scale: str | None
    defaults: dict = field(default_factory=dict)  # base config value of each swept key (point identity)
    compilation_cache: str | None = None  # the workers' JAX compilation cache folder (None: off)

    def run_dir(self, run_id: str) -> Path:
        return self.output_root / self.study_name / run_id

    def study_attrs(self) -> dict[str, Any]:
        """Study user attributes (the analysis reads these)."""
        return {
            "sweep": self.sweep_name,
            "objective": list(self.spec.objectives) if self.spec.multi_objective else self.spec.objective,
            "direction": self.spec.direction,
            "directions": list(self.spec.all_directions),
            "output_root": str(self.output_root),
            "base_overrides": list(self.trial_overrides),
            "trial_overrides": ov.trial_relevant(self.trial_overrides),
            "sampler": self.spec.sampler,
            "space": [d.key for d in self.spec.dimensions],
            "n_planned": self.spec.n_planned(),
            # how the analysis judges the claims (analysis.verdicts.Rules) and, for a study with
            # rounds of seeds, its maximum and first look (sweeps.rounds; analysis.sequential)
            "claims": self.spec.claims.as_attr(),
            "max_seeds": self.spec.max_seeds,
            **({"looks": [self.spec.seeds]} if self.spec.rounds else {}),
        }


def build_plan(cfg, task_overrides: list[str]) -> StudyPlan:
    """Parse ``cfg.sweep``, compose the base config and check every swept value."""
    sweep_name = ov.sweep_choice(task_overrides) or "sweep"
    node = OmegaConf.to_container(cfg.sweep, resolve=True) if cfg.get("sweep") is not None else None
    spec = parse_spec(node, default_name=sweep_name)

    # Trials print no per-iteration progress (the driver shows theirs); progress=true brings it back.
    trial_overrides = ov.merge(["progress=false"], spec.base, ov.user_overrides(task_overrides))
    base_cfg = compose(trial_overrides)
    check_keys(spec, base_cfg)
    slots = tuple(plan_slots(spec))
    check_values(spec, trial_overrides, device_count=slots[0].device_count)

    output_root = Path(str(base_cfg.output_root)).expanduser().resolve()
    # the study's folder (trials, report, figures, W&B analysis run) is not a link out of output_root
    check_inside("sweep.name", output_root / spec.name, output_root)
    storage_url = spec.storage or default_storage_url(output_root)
    check_storage_url(storage_url)
    scale = _choice_of(trial_overrides, "scale") or "quick"
    return StudyPlan(spec, sweep_name, spec.name, tuple(trial_overrides), output_root, storage_url,
                     slots, str(base_cfg.system.name), scale, point_defaults(spec, base_cfg),
                     _cache_dir(base_cfg))


def _cache_dir(base_cfg) -> str | None:
    """The base config's ``compilation_cache`` as a folder (the per-user one for ``auto``)."""
    folder = cache_folder(base_cfg.get("compilation_cache"))
    return None if folder is None else str(folder)


def point_defaults(spec: SweepSpec, base_cfg) -> dict[str, Any]:
    """The base config's value of every swept key that holds a plain value: a grid point that does
    not name a key means this value (``{width: 8}`` is ``{width: 8, seed: 0}`` once seeds grow;
    with rounds of seeds ``seed`` is one of them even while the grid has one seed)."""
    out = {}
    keys = [dim.key for dim in spec.dimensions] + (["seed"] if spec.rounds else [])
    for key in keys:
        value = OmegaConf.select(base_cfg, key, default=_MISSING)
        if value is not _MISSING and (value is None or isinstance(value, (bool, int, float, str))):
            out[key] = value
    return out


def check_keys(spec: SweepSpec, base_cfg) -> None:
    """Every swept key must exist in the composed base config (a group name counts) or be a key of
    an ansatz (`check_values` refuses, naming the point, one its ansatz does not read)."""
    for dim in spec.dimensions:
        if OmegaConf.select(base_cfg, dim.key, default=_MISSING) is _MISSING and not ansatze_reading(dim.key):
            raise ConfigError(f"sweep.space.{dim.key}", list(dim.probe_values()),
                              f"a key of the config: '{dim.key}' is not one (see conf/config.yaml and its groups)")


def check_values(spec: SweepSpec, trial_overrides: list[str], device_count: int = 1) -> None:
    """Compose and validate trial configs: every grid point when few, else each value alone.

    The seed axis that ``sweep.seeds`` adds (seeds 0 ... seeds-1) is checked once: a seed changes
    no other key, and one Hydra composition costs about 0.3 s (a 2-seed grid checked twice over
    was the bulk of a study's start-up). A ``seed`` the space sweeps itself is checked like any key.
    """
    if spec.sampler == "grid" and spec.n_planned() <= MAX_FULL_GRID_CHECK:
        probes = spec.grid_points()
        if spec.seeds > 1:            # the generated seed axis: every point at the base seed, one at the last
            probes = [{k: v for k, v in p.items() if k != "seed"} for p in probes]
            probes.insert(0, {**probes[0], "seed": spec.seeds - 1})
    else:
        probes = [{d.key: v} for d in spec.dimensions for v in d.probe_values()]
    seen = set()
    for params in probes:
        key = tuple(sorted((k, repr(v)) for k, v in params.items()))
        if key in seen:
            continue
        seen.add(key)
        try:
            trial_config(trial_overrides, params, device_count=device_count)
        except ConfigError as err:
            where = ", ".join(f"{k}={v!r}" for k, v in params.items())
            raise ConfigError(err.key, err.value, f"{err.allowed} (sweep point {where})") from None


def trial_config(trial_overrides, params: dict[str, Any], *, study: str | None = None,
                 number: int | None = None, run_dir: Path | None = None, logger: dict | None = None,
                 device_count: int = 1, study_uuid: str | None = None) -> Experiment:
    """The run of one trial, composed once (base + user + params, then the trial's metadata) and
    validated once: the `Experiment` its worker runs.

    ``device_count`` is the number of devices the trial's worker will see (the worker checks it
    again against the devices it has).
    """
    cfg = compose(ov.merge(trial_overrides, ov.param_overrides(params)))
    with open_dict(cfg):
        cfg.trial = {"study": study, "number": number, "params": dict(params), "study_uuid": study_uuid}
        if run_dir is not None:
            cfg.run_dir = str(run_dir)
        for key, value in (logger or {}).items():
            OmegaConf.update(cfg, f"logger.{key}", value, force_add=True)
    return validate(cfg, device_count=device_count)


def _choice_of(overrides: list[str], group: str) -> str | None:
    value = None
    for o in overrides:
        if ov.override_key(o) == group and "=" in o:
            value = o.split("=", 1)[1]
    return value
