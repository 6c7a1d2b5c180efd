"""Fast unit tests of the sweep driver's pieces (no trials run, no subprocesses)."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from ablate.cli import sweep_docs
from ablate.cli.help import help_page
from ablate.config.experiment import key_table
from ablate.records.errors import ConfigError
from sweeps import overrides as ov
from sweeps import ownership
from sweeps import storage as st
from sweeps.plan import build_plan
from sweeps.space import SweepFile, parse_spec
from sweeps.status import format_params, format_table
from sweeps.workers import cpu_slots, plan_slots

CONF = Path(__file__).resolve().parents[1] / "conf"
BUILTIN = sorted(p.stem for p in (CONF / "sweep").glob("*.yaml"))

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- the sweep file -------------------------------------------------------------------


def test_parse_grid_with_seeds_and_nested_space():
    spec = parse_spec({"name": "w", "space": {"network": {"width": [8, 16]}}, "seeds": 2})
    assert spec.keys == ["network.width", "seed"]
    assert spec.grid_points() == [
        {"network.width": 8, "seed": 0}, {"network.width": 8, "seed": 1},
        {"network.width": 16, "seed": 0}, {"network.width": 16, "seed": 1}]
    assert spec.n_planned() == 4


def test_parse_flat_group_key_next_to_its_subkey():
    spec = parse_spec({"name": "d", "space": {"network": ["ferminet", "slater_jastrow"],
                                              "network.determinants": [1, 4]}})
    assert spec.keys == ["network", "network.determinants"]
    assert len(spec.grid_points()) == 4


def test_parse_tpe_ranges():
    spec = parse_spec({"name": "t", "sampler": "tpe", "n_trials": 5, "space": {
        "optim.lr": {"low": 1e-3, "high": 0.1, "log": True},
        "mcmc.steps": {"low": 1, "high": 10, "type": "int"},
        "optim": {"name": ["kfac", "adam"]}}})
    kinds = {d.key: d.kind for d in spec.dimensions}
    assert kinds == {"optim.lr": "float", "mcmc.steps": "int", "optim.name": "choice"}
    study = optuna.create_study()
    trial = study.ask()
    values = {d.key: d.suggest(trial) for d in spec.dimensions}
    assert 1e-3 <= values["optim.lr"] <= 0.1 and values["optim.name"] in ("kfac", "adam")


@pytest.mark.parametrize("node, key", [
    ({"name": "x", "space": {}}, "sweep.space"),
    ({"name": "x", "space": {"network.width": []}}, "sweep.space.network.width"),
    ({"name": "x", "space": {"network.width": 8}}, "sweep.space.network.width"),
    ({"name": "x", "space": {"network.width": [8, 8]}}, "sweep.space.network.width"),
    ({"name": "x", "space": {"a": [[1, 2]]}}, "sweep.space.a"),
    ({"name": "x", "sampler": "bayes", "space": {"a": [1]}}, "sweep.sampler"),
    ({"name": "x", "pruner": "sometimes", "space": {"a": [1]}}, "sweep.pruner"),
    ({"name": "x", "objective": "loss", "space": {"a": [1]}}, "sweep.objective"),
    ({"name": "x", "space": {"a": {"low": 0.1, "high": 1}}}, "sweep.space.a"),  # range in a grid
    ({"name": "x", "sampler": "tpe", "n_trials": 3, "space": {"a": {"low": 1, "high": 1}}}, "sweep.space.a"),
    ({"name": "x", "sampler": "tpe", "n_trials": 3, "space": {"a": {"low": "abc", "high": 1}}}, "sweep.space.a.low"),
    ({"name": "x", "sampler": "tpe", "n_trials": 3, "space": {"a": {"low": 0, "high": 1, "log": True}}},
     "sweep.space.a.low"),
    ({"name": "x", "sampler": "tpe", "n_trials": 3, "space": {"a": {"low": 0.5, "high": 2, "type": "int"}}},
     "sweep.space.a.low"),
    ({"name": "x", "sampler": "tpe", "space": {"a": [1]}}, "sweep.n_trials"),
    ({"name": "x", "space": {"a": [1]}, "workers": 0}, "sweep.workers"),
    ({"name": "x", "space": {"a": [1]}, "base": "system=LiH"}, "sweep.base"),
    ({"name": "x", "space": {"a": [1]}, "colour": "red"}, "sweep.colour"),
    ({"name": "a b", "space": {"a": [1]}}, "sweep.name"),
])
def test_bad_sweep_files_name_the_key(node, key):
    with pytest.raises(ConfigError) as err:
        parse_spec(node)
    assert err.value.key == key
    assert "\n" not in str(err.value)


def test_builtin_sweeps_resolve():
    """Every conf/sweep file parses, its keys exist and each value composes and validates."""
    from ablate.config.compose import compose

    assert {"width", "depth", "width_depth", "pairwise", "determinants", "sampler", "tune",
            "optimizer", "features", "sampler_moves", "batch"} <= set(BUILTIN)
    for name in BUILTIN:
        cfg = compose([f"+sweep={name}"])
        plan = build_plan(cfg, [f"+sweep={name}", "sweep.gpus=[]"])
        assert plan.study_name == name and plan.spec.n_planned() >= 4
        assert plan.storage_url.endswith("/studies.db")


def test_the_seed_axis_is_checked_once_and_a_swept_seed_like_any_key(monkeypatch):
    """A 2-seed grid composes each point once, plus one point at the last seed; a bad grid
    value is still refused, and a seed the space sweeps itself is composed at every value."""
    from ablate.config.compose import compose
    from sweeps import plan as plan_mod

    probed = []
    real = plan_mod.trial_config

    def counting(overrides, params, **kw):
        probed.append(dict(params))
        return real(overrides, params, **kw)

    monkeypatch.setattr(plan_mod, "trial_config", counting)
    args = ["+sweep=optimizer", "sweep.gpus=[]"]
    plan = build_plan(compose(args), args)
    points = plan.spec.grid_points()
    assert len(points) == 16 and len(probed) == 9
    assert {(p["optim"], p["system"]) for p in probed} == {(p["optim"], p["system"]) for p in points}
    assert [p.get("seed") for p in probed].count(1) == 1 and sum("seed" in p for p in probed) == 1

    args = ["+sweep=width", "sweep.space.network.width=[8,-3]", "sweep.gpus=[]"]
    with pytest.raises(ConfigError, match=r"network.width"):
        build_plan(compose(args), args)
    probed.clear()
    args = ["+sweep=width", "sweep.seeds=1", "sweep.max_seeds=null", "sweep.space.network.width=[8]",
            "+sweep.space.seed=[0,1,2]", "sweep.gpus=[]"]
    build_plan(compose(args), args)
    assert sorted(p["seed"] for p in probed) == [0, 1, 2]


@pytest.mark.parametrize("name, point, expect", [
    ("optimizer", {"optim": "adam", "system": "C", "seed": 1},
     {"optim.name": "adam", "system.name": "C", "seed": 1, "optim.iterations": 1000}),
    ("features", {"network.distance_features": False, "system": "LiH", "seed": 0},
     {"network.distance_features": False, "system.name": "LiH"}),
    ("sampler_moves", {"mcmc.moves": "one", "mcmc.method": "hmc", "system": "Be", "seed": 1},
     {"mcmc.moves": "one", "mcmc.method": "hmc", "system.name": "Be", "mcmc.hmc_path_length": 5, "seed": 1}),
    ("batch", {"batch_size": 1024, "seed": 0}, {"batch_size": 1024, "system.name": "LiH"}),
])
def test_group_axes_swap_the_system_and_optimiser(name, point, expect):
    """A grid point naming a config group (system=C, optim=adam) composes that group."""
    from ablate.config.compose import compose
    from sweeps.plan import trial_config

    plan = build_plan(compose([f"+sweep={name}"]), [f"+sweep={name}", "sweep.gpus=[]"])
    assert point in plan.spec.grid_points()
    experiment = trial_config(list(plan.trial_overrides), point)
    for key, value in expect.items():
        assert experiment.config[key] == value, key


def test_unknown_space_key_is_a_config_error():
    from ablate.config.compose import compose

    overrides = ["+sweep=width", "+sweep.space.network.colour=[1,2]", "sweep.gpus=[]"]
    with pytest.raises(ConfigError, match="network.colour"):
        build_plan(compose(overrides), overrides)


# --- overrides ------------------------------------------------------------------------


def test_user_overrides_drop_the_sweeps_own_and_win_over_base():
    task = ["+sweep=width", "sweep.workers=2", "system=N2", "hydra.verbose=true", "seed=3"]
    assert ov.sweep_choice(task) == "width"
    user = ov.user_overrides(task)
    assert user == ["system=N2", "seed=3"]
    assert ov.merge(["system=LiH", "scale=quick"], user, ["seed=0"]) == ["scale=quick", "system=N2", "seed=0"]


@pytest.mark.parametrize("value, text", [
    (None, "null"), (True, "true"), (3, "3"), (1e-05, "1e-05"), ("ferminet", "ferminet"),
    ("1.5", "'1.5'"), ("null", "'null'"), ("a b", "'a b'"), ([1, None], "[1,null]")])
def test_format_value_round_trips_through_hydra(value, text):
    assert ov.format_value(value) == text


def test_trial_relevant_ignores_output_and_logging():
    assert ov.trial_relevant(["output_root=/x", "logger=none", "logger.mode=online", "system=He"]) == ["system=He"]


# --- slots ----------------------------------------------------------------------------


def test_plan_slots_packs_and_groups_gpus():
    spec = SimpleNamespace(gpus=None, workers=1, gpus_per_trial=1, trials_per_gpu=2)
    slots = plan_slots(spec, gpus=["0", "1"])
    assert [s.name for s in slots] == ["gpu0/0", "gpu0/1", "gpu1/0", "gpu1/1"]
    assert slots[0].env["CUDA_VISIBLE_DEVICES"] == "0"
    assert slots[0].env["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.450"
    big = plan_slots(SimpleNamespace(gpus=("0", "1", "2", "3"), workers=1, gpus_per_trial=2, trials_per_gpu=1))
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in big] == ["0,1", "2,3"] and big[0].device_count == 2
    with pytest.raises(ConfigError):
        plan_slots(SimpleNamespace(gpus=("0",), workers=1, gpus_per_trial=2, trials_per_gpu=1))


def test_cpu_slots_share_the_cores():
    slots = cpu_slots(2)
    assert [s.name for s in slots] == ["cpu0", "cpu1"]
    assert slots[0].env["CUDA_VISIBLE_DEVICES"] == "" and slots[0].device_count == 1
    assert "intra_op_parallelism_threads" in slots[0].env["XLA_FLAGS"]


# --- storage: claiming, staleness, recovery ---------------------------------------------


@pytest.fixture
def sqlite_storage(tmp_path):
    return st.open_storage(f"sqlite:///{tmp_path / 'studies.db'}")


def _open(storage, grid, attrs=None):
    return st.open_study(storage, "s", direction="minimize", sampler=optuna.samplers.RandomSampler(),
                         pruner=None, attrs=attrs or {"trial_overrides": ["system=H2"], "objective": "energy"},
                         grid=grid, log=lambda m: None)


def test_creator_enqueues_grid_and_joiner_does_not_duplicate(sqlite_storage):
    grid = [{"network.width": w} for w in (4, 8, 16)]
    study, created = _open(sqlite_storage, grid)
    again, created2 = _open(sqlite_storage, grid)
    assert created and not created2
    assert study.user_attrs[st.GRID_READY] is True
    assert len(again.get_trials(states=(TrialState.WAITING,))) == 3
    # a grown grid enqueues only the new point
    _open(sqlite_storage, grid + [{"network.width": 32}])
    assert len(study.get_trials()) == 4


def test_joiner_with_other_overrides_is_refused(sqlite_storage):
    _open(sqlite_storage, [{"a": 1}])
    with pytest.raises(ConfigError, match="sweep.name"):
        _open(sqlite_storage, [{"a": 1}], attrs={"trial_overrides": ["system=N2"], "objective": "energy"})


def test_claim_each_waiting_trial_once(sqlite_storage):
    study, _ = _open(sqlite_storage, [{"a": 1}, {"a": 2}])
    first = st.claim_waiting(study, sqlite_storage)
    second = st.claim_waiting(study, sqlite_storage)
    assert {first.number, second.number} == {0, 1}
    assert st.claim_waiting(study, sqlite_storage) is None


def test_stale_reason_dead_pid_and_old_heartbeat():
    me = ownership.Owner("here", os.getpid(), ownership.process_ticks(os.getpid()))
    started = datetime.now()

    def trial(**attrs):
        return SimpleNamespace(user_attrs=attrs, datetime_start=started)

    assert ownership.stale_reason(trial(driver=me.ident, driver_ticks=me.ticks, heartbeat=0), me, 60) is None
    dead = 2 ** 22 + 12345  # above the default pid_max: never a live pid
    assert ownership.stale_reason(trial(driver=f"here:{dead}", heartbeat=time.time()), me, 60) == \
        f"stale: driver here:{dead} died"
    assert ownership.stale_reason(trial(driver="elsewhere:1", heartbeat=time.time()), me, 60) is None
    assert "no heartbeat" in ownership.stale_reason(trial(driver="elsewhere:1", heartbeat=time.time() - 120), me, 60)
    # same pid number but another process (pid reused): the start time tells them apart
    assert ownership.stale_reason(trial(driver=f"here:{os.getpid()}", driver_ticks=-1, heartbeat=time.time()),
                           ownership.Owner("here", 1, None), 60).startswith("stale: driver")


def test_fail_trial_requeues_once_with_same_run_dir(sqlite_storage):
    study, _ = _open(sqlite_storage, [{"a": 1}])
    frozen = st.claim_waiting(study, sqlite_storage)
    trial = optuna.Trial(study, st.trial_id(study, sqlite_storage, frozen.number))
    trial.suggest_categorical("a", [1])
    trial.set_user_attr("run_dir", "/runs/s/t0000")
    trial.set_user_attr("run_id", "t0000")
    fresh = study.get_trials()[0]
    assert st.fail_trial(study, sqlite_storage, fresh, "stale: driver x:1 died", requeue=True)
    assert not st.fail_trial(study, sqlite_storage, fresh, "again", requeue=True)  # second recoverer loses
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[0].user_attrs["fail_reason"] == "stale: driver x:1 died"
    assert trials[1].user_attrs["run_dir"] == "/runs/s/t0000" and trials[1].user_attrs["recovered_from"] == 0
    assert "FAIL*" in format_table(study)


def test_sqlite_study_lock_is_exclusive(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    lock = st.lock_sqlite_study(url, "s")
    with pytest.raises(ConfigError, match="another driver"):
        st.lock_sqlite_study(url, "s")
    lock.release()
    st.lock_sqlite_study(url, "s").release()


def test_unreachable_storage_fails_fast():
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="cannot connect"):
        st.open_storage("postgresql://nobody@127.0.0.1:1/x")
    assert time.monotonic() - t0 < 15


def test_format_params_shortens_unambiguous_keys():
    assert format_params({"network.width": 8, "seed": 0}) == "width=8 seed=0"
    assert format_params({"network.width": 8, "other.width": 2}) == "network.width=8 other.width=2"


def test_retry_failed_requeues_only_points_that_never_succeeded(sqlite_storage):
    study, _ = _open(sqlite_storage, [{"a": 1}, {"a": 2}])
    for _ in range(2):
        frozen = st.claim_waiting(study, sqlite_storage)
        trial = optuna.Trial(study, st.trial_id(study, sqlite_storage, frozen.number))
        trial.suggest_categorical("a", [1, 2])
        study.tell(trial, state=TrialState.FAIL) if frozen.number == 0 else study.tell(trial, 1.0)
    assert st.requeue_failed_points(study, [{"a": 1}, {"a": 2}]) == 1
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [{"a": 1}]


@pytest.mark.parametrize("name, cls", [("none", "NopPruner"), ("median", "MedianPruner"),
                                       ("hyperband", "HyperbandPruner")])
def test_make_pruner(name, cls):
    from sweeps.driver import make_pruner

    spec = parse_spec({"name": "t", "sampler": "tpe", "n_trials": 4, "pruner": name,
                       "space": {"optim.lr": {"low": 0.01, "high": 0.1}}})
    assert type(make_pruner(spec, 1000)).__name__ == cls


def test_objective_value_falls_back_to_energy():
    from ablate.records.run_record import RunSummary

    def objective_value(summary, objective):
        return RunSummary.from_dict(summary).objective(objective)

    assert objective_value({"error_mha": 3.0, "energy": -1.0}, "error_mha") == 3.0
    assert objective_value({"error_mha": None, "energy": -1.0}, "error_mha") == -1.0
    assert objective_value({"error_mha": 3.0, "energy": -1.0}, "energy") == -1.0
    assert objective_value({"energy": float("nan")}, "energy") is None


def _open_storage_in_child(url: str) -> None:
    st.open_storage(url)


def test_drivers_opening_a_fresh_database_at_once(tmp_path):
    """Several processes creating Optuna's schema together all succeed (no 'already exists')."""
    import multiprocessing as mp

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_open_storage_in_child, args=(url,)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]


