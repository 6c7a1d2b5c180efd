"""The trainer: pretrain -> burn-in -> train -> evaluate over one state dict.

`build_engine` compiles the pieces of one experiment once (sampler, loss, optimiser,
evaluation step); the phase functions below are short loops over them. The training state
is a `TrainState` (a NamedTuple pytree ``params, opt_state, walkers, key, width, step``);
its ``_asdict()`` is what a checkpoint stores. Walkers are sharded over all visible devices
along the batch axis (``jax.sharding``), parameters replicated: data parallel by the XLA
partitioner. The engine reads only the typed `Experiment` (ablate.config), never a DictConfig.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ablate import checkpoint, mcmc
from ablate.config import Experiment
from ablate.errors import NonFiniteEnergy, RunFailed
from ablate.hamiltonian import local_energy
from ablate.jax_setup import dtype_of
from ablate.networks import Ansatz, make_ansatz
from ablate.optimizers import Optimizer, make_loss, make_optimizer
from ablate.pretrain import make_pretrain_step, targets


class Pruned(RunFailed):
    """Training was stopped early by a callback (an Optuna pruner)."""


class TrainState(NamedTuple):
    """Everything a run needs to go on exactly: a pytree, and what a checkpoint stores."""

    params: Any        # network parameters (replicated over devices)
    opt_state: Any     # optimiser state (None before the optimiser is initialised)
    walkers: Any       # (batch, n_electrons, 3) bohr, sharded over devices along the batch
    key: Any           # PRNG key
    width: Any         # MCMC move width, bohr
    step: Any          # training iterations done (int32)

    @classmethod
    def from_dict(cls, saved: dict) -> "TrainState":
        return cls(**{f: saved[f] for f in cls._fields})


@dataclasses.dataclass
class Engine:
    """Compiled pieces of one experiment."""

    experiment: Experiment
    ansatz: Ansatz
    dtype: object
    walker_sharding: object
    replicated: object
    mcmc_iteration: Callable      # (params, walkers, key, width) -> walkers, key, width, pmove
    train_step: Callable          # (TrainState) -> TrainState, device metrics
    eval_step: Callable           # (params, walkers, key, width) -> walkers, key, metrics
    optimizer: Optimizer
    loss: Callable                # (params, key, walkers) -> (energy, LossAux), VMC gradient
    local_energy: Callable        # (params, x) -> E_L (Hartree) of one walker


class Progress:
    """Prints one progress line every `every_s` seconds (and always on the last step).

    ``listener(phase, step, total)``, when given, hears of every step of every phase (the sweep
    worker forwards the phase to the driver's study line); it must be cheap.
    """

    def __init__(self, enabled: bool, every_s: float = 5.0, listener: Callable | None = None):
        self.enabled, self.every_s, self.last = enabled, every_s, 0.0
        self.listener = listener

    @property
    def wanted(self) -> bool:
        """Whether anyone reads progress (so callers may skip building the text)."""
        return self.enabled or self.listener is not None

    def __call__(self, phase: str, step: int, total: int, text: str | Callable[[], str]) -> None:
        if self.listener is not None:
            self.listener(phase, step, total)
        now = time.time()
        if self.enabled and (now - self.last >= self.every_s or step + 1 == total):
            self.last = now
            print(f"[{phase:8s}] {step + 1:>7d}/{total:<7d} {text() if callable(text) else text}", flush=True)


def build_engine(experiment: Experiment) -> Engine:
    run, mc = experiment.run, experiment.mcmc
    dtype = dtype_of(run.precision)
    ansatz = make_ansatz(experiment)
    e_local = local_energy(ansatz.apply, experiment.system, run.laplacian, dtype)
    batch_e_local = jax.vmap(e_local, in_axes=(None, 0))
    # issue 9: the sampler (mcmc.method, mcmc.moves); `width` below is the MH move width or the
    # HMC step size, adapted by the same rule toward that method's target acceptance.
    sample = mcmc.make_mcmc(ansatz.apply, method=mc.method, steps=mc.steps, moves=mc.moves,
                            path_length=mc.hmc_path_length)
    target, adapt = mc.target, mc.adapt

    mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("walkers",))
    walker_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("walkers"))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

    def mcmc_iteration(params, walkers, key, width, adapt_now=adapt):
        key, kmove = jax.random.split(key)
        walkers, pmove = sample(params, walkers, kmove, width)
        if adapt_now:
            width = mcmc.adapt_width(width, pmove, target)
        return walkers, key, width, pmove

    loss = make_loss(ansatz.apply, e_local, experiment.optim.clip_width)
    optimizer = make_optimizer(experiment.optim, loss, dtype)
    jit_mcmc = jax.jit(mcmc_iteration, static_argnames="adapt_now")

    def make_train_step(sample):
        def train_step(state: TrainState):
            walkers, key, width, pmove = sample(state.params, state.walkers, state.key, state.width)
            key, kopt = jax.random.split(key)
            params, opt_state, value, aux = optimizer.step(
                state.params, state.opt_state, walkers, kopt, state.step)
            new = TrainState(params, opt_state, walkers, key, width, state.step + 1)
            return new, {"energy": value, "variance": aux.variance, "pmove": pmove,
                         "move_width": width, "learning_rate": optimizer.schedule(state.step)}
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


def initial_state(engine: Engine) -> TrainState:
    """Fresh params, walkers around the nuclei; no optimiser state yet (see `init_optimizer`)."""
    exp = engine.experiment
    key = jax.random.PRNGKey(exp.run.seed)
    key, kparams, kwalkers = jax.random.split(key, 3)
    params = jax.device_put(engine.ansatz.init(kparams), engine.replicated)
    walkers = mcmc.init_walkers(kwalkers, exp.system, exp.run.batch_size, exp.mcmc.init_width,
                                engine.dtype)
    walkers = jax.device_put(walkers, engine.walker_sharding)
    key, width, step = jax.device_put(
        (key, jnp.asarray(exp.mcmc.initial_width, engine.dtype), jnp.asarray(0, jnp.int32)),
        engine.replicated)
    return TrainState(params, None, walkers, key, width, step)


def to_device(engine: Engine, state: TrainState) -> TrainState:
    """Puts a (host) state on the devices: walkers sharded over the batch, all else
    replicated. Every array is committed to the same mesh as the step outputs, so the
    compiled steps are reused rather than traced again for new input shardings."""
    walkers = jax.device_put(jnp.asarray(state.walkers), engine.walker_sharding)
    params, opt_state, key, width, step = jax.device_put(
        (state.params, state.opt_state, state.key, jnp.asarray(state.width, engine.dtype),
         jnp.asarray(state.step, jnp.int32)), engine.replicated)
    return TrainState(params, opt_state, walkers, key, width, step)


def pretrain(engine: Engine, state: TrainState, hf, recorder, progress: Progress) -> TrainState:
    """Fits the network orbitals to the HF orbitals; walkers follow the network's |psi|^2."""
    exp = engine.experiment
    electrons = exp.system.electrons
    init, step = make_pretrain_step(engine.ansatz.orbitals, exp.pretrain.lr)
    opt_state = init(state.params)
    params, walkers, key, width = state.params, state.walkers, state.key, state.width
    total = exp.pretrain.iterations
    for i in range(total):
        walkers, key, width, pmove = engine.mcmc_iteration(params, walkers, key, width)
        up, down = targets(hf, np.asarray(walkers), electrons, engine.ansatz.full_det)
        params, opt_state, loss = step(params, opt_state, walkers,
                                       jnp.asarray(up, engine.dtype),
                                       jnp.asarray(down, engine.dtype))
        loss = float(loss)
        recorder.log("pretrain", i, {"loss": loss})
        progress("pretrain", i, total, f"loss {loss:.5f}  pmove {float(pmove):.2f}")
    return state._replace(params=params, walkers=walkers, key=key, width=width)


def burn_in(engine: Engine, state: TrainState, iterations: int, progress: Progress,
            phase: str) -> TrainState:
    """MCMC without parameter updates (the move width still adapts)."""
    walkers, key, width = state.walkers, state.key, state.width
    for i in range(iterations):
        walkers, key, width, pmove = engine.mcmc_iteration(state.params, walkers, key, width)
        if progress.wanted and (i + 1 == iterations or i % 50 == 0):
            progress(phase, i, iterations, lambda: f"pmove {float(pmove):.2f}  width {float(width):.3f}")
    return state._replace(walkers=walkers, key=key, width=width)


def _host_row(metrics: dict, step_time: float) -> dict:
    row = {k: float(v) for k, v in jax.device_get(metrics).items()}
    row["step_time_s"] = step_time
    return row


def train(engine: Engine, state: TrainState, recorder, run_dir, callbacks, progress: Progress,
          timing: dict) -> TrainState:
    """Training iterations from state.step to optim.iterations, checkpointing as it goes.

    Metrics of step t are read after step t+1 is dispatched, so the host never stalls the
    device; a non-finite energy raises NonFiniteEnergy naming the step.
    """
    exp = engine.experiment
    total = exp.optim.iterations
    every = exp.run.checkpoint_every
    nan_step = exp.debug.inject_nan_step
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

    start = int(state.step)
    for step in range(start, total):
        if nan_step is not None and step >= nan_step:
            state = state._replace(walkers=state.walkers * jnp.nan)
        state, metrics = engine.train_step(state)
        if pending is not None:
            drain(pending)
        pending = (step, metrics)
        if (step + 1) % every == 0 or step + 1 == total:
            drain(pending)
            pending = None
            save_checkpoint(run_dir, recorder, "train", state, clock_extra(timing))
    if pending is not None:
        drain(pending)
    return state


def clock_extra(timing: dict | None) -> dict:
    """The phase clock's totals for a checkpoint (ablate.cost.PhaseClock in ``timing["clock"]``)."""
    clock = (timing or {}).get("clock")
    return {"wall_s_by_phase": clock.snapshot()} if clock is not None else {}


def save_checkpoint(run_dir, recorder, phase: str, state: TrainState, extra: dict | None = None):
    """Flushes the tables, then writes the checkpoint (so tables never run ahead of it)."""
    recorder.flush()
    serial = int(state.step) + (10_000_000 if phase == "eval" else 0)
    data = {"phase": phase, **state._asdict(), **(extra or {}),
            "run_facts": getattr(recorder, "run_facts", dict)()}
    checkpoint.save(run_dir / "checkpoints", serial, data)


def evaluate(engine: Engine, state: TrainState, recorder, run_dir, progress: Progress,
             done: list | None = None, timing: dict | None = None) -> tuple[TrainState, list]:
    """Frozen-parameter MCMC: burn-in, then evaluation.iterations batch-mean energies (Hartree).

    Returns the final state and the list of per-iteration energies, resuming from `done`.
    ``timing["clock"]`` (optional) is the run's phase clock, saved with each checkpoint.
    """
    exp = engine.experiment
    total, every = exp.evaluation.iterations, exp.run.checkpoint_every
    energies = list(done or [])
    if not energies:
        state = burn_in(engine, state, exp.evaluation.burn_in, progress, "eval-burn")
    walkers, key = state.walkers, state.key
    for i in range(len(energies), total):
        walkers, key, metrics = engine.eval_step(state.params, walkers, key, state.width)
        row = {k: float(v) for k, v in jax.device_get(metrics).items()}
        if not np.isfinite(row["energy"]):
            raise NonFiniteEnergy(f"non-finite energy ({row['energy']}) at evaluation step {i}")
        energies.append(row["energy"])
        recorder.log("eval", i, row)
        progress("eval", i, total, f"E {row['energy']:.5f} Ha  pmove {row['pmove']:.2f}")
        if (i + 1) % every == 0 and i + 1 < total:
            snapshot = state._replace(walkers=walkers, key=key, step=jnp.asarray(i + 1))
            save_checkpoint(run_dir, recorder, "eval", snapshot,
                            {"eval_energies": energies, "train_step": int(state.step), **clock_extra(timing)})
    return state._replace(walkers=walkers, key=key), energies


def init_optimizer(engine: Engine, state: TrainState) -> TrainState:
    key, kinit = jax.random.split(state.key)
    opt_state = engine.optimizer.init(state.params, kinit, state.walkers)
    return to_device(engine, state._replace(opt_state=opt_state, key=key))
