"""Names, paths and files that ablate does not trust (issue 32): study names and paths checked at
the edge, every file of a study inside output_root, a run directory planted in a shared storage
refused, a pickle planted in a run directory never unpickled, and a full disk while writing a
checkpoint or summary.json (the previous checkpoint kept, one line naming the file, resumable).

Real components: SQLite study storages, the engine on tiny H2 runs, a real tmpfs for the full
disk where this machine lets the tests mount one (else that test skips; the injected-ENOSPC test
always runs).
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ablate.config.compose import compose
from ablate.config.experiment import validate
from ablate.records.errors import ConfigError, WriteFailed
from ablate.records.jsonio import write_json_atomic
from ablate.records.safe_paths import is_study_name
from ablate.vmc import checkpoint
from conftest import TINY, assert_same_training
from sweeps import ownership
from sweeps import storage as st
from sweeps.plan import build_plan
from sweeps.space import parse_spec
from sweeps.trials import TrialBook

ROOT = Path(__file__).resolve().parents[1]
optuna.logging.set_verbosity(optuna.logging.WARNING)


class Payload:
    """A pickle whose unpickling creates a file: proof that a pickle ran, if it ever does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def plant_pickle(folder: Path, serial: int, marker: Path) -> Path:
    """A checkpoint file of the old (pickled) kind whose reading would create ``marker``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"ckpt_{serial:08d}.pkl"
    path.write_bytes(pickle.dumps({"phase": "train", "step": serial, "payload": Payload(marker)}))
    return path


# ----------------------------------------------------------------------------- names and paths


@pytest.mark.parametrize("name", ["..", ".", "a/b", "a\nb", "-x", ".hidden", "", "a b", "a\\b", "é"])
def test_a_study_name_that_is_not_one_plain_folder_name_is_refused(name):
    with pytest.raises(ConfigError, match=r"^config error: sweep\.name=.*a study name of letters, digits"):
        parse_spec({"name": name, "space": {"network.width": [4]}})
    assert not is_study_name(name)


@pytest.mark.parametrize("name", ["width", "nan", "1e3", "width_depth-N2.v2"])
def test_plain_study_names_are_accepted(name):
    assert parse_spec({"name": name, "space": {"network.width": [4]}}).name == name


@pytest.mark.parametrize("key", ["output_root", "run_dir", "compilation_cache"])
def test_a_path_with_a_control_character_is_refused(key):
    cfg = compose(TINY)
    cfg[key] = "runs\ta"      # Hydra's own parser refuses most control characters earlier
    with pytest.raises(ConfigError, match=rf"^config error: {key}=.*without control characters"):
        validate(cfg, device_count=1)


def test_the_analysis_refuses_a_bad_name_and_a_study_folder_that_leaves_output_root(tmp_path, capsys):
    """``python -m analysis ..`` used to write report.md, report.html, trials.csv and figures/
    into the parent of output_root."""
    from analysis.__main__ import main

    root = tmp_path / "runs"
    assert main(["..", "--output-root", str(root)]) == 2
    assert "study='..'" in capsys.readouterr().err
    (tmp_path / "elsewhere").mkdir()
    root.mkdir()
    (root / "width").symlink_to(tmp_path / "elsewhere")      # the study folder leads out of the root
    assert main(["width", "--output-root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"a path inside {root.resolve()}" in err
    assert not any((tmp_path / "elsewhere").iterdir()) and sorted(p.name for p in tmp_path.iterdir()) == [
        "elsewhere", "runs"]


def test_the_sweep_cli_refuses_a_study_name_of_dot_dot_before_writing_anything(tmp_path):
    """``sweep.name=..`` used to put report.md, trials.csv and the W&B analysis run in the parent
    of output_root."""
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "ablate", "+sweep=width", "sweep.name=..", *TINY,
                          f"output_root={out}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("config error: sweep.name='..'"), res.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_study_folder_that_links_out_of_output_root_is_refused_before_anything_is_written(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "width").symlink_to(elsewhere)
    overrides = ["+sweep=width", "sweep.gpus=[]", *TINY, f"output_root={out}"]
    with pytest.raises(ConfigError, match=rf"^config error: sweep\.name=.*a path inside {out.resolve()}"):
        build_plan(compose(overrides), overrides)
    assert sorted(p.name for p in out.iterdir()) == ["width"] and not any(elsewhere.iterdir())


# ----------------------------------------------------------------------------- a shared storage


@pytest.fixture
def study_book(tmp_path):
    """A one-point study on SQLite under tmp_path/out, and the driver's TrialBook over it."""
    out = tmp_path / "out"
    overrides = ["+sweep=width", "sweep.space.network.width=[4]", "sweep.seeds=1", "sweep.gpus=[]",
                 "sweep.workers=1", *TINY, f"output_root={out}"]
    plan = build_plan(compose(overrides), overrides)
    storage = st.open_storage(plan.storage_url)
    study, created = st.open_study(storage, plan.study_name, direction="minimize",
                                   sampler=optuna.samplers.RandomSampler(), pruner=None,
                                   attrs=plan.study_attrs(), grid=plan.spec.grid_points(),
                                   defaults=plan.defaults, log=lambda m: None)
    folder = st.study_folder(study, plan.output_root, created, plan.storage_url, log=lambda m: None)
    return TrialBook(plan, study, storage, ownership.Owner.me(), lambda *a, **k: None, folder=folder)


