"""Config fingerprints: a run directory belongs to one trial-relevant config and one study.

A run directory holds one run: resuming it (or returning its finished result) under another
config would mix two experiments, and a study must never adopt the directory of another study
that happened to use the same name. So every run directory records, in ``fingerprint.json``:

- ``fingerprint``: the SHA-256 (hex) of the trial-relevant config, canonical JSON;
- ``keys`` and ``values``: the flat config keys it covers and their values (to name what differs);
- ``study``: the sweep study that owns the directory (``{"name", "uuid"}``), or null for a single run.

Trial-relevant is every flat config key except :data:`EXCLUDED` (where results go and how they
are reported: ``output_root``, ``run_dir``, ``logger.*``, ``progress``, ``compilation_cache``,
``trial.*``, and ``checkpoint_every``, which changes how often state is saved but not a single
number of the run). Numbers compare by value (``1000`` equals ``1000.0``).

A run directory written before fingerprints existed has no ``fingerprint.json``; its
``config.yaml`` (or the ``config`` of its summary.json) gives the values instead.

Standard library, the ansätze's keys (`ablate.config.experiment`) and PyYAML, lazily, for an old ``config.yaml``.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Mapping

from ablate.config.experiment import ANSATZ_TYPES, ansatz_keys
from ablate.records.errors import ConfigError
from ablate.records.jsonio import flatten
from ablate.records.run_record import RunDir

# Keys (a name, or a prefix ending in ".") that do not change what a run computes.
EXCLUDED = ("output_root", "run_dir", "logger.", "progress", "compilation_cache", "trial.",
            "checkpoint_every", "hydra.", "scale")

# Keys added to the config after run directories were written without them, with the value
# that reproduces what those runs did: a directory that lacks such a key matches a config
# holding this value. Every new config key belongs here (with its old behaviour), or old run
# directories could no longer be resumed or returned.
LEGACY_DEFAULTS: dict[str, Any] = {
    "network.distance_features": True,     # inputs with |r| were the only kind before the key existed
    "mcmc.method": "mh",
    "mcmc.moves": "all",
    "mcmc.hmc_step_size": 0.05,             # HMC keys: inert under method=mh
    "mcmc.hmc_path_length": 10,
    "mcmc.hmc_target_acceptance": 0.65,
    # settings of speed, not of the mathematics. The sparse and dense Laplacians are
    # the same sum (agreeing to float rounding, tests/test_hamiltonian.py); no earlier run ran on
    # a GPU, and on CPU float32 products are full precision whatever this key says.
    "laplacian_sparsity": "auto",
    # the FermiNet-structured forward Laplacian computes the same sum as folx's
    # (float64 agreement to 1e-12, tests/test_ferminet_laplacian.py), and chunking the batch only
    # changes the order of independent per-walker computations.
    "forward_laplacian": "auto",
    "energy_chunk": "auto",
    "matmul_precision": "highest",
    "optim.inverse_update_period": 1,   # KFAC inverted its factors every iteration
    "pretrain.sampling": "network",      # pretraining walkers followed the network before the key existed
    "evaluation.target_stderr_mha": None,   # every evaluation ran all evaluation.iterations
    "evaluation.min_iterations": 200,       # inert without a target
    "evaluation.check_every": 50,
    # the Psiformer's sizes: scale=paper sets them for every network (inert but for network=psiformer)
    "network.num_layers": 4,
    "network.num_heads": 4,
    "network.heads_dim": 64,
}


def relevant(key: str) -> bool:
    """True for a flat config key that is part of the fingerprint."""
    for ex in EXCLUDED:
        if key == ex or key == ex.rstrip(".") or (ex.endswith(".") and key.startswith(ex)):
            return False
    return True


def _canonical(value: Any) -> Any:
    """A JSON value that compares by meaning: numbers as floats, tuples as lists."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        f = float(value)
        return f if math.isfinite(f) else repr(f)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return str(value)


def fingerprint_values(flat_config: Mapping[str, Any]) -> dict[str, Any]:
    """The trial-relevant part of a flat config (dotted keys), canonicalised."""
    return {k: _canonical(v) for k, v in sorted(flat_config.items()) if relevant(k)}


