"""The typed seams: summary.json records, old run directories, generated docs, shared helpers."""

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ablate import records
from ablate.compose import compose
from ablate.config import validate
from ablate.errors import ConfigError
from ablate.records import RecordError, RunSummary
from conftest import TINY

OLD_RUNS = Path(__file__).parent / "data" / "run_dirs_v0"   # written by ablate before schema 1


def test_summary_round_trip_keeps_unknown_keys_and_cleans_nan(tmp_path):
    s = RunSummary(status="completed", energy=-1.17, energy_stderr=float("nan"), electrons=[1, 1],
                   config={"network.width": 8}).replace(future_key={"a": 1})
    s.write(tmp_path)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["schema"] == records.SCHEMA_VERSION and on_disk["future_key"] == {"a": 1}
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
    assert done.trial_attrs()["param_count"] == done.param_count


def test_an_old_completed_run_directory_is_returned_not_rerun(tmp_path):
    from ablate.run import run_experiment

    run_dir = tmp_path / "completed"
    shutil.copytree(OLD_RUNS / "completed", run_dir)
    before = (run_dir / "summary.json").read_text()
    again = run_experiment(compose(TINY + ["optim.iterations=30", "checkpoint_every=10",
                                           "evaluation.iterations=6", f"output_root={tmp_path}",
                                           f"run_dir={run_dir}"]))
    assert again.status == "completed"
    old, new = json.loads(before), again.to_dict()
    assert all(new[k] == v for k, v in old.items()) and new["schema"] == 1
    assert (run_dir / "summary.json").read_text() == before   # nothing rerun, nothing rewritten


def test_an_old_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    """A run killed at step 24 by the code before schema 1 resumes from its step-20 checkpoint."""
    from ablate.run import run_experiment

    run_dir = tmp_path / "interrupted"
    shutil.copytree(OLD_RUNS / "interrupted", run_dir)
    resumed = run_experiment(compose(TINY + ["optim.iterations=30", "checkpoint_every=10",
                                             "evaluation.iterations=6", f"output_root={tmp_path}",
                                             f"run_dir={run_dir}"]))
    assert resumed.status == "completed" and resumed.iterations == 30
    reference = RunSummary.read(OLD_RUNS / "completed")   # the same config run straight through
    assert resumed.energy == pytest.approx(reference.energy, rel=1e-6)


def test_contracts_doc_is_generated_from_the_types():
    out = subprocess.run([sys.executable, "-m", "ablate.contract_docs", "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    text = (Path(__file__).parents[1] / "docs" / "contracts.md").read_text()
    for name in RunSummary.field_names():
        assert f"`{name}`" in text, name
    assert "`network.width`" in text and "`mcmc.target_acceptance`" in text


def test_storage_url_helpers_agree_everywhere(tmp_path):
    assert records.sqlite_path("sqlite:///tmp/x.db?timeout=5") == Path("tmp/x.db")
    assert records.sqlite_path("sqlite:////abs/x.db") == Path("/abs/x.db")
    assert records.sqlite_path("sqlite:///:memory:") is None
    assert records.sqlite_path("postgresql://u:p@h/db") is None
    assert records.default_storage_url(tmp_path) == f"sqlite:///{tmp_path.resolve()}/studies.db"
    assert records.redact_url("postgresql://user:se:cret@host:5432/db") == "postgresql://user:***@host:5432/db"
    assert records.redact_url("sqlite:///a.db") == "sqlite:///a.db"
    from analysis.loaders import default_storage
    assert default_storage(tmp_path) == records.default_storage_url(tmp_path)


def test_flatten_keeps_params_whole_and_ranges_as_leaves():
    nested = {"network": {"width": 8, "hidden_dims": [[8, 4]]}, "trial": {"params": {"network.width": 8}},
              "empty": {}}
    assert records.flatten(nested) == {"network.width": 8, "network.hidden_dims": [[8, 4]],
                                       "trial.params": {"network.width": 8}, "empty": {}}
    space = {"optim": {"lr": {"low": 0.01, "high": 0.1}}, "network.width": [8]}
    flat = records.flatten(space, keep=(), is_leaf=lambda v: "low" in v)
    assert flat == {"optim.lr": {"low": 0.01, "high": 0.1}, "network.width": [8]}


def test_worker_messages_cross_a_pipe():
    for msg in (records.RunTrial(3, "/r", {"seed": 1}, 50), records.Prune(3), records.Stop(),
                records.Ready(1.5), records.Progress(3, "eval", 10, 100),
                records.Done(3, {"status": "completed"}), records.Failed(3, "boom", None)):
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
    """ablate imports neither optuna nor analysis; analysis imports only ablate.records of ablate;
    the CLI's config path imports no JAX."""
    code = ("import sys, ablate.run, ablate.config; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('optuna', 'analysis', 'sweeps')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    code = "import sys, analysis; print(sorted(m for m in sys.modules if m.startswith('ablate')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['ablate', 'ablate.records']", out.stdout
    code = "import sys, ablate.config, sweeps.driver; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stdout
