"""Milliseconds per training iteration of the Psiformer against FermiNet at matched parameter counts;
prints one JSON object.

    python benchmarks/architectures.py                      # LiH and N2, quick FermiNet, batch 256, CPU
    python benchmarks/architectures.py --systems LiH --batch 128 --iterations 10

For each system: FermiNet at quick scale (2 layers of (32, 8), 4 determinants) and its parameter
count; the Psiformer with ``--layers`` x ``--heads`` heads (quick: 2 x 2) and the head dimension whose
parameter count is closest to FermiNet's (4 determinants, the e-e Jastrow); both timed as
benchmarks/iteration.py times a training step (MCMC + local energy by the forward Laplacian +
gradient + KFAC update; medians over --iterations after --warmup; no pretraining), one run each,
interleaved per system. ``ratio`` = Psiformer ms / FermiNet ms.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from benchmarks.iteration import measure  # noqa: E402


def parameters(overrides: list[str]) -> int:
    """Parameter count of the network of ``overrides`` (no compilation)."""
    import jax

    from ablate.config.compose import compose
    from ablate.config.experiment import validate
    from ablate.wavefunction.networks import make_ansatz, param_count

    experiment = validate(compose(overrides), device_count=1)
    return param_count(jax.eval_shape(make_ansatz(experiment).init, jax.random.PRNGKey(0)))


def matched_heads_dim(system: str, target: int, layers: int, heads: int) -> tuple[int, int]:
    """The head dimension (1..128) whose Psiformer parameter count is closest to ``target``."""
    best = None
    for dim in range(1, 129):
        n = parameters([f"system={system}", "network=psiformer", f"network.num_layers={layers}",
                        f"network.num_heads={heads}", f"network.heads_dim={dim}"])
        if best is None or abs(n - target) < abs(best[1] - target):
            best = (dim, n)
        if n > 2 * target:
            break
    return best


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--systems", nargs="+", default=["LiH", "N2"])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args(argv)
    common = ["scale=quick", "pretrain=none", "logger=none", "progress=false", "mcmc.burn_in=0",
              f"batch_size={args.batch}"]
    out = []
    for system in args.systems:
        fermi = [f"system={system}", "network=ferminet", *common]
        target = parameters(fermi)
        dim, count = matched_heads_dim(system, target, args.layers, args.heads)
        psi = [f"system={system}", "network=psiformer", f"network.num_layers={args.layers}",
               f"network.num_heads={args.heads}", f"network.heads_dim={dim}", *common]
        f = measure(fermi, args.iterations, args.warmup, split_iterations=0)
        s = measure(psi, args.iterations, args.warmup, split_iterations=0)
        keep = ("param_count", "ms_per_iteration", "min_ms_per_iteration", "flops_per_iteration",
                "forward_laplacian", "laplacian_sparsity", "config_to_first_iteration_s")
        out.append({"system": system, "electrons": f["electrons"], "batch_size": args.batch,
                    "ferminet": {k: f[k] for k in keep} | {"hidden_dims": f["hidden_dims"]},
                    "psiformer": {k: s[k] for k in keep} | {"attention": s["attention"]},
                    "ratio_ms": round(s["ms_per_iteration"] / f["ms_per_iteration"], 3),
                    "ratio_flops": round(s["flops_per_iteration"] / f["flops_per_iteration"], 3),
                    "load_average": s["load_average"]})
    print(json.dumps({"benchmark": "architectures", "device": f["device"], "systems": out}))


if __name__ == "__main__":
    sys.exit(main())
