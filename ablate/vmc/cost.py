"""What a run costs: wall seconds by phase, device seconds, and FLOPs per training iteration.

Wall time: :class:`PhaseClock` sums ``time.perf_counter`` seconds per phase (``setup``,
``pretrain`` with the SCF, ``burn_in``, ``train``, ``flop_count``, ``eval``); the totals travel in
every checkpoint (:data:`CLOCK_KEY`), so a resumed run adds to what the killed one had spent up
to its checkpoint. Device seconds = devices x the sum of the phases, less ``flop_count`` (the
FLOP count below: ablate's own measurement, not a cost of the network).

FLOPs: XLA's own cost analysis (``compiled.cost_analysis()["flops"]``, a multiply-add counted as
2) of the compiled programs that make one training iteration, the same count on CPU and GPU:

the one jitted training step (MCMC moves, loss and VMC gradient with E_L, and the optimiser's
update; for KFAC also its curvature estimate and inverses, kfac-jax's step traced inside the same
program), lowered with the arguments the trainer passes, so the executable that ran is found in
JAX's compilation cache and nothing is compiled again.

XLA counts the body of a while loop once, whatever its trip count. The MCMC moves are such a
loop (``mcmc.steps`` iterations), so the one-move program (``mcmc.make_mh_step``) is added
``steps - 1`` more times. Local energies computed in chunks of walkers (``energy_chunk``) are a
loop too: one chunk's E_L program (compiled here) is added ``chunks - 1`` more times. The move
is lowered, not compiled: its FLOPs are XLA's count of the HLO before optimisation
(`lowered_flops`; 4% below the compiled count on LiH's move), so without chunks counting
compiles nothing. (The chunk's program is compiled: its uncompiled count drifts further.) Any other loop that carries floating-point values (the
``laplacian=hessian`` scan) is named in ``flops_counted`` as counted once. Custom calls (LAPACK or
cuSOLVER: the LU of ``slogdet`` in the loss and the Laplacian, KFAC's matrix inverses) get no
FLOPs from XLA and are named too (the MCMC moves' determinants, up to 16 x 16, are
`ablate.wavefunction.small_det`'s elimination written as XLA operations, so they are counted), as are the
transcendental evaluations (exp, log, tanh), which XLA counts apart from FLOPs.
Pretraining, burn-in and evaluation are not counted.

On several devices the compiled programs are the per-device (SPMD-partitioned) ones; their
FLOPs are multiplied by the device count.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import re
import time
from typing import Any, Iterator, Mapping

import jax

from ablate.vmc import mcmc

CLOCK_KEY = "wall_s_by_phase"   # the checkpoint entry that carries the phase totals
PHASES = ("setup", "pretrain", "burn_in", "train", "flop_count", "eval")
_FLOAT_TYPES = re.compile(r"\b(?:f16|bf16|f32|f64|c64|c128)\[")
_TRIP_COUNT = re.compile(r'known_trip_count"\s*:\s*\{\s*"n"\s*:\s*"(\d+)"')
_CUSTOM_CALL = re.compile(r'custom_call_target="([^"]+)"')


# ----------------------------------------------------------------------------- wall time


class PhaseClock:
    """Wall seconds per phase (``perf_counter``), summed over entries and over resumptions.

    ``carried``: the totals of an earlier segment of the same run (from its checkpoint).
    """

    def __init__(self, carried: Mapping[str, float] | None = None):
        self.totals: dict[str, float] = {str(k): float(v) for k, v in (carried or {}).items()}
        self._running: tuple[str, float] | None = None

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Adds the seconds spent inside the ``with`` block to ``name`` (also when it raises)."""
        start = time.perf_counter()
        outer, self._running = self._running, (name, start)
        try:
            yield
        finally:
            self._running = outer
            self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - start

    def snapshot(self) -> dict[str, float]:
        """The totals so far, the phase now running included up to now (seconds)."""
        out = dict(self.totals)
        if self._running is not None:
            name, start = self._running
            out[name] = out.get(name, 0.0) + time.perf_counter() - start
        return out


def device_info() -> tuple[int, str]:
    """(number of JAX devices, ``platform:kind`` of the first, e.g. ``gpu:NVIDIA H100 80GB HBM3``)."""
    devices = jax.devices()
    first = devices[0]
    return len(devices), f"{first.platform}:{getattr(first, 'device_kind', '') or first.platform}"


