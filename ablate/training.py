"""The trainer: pretrain -> burn-in -> train -> evaluate over one state dict.

`build_engine` compiles the pieces of one experiment once (sampler, loss, optimiser,
evaluation step); the phase functions below are short loops over them. The training state
is a plain dict pytree ``{params, opt_state, walkers, key, width, step}``, which is what a
checkpoint stores. Walkers are sharded over all visible devices along the batch axis
(``jax.sharding``), parameters replicated: data parallel by the XLA partitioner.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ablate import checkpoint, mcmc
from ablate.errors import NonFiniteEnergy, RunFailed
from ablate.hamiltonian import local_energy
from ablate.networks import Ansatz, make_ansatz
from ablate.optimizers import Optimizer, make_loss, make_optimizer


class Pruned(RunFailed):
    """Training was stopped early by a callback (an Optuna pruner)."""


@dataclasses.dataclass
class Engine:
    """Compiled pieces of one experiment."""

    experiment: object
    ansatz: Ansatz
    dtype: object
    walker_sharding: object
    replicated: object
    mcmc_iteration: Callable      # (params, walkers, key, width) -> walkers, key, width, pmove
    train_step: Callable          # (state) -> state, device metrics
    eval_step: Callable           # (params, walkers, key, width) -> walkers, key, metrics
    optimizer: Optimizer
    loss: Callable                # (params, key, walkers) -> (energy, LossAux), VMC gradient
    local_energy: Callable        # (params, x) -> E_L (Hartree) of one walker


class Progress:
    """Prints one progress line every `every_s` seconds (and always on the last step)."""

    def __init__(self, enabled: bool, every_s: float = 5.0):
        self.enabled, self.every_s, self.last = enabled, every_s, 0.0

    def __call__(self, phase: str, step: int, total: int, text: str) -> None:
        now = time.time()
        if self.enabled and (now - self.last >= self.every_s or step + 1 == total):
            self.last = now
            print(f"[{phase:8s}] {step + 1:>7d}/{total:<7d} {text}", flush=True)


def build_engine(experiment) -> Engine:
    cfg = experiment.cfg
    dtype = jnp.float64 if cfg.precision == "float64" else jnp.float32
    ansatz = make_ansatz(experiment)
    e_local = local_energy(ansatz.apply, experiment.system, cfg.laplacian, dtype)
    batch_e_local = jax.vmap(e_local, in_axes=(None, 0))
    # issue 9: the sampler (mcmc.method, mcmc.moves); `width` below is the MH move width or
    # the HMC step size, adapted by the same rule toward that method's target acceptance.
    hmc = cfg.mcmc.method == "hmc"
    sample = mcmc.make_mcmc(ansatz.apply, method=str(cfg.mcmc.method), steps=int(cfg.mcmc.steps),
                            moves=str(cfg.mcmc.moves), path_length=int(cfg.mcmc.hmc_path_length))
    target = float(cfg.mcmc.hmc_target_acceptance if hmc else cfg.mcmc.target_acceptance)
    adapt = bool(cfg.mcmc.adapt)

    mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("walkers",))
    walker_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("walkers"))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

    def mcmc_iteration(params, walkers, key, width, adapt_now=adapt):
        key, kmove = jax.random.split(key)
        walkers, pmove = sample(params, walkers, kmove, width)
        if adapt_now:
            width = mcmc.adapt_width(width, pmove, target)
        return walkers, key, width, pmove

    loss = make_loss(ansatz.apply, e_local, float(cfg.optim.clip_width))
    optimizer = make_optimizer(cfg.optim, loss, dtype)
    jit_mcmc = jax.jit(mcmc_iteration, static_argnames="adapt_now")

    def make_train_step(sample):
        def train_step(state):
            walkers, key, width, pmove = sample(
                state["params"], state["walkers"], state["key"], state["width"])
            key, kopt = jax.random.split(key)
            params, opt_state, value, aux = optimizer.step(
                state["params"], state["opt_state"], walkers, kopt, state["step"])
            new = dict(state, params=params, opt_state=opt_state, walkers=walkers, key=key,
                       width=width, step=state["step"] + 1)
            return new, {"energy": value, "variance": aux.variance, "pmove": pmove,
                         "move_width": width,
                         "learning_rate": optimizer.schedule(state["step"])}
        return train_step

    # kfac-jax compiles its own step and must not be wrapped in jit: sample (jitted), then
    # step. The optax step is pure, so sampling and update compile into one program.
    if optimizer.name == "kfac":
        train_step = make_train_step(jit_mcmc)
    else:
        train_step = jax.jit(make_train_step(mcmc_iteration))

    @jax.jit
    def eval_step(params, walkers, key, width):
        walkers, key, _, pmove = mcmc_iteration(params, walkers, key, width, adapt_now=False)
        energies = batch_e_local(params, walkers)
        mean = jnp.mean(energies)
        return walkers, key, {"energy": mean, "variance": jnp.mean((energies - mean) ** 2),
                              "pmove": pmove}

    return Engine(experiment, ansatz, dtype, walker_sharding, replicated, jit_mcmc,
                  train_step, eval_step, optimizer, loss, e_local)


def initial_state(engine: Engine) -> dict:
    """Fresh params, walkers around the nuclei, optimiser state (after pretraining, see below)."""
    cfg = engine.experiment.cfg
    key = jax.random.PRNGKey(int(cfg.seed))
    key, kparams, kwalkers = jax.random.split(key, 3)
    params = jax.device_put(engine.ansatz.init(kparams), engine.replicated)
    walkers = mcmc.init_walkers(kwalkers, engine.experiment.system, int(cfg.batch_size),
                                float(cfg.mcmc.init_width), engine.dtype)
    walkers = jax.device_put(walkers, engine.walker_sharding)
    width = cfg.mcmc.hmc_step_size if cfg.mcmc.method == "hmc" else cfg.mcmc.move_width  # issue 9
    scalars = {"key": key, "width": jnp.asarray(float(width), engine.dtype),
               "step": jnp.asarray(0, jnp.int32)}
    return {"params": params, "opt_state": None, "walkers": walkers,
            **jax.device_put(scalars, engine.replicated)}


def to_device(engine: Engine, state: dict) -> dict:
    """Puts a (host) state on the devices: walkers sharded over the batch, all else
    replicated. Every array is committed to the same mesh as the step outputs, so the
    compiled steps are reused rather than traced again for new input shardings."""
    rest = {k: v for k, v in state.items() if k != "walkers"}
    rest["width"] = jnp.asarray(rest["width"], engine.dtype)
    rest["step"] = jnp.asarray(rest["step"], jnp.int32)
    return {"walkers": jax.device_put(jnp.asarray(state["walkers"]), engine.walker_sharding),
            **jax.device_put(rest, engine.replicated)}


def pretrain(engine: Engine, state: dict, hf, recorder, progress: Progress) -> dict:
    """Fits the network orbitals to the HF orbitals; walkers follow the network's |psi|^2."""
    from ablate.pretrain import make_pretrain_step, targets

    cfg = engine.experiment.cfg
    electrons = engine.experiment.system.electrons
    init, step = make_pretrain_step(engine.ansatz.orbitals, float(cfg.pretrain.lr))
    opt_state = init(state["params"])
    params, walkers, key, width = state["params"], state["walkers"], state["key"], state["width"]
    total = int(cfg.pretrain.iterations)
    for i in range(total):
        walkers, key, width, pmove = engine.mcmc_iteration(params, walkers, key, width)
        up, down = targets(hf, np.asarray(walkers), electrons, engine.ansatz.full_det)
        params, opt_state, loss = step(params, opt_state, walkers,
                                       jnp.asarray(up, engine.dtype),
                                       jnp.asarray(down, engine.dtype))
        loss = float(loss)
        recorder.log("pretrain", i, {"loss": loss})
        progress("pretrain", i, total, f"loss {loss:.5f}  pmove {float(pmove):.2f}")
    return dict(state, params=params, walkers=walkers, key=key, width=width)


