"""The typed seams: summary.json records, old run directories, generated docs, shared helpers."""

import dataclasses
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ablate.config.compose import compose
from ablate.config.experiment import validate
from ablate.records import jsonio, run_record, study_record
from ablate.records.errors import ConfigError
from ablate.records.run_record import RecordError, RunSummary
from sweeps import messages
from conftest import TINY

OLD_RUNS = Path(__file__).parent / "data" / "run_dirs_v0"   # written by ablate before schema 1
FLAT_CHECKPOINTS = Path(__file__).parent / "data" / "checkpoints_flat_modules"   # ablate/ before its folders


def test_summary_round_trip_keeps_unknown_keys_and_cleans_nan(tmp_path):
    s = RunSummary(status="completed", energy=-1.17, energy_stderr=float("nan"), electrons=[1, 1],
                   config={"network.width": 8}).replace(future_key={"a": 1})
    s.write(tmp_path)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["schema"] == run_record.SCHEMA_VERSION and on_disk["future_key"] == {"a": 1}
    assert on_disk["energy_stderr"] is None and on_disk["energy"] == -1.17
    back = RunSummary.read(tmp_path)
    assert back.to_dict() == on_disk and back.extra == {"future_key": {"a": 1}}


@pytest.mark.parametrize("text, match", [
    ('{"status": "completed"', "not valid JSON"),
    ('[1, 2]', "not a JSON object"),
    ('{"schema": 99}', "newer than this ablate"),
    ('{"status": "exploded"}', "status"),
    ('{"config": 3}', "config must be an object"),
])
def test_unreadable_summaries_are_one_line_errors_naming_the_file(tmp_path, text, match):
    (tmp_path / "summary.json").write_text(text)
    with pytest.raises(RecordError, match=match) as err:
        RunSummary.read(tmp_path)
    assert str(tmp_path / "summary.json") in str(err.value) and "\n" not in str(err.value)
    assert RunSummary.read_or_none(tmp_path) is None
    assert RunSummary.read(tmp_path / "absent") is None


def test_summaries_written_before_schema_1_load():
    done = RunSummary.read(OLD_RUNS / "completed")
    assert done.status == "completed" and done.schema == 1 and done.extra == {}
    assert done.iterations == 30 and done.energy < 0 and done.error_mha is not None
    assert done.objective("error_mha") == pytest.approx(done.error_mha)
    assert study_record.trial_attrs(done)["param_count"] == done.param_count


def test_record_fields_are_declared_once_on_the_summary():
    """Which summary fields a trial's user attributes and the trial frame carry is declared on
    RunSummary (``copy=``): the storage's copy and the frame's columns follow it, and a frame
    read from the storage alone (run directory gone) equals one read from summary.json."""
    from analysis.loaders import DERIVED_COLUMNS, RECORD_COLUMNS, merge_record

    copy = {f.name: f.metadata["copy"] for f in dataclasses.fields(RunSummary)}
    assert set(run_record.FRAME_KEYS) <= set(study_record.TRIAL_ATTR_KEYS)
    assert {k for k, c in copy.items() if c} == set(study_record.TRIAL_ATTR_KEYS)
    assert [c for c in RECORD_COLUMNS if c not in DERIVED_COLUMNS] == [k for k in run_record.FRAME_KEYS if k != "seed"]
    done = RunSummary.read(OLD_RUNS / "completed").replace(devices=1, device_seconds=12.5, training_flops=3e9,
                                                           flops_per_iteration=1e8, device_kind="cpu")
    attrs = study_record.trial_attrs(done)
    assert set(attrs) == {k for k in study_record.TRIAL_ATTR_KEYS if done.get(k) is not None}
    args = dict(number=0, state="COMPLETE", value=1.0, params={}, run_dir=None)
    from_summary = merge_record(user_attrs={}, summary=done.to_dict(), **args)
    from_storage = merge_record(user_attrs=attrs, summary={}, **args)
    for key in run_record.FRAME_KEYS:
        assert from_summary[key] == from_storage[key] == done.get(key), key


