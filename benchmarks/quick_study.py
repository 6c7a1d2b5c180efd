"""The main job, measured: ``python -m ablate +sweep=width`` (LiH, quick scale, 8 trials) end to end.

Runs the study through the real CLI in a fresh output root and prints one JSON object: the
study's wall time and trials/hour, the wall seconds of every trial by phase (setup, pretrain,
burn_in, train, flop_count, eval, from its summary.json), its start-up and compile seconds,
the evaluation length the stopping rule chose, the compilation-cache hits, the traced programs
read from or written to its store (ablate.runtime.program_store), and the claim
lines of ``python -m analysis width``, so that the next change is measured the same way.

``--cache cold`` starts from an empty compilation cache folder (``ABLATE_CACHE_DIR`` set to a
new folder under the output root); ``--cache warm`` uses the folder given by ``--cache-dir``
(run once cold with the same folder first) or the per-user one. Examples (2-core CPU)::

    python benchmarks/quick_study.py --cache cold --cache-dir /tmp/qs-cache
    python benchmarks/quick_study.py --cache warm --cache-dir /tmp/qs-cache
    python benchmarks/quick_study.py --cache cold sweep.workers=1     # one worker, for comparison
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ablate.records.run_record import RunSummary  # noqa: E402


def trial_rows(study_dir: Path) -> list[dict]:
    rows = []
    for path in sorted(study_dir.glob("t*/summary.json")):
        s = RunSummary.read(path.parent)
        rows.append({
            "trial": path.parent.name, "params": s.params, "seed": s.seed, "status": s.status,
            "error_mha": None if s.error_mha is None else round(s.error_mha, 3),
            "error_stderr_mha": None if s.error_stderr_mha is None else round(s.error_stderr_mha, 3),
            "evaluation_iterations": s.evaluation_iterations,
            "wall_s": None if s.wall_time_s is None else round(s.wall_time_s, 1),
            "wall_s_by_phase": {k: round(v, 1) for k, v in (s.wall_s_by_phase or {}).items()},
            "startup_s": None if s.startup_s is None else round(s.startup_s, 1),
            "compile_s": round((s.startup or {}).get("compile", 0.0), 1),
            "cache": s.compilation_cache,
            "ms_per_iteration": None if s.ms_per_iteration is None else round(s.ms_per_iteration, 1),
        })
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", choices=("cold", "warm"), default="cold")
    p.add_argument("--cache-dir", default=None, help="compilation cache folder (cold: emptied first)")
    p.add_argument("--output-root", default=None, help="default: a new temporary folder")
    p.add_argument("--sweep", default="width", help="the sweep file (default: the main job's)")
    p.add_argument("override", nargs="*", help="extra overrides (sweep.workers=1, evaluation.*=...)")
    a = p.parse_args()

    out = Path(a.output_root or tempfile.mkdtemp(prefix="quick_study_")).resolve()
    cache = Path(a.cache_dir).resolve() if a.cache_dir else (out / "jax_cache" if a.cache == "cold" else None)
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    if cache is not None:
        if a.cache == "cold":
            shutil.rmtree(cache, ignore_errors=True)
        env["ABLATE_CACHE_DIR"] = str(cache)
    args = [sys.executable, "-m", "ablate", f"+sweep={a.sweep}", f"output_root={out}", "logger=none",
            "sweep.progress_every_s=600", *a.override]
    t0 = time.perf_counter()
    res = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"study failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    name = a.sweep
    for o in a.override:
        if o.startswith("sweep.name="):
            name = o.split("=", 1)[1]
    rows = trial_rows(out / name)
    analysis = subprocess.run([sys.executable, "-m", "analysis", name, "--output-root", str(out)],
                              cwd=ROOT, env=env, capture_output=True, text=True)
    claims = [line for line in analysis.stdout.splitlines() if line.lstrip().startswith("[")]
    hits = sum((r["cache"] or {}).get("hits", 0) for r in rows)
    requests = sum((r["cache"] or {}).get("requests", 0) for r in rows)
    loaded = sum((r["cache"] or {}).get("programs_loaded", 0) for r in rows)
    written = sum((r["cache"] or {}).get("programs_written", 0) for r in rows)
    print(json.dumps({
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "command": " ".join(args[1:]), "cache": a.cache, "cache_dir": None if cache is None else str(cache),
        "wall_s": round(wall, 1), "trials": len(rows),
        "trials_per_hour": round(len(rows) * 3600 / wall, 1) if rows else None,
        "cache_hits": hits, "cache_requests": requests,
        "programs_loaded": loaded, "programs_written": written,
        "claims": claims, "trials_detail": rows, "output_root": str(out),
    }, indent=2))


if __name__ == "__main__":
    main()
