"""Studies that add seeds until they decide, and their plan (issue 31, items 5 and 6).

* the sweep file's ``max_seeds``, ``claims`` and ``plan`` keys, and what the study records;
* the pure decide step (:func:`analysis.rounds.next_round`: a trial frame in, the points to grow
  out) on simulated studies (:mod:`analysis.simulate`);
* the driver's side (:mod:`sweeps.rounds`) on a real SQLite storage with a stand-in decide step:
  the looks attribute grows, only the pending claims' points get seeds, a killed driver's round
  is enqueued by the rerun, and a rerun of a finished study adds nothing;
* the command line: ``sweep.plan=true`` prints the power of each claim and writes nothing; bad
  ``sweep.max_seeds`` and ``sweep.claims.*`` are one line and exit code 2;
* end to end (slow): the real driver, tiny real trials and the real analysis, two rounds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from ablate.config.compose import compose
from ablate.records.errors import ConfigError
from ablate.records.study_record import trial_params
from analysis.rounds import look_levels, next_round, plan_lines
from analysis.simulate import trial_frame
from sweeps import grid as gr
from sweeps import ownership
from sweeps import storage as st
from sweeps.plan import build_plan
from sweeps.rounds import Look, Rounds, record_round
from sweeps.space import parse_spec
from sweeps.trials import TrialBook

ROOT = Path(__file__).resolve().parents[1]
TINY = ["system=H2", "network.width=8", "network.depth=1", "network.pairwise_width=4", "network.determinants=1",
        "batch_size=32", "optim.iterations=20", "mcmc.burn_in=5", "mcmc.steps=2", "pretrain=none",
        "evaluation.iterations=10", "evaluation.burn_in=5", "logger=none"]

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- the sweep file ------------------------------------------------------------------------


def test_max_seeds_and_the_claims_block_parse_with_their_defaults():
    spec = parse_spec({"name": "w", "space": {"network.width": [8, 16]}, "seeds": 2, "max_seeds": 8,
                       "claims": {"margin_mha": 2, "scatter": 0.7}})
    assert spec.max_seeds == 8 and spec.rounds and spec.keys == ["network.width", "seed"]
    assert spec.claims.as_attr() == {"margin_mha": 2.0, "exponent_margin": 0.15, "rate_margin": 0.3, "alpha": 0.025,
                                     "scatter": 0.7, "error_mha": 3.0}
    plain = parse_spec({"name": "w", "space": {"network.width": [8, 16]}, "seeds": 2})
    assert plain.max_seeds == 2 and not plain.rounds and not plain.plan
    # one seed and rounds: the grid is as without rounds; the base seed makes a point's seed 0
    one = parse_spec({"name": "w", "space": {"network.width": [8]}, "max_seeds": 4})
    assert one.keys == ["network.width"] and one.rounds


def test_with_one_seed_a_round_adds_seed_1_to_the_seedless_points(tmp_path):
    overrides = ["+sweep=width", f"output_root={tmp_path}", "sweep.gpus=[]", "sweep.seeds=1", "sweep.max_seeds=4"]
    plan = build_plan(compose(overrides), overrides)
    assert plan.defaults["seed"] == 0 and plan.spec.keys == ["network.width"]
    attrs = {gr.ROUNDS: [{"seeds": 2, "points": [{"network.width": 8}]}]}
    full = gr.study_grid(plan.spec.grid_points(), attrs, plan.defaults)
    assert full == [*plan.spec.grid_points(), {"network.width": 8, "seed": 1}]


@pytest.mark.parametrize("node, key", [
    ({"max_seeds": 1, "seeds": 2}, "sweep.max_seeds"),
    ({"max_seeds": 0}, "sweep.max_seeds"),
    ({"max_seeds": 4, "sampler": "tpe", "n_trials": 3}, "sweep.max_seeds"),
    ({"max_seeds": 4, "space": {"network.width": [8], "seed": [0, 1]}}, "sweep.max_seeds"),
    ({"claims": {"margin": 2}}, "sweep.claims.margin"),
    ({"claims": {"alpha": 0.7}}, "sweep.claims.alpha"),
    ({"claims": {"margin_mha": -1}}, "sweep.claims.margin_mha"),
    ({"claims": {"scatter": "wide"}}, "sweep.claims.scatter"),
    ({"claims": 5}, "sweep.claims"),
])
def test_bad_rounds_and_claims_name_the_key_in_one_line(node, key):
    with pytest.raises(ConfigError) as err:
        parse_spec({"name": "x", "space": {"network.width": [8]}, **node})
    assert err.value.key == key and "\n" not in str(err.value)


def test_the_study_records_its_claims_block_max_seeds_and_first_look(tmp_path):
    overrides = ["+sweep=width", f"output_root={tmp_path}", "sweep.gpus=[]", "sweep.claims.margin_mha=2"]
    attrs = build_plan(compose(overrides), overrides).study_attrs()
    assert attrs["max_seeds"] == 4 and attrs["looks"] == [2] and attrs["claims"]["margin_mha"] == 2.0
    overrides = ["+sweep=width", f"output_root={tmp_path}", "sweep.gpus=[]", "sweep.max_seeds=null"]
    attrs = build_plan(compose(overrides), overrides).study_attrs()
    assert attrs["max_seeds"] == 2 and "looks" not in attrs   # no rounds: one look, as before


def test_every_talk_study_adds_one_round_of_seeds_to_four():
    for name in ("width", "features", "determinants", "optimizer", "batch", "depth", "pairwise", "architecture",
                 "sampler", "sampler_moves"):
        spec = parse_spec(OmegaConf.to_container(compose([f"+sweep={name}"]).sweep, resolve=True), default_name=name)
        assert (spec.seeds, spec.max_seeds) == (2, 4), name


def test_the_study_grid_adds_each_rounds_points_at_their_seeds_once():
    grid = [{"network.width": w, "seed": s} for w in (4, 8) for s in (0, 1)]
    attrs = {gr.ROUNDS: [{"seeds": 4, "points": [{"network.width": 8}]},
                         {"seeds": 8, "points": [{"network.width": 8.0}]}]}
    full = gr.study_grid(grid, attrs, {"network.width": 32, "seed": 0})
    assert full[:4] == grid
    assert [p["seed"] for p in full[4:]] == [2, 3, 4, 5, 6, 7] and all(p["network.width"] == 8 for p in full[4:])
    assert gr.study_grid(grid, {}, None) == grid


# --- the decide step: trials in, points out -------------------------------------------------

FEATURES = [{"network.distance_features": f, "system": s} for f in (True, False) for s in ("He", "Li", "LiH")]


def features_truth(point) -> float:
    """A 100x effect of |r| features on He and Li; on LiH a 3x effect, right at the claim's boundary."""
    if point["network.distance_features"]:
        return 2.0
    return {"He": 200.0, "Li": 200.0, "LiH": 6.0}[point["system"]]


