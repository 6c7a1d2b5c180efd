"""The samplers (MH all-electron, MH one-electron, HMC) leave known densities invariant,
adapt toward their target acceptance and reject non-finite proposals; the spike counter."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ablate.records.stats import count_spikes
from ablate.vmc import mcmc

# (name, factory(apply) -> sampler, initial width or step size in bohr, target acceptance)
SAMPLERS = [
    ("mh-all", lambda apply: mcmc.make_mcmc(apply, method="mh", steps=5, moves="all"), 0.5, 0.5),
    ("mh-one", lambda apply: mcmc.make_mcmc(apply, method="mh", steps=5, moves="one"), 0.5, 0.5),
    ("hmc", lambda apply: mcmc.make_mcmc(apply, method="hmc", steps=5, path_length=5), 0.1,
     0.65),
]
IDS = [s[0] for s in SAMPLERS]


def hydrogenic(z: float):
    """Product of 1s orbitals exp(-z r_i): |psi|^2 = exp(-2 z sum_i r_i), <r_i> = 1.5 / z bohr,
    <r_i^2> = 3 / z^2 bohr^2 (independent electrons)."""
    return lambda params, x: (1.0, -z * jnp.sum(jnp.linalg.norm(x, axis=-1)))


def run_chain(sample, walkers, width, target, burn=50, iterations=100, seed=1):
    """Adapts the width during burn-in, then samples at a fixed width (so the chain is an
    exact MCMC for the density). Returns per-walker time averages of r and r^2, shapes
    (batch, n), and the mean acceptance after burn-in."""
    sample = jax.jit(sample)
    key = jax.random.PRNGKey(seed)
    r_sum, r2_sum, accepted = 0.0, 0.0, []
    for i in range(burn + iterations):
        key, k = jax.random.split(key)
        walkers, pmove = sample(None, walkers, k, width)
        if i < burn:
            width = mcmc.adapt_width(width, pmove, target)
        else:
            r = np.linalg.norm(np.asarray(walkers), axis=-1)
            r_sum, r2_sum = r_sum + r, r2_sum + r**2
            accepted.append(float(pmove))
    return r_sum / iterations, r2_sum / iterations, float(np.mean(accepted))


def check_moment(per_walker, expected: float, max_stderr: float):
    """Mean over walkers within 4 standard errors of `expected`, the standard error taken
    from the spread of independent walkers' time averages (honest under autocorrelation);
    the error bar must be small enough for the check to mean something."""
    means = per_walker.mean(axis=1)        # electrons of one walker are correlated: average first
    stderr = means.std(ddof=1) / np.sqrt(means.size)
    assert stderr < max_stderr
    assert abs(means.mean() - expected) < 4 * stderr, (means.mean(), expected, stderr)


@pytest.mark.parametrize("name,factory,width,target", SAMPLERS, ids=IDS)
def test_hydrogen_1s_mean_radius_is_one_and_a_half_bohr(name, factory, width, target):
    walkers = jax.random.normal(jax.random.PRNGKey(0), (1024, 1, 3))
    r, r2, pmove = run_chain(factory(hydrogenic(1.0)), walkers, jnp.asarray(width), target)
    check_moment(r, 1.5, max_stderr=0.01)
    check_moment(r2, 3.0, max_stderr=0.04)
    assert pmove == pytest.approx(target, abs=0.1)


@pytest.mark.parametrize("name,factory,width,target", SAMPLERS, ids=IDS)
def test_helium_product_wave_function_radius_is_one_and_a_half_over_z(name, factory, width,
                                                                       target):
    z = 27.0 / 16.0                         # the variationally optimal screened charge
    walkers = jax.random.normal(jax.random.PRNGKey(2), (1024, 2, 3))
    r, r2, _ = run_chain(factory(hydrogenic(z)), walkers, jnp.asarray(width), target)
    check_moment(r, 1.5 / z, max_stderr=0.006)
    check_moment(r2, 3.0 / z**2, max_stderr=0.02)


@pytest.mark.parametrize("start", [0.005, 2.0])
def test_hmc_step_size_adapts_to_the_target_acceptance(start):
    sample = jax.jit(mcmc.make_hmc_sampler(hydrogenic(2.0), steps=2, path_length=5))
    walkers = 0.5 * jax.random.normal(jax.random.PRNGKey(0), (512, 2, 3))
    key, width, history = jax.random.PRNGKey(3), jnp.asarray(start), []
    for _ in range(150):
        key, k = jax.random.split(key)
        walkers, pmove = sample(None, walkers, k, width)
        width = mcmc.adapt_width(width, pmove, 0.65)
        history.append(float(pmove))
    assert np.mean(history[-30:]) == pytest.approx(0.65, abs=0.1)
    assert float(width) != pytest.approx(start, rel=0.5)   # it had to move to get there


def test_one_electron_moves_are_tested_one_electron_at_a_time():
    # log|psi| is finite only while electron 0 stays exactly where it is: every move of
    # electron 0 is rejected, electron 1 moves freely.
    start = jnp.asarray([[0.3, -0.2, 0.1], [1.0, 0.0, 0.0]])

    def apply(params, x):
        pinned = jnp.all(x[0] == start[0])
        return 1.0, jnp.where(pinned, -jnp.linalg.norm(x[1]), jnp.nan)

    walkers = jnp.tile(start[None], (256, 1, 1))
    key = jax.random.PRNGKey(0)
    moved_all, p_all = mcmc.make_sampler(apply, 3, "all")(None, walkers, key, 0.3)
    assert float(p_all) == 0.0 and np.array_equal(np.asarray(moved_all), np.asarray(walkers))
    moved_one, p_one = mcmc.make_sampler(apply, 3, "one")(None, walkers, key, 0.3)
    moved_one = np.asarray(moved_one)
    assert np.array_equal(moved_one[:, 0], np.asarray(walkers)[:, 0])
    assert np.mean(np.any(moved_one[:, 1] != np.asarray(start[1]), axis=-1)) > 0.8
    # acceptance per electron move: electron 0's moves (half of them) all fail
    assert 0.2 < float(p_one) < 0.5


@pytest.mark.parametrize("name,factory,width,target", SAMPLERS, ids=IDS)
def test_non_finite_log_amplitude_is_rejected(name, factory, width, target):
    # |psi| = exp(-r) inside a ball of radius 1 bohr, log|psi| NaN outside: no walker leaves.
    def apply(params, x):
        r = jnp.linalg.norm(x, axis=-1)
        return 1.0, jnp.where(jnp.all(r < 1.0), -jnp.sum(r), jnp.nan)

    walkers = 0.3 * jax.random.uniform(jax.random.PRNGKey(0), (256, 2, 3), minval=-1, maxval=1)
    moved, pmove = jax.jit(factory(apply))(None, walkers, jax.random.PRNGKey(1), 0.5)
    assert np.all(np.linalg.norm(np.asarray(moved), axis=-1) < 1.0)
    assert 0.0 < float(pmove) < 1.0


def test_samplers_check_walker_shapes():
    for factory in (s[1] for s in SAMPLERS):
        with pytest.raises(ValueError, match=r"\(batch, n_electrons, 3\)"):
            factory(hydrogenic(1.0))(None, jnp.zeros((8, 3)), jax.random.PRNGKey(0), 0.1)
    with pytest.raises(ValueError, match="moves"):
        mcmc.make_sampler(hydrogenic(1.0), 1, moves="some")
    with pytest.raises(ValueError, match="method"):
        mcmc.make_mcmc(hydrogenic(1.0), method="gibbs", steps=1)


def test_spike_counter_finds_upward_excursions_of_a_training_curve():
    rng = np.random.default_rng(0)
    t = np.arange(2000)
    curve = -14.6 + 0.5 * np.exp(-t / 300) + 0.01 * rng.normal(size=t.size)  # falling, noisy
    assert count_spikes(curve) == 0
    spiked = curve.copy()
    spiked[[400, 900, 1500]] += 1.0          # 100 noise sigmas up
    spiked[1200] -= 1.0                      # a downward excursion is not a spike
    assert count_spikes(spiked) == 3
    spiked[1700] = np.nan                    # a non-finite energy is one
    assert count_spikes(spiked) == 4
    # the threshold is n_mads running MADs: a periodic series has median 0 and MAD 0.75 exactly
    series = np.tile([-1.0, -0.5, 0.5, 1.0], 500)
    series[[1001, 1502]] = [7.0, 8.0]
    assert count_spikes(series, n_mads=10) == 1          # 8 > 7.5 > 7
    assert count_spikes(series, n_mads=5) == 2           # both > 3.75
    assert count_spikes([]) == 0
    assert count_spikes(curve[:5]) == 0                  # too little history to judge


@pytest.mark.parametrize("override, key", [
    ("mcmc.method=gibbs", "mcmc.method"),
    ("mcmc.moves=some", "mcmc.moves"),
    ("mcmc.hmc_step_size=0", "mcmc.hmc_step_size"),
    ("mcmc.hmc_path_length=0", "mcmc.hmc_path_length"),
    ("mcmc.hmc_target_acceptance=1.5", "mcmc.hmc_target_acceptance"),
])
def test_bad_sampler_keys_name_the_key(override, key):
    from ablate.config.compose import compose
    from ablate.config.experiment import validate
    from ablate.records.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        validate(compose([override]), device_count=1)
    assert err.value.key == key


@pytest.mark.parametrize("overrides", [
    ["mcmc.method=hmc", "mcmc.hmc_path_length=3"],
    ["mcmc.moves=one", "network.distance_features=false"],
], ids=["hmc", "one-electron-no-distances"])
def test_a_tiny_run_with_the_other_samplers_completes_and_counts_spikes(overrides,
                                                                        tiny_overrides):
    import pandas as pd

    from ablate.config.compose import compose
    from ablate.config.experiment import validate
    from ablate.vmc.run import run_experiment

    summary = run_experiment(validate(compose(tiny_overrides + overrides)))
    assert summary.status == "completed"
    assert isinstance(summary.energy_spikes, int) and summary.energy_spikes >= 0
    metrics = pd.read_csv(Path(summary.run_dir) / "metrics.csv")
    assert metrics["pmove"].between(0, 1).all() and (metrics["pmove"] > 0).any()
