"""The trainer: pretrain -> burn-in -> train -> evaluate over one state dict.

`build_engine` compiles the pieces of one experiment once (sampler, loss, optimiser,
evaluation step); the phase functions below are short loops over them. The training state
is a `TrainState` (a NamedTuple pytree ``params, opt_state, walkers, key, width, step``);
its ``_asdict()`` is what a checkpoint stores. Walkers are sharded over all visible devices
along the batch axis (``jax.sharding``), parameters replicated: data parallel by the XLA
partitioner. The engine reads only the typed `Experiment` (ablate.config.experiment), never a DictConfig.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ablate.config.experiment import Experiment, NetworkConfig
from ablate.hamiltonian import ferminet_laplacian
from ablate.hamiltonian.local_energy import (energy_chunk, forward_laplacian_of, local_energy, over_batch,
                                             sparsity_threshold)
from ablate.records.errors import NonFiniteEnergy, RunFailed
from ablate.records.run_record import RunDir
from ablate.records.stats import reblock
from ablate.runtime import program_store
from ablate.runtime.jax_setup import dtype_of
from ablate.vmc import checkpoint, mcmc, preemption
from ablate.vmc.optimizers import (Hyper, OptimSpec, Optimizer, hyper_of, make_curvature_function,
                                   make_loss, make_optimizer, schedule)
from ablate.vmc.pretrain import make_pretrain_step
from ablate.vmc.stretch import Stretch
from ablate.wavefunction.networks import Ansatz, make_ansatz


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


@dataclasses.dataclass(frozen=True)
class EngineSpec:
    """Everything that shapes the compiled programs of an experiment (the engine cache key).

    Two experiments with equal specs share one engine: same traced and compiled programs.
    Seeds, iteration counts and the scalar hyperparameters (`Hyper`, the MCMC target
    acceptance, the pretraining learning rate) are arguments of those programs, not part of
    the spec. ``laplacian_sparsity`` is folx's resolved threshold (0: dense),
    ``forward_laplacian`` the resolved forward Laplacian (``ferminet`` or ``folx``) and
    ``energy_chunk`` the resolved walkers per chunk of local energies (0: the whole batch).
    """

    system: tuple              # (name, symbols, charges, positions in bohr, electrons)
    network: NetworkConfig
    mcmc_method: str
    mcmc_moves: str
    mcmc_steps: int
    hmc_path_length: int
    mcmc_adapt: bool
    batch_size: int
    precision: str
    laplacian: str
    laplacian_sparsity: int
    forward_laplacian: str
    energy_chunk: int
    matmul_precision: str
    optim: OptimSpec
    devices: int


def engine_spec(experiment: Experiment) -> EngineSpec:
    """The spec of an experiment: the one place config values become engine arguments."""
    system, run = experiment.system, experiment.run
    return EngineSpec(
        system=(system.name, tuple(system.symbols), tuple(np.asarray(system.charges).tolist()),
                tuple(map(tuple, np.asarray(system.positions).tolist())), tuple(system.electrons)),
        network=experiment.network, mcmc_method=experiment.mcmc.method,
        mcmc_moves=experiment.mcmc.moves, mcmc_steps=experiment.mcmc.steps,
        hmc_path_length=experiment.mcmc.hmc_path_length, mcmc_adapt=experiment.mcmc.adapt,
        batch_size=run.batch_size, precision=run.precision, laplacian=run.laplacian,
        laplacian_sparsity=sparsity_threshold(run.laplacian_sparsity, system.n_electrons),
        forward_laplacian=forward_laplacian_of(run.forward_laplacian, experiment.network.type,
                                               system.n_electrons),
        energy_chunk=_energy_chunk(experiment),
        matmul_precision=run.matmul_precision, optim=OptimSpec.of(experiment.optim),
        devices=jax.device_count())


def _energy_chunk(experiment: Experiment) -> int:
    """``energy_chunk`` resolved for this machine: walkers per chunk over all devices (0: whole)."""
    run, devices = experiment.run, jax.device_count()
    width = experiment.network.stream_width
    per_device = energy_chunk(run.energy_chunk, experiment.system.n_electrons, width,
                              run.batch_size // devices, np.dtype(dtype_of(run.precision)).itemsize,
                              jax.default_backend(), run.laplacian)
    return per_device * devices


@dataclasses.dataclass(frozen=True)
class Programs:
    """The compiled pieces of an `EngineSpec`, shared by every run with that spec."""

    spec: EngineSpec
    ansatz: Ansatz
    dtype: object
    walker_sharding: object
    replicated: object
    mcmc_iteration: Callable   # (params, walkers, key, width, target[, adapt_now]) -> walkers, key, width, pmove
    train_step: Callable       # (TrainState, Hyper, target) -> TrainState, device metrics; donates the state
    eval_step: Callable        # (params, walkers, key, width) -> walkers, key, metrics
    pretrain_init: Callable    # params -> pretraining optimiser state
    pretrain_step: Callable    # (params, opt_state, walkers, key, width, orbs, lr, target, sampling, adapt) -> ..., loss, pmove
    optimizer: Optimizer
    loss: Callable             # (params, key, (walkers, clip_width)) -> (energy, LossAux)
    local_energy: Callable     # (params, x) -> E_L (Hartree) of one walker
    batch_local_energy: Callable  # (params, walkers) -> E_L per walker, in the spec's chunks
    precision_scope: Callable  # () -> context manager: the spec's float32 matmul precision
    # Facts measured once per spec and shared by its runs (ablate.vmc.cost keeps the FLOP count here,
    # so a reused engine lowers nothing again).
    memo: dict = dataclasses.field(default_factory=dict, compare=False, hash=False)


@dataclasses.dataclass
class Engine:
    """One experiment's view of the shared `Programs`: its scalars bound to the steps."""

    experiment: Experiment
    programs: Programs
    hyper: Hyper
    target_acceptance: object

    # The fields the phase functions use, with this run's scalars bound.
    ansatz = property(lambda self: self.programs.ansatz)
    dtype = property(lambda self: self.programs.dtype)
    walker_sharding = property(lambda self: self.programs.walker_sharding)
    replicated = property(lambda self: self.programs.replicated)
    optimizer = property(lambda self: self.programs.optimizer)
    local_energy = property(lambda self: self.programs.local_energy)
    eval_step = property(lambda self: self.programs.eval_step)

    def mcmc_iteration(self, params, walkers, key, width, adapt_now: bool | None = None):
        """(params, walkers, key, width) -> walkers, key, width, pmove (width adapted unless
        ``adapt_now=False``; by default as mcmc.adapt says)."""
        if adapt_now is None:
            return self.programs.mcmc_iteration(params, walkers, key, width, self.target_acceptance)
        return self.programs.mcmc_iteration(params, walkers, key, width, self.target_acceptance,
                                            adapt_now=adapt_now)

    def train_step(self, state: "TrainState"):
        """One training iteration (MCMC moves + optimiser update, one compiled program);
        the input state's buffers are donated (do not use it afterwards)."""
        return self.programs.train_step(state, self.hyper, self.target_acceptance)

    def loss(self, params, key, walkers):
        """(mean E_L, LossAux) with this run's clipping in the gradient."""
        return self.programs.loss(params, key, (walkers, self.hyper.clip_width))


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


