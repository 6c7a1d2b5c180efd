"""The verdict rules of analysis/verdicts.py and the convergence definition of analysis/convergence.py.

Every study is a real Optuna SQLite storage with one real run directory per trial (summary.json and
metrics.csv as the engine writes them), built by tests/test_analysis.py's ``make_study``; each
study is made to need exactly one rule.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_analysis import H2_EXACT, Spec, containers, make_study, verdicts

import analysis
from analysis import studies as S
from analysis import report as R
from analysis import verdicts as C
from analysis.convergence import MAX_REMAINING_GAIN_MHA, assess
from analysis.loaders import complete_trials
from analysis.plotting import draw_error_figure
from analysis.points import title_line

WIDTHS = (8, 16, 32, 64)


def width_study(tmp_path: Path, error_of_width, seeds=(0, 1), unconverged=(), spread=0.02, stderr_mha=0.1,
                widths=WIDTHS, name="width", study_attrs=None) -> pd.DataFrame:
    """A width study: error(width) x (1 ± spread) over the seeds; trials listed in ``unconverged``
    (by number) have training energies still drifting at the end."""
    specs = []
    for width in widths:
        for seed in seeds:
            sign = 1 if seed % 2 else -1
            specs.append(Spec({"network.width": width, "seed": seed},
                              error_of_width(width) * (1 + (sign * spread if len(seeds) > 1 else 0)),
                              stderr_mha=stderr_mha, converged=len(specs) not in unconverged))
    study = make_study(tmp_path, name, specs)
    for key, value in (study_attrs or {}).items():
        study.set_user_attr(key, value)
    return analysis.load_study(name, output_root=tmp_path)


def width_claim(frame: pd.DataFrame) -> C.Claim:
    """The width-form claim (a limit) of a single-line width study."""
    (claim,) = [c for c in verdicts(R.check_claims(frame, {"width": S.width.width_data(frame)})) if c.kind == C.LIMIT]
    return claim


def exponential(width: float) -> float:
    return 50.0 * math.exp(-width / 16.0)


def power_law(width: float) -> float:
    return 40.0 * (8.0 / width) ** 1.5


# ----------------------------------------------------------------------------- width: model choice


def test_clean_exponential_is_called_exponential_and_supported(tmp_path: Path):
    frame = width_study(tmp_path, exponential)
    assert complete_trials(frame)["converged"].all()
    claim = width_claim(frame)
    assert claim.statement == S.width.WIDTH_EXPONENTIAL
    assert claim.verdict == C.SUPPORTED
    assert "exponential fits better" in claim.evidence
    assert "e-fold every 16" in claim.evidence  # the fitted decay length is the one put in


def test_clean_power_law_is_called_a_power_law(tmp_path: Path):
    frame = width_study(tmp_path, power_law)
    claim = width_claim(frame)
    assert claim.statement == S.width.WIDTH_POWER
    assert claim.verdict == C.SUPPORTED
    assert "power law fits better" in claim.evidence and "p = -1.50 ±" in claim.evidence


def test_rising_error_is_not_supported(tmp_path: Path):
    claim = width_claim(width_study(tmp_path, lambda w: 2.0 + w / 4.0))
    assert claim.verdict == C.NOT_SUPPORTED and claim.evidence.startswith("the error grows with width")


# ----------------------------------------------------------------------------- the gate


def test_non_monotonic_width_curve_is_never_supported(tmp_path: Path):
    errors = {8: 20.0, 16: 10.0, 32: 14.0, 64: 5.0}  # falls overall, but width 32 is worse than 16
    claim = width_claim(width_study(tmp_path, errors.get))
    assert claim.verdict == C.INCONCLUSIVE
    assert claim.evidence.startswith("significant reversal: width 32 (14.00 ± 0.28 mHa) is worse than width 16")


def test_a_gain_beyond_the_margin_after_a_bump_is_no_plateau(tmp_path: Path):
    """Depth 4 gains 2 mHa on depth 3 (beyond the 1.6 mHa margin), so no flat tail is shown; the gain
    is not significantly beyond the margin either, so the claim is not refuted: inconclusive."""
    specs = [Spec({"network.depth": d, "seed": s}, e + (0.1 if s else -0.1))
             for d, e in ((1, 10.0), (2, 5.0), (3, 7.0), (4, 5.0)) for s in (0, 1)]
    make_study(tmp_path, "depth", specs)
    frame = analysis.load_study("depth", output_root=tmp_path)
    (claim,) = verdicts(R.check_claims(frame, {"depth": S.depth.depth_data(frame)}))
    assert claim.verdict == C.INCONCLUSIVE
    assert claim.evidence.startswith("a flat tail within 1.6 mHa (chemical accuracy) is not shown (the last gain is 2 mHa)")
    assert "depth 3: 7.00 ± 0.14 mHa" in claim.evidence


def test_unconverged_trials_make_the_verdict_inconclusive(tmp_path: Path):
    frame = width_study(tmp_path, exponential, unconverged=(1, 4, 6))
    done = complete_trials(frame).set_index("trial")
    assert list(done.index[~done["converged"].astype(bool)]) == [1, 4, 6]
    assert done.loc[4, "convergence_reason"].startswith("still drifting")
    assert done.loc[4, "tail_slope_mha_per_kiter"] < 0
    claim = width_claim(frame)
    assert claim.statement == S.width.WIDTH_EXPONENTIAL  # the fit is still reported ...
    assert claim.verdict == C.INCONCLUSIVE  # ... but cannot support the claim
    assert claim.evidence.startswith("trials not converged (3 of 8: t1, t4, t6)")
    note = next(c for c in R.check_claims(frame, {}) if c.statement == "trial convergence")
    assert note.evidence.startswith("5 of 8 complete trials converged")


def test_trials_without_training_record_are_not_measured(tmp_path: Path):
    specs = [Spec({"network.width": w}, power_law(w), steps=0) for w in WIDTHS]
    make_study(tmp_path, "width", specs)
    frame = analysis.load_study("width", output_root=tmp_path)
    assert complete_trials(frame)["converged"].isna().all()
    claim = width_claim(frame)
    assert claim.verdict == C.INCONCLUSIVE
    assert claim.evidence.startswith("convergence not measured (4 of 4 trials")


def test_one_seed_decides_nothing_however_small_its_reblocked_error(tmp_path: Path):
    """One seed measures no seed-to-seed scatter, which is most of the error bar between runs: a
    clean power law with 0.1 mHa reblocked errors is still not a test."""
    claim = width_claim(width_study(tmp_path, power_law, seeds=(0,), stderr_mha=0.1))
    assert claim.verdict == C.INCONCLUSIVE
    assert claim.evidence.startswith("one seed at width 8, 16, 32, 64: a test needs >= 2 seeds per point")
    assert claim.decision is not None and claim.decision.blocked


def test_two_widths_cannot_support_a_trend(tmp_path: Path):
    claim = width_claim(width_study(tmp_path, power_law, widths=(8, 16)))
    assert claim.verdict == C.INCONCLUSIVE
    assert "only 2 width values (8, 16): a trend needs at least 3" in claim.evidence


def test_flat_width_curve_has_no_significant_trend(tmp_path: Path):
    claim = width_claim(width_study(tmp_path, lambda w: 5.0 + 0.01 * (w % 3), spread=0.1))
    assert claim.verdict == C.INCONCLUSIVE and claim.evidence.startswith("no significant trend")


def test_comparisons_do_not_wait_for_convergence_but_need_two_seeds_and_limits_keep_the_gate(tmp_path: Path):
    specs = []
    for net, errors in (("ferminet", {1: 6.0, 4: 3.0, 16: 2.9}), ("slater_jastrow", {1: 60.0, 4: 45.0, 16: 40.0})):
        for k, err in errors.items():
            for seed in (0, 1):
                specs.append(Spec({"network.determinants": k, "network": net, "seed": seed}, err * (1 + 0.02 * seed),
                                  network=net, converged=not (net == "slater_jastrow" and k == 4 and seed == 0)))
    make_study(tmp_path, "determinants", specs)
    frame = analysis.load_study("determinants", output_root=tmp_path)
    claims = {c.statement: c for c in R.check_claims(frame, {"determinants": S.determinants.determinants_data(frame)})}
    versus = claims["FermiNet is more accurate than Slater–Jastrow at the same number of determinants"]
    assert versus.verdict == C.SUPPORTED and versus.kind == C.COMPARISON, versus.evidence
    assert versus.render().startswith("[supported] FermiNet is more accurate than Slater–Jastrow at the same number "
                                      "of determinants: at 200 iterations x 256 walkers, 2 seeds per point; ")
    fermi, slater = claims["FermiNet gains little from more determinants"], claims["Slater–Jastrow gains little from more determinants"]
    assert fermi.verdict == C.SUPPORTED and fermi.kind == C.LIMIT and fermi.scope == C.LIMIT_SCOPE
    assert slater.verdict == C.INCONCLUSIVE and slater.evidence.startswith("trials not converged (1 of 6: t8)")


def test_one_seed_per_point_cannot_decide_a_comparison(tmp_path: Path):
    specs = [Spec({"network.determinants": k, "network": net}, err, network=net)
             for net, errors in (("ferminet", {1: 6.0, 4: 3.0}), ("slater_jastrow", {1: 60.0, 4: 45.0}))
             for k, err in errors.items()]
    make_study(tmp_path, "determinants", specs)
    frame = analysis.load_study("determinants", output_root=tmp_path)
    claims = {c.statement: c for c in R.check_claims(frame, {"determinants": S.determinants.determinants_data(frame)})}
    versus = claims["FermiNet is more accurate than Slater–Jastrow at the same number of determinants"]
    assert versus.verdict == C.INCONCLUSIVE
    assert versus.evidence.startswith("one seed at K 1, 4: a test needs >= 2 seeds per point")


# ----------------------------------------------------------------------------- figures say what they show


def test_error_figure_has_title_caption_visible_bars_and_legend(tmp_path: Path):
    frame = width_study(tmp_path, exponential, study_attrs={"base_overrides": ["system=H2", "scale=quick"]})
    assert (frame["scale"] == "quick").all() and (frame["iterations"] == 200).all()
    data = S.width.width_data(frame)
    fig = draw_error_figure(data)
    (ax,) = fig.axes
    assert fig._suptitle.get_text().replace("\n", " · ") == "H2 · quick scale · 200 iterations · 256 walkers · 2 seeds per point"
    caption = fig._supxlabel.get_text().replace("\n", " ")
    assert "error bars: standard error of that mean" in caption and "chemical accuracy (< 1.6 mHa)" in caption
    assert "Converged: 8 of 8 trials." in caption
    (bars,) = containers(ax).values()
    line, caps, barlines = bars.lines
    assert len(caps) == 2 and all(c.get_zorder() > line.get_zorder() for c in (*caps, *barlines))
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["chemical accuracy (< 1.6 mHa)", "all trials"]

    one = width_study(tmp_path / "one", power_law, seeds=(0,))
    caption = draw_error_figure(S.width.width_data(one))._supxlabel.get_text().replace("\n", " ")
    assert "one run each; error bars: reblocked (autocorrelation-corrected) standard error" in caption
    assert title_line(one) == "H2 · scale not recorded · 200 iterations · 256 walkers · 1 seed per point"


# ----------------------------------------------------------------------------- convergence definition


def ar1(n: int, sigma: float, phi: float, seed: int) -> np.ndarray:
    """Correlated noise (autoregressive, coefficient phi) with stationary standard deviation sigma."""
    rng = np.random.default_rng(seed)
    x = np.empty(n)
    x[0] = rng.standard_normal() * sigma
    for i in range(1, n):
        x[i] = phi * x[i - 1] + math.sqrt(1 - phi**2) * sigma * rng.standard_normal()
    return x


E_FINAL = -8.0  # Hartree


@pytest.mark.parametrize("seed", range(5))
def test_flat_noisy_tail_is_converged(seed: int):
    n = 2000
    energies = E_FINAL + 0.5 * np.exp(-np.arange(n) / 100.0) + ar1(n, 0.002, 0.5, seed)  # 2 mHa, correlated
    result = assess(energies, E_FINAL, 0.0002)
    assert result.converged is True, result.reason
    assert abs(result.tail_slope_mha_per_kiter) <= 3 * result.tail_slope_stderr_mha_per_kiter
    assert result.tail_iterations >= 380 and result.tail_blocks >= 5


@pytest.mark.parametrize("seed", range(5))
def test_drifting_tail_is_not_converged(seed: int):
    n = 2000
    drift = 0.020 * (1 - np.arange(n) / n)  # still falling by 10 mHa per 1000 iterations at the end
    energies = E_FINAL + drift + ar1(n, 0.002, 0.5, seed)
    result = assess(energies, E_FINAL, 0.0002)
    assert result.converged is False
    assert result.reason.startswith("still drifting")
    assert result.tail_slope_mha_per_kiter == pytest.approx(-10.0, abs=4 * result.tail_slope_stderr_mha_per_kiter)


def test_noisy_short_tail_is_not_shown_converged_unless_the_variational_bound_is_small():
    energies = E_FINAL + ar1(300, 0.040, 0.5, 0)  # 40 mHa noise over a 60-iteration tail
    result = assess(energies, E_FINAL, 0.001)  # no reference energy
    assert result.converged is False and result.reason.startswith("tail too noisy to show flat")
    assert result.tail_hidden_drift_mha == pytest.approx(
        3 * result.tail_slope_stderr_mha_per_kiter * result.tail_iterations / 1000)
    assert result.tail_hidden_drift_mha > MAX_REMAINING_GAIN_MHA
    far = assess(energies, E_FINAL, 0.001, reference_energy=E_FINAL - 0.010)  # 10 mHa above exact
    assert far.converged is False and "12.0 mHa (2 sigma) above the reference" in far.reason
    # 0.5 mHa above the exact energy: by the variational principle at most 2.5 mHa can be gained
    near = assess(energies, E_FINAL, 0.001, reference_energy=E_FINAL - 0.0005)
    assert near.converged is True and "at most 2.5 mHa left to gain (the variational bound)" in near.reason
    assert near.variational_bound_mha == pytest.approx(2.5)


def test_evaluation_far_from_the_tail_is_not_converged():
    energies = E_FINAL + ar1(2000, 0.002, 0.5, 1)
    result = assess(energies, E_FINAL - 0.005, 0.0002)  # evaluation 5 mHa below the training tail
    assert result.converged is False and "from the training tail" in result.reason
    assert result.eval_minus_tail_mha == pytest.approx(-5.0, abs=1.0)


def test_too_short_or_unevaluated_runs_are_not_measured():
    assert assess(np.full(50, E_FINAL), E_FINAL, 0.001).converged is None
    assert assess(E_FINAL + ar1(500, 0.005, 0.5, 0), None, None).converged is None
    assert assess(None, E_FINAL, 0.001).converged is None


def test_reference_trial_energy_is_what_the_builder_writes():
    # The study builder's converged trials are flat onto the evaluated energy (guards the fixtures).
    from test_analysis import training_energies

    result = assess(training_energies(200, H2_EXACT, True, 3), H2_EXACT, 0.0002)
    assert result.converged is True
