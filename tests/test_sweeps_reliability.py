"""Sweeps that must not lose, repeat or adopt work (issue 14), through the real CLI and engine:
growing a finished grid (more seeds, a new categorical value) with one driver and with two
drivers starting together on PostgreSQL, a study that reuses an old study's name under the same
output root, a driver killed between a trial's FAIL and its re-enqueue (fault injection),
PostgreSQL stopped and restarted under a running driver, and invalid or odd sweep files."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import optuna
import pytest
import sqlalchemy
import sqlalchemy.exc
from optuna.trial import TrialState

from ablate.config.compose import compose
from ablate.config.experiment import validate
from sweeps import ownership
from sweeps import storage as st
from sweeps.plan import build_plan
from sweeps.storage import engine_url

from test_sweeps import POSTGRES_URL, ROOT, run_cli, sweep_args, trials

optuna.logging.set_verbosity(optuna.logging.WARNING)

PG_BIN = os.environ.get("ABLATE_TEST_PG_BIN")     # scripts/test.sh exports these when the server
PG_DATA = os.environ.get("ABLATE_TEST_PG_DATA")   # is its own cluster (it may be stopped here)
needs_pg = pytest.mark.skipif(not POSTGRES_URL, reason="ABLATE_TEST_POSTGRES_URL is not set (.ci/start_postgres.sh)")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = dict(os.environ)
    if not e.get("JAX_COMPILATION_CACHE_DIR"):
        e["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax_cache"))
    e["TF_CPP_MIN_LOG_LEVEL"] = "3"
    e["PYTHONUNBUFFERED"] = "1"
    e.pop("ABLATE_FAULT", None)
    return e


def points(ts, keys=("network.width", "network.activation", "seed")):
    """(point, state) of every trial, seed 0 when the point does not name it."""
    out = []
    for t in ts:
        p = {**t.params, **t.system_attrs.get("fixed_params", {})}
        out.append((tuple(p.get(k, 0 if k == "seed" else None) for k in keys), t.state))
    return out


def assert_each_point_complete_once(ts, expected):
    complete = sorted(p for p, s in points(ts) if s == TrialState.COMPLETE)
    assert complete == sorted(expected), points(ts)
    assert not [t for t in ts if t.state in (TrialState.RUNNING, TrialState.WAITING)], points(ts)


GROW_1 = ["sweep.space.network.width=[4]", "+sweep.space.network.activation=[tanh]"]
GROW_2 = ["sweep.space.network.width=[4]", "+sweep.space.network.activation=[tanh,silu]", "sweep.seeds=2"]
GROWN = [(4, "tanh", 0), (4, "tanh", 1), (4, "silu", 0), (4, "silu", 1)]


@pytest.mark.slow
def test_growing_a_finished_grid_runs_only_the_new_points(tmp_path, env):
    """More seeds and a new categorical value: used to rerun seed 0 ("6/4 complete") and to fail
    every new value ("CategoricalDistribution does not support dynamic value space")."""
    first = run_cli(sweep_args(tmp_path, *GROW_1), env)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    res = run_cli(sweep_args(tmp_path, *GROW_2, "sweep.workers=2"), env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "enqueued 3 new grid point(s)" in res.stdout
    ts = trials(tmp_path)
    assert len(ts) == 4 and all(t.state == TrialState.COMPLETE for t in ts), points(ts)
    assert_each_point_complete_once(ts, GROWN)
    assert "4/4 complete" in res.stdout

    from analysis.loaders import load_study
    frame = load_study("width", output_root=tmp_path)
    counts = frame.groupby(["network.activation", "seed"]).size()
    assert sorted(counts.index) == [("silu", 0), ("silu", 1), ("tanh", 0), ("tanh", 1)]
    assert (counts == 1).all(), counts   # seed 0 of tanh is not counted twice


@pytest.mark.slow
@pytest.mark.postgres
@needs_pg
def test_two_drivers_grow_a_postgres_grid_together(tmp_path, env):
    name = f"grow{os.getpid()}x{int(time.time())}"
    base = [f"sweep.storage={POSTGRES_URL}", f"sweep.name={name}"]
    first = run_cli(sweep_args(tmp_path, *GROW_1, *base), env)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    args = sweep_args(tmp_path, *GROW_2, *base)
    procs = [subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    try:
        assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2500:] for o in outs)
        ts = trials(tmp_path, name, POSTGRES_URL)
        assert len(ts) == 4, points(ts)   # exactly the three new points were enqueued, once
        assert_each_point_complete_once(ts, GROWN)
        assert sum("enqueued 3 new grid point(s)" in o for o in outs) == 1, outs
        assert not [t for t in ts if t.user_attrs.get("duplicate_of") is not None]
    finally:
        optuna.delete_study(study_name=name, storage=engine_url(POSTGRES_URL))


@pytest.mark.slow
def test_a_new_study_never_adopts_an_old_studys_trial_directories(tmp_path, env):
    """A new storage (or a deleted studies.db) with the same study name and output root used to
    record the old trial directories' energies as its own COMPLETE trials."""
    old = run_cli(sweep_args(tmp_path, "sweep.space.network.width=[4]"), env)
    assert old.returncode == 0, old.stderr[-2000:]
    old_dir = tmp_path / "width" / "t0000"
    old_summary = (old_dir / "summary.json").read_text()
    marker = json.loads((tmp_path / "width" / "study.json").read_text())
    (tmp_path / "studies.db").rename(tmp_path / "old-studies.db")

    new = run_cli(sweep_args(tmp_path, "sweep.space.network.width=[4]"), env)
    assert new.returncode == 0, new.stderr[-2000:]
    assert "holds another study's trials" in new.stdout
    [t] = trials(tmp_path)
    run_dir, uuid = Path(t.user_attrs["run_dir"]), _uuid(tmp_path)
    assert run_dir.parent == tmp_path / f"width-{uuid[:8]}" and uuid != marker["uuid"]
    assert (old_dir / "summary.json").read_text() == old_summary
    assert json.loads((run_dir / "summary.json").read_text())["study_uuid"] == uuid

    # the engine refuses a run directory of another study, whatever the driver does
    from ablate.records.errors import ConfigError
    from ablate.vmc.run import run_experiment
    cfg = compose(["system=H2", f"output_root={tmp_path}", f"run_dir={old_dir}"])
    cfg.trial.study, cfg.trial.study_uuid = "width", "someone-else"
    with pytest.raises(ConfigError, match="belongs to study 'width'"):
        run_experiment(validate(cfg))


