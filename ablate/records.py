"""Typed records at the seams between the engine, the sweeps and the analysis.

Standard library only: ``analysis`` imports this module (and nothing else of ``ablate``), and
the sweep driver imports it without pulling in JAX. Every record that crosses a package
boundary is defined here:

- :class:`RunSummary`: ``summary.json`` of a run directory (schema :data:`SCHEMA_VERSION`), read
  and written only through :meth:`RunSummary.from_json` / :meth:`RunSummary.write`;
- :class:`TrialRow`: one Optuna trial as the status table and the analysis list it;
- the worker messages between the sweep driver and its worker processes;
- small helpers every package needs the same way: dotted keys (:func:`flatten`), JSON cleaning
  (:func:`finite_or_none`, :func:`clean_json`), storage URLs (:func:`default_storage_url`,
  :func:`sqlite_path`, :func:`redact_url`) and atomic writes (:func:`write_json_atomic`);
- the reblocked error bar (:func:`reblock`), which defines ``energy_stderr``: the engine writes
  it and the analysis recomputes it on training tails, so both must use the same estimator.

Units: energies in Hartree, errors in mHa (keys ending ``_mha``), times in seconds (``_s``) or
milliseconds (``ms_``), lengths in bohr.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

SCHEMA_VERSION = 1
SUMMARY_FILE = "summary.json"
STATUSES = ("running", "completed", "failed", "pruned")


class RecordError(ValueError):
    """A record on disk that cannot be read; ``str(err)`` is one line naming the file."""


# ----------------------------------------------------------------------------- small helpers


def finite_or_none(value: Any) -> Any:
    """``value``, or None when it is a non-finite float (NaN, Inf)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def clean_json(value: Any) -> Any:
    """A JSON-safe copy: non-finite floats become None, tuples become lists, recursively."""
    if isinstance(value, float):
        return finite_or_none(value)
    if isinstance(value, Mapping):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / JAX scalars
        return clean_json(value.item())
    return value


