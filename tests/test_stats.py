import numpy as np
import pytest

from ablate.records.stats import reblock


def ar1(n, phi, rng):
    noise = rng.normal(size=n)
    x = np.empty(n)
    x[0] = noise[0] / np.sqrt(1 - phi**2)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + noise[t]
    return x


def test_reblocking_recovers_the_error_of_a_correlated_series():
    # AR(1): var(x) = 1/(1-phi^2); the variance of the mean is var(x)/N * (1+phi)/(1-phi).
    phi, n = 0.9, 2**16
    rng = np.random.default_rng(0)
    x = ar1(n, phi, rng)
    exact = np.sqrt(1 / (1 - phi**2) / n * (1 + phi) / (1 - phi))
    result = reblock(x)
    assert result.stderr == pytest.approx(exact, rel=0.2)
    # The naive error bar is wrong by sqrt(19) ~ 4.4 here: reblocking must not return it.
    assert result.naive_stderr < 0.4 * exact
    assert result.autocorrelation_time == pytest.approx((1 + phi) / (1 - phi), rel=0.4)


def test_uncorrelated_series_keeps_the_naive_error():
    x = np.random.default_rng(1).normal(size=4096)
    result = reblock(x)
    assert result.stderr == pytest.approx(1 / np.sqrt(4096), rel=0.15)
    assert result.mean == pytest.approx(x.mean())
