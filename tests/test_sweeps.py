"""End-to-end sweep tests through the real CLI (``python -m ablate +sweep=...``) and engine.

Each test runs tiny H2 trials (a few seconds of iterations; most of a trial is JAX
start-up) under its own ``output_root``. The JAX persistent compilation cache is shared by
the whole session (JAX_COMPILATION_CACHE_DIR, set by conftest.py or here), so later tests
compile less.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy.exc
from optuna.trial import TrialState

from sweeps.storage import engine_url

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "system=H2", "network.width=8", "network.depth=1", "network.pairwise_width=4",
    "network.determinants=1", "batch_size=32", "optim.iterations=20", "mcmc.burn_in=5",
    "mcmc.steps=2", "pretrain=none", "evaluation.iterations=10", "evaluation.burn_in=5",
    "logger=none",
]
POSTGRES_URL = os.environ.get("ABLATE_TEST_POSTGRES_URL")

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The environment of every CLI call: a shared compilation cache, quiet XLA."""
    e = dict(os.environ)
    if not e.get("JAX_COMPILATION_CACHE_DIR"):  # conftest.py normally sets a session-wide one
        e["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax_cache"))
    e["TF_CPP_MIN_LOG_LEVEL"] = "3"
    e["PYTHONUNBUFFERED"] = "1"
    return e


def sweep_args(out: Path, *extra: str, sweep: str = "width") -> list[str]:
    # one seed per grid point unless a test asks otherwise (the width sweep's default is 2), and no
    # rounds of seeds unless a test asks for them (the talk studies' files set max_seeds: 8)
    seeds = [] if any(e.startswith("sweep.seeds=") for e in extra) else ["sweep.seeds=1"]
    rounds = [] if any("sweep.max_seeds=" in e for e in extra) else ["++sweep.max_seeds=null"]
    return [sys.executable, "-m", "ablate", f"+sweep={sweep}", f"output_root={out}", *TINY, *seeds, *rounds,
            *extra]