# --- growing grids, lost re-enqueues, storage retries (issue 14) -----------------------------

from sweeps import grid as gr  # noqa: E402
from sweeps.retry import Retry, StorageUnavailable, is_connection_error  # noqa: E402


def test_point_keys_fill_the_base_value_and_compare_numbers_by_value():
    d = {"seed": 0}
    assert gr.point_key({"w": 8}, d) == gr.point_key({"w": 8, "seed": 0}, d) == gr.point_key({"w": 8.0, "seed": 0}, d)
    assert gr.point_key({"w": 8}, d) != gr.point_key({"w": 8, "seed": 1}, d)
    assert gr.point_key({"a": True}) != gr.point_key({"a": 1}) and gr.point_key({"a": None}) != gr.point_key({"a": "None"})


def _frozen(number, state, params, **attrs):
    return SimpleNamespace(number=number, state=state, params={}, system_attrs={"fixed_params": params},
                           user_attrs=attrs)


def test_missing_work_grows_seeds_and_finds_lost_continuations():
    done = _frozen(0, TrialState.COMPLETE, {"w": 8})
    grid = [{"w": 8, "seed": 0}, {"w": 8, "seed": 1}]
    assert gr.missing_work([done], grid, {"seed": 0}) == [({"w": 8, "seed": 1}, {"point_key": gr.point_key(grid[1])})]
    lost = _frozen(1, TrialState.FAIL, {"w": 8, "seed": 1}, requeued=True, run_dir="/r/t0001", run_id="t0001")
    [(params, attrs)] = gr.missing_work([done, lost], grid, {"seed": 0})
    assert params == {"w": 8, "seed": 1} and attrs["recovered_from"] == 1 and attrs["run_dir"] == "/r/t0001"
    continued = _frozen(2, TrialState.WAITING, {"w": 8, "seed": 1}, recovered_from=1)
    assert gr.missing_work([done, lost, continued], grid, {"seed": 0}) == []
    own = _frozen(1, TrialState.FAIL, {"w": 8, "seed": 1}, fail_reason="NaN")
    assert gr.missing_work([done, own], grid, {"seed": 0}) == []          # its own failure: not retried
    dup = _frozen(3, TrialState.FAIL, {"w": 8, "seed": 1}, duplicate_of=9)
    assert len(gr.missing_work([done, dup], grid, {"seed": 0})) == 1       # a duplicate is no trial
    # TPE/random: only lost continuations
    assert gr.missing_work([lost], None)[0][1]["recovered_from"] == 1