@pytest.mark.parametrize("planted", ["elsewhere", "out/width/../../elsewhere", "out/width", "out/other/t0000"])
def test_a_run_dir_planted_in_the_storage_outside_the_study_fails_the_trial_and_runs_nothing(
        tmp_path, study_book, planted):
    """A waiting trial whose run_dir pointed at a prepared folder made a worker unpickle its
    checkpoint; now the trial fails with one line and nothing is written there."""
    target = tmp_path / planted
    marker = tmp_path / "payload-ran"
    plant_pickle(target / "checkpoints", 50, marker)
    before = sorted(str(p) for p in target.rglob("*"))
    book = study_book
    (waiting,) = book.study.get_trials(states=(TrialState.WAITING,))
    book.storage.set_trial_user_attr(st.trial_id(book.study, book.storage, waiting.number), "run_dir", str(target))

    frozen = book.claim()
    assert frozen is not None and book.start(frozen, "cpu0", 1) is None
    (trial,) = book.study.get_trials()
    assert trial.state == TrialState.FAIL
    reason = trial.user_attrs["fail_reason"]
    assert "outside the study's folder" in reason and str((tmp_path / "out" / "width").resolve()) in reason
    assert "\n" not in reason and sorted(str(p) for p in target.rglob("*")) == before
    assert not marker.exists()


def test_a_run_dir_inside_the_study_folder_is_used(study_book):
    (waiting,) = study_book.study.get_trials(states=(TrialState.WAITING,))
    inside = study_book.folder / "t0000"
    study_book.storage.set_trial_user_attr(
        st.trial_id(study_book.study, study_book.storage, waiting.number), "run_dir", str(inside))
    started = study_book.start(study_book.claim(), "cpu0", 1)
    assert started is not None and started[0].run_dir == inside and str(started[1].run.run_dir) == str(inside)


def test_a_trial_folder_planted_in_the_storage_is_refused(tmp_path, study_book):
    book = study_book
    book.study.set_user_attr("trial_folder", "../escaped")
    with pytest.raises(ConfigError, match=r"trial_folder='\.\./escaped'.*this storage was altered"):
        st.study_folder(book.study, tmp_path / "out", False, "sqlite:///x.db")
    (tmp_path / "out" / "link").symlink_to(tmp_path)
    book.study.set_user_attr("trial_folder", "link")
    with pytest.raises(ConfigError, match="a path inside"):
        st.study_folder(book.study, tmp_path / "out", False, "sqlite:///x.db")
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "study.json").exists()


# ----------------------------------------------------------------------------- pickles


def test_a_planted_pickle_is_never_unpickled(tmp_path, monkeypatch):
    """A run directory whose newest checkpoint is a pickle is refused in one line (nothing
    written, nothing unpickled); a pickle renamed to .ckpt is a corrupt checkpoint; the payload
    is live (the opt-in does run it)."""
    from ablate.vmc.run import run_experiment

    monkeypatch.delenv(checkpoint.PICKLE_ENV, raising=False)
    marker = tmp_path / "payload-ran"
    run_dir = tmp_path / "run"
    planted = plant_pickle(run_dir / "checkpoints", 5, marker)
    with pytest.raises(ConfigError, match=r"ckpt_00000005\.pkl.*ABLATE_LOAD_PICKLED_CHECKPOINTS=1"):
        run_experiment(validate(compose(TINY + [f"run_dir={run_dir}"])))
    assert sorted(p.name for p in run_dir.rglob("*")) == ["checkpoints", planted.name]
    warnings = []
    assert checkpoint.latest(run_dir / "checkpoints", warn=warnings.append) is None
    assert "is a pickle" in warnings[0]

    disguised = run_dir / "checkpoints" / "ckpt_00000009.ckpt"
    disguised.write_bytes(checkpoint.MAGIC_V1 + b"0" * 64 + b"\n" + planted.read_bytes())
    planted.unlink()
    assert checkpoint.latest(run_dir / "checkpoints", warn=warnings.append) is None
    assert "corrupt" in warnings[-1] and not marker.exists()

    monkeypatch.setenv(checkpoint.PICKLE_ENV, "1")     # the control: this pickle does run code
    plant_pickle(run_dir / "checkpoints", 3, marker)
    checkpoint.latest(run_dir / "checkpoints", warn=warnings.append)
    assert marker.exists()