def burn_in(engine: Engine, state: dict, iterations: int, progress: Progress, phase: str) -> dict:
    """MCMC without parameter updates (the move width still adapts)."""
    walkers, key, width = state["walkers"], state["key"], state["width"]
    for i in range(iterations):
        walkers, key, width, pmove = engine.mcmc_iteration(state["params"], walkers, key, width)
        if progress.enabled and (i + 1 == iterations or i % 50 == 0):
            progress(phase, i, iterations, f"pmove {float(pmove):.2f}  width {float(width):.3f}")
    return dict(state, walkers=walkers, key=key, width=width)


def _host_row(metrics: dict, step_time: float) -> dict:
    row = {k: float(v) for k, v in jax.device_get(metrics).items()}
    row["step_time_s"] = step_time
    return row


def train(engine: Engine, state: dict, recorder, run_dir, callbacks, progress: Progress,
          timing: dict) -> dict:
    """Training iterations from state['step'] to optim.iterations, checkpointing as it goes.

    Metrics of step t are read after step t+1 is dispatched, so the host never stalls the
    device; a non-finite energy raises NonFiniteEnergy naming the step.
    """
    cfg = engine.experiment.cfg
    total = int(cfg.optim.iterations)
    every = int(cfg.checkpoint_every)
    nan_step = cfg.debug.get("inject_nan_step")
    on_step = getattr(callbacks, "on_train_step", None) if callbacks else None
    pending, last = None, time.perf_counter()

    def drain(pending):
        nonlocal last
        step, metrics = pending
        now = time.perf_counter()
        row = _host_row(metrics, now - last)
        last = now
        if not np.isfinite(row["energy"]):
            raise NonFiniteEnergy(f"non-finite energy ({row['energy']}) at training step {step}")
        if timing.get("first_step_done") is None:
            timing["first_step_done"] = time.time()
        else:
            timing["step_times"].append(row["step_time_s"])
        recorder.log("train", step, row)
        progress("train", step, total,
                 f"E {row['energy']:.5f} Ha  var {row['variance']:.4f}  pmove {row['pmove']:.2f}"
                 f"  width {row['move_width']:.3f}  {1e3 * row['step_time_s']:.1f} ms/it")
        if on_step is not None and on_step(step, row):
            raise Pruned(f"pruned at training step {step}")

    start = int(state["step"])
    for step in range(start, total):
        if nan_step is not None and step >= int(nan_step):
            state = dict(state, walkers=state["walkers"] * jnp.nan)
        state, metrics = engine.train_step(state)
        if pending is not None:
            drain(pending)
        pending = (step, metrics)
        if (step + 1) % every == 0 or step + 1 == total:
            drain(pending)
            pending = None
            save_checkpoint(run_dir, recorder, "train", state)
    if pending is not None:
        drain(pending)
    return state