def test_a_categorical_axis_grows_without_optuna_distribution_errors(sqlite_storage):
    """Suggesting CategoricalDistribution(['x','y']) after ['x'] used to fail every new point."""
    from ablate.records.study_record import trial_params

    def run_all(study, axes):
        while (frozen := st.claim_waiting(study, sqlite_storage)) is not None:
            tid = st.trial_id(study, sqlite_storage, frozen.number)
            gr.mirror_params(sqlite_storage, tid, trial_params(frozen), axes)
            study.tell(optuna.Trial(study, tid), 1.0)

    study, _ = _open(sqlite_storage, [{"a": "x", "w": 8}])
    run_all(study, {"a": ["x"], "w": [8]})
    _open(sqlite_storage, [{"a": "x", "w": 8}, {"a": "y", "w": 8}, {"a": "x", "w": 16}])
    run_all(study, {"a": ["x", "y"], "w": [8, 16]})
    ts = study.get_trials()
    assert [t.state for t in ts] == [TrialState.COMPLETE] * 3
    assert [trial_params(t) for t in ts] == [{"a": "x", "w": 8}, {"a": "y", "w": 8}, {"a": "x", "w": 16}]
    assert ts[0].params == {"a": "x", "w": 8} and ts[2].params["w"] == 16   # the mirror, where it fits