MEASUREMENT_PHASES = ("flop_count",)  # ablate's own bookkeeping: recorded, not charged to the run


def cost_fields(clock: PhaseClock, devices: int) -> dict[str, Any]:
    """The RunSummary fields of the wall-time side: ``wall_s_by_phase`` and ``device_seconds``
    (devices x the seconds of every phase but :data:`MEASUREMENT_PHASES`)."""
    phases = clock.snapshot()
    charged = sum(v for k, v in phases.items() if k not in MEASUREMENT_PHASES)
    return {"wall_s_by_phase": {k: round(v, 3) for k, v in phases.items()}, "device_seconds": devices * charged}


# ----------------------------------------------------------------------------- XLA cost analysis


@dataclasses.dataclass(frozen=True)
class ProgramCost:
    """XLA's cost analysis of one compiled program (per device)."""

    flops: float
    transcendentals: float
    float_loops: tuple           # trip counts (None: unknown) of while loops carrying floats
    custom_calls: dict           # custom-call target -> count (XLA gives them no FLOPs)


def program_cost(compiled) -> ProgramCost:
    """Cost of a ``jax.stages.Compiled``: ``cost_analysis()`` is a dict on jax 0.9 (a list with
    one dict per program on some older versions, summed here)."""
    analysis = compiled.cost_analysis()
    parts = analysis if isinstance(analysis, (list, tuple)) else [analysis]
    flops = sum(float(p.get("flops", 0.0)) for p in parts if p)
    trans = sum(float(p.get("transcendentals", 0.0)) for p in parts if p)
    text = compiled.as_text() or ""
    loops = []
    for line in text.splitlines():
        if " while(" not in line:
            continue
        head = line.split(" while(", 1)[0]
        if _FLOAT_TYPES.search(head):
            found = _TRIP_COUNT.search(line)
            loops.append(int(found.group(1)) if found else None)
    calls = collections.Counter(_CUSTOM_CALL.findall(text))
    return ProgramCost(flops, trans, tuple(loops), dict(calls))


@dataclasses.dataclass(frozen=True)
class FlopCount:
    """FLOPs of one training iteration on all devices, its parts, and what is counted (words)."""

    per_iteration: float
    parts: dict
    transcendentals: float
    counted: str


def lowered_flops(lowered) -> float:
    """XLA's FLOP count of a lowered, not compiled, program (the HLO before optimisation):
    no compilation. On LiH's one-move MCMC program it was 4% below the compiled count
    (302 125 against 314 195 FLOPs, width 8, 32 walkers)."""
    analysis = lowered.cost_analysis()
    parts = analysis if isinstance(analysis, (list, tuple)) else [analysis]
    return sum(float(p.get("flops", 0.0)) for p in parts if p)


def _mh_move_flops(engine, state) -> float:
    """FLOPs of one Metropolis-Hastings move of every walker (lowered here, not compiled)."""
    mh_step, _ = mcmc.make_mh_step(engine.ansatz.values)
    walkers = state.walkers
    logp = jax.ShapeDtypeStruct(walkers.shape[:1], walkers.dtype, sharding=engine.walker_sharding)
    return lowered_flops(jax.jit(mh_step).lower(state.params, walkers, logp, state.key, state.width))


