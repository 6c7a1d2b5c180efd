"""ablate beside a reference implementation, per training iteration, in one run; prints JSON.

The reference (the public FermiNet, google-deepmind/ferminet) is a timing peer that lives
outside this repository: ``../shared/peer/setup.sh`` clones it and makes a CPU virtual
environment, and its own bench script times it. This script only runs both, interleaved
(ablate, reference, reference, ablate, ... per system) so that a shared machine's load falls
on both alike, and reports both medians and their ratio::

    python benchmarks/compare_peer.py --peer /tmp/ferminet-peer \\
        --peer-bench ../shared/peer/bench_ferminet.py --rounds 3 LiH N2

``--peer`` (or ``ABLATE_PEER``): the folder setup.sh made (``venv/bin/python``, ``clone/``);
``--peer-bench`` (or ``ABLATE_PEER_BENCH``): the peer's bench script. The network is the quick
one, as the peer is told: 2 layers of (32, 8), 4 determinants, batch 128, KFAC, forward
Laplacian (folx; ``--laplacian hessian``: the Hessian trace), 10 MCMC steps, float32. Each run is a fresh process (compilation included,
not timed). Per system and side: the median over rounds of each run's median step time, the
fastest step seen, and the load average (1 min) before each run, to say how contended the
machine was. ``--ablate-arg`` passes extra flags to benchmarks/iteration.py (e.g.
``--ablate-arg=--sparsity=dense``).

Optional columns, interleaved the same way: ``--baseline DIR`` times another ablate checkout
(e.g. ``git archive`` of the commit before a change) as ``baseline``; ``--peer-env NAME=VALUE
--peer-env-both`` times the peer a second time with that environment (e.g.
``OPENBLAS_NUM_THREADS=1``, the LAPACK setting ablate makes for itself) as
``reference_1thread``. Ratios are always against the plain ``reference``, plus
``ratio_median_vs_reference_1thread``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ITERATION = HERE / "iteration.py"
QUICK = {"width": 32, "pairwise": 8, "depth": 2, "dets": 4, "batch": 128}
PEER_LAPLACIAN = {"forward": "folx", "hessian": "default"}


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("systems", nargs="*", default=["LiH", "N2"])
    p.add_argument("--peer", default=os.environ.get("ABLATE_PEER"),
                   help="the peer's folder (venv/ and clone/), or ABLATE_PEER")
    p.add_argument("--peer-bench", default=os.environ.get("ABLATE_PEER_BENCH"),
                   help="the peer's bench script, or ABLATE_PEER_BENCH")
    p.add_argument("--peer-env", action="append", default=[],
                   help="NAME=VALUE for the peer's environment only (e.g. OPENBLAS_NUM_THREADS=1)")
    p.add_argument("--peer-env-label", default="reference_1thread",
                   help="with --peer-env-both: the name of the peer run with --peer-env")
    p.add_argument("--peer-env-both", action="store_true",
                   help="run the peer both plainly and with --peer-env (two columns)")
    p.add_argument("--baseline", help="another ablate checkout (e.g. the commit before) to time "
                                      "beside this one, as 'baseline'")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--iterations", default="LiH:40,N2:20",
                   help="iterations per run and system (the first 6 of the peer's are not timed)")
    p.add_argument("--laplacian", default="forward", choices=["forward", "hessian"],
                   help="forward: folx on both sides; hessian: ablate's Hessian trace and the "
                        "peer's default (Hessian-vector products)")
    p.add_argument("--ablate-arg", action="append", default=[], help="extra iteration.py flag")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    args = p.parse_args(argv)
    if not args.peer or not args.peer_bench:
        p.error("give --peer and --peer-bench (or ABLATE_PEER and ABLATE_PEER_BENCH)")
    return args


def _iterations(text: str, system: str) -> int:
    table = dict(item.split(":") for item in text.split(","))
    return int(table.get(system, 20))


def _last_json(stdout: str, prefix: str = "") -> dict:
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith(prefix) and line[len(prefix):].lstrip().startswith("{"):
            return json.loads(line[len(prefix):])
    raise RuntimeError("no JSON result in the output:\n" + stdout[-2000:])


def run_ablate(system: str, iterations: int, extra: list[str], timeout: float,
               root: Path = HERE.parent) -> dict:
    """benchmarks/iteration.py of the checkout at `root` (an older one may lack --no-split and
    the min/CPU fields: it then also times the step's parts, after the step)."""
    script = root / "benchmarks" / "iteration.py"
    modern = "--no-split" in script.read_text()
    # The same number of timed steps as the peer (its first 6 are warm-up).
    cmd = [sys.executable, str(script), "--system", system, "--scale", "quick",
           "--batch", str(QUICK["batch"]), "--iterations", str(max(iterations - 6, 3)),
           "--warmup", "5", *(["--no-split"] if modern else []), *extra]
    # That checkout's ablate, whatever an installed one says.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(root), os.environ.get("PYTHONPATH")) if p))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                         cwd=root, check=True).stdout
    res = _last_json(out)
    return {"median_ms": res["ms_per_iteration"],
            "min_ms": res.get("min_ms_per_iteration", res["ms_per_iteration"]),
            "cpu_ms": res.get("cpu_ms_per_iteration"), "startup_s": res["startup_s"],
            "laplacian_sparsity": res.get("laplacian_sparsity", 0)}


def run_peer(args, system: str, iterations: int, with_env: bool = True) -> dict:
    peer = Path(args.peer)
    env = dict(os.environ, PYTHONPATH=str(peer / "clone"))
    if with_env:
        env.update(item.split("=", 1) for item in args.peer_env)
    cmd = [str(peer / "venv" / "bin" / "python"), str(Path(args.peer_bench).resolve()),
           "--width", str(QUICK["width"]), "--pairwise", str(QUICK["pairwise"]),
           "--depth", str(QUICK["depth"]), "--dets", str(QUICK["dets"]),
           "--batch", str(QUICK["batch"]), "--pretrain", "2",
           f"{system}:{PEER_LAPLACIAN[args.laplacian]}:{iterations}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env,
                         cwd="/tmp", check=True).stdout
    res = _last_json(out, "RESULT")
    return {"median_ms": res["median_step_ms"], "min_ms": res["min_step_ms"],
            "total_s": res["total_s"]}


def main(argv=None) -> None:
    args = parse(argv)
    sides = ["ablate", "reference"]
    if args.peer_env_both:
        sides.append(args.peer_env_label)
    if args.baseline:
        sides.append("baseline")
    runs = {s: {side: [] for side in sides} for s in args.systems}
    started = time.time()
    for r in range(args.rounds):
        for i, system in enumerate(args.systems):
            n = _iterations(args.iterations, system)
            shift = (r + i) % len(sides)            # each side leads in turn
            order = sides[shift:] + sides[:shift]
            if (r + i) % 2:
                order.reverse()
            for side in order:
                load = os.getloadavg()[0]
                t = time.time()
                lap = ["--laplacian", args.laplacian]
                if side == "ablate":
                    res = run_ablate(system, n, lap + args.ablate_arg, args.timeout)
                elif side == "baseline":
                    res = run_ablate(system, n, lap, args.timeout, Path(args.baseline).resolve())
                else:
                    res = run_peer(args, system, n,
                                   with_env=not args.peer_env_both or side != "reference")
                res.update(round=r, load_before=round(load, 2), wall_s=round(time.time() - t, 1))
                runs[system][side].append(res)
                print(f"round {r} {system:4s} {side:9s} median {res['median_ms']:8.2f} ms"
                      f"  min {res['min_ms']:8.2f} ms  (load {load:.1f})", file=sys.stderr,
                      flush=True)
    table = {}
    for system, sides in runs.items():
        row = {}
        for side, results in sides.items():
            row[side] = {"median_ms": round(statistics.median(r["median_ms"] for r in results), 2),
                         "min_ms": round(min(r["min_ms"] for r in results), 2),
                         "run_medians_ms": [r["median_ms"] for r in results]}
        for side in sides:
            if side == "reference":
                continue
            tag = "" if side == "ablate" else f"_{side}"
            ref = row["reference"]
            row[f"ratio_median{tag}"] = round(row[side]["median_ms"] / ref["median_ms"], 3)
            row[f"ratio_min{tag}"] = round(row[side]["min_ms"] / ref["min_ms"], 3)
        if args.peer_env_both:
            ref = row[args.peer_env_label]
            row[f"ratio_median_vs_{args.peer_env_label}"] = round(
                row["ablate"]["median_ms"] / ref["median_ms"], 3)
        table[system] = row
    loads = [r["load_before"] for s in runs.values() for side in s.values() for r in side]
    print(json.dumps({
        "benchmark": "compare_peer",
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "network": "2 x (32, 8), 4 determinants, batch 128, KFAC, 10 MCMC steps, float32",
        "laplacian": args.laplacian,
        "rounds": args.rounds,
        "peer_env": args.peer_env,
        "ablate_args": args.ablate_arg,
        "load_average_1min": {"min": min(loads), "median": statistics.median(loads),
                              "max": max(loads)},
        "wall_s": round(time.time() - started, 1),
        "systems": table,
        "runs": runs,
    }))


if __name__ == "__main__":
    main()