def test_grid_points_are_enqueued_once_per_effective_point(sqlite_storage, tmp_path):
    study, _ = _open(sqlite_storage, [{"w": 8}], attrs={"trial_overrides": [], "objective": "energy"})
    grid = [{"w": 8, "seed": 0}, {"w": 8, "seed": 1}]
    for _ in range(2):
        st.open_study(sqlite_storage, "s", direction="minimize", sampler=optuna.samplers.RandomSampler(),
                      pruner=None, attrs={"trial_overrides": [], "objective": "energy"}, grid=grid,
                      defaults={"seed": 0}, mutex=st.StudyMutex(f"sqlite:///{tmp_path / 'studies.db'}", "s"),
                      log=lambda m: None)
    assert len(study.get_trials()) == 2 and study.user_attrs["uuid"]


def test_retry_rides_out_connection_errors_and_gives_up_after_the_limit():
    import sqlalchemy.exc

    clock = [0.0]
    lines = []
    retry = Retry(30, lambda m, err=False: lines.append(m), sleep=lambda s: clock.__setitem__(0, clock[0] + s),
                  clock=lambda: clock[0])
    down = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise optuna.exceptions.StorageInternalError("invalid data in the commit") from down
        return "ok"

    assert retry.call(flaky) == "ok" and len(calls) == 4
    assert "storage unreachable (connection refused)" in lines[0] and lines[-1].startswith("storage is back after")
    assert retry.in_grace(60) and not retry.in_grace(0)
    with pytest.raises(ValueError):
        retry.call(lambda: (_ for _ in ()).throw(ValueError("not a connection error")))

    def dead():
        raise down

    with pytest.raises(StorageUnavailable, match="storage unreachable for 3\\d s"):
        retry.call(dead)
    assert is_connection_error(down) and not is_connection_error(ValueError())


