"""The run record: ``summary.json`` (:class:`RunSummary`) and the run directory that holds it
(:class:`RunDir`), which owns every file name in it and their readers and writers.

Standard library only: the sweep driver and the analysis read run directories through this
module without importing the engine. Units: energies in Hartree, errors in mHa (keys ending
``_mha``), times in seconds (``_s``) or milliseconds (``ms_``), lengths in bohr.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping

from ablate.records.jsonio import clean_json, finite_or_none, write_json_atomic

SCHEMA_VERSION = 1
SUMMARY_FILE = "summary.json"
STATUSES = ("running", "completed", "failed", "pruned")


class RecordError(ValueError):
    """A record on disk that cannot be read; ``str(err)`` is one line naming the file."""


# ----------------------------------------------------------------------------- summary.json


# Where a summary field is copied besides summary.json (``copy=`` in its declaration below):
TRIAL_ATTR = "trial attribute"   # into its Optuna trial's user attributes (ablate.records.study_record.trial_attrs),
#                                  so a study can be analysed, and its table printed, from the storage alone
FRAME_COLUMN = "frame column"    # that, and a column of the analysis's trial frame (analysis.loaders),
#                                  read from summary.json, else from that user attribute


def _f(doc: str, default: Any = None, unit: str | None = None, copy: str | None = None):
    """A RunSummary field: its meaning and unit (docs/contracts.md) and where it is copied
    (None, :data:`TRIAL_ATTR` or :data:`FRAME_COLUMN`)."""
    meta = {"doc": doc, "unit": unit, "copy": copy}
    if isinstance(default, (dict, list)):
        factory = (lambda d=default: type(d)(d))
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """``summary.json``: how one run (a single run or a sweep trial) ended and what it measured.

    Written at the start (status ``running``), after pretraining, and at the end; read by the
    sweep driver, the W&B sink and the analysis. Fields a run has not reached are null.
    """

    status: str = _f("running, completed, failed or pruned", "running", copy=FRAME_COLUMN)
    reason: str | None = _f("why it failed or was pruned")
    system: str | None = _f("system name (LiH, Ne, custom...)", copy=FRAME_COLUMN)
    electrons: list = _f("[n_up, n_down]", [])
    atoms: list = _f("[[symbol, x, y, z], ...]", [], "bohr")
    network: str | None = _f("ferminet, psiformer or slater_jastrow", copy=FRAME_COLUMN)
    seed: int | None = _f("random seed of the run", copy=FRAME_COLUMN)
    params: dict = _f("the swept values of a sweep trial, flat keys ({\"network.width\": 64})", {})
    study: str | None = _f("sweep study name (trial.study), null for a single run")
    trial: int | None = _f("Optuna trial number (trial.number)")
    run_dir: str | None = _f("absolute path of the run directory")
    config: dict = _f("the flat resolved config (dotted keys)", {})
    host: str | None = _f("host name of the machine that ran it")
    python: str | None = _f("Python version")
    started_at: str | None = _f("ISO time the run (or its latest resumption) started")
    finished_at: str | None = _f("ISO time it ended")
    reference_energy: float | None = _f("exact or estimated-exact energy, when known", None, "Hartree",
                                        copy=FRAME_COLUMN)
    reference_source: str | None = _f("where the reference energy comes from")
    hf_energy: float | None = _f("pyscf Hartree-Fock energy in the pretraining basis (null without pretraining)",
                                 None, "Hartree", copy=FRAME_COLUMN)
    pretrain_loss: float | None = _f("mean pretraining loss of its last 10 iterations, sum over determinants "
                                     "of |network - HF orbitals|^2 per walker (null without pretraining)",
                                     None, "dimensionless")
    pretrain_energy: float | None = _f("first training iteration's mean local energy: where pretraining and "
                                       "burn-in left the wave function", None, "Hartree")
    pretrain_energy_stderr: float | None = _f("sqrt(variance / batch) of that first iteration's batch",
                                              None, "Hartree")
    energy: float | None = _f("evaluated energy: frozen parameters, re-equilibrated walkers", None, "Hartree",
                              copy=FRAME_COLUMN)
    energy_stderr: float | None = _f("reblocked standard error of energy", None, "Hartree", copy=FRAME_COLUMN)
    energy_naive_stderr: float | None = _f("sigma/sqrt(N) of the evaluation energies, ignoring correlation",
                                          None, "Hartree", copy=TRIAL_ATTR)
    reblock_size: int | None = _f("block length chosen by the reblocking", None, "iterations", copy=TRIAL_ATTR)
    autocorrelation_time: float | None = _f("(stderr / naive stderr)^2", None, "iterations", copy=TRIAL_ATTR)
    variance: float | None = _f("mean local-energy variance over the evaluation", None, "Hartree^2",
                                copy=FRAME_COLUMN)
    train_energy: float | None = _f("mean training energy over the last 10% of iterations", None, "Hartree",
                                    copy=TRIAL_ATTR)
    error_mha: float | None = _f("energy - reference_energy", None, "mHa", copy=FRAME_COLUMN)
    error_stderr_mha: float | None = _f("standard error of error_mha", None, "mHa", copy=FRAME_COLUMN)
    param_count: int | None = _f("trainable parameters", copy=FRAME_COLUMN)
    iterations: int | None = _f("training iterations completed", copy=FRAME_COLUMN)
    evaluation_iterations: int | None = _f("evaluation iterations the energy averages (fewer than "
                                           "evaluation.iterations when target_stderr_mha stopped it)")
    wall_time_s: float | None = _f("wall time of the run, summed over every stretch (first start and each resumption)",
                                   None, "s", copy=FRAME_COLUMN)
    wall_time_stretches_s: list = _f("wall time of each stretch: the first start, then each resumption", [], "s")
    startup_s: float | None = _f("config to the end of the first training iteration", None, "s",
                                 copy=TRIAL_ATTR)
    startup: dict = _f("start-up by phase: imports (first run of a process), scf, pretrain, burn_in, "
                       "optimizer_init, first_iteration, and compile (JAX tracing and compilation, "
                       "taken out of the others); they add up", {}, "s")
    compilation_cache: dict = _f("JAX persistent compilation cache in the latest stretch: folder (null: off), "
                                 "requests (XLA compilations that asked it), hits (programs loaded from it), "
                                 "programs_loaded (traced programs read from its programs/ folder, not traced again), "
                                 "programs_written (traced and kept there)", {})
    ms_per_iteration: float | None = _f("median training step time", None, "ms", copy=FRAME_COLUMN)
    energy_spikes: int | None = _f("training iterations whose energy exceeds the median of the previous 100 "
                                   "by more than 10 of their median absolute deviations", copy=TRIAL_ATTR)
    traceback: str | None = _f("Python traceback of a failed run")
    fingerprint: str | None = _f("SHA-256 of the trial-relevant config (fingerprint.json lists the keys it covers)",
                                 copy=TRIAL_ATTR)
    study_uuid: str | None = _f("uuid of the sweep study that owns the run directory (null for a single run)")
    # -- cost: what the run spent, measured by ablate.vmc.cost -----------------------------------
    devices: int | None = _f("JAX devices the run used (jax.device_count())", copy=FRAME_COLUMN)
    device_kind: str | None = _f("platform and kind of those devices (cpu, gpu: NVIDIA H100 ...)",
                                 copy=TRIAL_ATTR)
    wall_s_by_phase: dict = _f("wall seconds per phase: setup, pretrain (incl. the SCF), burn_in, train, "
                               "flop_count, eval; summed over resumptions (carried in checkpoints)", {}, "s",
                               copy=TRIAL_ATTR)
    device_seconds: float | None = _f("devices x the sum of wall_s_by_phase less flop_count (ablate's own "
                                      "measurement)", None, "s", copy=FRAME_COLUMN)
    flops_per_iteration: float | None = _f("FLOPs of one training iteration on all devices, from XLA's cost "
                                           "analysis of the compiled programs (see flops_counted)", None, "FLOP",
                                           copy=FRAME_COLUMN)
    training_flops: float | None = _f("flops_per_iteration x iterations", None, "FLOP", copy=FRAME_COLUMN)
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
        for key in ("params", "config", "startup", "compilation_cache"):
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


# Sweep objectives that are costs of a run rather than its energy (RunSummary.objective).
COST_OBJECTIVES = ("device_seconds", "training_flops")


def _copied(*where: str) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(RunSummary) if f.metadata.get("copy") in where)


# The summary fields copied into a trial's user attributes, and those of them that are columns
# of the analysis's trial frame, in declaration order (the ``copy=`` of each field above).
TRIAL_ATTR_KEYS = _copied(TRIAL_ATTR, FRAME_COLUMN)
FRAME_KEYS = _copied(FRAME_COLUMN)


def summary_fields_markdown() -> str:
    """The summary.json table of docs/contracts.md, generated from :class:`RunSummary`."""
    copies = {None: "", TRIAL_ATTR: "trial attrs", FRAME_COLUMN: "trial attrs, trial frame"}
    rows = ["| key | unit | copied to | meaning |", "| --- | --- | --- | --- |"]
    for f in dataclasses.fields(RunSummary):
        unit = f.metadata.get("unit") or ""
        name = f"`{f.name}`" if f.name != "extra" else "(other keys)"
        rows.append(f"| {name} | {unit} | {copies[f.metadata.get('copy')]} | {f.metadata.get('doc', '')} |")
    return "\n".join(rows)




# ----------------------------------------------------------------------------- the run directory

# The tables of a run directory: phase -> (file name, columns). One row per iteration; times in
# seconds, energies in Hartree, variances in Hartree^2, move widths in bohr.
TABLES = {
    "pretrain": ("pretrain.csv", ("step", "loss")),
    "train": ("metrics.csv", ("step", "energy", "variance", "pmove", "move_width",
                              "learning_rate", "step_time_s")),
    "eval": ("eval.csv", ("step", "energy", "variance", "pmove")),
}


def trial_dir_name(number: int) -> str:
    """The run directory name (and run id) of sweep trial ``number`` in its study folder: ``t0007``."""
    return f"t{number:04d}"


@dataclasses.dataclass(frozen=True)
class RunDir:
    """One run directory (a single run or a sweep trial): its file names, readers and writers.

    ``config.yaml`` (the resolved config), the tables of :data:`TABLES`, ``summary.json``
    (:class:`RunSummary`), ``fingerprint.json`` (see :mod:`ablate.vmc.fingerprint`),
    ``heartbeat.json`` (a sweep trial's driver beats it) and ``checkpoints/``.
    """

    path: Path

    CONFIG = "config.yaml"
    SUMMARY = SUMMARY_FILE
    FINGERPRINT = "fingerprint.json"
    HEARTBEAT = "heartbeat.json"
    CHECKPOINTS = "checkpoints"

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def of_trial(cls, study_folder: str | os.PathLike, number: int) -> "RunDir":
        """The run directory of sweep trial ``number`` in its study's folder."""
        return cls(Path(study_folder) / trial_dir_name(number))

    @property
    def config_file(self) -> Path:
        return self.path / self.CONFIG

    @property
    def summary_file(self) -> Path:
        return self.path / self.SUMMARY

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    def table(self, phase: str) -> Path:
        """The table file of a phase (``pretrain``, ``train``, ``eval``)."""
        return self.path / TABLES[phase][0]

    # -- summary.json -------------------------------------------------------------------

    def read_summary(self) -> RunSummary | None:
        """See :meth:`RunSummary.read`: None when absent, RecordError when unreadable."""
        return RunSummary.read(self.path)

    def read_summary_or_none(self) -> RunSummary | None:
        """The summary, or None when absent or unreadable."""
        return RunSummary.read_or_none(self.path)

    def write_summary(self, summary: RunSummary) -> None:
        summary.write(self.path)

    # -- tables -------------------------------------------------------------------------

    def read_columns(self, phase: str, columns: tuple[str, ...]) -> dict[str, list[float]]:
        """Columns of a phase's table (one pass over the file); empty lists when it does not exist."""
        path = self.table(phase)
        if not path.exists():
            return {c: [] for c in columns}
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        return {c: [float(r[c]) for r in rows] for c in columns}

    def read_column(self, phase: str, column: str) -> list[float]:
        return self.read_columns(phase, (column,))[column]

    # -- fingerprint.json and heartbeat.json ---------------------------------------------

    def read_fingerprint(self) -> dict[str, Any] | None:
        """fingerprint.json when it holds a ``values`` object, else None."""
        data = self._read_json(self.FINGERPRINT)
        return data if isinstance(data, dict) and isinstance(data.get("values"), dict) else None

    def write_fingerprint(self, record: Mapping[str, Any]) -> None:
        write_json_atomic(self.path / self.FINGERPRINT, dict(record))

    def read_heartbeat(self) -> float | None:
        """Unix time (s) of the last heartbeat written here, or None."""
        data = self._read_json(self.HEARTBEAT)
        try:
            return float(data["time"])
        except (KeyError, TypeError, ValueError):
            return None

    def write_heartbeat(self, driver: str, now: float) -> None:
        """``heartbeat.json``: the beating driver and the Unix time (s). Raises OSError when the
        directory is not there (yet)."""
        write_json_atomic(self.path / self.HEARTBEAT, {"driver": driver, "time": now})

    def _read_json(self, name: str) -> Any:
        try:
            return json.loads((self.path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