def _uuid(root: Path) -> str:
    study = optuna.load_study(study_name="width", storage=f"sqlite:///{root / 'studies.db'}")
    return study.user_attrs["uuid"]


def _stale_study(out: Path, extra: list[str]):
    """Create the study as the driver would and leave trial 0 RUNNING for a driver that died."""
    seeds = [] if any(e.startswith("sweep.seeds=") for e in extra) else ["sweep.seeds=1"]
    overrides = ["+sweep=width", f"output_root={out}", *seeds, *extra]
    cfg = compose(overrides)
    plan = build_plan(cfg, overrides)
    storage = st.open_storage(plan.storage_url)
    study, _ = st.open_study(storage, plan.study_name, direction="minimize",
                             sampler=optuna.samplers.RandomSampler(), pruner=None, attrs=plan.study_attrs(),
                             grid=plan.spec.grid_points(), defaults=plan.defaults, log=lambda m: None)
    frozen = st.claim_waiting(study, storage)
    tid = st.trial_id(study, storage, frozen.number)
    storage.set_trial_user_attr(tid, "driver", f"{ownership.Owner.me().host}:{2 ** 22 + 4321}")   # never a live pid
    storage.set_trial_user_attr(tid, "run_id", "t0000")
    storage.set_trial_user_attr(tid, "run_dir", str(out / "width" / "t0000"))
    return study


