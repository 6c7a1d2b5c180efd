"""Studies on a real Slurm cluster (.ci/start_slurm.sh) with a real PostgreSQL storage.

``python -m ablate +sweep=width sweep.launcher=slurm ...`` submits the job array; the tests
follow the study in the storage, requeue a task mid-trial, send the time limit's early warning,
cancel a task, and check that every grid point completes exactly once, that a resumed trial
starts from the checkpoint its worker wrote on the signal, and that a cancelled task stays gone.
Tiny H2 trials; the cluster has two CPUs and each task asks for one, so the two drivers of an
array run side by side.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from ablate.config.compose import compose
from ablate.records.errors import ConfigError
from sweeps.plan import build_plan
from sweeps.slurm import parse_options, time_limit_s
from sweeps.submit import study_script, submit as submit_study
from sweeps.storage import engine_url
from conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
SLURM_CONF = os.environ.get("ABLATE_TEST_SLURM_CONF")
POSTGRES_URL = os.environ.get("ABLATE_TEST_POSTGRES_URL")
needs_cluster = pytest.mark.skipif(
    not (SLURM_CONF and POSTGRES_URL),
    reason="needs ABLATE_TEST_SLURM_CONF (.ci/start_slurm.sh) and ABLATE_TEST_POSTGRES_URL (.ci/start_postgres.sh)")
# One checkpoint at step 0 and none after but the one a signal asks for: a resumed trial's
# starting step shows which checkpoint it came from. Long enough that a trial is still training
# when the test's signal lands on a fast machine with a warm compilation cache (~1.5 ms per
# iteration there: 1500 iterations were over before the signal).
ITERATIONS = 6000
TRIAL = [*TINY, f"optim.iterations={ITERATIONS}", "checkpoint_every=100000", "sweep.seeds=1",
         "sweep.progress_every_s=1", "sweep.slurm.cpus_per_task=1"]
RESUMED = re.compile(r"resuming from checkpoint: phase train, step (\d+)")
TRAINING = re.compile(r"[|;] (t\d+) train (\d+)/")   # a running trial in a study line


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ, SLURM_CONF=SLURM_CONF or "", PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1",
             TF_CPP_MIN_LOG_LEVEL="3")
    e.setdefault("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax_cache"))
    return e


def submit(out: Path, name: str, env, *extra: str) -> str:
    """Submits the study's array through the CLI; returns the job id."""
    args = [sys.executable, "-m", "ablate", "+sweep=width", "sweep.launcher=slurm", f"output_root={out}",
            f"sweep.storage={POSTGRES_URL}", f"sweep.name={name}", *TRIAL, *extra]
    res = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"python -m sweeps status {name}" in res.stdout
    return re.search(r"submitted Slurm job (\d+)", res.stdout).group(1)


@contextlib.contextmanager
def cancelled_on_exit(job: str, env):
    """Cancels the job when the test ends (a failed test leaves nothing requeueing itself)."""
    try:
        yield
    finally:
        subprocess.run(["scancel", job], env=env, capture_output=True)


def trials(name: str):
    return optuna.load_study(study_name=name, storage=engine_url(POSTGRES_URL)).get_trials()


def wait_until_gone(job: str, env, timeout_s: float) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        out = subprocess.run(["squeue", "-h", "-j", job], env=env, capture_output=True, text=True).stdout
        if not out.strip():
            return
        time.sleep(1)
    subprocess.run(["scancel", job], env=env)
    pytest.fail(f"job {job} still in the queue after {timeout_s} s")


def logs(out: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((out / "slurm").glob("*.out")))