def test_program_store_files_are_not_pickles(tmp_path):
    """The traced-program store keeps the output tree as JSON (no pickle to plant there)."""
    import jax
    import jax.numpy as jnp

    from ablate.runtime import program_store

    program = program_store.StoredProgram("t", lambda x, y: {"s": x + y, "p": (x * y, None)}, "spec", tmp_path)
    out = program(jnp.ones(3), jnp.ones(3))
    (tree,) = tmp_path.glob("t-*.tree")
    assert tree.read_text().startswith("{") and jax.tree.structure(out) == program_store._read(
        tree.with_suffix(""))[1]


# ----------------------------------------------------------------------------- a full disk


class DiskFullAt:
    """``os`` for ablate.vmc.checkpoint whose ``fsync`` fails with ENOSPC on the n-th checkpoint."""

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def __getattr__(self, name):
        return getattr(os, name)

    def fsync(self, fd):
        self.calls += 1
        if self.calls == self.n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.fsync(fd)


def test_enospc_while_writing_a_checkpoint_keeps_the_previous_one_and_the_run_resumes(tmp_path, monkeypatch):
    """Injected ENOSPC at the third checkpoint (step 10 of 20): one line naming the file, no temp
    file left, the step-5 checkpoint intact, and the same run resumes to the same training as an
    uninterrupted one."""
    from ablate.vmc.run import run_experiment

    overrides = TINY + ["checkpoint_every=5"]
    whole = tmp_path / "whole"
    run_experiment(validate(compose(overrides + [f"run_dir={whole}"])))
    cut = tmp_path / "cut"
    monkeypatch.setattr(checkpoint, "os", DiskFullAt(3))
    with pytest.raises(WriteFailed) as err:
        run_experiment(validate(compose(overrides + [f"run_dir={cut}"])))
    message = str(err.value)
    assert message.startswith(f"cannot write {cut / 'checkpoints' / 'ckpt_00000010.ckpt'}: No space left on device")
    assert "\n" not in message and err.value.errno == errno.ENOSPC
    assert sorted(p.name for p in (cut / "checkpoints").iterdir()) == ["ckpt_00000000.ckpt", "ckpt_00000005.ckpt"]
    assert checkpoint.latest(cut / "checkpoints")["step"] == 5
    monkeypatch.undo()
    resumed = run_experiment(validate(compose(overrides + [f"run_dir={cut}"])))
    assert resumed.status == "completed" and resumed.iterations == 20
    assert_same_training(whole, cut, 20)


def test_enospc_while_writing_summary_json_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"status": "running"})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(WriteFailed, match=rf"^cannot write {path}: No space left on device"):
        write_json_atomic(path, {"status": "completed"})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"status": "running"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]   # no temp file left


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 64 KiB tmpfs (the run's first checkpoint fits, the second does not), or skip where this
    machine does not let the tests mount one (mounting needs root and CAP_SYS_ADMIN)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the injected-ENOSPC test covers the same code)")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.slow
def test_a_full_disk_stops_a_run_with_one_line_and_the_same_command_resumes(tmp_path, small_tmpfs):
    """The real CLI on a 64 KiB tmpfs: exit 1 with one line naming the file that did not fit,
    the first checkpoint kept; after the disk grows, the same command resumes from it."""
    run_dir = small_tmpfs / "run"
    command = [sys.executable, "-m", "ablate", *TINY, "checkpoint_every=5", f"run_dir={run_dir}"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    res = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    failed = [ln for ln in res.stderr.splitlines() if ln.startswith("run failed:")]
    assert res.returncode == 1 and len(failed) == 1, res.stdout[-2000:] + res.stderr[-2000:]
    assert f"cannot write {run_dir}" in failed[0] and "No space left on device" in failed[0], failed
    assert not list(run_dir.rglob("*.tmp"))
    kept = checkpoint.latest(run_dir / "checkpoints")
    assert kept is not None and kept["phase"] == "train"

    subprocess.run(["mount", "-o", "remount,size=4m", str(small_tmpfs)], check=True)
    res = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"resuming from checkpoint: phase train, step {int(kept['step'])}" in res.stdout
    assert "status: completed" in res.stdout