def features_frame(looks, seeds_of=None):
    points = [{**p, "_seeds": (seeds_of or {}).get(p["system"], looks[0])} for p in FEATURES]
    return trial_frame(points, ["network.distance_features", "system"], features_truth, scatter=0.5,
                       attrs={"study": "features", "looks": list(looks), "max_seeds": 8})


def test_only_the_points_of_pending_claims_get_the_next_seeds():
    step = next_round(features_frame([2]))
    assert (step.looked, step.seeds) == (2, 4)
    assert [c.statement for c in step.claims] == ["without |r| features the error is far higher (at least 3x) (LiH)"]
    assert step.points == ({"network.distance_features": True, "system": "LiH"},
                           {"network.distance_features": False, "system": "LiH"})
    # the decided claims keep their verdict at the later look; LiH, still pending, would get 8 seeds
    later = next_round(features_frame([2, 4], {"LiH": 4}))
    assert later.looked == 4 and later.seeds == 8
    assert {p["system"] for p in later.points} <= {"LiH"}
    last = next_round(features_frame([2, 4, 8], {"LiH": 8}))
    assert last.looked == 8 and last.seeds is None


def test_a_study_without_looks_has_no_next_round():
    frame = features_frame([2])
    frame.attrs.pop("looks")
    step = next_round(frame)
    assert step.looked == 0 and step.seeds is None