def assert_each_point_once(name: str, widths, iterations: int = ITERATIONS) -> list:
    ts = trials(name)
    complete = [t for t in ts if t.state == TrialState.COMPLETE]
    assert sorted(t.params["network.width"] for t in complete) == sorted(widths), \
        [(t.number, t.state, t.params, t.user_attrs.get("fail_reason")) for t in ts]
    assert not [t for t in ts if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    for t in complete:
        steps = pd.read_csv(Path(t.user_attrs["run_dir"]) / "metrics.csv")["step"].tolist()
        assert steps == list(range(iterations)), t.number
    return ts


def training_trial(name: str, out: Path) -> tuple[int, str] | None:
    """(trial number, driver pid) of a RUNNING trial past its first training steps (as the
    drivers' study lines say), or None."""
    training = {run_id for run_id, step in TRAINING.findall(logs(out)) if int(step) >= 20}
    try:
        ts = trials(name)
    except KeyError:
        return None
    for t in ts:
        if t.state == TrialState.RUNNING and Path(t.user_attrs.get("run_dir", "-")).name in training:
            return t.number, t.user_attrs["driver"].rsplit(":", 1)[1]
    return None


def array_task(pid: str) -> str:
    """The array task a process runs in (its SLURM_ARRAY_TASK_ID)."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return next(v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"SLURM_ARRAY_TASK_ID="))


def assert_resumed_after_the_signal(ts, text: str) -> None:
    """An interrupted trial's continuation started from the step its worker stopped at."""
    interrupted = [t for t in ts if t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") == "interrupted"]
    assert interrupted, [(t.number, t.state, t.user_attrs.get("fail_reason")) for t in ts]
    starts = [int(s) for s in RESUMED.findall(text)]
    assert starts and min(starts) > 0, "no trial resumed from a checkpoint written on the signal"
    assert "pre-empted" not in " ".join(str(t.user_attrs.get("fail_reason")) for t in ts)


@pytest.mark.slurm
@pytest.mark.postgres
@needs_cluster
def test_two_task_array_survives_a_requeue(tmp_path, env):
    """Two drivers join one study; one task is requeued mid-trial, restarts and rejoins; every
    point completes once and the interrupted trial resumes from its signal's checkpoint."""
    name = f"slurm-{uuid.uuid4().hex[:8]}"
    widths = (4, 6)
    job = submit(tmp_path, name, env, "sweep.slurm.nodes=2", f"sweep.space.network.width=[{','.join(map(str, widths))}]")
    with cancelled_on_exit(job, env):
        task = array_task(wait_for_training(name, tmp_path)[1])
        subprocess.run(["scontrol", "requeue", f"{job}_{task}"], env=env, check=True)
        wait_until_gone(job, env, 300)
        text = logs(tmp_path)
        assert "restart 1" in text and "restart 0" in text, text[-3000:]
        ts = assert_each_point_once(name, widths)
        assert_resumed_after_the_signal(ts, text)
        assert len({t.user_attrs["driver"] for t in ts}) >= 2
    optuna.delete_study(study_name=name, storage=engine_url(POSTGRES_URL))


def wait_for_training(name: str, out: Path, timeout_s: float = 240) -> tuple[int, str]:
    deadline, found = time.time() + timeout_s, None
    while time.time() < deadline and found is None:
        found = training_trial(name, out)
        time.sleep(0.5)
    assert found is not None, logs(out)
    return found


@pytest.mark.slurm
@pytest.mark.postgres
@needs_cluster
def test_the_time_limit_warning_stops_the_driver_and_the_requeued_task_finishes(tmp_path, env):
    """The warning Slurm sends before a time limit (SIGUSR1 to the batch shell, sent here by the
    test once a trial trains: Slurm's own timing of it is too coarse for a test): the driver
    re-enqueues its trial and exits 130, the script requeues its task, and the restarted task
    resumes the trial from the checkpoint written on the signal and finishes the study."""
    name = f"slurm-{uuid.uuid4().hex[:8]}"
    job = submit(tmp_path, name, env, "sweep.space.network.width=[4,6]")
    with cancelled_on_exit(job, env):
        wait_for_training(name, tmp_path)
        subprocess.run(["scancel", "--batch", "--signal=USR1", f"{job}_0"], env=env, check=True)
        wait_until_gone(job, env, 300)
        text = logs(tmp_path)
        assert "interrupted: stopping workers" in text and "restart 1" in text, text[-3000:]
        assert "restart 2" not in text, text[-3000:]
        assert_resumed_after_the_signal(assert_each_point_once(name, (4, 6)), text)
    optuna.delete_study(study_name=name, storage=engine_url(POSTGRES_URL))


@pytest.mark.slurm
@pytest.mark.postgres
@needs_cluster
def test_scancel_ends_the_task_and_leaves_its_trial_for_another_driver(tmp_path, env):
    """``scancel`` (SIGTERM to every process of the task) stops the driver, which re-enqueues its
    trial, and the task does not requeue itself: it leaves the queue and stays gone."""
    name = f"slurm-{uuid.uuid4().hex[:8]}"
    job = submit(tmp_path, name, env, "sweep.space.network.width=[4]")
    with cancelled_on_exit(job, env):
        number, _ = wait_for_training(name, tmp_path)
        subprocess.run(["scancel", job], env=env, check=True)
        wait_until_gone(job, env, 120)
        time.sleep(12)                  # longer than the test cluster's requeue delay (cred_expire)
        out = subprocess.run(["squeue", "-h", "-j", job], env=env, capture_output=True, text=True).stdout
        text = logs(tmp_path)
        assert not out.strip() and "restart 1" not in text, (out, text[-3000:])
        ts = trials(name)
        assert ts[number].state == TrialState.FAIL and ts[number].user_attrs["fail_reason"] == "interrupted"
        assert [t.state for t in ts if t.number != number] == [TrialState.WAITING]   # for another driver
    optuna.delete_study(study_name=name, storage=engine_url(POSTGRES_URL))


def test_docs_show_the_script_the_launcher_writes():
    """docs/sweeps.md's Slurm section shows a submission command and the batch script the
    launcher writes for it (``sweep.slurm.dry_run=true`` prints the same)."""
    doc = (ROOT / "docs" / "sweeps.md").read_text()
    command = re.search(r"<!-- slurm-command -->\n```bash\n(.*?)```", doc, re.S).group(1)
    shown = re.search(r"<!-- slurm-script -->\n```bash\n(.*?)```", doc, re.S).group(1)
    args = shlex.split(command.replace("\\\n", " "))
    assert args[:3] == ["python", "-m", "ablate"]
    overrides = args[3:]
    plan = build_plan(compose(overrides), overrides)
    script, _ = study_script(plan, overrides, Path("/home/me/ablate"))
    assert shown == script.replace(shlex.quote(sys.executable), "python")


BAD_OPTIONS = {  # sweep.slurm override -> the key its error names
    "sweep.slurm.time=25:99:xx": "sweep.slurm.time",
    "sweep.slurm.time=1-2-3": "sweep.slurm.time",
    "sweep.slurm.gpus_per_node=-1": "sweep.slurm.gpus_per_node",
    "sweep.slurm.gpus_per_node=two": "sweep.slurm.gpus_per_node",
    "sweep.slurm.nodes=0": "sweep.slurm.nodes",
    "sweep.launcher=pbs": "sweep.launcher",
}


@pytest.mark.parametrize("override, key", list(BAD_OPTIONS.items()))
def test_bad_slurm_options_name_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        build_plan(compose(["+sweep=width", override]), ["+sweep=width", override])
    assert err.value.key == key


def test_signal_must_come_before_the_time_limit():
    with pytest.raises(ConfigError) as err:
        parse_options({"time": "2", "signal_s": 120})
    assert err.value.key == "sweep.slurm.signal_s"
    assert time_limit_s("1-12:00") == 129600 and time_limit_s("90") == 5400 and time_limit_s("5:30") == 330


@pytest.mark.parametrize("case", ["sqlite for two nodes", "no sbatch", "unreachable postgres"])
def test_a_bad_submission_submits_and_writes_nothing(case, tmp_path, monkeypatch):
    overrides = ["+sweep=width", "sweep.launcher=slurm", f"output_root={tmp_path}"]
    if case == "sqlite for two nodes":
        overrides.append("sweep.slurm.nodes=2")
    elif case == "unreachable postgres":
        overrides.append("sweep.storage=postgresql://nobody@127.0.0.1:1/x")
    plan = build_plan(compose(overrides), overrides)
    if case != "no sbatch":
        monkeypatch.setenv("PATH", str(tmp_path))   # a stand-in sbatch: the other checks refuse
        (tmp_path / "sbatch").write_text("#!/bin/sh\necho 1\n")
        (tmp_path / "sbatch").chmod(0o755)
    else:
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ConfigError) as err:
        submit_study(plan, overrides)
    assert err.value.key == {"sqlite for two nodes": "sweep.storage", "no sbatch": "sweep.launcher",
                             "unreachable postgres": "sweep.storage"}[case]
    assert not (tmp_path / "slurm").exists()


def test_dry_run_prints_the_script_and_submits_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))   # no sbatch needed
    overrides = ["+sweep=width", "sweep.launcher=slurm", "sweep.slurm.dry_run=true", "sweep.slurm.time=90",
                 f"output_root={tmp_path}"]
    plan = build_plan(compose(overrides), overrides)
    assert submit_study(plan, overrides) == 0
    script = capsys.readouterr().out
    assert "#SBATCH --time=90\n" in script and "#SBATCH --signal=B:USR1@120\n" in script
    assert "sweep.launcher=local &\n" in script and "sweep.slurm" not in script
    assert not (tmp_path / "slurm").exists()