def save_checkpoint(run_dir, recorder, phase: str, state: dict, extra: dict | None = None):
    """Flushes the tables, then writes the checkpoint (so tables never run ahead of it)."""
    recorder.flush()
    serial = int(state["step"]) + (10_000_000 if phase == "eval" else 0)
    data = {"phase": phase, **state, **(extra or {})}
    checkpoint.save(run_dir / "checkpoints", serial, data)


def evaluate(engine: Engine, state: dict, recorder, run_dir, progress: Progress,
             done: list | None = None) -> tuple[dict, list]:
    """Frozen-parameter MCMC: burn-in, then evaluation.iterations batch-mean energies (Hartree).

    Returns the final state and the list of per-iteration energies, resuming from `done`.
    """
    cfg = engine.experiment.cfg
    total, every = int(cfg.evaluation.iterations), int(cfg.checkpoint_every)
    energies = list(done or [])
    if not energies:
        state = burn_in(engine, state, int(cfg.evaluation.burn_in), progress, "eval-burn")
    walkers, key = state["walkers"], state["key"]
    for i in range(len(energies), total):
        walkers, key, metrics = engine.eval_step(state["params"], walkers, key, state["width"])
        row = {k: float(v) for k, v in jax.device_get(metrics).items()}
        if not np.isfinite(row["energy"]):
            raise NonFiniteEnergy(f"non-finite energy ({row['energy']}) at evaluation step {i}")
        energies.append(row["energy"])
        recorder.log("eval", i, row)
        progress("eval", i, total, f"E {row['energy']:.5f} Ha  pmove {row['pmove']:.2f}")
        if (i + 1) % every == 0 and i + 1 < total:
            snapshot = dict(state, walkers=walkers, key=key)
            save_checkpoint(run_dir, recorder, "eval",
                            dict(snapshot, step=jnp.asarray(i + 1)),
                            {"eval_energies": energies, "train_step": int(state["step"])})
    return dict(state, walkers=walkers, key=key), energies


def init_optimizer(engine: Engine, state: dict) -> dict:
    key, kinit = jax.random.split(state["key"])
    opt_state = engine.optimizer.init(state["params"], kinit, state["walkers"])
    return to_device(engine, dict(state, opt_state=opt_state, key=key))