def write_json_atomic(path: Path, data: Any) -> None:
    """Writes JSON (sorted keys, NaN/Inf as null) to ``path`` atomically: temp file, fsync, rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(clean_json(data), indent=2, sort_keys=True))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def flatten(mapping: Mapping[str, Any], prefix: str = "", keep: Iterable[str] = ("params",),
            is_leaf: Callable[[Mapping], bool] | None = None) -> dict[str, Any]:
    """Nested mappings -> one dict with dotted keys: ``{"network": {"width": 8}}`` -> ``{"network.width": 8}``.

    Lists stay lists; an empty mapping stays an empty mapping; mappings under a key named in
    ``keep`` (``trial.params``, already flat) and mappings for which ``is_leaf`` is true (a
    sweep range ``{low, high}``) are kept whole.
    """
    keep = tuple(keep)
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and key not in keep and not (is_leaf and is_leaf(value)):
            out.update(flatten(value, name + ".", keep, is_leaf))
        else:
            out[name] = dict(value) if isinstance(value, Mapping) else value
    return out


def default_storage_url(output_root: str | os.PathLike) -> str:
    """The default study storage: ``sqlite:///<output_root>/studies.db`` (absolute path)."""
    return f"sqlite:///{Path(output_root).expanduser().resolve() / 'studies.db'}"


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///FILE[?query]`` URL; None for other URLs and in-memory DBs."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    path = url[len(prefix):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def redact_url(url: str) -> str:
    """A storage URL without its password: ``postgresql://user:secret@host/db`` -> ``user:***@host``."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", str(url))


# ----------------------------------------------------------------------------- error bars
#
# Successive MCMC energies are correlated, so the naive standard error sigma/sqrt(N) is too small.
# Averaging neighbouring pairs again and again (Flyvbjerg & Petersen, J. Chem. Phys. 91, 461
# (1989)) makes the blocks independent once they are longer than the correlation time; the block
# length is chosen by the criterion of Lee, Drummond & Needs (Phys. Rev. B 83, 245117 (2011)):
# the smallest block length B with B^3 > 2 N (s_B / s_1)^4. Written in plain Python (no numpy)
# so that this module stays importable everywhere; a few thousand energies take milliseconds.


@dataclasses.dataclass(frozen=True)
class Reblocked:
    """Mean and error bars of a correlated series (units of the series)."""

    mean: float
    stderr: float          # standard error of the mean at the chosen block length
    naive_stderr: float    # sigma / sqrt(N), ignoring correlation
    block_size: int
    n: int

    @property
    def autocorrelation_time(self) -> float:
        """Integrated autocorrelation time (in samples) implied by the two error bars."""
        if self.naive_stderr == 0:
            return 1.0
        return float((self.stderr / self.naive_stderr) ** 2)


def _stderr(x: list[float]) -> float:
    mean = math.fsum(x) / len(x)
    var = math.fsum((v - mean) ** 2 for v in x) / (len(x) - 1)
    return math.sqrt(var / len(x))


def reblock_levels(series: Iterable[float]) -> list[tuple[int, int, float]]:
    """(block size, number of blocks, standard error of the mean) at each blocking level."""
    x = [float(v) for v in series]
    levels, size = [], 1
    while len(x) >= 2:
        levels.append((size, len(x), _stderr(x)))
        if len(x) % 2:
            x = x[:-1]
        x = [0.5 * (x[i] + x[i + 1]) for i in range(0, len(x), 2)]
        size *= 2
    return levels


def reblock(series: Iterable[float]) -> Reblocked:
    """Mean and reblocked standard error of a correlated series."""
    x = [float(v) for v in series]
    if not x:
        raise ValueError("reblock needs at least one value")
    if len(x) == 1:
        return Reblocked(x[0], math.nan, math.nan, 1, 1)
    levels = reblock_levels(x)
    s1 = levels[0][2]
    chosen = levels[-1]
    for size, count, se in levels:
        if s1 == 0 or size**3 > 2 * len(x) * (se / s1) ** 4:
            chosen = (size, count, se)
            break
    return Reblocked(math.fsum(x) / len(x), chosen[2], s1, chosen[0], len(x))


def git_commit(path: str | os.PathLike | None = None) -> str:
    """The git commit of the source tree holding ``path`` (default: this package), with
    ``-dirty`` when tracked files have local changes; ``unknown`` outside a git checkout."""
    import subprocess

    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0 or not head.stdout.strip():
            return "unknown"
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


ENGINE_PACKAGES = ("jax", "jaxlib", "kfac-jax", "folx", "optax", "pyscf", "numpy")


def package_versions(names: Iterable[str] = ENGINE_PACKAGES) -> dict[str, str]:
    """Installed versions of the named distributions (those not installed are left out)."""
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


# ----------------------------------------------------------------------------- summary.json


def _f(doc: str, default: Any = None, unit: str | None = None):
    """A RunSummary field: its meaning and unit go into docs/contracts.md."""
    if isinstance(default, (dict, list)):
        factory = (lambda d=default: type(d)(d))
        return dataclasses.field(default_factory=factory, metadata={"doc": doc, "unit": unit})
    return dataclasses.field(default=default, metadata={"doc": doc, "unit": unit})


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """``summary.json``: how one run (a single run or a sweep trial) ended and what it measured.

    Written at the start (status ``running``), after pretraining, and at the end; read by the
    sweep driver, the W&B sink and the analysis. Fields a run has not reached are null.
    """

    status: str = _f("running, completed, failed or pruned", "running")
    reason: str | None = _f("why it failed or was pruned")
    system: str | None = _f("system name (LiH, Ne, custom...)")
    electrons: list = _f("[n_up, n_down]", [])
    atoms: list = _f("[[symbol, x, y, z], ...]", [], "bohr")
    network: str | None = _f("ferminet or slater_jastrow")
    seed: int | None = _f("random seed of the run")
    params: dict = _f("the swept values of a sweep trial, flat keys ({\"network.width\": 64})", {})
    study: str | None = _f("sweep study name (trial.study), null for a single run")
    trial: int | None = _f("Optuna trial number (trial.number)")
    run_dir: str | None = _f("absolute path of the run directory")
    config: dict = _f("the flat resolved config (dotted keys)", {})
    host: str | None = _f("host name of the machine that ran it")
    python: str | None = _f("Python version")
    started_at: str | None = _f("ISO time the run (or its latest resumption) started")
    finished_at: str | None = _f("ISO time it ended")
    reference_energy: float | None = _f("exact or estimated-exact energy, when known", None, "Hartree")
    reference_source: str | None = _f("where the reference energy comes from")
    hf_energy: float | None = _f("pyscf Hartree-Fock energy in the pretraining basis (null without pretraining)",
                                 None, "Hartree")
    pretrain_loss: float | None = _f("mean pretraining loss of its last 10 iterations, sum over determinants "
                                     "of |network - HF orbitals|^2 per walker (null without pretraining)",
                                     None, "dimensionless")
    pretrain_energy: float | None = _f("first training iteration's mean local energy: where pretraining and "
                                       "burn-in left the wave function", None, "Hartree")
    pretrain_energy_stderr: float | None = _f("sqrt(variance / batch) of that first iteration's batch",
                                              None, "Hartree")
    energy: float | None = _f("evaluated energy: frozen parameters, re-equilibrated walkers", None, "Hartree")
    energy_stderr: float | None = _f("reblocked standard error of energy", None, "Hartree")
    energy_naive_stderr: float | None = _f("sigma/sqrt(N) of the evaluation energies, ignoring correlation",
                                          None, "Hartree")
    reblock_size: int | None = _f("block length chosen by the reblocking", None, "iterations")
    autocorrelation_time: float | None = _f("(stderr / naive stderr)^2", None, "iterations")
    variance: float | None = _f("mean local-energy variance over the evaluation", None, "Hartree^2")
    train_energy: float | None = _f("mean training energy over the last 10% of iterations", None, "Hartree")
    error_mha: float | None = _f("energy - reference_energy", None, "mHa")
    error_stderr_mha: float | None = _f("standard error of error_mha", None, "mHa")
    param_count: int | None = _f("trainable parameters")
    iterations: int | None = _f("training iterations completed")
    wall_time_s: float | None = _f("wall time of the run, summed over every stretch (first start and each resumption)",
                                   None, "s")
    wall_time_stretches_s: list = _f("wall time of each stretch: the first start, then each resumption", [], "s")
    startup_s: float | None = _f("config to the end of the first training iteration", None, "s")
    startup: dict = _f("start-up by phase: imports (first run of a process), scf, pretrain, burn_in, "
                       "optimizer_init, first_iteration, and compile (JAX tracing and compilation, "
                       "taken out of the others); they add up", {}, "s")
    ms_per_iteration: float | None = _f("median training step time", None, "ms")
    energy_spikes: int | None = _f("training iterations whose energy exceeds the median of the previous 100 "
                                   "by more than 10 of their median absolute deviations")
    traceback: str | None = _f("Python traceback of a failed run")
    fingerprint: str | None = _f("SHA-256 of the trial-relevant config (fingerprint.json lists the keys it covers)")
    study_uuid: str | None = _f("uuid of the sweep study that owns the run directory (null for a single run)")
    # -- cost (issue 10): what the run spent, measured by ablate.cost ------------------------
    devices: int | None = _f("JAX devices the run used (jax.device_count())")
    device_kind: str | None = _f("platform and kind of those devices (cpu, gpu: NVIDIA H100 ...)")
    wall_s_by_phase: dict = _f("wall seconds per phase: setup, pretrain (incl. the SCF), burn_in, train, "
                               "flop_count, eval; summed over resumptions (carried in checkpoints)", {}, "s")
    device_seconds: float | None = _f("devices x the sum of wall_s_by_phase less flop_count (ablate's own "
                                      "measurement)", None, "s")
    flops_per_iteration: float | None = _f("FLOPs of one training iteration on all devices, from XLA's cost "
                                           "analysis of the compiled programs (see flops_counted)", None, "FLOP")
    training_flops: float | None = _f("flops_per_iteration x iterations", None, "FLOP")
    flops_counted: str | None = _f("what flops_per_iteration counts and leaves out, in words")
    git_commit: str | None = _f("git commit of the ablate source that ran (with -dirty for local changes), "
                                "or unknown")
    versions: dict = _f("versions of the packages the run used (jax, jaxlib, kfac-jax, folx, optax, pyscf, "
                        "numpy)", {})
    schema: int = _f("summary.json schema version", SCHEMA_VERSION)
    extra: dict = _f("keys this version does not know (kept, not interpreted)", {})

    # -- reading and writing --------------------------------------------------------------

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "extra")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "summary") -> "RunSummary":
        """A summary from its JSON dict; unknown keys go to ``extra``, missing ones are null.

        A dict without ``schema`` is a summary written before schema 1 (same fields).
        Raises RecordError for a newer schema or a value of the wrong kind.
        """
        if not isinstance(data, Mapping):
            raise RecordError(f"{source}: not a JSON object")
        schema = data.get("schema", SCHEMA_VERSION)
        if not isinstance(schema, int) or schema > SCHEMA_VERSION:
            raise RecordError(f"{source}: schema {schema!r} is newer than this ablate reads "
                              f"({SCHEMA_VERSION}); upgrade ablate")
        names = set(cls.field_names())
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names}
        known["schema"] = SCHEMA_VERSION
        status = known.get("status", "running")
        if status not in STATUSES:
            raise RecordError(f"{source}: status {status!r} is not one of {', '.join(STATUSES)}")
        for key in ("electrons", "atoms", "wall_time_stretches_s"):
            if known.get(key) is None:
                known.pop(key, None)
        for key in ("params", "config", "startup"):
            if known.get(key) is None:
                known.pop(key, None)
            elif not isinstance(known[key], Mapping):
                raise RecordError(f"{source}: {key} must be an object, got {type(known[key]).__name__}")
        return cls(**known, extra=dict(extra))

    @classmethod
    def read(cls, run_dir: str | os.PathLike) -> "RunSummary | None":
        """The summary of a run directory; None when there is no summary.json.

        Raises RecordError (one line naming the file) when it exists but cannot be read.
        """
        path = Path(run_dir) / SUMMARY_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as err:
            raise RecordError(f"{path}: cannot read ({err.strerror or err})") from None
        try:
            data = json.loads(text)
        except ValueError as err:
            raise RecordError(f"{path}: not valid JSON ({err})") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def read_or_none(cls, run_dir: str | os.PathLike | None) -> "RunSummary | None":
        """Like :meth:`read`, but an unreadable file is None too (for tables and loaders)."""
        if not run_dir:
            return None
        try:
            return cls.read(run_dir)
        except RecordError:
            return None

    def to_dict(self) -> dict[str, Any]:
        """The JSON dict of summary.json (``extra`` keys at top level, NaN as None)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return clean_json(out)

    def write(self, run_dir: str | os.PathLike) -> None:
        """Writes ``<run_dir>/summary.json`` atomically."""
        write_json_atomic(Path(run_dir) / SUMMARY_FILE, self.to_dict())

    def replace(self, **changes: Any) -> "RunSummary":
        """A copy with some fields changed (unknown names go to ``extra``)."""
        names = set(self.field_names())
        extra = {k: v for k, v in changes.items() if k not in names}
        known = {k: v for k, v in changes.items() if k in names}
        if extra:
            known["extra"] = {**self.extra, **extra}
        return dataclasses.replace(self, **known)

    def get(self, key: str, default: Any = None) -> Any:
        """A field or an ``extra`` key by name (for generic tables)."""
        if key in self.field_names():
            value = getattr(self, key)
            return default if value is None else value
        return self.extra.get(key, default)

    # -- what the sweeps and the analysis need --------------------------------------------

    def objective(self, name: str) -> float | None:
        """The sweep objective: ``error_mha`` when asked for and known, else ``energy``; a cost
        objective (:data:`COST_OBJECTIVES`: ``device_seconds``, ``training_flops``) as recorded;
        None if not finite."""
        if name in COST_OBJECTIVES:  # cost objectives have no fallback
            value = finite_or_none(getattr(self, name))
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        value = self.error_mha if name == "error_mha" else None
        if value is None:
            value = self.energy
        value = finite_or_none(value)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def trial_attrs(self) -> dict[str, Any]:
        """The facts copied into an Optuna trial's user attributes (see :data:`TRIAL_ATTR_KEYS`)."""
        return {k: finite_or_none(self.get(k)) for k in TRIAL_ATTR_KEYS if self.get(k) is not None}

    def result_text(self) -> str:
        """``E=-8.06431±0.00106 Ha  err 6.24 mHa  56 s`` (for the driver's trial lines)."""
        parts = []
        if isinstance(self.energy, (int, float)):
            parts.append(f"E={self.energy:.5f}"
                         + (f"±{self.energy_stderr:.5f}" if isinstance(self.energy_stderr, (int, float)) else "")
                         + " Ha")
        if isinstance(self.error_mha, (int, float)):
            parts.append(f"err {self.error_mha:.2f} mHa")
        if isinstance(self.wall_time_s, (int, float)):
            parts.append(f"{self.wall_time_s:.0f} s")
        return "  ".join(parts)