def _matmul_scope(precision: str) -> Callable:
    """A context-manager factory fixing float32 matrix-product precision while tracing."""
    return lambda: jax.default_matmul_precision(precision)


def _traced_in(scope: Callable, fn: Callable) -> Callable:
    """fn, traced inside `scope` (jax reads the matmul precision when tracing)."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with scope():
            return fn(*args, **kwargs)
    return wrapped


def compile_programs(spec: EngineSpec, experiment: Experiment) -> Programs:
    """Builds (and jits) the programs of a spec; `experiment` gives the system and network,
    which the spec pins."""
    dtype = dtype_of(spec.precision)
    scope = _matmul_scope(spec.matmul_precision)
    ansatz = make_ansatz(experiment)
    kinetic = None
    if spec.forward_laplacian == "ferminet":
        net = experiment.network
        kinetic = ferminet_laplacian.make_kinetic(experiment.system, net, dtype,
                                                  net.distance_features)
    e_local = local_energy(ansatz.apply, experiment.system, spec.laplacian, dtype,
                           sparsity=spec.laplacian_sparsity, kinetic=kinetic)
    batch_e_local = over_batch(e_local, spec.energy_chunk)
    # the sampler (mcmc.method, mcmc.moves); `width` below is the MH move width or the
    # HMC step size, adapted by the same rule toward that method's target acceptance.
    # Metropolis-Hastings needs log|psi| values only: ansatz.values (ablate.wavefunction.small_det).
    sample = mcmc.make_mcmc(ansatz.apply, method=spec.mcmc_method, steps=spec.mcmc_steps,
                            moves=spec.mcmc_moves, path_length=spec.hmc_path_length,
                            values=ansatz.values)

    mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("walkers",))
    walker_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("walkers"))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

    def mcmc_iteration(params, walkers, key, width, target, adapt_now=spec.mcmc_adapt):
        key, kmove = jax.random.split(key)
        walkers, pmove = sample(params, walkers, kmove, width)
        if adapt_now:
            width = mcmc.adapt_width(width, pmove, target)
        return walkers, key, width, pmove

    loss = make_loss(ansatz.apply, batch_e_local)
    optimizer = make_optimizer(spec.optim, loss, make_curvature_function(ansatz.apply), dtype)

    def train_step(state: TrainState, hyper: Hyper, target):
        walkers, key, width, pmove = mcmc_iteration(
            state.params, state.walkers, state.key, state.width, target)
        key, kopt = jax.random.split(key)
        params, opt_state, value, aux = optimizer.step(
            state.params, state.opt_state, walkers, kopt, state.step, hyper)
        new = TrainState(params, opt_state, walkers, key, width, state.step + 1)
        return new, {"energy": value, "variance": aux.variance, "pmove": pmove,
                     "move_width": width, "learning_rate": schedule(state.step, hyper)}

    def eval_step(params, walkers, key, width):
        walkers, key, _, pmove = mcmc_iteration(params, walkers, key, width, None,
                                                adapt_now=False)
        energies = batch_e_local(params, walkers)
        mean = jnp.mean(energies)
        return walkers, key, {"energy": mean, "variance": jnp.mean((energies - mean) ** 2),
                              "pmove": pmove}

    pretrain_init, pretrain_step = make_pretrain_step(
        ansatz.values, ansatz.orbitals, experiment.system.electrons, ansatz.full_det,
        spec.mcmc_steps)
    # Sampling and the optimiser update are one program (kfac-jax's step traces inside it),
    # so an iteration is one dispatch with no host round trip; its input state is donated.
    # Kept traced on disk beside the compilation cache (ablate.runtime.program_store): a later process
    # with this spec skips tracing and lowering them; with no cache, plain jax.jit.
    folder, spec_key = program_store.store_folder(), repr(spec)

    def program(name, fn, **kw):
        return program_store.StoredProgram(name, _traced_in(scope, fn), spec_key, folder, **kw)

    return Programs(
        spec, ansatz, dtype, walker_sharding, replicated,
        program("mcmc_iteration", mcmc_iteration, static_argnames=("adapt_now",)),
        program("train_step", train_step, donate=(0,)),
        program("eval_step", eval_step),
        pretrain_init,
        program("pretrain_step", pretrain_step, static_argnames=("sampling", "adapt")),
        optimizer, loss, e_local, batch_e_local, scope)


# Engines kept for reuse in this process (a warm sweep worker's next trial of the same shapes
# retraces and recompiles nothing). Few: each holds compiled programs.
ENGINE_CACHE_SIZE = 2
_ENGINES: "collections.OrderedDict[EngineSpec, Programs]" = collections.OrderedDict()


def build_engine(experiment: Experiment, reuse: bool = True) -> Engine:
    """The engine of an experiment: the cached programs of its spec (built when new, or
    always with ``reuse=False``), with the run's scalar hyperparameters bound."""
    spec = engine_spec(experiment)
    programs = _ENGINES.get(spec) if reuse else None
    if programs is None:
        programs = compile_programs(spec, experiment)
        if reuse:
            _ENGINES[spec] = programs
            while len(_ENGINES) > ENGINE_CACHE_SIZE:
                _ENGINES.popitem(last=False)
    else:
        _ENGINES.move_to_end(spec)
    hyper, target = jax.device_put(
        (hyper_of(experiment.optim, programs.dtype),
         jnp.asarray(experiment.mcmc.target, programs.dtype)), programs.replicated)
    return Engine(experiment, programs, hyper, target)


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
    """Fits the network orbitals to the HF orbitals (`hf`, an ablate.vmc.pretrain.HartreeFock); the
    walkers sample the density named by pretrain.sampling (hf | network | mixture) with
    all-electron Metropolis-Hastings moves of their own width. The training width is kept."""
    exp = engine.experiment
    step = engine.programs.pretrain_step
    orbs, lr, target, width = jax.device_put(
        (hf.on_device(engine.dtype), jnp.asarray(exp.pretrain.lr, engine.dtype),
         jnp.asarray(exp.mcmc.target_acceptance, engine.dtype),
         jnp.asarray(exp.mcmc.move_width, engine.dtype)), engine.replicated)
    # committed like the step's outputs, so the second step does not trace and compile again
    opt_state = jax.device_put(engine.programs.pretrain_init(state.params), engine.replicated)
    params, walkers, key = state.params, state.walkers, state.key
    total = exp.pretrain.iterations
    for i in range(total):
        params, opt_state, walkers, key, width, loss, pmove = step(
            params, opt_state, walkers, key, width, orbs, lr, target,
            sampling=exp.pretrain.sampling, adapt=exp.mcmc.adapt)
        loss = float(loss)
        recorder.log("pretrain", i, {"loss": loss})
        progress("pretrain", i, total, f"loss {loss:.5f}  pmove {float(pmove):.2f}")
    return state._replace(params=params, walkers=walkers, key=key)


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
          stretch: Stretch) -> TrainState:
    """Training iterations from state.step to optim.iterations, checkpointing as it goes
    (``stretch`` hears when the first iteration ends).

    Metrics of step t are read after step t+1 is dispatched, so the host never stalls the
    device; a non-finite energy raises NonFiniteEnergy naming the step. A stop request
    (SIGTERM, :mod:`ablate.vmc.preemption`) checkpoints after the current step and raises Preempted.
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
        if stretch.first_step_done is None:
            stretch.first_step()
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
        stop = preemption.requested() is not None and step + 1 < total
        if (step + 1) % every == 0 or step + 1 == total or stop:
            drain(pending)
            pending = None
            save_checkpoint(run_dir, recorder, "train", state, stretch)
        if stop:
            raise preemption.stop_here(f"training step {step}", run_dir)
    if pending is not None:
        drain(pending)
    return state


def save_checkpoint(run_dir, recorder, phase: str, state: TrainState, stretch: Stretch,
                    extra: dict | None = None):
    """Flushes the tables, then writes the checkpoint (so tables never run ahead of it), with
    the stretch's phase clock and run facts."""
    recorder.flush()
    serial = int(state.step) + (10_000_000 if phase == "eval" else 0)
    data = {"phase": phase, **state._asdict(), **(extra or {}), **stretch.checkpoint_extra()}
    checkpoint.save(RunDir(run_dir).checkpoints, serial, data)


