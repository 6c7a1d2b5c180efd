"""Shared test set-up: float64 JAX for the numerical tests, tiny-run overrides."""

import os
import tempfile

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("WANDB_SILENT", "true")
# One persistent compilation cache for the whole session, subprocesses included: the tests
# compile the same tiny networks many times.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), "ablate-tests-jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")


def _password_out_of_the_test_url() -> None:
    """ablate refuses storage URLs with a password: a ABLATE_TEST_POSTGRES_URL that still carries
    one (exported by an older .ci/start_postgres.sh) is used without it, and its password is
    handed to libpq through PGPASSWORD, as a user would."""
    from ablate.records.redact import has_password

    url = os.environ.get("ABLATE_TEST_POSTGRES_URL")
    if not url or not has_password(url):
        return
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.password is not None:
        os.environ.setdefault("PGPASSWORD", parsed.password)
    os.environ["ABLATE_TEST_POSTGRES_URL"] = parsed._replace(password=None).render_as_string(hide_password=False)


_password_out_of_the_test_url()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)


@pytest.fixture(autouse=True)
def float64_by_default():
    """Numerical tests run in float64; a run_experiment call sets the flag to its precision,
    so it is put back before every test."""
    jax.config.update("jax_enable_x64", True)
    yield

# A run small enough for a few seconds on a 2-core CPU (H2, tiny network, no pretraining).
TINY = [
    "system=H2", "network.width=8", "network.depth=1", "network.pairwise_width=4",
    "network.determinants=1", "batch_size=32", "optim.iterations=20", "mcmc.burn_in=5",
    "mcmc.steps=2", "pretrain=none", "evaluation.iterations=10", "evaluation.burn_in=5",
    "logger=none", "progress=false",
]


@pytest.fixture
def tiny_overrides(tmp_path):
    return TINY + [f"output_root={tmp_path}"]


class StopAt:
    """Run callbacks that interrupt training (as a kill would, after a checkpoint) at a step."""

    def __init__(self, step: int):
        self.step = step

    def on_train_step(self, step, metrics):
        if step == self.step:
            raise KeyboardInterrupt


def assert_same_training(whole_dir, cut_dir, iterations: int) -> None:
    """An interrupted-and-resumed run trained the same steps to the same energies as the whole one."""
    import numpy as np
    import pandas as pd

    a = pd.read_csv(f"{whole_dir}/metrics.csv")
    b = pd.read_csv(f"{cut_dir}/metrics.csv")
    assert b["step"].tolist() == list(range(iterations))
    np.testing.assert_allclose(a["energy"], b["energy"], rtol=1e-10)