# Summary facts copied into an Optuna trial's user attributes, so a study can be analysed (and
# its table printed) from the storage alone, without the run directories.
TRIAL_ATTR_KEYS = (
    "energy", "energy_stderr", "error_mha", "error_stderr_mha", "reference_energy", "hf_energy",
    "param_count", "wall_time_s", "startup_s", "ms_per_iteration", "iterations", "seed", "status",
    "network", "system", "train_energy", "variance", "energy_naive_stderr", "autocorrelation_time",
    "reblock_size", "fingerprint", "energy_spikes",
    # issue 10: the cost of the run
    "devices", "device_kind", "wall_s_by_phase", "device_seconds", "flops_per_iteration", "training_flops",
)

# Sweep objectives that are costs of a run rather than its energy (RunSummary.objective).
COST_OBJECTIVES = ("device_seconds", "training_flops")


def summary_fields_markdown() -> str:
    """The summary.json table of docs/contracts.md, generated from :class:`RunSummary`."""
    rows = ["| key | unit | meaning |", "| --- | --- | --- |"]
    for f in dataclasses.fields(RunSummary):
        unit = f.metadata.get("unit") or ""
        name = f"`{f.name}`" if f.name != "extra" else "(other keys)"
        rows.append(f"| {name} | {unit} | {f.metadata.get('doc', '')} |")
    return "\n".join(rows)