def test_a_claim_blocked_by_more_than_its_seeds_is_not_pending():
    """Two widths with one seed each: more seeds cannot make the three points a trend needs."""
    frame = trial_frame([{"network.width": w} for w in (4, 8)], ["network.width"], lambda p: 3.0, seeds=1,
                        attrs={"study": "width", "looks": [1], "max_seeds": 8})
    assert next_round(frame).claims == ()


def test_plan_lines_give_the_looks_levels_and_each_claims_power_at_seeds_and_max():
    lines = plan_lines([{"network.width": w} for w in (8, 16, 32, 64)], ["network.width"], seeds=2, max_seeds=8,
                       claims={"alpha": 0.025, "scatter": 0.5, "error_mha": 3.0}, study="width")
    levels = look_levels(2, 8)
    assert [n for n, _ in levels] == [2, 4, 8] and all(0 < lv < 0.025 for _, lv in levels)
    assert lines[0].startswith("looks (seeds per point, one-sided level): 2 seeds")
    (trend,) = [ln for ln in lines if "the error is lower at larger one-electron width" in ln]
    assert "detects a true factor" in trend and "at 2 seeds per point" in trend and "at 8" in trend


# --- the driver's side: a real SQLite storage, a stand-in decide step ------------------------


class Decide:
    """A decide step that answers what it is told and counts its calls."""

    def __init__(self):
        self.calls, self.look = 0, None

    def __call__(self, study, url, root) -> Look:
        self.calls += 1
        return self.look


def width_study(tmp_path):
    overrides = ["+sweep=width", f"output_root={tmp_path}", "sweep.gpus=[]", "sweep.space.network.width=[4,8,16]",
                 "sweep.max_seeds=4", *TINY]
    plan = build_plan(compose(overrides), overrides)
    storage = st.open_storage(plan.storage_url)
    mutex = st.StudyMutex(plan.storage_url, plan.study_name)
    study = open_width(plan, storage, mutex)
    said = []
    book = TrialBook(plan, study, storage, ownership.Owner.me(), lambda m, err=False: said.append(m), mutex=mutex)
    return plan, storage, study, book, said


def open_width(plan, storage, mutex):
    study, _ = st.open_study(storage, plan.study_name, direction="minimize", sampler=optuna.samplers.RandomSampler(),
                             pruner=None, attrs=plan.study_attrs(), grid=plan.spec.grid_points(),
                             defaults=plan.defaults, mutex=mutex, log=lambda m: None)
    return study


def complete_all(study, storage):
    """Every waiting trial claimed and told COMPLETE (as a driver would, without the engine)."""
    while (t := st.claim_waiting(study, storage)) is not None:
        study.tell(t.number, 1.0 + t.number)


def seeds_by_width(study) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for t in study.get_trials():
        p = trial_params(t)
        out.setdefault(int(p["network.width"]), []).append(int(p["seed"]))
    return {w: sorted(s) for w, s in sorted(out.items())}


def test_a_round_records_its_look_and_grows_only_the_pending_claims_points(tmp_path):
    plan, storage, study, book, said = width_study(tmp_path)
    decide = Decide()
    rounds = Rounds(plan, study, decide, lambda m, err=False: said.append(m))
    assert rounds.next(book) and decide.calls == 0   # round 1 not run yet: nothing is asked
    complete_all(study, storage)
    # trials 0-3 are widths 4 and 8 (seeds 0, 1): the pending claim rests on them
    decide.look = Look(seeds=2, next_seeds=4, pending=("claim a", "claim b"), trials=(0, 1, 2, 3))
    assert rounds.next(book) and decide.calls == 1
    assert study.user_attrs["looks"] == [2, 4] and study.user_attrs["n_planned"] == 10
    assert study.user_attrs[gr.ROUNDS] == [{"seeds": 4, "points": [{"network.width": 4}, {"network.width": 8}]}]
    assert seeds_by_width(study) == {4: [0, 1, 2, 3], 8: [0, 1, 2, 3], 16: [0, 1]}
    assert said[-1] == "[width] round 2: 4 seeds at 2 of 3 points for 2 pending claims (claim a; claim b)"
    assert len(book.grid) == 10
    # while the round's trials wait, the step asks nothing
    assert rounds.next(book) and decide.calls == 1
    complete_all(study, storage)
    decide.look = Look(seeds=4, next_seeds=None, pending=("claim a",), trials=(0, 1, 6, 7))
    assert not rounds.next(book) and decide.calls == 2
    assert said[-1] == "[width] rounds done at max_seeds 4: 1 claim stayed undecided: claim a"
    assert study.user_attrs["looks"] == [2, 4] and len(study.get_trials()) == 10

    # a rerun of the finished study: the same grid, nothing enqueued, no new look
    again = open_width(plan, storage, st.StudyMutex(plan.storage_url, plan.study_name))
    assert len(again.get_trials()) == 10 and again.user_attrs["looks"] == [2, 4]
    decide.look = Look(seeds=4, next_seeds=None, pending=())
    assert not Rounds(plan, again, decide, lambda m, err=False: said.append(m)).next(book)
    assert said[-1] == "[width] rounds done: no claim pending at 4 seeds per point"
    assert len(again.get_trials()) == 10