def test_an_old_completed_run_directory_is_returned_not_rerun(tmp_path):
    from ablate.vmc.run import run_experiment

    run_dir = tmp_path / "completed"
    shutil.copytree(OLD_RUNS / "completed", run_dir)
    before = (run_dir / "summary.json").read_text()
    again = run_experiment(validate(compose(TINY + ["optim.iterations=30", "checkpoint_every=10",
                                           "evaluation.iterations=6", f"output_root={tmp_path}",
                                           f"run_dir={run_dir}"])))
    assert again.status == "completed"
    old, new = json.loads(before), again.to_dict()
    assert all(new[k] == v for k, v in old.items()) and new["schema"] == 1
    assert (run_dir / "summary.json").read_text() == before   # nothing rerun, nothing rewritten


def test_an_old_interrupted_run_resumes_from_its_checkpoint_when_pickles_are_allowed(tmp_path, monkeypatch):
    """A run killed at step 24 by the code before schema 1 resumes from its step-20 checkpoint (a
    pickle): refused in one line naming the file and the opt-in, nothing written; with
    ABLATE_LOAD_PICKLED_CHECKPOINTS=1 it resumes, and its new checkpoints are not pickles."""
    from ablate.records.errors import ConfigError
    from ablate.vmc import checkpoint
    from ablate.vmc.run import run_experiment

    run_dir = tmp_path / "interrupted"
    shutil.copytree(OLD_RUNS / "interrupted", run_dir)
    cfg = validate(compose(TINY + ["optim.iterations=30", "checkpoint_every=10", "evaluation.iterations=6",
                                   f"output_root={tmp_path}", f"run_dir={run_dir}"]))
    monkeypatch.delenv(checkpoint.PICKLE_ENV, raising=False)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in run_dir.rglob("*"))
    with pytest.raises(ConfigError, match=r"ckpt_00000020\.pkl.*ABLATE_LOAD_PICKLED_CHECKPOINTS=1"):
        run_experiment(cfg)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in run_dir.rglob("*")) == before

    monkeypatch.setenv(checkpoint.PICKLE_ENV, "1")
    resumed = run_experiment(cfg)
    assert resumed.status == "completed" and resumed.iterations == 30
    reference = RunSummary.read(OLD_RUNS / "completed")   # the same config run straight through
    assert resumed.energy == pytest.approx(reference.energy, rel=1e-6)
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["ckpt_00000020.pkl", "ckpt_00000030.ckpt"], names   # the newest is no pickle
    monkeypatch.delenv(checkpoint.PICKLE_ENV)
    checkpoint.check_no_pickle(run_dir / "checkpoints")   # so no opt-in is needed from here on
    assert checkpoint.latest(run_dir / "checkpoints")["step"] == 30


