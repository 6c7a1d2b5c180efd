"""The W&B sink and the .wandb reader on their own (real wandb, offline; no engine run)."""

import json
import logging
import math
import struct
import time
import zlib

import pytest

from ablate.config.compose import compose
from ablate.config.experiment import validate
from ablate.tracking.wandb_records import (
    WandbFileError,
    find_run_files,
    history_frame,
    iter_records,
    read_run,
)
from ablate.tracking.wandb_sink import ID_FILE, WandbSink, make_sink, wandb_config
from conftest import TINY

WANDB_TINY = [o for o in TINY if not o.startswith("logger=")] + ["logger=wandb"]


@pytest.fixture(autouse=True)
def _clean_wandb_env(monkeypatch):
    for name in ("WANDB_MODE", "WANDB_DIR", "WANDB_RUN_ID", "WANDB_RESUME", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")


def _cfg(*extra, params=None):
    """The validated experiment the sink gets (the engine never hands it a DictConfig)."""
    cfg = compose(WANDB_TINY + list(extra))
    cfg.trial.params = params or {"network.width": 8, "seed": 0}
    return validate(cfg, device_count=1)


def _one_run(run_dir):
    (path,) = find_run_files(run_dir / "wandb")
    return read_run(path)


def test_sink_roundtrip_through_the_run_file(tmp_path):
    cfg = _cfg("logger.group=study-a", "logger.job_type=width", "logger.name=study-a-t0003",
               "logger.tags=[H2,width,quick]")
    sink = make_sink(cfg, tmp_path)
    assert isinstance(sink, WandbSink)
    for i in range(3):
        sink.log("pretrain", i, {"step": i, "loss": 1.0 / (i + 1)})
    train = [{"step": i, "energy": -1.1 - 0.01 * i, "variance": 0.2, "pmove": 0.5, "move_width": 0.02,
              "learning_rate": 0.05, "step_time_s": 0.003} for i in range(5)]
    for row in train:
        sink.log("train", row["step"], row)
    sink.log("eval", 0, {"step": 0, "energy": -1.15, "variance": 0.1, "pmove": 0.55})
    sink.set_summary({"status": "pruned", "energy": float("nan"), "energy_stderr": 0.01,
                      "param_count": 123, "electrons": [1, 1], "config": {"x": 1}, "params": {"a": 1}})
    sink.finish("pruned", "pruned at training step 4")

    run = _one_run(tmp_path)
    assert (tmp_path / ID_FILE).read_text().strip() == run["run_id"]
    assert (run["group"], run["job_type"], run["name"]) == ("study-a", "width", "study-a-t0003")
    assert run["tags"] == ["H2", "width", "quick"]
    assert run["config"]["network.width"] == 8 and run["config"]["system.name"] == "H2"
    assert run["config"]["trial.swept"] == ["network.width", "seed"]
    assert "trial.params" not in run["config"]
    # one step axis per phase
    assert run["metrics"]["train/*"] == "train/step"
    assert run["metrics"]["pretrain/*"] == "pretrain/step"
    assert run["metrics"]["eval/*"] == "eval/step"
    got = history_frame(run, "train")
    assert got["step"].tolist() == list(range(5))
    assert got["energy"].tolist() == pytest.approx([r["energy"] for r in train])
    assert set(got.columns) == set(train[0])
    assert history_frame(run, "pretrain")["loss"].tolist() == pytest.approx([1, 1 / 2, 1 / 3])
    assert history_frame(run, "eval")["energy"].tolist() == [-1.15]
    summary = run["summary"]
    assert summary["status"] == "pruned" and summary["reason"] == "pruned at training step 4"
    assert summary["energy"] is None and summary["param_count"] == 123 and summary["electrons"] == [1, 1]
    assert "config" not in summary and "params" not in summary
    assert run["exit_code"] == 1 and run["complete"]


def test_same_run_dir_continues_the_same_wandb_run(tmp_path):
    for status in ("failed", "completed"):
        sink = make_sink(_cfg(), tmp_path)
        sink.log("train", 0, {"energy": -1.0})
        sink.finish(status, None)
    files = find_run_files(tmp_path)
    assert len(files) == 2
    first, second = (read_run(p) for p in files)
    assert first["run_id"] == second["run_id"] == (tmp_path / ID_FILE).read_text().strip()
    assert (first["exit_code"], second["exit_code"]) == (1, 0)


def test_many_runs_in_one_process(tmp_path):
    """A sweep worker runs trials one after another; each is its own W&B run."""
    names = []
    for k in range(3):
        sink = make_sink(_cfg(f"logger.name=t{k}", "logger.group=g"), tmp_path / f"t{k}")
        sink.log("train", 0, {"energy": float(k)})
        sink.finish("completed", None)
        names.append(_one_run(tmp_path / f"t{k}")["name"])
    assert names == ["t0", "t1", "t2"]


@pytest.mark.parametrize("overrides", [["logger=none"], ["logger.mode=disabled"]])
def test_no_sink_when_wandb_is_off(overrides, tmp_path):
    assert make_sink(validate(compose(TINY + ["logger=wandb"] + overrides), device_count=1), tmp_path) is None
    assert not list(tmp_path.iterdir())


def test_errors_after_start_are_contained(tmp_path, caplog):
    sink = make_sink(_cfg(), tmp_path)
    sink.run.finish()  # the run is gone under the sink: wandb now raises on every call
    with caplog.at_level(logging.WARNING, logger="ablate.wandb"):
        for i in range(3):
            sink.log("train", i, {"energy": -1.0})
        sink.set_summary({"energy": -1.0})
        sink.finish("completed", None)
        sink.finish("completed", None)
    warnings = [r for r in caplog.records if r.name == "ablate.wandb"]
    assert len(warnings) == 1 and "W&B" in warnings[0].getMessage()


def test_online_without_network_gives_up_within_the_init_timeout(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    cfg = _cfg("logger.mode=online", "logger.init_timeout=3")
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="ablate.wandb"):
        sink = make_sink(cfg, tmp_path)
    elapsed = time.monotonic() - start
    assert sink is None
    assert elapsed < 3 + 10, elapsed
    warnings = [r for r in caplog.records if r.name == "ablate.wandb"]
    assert len(warnings) == 1 and "could not start" in warnings[0].getMessage()


def test_wandb_config_is_flat_with_swept_values_at_their_keys():
    flat = wandb_config(_cfg(params={"network.width": 64}).config)
    assert flat["network.width"] == 64 and flat["trial.swept"] == ["network.width"]
    assert all(not isinstance(v, dict) for v in flat.values())


# -- the reader on damaged or foreign files ------------------------------------------------------


@pytest.fixture
def run_file(tmp_path):
    sink = make_sink(_cfg(), tmp_path / "run")
    for i in range(400):  # a few 32 KiB blocks, so records span block boundaries
        sink.log("train", i, {"energy": -1.0 - i * 1e-3, "variance": 0.1})
    sink.finish("completed", None)
    (path,) = find_run_files(tmp_path / "run")
    return path


def test_reader_spans_blocks(run_file):
    assert run_file.stat().st_size > 3 * 32768
    frame = history_frame(read_run(run_file), "train")
    assert frame["step"].tolist() == list(range(400))
    assert frame["energy"].iloc[-1] == pytest.approx(-1.399)


def test_reader_stops_quietly_at_a_truncated_tail(run_file, tmp_path):
    cut = tmp_path / "cut.wandb"
    data = run_file.read_bytes()
    cut.write_bytes(data[: len(data) // 2 + 3])
    run = read_run(cut)
    assert 0 < len(history_frame(run, "train")) < 400
    assert run["exit_code"] is None and not run["complete"]


def test_reader_rejects_corruption_and_foreign_files(run_file, tmp_path):
    data = bytearray(run_file.read_bytes())
    data[7 + 7 + 2] ^= 0xFF  # a byte inside the first record
    bad = tmp_path / "bad.wandb"
    bad.write_bytes(bytes(data))
    with pytest.raises(WandbFileError, match="checksum"):
        list(iter_records(bad))
    foreign = tmp_path / "foreign.wandb"
    foreign.write_bytes(b"hello world, not a log")
    with pytest.raises(WandbFileError, match="not a W&B"):
        read_run(foreign)
    # the header format the reader expects: ":W&B", magic 0xBEE1, version 0
    assert struct.unpack("<4sHB", run_file.read_bytes()[:7]) == (b":W&B", 0xBEE1, 0)
    assert zlib.crc32(b"Weights & Biases") & 0xFFFF == 0xBEE1
    assert math.isfinite(read_run(run_file)["history"][0]["train/energy"])


# -- the study's analysis run -------------------------------------------------------------------


def _fake_study(tmp_path, logger: str):
    """An Optuna study like the sweep driver leaves it: trials with run_dir and result attrs."""
    import optuna
    from omegaconf import OmegaConf

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(study_name="fake", storage=storage)
    study.set_user_attr("sweep", "width")
    study.set_user_attr("objective", "error_mha")
    for number, (width, state) in enumerate([(4, "COMPLETE"), (8, "COMPLETE"), (16, "FAIL")]):
        run_dir = tmp_path / "fake" / f"t{number:04d}"
        run_dir.mkdir(parents=True)
        cfg = compose(TINY + [f"logger={logger}", "logger.tags=[H2,width]"])
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        attrs = {"run_dir": str(run_dir), "energy": -1.1 - 0.01 * number}
        if state == "FAIL":
            attrs["fail_reason"] = "non-finite energy"
        study.add_trial(optuna.trial.create_trial(
            params={"network.width": width},
            distributions={"network.width": optuna.distributions.CategoricalDistribution([4, 8, 16])},
            value=10.0 / width if state == "COMPLETE" else None,
            state=optuna.trial.TrialState[state],
            user_attrs=attrs,
        ))
    return storage


def test_log_study_adds_an_analysis_run_with_the_trial_table(tmp_path):
    from sweeps.study_log import log_study

    storage = _fake_study(tmp_path, "wandb")
    out = log_study("fake", storage, tmp_path)
    assert out == tmp_path / "fake" / "analysis"
    (run,) = [read_run(p) for p in find_run_files(out)]
    assert (run["group"], run["job_type"], run["name"]) == ("fake", "analysis", "fake-analysis")
    assert run["tags"] == ["H2", "width"] and run["exit_code"] == 0
    assert run["config"]["study.sweep"] == "width"
    summary = run["summary"]
    assert (summary["n_trials"], summary["n_complete"], summary["n_failed"]) == (3, 2, 1)
    assert summary["best_trial"] == 1 and summary["best.network.width"] == 8
    table = json.loads((find_run_files(out)[0].parent / "files" / summary["study_table"]["path"]).read_text())
    assert table["columns"][:4] == ["number", "state", "value", "duration_s"]
    assert {"params.network.width", "attrs.run_dir", "attrs.energy", "attrs.fail_reason"} <= set(table["columns"])
    assert [row[1] for row in table["data"]] == ["COMPLETE", "COMPLETE", "FAIL"]


def test_log_study_respects_logger_none(tmp_path):
    from sweeps.study_log import log_study

    storage = _fake_study(tmp_path, "none")
    assert log_study("fake", storage, tmp_path) is None
    assert not (tmp_path / "fake" / "analysis").exists()
    assert log_study("no-such-study", storage, tmp_path) is None  # never raises
