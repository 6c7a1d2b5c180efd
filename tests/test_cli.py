"""Bad input: one line naming the key, exit code 2, nothing written."""

import os
import subprocess
import sys

import pytest

from conftest import TINY


def run_cli(args, tmp_path, env=None):
    return subprocess.run([sys.executable, "-m", "ablate", *args, f"output_root={tmp_path}"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("override, key", [
    ("system=Xx", "system"),
    ("system.spin=1", "system.spin"),               # H2 has an even number of electrons
    ("network.width=0", "network.width"),
    ("network.width=-3", "network.width"),
    ("network.determinants=0", "network.determinants"),
    ("network.depth=0", "network.depth"),
    ("laplacian=magic", "laplacian"),
    ("optim=sgd", "optim"),
    ("mcmc.steps=0", "mcmc.steps"),
    ("batch_size=0", "batch_size"),
    ("network.nonsense=3", "network.nonsense"),
])
def test_bad_input_is_one_line_and_exit_2(override, key, tmp_path):
    out = run_cli(TINY + [override], tmp_path)
    assert out.returncode == 2, out.stderr
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and key in lines[0], out.stderr
    assert not any(tmp_path.iterdir()), "nothing may be written for bad input"


def test_unknown_molecule_lists_what_is_allowed(tmp_path):
    out = run_cli(["system=Unobtainium"], tmp_path)
    assert out.returncode == 2 and "LiH" in out.stderr and "N2" in out.stderr


def test_batch_must_divide_over_devices(tmp_path):
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    out = run_cli(TINY + ["batch_size=33"], tmp_path, env)
    assert out.returncode == 2 and "batch_size" in out.stderr and "devices (2)" in out.stderr