def run_cli(args, env, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def trials(out: Path, name: str = "width", url: str | None = None):
    storage = engine_url(url) if url else f"sqlite:///{out / 'studies.db'}"
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def poll_trials(out: Path, name: str = "width"):
    """The study's trials, or [] while the driver has not created it (or its tables) yet."""
    if not (out / "studies.db").exists():
        return []
    try:
        return trials(out, name)
    except (KeyError, sqlalchemy.exc.SQLAlchemyError):
        return []


def summary(trial) -> dict:
    return json.loads((Path(trial.user_attrs["run_dir"]) / "summary.json").read_text())


def assert_grid_done_once(ts, key="network.width", values=(4, 8)):
    complete = [t for t in ts if t.state == TrialState.COMPLETE]
    assert sorted(t.params[key] for t in complete) == sorted(values), [(t.number, t.state, t.params) for t in ts]
    assert not [t for t in ts if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    for t in complete:
        s = summary(t)
        assert s["status"] == "completed" and s["params"] == {key: t.params[key]}
        assert Path(t.user_attrs["run_dir"]).is_absolute()
        assert t.value == pytest.approx(t.user_attrs["error_mha"])
    return complete


@pytest.mark.slow
def test_grid_with_two_workers(tmp_path, env):
    """One COMPLETE trial per grid point, each with its run directory and summary.json."""
    res = run_cli(sweep_args(tmp_path, "sweep.space.network.width=[4,8]", "sweep.workers=2"), env)
    assert res.returncode == 0, res.stderr[-3000:]
    ts = trials(tmp_path)
    complete = assert_grid_done_once(ts)
    assert len(ts) == 2 and {t.user_attrs["worker"] for t in complete} == {"cpu0", "cpu1"}
    for t in complete:
        run_dir = Path(t.user_attrs["run_dir"])
        assert run_dir.parent == tmp_path / "width" and (run_dir / "metrics.csv").exists()
        for key in ("energy", "energy_stderr", "reference_energy", "param_count", "wall_time_s",
                    "ms_per_iteration", "seed", "status", "network", "system"):
            assert key in t.user_attrs, key
    study = optuna.load_study(study_name="width", storage=f"sqlite:///{tmp_path / 'studies.db'}")
    assert study.user_attrs["sweep"] == "width" and study.user_attrs["objective"] == "error_mha"
    assert study.user_attrs["output_root"] == str(tmp_path)
    assert "system=H2" in study.user_attrs["base_overrides"]
    assert "COMPLETE" in res.stdout and "error (mHa)" in res.stdout  # the closing table

    status = run_cli([sys.executable, "-m", "sweeps", "status", "width", "--output-root", str(tmp_path)], env)
    assert status.returncode == 0 and status.stdout.count("COMPLETE") == 2, status.stderr


@pytest.mark.slow
def test_kill_driver_and_resume(tmp_path, env):
    """kill -9 mid-study; the rerun keeps finished trials and recovers the running one."""
    # long enough that the second trial is still training 3 s after it starts, on a fast machine
    # with a warm compilation cache (~1.5 ms per iteration: 60 iterations once ended before the kill)
    args = sweep_args(tmp_path, "sweep.space.network.width=[4,8]", "sweep.workers=1", "checkpoint_every=200",
                      "optim.iterations=4000")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, "the driver ended before it could be killed:\n" + proc.stdout.read()
            assert time.monotonic() < deadline, "no COMPLETE + RUNNING state within 240 s"
            states = [t.state for t in poll_trials(tmp_path)]
            if TrialState.COMPLETE in states and TrialState.RUNNING in states:
                break
            time.sleep(0.3)
        time.sleep(3)  # let the running trial get going (and write a checkpoint or two)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()

    before = trials(tmp_path)
    done = [t for t in before if t.state == TrialState.COMPLETE]
    running = [t for t in before if t.state == TrialState.RUNNING]
    assert len(done) == 1 and len(running) == 1
    done_summary = Path(done[0].user_attrs["run_dir"]) / "summary.json"
    mtime = done_summary.stat().st_mtime_ns

    res = run_cli(args, env)
    assert res.returncode == 0, res.stderr[-3000:]
    after = trials(tmp_path)
    assert_grid_done_once(after)
    assert done_summary.stat().st_mtime_ns == mtime           # the finished trial was not rerun
    assert after[done[0].number].state == TrialState.COMPLETE
    killed = after[running[0].number]
    assert killed.state == TrialState.FAIL and killed.user_attrs["fail_reason"].startswith("stale: driver")
    retry = [t for t in after if t.user_attrs.get("recovered_from") == killed.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].user_attrs["run_dir"] == killed.user_attrs["run_dir"]  # resumed in place
    assert len(after) == 3


@pytest.mark.slow
def test_nan_trial_fails_with_reason_others_complete(tmp_path, env):
    res = run_cli(sweep_args(tmp_path, "sweep.space.network.width=[4]", "+sweep.space.debug.inject_nan_step=[null,3]",
                             "sweep.workers=2"), env)
    assert res.returncode == 0, res.stderr[-3000:]
    ts = trials(tmp_path)
    assert len(ts) == 2  # the NaN trial is not retried
    by_nan = {t.params["debug.inject_nan_step"]: t for t in ts}
    assert by_nan[None].state == TrialState.COMPLETE
    bad = by_nan[3]
    assert bad.state == TrialState.FAIL
    reason = bad.user_attrs["fail_reason"]
    assert reason and ("finite" in reason.lower() or "nan" in reason.lower()), reason
    assert summary(bad)["status"] == "failed"
    assert "FAILED" in res.stdout


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="ABLATE_TEST_POSTGRES_URL is not set (.ci/start_postgres.sh)")
def test_two_drivers_share_a_postgres_study(tmp_path, env):
    """Two drivers started together on one PostgreSQL study run every grid point exactly once."""
    name = f"pg{os.getpid()}x{int(time.time())}"
    args = sweep_args(tmp_path, "sweep.space.network.width=[2,4,6,8]", "sweep.workers=1",
                      f"sweep.storage={POSTGRES_URL}", f"sweep.name={name}")
    procs = [subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=400)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outs)
    ts = trials(tmp_path, name, POSTGRES_URL)
    assert len(ts) == 4
    assert_grid_done_once(ts, values=(2, 4, 6, 8))
    drivers = {t.user_attrs["driver"] for t in ts}
    assert len(drivers) == 2, "both drivers should have taken work"
    assert sum("created study" in o for o in outs) == 1 and sum("joined study" in o for o in outs) == 1
    optuna.delete_study(study_name=name, storage=engine_url(POSTGRES_URL))