def test_a_fresh_heartbeat_file_keeps_a_trial_alive(tmp_path):
    me = ownership.Owner("here", os.getpid(), ownership.process_ticks(os.getpid()))
    old = time.time() - 1000
    trial = SimpleNamespace(user_attrs={"driver": "elsewhere:1", "heartbeat": old, "run_dir": str(tmp_path)},
                            datetime_start=None)
    assert "no heartbeat" in ownership.stale_reason(trial, me, 60)
    assert ownership.stale_reason(trial, me, 60, by_age=False) is None           # just after an outage
    ownership.beat_file(tmp_path, "elsewhere:1")
    assert ownership.stale_reason(trial, me, 60) is None


def test_study_mutex_is_reentrant_and_exclusive(tmp_path):
    import threading

    url = f"sqlite:///{tmp_path / 'studies.db'}"
    a, b = st.StudyMutex(url, "s"), st.StudyMutex(url, "s")
    order = []
    with a():
        with a():   # nested: no deadlock
            t = threading.Thread(target=lambda: (b().__enter__(), order.append("b")))
            t.start()
            time.sleep(0.3)
            order.append("a")
    t.join(5)
    assert order == ["a", "b"]


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get("ABLATE_TEST_POSTGRES_URL"), reason="ABLATE_TEST_POSTGRES_URL is not set")
def test_postgres_study_mutex_is_exclusive():
    import threading

    url = os.environ["ABLATE_TEST_POSTGRES_URL"]
    a, b = st.StudyMutex(url, f"m{os.getpid()}"), st.StudyMutex(url, f"m{os.getpid()}")
    order = []

    def other():
        with b():
            order.append("b")

    with a():
        t = threading.Thread(target=other)
        t.start()
        time.sleep(0.5)
        order.append("a")
    t.join(10)
    assert order == ["a", "b"]