def test_a_round_recorded_by_a_killed_driver_is_enqueued_by_the_rerun(tmp_path):
    plan, storage, study, book, _ = width_study(tmp_path)
    complete_all(study, storage)
    # the driver recorded the round (points, then look) and died before enqueuing it
    record_round(study, 4, [{"network.width": 16}], plan.spec.grid_points(), plan.defaults)
    assert len(study.get_trials()) == 6
    again = open_width(plan, storage, st.StudyMutex(plan.storage_url, plan.study_name))
    waiting = again.get_trials(states=(TrialState.WAITING,))
    assert sorted(trial_params(t)["seed"] for t in waiting) == [2, 3]
    assert {trial_params(t)["network.width"] for t in waiting} == {16}


def test_a_joining_run_with_another_max_seeds_or_margin_is_refused(tmp_path):
    plan, storage, study, book, _ = width_study(tmp_path)
    complete_all(study, storage)
    record_round(study, 4, [{"network.width": 16}], plan.spec.grid_points(), plan.defaults)
    for extra, key in ((["sweep.max_seeds=8"], "sweep.max_seeds"),
                       (["sweep.claims.margin_mha=3"], "sweep.claims.margin_mha")):
        overrides = ["+sweep=width", f"output_root={tmp_path}", "sweep.gpus=[]", "sweep.space.network.width=[4,8,16]",
                     "sweep.max_seeds=4", *TINY, *extra]
        other = build_plan(compose(overrides), overrides)
        with pytest.raises(ConfigError) as err:
            open_width(other, storage, st.StudyMutex(other.storage_url, other.study_name))
        assert err.value.key == key
    # the plan's own assumptions (scatter, error_mha) change no verdict: joining is fine
    overrides = ["+sweep=width", f"output_root={tmp_path}", "sweep.gpus=[]", "sweep.space.network.width=[4,8,16]",
                 "sweep.max_seeds=4", *TINY, "sweep.claims.scatter=0.9"]
    other = build_plan(compose(overrides), overrides)
    open_width(other, storage, st.StudyMutex(other.storage_url, other.study_name))


def test_before_its_first_round_a_study_takes_the_runs_max_seeds(tmp_path):
    """Until a round has added seeds nothing is planned to max_seeds yet: a run without rounds (or
    with another maximum) joins and the study follows it."""
    plan, storage, study, book, _ = width_study(tmp_path)
    assert study.user_attrs["looks"] == [2] and study.user_attrs["max_seeds"] == 4
    overrides = ["+sweep=width", f"output_root={tmp_path}", "sweep.gpus=[]", "sweep.space.network.width=[4,8,16]",
                 "sweep.max_seeds=null", *TINY]
    other = build_plan(compose(overrides), overrides)
    again = open_width(other, storage, st.StudyMutex(other.storage_url, other.study_name))
    assert again.user_attrs["looks"] == [] and again.user_attrs["max_seeds"] == 2
    again = open_width(plan, storage, st.StudyMutex(plan.storage_url, plan.study_name))
    assert again.user_attrs["looks"] == [2] and again.user_attrs["max_seeds"] == 4