def test_checkpoints_naming_the_modules_of_the_flat_ablate_load_with_the_classes_where_they_are_now(
        tmp_path, monkeypatch):
    """Checkpoints name classes by module path. tests/data/checkpoints_flat_modules was written by
    the ablate of one flat folder (``checkpoint.encode`` and a version-1 pickle of a state with a
    ``TrainState``, a ``Hyper``, a ``RunFacts`` and an ``McmcConfig``): the JSON tree names
    ``ablate.training:TrainState`` and ``ablate.optimizers:Hyper``, the pickle ``ablate.training``,
    ``ablate.optimizers``, ``ablate.stretch`` and ``ablate.config`` (a package now, whose class
    lives in ``ablate.config.experiment``). Both load, through the one map of moved modules, as
    today's classes; without the map neither would."""
    from ablate.config.experiment import McmcConfig
    from ablate.runtime import pytree_json
    from ablate.vmc import checkpoint
    from ablate.vmc.optimizers import Hyper
    from ablate.vmc.stretch import RunFacts
    from ablate.vmc.training import TrainState

    folder = tmp_path / "checkpoints"
    shutil.copytree(FLAT_CHECKPOINTS, folder)
    monkeypatch.delenv(checkpoint.PICKLE_ENV, raising=False)
    assert pytree_json.current_module("ablate.training") == "ablate.vmc.training"
    assert pytree_json.current_module("ablate.vmc.training") == "ablate.vmc.training"

    newest = checkpoint.latest(folder, warn=pytest.fail)                 # version 2: JSON, no opt-in
    assert type(newest["state"]) is TrainState and type(newest["hyper"]) is Hyper
    assert newest["step"] == 10 and newest["state"].width == 0.02
    assert list(newest["state"].params["w"]) == [0.0, 1.0, 2.0] and newest["hyper"].momentum == 0.9

    old = checkpoint.decode_pickle((folder / "ckpt_00000010.pkl").read_bytes())   # the pickle
    assert type(old["state"]) is TrainState and type(old["hyper"]) is Hyper
    assert old["run_facts"] == RunFacts(hf_energy=-7.862, startup_s=3.5, wall_time_stretches_s=(12.0,))
    assert type(old["mcmc"]) is McmcConfig and old["mcmc"] == McmcConfig()
    (folder / "ckpt_00000020.ckpt").unlink()
    monkeypatch.setenv(checkpoint.PICKLE_ENV, "1")
    assert type(checkpoint.latest(folder, warn=pytest.fail)["state"]) is TrainState

    monkeypatch.setattr(pytree_json, "MOVED_MODULES", {})               # the map is what finds them
    with pytest.raises(checkpoint.CorruptCheckpoint):
        checkpoint.decode_pickle((folder / "ckpt_00000010.pkl").read_bytes())
    with pytest.raises(checkpoint.CorruptCheckpoint):
        checkpoint.decode((FLAT_CHECKPOINTS / "ckpt_00000020.ckpt").read_bytes())