def test_sweeps_doc_and_help_list_every_sweep_file_key():
    """docs/sweeps.md's key table is generated from `SweepFile`, and --help lists the same keys."""
    assert sweep_docs.main(["--check"]) == 0
    text, page = sweep_docs.DOC.read_text(), " ".join(help_page().split())
    for key, _, _, allowed in key_table(SweepFile, "sweep."):
        assert f"`{key.removeprefix('sweep.')}`" in text, key
        assert f" {key} " in page and " ".join(allowed.split()) in page, key


def test_free_workers_take_their_shape_then_idle_shapes_then_the_biggest_points_first():
    """The width study on two workers: the widest points start first (they take longest),
    a worker keeps its shape's second seed, and no two workers start one shape at once."""
    from sweeps.driver import claim_rank, shape_of

    points = [{"network.width": w, "seed": s} for w in (8, 16, 32, 64) for s in (0, 1)]
    waiting = list(range(len(points)))

    def take(last, running):
        best = sorted(waiting, key=lambda i: claim_rank(points[i], last, running))[0]
        waiting.remove(best)
        return points[best]

    a = take(None, set())
    b = take(None, {shape_of(a)})
    assert (a["network.width"], b["network.width"]) == (64, 32)
    assert take(shape_of(b), {shape_of(a)}) == {"network.width": 32, "seed": 1}   # b's engine
    assert take(shape_of(a), set()) == {"network.width": 64, "seed": 1}           # a's engine
    assert take(shape_of(a), set())["network.width"] == 16
    # a point that sets no size key sorts by trial order among its group
    assert claim_rank({"optim.lr": 0.1}, None, set()) == (1, -1.0)
