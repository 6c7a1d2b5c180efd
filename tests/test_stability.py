"""The stability rule and the shared budget of analysis/stability.py, on series with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.stability import (
    END_WINDOW, MID_WINDOW, Budget, Margin, closing, points_budget, stability_columns, window_energy,
)


def test_a_flat_noisy_window_recovers_its_mean_within_its_error_bar():
    rng = np.random.default_rng(1)
    energies = -2.9 + 0.001 * rng.standard_normal(1000)  # 1 mHa of noise per iteration
    w = window_energy(energies, END_WINDOW)
    assert (w.start, w.stop) == (800, 1000)
    assert abs(w.energy + 2.9) < 3 * w.stderr and 3e-5 < w.stderr < 2e-4  # ~ 1 mHa / sqrt(200)


def test_a_falling_window_is_read_at_its_centre():
    steps = np.arange(1000)
    energies = -2.9 + 0.020 * (1 - steps / 1000)  # 20 mHa of drift over the run, no noise
    mid, end = window_energy(energies, MID_WINDOW), window_energy(energies, END_WINDOW)
    assert mid.energy == pytest.approx(-2.9 + 0.010, abs=2e-5)  # the value at iteration ~500
    assert end.energy == pytest.approx(-2.9 + 0.002, abs=2e-5)  # at ~900


def test_a_run_too_short_for_its_windows_is_not_measured():
    assert window_energy(np.zeros(40), MID_WINDOW) is None  # 8 iterations per window
    assert all(np.isnan(v) for v in stability_columns(np.zeros(40)).values())
    assert window_energy(np.zeros(100), MID_WINDOW) is not None  # 20 iterations


@pytest.mark.parametrize("mid, end, closes", [
    (Margin(10.0, 1.0), Margin(5.0, 1.0), True),    # shrank 3.5 sigma and would be ~0 after 40 % more training
    (Margin(10.0, 1.0), Margin(8.0, 1.0), False),   # shrinking, but not significantly
    (Margin(30.0, 1.0), Margin(20.0, 1.0), False),  # shrank significantly but would still be +10 mHa
    (Margin(3.0, 1.0), Margin(6.0, 1.0), False),    # the gap opened
])
def test_a_gap_is_closing_only_when_it_shrinks_significantly_and_fast(mid, end, closes):
    assert (closing(mid, end) is not None) == closes
    assert closing(None, end) is None


def points(*budgets) -> pd.DataFrame:
    return pd.DataFrame([{"series": "all", "x_name": "width", "x": i, "budget_iterations": it, "budget_walkers": w,
                          "budget_scale": "quick"} for i, (it, w) in enumerate(budgets)])


def test_points_share_a_budget_or_are_not_compared():
    assert points_budget(points((1000, 256), (1000, 256))) == (Budget(1000, 256, "quick"), None)
    budget, why = points_budget(points((1000, 256), (2000, 256)))
    assert budget is None and why.startswith("unequal budgets: 1000 iterations x 256 walkers (all at width 0); "
                                             "2000 iterations x 256 walkers (all at width 1)")
    assert points_budget(points((1000, 256), (1000, float("nan"))))[1].startswith("unequal budgets")
    assert points_budget(points((1000, 64), (1000, 256)), walkers_vary=True) == (Budget(1000, None, "quick"), None)
    assert Budget(1000, None, "quick").text() == "1000 iterations (walkers varied) (quick scale)"
