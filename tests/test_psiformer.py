"""The Psiformer (network=psiformer): symmetry, cusp, Laplacian, curvature blocks, config, runs (float64)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ablate.config.compose import compose
from ablate.config.experiment import validate
from ablate.hamiltonian.local_energy import local_energy
from ablate.records.errors import ConfigError
from ablate.vmc import training
from ablate.wavefunction.attention import AttentionLayout, simple_ee_jastrow
from ablate.wavefunction.networks import make_ansatz, param_count, psiformer_layout
from conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["network=psiformer", "precision=float64", "network.num_layers=2", "network.num_heads=2",
         "network.heads_dim=4", "network.determinants=2"]
VARIANTS = [
    ["system=Li"],
    ["system=LiH", "network.layer_norm=true"],
    ["system=B", "network.full_det=false", "network.envelope=diagonal", "network.mlp_hidden_dims=[8,6]"],
    ["system=Be", "network.jastrow=none", "network.distance_features=false"],
]


def build(overrides, key=0):
    exp = validate(compose(SMALL + overrides), device_count=1)
    ansatz = make_ansatz(exp)
    return exp, ansatz, ansatz.init(jax.random.PRNGKey(key))


def walker(n, seed=0, scale=1.5):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(n, 3)) * scale)


@pytest.mark.parametrize("overrides", VARIANTS, ids=lambda o: " ".join(o))
def test_same_spin_exchange_flips_the_sign_and_keeps_the_amplitude(overrides):
    exp, ansatz, params = build(overrides)
    apply = jax.jit(ansatz.apply)
    n_up, n_down = exp.system.electrons
    pairs = [(i, j) for g in (range(n_up), range(n_up, n_up + n_down)) for i in g for j in g if i < j]
    assert pairs
    for seed, (i, j) in enumerate(pairs):
        x = walker(exp.system.n_electrons, seed)
        perm = np.arange(exp.system.n_electrons)
        perm[[i, j]] = perm[[j, i]]
        (s1, l1), (s2, l2) = apply(params, x), apply(params, x[perm])
        assert float(s1) == -float(s2)
        assert float(l1) == pytest.approx(float(l2), abs=1e-10)


def test_opposite_spin_exchange_is_not_a_symmetry():
    """The spin is an input: swapping an up and a down electron changes |psi|."""
    exp, ansatz, params = build(["system=LiH"])
    x = walker(4, 5)
    _, l1 = ansatz.apply(params, x)
    _, l2 = ansatz.apply(params, x[jnp.asarray([2, 1, 0, 3])])
    assert abs(float(l1) - float(l2)) > 1e-6


@pytest.mark.parametrize("layer_norm", [False, True])
def test_attention_layers_are_permutation_equivariant(layer_norm):
    """Permuting the electrons' input rows (any permutation) permutes the stream's rows."""
    layout = AttentionLayout(num_layers=3, num_heads=2, heads_dim=5, mlp_hidden_dims=(7,), layer_norm=layer_norm)
    params = layout.init(jax.random.PRNGKey(3), 9, jnp.float64)
    inputs = jnp.asarray(np.random.default_rng(1).normal(size=(6, 9)))
    perm = np.random.default_rng(2).permutation(6)
    out = layout.apply(params, inputs)
    assert out.shape == (6, 10)
    np.testing.assert_allclose(layout.apply(params, inputs[perm]), out[perm], rtol=1e-12, atol=1e-12)
    # ...and the rows do see each other: moving one electron changes every row
    moved = inputs.at[0].add(0.5)
    changed = jnp.max(jnp.abs(layout.apply(params, moved) - out), axis=1)
    assert float(jnp.min(changed[1:])) > 1e-6


def _cusp_slope(apply, params, x, i, j, u, s, node=False):
    """One-sided slope of log|psi| as electrons i, j separate along u around their midpoint:
    d log|psi| / d r_ij at r_ij ~ 1.5 s (r_ij = |r_i - r_j|, bohr). ``node``: same spins, where the
    determinant is odd in r_i - r_j (psi ~ r_ij (1 + r_ij / 4) for the Jastrow): log 2 taken off."""
    centre = (x[i] + x[j]) / 2

    def log_at(r):
        return float(apply(params, x.at[i].set(centre + r * u / 2).at[j].set(centre - r * u / 2))[1])

    return (log_at(2 * s) - log_at(s) - (np.log(2.0) if node else 0.0)) / s


@pytest.mark.parametrize("i, j, expected", [(0, 2, 0.5), (0, 1, 0.25)])
def test_the_jastrow_factor_gives_the_electron_electron_cusp(i, j, expected):
    """Kato: d log psi / d r_ij -> 1/2 (opposite spins) as r_ij -> 0, for the whole wave function,
    spherically averaged (here over u and -u: the smooth determinant part's slope changes sign
    with u, the Jastrow's does not); same spins: psi ~ r_ij (1 + r_ij / 4), the p-wave cusp.
    Without the Jastrow there is no cusp."""
    exp, ansatz, params = build(["system=LiH"])
    params["jastrow"] = {"alpha_par": jnp.asarray(0.7), "alpha_anti": jnp.asarray(1.3)}
    apply = jax.jit(ansatz.apply)
    x = walker(4, 11)
    s, node = 1e-5, expected == 0.25
    for seed in range(3):
        u = np.random.default_rng(seed).normal(size=3)
        u = jnp.asarray(u / np.linalg.norm(u))
        slope = (_cusp_slope(apply, params, x, i, j, u, s, node) + _cusp_slope(apply, params, x, i, j, -u, s, node)) / 2
        assert slope == pytest.approx(expected, abs=1e-3)
    _, plain, bare = build(["system=LiH", "network.jastrow=none"])
    apply = jax.jit(plain.apply)
    u = jnp.asarray([0.0, 0.0, 1.0])
    slope = (_cusp_slope(apply, bare, x, i, j, u, s, node) + _cusp_slope(apply, bare, x, i, j, -u, s, node)) / 2
    assert abs(slope) < 1e-2


def test_the_jastrow_factor_is_the_papers_form():
    r = jnp.asarray([[0.0, 2.0, 3.0], [2.0, 0.0, 0.5], [3.0, 0.5, 0.0]])[..., None]
    p = {"alpha_par": jnp.asarray(2.0), "alpha_anti": jnp.asarray(-1.0)}    # |alpha| is used
    got = float(simple_ee_jastrow(p, r, n_up=2))
    expected = -0.25 * 4 / (2 + 2.0) - 0.5 * 1 / (1 + 3.0) - 0.5 * 1 / (1 + 0.5)
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("overrides", [["system=Li"], ["system=LiH", "network.layer_norm=true"]])
def test_forward_laplacian_equals_the_hessian_trace(overrides):
    exp, ansatz, params = build(overrides, key=1)
    forward = jax.jit(local_energy(ansatz.apply, exp.system, "forward", jnp.float64))
    hessian = jax.jit(local_energy(ansatz.apply, exp.system, "hessian", jnp.float64))
    sparse = jax.jit(local_energy(ansatz.apply, exp.system, "forward", jnp.float64, sparsity=6))
    for x in np.random.default_rng(3).normal(size=(3, exp.system.n_electrons, 3)):
        a, b = float(forward(params, jnp.asarray(x))), float(hessian(params, jnp.asarray(x)))
        assert np.isfinite(a) and a == pytest.approx(b, rel=1e-9, abs=1e-9)
        assert float(sparse(params, jnp.asarray(x))) == pytest.approx(a, rel=1e-9, abs=1e-9)


def test_parameters_follow_the_keys():
    exp, ansatz, params = build(["system=LiH", "network.mlp_hidden_dims=[12]", "network.layer_norm=true"])
    layout = psiformer_layout(exp.network)
    assert layout.width == 8 and len(params["attention"]["layers"]) == 2
    layer = params["attention"]["layers"][0]
    assert params["attention"]["embed"]["w"].shape == (2 * 4 + 1, 8)   # 2 atoms x (vector, |r|) + spin
    assert [m["w"].shape for m in layer["mlp"]] == [(8, 12), (12, 8)]
    assert {"q", "k", "v", "o", "ln1", "ln2"} <= set(layer)
    assert params["orb_up"]["w"].shape == (8, 2 * 4)                    # K = 2 full determinants of 4
    _, _, wider = build(["system=LiH", "network.heads_dim=8"])
    assert param_count(wider) > param_count(params) - 2 * 12 * 8
    _, _, plain = build(["system=LiH", "network.jastrow=none"])
    assert "jastrow" not in plain


def test_kfac_registers_attention_as_dense_layers():
    """What kfac-jax preconditions (docs/architecture.md says the same): the embedding, q, k, v, o,
    the MLPs and the orbitals are Kronecker-factored repeated dense layers; LayerNorm and the
    envelopes get diagonal scale-and-shift blocks; the Jastrow's two scalars a naive diagonal."""
    from ablate.runtime.jax_setup import setup_jax
    from ablate.vmc.optimizers import kfac_blocks

    cfg = compose(["system=LiH", "network=psiformer", "network.layer_norm=true", "network.heads_dim=4",
                   "pretrain=none", "logger=none", "batch_size=16", "precision=float64"])
    setup_jax(precision="float64")
    engine = training.build_engine(validate(cfg), reuse=False)
    state = training.init_optimizer(engine, training.initial_state(engine))
    blocks = kfac_blocks(engine.optimizer, state.params)
    assert len(blocks) == len(jax.tree.leaves(state.params))
    kind = lambda pattern: {v for k, v in blocks.items() if pattern in k}
    for dense in ("['q']", "['k']", "['v']", "['o']", "['mlp']", "['embed']", "['orb_up']"):
        assert kind(dense) == {"RepeatedDenseKroneckerFactored"}, (dense, blocks)
    assert kind("['ln1']") == kind("['env_up']") == {"ScaleAndShiftDiagonal"}
    assert kind("['jastrow']") == {"NaiveDiagonal"}


def test_a_key_of_another_ansatz_is_one_line_naming_it():
    with pytest.raises(ConfigError, match=r"network.width=64: does not apply to network=psiformer"):
        compose(["network=psiformer", "network.width=64"])
    with pytest.raises(ConfigError, match=r"network.num_heads=4: does not apply to network=ferminet"):
        compose(["network.num_heads=4"])
    with pytest.raises(ConfigError, match=r"network.jastrow='none': does not apply to network=slater_jastrow"):
        compose(["network=slater_jastrow", "network.jastrow=none"])
    with pytest.raises(ConfigError, match=r"network.heads_dim=0: must be an integer >= 1"):
        validate(compose(["network=psiformer", "network.heads_dim=0"]), device_count=1)
    with pytest.raises(ConfigError, match=r"network.mlp_hidden_dims"):
        validate(compose(["network=psiformer", "network.mlp_hidden_dims=[4,0]"]), device_count=1)
    # a preset may set keys of other ansatzes: paper scale sets both FermiNet's and the Psiformer's
    exp = validate(compose(["network=psiformer", "scale=paper"]), device_count=1)
    assert (exp.network.num_layers, exp.network.num_heads, exp.network.heads_dim) == (4, 4, 64)
    assert exp.network.determinants == 16


def test_cli_refuses_a_key_that_does_not_apply_with_exit_2_and_writes_nothing(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ablate", "network=psiformer", "network.pairwise_width=16",
                          f"output_root={tmp_path}"], capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "network.pairwise_width=16: does not apply to network=psiformer" in lines[0], lines
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("optim", ["kfac", "adam"])
def test_psiformer_runs_through_the_engine(optim, tmp_path):
    """A tiny run with HF pretraining, KFAC or Adam: completes, records cost and parameters, and a
    second run of the same spec reuses the compiled engine."""
    from ablate.vmc.run import run_experiment

    overrides = [o for o in TINY if not o.startswith(("network.width", "network.depth", "network.pairwise"))]
    overrides = [o for o in overrides if o != "pretrain=none"] + [
        "network=psiformer", "network.num_layers=1", "network.heads_dim=4", f"optim={optim}",
        "pretrain.iterations=5", f"output_root={tmp_path}"]
    summary = run_experiment(validate(compose(overrides)))
    assert summary.status == "completed" and summary.network == "psiformer"
    assert np.isfinite(summary.energy) and summary.param_count > 0
    assert summary.pretrain_loss is not None and np.isfinite(summary.pretrain_loss)   # HF pretraining ran
    (folder,) = list((tmp_path / "single").iterdir())
    on_disk = json.loads((folder / "summary.json").read_text())
    assert on_disk["training_flops"] > 0 and on_disk["device_seconds"] > 0
    assert (folder / "fingerprint.json").exists() and any((folder / "checkpoints").iterdir())
    assert on_disk["config"]["network.type"] == "psiformer"
    engines = len(training._ENGINES)
    run_experiment(validate(compose(overrides + ["seed=1", f"run_dir={tmp_path / 'again'}"])))
    assert len(training._ENGINES) == engines


def test_an_interrupted_psiformer_run_resumes_exactly_from_its_checkpoint(tmp_path):
    """The Psiformer's parameter pytree (attention layers, Jastrow scalars) and KFAC state go
    through a checkpoint and come back: the resumed run repeats the uninterrupted one's energies."""
    from conftest import StopAt, assert_same_training

    from ablate.vmc.run import run_experiment

    overrides = [o for o in TINY if not o.startswith(("network.width", "network.depth", "network.pairwise"))]
    common = overrides + ["network=psiformer", "network.num_layers=1", "network.heads_dim=4",
                          "network.layer_norm=true", "optim.iterations=20", "checkpoint_every=10",
                          "evaluation.iterations=6", f"output_root={tmp_path}"]
    whole = run_experiment(validate(compose(common + [f"run_dir={tmp_path / 'whole'}"])))
    cut = compose(common + [f"run_dir={tmp_path / 'cut'}"])
    with pytest.raises(KeyboardInterrupt):
        run_experiment(validate(cut), callbacks=StopAt(14))
    resumed = run_experiment(validate(cut))
    assert_same_training(tmp_path / "whole", tmp_path / "cut", 20)
    assert resumed.energy == pytest.approx(whole.energy, rel=1e-10)


@pytest.mark.slow
def test_quick_scale_psiformer_reaches_the_exact_energy_of_helium(tmp_path):
    """He at quick scale (network=psiformer, 1500 KFAC iterations): within 2 mHa of exact."""
    from ablate.vmc.run import run_experiment

    summary = run_experiment(validate(compose(["system=He", "network=psiformer", "logger=none", "progress=false",
                                      f"output_root={tmp_path}", "optim.iterations=1500"])))
    assert summary.status == "completed"
    assert summary.error_mha > -4 * summary.error_stderr_mha - 0.2
    assert summary.error_mha < 2.0, summary


def test_a_sweep_whose_axis_does_not_apply_to_the_network_stops_before_it_starts(tmp_path):
    """+sweep=width under network=psiformer: one line naming the key, the value and the grid point;
    the Psiformer's own size keys sweep (network.heads_dim)."""
    from sweeps.plan import build_plan

    args = ["+sweep=width", "network=psiformer", f"output_root={tmp_path}", "sweep.gpus=[]"]
    with pytest.raises(ConfigError, match=r"network.width=8: does not apply to network=psiformer.*sweep point"):
        build_plan(compose(args), args)
    args = ["+sweep=architecture", "network.pairwise_width=4", f"output_root={tmp_path}", "sweep.gpus=[]"]
    with pytest.raises(ConfigError, match=r"network.pairwise_width=4: does not apply to network=psiformer"):
        build_plan(compose(args), args)
    args = ["+sweep=width", "network=psiformer", "~sweep.space.network.width", "+sweep.space.network.heads_dim=[4,8]",
            f"output_root={tmp_path}", "sweep.gpus=[]"]
    plan = build_plan(compose(args), args)
    assert plan.spec.n_planned() == 4 and not any(tmp_path.iterdir())


def test_every_builtin_sweep_runs_under_network_psiformer_or_says_which_key_does_not_apply(tmp_path):
    """``+sweep=NAME network=psiformer``: a sweep over keys every ansatz reads plans as it is; a sweep
    over FermiNet's sizes stops with one line naming the key (no sweep is left half-valid)."""
    from sweeps.plan import build_plan

    sizes = {"network.width", "network.depth", "network.pairwise_width"}
    planned, refused = [], []
    for name in sorted(p.stem for p in (ROOT / "conf" / "sweep").glob("*.yaml")):
        args = [f"+sweep={name}", "network=psiformer", f"output_root={tmp_path}", "sweep.gpus=[]"]
        try:
            plan = build_plan(compose(args), args)
        except ConfigError as err:
            assert err.key in sizes and "does not apply to network=psiformer" in str(err), (name, str(err))
            assert "\n" not in str(err)
            refused.append(name)
            continue
        assert not {d.key for d in plan.spec.dimensions} & sizes, name
        planned.append(name)
    assert {"width", "depth", "pairwise", "width_depth", "tune_cost"} <= set(refused)
    assert {"architecture", "determinants", "optimizer", "features", "batch", "sampler"} <= set(planned)
    assert not any(tmp_path.iterdir())