# --- the command line ----------------------------------------------------------------------


def cli(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ablate", f"output_root={out}", *TINY, *extra]


BAD = {
    "max below seeds": (["+sweep=width", "sweep.max_seeds=1"], "sweep.max_seeds"),
    "max with tpe": (["+sweep=tune", "+sweep.max_seeds=4"], "sweep.max_seeds"),
    "unknown claims key": (["+sweep=width", "+sweep.claims.margin=2"], "sweep.claims.margin"),
    "bad alpha": (["+sweep=width", "sweep.claims.alpha=2"], "sweep.claims.alpha"),
}


def test_plan_prints_the_power_of_each_claim_and_bad_rounds_exit_2_writing_nothing(tmp_path):
    """``sweep.plan=true`` and the bad inputs, started together (each is a CLI start-up)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = {"plan": (tmp_path / "plan", ["+sweep=features", "sweep.plan=true"])}
    runs.update({case: (tmp_path / case.replace(" ", "_"), args) for case, (args, _) in BAD.items()})
    procs = {case: subprocess.Popen(cli(out, *args), cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE) for case, (out, args) in runs.items()}
    try:
        done = {case: (p.communicate(timeout=240), p.returncode) for case, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    (stdout, stderr), code = done.pop("plan")
    assert code == 0, stderr[-2000:]
    assert "plan of study 'features' (grid, 6 points" in stdout
    assert "seeds: 2 per point (12 trials), max_seeds 4" in stdout
    assert "looks (seeds per point, one-sided level)" in stdout
    power = [ln for ln in stdout.splitlines() if "detects a true" in ln]
    assert any("(LiH)" in ln and "at 2 seeds per point" in ln and " at 4" in ln for ln in power), stdout
    assert not (tmp_path / "plan").exists()   # no storage, no study folder
    for case, ((stdout, stderr), code) in done.items():
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and BAD[case][1] in lines[0], (case, stdout[-1000:], stderr[-2000:])
        assert not (tmp_path / case.replace(" ", "_")).exists(), case


@pytest.mark.slow
def test_a_study_adds_seeds_in_rounds_end_to_end(tmp_path):
    """The real driver, tiny real trials (H2) and the real analysis: 3 widths x 2 seeds, then a
    second round to max_seeds 4 for the points of the claims still pending (alpha tiny keeps the
    trend claim undecided at the first look whatever the trials say); the report is written with
    logger=none; the same command run again adds nothing."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = cli(tmp_path, "+sweep=width", "sweep.space.network.width=[4,8,16]", "sweep.max_seeds=4",
               "sweep.claims.alpha=1e-9", "sweep.workers=2")
    res = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "[width] plan of study 'width' (grid, 3 points" in res.stdout
    study = optuna.load_study(study_name="width", storage=f"sqlite:///{tmp_path / 'studies.db'}")
    assert study.user_attrs["looks"] == [2, 4] and study.user_attrs["max_seeds"] == 4
    (grown,) = study.user_attrs[gr.ROUNDS]
    assert grown["seeds"] == 4 and grown["points"]
    round_line = next(ln for ln in res.stdout.splitlines() if "] round 2: 4 seeds at " in ln)
    assert f"at {len(grown['points'])} of 3 points for " in round_line
    widths = {p["network.width"] for p in grown["points"]}
    by_width = seeds_by_width(study)
    assert by_width == {w: [0, 1, 2, 3] if w in widths else [0, 1] for w in (4, 8, 16)}
    assert all(t.state == TrialState.COMPLETE for t in study.get_trials())
    assert "rounds done at max_seeds 4:" in res.stdout
    assert (tmp_path / "width" / "report.html").is_file() and "[width] report: " in res.stdout

    # the same command again: the study is finished, nothing is added
    again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    study = optuna.load_study(study_name="width", storage=f"sqlite:///{tmp_path / 'studies.db'}")
    assert seeds_by_width(study) == by_width and study.user_attrs["looks"] == [2, 4]
    assert "] round " not in again.stdout and "rounds done at max_seeds 4:" in again.stdout
