"""Run directories keep their identity and their facts (issue 14): a config fingerprint that
refuses another config's directory, summary.json rebuilt when damaged, wall time over every
resumption, checksummed checkpoints."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ablate.config.compose import compose
from ablate.config.experiment import validate
from ablate.records import jsonio
from ablate.records.errors import ConfigError
from ablate.records.run_record import RunSummary
from ablate.vmc import checkpoint, fingerprint
from conftest import TINY, StopAt

ROOT = Path(__file__).resolve().parents[1]
OLD_RUNS = Path(__file__).parent / "data" / "run_dirs_v0"


def listing(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def test_fingerprint_ignores_presentation_keys_and_compares_numbers_by_value():
    a = {"network.width": 8, "optim.lr_delay": 1000, "output_root": "/a", "logger.kind": "none",
         "trial.number": 3, "checkpoint_every": 5, "progress": False, "evaluation.iterations": 10}
    b = {**a, "optim.lr_delay": 1000.0, "output_root": "/b", "logger.kind": "wandb", "trial.number": 9,
         "checkpoint_every": 50, "progress": True}
    fa, fb = fingerprint.record(a), fingerprint.record(b)
    assert fa["fingerprint"] == fb["fingerprint"]
    assert fa["keys"] == ["evaluation.iterations", "network.width", "optim.lr_delay"]
    c = {**a, "evaluation.iterations": 11}
    assert fingerprint.record(c)["fingerprint"] != fa["fingerprint"]


def test_pretraining_keys_are_inert_only_when_both_runs_skip_pretraining():
    none_100 = {"pretrain.method": "none", "pretrain.iterations": 100.0, "seed": 0.0}
    none_1000 = {"pretrain.method": "none", "pretrain.iterations": 1000.0, "seed": 0.0}
    hf_1000 = {"pretrain.method": "hf", "pretrain.iterations": 1000.0, "seed": 0.0}
    assert fingerprint.differences(none_100, none_1000) == []
    assert fingerprint.differences(none_100, hf_1000) == [
        ("pretrain.iterations", 100.0, 1000.0), ("pretrain.method", "none", "hf")]
    assert fingerprint.differences(none_100, {**none_1000, "seed": 1.0}) == [("seed", 0.0, 1.0)]


def test_network_keys_the_ansatz_does_not_read_are_inert():
    """A Psiformer run directory of before each ansatz had its own config records FermiNet's sizes
    (scale=quick set them under every network): it still matches its command's config now."""
    from ablate.config.experiment import to_container

    now = fingerprint.fingerprint_values(jsonio.flatten(to_container(compose(["network=psiformer"]))))
    before = {**now, "network.width": 32.0, "network.depth": 2.0, "network.pairwise_width": 8.0}
    assert "network.width" not in now and fingerprint.differences(before, now) == []
    assert fingerprint.differences({**before, "network.heads_dim": 8.0}, now) == [("network.heads_dim", 8.0, 16.0)]
    ferminet = {**now, "network.type": "ferminet", "network.width": 32.0}   # a key FermiNet reads counts
    assert fingerprint.differences(ferminet, {k: v for k, v in ferminet.items() if k != "network.width"}) == [
        ("network.width", 32.0, "(absent)")]