@pytest.mark.slow
def test_a_driver_killed_between_fail_and_enqueue_loses_no_point(tmp_path, env):
    """Fault injection: the driver kills itself (SIGKILL) right after marking a stale trial FAIL
    (requeued) and before enqueuing it again. Before the reconciliation pass nothing ever
    enqueued that point again."""
    from test_sweeps import TINY
    extra = [*TINY, "sweep.space.network.width=[4,6]"]
    _stale_study(tmp_path, extra)
    killed = run_cli(sweep_args(tmp_path, "sweep.space.network.width=[4,6]"), {**env, "ABLATE_FAULT": "kill-after-fail"})
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-2000:]
    ts = trials(tmp_path)
    assert ts[0].state == TrialState.FAIL and ts[0].user_attrs["requeued"]
    assert not [t for t in ts if t.user_attrs.get("recovered_from") == 0]   # the enqueue never happened
    assert [t.state for t in ts[1:]] == [TrialState.WAITING]

    res = run_cli(sweep_args(tmp_path, "sweep.space.network.width=[4,6]"), env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "t0000 was failed to be enqueued again but never was; enqueued now" in res.stdout
    ts = trials(tmp_path)
    complete = [t for t in ts if t.state == TrialState.COMPLETE]
    assert sorted(t.params["network.width"] for t in complete) == [4, 6] and len(ts) == 3
    [cont] = [t for t in ts if t.user_attrs.get("recovered_from") == 0]
    assert cont.state == TrialState.COMPLETE and cont.user_attrs["run_dir"] == str(tmp_path / "width" / "t0000")


def _pg_ctl(*args: str) -> subprocess.CompletedProcess:
    cmd = [str(Path(PG_BIN) / "pg_ctl"), "-D", PG_DATA, *args]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _pg_start() -> None:
    """Start the server and wait until it accepts a real connection (not only pg_ctl's word)."""
    port = urlparse(POSTGRES_URL).port or 5432
    res = _pg_ctl("-w", "-t", "60", "-l", f"{PG_DATA}/server.log", "-o",
                  f"-h 127.0.0.1 -p {port} -k /tmp -c max_connections=200", "start")
    assert res.returncode == 0, res.stdout + res.stderr
    engine = sqlalchemy.create_engine(engine_url(POSTGRES_URL), poolclass=sqlalchemy.pool.NullPool)
    deadline = time.monotonic() + 60
    while True:
        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("SELECT 1"))
            return
        except sqlalchemy.exc.OperationalError:
            assert time.monotonic() < deadline, "the server does not accept connections 60 s after it started"
            time.sleep(0.2)


def _own_pg_server() -> bool:
    """True when ABLATE_TEST_PG_DATA is the running cluster behind ABLATE_TEST_POSTGRES_URL."""
    if not (POSTGRES_URL and PG_BIN and PG_DATA):
        return False
    try:
        lines = (Path(PG_DATA) / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) > 3 and lines[3].strip() == str(urlparse(POSTGRES_URL).port or 5432)


class Lines:
    """A stream of a process read line by line on a thread, so the test can wait for a line with
    a deadline and still collect everything."""

    def __init__(self, stream):
        self.seen: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout_s: float) -> bool:
        """True once a line holding ``text`` arrived; False at the end of the stream or the deadline."""
        deadline = time.monotonic() + timeout_s
        while not any(text in ln for ln in self.seen):
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return False
            if line is None:
                self._queue.put(None)
                return False
            self.seen.append(line)
        return True

    def text(self, timeout_s: float) -> str:
        """Everything, once the stream ends (or the deadline passes)."""
        self.wait_for("\0never\0", timeout_s)
        return "".join(self.seen)


def _outage_under(proc, out: Lines, name: str) -> float:
    """Once a trial of ``proc`` (a driver in its own session) has started, freeze the driver and
    its workers, stop the server, and let them go on; returns the monotonic time of the stop.

    The freeze (SIGSTOP to the process group) makes the phase independent of how fast the trial
    is: while frozen no result can be told, so the driver meets the outage with a RUNNING trial
    (it used to finish and exit before the test saw the trial RUNNING on a fast machine)."""
    assert out.wait_for(" started ", 240), "no trial started:\n" + "".join(out.seen)[-3000:]
    os.killpg(proc.pid, signal.SIGSTOP)
    try:
        assert [t.state for t in _pg_trials(name)].count(TrialState.RUNNING) >= 1, points(_pg_trials(name))
        assert _pg_ctl("-w", "-m", "fast", "stop").returncode == 0
        return time.monotonic()
    finally:
        os.killpg(proc.pid, signal.SIGCONT)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(not _own_pg_server(), reason="needs ABLATE_TEST_PG_BIN/ABLATE_TEST_PG_DATA of the server "
                                                 "behind ABLATE_TEST_POSTGRES_URL (scripts/test.sh)")
