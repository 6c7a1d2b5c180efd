"""Sweep throughput: trials per hour one-per-slot versus packed, and per-trial start-up.

Runs the same small study (N quick-scale trials of one shape, differing only in seed)
through the real CLI, ``python -m ablate +sweep=width``, three times:

1. ``single_cold``: 1 trial per slot (``sweep.workers=1`` on CPU, ``trials_per_gpu=1`` on
   GPUs) with an empty JAX persistent compilation cache;
2. ``single_warm``: the same again with the cache the first run filled;
3. ``packed``: k trials per slot (``sweep.workers=k`` on CPU, ``trials_per_gpu=k`` on GPUs),
   warm cache.

For each it reports trials/hour (N / study wall time), and from every trial's summary.json
its wall time and start-up (config to first training iteration), split into the first
trial of each worker (a cold process) and later ones (a warm worker). Prints one JSON
object. Example (a 2-core CPU, a few minutes)::

    python benchmarks/sweep_throughput.py --trials 4 --iterations 100 --k 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ablate.records.run_record import RunSummary

ROOT = Path(__file__).resolve().parents[1]


def run_study(out: Path, name: str, n: int, overrides: list[str], slots: list[str], env: dict) -> dict:
    seeds = "[" + ",".join(str(i) for i in range(n)) + "]"
    args = [sys.executable, "-m", "ablate", "+sweep=width", f"output_root={out}", f"sweep.name={name}",
            "~sweep.space.network", f"+sweep.space.seed={seeds}", "sweep.seeds=1", "sweep.max_seeds=null", "sweep.progress_every_s=600",
            *slots, *overrides]
    t0 = time.perf_counter()
    res = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"study {name} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return {"wall_s": round(wall, 1), "trials_per_hour": round(n * 3600 / wall, 1), **trial_stats(out, name)}


def trial_stats(out: Path, name: str) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'studies.db'}")
    first, later, iter_ms = [], [], []
    seen_workers = set()
    for t in sorted(study.get_trials(), key=lambda t: t.datetime_start):
        s = RunSummary.read(t.user_attrs["run_dir"]).to_dict()
        row = {"wall_s": s.get("wall_time_s"), "startup_s": s.get("startup_s")}
        iter_ms.append(s.get("ms_per_iteration"))
        worker = t.user_attrs.get("worker")
        (later if worker in seen_workers else first).append(row)
        seen_workers.add(worker)

    def med(rows, key):
        vals = [r[key] for r in rows if r[key] is not None]
        return round(statistics.median(vals), 2) if vals else None

    return {
        "first_trial_per_worker": {"n": len(first), "median_wall_s": med(first, "wall_s"),
                                   "median_startup_s": med(first, "startup_s")},
        "later_trials": {"n": len(later), "median_wall_s": med(later, "wall_s"),
                         "median_startup_s": med(later, "startup_s")},
        "median_ms_per_iteration": round(statistics.median([m for m in iter_ms if m]), 2) if any(iter_ms) else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=4, help="trials per study (same shape, seeds 0..N-1)")
    p.add_argument("--iterations", type=int, default=100, help="training iterations per trial")
    p.add_argument("--eval-iterations", type=int, default=100, help="evaluation iterations per trial")
    p.add_argument("--k", type=int, default=2, help="trials per slot when packed")
    p.add_argument("--system", default="LiH")
    p.add_argument("--scale", default="quick")
    p.add_argument("--gpus", action="store_true", help="pack on GPUs (trials_per_gpu) instead of CPU workers")
    p.add_argument("--output-root", default=None, help="keep the studies here (default: a temporary folder)")
    p.add_argument("override", nargs="*", help="extra config overrides for every trial")
    a = p.parse_args()

    out = Path(a.output_root or tempfile.mkdtemp(prefix="sweep_bench_")).resolve()
    cache = out / "jax_cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(cache), TF_CPP_MIN_LOG_LEVEL="3")
    overrides = [f"system={a.system}", f"scale={a.scale}", f"optim.iterations={a.iterations}",
                 f"evaluation.iterations={a.eval_iterations}", "logger=none", *a.override]
    if a.gpus:
        one, packed = ["sweep.trials_per_gpu=1"], [f"sweep.trials_per_gpu={a.k}"]
    else:
        one, packed = ["sweep.workers=1", "sweep.gpus=[]"], [f"sweep.workers={a.k}", "sweep.gpus=[]"]

    tag = time.strftime("%H%M%S")
    results = {
        "single_cold": run_study(out, f"bench1c{tag}", a.trials, overrides, one, env),
        "single_warm": run_study(out, f"bench1w{tag}", a.trials, overrides, one, env),
        "packed": run_study(out, f"bench{a.k}w{tag}", a.trials, overrides, packed, env),
    }
    base = results["single_warm"]["trials_per_hour"]
    print(json.dumps({
        "machine": f"{platform.machine()} {os.cpu_count()} cores" + (" + GPUs" if a.gpus else " (CPU only)"),
        "settings": {"trials": a.trials, "iterations": a.iterations, "eval_iterations": a.eval_iterations,
                     "k": a.k, "system": a.system, "scale": a.scale, "overrides": a.override},
        **results,
        "packed_speedup_vs_single_warm": round(results["packed"]["trials_per_hour"] / base, 2),
        "output_root": str(out),
    }, indent=2))


if __name__ == "__main__":
    main()
