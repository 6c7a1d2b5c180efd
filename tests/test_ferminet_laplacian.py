"""The FermiNet-structured forward Laplacian against folx and the Hessian trace (float64), and
local energies computed over chunks of walkers against the whole batch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ablate.config.compose import compose
from ablate.config.experiment import validate
from ablate.hamiltonian import ferminet_laplacian
from ablate.hamiltonian.local_energy import (AUTO_CHUNK_BYTES, AUTO_FERMINET_FROM_ELECTRONS, energy_chunk,
                                             forward_laplacian_of, kinetic_energy, local_energy, over_batch)
from ablate.records.errors import ConfigError
from ablate.vmc import training
from ablate.wavefunction.networks import make_ansatz

SMALL = ["precision=float64", "network.width=8", "network.pairwise_width=4",
         "network.determinants=2"]


def _kinetics(overrides):
    exp = validate(compose(overrides + SMALL))
    ansatz = make_ansatz(exp)
    net = exp.network
    ours = ferminet_laplacian.make_kinetic(exp.system, net, jnp.float64, net.distance_features)
    folx = kinetic_energy(lambda p, x: ansatz.apply(p, x)[1], "forward")
    return exp, ansatz, jax.jit(ours), jax.jit(folx)


@pytest.mark.parametrize("overrides", [
    ["system=LiH"],                                                   # molecule, one n x n det
    ["system=Li", "network.full_det=false"],                          # spin blocks, 2 up 1 down
    ["system=H"],                                                     # one electron, no down spin
    ["system=H2", "network.activation=silu", "network.depth=3"],
    ["system=Be", "network.residual=false", "network.distance_features=false",
     "network.envelope=diagonal"],
    ["system=LiH", "network.envelope=full", "network.depth=3"],      # layer 0 width 8 = 4 x 2 atoms: its residual
    ["system=N", "network.activation=gelu", "network.full_det=false"],
])
def test_structured_kinetic_energy_equals_folx(overrides):
    exp, ansatz, ours, folx = _kinetics(overrides)
    params = ansatz.init(jax.random.PRNGKey(5))
    for x in np.random.default_rng(6).normal(size=(3, exp.system.n_electrons, 3)) * 1.5:
        a, b = float(ours(params, jnp.asarray(x))), float(folx(params, jnp.asarray(x)))
        assert np.isfinite(a) and a == pytest.approx(b, rel=1e-9, abs=1e-9)


def test_structured_kinetic_energy_equals_the_hessian_trace():
    _, ansatz, ours, _ = _kinetics(["system=Li"])
    params = ansatz.init(jax.random.PRNGKey(7))
    hessian = jax.jit(kinetic_energy(lambda p, x: ansatz.apply(p, x)[1], "hessian"))
    for x in np.random.default_rng(8).normal(size=(3, 3, 3)):
        assert float(ours(params, jnp.asarray(x))) == pytest.approx(
            float(hessian(params, jnp.asarray(x))), rel=1e-9, abs=1e-9)


def test_structured_local_energy_of_the_default_quick_network_equals_folx():
    """Through `local_energy` (kinetic + potential) with the default quick network."""
    exp = validate(compose(["system=LiH", "scale=quick", "precision=float64"]))
    ansatz = make_ansatz(exp)
    net = exp.network
    kinetic = ferminet_laplacian.make_kinetic(exp.system, net, jnp.float64)
    ours = jax.jit(local_energy(ansatz.apply, exp.system, "forward", jnp.float64, kinetic=kinetic))
    folx = jax.jit(local_energy(ansatz.apply, exp.system, "forward", jnp.float64))
    hessian = jax.jit(local_energy(ansatz.apply, exp.system, "hessian", jnp.float64, kinetic=kinetic))
    params = ansatz.init(jax.random.PRNGKey(9))
    x = jnp.asarray(np.random.default_rng(10).normal(size=(4, 3)))
    assert float(ours(params, x)) == pytest.approx(float(folx(params, x)), rel=1e-10)
    # `kinetic` is the forward Laplacian's: laplacian=hessian ignores it
    assert float(hessian(params, x)) == pytest.approx(float(folx(params, x)), rel=1e-9)


def test_chunked_batches_return_every_walker_in_place():
    walker_id = lambda params, x: params * jnp.sum(x)       # exact: which walker went where
    walkers = jnp.arange(24 * 2 * 3, dtype=jnp.float64).reshape(24, 2, 3)
    whole = over_batch(walker_id)(2.0, walkers)
    for chunk in (1, 4, 8, 12, 24, 48, 5):                   # 5 does not divide 24: done whole
        assert np.array_equal(over_batch(walker_id, chunk)(2.0, walkers), whole)
    assert np.array_equal(jax.jit(over_batch(walker_id, 4))(2.0, walkers), whole)


def test_energy_chunk_setting_resolves_by_size_and_backend():
    width, f32 = 32, 4
    assert energy_chunk("whole", 14, width, 128, f32, "cpu") == 0
    assert energy_chunk(8, 14, width, 128, f32, "cpu") == 8
    assert energy_chunk(256, 14, width, 128, f32, "cpu") == 0        # covers the batch
    assert energy_chunk("auto", 14, width, 128, f32, "gpu") == 0
    n2 = energy_chunk("auto", 14, width, 128, f32, "cpu")           # N2, quick network
    assert n2 == 16 and n2 * 14 * 42 * width * f32 <= AUTO_CHUNK_BYTES
    assert energy_chunk("auto", 4, width, 128, f32, "cpu") == 0      # LiH: the whole batch
    assert energy_chunk("auto", 14, width, 128, 8, "cpu") == 8       # float64: half as many
    assert energy_chunk("auto", 14, width, 128, f32, "cpu", "hessian") == 0


@pytest.mark.parametrize("bad", [["energy_chunk=0"], ["energy_chunk=some"],
                                 ["forward_laplacian=fast"]])
def test_bad_settings_name_the_key(bad):
    with pytest.raises(ConfigError) as err:
        validate(compose(bad))
    assert bad[0].split("=")[0] in str(err.value)


def test_auto_forward_laplacian_is_ours_from_5_electrons_for_ferminet_only():
    assert forward_laplacian_of("auto", "ferminet", 4) == "folx"        # LiH: no gain (issue 15)
    assert forward_laplacian_of("auto", "ferminet", AUTO_FERMINET_FROM_ELECTRONS) == "ferminet"
    assert forward_laplacian_of("auto", "ferminet", 14) == "ferminet"   # N2
    assert forward_laplacian_of("auto", "slater_jastrow", 14) == "folx"
    assert forward_laplacian_of("ferminet", "ferminet", 2) == "ferminet"
    assert forward_laplacian_of("folx", "ferminet", 14) == "folx"
    specs = {fl: training.engine_spec(validate(compose(["system=N2", "scale=quick", "logger=none",
                                                        f"forward_laplacian={fl}"])))
             for fl in ("auto", "folx")}
    assert specs["auto"].forward_laplacian == "ferminet" and specs["folx"].forward_laplacian == "folx"
    lih = training.engine_spec(validate(compose(["system=LiH", "scale=quick", "logger=none"])))
    assert lih.forward_laplacian == "folx"


def test_ours_with_another_network_is_refused_with_the_key():
    with pytest.raises(ConfigError) as err:
        validate(compose(["network=slater_jastrow", "forward_laplacian=ferminet"]))
    assert "forward_laplacian" in str(err.value) and "network=ferminet" in str(err.value)


def test_engine_local_energies_agree_across_laplacians_and_chunks():
    """The engine's wiring: forward_laplacian=ferminet (structured), auto (folx for Li's 3
    electrons) and folx, whole and chunked batches, give the same local energies (float64)."""
    base = ["system=Li", "scale=quick", "precision=float64", "batch_size=16", "network.width=8",
            "pretrain=none", "logger=none"]
    energies = {}
    for extra in (["forward_laplacian=folx", "energy_chunk=whole"],
                  ["forward_laplacian=auto", "energy_chunk=4"],
                  ["forward_laplacian=ferminet", "energy_chunk=whole"],
                  ["forward_laplacian=ferminet", "energy_chunk=4"]):
        engine = training.build_engine(validate(compose(base + extra)), reuse=False)
        spec = engine.programs.spec
        assert spec.forward_laplacian == ("ferminet" if "ferminet" in extra[0] else "folx")
        assert spec.energy_chunk == (4 if extra[1] == "energy_chunk=4" else 0)
        state = training.initial_state(engine)
        energies[tuple(extra)] = np.asarray(
            jax.jit(engine.programs.batch_local_energy)(state.params, state.walkers))
    first, *rest = energies.values()
    for other in rest:
        np.testing.assert_allclose(other, first, rtol=1e-9, atol=1e-9)