def test_postgres_stopped_and_restarted_under_a_running_driver(tmp_path, env):
    """An outage used to make every driver exit 1 within 5 s ("invalid data in the commit"): a 10 s one
    (twice that) is ridden out."""
    name = f"outage{os.getpid()}x{int(time.time())}"
    args = sweep_args(tmp_path, "sweep.space.network.width=[4,6]", "optim.iterations=150",
                      f"sweep.storage={POSTGRES_URL}", f"sweep.name={name}", "sweep.storage_retry_s=120",
                      "sweep.progress_every_s=2")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines = Lines(proc.stdout)
    try:
        stopped = _outage_under(proc, lines, name)
        time.sleep(10)
        assert proc.poll() is None, "the driver died during the outage:\n" + lines.text(10)[-3000:]
        _pg_start()
        outage = time.monotonic() - stopped
        proc.wait(timeout=400)
        out = lines.text(30)
        assert proc.returncode == 0, out[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if not _own_pg_server():
            _pg_start()
    assert "storage unreachable" in out and "storage is back after" in out, out[-3000:]
    ts = trials(tmp_path, name, POSTGRES_URL)
    assert len(ts) == 2 and all(t.state == TrialState.COMPLETE for t in ts), points(ts)
    print(f"outage {outage:.1f} s; driver exit 0; " + " | ".join(ln for ln in out.splitlines() if "storage" in ln))
    optuna.delete_study(study_name=name, storage=engine_url(POSTGRES_URL))

    # a longer outage than sweep.storage_retry_s: one line, exit 1, and the rerun resumes
    name2 = name + "b"
    args = sweep_args(tmp_path, "sweep.space.network.width=[4]", "optim.iterations=150", "checkpoint_every=20",
                      f"sweep.storage={POSTGRES_URL}", f"sweep.name={name2}", "sweep.storage_retry_s=4")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    lines, errors = Lines(proc.stdout), Lines(proc.stderr)
    try:
        t0 = _outage_under(proc, lines, name2)
        proc.wait(timeout=120)
        gave_up = time.monotonic() - t0
        stdout, stderr = lines.text(30), errors.text(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _pg_start()
    assert proc.returncode == 1, stdout[-2000:] + stderr[-2000:]
    stops = [ln for ln in stderr.splitlines() if "stopped:" in ln]
    assert len(stops) == 1 and "storage unreachable for" in stops[0] and "rerun the same command" in stops[0], stderr
    print(f"gave up {gave_up:.1f} s after the server stopped (storage_retry_s=4)")
    res = run_cli(args, env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ts = trials(tmp_path, name2, POSTGRES_URL)
    assert [t.state for t in ts] == [TrialState.FAIL, TrialState.COMPLETE]
    assert ts[0].user_attrs["fail_reason"].startswith("stale: driver") and ts[1].user_attrs["recovered_from"] == 0
    optuna.delete_study(study_name=name2, storage=engine_url(POSTGRES_URL))


def _pg_trials(name):
    try:
        return optuna.load_study(study_name=name, storage=engine_url(POSTGRES_URL)).get_trials()
    except Exception:  # noqa: BLE001 - not created yet
        return []


def test_invalid_sweep_yaml_is_one_line_naming_file_and_line(tmp_path, env):
    """An invalid sweep file used to print an 89-line traceback and exit 1."""
    text = (ROOT / "conf" / "sweep" / "width.yaml").read_text().replace("sampler: grid", "sampler: [grid", 1)
    (tmp_path / "conf" / "sweep").mkdir(parents=True)
    bad = tmp_path / "conf" / "sweep" / "mine.yaml"
    bad.write_text(text)
    line = text.splitlines().index(next(ln for ln in text.splitlines() if ln.startswith("sampler:"))) + 1
    for args in (["--config-dir", str(tmp_path / "conf"), "+sweep=mine"], ["+sweep=mine", "--config-dir",
                                                                            str(tmp_path / "conf")]):
        res = run_cli([sys.executable, "-m", "ablate", *args, f"output_root={tmp_path / 'out'}"], env, timeout=120)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.returncode == 2 and len(lines) == 1, res.stderr
        assert str(bad) in lines[0] and "invalid YAML" in lines[0] and f"line {line})" in lines[0], lines
        assert not (tmp_path / "out").exists()


def test_a_sweep_file_named_nan_is_read_by_its_name(tmp_path, env):
    """`+sweep=nan` used to reach Hydra as the float NaN ("Config group override must be a string")."""
    (tmp_path / "conf" / "sweep").mkdir(parents=True)
    (tmp_path / "conf" / "sweep" / "nan.yaml").write_text(
        (ROOT / "conf" / "sweep" / "width.yaml").read_text().replace("name: width", "name: null", 1))
    res = run_cli([sys.executable, "-m", "ablate", "--config-dir", str(tmp_path / "conf"), "+sweep=nan",
                   "--cfg", "job"], env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "sampler: grid" in res.stdout
    from sweeps.space import parse_spec
    from ablate.records.errors import ConfigError
    assert parse_spec({"space": {"a": [1]}}, default_name="nan").name == "nan"
    with pytest.raises(ConfigError, match="quote it"):
        parse_spec({"name": float("nan"), "space": {"a": [1]}})
