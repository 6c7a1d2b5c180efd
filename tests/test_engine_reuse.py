"""One compiled engine serves every run of the same shapes (a warm sweep worker's trials).

A second run that differs only in its seed and scalar hyperparameters (learning rate and its
schedule, damping, norm constraint, clipping width, MCMC target acceptance, pretraining
rate) must trace and compile none of the engine's programs, and give exactly the energies a
freshly built engine gives.
"""

import jax.monitoring
import numpy as np
import pandas as pd
import pytest

from ablate.config.compose import compose
from ablate.config.experiment import validate
from ablate.runtime import program_store
from ablate.vmc import training
from ablate.vmc.run import run_experiment
from conftest import TINY

FIRST = ["seed=0"]
SECOND = ["seed=1", "optim.lr=0.02", "optim.lr_delay=50", "optim.damping=0.003",
          "optim.norm_constraint=0.01", "optim.clip_width=3.0", "mcmc.target_acceptance=0.4",
          "pretrain.lr=0.003"]
# Our programs, and kfac-jax's step and init, by the names JAX traces them under.
ENGINE_PROGRAMS = {"train_step", "mcmc_iteration", "eval_step", "pretrain_step", "_step", "init",
                   "_init"}


def _overrides(tmp_path, name, extra):
    return TINY + ["pretrain=hf", "pretrain.iterations=3", "precision=float64",
                   f"output_root={tmp_path}", f"run_dir={tmp_path / name}"] + extra


def _energies(run_dir):
    return (pd.read_csv(run_dir / "metrics.csv")["energy"].to_numpy(),
            pd.read_csv(run_dir / "eval.csv")["energy"].to_numpy())


def test_the_spec_ignores_scalars_and_seeds_but_not_shapes():
    base = validate(compose(TINY), device_count=1)
    same = validate(compose(TINY + SECOND), device_count=1)
    wider = validate(compose(TINY + ["network.width=9"]), device_count=1)
    sparse = validate(compose(TINY + ["laplacian_sparsity=6"]), device_count=1)
    assert training.engine_spec(base) == training.engine_spec(same)
    assert training.engine_spec(base) != training.engine_spec(wider)
    assert training.engine_spec(base) != training.engine_spec(sparse)


class Traces:
    """Names of the functions JAX traces to jaxprs while inside the block."""

    def __enter__(self):
        self.names = []
        jax.monitoring.register_event_duration_secs_listener(self._on_event)
        return self

    def _on_event(self, event, duration, **kwargs):
        if event == "/jax/core/compile/jaxpr_trace_duration":
            self.names.append(kwargs.get("fun_name"))

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self._on_event)


def test_a_reused_engine_retraces_nothing_and_gives_a_fresh_engines_energies(tmp_path, monkeypatch):
    first = run_experiment(validate(compose(_overrides(tmp_path, "first", FIRST))))
    assert first.status == "completed"

    with Traces() as reused_traces:
        reused = run_experiment(validate(compose(_overrides(tmp_path, "reused", SECOND))))
    assert reused.status == "completed"
    assert not ENGINE_PROGRAMS & set(reused_traces.names), reused_traces.names
    assert reused.startup["compile"] < first.startup["compile"]
    assert set(reused.startup) == set(first.startup) and reused.startup["imports"] == 0.0

    training._ENGINES.clear()                  # the same run again, on a new engine, traced
    monkeypatch.setattr(program_store, "store_folder", lambda: None)   # (not read from disk)
    with Traces() as fresh_traces:
        fresh = run_experiment(validate(compose(_overrides(tmp_path, "fresh", SECOND))))
    assert {"train_step", "mcmc_iteration", "eval_step"} <= set(fresh_traces.names)  # it can see
    for a, b in zip(_energies(tmp_path / "reused"), _energies(tmp_path / "fresh")):
        np.testing.assert_array_equal(a, b)
    assert reused.energy == fresh.energy
    # ... and the scalars did take effect: the first run's trajectory is not this one.
    assert not np.array_equal(_energies(tmp_path / "first")[0], _energies(tmp_path / "fresh")[0])


@pytest.mark.parametrize("key", ["laplacian_sparsity=0", "laplacian_sparsity=sparse",
                                 "matmul_precision=tf32", "optim.inverse_update_period=0"])
def test_bad_speed_settings_are_one_line_config_errors(key):
    from ablate.records.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        validate(compose(TINY + [key]), device_count=1)
    assert key.split("=")[0] in str(err.value) and "\n" not in str(err.value)