# ----------------------------------------------------------------------------- trial rows


@dataclasses.dataclass(frozen=True)
class TrialRow:
    """One Optuna trial as tables show it, from the storage alone (user attributes).

    Built from any object with Optuna's FrozenTrial attributes (``number``, ``state``,
    ``params``, ``user_attrs``, ``system_attrs``, ``value(s)``), so this module needs no Optuna.
    """

    number: int
    run_id: str
    state: str                   # COMPLETE, RUNNING, WAITING, PRUNED, FAIL
    requeued: bool               # FAIL and enqueued again (the same run directory resumed it)
    params: dict
    value: float | None          # the objective of a single-objective study
    attrs: dict
    values: tuple = ()           # every objective value (a multi-objective study), else ()

    @classmethod
    def from_trial(cls, trial: Any) -> "TrialRow":
        attrs = dict(trial.user_attrs)
        values = getattr(trial, "values", None)
        value = finite_or_none(values[0]) if values and len(values) == 1 else None
        return cls(
            number=int(trial.number),
            run_id=str(attrs.get("run_id") or f"t{trial.number:04d}"),
            state=trial.state.name,
            requeued=bool(attrs.get("requeued")) and trial.state.name == "FAIL",
            params=trial_params(trial),
            value=value,
            attrs=attrs,
            values=tuple(finite_or_none(v) for v in values) if values and len(values) > 1 else (),
        )

    @property
    def run_dir(self) -> str | None:
        return self.attrs.get("run_dir")

    @property
    def reason(self) -> str | None:
        """Why it failed (FAIL trials only)."""
        return self.attrs.get("fail_reason") if self.state == "FAIL" else None

    def attr(self, key: str) -> Any:
        """A result user attribute, None when absent or not finite."""
        return finite_or_none(self.attrs.get(key))