def test_contracts_doc_is_generated_from_the_types():
    out = subprocess.run([sys.executable, "-m", "ablate.cli.contract_docs", "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    text = (Path(__file__).parents[1] / "docs" / "contracts.md").read_text()
    for name in RunSummary.field_names():
        assert f"`{name}`" in text, name
    assert "`network.width`" in text and "`mcmc.target_acceptance`" in text


def test_storage_url_helpers_agree_everywhere(tmp_path):
    assert study_record.sqlite_path("sqlite:///tmp/x.db?timeout=5") == Path("tmp/x.db")
    assert study_record.sqlite_path("sqlite:////abs/x.db") == Path("/abs/x.db")
    assert study_record.sqlite_path("sqlite:///:memory:") is None
    assert study_record.sqlite_path("postgresql://u:p@h/db") is None
    assert study_record.default_storage_url(tmp_path) == f"sqlite:///{tmp_path.resolve()}/studies.db"
    from analysis.loaders import default_storage
    assert default_storage(tmp_path) == study_record.default_storage_url(tmp_path)


def test_flatten_keeps_params_whole_and_ranges_as_leaves():
    nested = {"network": {"width": 8, "hidden_dims": [[8, 4]]}, "trial": {"params": {"network.width": 8}},
              "empty": {}}
    assert jsonio.flatten(nested) == {"network.width": 8, "network.hidden_dims": [[8, 4]],
                                      "trial.params": {"network.width": 8}, "empty": {}}
    space = {"optim": {"lr": {"low": 0.01, "high": 0.1}}, "network.width": [8]}
    flat = jsonio.flatten(space, keep=(), is_leaf=lambda v: "low" in v)
    assert flat == {"optim.lr": {"low": 0.01, "high": 0.1}, "network.width": [8]}


def test_worker_messages_cross_a_pipe():
    experiment = validate(compose(["system=He", "network=psiformer"]), device_count=1)
    sent = pickle.loads(pickle.dumps(messages.RunTrial(3, "/r", experiment, 50))).experiment
    assert sent.network == experiment.network and sent.config == experiment.config
    assert sent.system.name == "He" and (sent.system.positions == experiment.system.positions).all()
    for msg in (messages.Prune(3), messages.Stop(),
                messages.Ready(1.5), messages.TrialProgress(3, "eval", 10, 100),
                messages.Done(3, {"status": "completed"}), messages.Failed(3, "boom", None)):
        assert pickle.loads(pickle.dumps(msg)) == msg


def test_validate_returns_typed_groups_and_names_bad_keys():
    exp = validate(compose(["system=He", "network.hidden_dims=[[8,4],[6,2]]"]), device_count=1)
    assert exp.network.layers == ((8, 4), (6, 2)) and exp.optim.lr == 0.05
    assert isinstance(exp.mcmc.move_width, float) and exp.run.precision == "float32"
    assert exp.config["network.hidden_dims"] == [[8, 4], [6, 2]]
    with pytest.raises(ConfigError, match="network.envelope='spherical'.*allowed: isotropic"):
        validate(compose(["network.envelope=spherical"]), device_count=1)
    with pytest.raises(ConfigError, match="mcmc.target_acceptance=1.5"):
        validate(compose(["mcmc.target_acceptance=1.5"]), device_count=1)
    with pytest.raises(ConfigError, match="network.full_det=1"):
        validate(compose(["network.full_det=1"]), device_count=1)


def test_engine_and_analysis_import_boundaries():
    """ablate imports neither optuna nor analysis; analysis imports only the record modules of
    ablate (run and study records, JSON helpers, provenance, errors), its statistics (reblocking,
    numpy only) and its edge checks (redaction, names and paths: standard library); the CLI's
    config path imports no JAX."""
    code = ("import sys, ablate.vmc.run, ablate.config.experiment; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('optuna', 'analysis', 'sweeps')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    code = "import sys, analysis; print(sorted(m for m in sys.modules if m.startswith('ablate')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    records = ("errors", "jsonio", "provenance", "redact", "run_record", "safe_paths", "stats", "study_record")
    assert out.stdout.strip() == str(["ablate", "ablate.records"] + [f"ablate.records.{m}" for m in records]), out.stdout
    code = "import sys, ablate.config.experiment, sweeps.driver; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stdout


def test_the_record_modules_import_no_heavy_library():
    """The run and study records, and the worker messages, load without JAX, Optuna, pandas or numpy."""
    code = ("import sys, ablate.records.run_record, ablate.records.study_record, sweeps.messages; "
            "print(sorted(m for m in ('jax', 'optuna', 'pandas', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_run_dir_owns_its_file_names_and_the_trial_folder_name(tmp_path):
    run = run_record.RunDir.of_trial(tmp_path, 7)
    assert run.path == tmp_path / "t0007" and run_record.trial_dir_name(7) == "t0007"
    assert (run.summary_file.name, run.config_file.name, run.checkpoints.name) == \
        ("summary.json", "config.yaml", "checkpoints")
    assert run.table("train").name == "metrics.csv" and run.read_columns("train", ("energy",)) == {"energy": []}
    assert run.read_summary() is None and run.read_fingerprint() is None and run.read_heartbeat() is None
    run.path.mkdir()
    run.write_summary(RunSummary(status="completed", energy=-1.0))
    run.write_heartbeat("me", 12.5)
    run.write_fingerprint({"fingerprint": "abc", "values": {"seed": 1.0}})
    assert run.read_summary().energy == -1.0 and run.read_heartbeat() == 12.5
    assert run.read_fingerprint()["values"] == {"seed": 1.0}


def test_the_sweep_driver_imports_no_analysis():
    """The command line hands the study log the analysis; the sweeps never import it."""
    code = ("import sys, sweeps.driver, sweeps.study_log; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'analysis'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