def fingerprint(values: Mapping[str, Any]) -> str:
    """SHA-256 hex digest of canonical values (see :func:`fingerprint_values`)."""
    text = json.dumps(dict(values), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def record(flat_config: Mapping[str, Any], study: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The content of fingerprint.json for a run with this flat config (and owning study)."""
    values = fingerprint_values(flat_config)
    return {"fingerprint": fingerprint(values), "keys": sorted(values), "values": values,
            "study": dict(study) if study else None}


def write(run_dir: str | Path, rec: Mapping[str, Any]) -> None:
    RunDir(run_dir).write_fingerprint(rec)


def recorded(run_dir: str | Path) -> dict[str, Any] | None:
    """What a run directory records about its config: fingerprint.json, else (an old directory)
    the values of its config.yaml or summary.json; None for a directory without a run."""
    run = RunDir(run_dir)
    data = run.read_fingerprint()
    if data is not None:
        return data
    flat = _old_config(run)
    if flat is None:
        return None
    rec = record(flat)
    rec["study"] = {"name": flat.get("trial.study"), "uuid": None} if flat.get("trial.study") else None
    rec["legacy"] = True
    return rec


def _old_config(run: RunDir) -> dict[str, Any] | None:
    path = run.config_file
    if path.is_file():
        try:
            import yaml  # lazy: only old run directories need it

            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            if isinstance(data, Mapping):
                return flatten(data)
        except (OSError, ValueError, yaml.YAMLError):
            pass
    summary = run.read_summary_or_none()
    return dict(summary.config) if summary is not None and summary.config else None


def _inert(key: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Keys that cannot change a run on either side: the pretraining settings when both runs
    skip pretraining (``pretrain=none``; the scale presets still set its step count), and a
    ``network.*`` key the ansatz of both runs does not read (scale=paper sets the sizes of every
    ansatz; before each ansatz had its own config, scale=quick set FermiNet's under the Psiformer)."""
    if key.startswith("pretrain.") and key != "pretrain.method":
        return old.get("pretrain.method") == new.get("pretrain.method") == "none"
    kind = new.get("network.type")
    return (key.startswith("network.") and old.get("network.type") == kind and kind in ANSATZ_TYPES
            and key.split(".", 1)[1] not in ansatz_keys(kind))


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, old, new) for every key whose value differs; a key only one side has is
    ``"(absent)"`` on the other."""
    out = []
    for key in sorted(set(old) | set(new)):
        if _inert(key, old, new):
            continue
        a, b = old.get(key, "(absent)"), new.get(key, "(absent)")
        if key in LEGACY_DEFAULTS:
            legacy = _canonical(LEGACY_DEFAULTS[key])
            a, b = (legacy if a == "(absent)" else a), (legacy if b == "(absent)" else b)
        if a != b:
            out.append((key, a, b))
    return out


def _show(value: Any) -> str:
    text = value if value == "(absent)" else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_run_dir(run_dir: str | Path, flat_config: Mapping[str, Any],
                  study: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Refuse a run directory that holds another config's run or another study's trial.

    Returns the fingerprint record of the new run; raises ConfigError (one line naming the run
    directory and the differing keys, old -> new) when the directory records a different
    fingerprint, or belongs to another study (uuid). Writes nothing.
    """
    new = record(flat_config, study)
    old = recorded(run_dir)
    if old is None:
        return new
    old_study, new_uuid = old.get("study") or {}, (study or {}).get("uuid")
    if old_study.get("uuid") and new_uuid and old_study["uuid"] != new_uuid:
        raise ConfigError("run_dir", str(run_dir),
                          f"belongs to study '{old_study.get('name')}' (uuid {old_study['uuid']}), not to this "
                          f"study '{(study or {}).get('name')}' (uuid {new_uuid}); a study never adopts "
                          "another's run directory")
    if old.get("fingerprint") == new["fingerprint"]:
        return new  # (a fingerprint covers the same keys only when no key was added since)
    diffs = differences(dict(old.get("values") or {}), new["values"])
    if not diffs:
        return new
    shown = ", ".join(f"{k} {_show(a)} -> {_show(b)}" for k, a, b in diffs[:6])
    more = f" and {len(diffs) - 6} more" if len(diffs) > 6 else ""
    raise ConfigError("run_dir", str(run_dir),
                      f"holds a run of another config ({shown}{more}); rerun with its config "
                      "or use a new run_dir")