def trial_params(trial: Any) -> dict[str, Any]:
    """A trial's swept values: its ``fixed_params`` system attribute (an enqueued point, exact
    types) over its Optuna params (suggested values)."""
    fixed = trial.system_attrs.get("fixed_params")
    fixed = dict(fixed) if isinstance(fixed, Mapping) else {}
    # A grid point's values are its fixed params (exact types); Optuna's params mirror them where
    # the distributions allow (see sweeps.storage.mirror_params) and hold TPE/random suggestions.
    return {**dict(trial.params), **fixed}


# ----------------------------------------------------------------------------- worker messages
#
# One duplex pipe per worker process. Driver -> worker: RunTrial, Prune, Stop.
# Worker -> driver: Ready, Progress, Done, Failed. Dataclasses pickle by module path, so both
# ends import them from here.


@dataclasses.dataclass(frozen=True)
class RunTrial:
    """Run one trial: its number, run directory, the resolved config (a plain dict) and how
    often (training iterations) to report a pruning value."""

    number: int
    run_dir: str
    config: dict
    report_every: int


@dataclasses.dataclass(frozen=True)
class Prune:
    number: int


@dataclasses.dataclass(frozen=True)
class Stop:
    pass


@dataclasses.dataclass(frozen=True)
class Ready:
    """The worker imported the engine (``import_s`` seconds) and waits for trials."""

    import_s: float


@dataclasses.dataclass(frozen=True)
class Progress:
    """Where a running trial is: ``phase`` (pretrain, burn-in, train, eval-burn, eval), step k
    of ``total`` in that phase, and for training the energy (Hartree; the mean since the last
    report when ``report`` is True, which the driver passes to the pruner)."""

    number: int
    phase: str
    step: int
    total: int
    energy: float | None = None
    report: bool = False


@dataclasses.dataclass(frozen=True)
class Done:
    """The trial returned: its summary.json dict (completed or pruned)."""

    number: int
    summary: dict


@dataclasses.dataclass(frozen=True)
class Failed:
    """The trial raised: a one-line reason, and its summary.json dict when it wrote one."""

    number: int
    reason: str
    summary: dict | None = None