def count_training_flops(engine, state) -> FlopCount:
    """FLOPs of one training iteration of ``engine`` (all devices), from XLA's cost analysis.

    Call it after training ran (the training step's executable is then in JAX's in-memory
    cache; nothing is compiled here but, with ``energy_chunk``, one chunk's E_L program); ``state`` is any `TrainState` of the run (shapes
    and shardings matter, values do not).
    """
    steps = engine.experiment.mcmc.steps
    devices = len(engine.walker_sharding.mesh.devices.flat)
    parts: dict[str, float] = {}
    programs: dict[str, ProgramCost] = {}
    # One compiled program per iteration (MCMC moves, E_L, gradient, optimiser update; kfac-jax's
    # step traces inside it): lowered with the arguments the trainer passes, so the executable
    # that ran is found in JAX's compilation cache.
    programs["train step"] = program_cost(
        engine.programs.train_step.lower(state, engine.hyper, engine.target_acceptance).compile())
    kfac = engine.optimizer.name == "kfac"
    what = (f"the one jitted {engine.optimizer.name} training step ({steps} Metropolis move(s), loss "
            "and VMC gradient with E_L, "
            + ("kfac-jax's step traced inside it: curvature estimate, inverses, " if kfac else "")
            + "update)")
    loop_program = "sampling" if "sampling" in programs else "train step"
    loops = list(programs[loop_program].float_loops)
    mcmc_loop = next((i for i, n in enumerate(loops) if n in (steps, None)), None) if steps > 1 else None
    moves = ""
    mc = engine.experiment.mcmc
    if mcmc_loop is not None and (mc.method, mc.moves) != ("mh", "all"):
        mcmc_loop = None   # HMC and one-electron moves: their loops stay counted once (noted below)
    if mcmc_loop is not None:
        loops.pop(mcmc_loop)
        parts["mcmc_extra_moves"] = (steps - 1) * _mh_move_flops(engine, state) * devices
        moves = (f"; the MCMC loop body, which XLA counts once, is added {steps - 1} more time(s) "
                 "from the one-move program (lowered, not compiled: its HLO before optimisation)")
    chunk, batch = engine.programs.spec.energy_chunk, state.walkers.shape[0]
    chunks = batch // chunk if chunk and batch > chunk and batch % chunk == 0 else 1
    if chunks > 1 and chunks in loops:
        loops.remove(chunks)
        one = jax.ShapeDtypeStruct((chunk, *state.walkers.shape[1:]), state.walkers.dtype)
        energy = program_cost(jax.jit(jax.vmap(engine.local_energy, in_axes=(None, 0)))
                              .lower(state.params, one).compile())
        # one chunk of `chunk` walkers on one device: already the total over devices
        parts["energy_extra_chunks"] = (chunks - 1) * energy.flops
        moves += (f"; local energies in {chunks} chunks of {chunk} walkers, a loop XLA counts "
                  f"once: one chunk's E_L program added {chunks - 1} more time(s)")
    for name, cost in programs.items():
        parts[name.replace(" ", "_")] = cost.flops * devices
    per_iteration = sum(parts.values())
    trans = sum(c.transcendentals for c in programs.values()) * devices
    other_loops = loops + [n for name, c in programs.items() if name != loop_program for n in c.float_loops]
    calls = collections.Counter()
    for cost in programs.values():
        calls.update(cost.custom_calls)
    notes = []
    if other_loops:
        trips = ", ".join("?" if n is None else str(n) for n in other_loops)
        what = ("the MCMC steps, moves and leapfrog steps of mcmc.method="
                f"{mc.method}, mcmc.moves={mc.moves}, so sampling is undercounted"
                if (mc.method, mc.moves) != ("mh", "all") else
                "e.g. the laplacian=hessian scan, so E_L is undercounted")
        notes.append(f"{len(other_loops)} loop(s) over floating-point values counted once "
                     f"(trip counts {trips}; {what})")
    if calls:
        listed = ", ".join(f"{name} x{n}" for name, n in sorted(calls.items()))
        notes.append(f"custom calls, which XLA gives no FLOPs: {listed}")
    counted = (f"XLA cost analysis ('flops', multiply-add = 2) of the compiled programs of one training "
               f"iteration, x{devices} device(s): {what}{moves}. Not counted: "
               + "; ".join(notes + [f"{trans:.3g} transcendental evaluations (exp, log, tanh...), which XLA "
                                    "counts apart", "pretraining, burn-in and evaluation"]) + ".")
    return FlopCount(per_iteration, parts, trans, counted)


def flop_fields(engine, state, iterations: int) -> dict[str, Any]:
    """The RunSummary fields of the FLOP side: per iteration, in training, and what is counted.

    The count depends only on the engine's spec (shapes, not values): it is made once per
    engine and kept with its programs, so a warm worker's next trial lowers nothing again."""
    memo = getattr(getattr(engine, "programs", None), "memo", None)
    count = memo.get("flops") if memo is not None else None
    if count is None:
        count = count_training_flops(engine, state)
        if memo is not None:
            memo["flops"] = count
    return {"flops_per_iteration": count.per_iteration,
            "training_flops": count.per_iteration * iterations,
            "flops_counted": count.counted}
