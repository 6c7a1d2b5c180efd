"""ablate's FermiNet forward Laplacian against folx's, side by side in one process; prints one
JSON object per system (one line each).

    python benchmarks/forward_laplacians.py LiH                      # quick network, batch 256
    python benchmarks/forward_laplacians.py He Li Be LiH B C N O Ne --rounds 4
    python benchmarks/forward_laplacians.py LiH --width 64 --override energy_chunk=whole

What `forward_laplacian=auto` is chosen from (`ablate.hamiltonian.local_energy.AUTO_FERMINET_FROM_ELECTRONS`).
For each system both engines (`forward_laplacian=ferminet` and `=folx`, otherwise the same
config) are built, then timed interleaved in short blocks, ``--rounds`` rounds of ``--calls``
calls of each program per engine, so a slow spell of the machine hits both: the training step
(MCMC moves, E_L, gradient, KFAC update: what a trial runs ``optim.iterations`` times), the
evaluation step (MCMC moves and E_L: ``evaluation.iterations`` times) and E_L of the batch
alone. ``ms``: medians over all calls; ``folx_minus_ours_ms``: the mean over rounds of the
difference of the two engines' block medians in the same round, with its standard error.
Compilation (seconds): the training and evaluation steps lowered and compiled explicitly, the
two Laplacians alternating which goes first per system, after a throw-away engine has warmed
JAX up. ``trial_s_saved`` estimates what ablate's Laplacian saves in one trial of the config
(positive: faster) from the paired differences: iterations x (folx's step - ours) + evaluation
iterations x (same) - (our compilation - folx's), with the standard error of the timed part
(compilation is measured once: its noise, ~1 s, is not in the error bar). No pretraining and no logging: pyscf and wandb are never imported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
LAPLACIANS = ("ferminet", "folx")
PARTS = ("train", "eval", "local_energy")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("systems", nargs="+", help="system names (conf/system)")
    p.add_argument("--scale", default="quick", choices=("quick", "paper"))
    p.add_argument("--width", type=int, help="network.width (default: the scale's)")
    p.add_argument("--batch", type=int, help="batch_size (default: the scale's)")
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--calls", type=int, default=5, help="calls of each program per round")
    p.add_argument("--override", action="append", default=[], help="extra Hydra override")
    return p.parse_args(argv)


def _calls(fn, n: int) -> list[float]:
    import jax
    out = []
    for _ in range(n):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        out.append(time.perf_counter() - t)
    return out


def _build(overrides: list[str]):
    from ablate.config.compose import compose
    from ablate.config.experiment import validate
    from ablate.runtime.jax_setup import setup_jax
    from ablate.vmc import training

    experiment = validate(compose(overrides))
    setup_jax(experiment.run.precision)
    engine = training.build_engine(experiment, reuse=False)
    state = training.init_optimizer(engine, training.initial_state(engine))
    return experiment, engine, state


def _compile_s(engine, state) -> float:
    """Seconds to lower and compile the training and evaluation steps (E_L is in both)."""
    p = engine.programs
    t0 = time.perf_counter()
    p.eval_step.lower(state.params, state.walkers, state.key, state.width).compile()
    p.train_step.lower(state, engine.hyper, engine.target_acceptance).compile()
    return time.perf_counter() - t0


def compare(system: str, base: list[str], rounds: int, calls: int, flip: bool) -> dict:
    import jax

    runs = {}
    order = LAPLACIANS[::-1] if flip else LAPLACIANS
    for lap in order:
        experiment, engine, state = _build([f"system={system}", *base, f"forward_laplacian={lap}"])
        compile_s = _compile_s(engine, state)
        state, _ = engine.train_step(state)   # compiled above: runs, fills the caches
        energy = jax.jit(engine.programs.batch_local_energy)
        jax.block_until_ready(energy(state.params, state.walkers))
        jax.block_until_ready(engine.eval_step(state.params, state.walkers, state.key, state.width))
        runs[lap] = {"experiment": experiment, "engine": engine, "state": state, "energy": energy,
                     "compile_s": compile_s, "train": [], "eval": [], "local_energy": [],
                     "blocks": {part: [] for part in PARTS}}
    for _ in range(rounds):
        for r in runs.values():
            engine, energy, st = r["engine"], r["energy"], r["state"]
            holder = {"state": st}

            def train():
                holder["state"], metrics = engine.train_step(holder["state"])
                return metrics["energy"]

            r["train"] += _calls(train, calls)
            r["state"] = st = holder["state"]
            r["eval"] += _calls(lambda: engine.eval_step(st.params, st.walkers, st.key,
                                                         st.width)[2]["energy"], calls)
            r["local_energy"] += _calls(lambda: energy(st.params, st.walkers), calls)
            for part in PARTS:
                r["blocks"][part].append(statistics.median(r[part][-calls:]))
    ms = {lap: {part: round(1e3 * statistics.median(r[part]), 3) for part in PARTS}
          for lap, r in runs.items()}
    diff = {}
    for part in PARTS:
        d = [1e3 * (f - o) for f, o in zip(runs["folx"]["blocks"][part],
                                           runs["ferminet"]["blocks"][part])]
        diff[part] = (statistics.fmean(d), statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 else 0.0)
    exp = runs["folx"]["experiment"]
    n_train, n_eval = exp.optim.iterations, exp.evaluation.iterations + exp.evaluation.burn_in
    saved = (n_train * diff["train"][0] + n_eval * diff["eval"][0]) / 1e3 \
        - (runs["ferminet"]["compile_s"] - runs["folx"]["compile_s"])
    saved_err = ((n_train * diff["train"][1]) ** 2 + (n_eval * diff["eval"][1]) ** 2) ** 0.5 / 1e3
    from ablate.hamiltonian.local_energy import forward_laplacian_of
    return {
        "benchmark": "forward_laplacians", "system": system,
        "electrons": exp.system.n_electrons, "width": max(w for w, _ in exp.network.layers),
        "batch_size": exp.run.batch_size,
        "energy_chunk": runs["folx"]["engine"].programs.spec.energy_chunk,
        "auto_takes": forward_laplacian_of("auto", exp.network.type, exp.system.n_electrons),
        "ms": ms,
        "folx_minus_ours_ms": {part: [round(m, 3), round(e, 3)] for part, (m, e) in diff.items()},
        "compile_s": {lap: round(r["compile_s"], 2) for lap, r in runs.items()},
        "compiled_first": order[0],
        "trial_s_saved": [round(saved, 1), round(saved_err, 1)],
        "trial": {"iterations": exp.optim.iterations,
                  "evaluation_iterations": exp.evaluation.iterations + exp.evaluation.burn_in},
        "rounds": rounds, "calls_per_round": calls,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    args = parse()
    base = [f"scale={args.scale}", "logger=none", "progress=false", *args.override]
    if args.width:
        base.append(f"network.width={args.width}")
    if args.batch:
        base.append(f"batch_size={args.batch}")
    _build(["system=He", "scale=quick", "network.width=8", "batch_size=16", "logger=none"])  # warm-up
    for i, system in enumerate(args.systems):
        print(json.dumps(compare(system, base, args.rounds, args.calls, flip=bool(i % 2))),
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