def test_the_batch_script_is_private_and_quotes_every_value(tmp_path, monkeypatch):
    """The script went out world-readable with every override as given; now it is 0600 (also
    when an older one was readable), each #SBATCH value and the command are shell words (sbatch
    reads quoted #SBATCH values), and bash reads the command back as it was given."""
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")   # a stand-in sbatch
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "sbatch").write_text("#!/bin/sh\necho 7\n")
    (tmp_path / "bin" / "sbatch").chmod(0o755)
    out = tmp_path / "it's $HOME runs"
    overrides = ["+sweep=width", "sweep.launcher=slurm", "sweep.slurm.partition=gpu$x", f'output_root="{out}"']
    plan = build_plan(compose(overrides), overrides)
    script_path = out / "slurm" / "width.sbatch"
    script_path.parent.mkdir(parents=True)
    script_path.write_text("old")
    script_path.chmod(0o644)
    assert submit_study(plan, overrides) == 0
    assert stat.S_IMODE(script_path.stat().st_mode) == 0o600
    script = script_path.read_text()
    assert f"#SBATCH --output={shlex.quote(str(out / 'slurm' / 'width-%A_%a.out'))}\n" in script
    assert "#SBATCH --partition='gpu$x'\n" in script
    command = next(ln for ln in script.splitlines() if ln.endswith(" &"))[:-2]
    assert shlex.split(command) == [sys.executable, "-m", "ablate", "+sweep=width", f'output_root="{out}"',
                                    "sweep.launcher=local"]
    check = subprocess.run(["bash", "-n", str(script_path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
