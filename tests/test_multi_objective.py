"""Multi-objective sweeps (issue 10): error and device-seconds minimised together.

Fast unit tests of the sweep file, the storage and the telling of results, on real Optuna
SQLite storages; the end-to-end cost-aware study is in tests/test_report_html.py.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ablate.records.errors import ConfigError
from ablate.records.run_record import RunSummary
from ablate.records.study_record import TrialRow
from sweeps import ownership
from sweeps import storage as st
from sweeps.plan import StudyPlan
from sweeps.space import parse_spec
from sweeps.status import format_table, study_line
from sweeps.trials import Running, TrialBook

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {"network.width": [8, 16, 32], "optim.lr": {"low": 0.01, "high": 0.1, "log": True}}


def test_a_list_of_objectives_with_directions_is_a_multi_objective_spec():
    spec = parse_spec({"name": "c", "sampler": "nsga2", "n_trials": 8, "space": SPACE,
                       "objective": ["error_mha", "device_seconds"], "directions": ["minimize", "minimize"]})
    assert spec.multi_objective
    assert spec.all_objectives == ("error_mha", "device_seconds") and spec.all_directions == ("minimize", "minimize")
    single = parse_spec({"name": "w", "space": {"network.width": [8]}})
    assert not single.multi_objective and single.all_objectives == ("error_mha",) and single.objectives == ()
    same = parse_spec({"name": "c", "sampler": "tpe", "n_trials": 8, "space": SPACE,
                       "objective": ["error_mha", "training_flops"], "direction": "minimize"})
    assert same.all_directions == ("minimize", "minimize")


@pytest.mark.parametrize("node, key", [
    ({"objective": ["error_mha", "device_seconds"], "pruner": "median"}, "sweep.pruner"),
    ({"objective": ["error_mha", "device_seconds"], "directions": ["minimize"]}, "sweep.directions"),
    ({"objective": ["error_mha", "error_mha"]}, "sweep.objective"),
    ({"objective": ["error_mha", "seconds"]}, "sweep.objective"),
    ({"objective": ["error_mha", "device_seconds"], "directions": ["down", "minimize"]}, "sweep.directions"),
])
def test_bad_multi_objective_settings_name_the_key(node, key):
    with pytest.raises(ConfigError) as err:
        parse_spec({"name": "c", "sampler": "tpe", "n_trials": 4, "space": SPACE, **node})
    assert err.value.key == key


def test_cost_objectives_come_from_the_summary_without_fallback():
    summary = RunSummary(status="completed", energy=-8.06, error_mha=3.0, device_seconds=75.0, training_flops=2e12)
    assert summary.objective("device_seconds") == 75.0 and summary.objective("training_flops") == 2e12
    assert RunSummary(status="completed", energy=-8.06).objective("device_seconds") is None


def _plan(tmp_path: Path, spec) -> StudyPlan:
    return StudyPlan(spec, "tune_cost", spec.name, ("system=H2",), tmp_path, f"sqlite:///{tmp_path / 'studies.db'}",
                     (), "H2", "quick")


def test_a_multi_objective_study_is_told_both_values_and_shows_its_front(tmp_path):
    spec = parse_spec({"name": "c", "sampler": "nsga2", "n_trials": 4, "space": SPACE,
                       "objective": ["error_mha", "device_seconds"], "directions": ["minimize", "minimize"]})
    plan = _plan(tmp_path, spec)
    storage = st.open_storage(plan.storage_url)
    study, created = st.open_study(storage, "c", direction="minimize", sampler=optuna.samplers.NSGAIISampler(seed=0),
                                   pruner=None, attrs=plan.study_attrs(), grid=None, log=lambda m: None,
                                   directions=spec.all_directions)
    assert created and [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    said = []
    book = TrialBook(plan, study, storage, ownership.Owner.me(), lambda msg, err=False: said.append(msg))
    results = [(3.0, 100.0), (5.0, 40.0), (6.0, 120.0), (None, 50.0)]   # the third is dominated
    for number, (error, seconds) in enumerate(results):
        frozen = book.claim()  # a new NSGA-II trial
        trial = optuna.Trial(study, st.trial_id(study, storage, frozen.number))
        params = {d.key: d.suggest(trial) for d in spec.dimensions}
        rec = Running(trial, frozen, f"t{number:04d}", tmp_path / f"t{number:04d}", params, 0)
        book.finished(rec, RunSummary(status="completed", energy=-1.17, error_mha=error, device_seconds=seconds)
                      if error is not None else RunSummary(status="completed", energy=None, device_seconds=seconds))
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3 + [TrialState.FAIL]
    assert trials[0].values == [3.0, 100.0] and trials[1].values == [5.0, 40.0]
    assert "without a finite error_mha" in trials[3].user_attrs["fail_reason"]
    assert {t.number for t in study.best_trials} == {0, 1}
    row = TrialRow.from_trial(trials[0])
    assert row.value is None and row.values == (3.0, 100.0)
    line = study_line(study, 4)
    assert "Pareto front (2): t0000 3.00 mHa 100 device-s, t0001 5.00 mHa 40 device-s" in line
    table = format_table(study).splitlines()
    assert "front" in table[1] and "device (s)" in table[1]
    assert sum(" yes" in line for line in table[3:]) == 2


def test_rejoining_with_other_directions_is_refused(tmp_path):
    storage = st.open_storage(f"sqlite:///{tmp_path / 'studies.db'}")
    attrs = {"trial_overrides": ["system=H2"], "objective": ["error_mha", "device_seconds"]}
    kw = dict(sampler=optuna.samplers.RandomSampler(), pruner=None, attrs=attrs, grid=None, log=lambda m: None)
    st.open_study(storage, "c", direction="minimize", directions=("minimize", "minimize"), **kw)
    _, created = st.open_study(storage, "c", direction="minimize", directions=("minimize", "minimize"), **kw)
    assert not created
    with pytest.raises(ConfigError) as err:
        st.open_study(storage, "c", direction="minimize", directions=("minimize", "maximize"), **kw)
    assert err.value.key == "sweep.directions"
    with pytest.raises(ConfigError) as err:   # a single-objective study of the same name
        st.open_study(storage, "c", direction="minimize", **{**kw, "attrs": {"objective": "error_mha"}})
    assert err.value.key == "sweep.directions"
