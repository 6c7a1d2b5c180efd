"""Milliseconds per VMC training iteration, and where they go; prints one JSON object.

    python benchmarks/iteration.py --system LiH --scale paper            # the paper network, batch 4096
    python benchmarks/iteration.py --system LiH --scale quick --batch 128 # the CI-machine line
    python benchmarks/iteration.py --system N2 --scale paper --laplacian hessian
    python benchmarks/iteration.py --system N2 --scale quick --batch 128 --sparsity dense
    python benchmarks/iteration.py --system LiH --scale quick --network psiformer --heads-dim 32

Times (medians over --iterations after --warmup) of: the whole training step (MCMC +
local energy + gradient + optimiser update, as the trainer runs it), and its parts run alone:
sampling (the MCMC moves of one iteration), local energy (E_L of the batch), gradient
(loss value and VMC gradient, E_L included). The optimiser update is the step minus the
sampling and the gradient. Start-up = config to the end of the first training step (JIT
compilation included). No pretraining and no logging: pyscf and wandb are never imported.
FLOPs per iteration: XLA's cost analysis of the compiled training programs (ablate.vmc.cost, the
number a run records in summary.json), with the parts and what is counted.
``--no-split`` times the whole step only (what benchmarks/compare_peer.py runs). Besides the
medians: the fastest step (``min_ms``, least disturbed by other processes on a shared machine)
and the median CPU seconds of this process per step (``cpu_ms``, all its threads).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

T_START = time.time()
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--system", default="LiH")
    p.add_argument("--scale", default="paper", choices=["quick", "paper"])
    p.add_argument("--network", default="ferminet", choices=["ferminet", "psiformer", "slater_jastrow"])
    p.add_argument("--width", type=int, help="FermiNet, Slater-Jastrow")
    p.add_argument("--depth", type=int, help="FermiNet, Slater-Jastrow")
    p.add_argument("--pairwise", type=int, help="FermiNet, Slater-Jastrow")
    p.add_argument("--layers", type=int, help="Psiformer: network.num_layers")
    p.add_argument("--heads", type=int, help="Psiformer: network.num_heads")
    p.add_argument("--heads-dim", type=int, help="Psiformer: network.heads_dim")
    p.add_argument("--determinants", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--steps", type=int, help="MCMC steps per iteration")
    p.add_argument("--laplacian", default="forward", choices=["forward", "hessian"])
    p.add_argument("--sparsity", help="laplacian_sparsity: auto (default), dense or a threshold")
    p.add_argument("--forward-laplacian", help="forward_laplacian: auto (default), ferminet or folx")
    p.add_argument("--energy-chunk", help="energy_chunk: auto (default), whole or walkers per chunk")
    p.add_argument("--no-split", action="store_true", help="time the whole step only")
    p.add_argument("--optim", default="kfac", choices=["kfac", "adam"])
    p.add_argument("--precision", default="float32", choices=["float32", "float64"])
    p.add_argument("--iterations", type=int, default=20, help="timed iterations")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--override", action="append", default=[], help="extra Hydra override")
    return p.parse_args(argv)


def overrides(args) -> list[str]:
    out = [f"system={args.system}", f"scale={args.scale}", f"network={args.network}",
           f"laplacian={args.laplacian}", f"optim={args.optim}", f"precision={args.precision}",
           "pretrain=none", "logger=none", "progress=false", "mcmc.burn_in=0"]
    for flag, key in (("width", "network.width"), ("depth", "network.depth"),
                      ("pairwise", "network.pairwise_width"), ("layers", "network.num_layers"),
                      ("heads", "network.num_heads"), ("heads_dim", "network.heads_dim"),
                      ("determinants", "network.determinants"), ("batch", "batch_size"),
                      ("steps", "mcmc.steps"), ("sparsity", "laplacian_sparsity"),
                      ("forward_laplacian", "forward_laplacian"), ("energy_chunk", "energy_chunk")):
        if getattr(args, flag) is not None:
            out.append(f"{key}={getattr(args, flag)}")
    return out + args.override


def timed(fn, warmup: int, iterations: int) -> dict:
    """Median and fastest wall ms, and median process-CPU ms, of fn() (blocked until ready)."""
    import jax

    for _ in range(warmup):
        jax.block_until_ready(fn())
    wall, cpu = [], []
    for _ in range(iterations):
        t, c = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn())
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"median_ms": 1e3 * statistics.median(wall), "min_ms": 1e3 * min(wall),
            "cpu_ms": 1e3 * statistics.median(cpu)}


def median_ms(fn, warmup: int, iterations: int) -> float:
    return timed(fn, warmup, iterations)["median_ms"]


def measure(overrides_list: list[str], iterations: int = 20, warmup: int = 3,
            split_iterations: int | None = None) -> dict:
    """Builds the experiment of ``overrides_list`` and times it; returns one JSON-able dict.

    ``split_iterations`` (default ``iterations``; 0: no split) times each part (sampling, local
    energy, gradient) alone. Start-up is config to the end of the first training step. Peak device
    memory comes from JAX's allocator statistics (None where the backend keeps none, e.g. CPU).
    Shared by this script and benchmarks/device_check.py.
    """
    import jax

    from ablate.config.compose import compose
    from ablate.config.experiment import validate
    from ablate.runtime.jax_setup import setup_jax
    from ablate.vmc import cost, training
    from ablate.wavefunction.networks import param_count

    split_iterations = iterations if split_iterations is None else split_iterations
    t0 = time.time()
    experiment = validate(compose(overrides_list))
    setup_jax(experiment.run.precision)
    engine = training.build_engine(experiment)
    state = training.init_optimizer(engine, training.initial_state(engine))
    state, _ = engine.train_step(state)
    jax.block_until_ready(state.params)
    startup = time.time() - t0

    holder = {"state": state}

    def step():
        holder["state"], metrics = engine.train_step(holder["state"])
        return metrics["energy"]

    whole = timed(step, warmup, iterations)
    step_ms = whole["median_ms"]
    state = holder["state"]
    params, walkers, key, width = state.params, state.walkers, state.key, state.width
    split = None
    if split_iterations:
        sample_ms = median_ms(lambda: engine.mcmc_iteration(params, walkers, key, width)[0],
                              warmup, split_iterations)
        e_local = jax.jit(engine.programs.batch_local_energy)
        energy_ms = median_ms(lambda: e_local(params, walkers), warmup, split_iterations)
        grad = jax.jit(jax.value_and_grad(engine.loss, has_aux=True))
        grad_ms = median_ms(lambda: grad(params, key, walkers), warmup, split_iterations)
        split = {"sampling": round(sample_ms, 3), "local_energy": round(energy_ms, 3),
                 "gradient_incl_local_energy": round(grad_ms, 3),
                 "optimizer_update": round(max(step_ms - sample_ms - grad_ms, 0.0), 3)}

    flops = cost.count_training_flops(engine, state)
    device = jax.devices()[0]
    return {
        "system": experiment.system.name,
        "electrons": list(experiment.system.electrons),
        "network": experiment.network.type,
        "hidden_dims": [list(d) for d in experiment.hidden_dims] if experiment.network.type != "psiformer" else None,
        "attention": ({"num_layers": experiment.network.num_layers, "num_heads": experiment.network.num_heads,
                       "heads_dim": experiment.network.heads_dim}
                      if experiment.network.type == "psiformer" else None),
        "determinants": experiment.network.determinants,
        "batch_size": experiment.run.batch_size,
        "mcmc_steps": experiment.mcmc.steps,
        "laplacian": experiment.run.laplacian,
        "laplacian_sparsity": engine.programs.spec.laplacian_sparsity,
        "forward_laplacian": engine.programs.spec.forward_laplacian,
        "energy_chunk": engine.programs.spec.energy_chunk,
        "matmul_precision": experiment.run.matmul_precision,
        "optimizer": experiment.optim.name,
        "precision": experiment.run.precision,
        "param_count": param_count(params),
        "device": f"{device.platform}:{getattr(device, 'device_kind', '')}",
        "device_count": jax.device_count(),
        "ms_per_iteration": round(step_ms, 3),
        "min_ms_per_iteration": round(whole["min_ms"], 3),
        "cpu_ms_per_iteration": round(whole["cpu_ms"], 3),
        "split_ms": split,
        "config_to_first_iteration_s": round(startup, 2),
        "peak_memory_bytes": peak_memory_bytes(device),
        "iterations_timed": iterations,
        "split_iterations_timed": split_iterations,
        "flops_per_iteration": flops.per_iteration,
        "flops_parts": flops.parts,
        "flops_counted": flops.counted,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "wall_s": round(time.time() - t0, 2),
    }


def peak_memory_bytes(device) -> int | None:
    """Peak bytes the device allocator has held in this process (None if it keeps no stats)."""
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001 - backends without statistics raise or return None
        return None
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def main() -> None:
    args = parse()
    import jax  # noqa: F401 - imports are timed apart from the start-up

    import ablate.runtime.jax_setup
    import ablate.vmc.training  # noqa: F401

    t_imported = time.time()
    record = measure(overrides(args), args.iterations, args.warmup,
                     0 if args.no_split else None)
    startup = record.pop("config_to_first_iteration_s")
    print(json.dumps({
        "benchmark": "iteration", **record,
        "startup_s": {"imports": round(t_imported - T_START, 2),
                      "config_to_first_iteration": startup},
    }))


if __name__ == "__main__":
    sys.exit(main())