BAD = {  # case: (sweep file, overrides, the key the error line must name)
    "unknown key": ("width", ["+sweep.space.network.colour=[1,2]"], "sweep.space.network.colour"),
    "empty space": ("width", ["~sweep.space.network"], "sweep.space"),
    "empty list": ("width", ["sweep.space.network.width=[]"], "sweep.space.network.width"),
    "ill-typed range": ("tune", ["sweep.space.optim.lr.low=abc"], "sweep.space.optim.lr.low"),
    "reversed range": ("tune", ["sweep.space.optim.lr.low=0.5", "sweep.space.optim.lr.high=0.1"], "sweep.space.optim.lr"),
    "unknown sampler": ("width", ["sweep.sampler=bayes"], "sweep.sampler"),
    "unreachable storage": ("width", ["sweep.storage=postgresql://nobody@127.0.0.1:1/x"], "sweep.storage"),
}


def test_bad_sweeps_exit_2_with_one_line_and_write_nothing(tmp_path, env):
    """Each bad sweep gives exit code 2, one line naming the key, and no storage or study."""
    procs = {}
    try:
        for case, (sweep, extra, _) in BAD.items():
            out = tmp_path / case.replace(" ", "_")
            procs[case] = (out, subprocess.Popen(sweep_args(out, *extra, sweep=sweep), cwd=ROOT, env=env, text=True,
                                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        for case, (out, proc) in procs.items():
            stdout, stderr = proc.communicate(timeout=120)
            lines = [ln for ln in stderr.splitlines() if ln.strip()]
            assert proc.returncode == 2, (case, stdout[-1000:], stderr[-2000:])
            assert len(lines) == 1 and BAD[case][2] in lines[0], (case, stderr)
            assert not out.exists() or not any(out.iterdir()), (case, list(out.rglob("*")))
    finally:
        for _, proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.slow
def test_system_is_a_grid_axis(tmp_path, env):
    """A tiny version of the optimizer sweep: each trial runs the system its grid point names, and
    ``python -m analysis`` draws the optimizer figure and checks its two claims."""
    res = run_cli(sweep_args(tmp_path, "sweep.space={optim:[kfac,adam],system:[H2,He]}", "sweep.seeds=1",
                             "mcmc.method=hmc", sweep="optimizer"), env)
    assert res.returncode == 0, res.stderr[-3000:]
    complete = [t for t in trials(tmp_path, "optimizer") if t.state == TrialState.COMPLETE]
    assert sorted((t.params["optim"], t.params["system"]) for t in complete) == [
        ("adam", "H2"), ("adam", "He"), ("kfac", "H2"), ("kfac", "He")]
    for t in complete:
        s = summary(t)
        assert s["system"] == t.params["system"] == t.user_attrs["system"]
        assert s["config"]["optim.name"] == t.params["optim"] and s["config"]["mcmc.method"] == "hmc"
        assert s["energy_spikes"] >= 0 and sum(s["electrons"]) == 2

    report = run_cli([sys.executable, "-m", "analysis", "optimizer", "--output-root", str(tmp_path)], env)
    assert report.returncode == 0, report.stderr[-3000:]
    figure = tmp_path / "optimizer" / "figures" / "optimizer.png"
    assert figure.stat().st_size > 1000
    lines = report.stdout.splitlines()
    for statement in ("KFAC's error is at least 10x lower than Adam's",
                      "the Adam/KFAC error ratio grows with the number of electrons"):
        assert any(f"] {statement}: " in line for line in lines), report.stdout[-3000:]