def test_a_finished_run_directory_refuses_another_system_cli(tmp_path):
    """`python -m ablate system=He run_dir=<finished H2 run>` used to print H2's energy."""
    from ablate.vmc.run import run_experiment

    run_dir = tmp_path / "h2"
    done = run_experiment(validate(compose(TINY + [f"output_root={tmp_path}", f"run_dir={run_dir}"])))
    assert done.status == "completed" and done.fingerprint == json.loads(
        (run_dir / "fingerprint.json").read_text())["fingerprint"]
    before = listing(run_dir)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    res = subprocess.run([sys.executable, "-m", "ablate", *TINY, "system=He", f"output_root={tmp_path}",
                          f"run_dir={run_dir}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2, res.stdout + res.stderr
    assert len(lines) == 1 and str(run_dir) in lines[0] and "system.name \"H2\" -> \"He\"" in lines[0], lines
    assert "energy" not in res.stdout
    assert listing(run_dir) == before   # nothing written


def test_a_killed_run_resumed_with_other_settings_is_refused(tmp_path):
    """A run killed at step 12 and rerun with optim.lr=0.5 mcmc.steps=3 used to resume under them."""
    from ablate.vmc.run import run_experiment

    run_dir = tmp_path / "run"
    base = TINY + ["checkpoint_every=5", f"output_root={tmp_path}", f"run_dir={run_dir}"]
    with pytest.raises(KeyboardInterrupt):
        run_experiment(validate(compose(base)), callbacks=StopAt(12))
    before = listing(run_dir)
    with pytest.raises(ConfigError) as err:
        run_experiment(validate(compose(base + ["optim.lr=0.5", "mcmc.steps=3"])))
    text = str(err.value)
    assert "\n" not in text and str(run_dir) in text
    assert "mcmc.steps 2.0 -> 3.0" in text and "optim.lr 0.05 -> 0.5" in text, text
    assert listing(run_dir) == before
    # presentation keys may change: checkpoint_every, progress, logger
    resumed = run_experiment(validate(compose(base + ["checkpoint_every=7", "progress=true"])))
    assert resumed.status == "completed" and resumed.iterations == 20
    assert len(resumed.wall_time_stretches_s) == 2
    assert resumed.wall_time_s == pytest.approx(sum(resumed.wall_time_stretches_s))


def test_old_run_directories_are_checked_against_their_config_yaml(tmp_path):
    run_dir = tmp_path / "interrupted"
    shutil.copytree(OLD_RUNS / "interrupted", run_dir)
    old = fingerprint.recorded(run_dir)
    assert old["legacy"] and old["values"]["optim.iterations"] == 30.0
    same = validate(compose(TINY + ["optim.iterations=30", "checkpoint_every=10", "evaluation.iterations=6",
                                    f"output_root={tmp_path}", f"run_dir={run_dir}"]), device_count=1)
    fingerprint.check_run_dir(run_dir, same.config)     # no error: the test of test_records resumes it
    other = validate(compose(TINY + ["optim.iterations=40", "checkpoint_every=10", "evaluation.iterations=6"]),
                     device_count=1)
    with pytest.raises(ConfigError, match=r"optim.iterations 30.0 -> 40.0"):
        fingerprint.check_run_dir(run_dir, other.config)


def test_a_run_directory_of_another_study_is_refused(tmp_path):
    flat = {"network.width": 8}
    fingerprint.write(tmp_path, fingerprint.record(flat, {"name": "width", "uuid": "aaa"}))
    fingerprint.check_run_dir(tmp_path, flat, {"name": "width", "uuid": "aaa"})
    with pytest.raises(ConfigError, match="belongs to study 'width' \\(uuid aaa\\)"):
        fingerprint.check_run_dir(tmp_path, flat, {"name": "width", "uuid": "bbb"})


def test_a_truncated_summary_is_rebuilt_from_checkpoint_and_tables(tmp_path, capfd):
    """A summary.json cut to invalid JSON used to be dropped silently, losing hf_energy,
    startup_s and ms_per_iteration."""
    from ablate.vmc.run import run_experiment

    run_dir = tmp_path / "run"
    base = TINY + ["pretrain=hf", "pretrain.iterations=3", "checkpoint_every=5", f"output_root={tmp_path}",
                   f"run_dir={run_dir}"]
    with pytest.raises(KeyboardInterrupt):
        run_experiment(validate(compose(base)), callbacks=StopAt(12))
    first = RunSummary.read(run_dir)
    assert first.hf_energy is not None and first.status == "failed"
    path = run_dir / "summary.json"
    path.write_text(path.read_text()[:200])
    capfd.readouterr()
    resumed = run_experiment(validate(compose(base)))
    err = capfd.readouterr().err
    assert f"warning: {path} is damaged" in err and "rebuilt from the checkpoint and the tables" in err
    assert resumed.status == "completed" and resumed.hf_energy == first.hf_energy
    assert resumed.startup_s == pytest.approx(first.startup_s)
    assert resumed.ms_per_iteration is not None
    assert len(resumed.wall_time_stretches_s) == 2   # the stretch before the damage came from the checkpoint
    assert resumed.wall_time_s == pytest.approx(sum(resumed.wall_time_stretches_s))

    # a completed run whose summary is damaged: rebuilt, not rerun, with the same result
    path.write_text("{")
    metrics_before = (run_dir / "metrics.csv").stat().st_mtime_ns
    again = run_experiment(validate(compose(base)))
    assert "is damaged" in capfd.readouterr().err
    assert again.status == "completed" and (run_dir / "metrics.csv").stat().st_mtime_ns == metrics_before
    for key in ("energy", "energy_stderr", "error_mha", "variance", "train_energy", "hf_energy",
                "ms_per_iteration", "startup_s", "iterations", "param_count"):
        assert getattr(again, key) == pytest.approx(getattr(resumed, key)), key
    assert RunSummary.read(run_dir).status == "completed"


def test_a_flipped_byte_in_a_checkpoint_is_caught_and_the_previous_one_used(tmp_path):
    """147 of 150 single-byte flips in the newest checkpoint used to load as if sound."""
    folder = tmp_path / "checkpoints"
    rng = np.random.default_rng(0)
    older = {"phase": "train", "step": 10, "params": rng.normal(size=(64, 8))}
    newer = {"phase": "train", "step": 20, "params": rng.normal(size=(64, 8))}
    checkpoint.save(folder, 10, older)
    path = checkpoint.save(folder, 20, newer)
    good = path.read_bytes()
    assert checkpoint.latest(folder)["step"] == 20
    messages = []
    for pos in random.Random(0).sample(range(len(good)), 150):
        damaged = bytearray(good)
        damaged[pos] ^= 0x5A
        path.write_bytes(bytes(damaged))
        got = checkpoint.latest(folder, warn=messages.append)
        assert got["step"] == 10 and np.array_equal(got["params"], older["params"]), pos
    assert len(messages) == 150 and all(str(path) in m and "corrupt" in m for m in messages)
    path.write_bytes(good[: len(good) // 2])   # a truncated copy
    assert checkpoint.latest(folder, warn=messages.append)["step"] == 10


def test_a_stretch_carries_its_facts_into_checkpoints():
    from ablate.vmc.cost import PhaseClock
    from ablate.vmc.stretch import RunFacts, Stretch

    heard = []
    stretch = Stretch(started=100.0, summary=RunSummary(hf_energy=-7.98, wall_time_stretches_s=[5.0]),
                      clock=PhaseClock({"train": 2.0}), on_first_step=lambda: heard.append(True))
    assert stretch.startup_s() is None and stretch.facts().startup_s is None
    stretch.first_step()
    assert heard == [True] and stretch.startup_s() == pytest.approx(stretch.first_step_done - 100.0)
    extra = stretch.checkpoint_extra()
    assert extra["wall_s_by_phase"] == {"train": 2.0}
    facts = RunFacts.from_dict(extra["run_facts"])
    assert facts.hf_energy == -7.98 and facts.wall_time_stretches_s[0] == 5.0
    assert len(facts.wall_time_stretches_s) == 2 and RunFacts.from_dict(None) == RunFacts()
    resumed = Stretch(started=0.0, summary=RunSummary(startup_s=3.5), clock=PhaseClock())
    assert resumed.startup_s() == 3.5   # a resumed run keeps its first stretch's start-up