def evaluate(engine: Engine, state: TrainState, recorder, run_dir, progress: Progress,
             stretch: Stretch, done: list | None = None) -> tuple[TrainState, list]:
    """Frozen-parameter MCMC: burn-in, then evaluation.iterations batch-mean energies (Hartree).

    Returns the final state and the list of per-iteration energies, resuming from `done`;
    each checkpoint carries the stretch's phase clock and run facts.
    """
    exp = engine.experiment
    total, every = exp.evaluation.iterations, exp.run.checkpoint_every
    energies = list(done or [])
    if evaluation_done(energies, exp.evaluation):
        return state, energies
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
        if evaluation_done(energies, exp.evaluation):
            break
        stop = preemption.requested() is not None
        if ((i + 1) % every == 0 or stop) and i + 1 < total:
            snapshot = state._replace(walkers=walkers, key=key, step=jnp.asarray(i + 1))
            save_checkpoint(run_dir, recorder, "eval", snapshot, stretch,
                            {"eval_energies": energies, "train_step": int(state.step)})
            if stop:
                raise preemption.stop_here(f"evaluation step {i}", run_dir)
    return state._replace(walkers=walkers, key=key), energies


def evaluation_done(energies: list, cfg) -> bool:
    """Whether an evaluation with these energies (Hartree, one per iteration) is complete: all
    ``cfg.iterations`` done, or, with ``cfg.target_stderr_mha``, at a check (every
    ``check_every`` iterations from ``min_iterations`` on) whose reblocked standard error is at
    most the target. The same rule decides for a resumed run, so it stops where it would have."""
    n = len(energies)
    if n >= cfg.iterations:
        return True
    target = cfg.target_stderr_mha
    if target is None or n < cfg.min_iterations or (n - cfg.min_iterations) % cfg.check_every:
        return False
    return reblock(energies).stderr * 1e3 <= target


def init_optimizer(engine: Engine, state: TrainState) -> TrainState:
    key, kinit = jax.random.split(state.key)
    with engine.programs.precision_scope():
        opt_state = engine.optimizer.init(state.params, kinit, state.walkers, engine.hyper)
    return to_device(engine, state._replace(opt_state=opt_state, key=key))
