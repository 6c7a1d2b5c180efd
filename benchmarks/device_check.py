"""The GPU check: one command that proves the GPU path and measures it beside the reference.

    python benchmarks/device_check.py --out DIR            # the real check, about 6 minutes on an H100
    python benchmarks/device_check.py --out DIR --smoke    # the same code paths at tiny sizes (CPU, CI)
    python benchmarks/device_check.py --out DIR --only precision,sweep_k4   # a subset, e.g. a rerun

Writes DIR/device_check.jsonl, one JSON object per measurement, appended and flushed as each
finishes (a run cut short keeps what it measured), DIR/device_check.log (every task's output),
and prints a table at the end. The measurements (``kind``):

- ``environment``: Python, JAX, kfac-jax, folx, optuna versions, the devices, and that the
  engine, the sweep driver and their imports load.
- ``iteration``: LiH, Ne and N2 with the paper network (4 x (256, 32), 16 determinants, batch
  4096, 10 MCMC steps, KFAC, forward Laplacian): ms per training iteration, its split
  (sampling, local energy, gradient, optimiser update), config to first iteration, peak device
  memory, and the ratio to the reference's H100 figure (../shared/reference/peer_h100.md).
  The timing code is benchmarks/iteration.py's ``measure``.
- ``sweep``: trials per hour of the sweep-shaped trial (LiH, 2 x (64, 16), 4 determinants,
  batch 512, 500 KFAC iterations, then a 200-iteration evaluation) through the real sweep
  driver (``python -m ablate +sweep=...``), k = 1 and k = 4 trials per GPU, 8 trials each,
  workers kept warm, after one short study that fills the compilation cache for both.
- ``precision``: the energy of one fixed wave function (Ne, paper network at its seed-0
  initialisation, walkers burned in) over a few hundred frozen-parameter MCMC iterations,
  E_L evaluated on the same walkers with float32 matmuls at JAX's default precision and at
  ``highest``; their difference in mHa with a reblocked error bar (of the per-iteration
  difference series: the same walkers make the two series strongly correlated).

Each measurement runs in its own process (so one crash, out-of-memory or hang costs only its
own line, and no process holds GPU memory that the next one needs) under its own time
budget, all within ``--budget-s``. Nothing here imports pyscf or wandb (pretrain=none,
logger=none); every line lists the heavy modules its process imported.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The reference implementation on one H100 (../shared/reference/peer_h100.md, 2026-11-25):
# ms per training iteration, paper network, batch 4096, forward Laplacian (folx).
REFERENCE_H100_MS = {"LiH": 30.8, "Ne": 73.5, "N2": 135.0}
# Its sweep-shaped trial: trials per hour one at a time, and four packed on the one GPU.
REFERENCE_H100_TRIALS_PER_HOUR = {1: 51.0, 4: 157.0}
HEAVY_MODULES = ("pyscf", "wandb", "tensorflow", "torch")
SYSTEMS = ("LiH", "Ne", "N2")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Everything that differs between the real check and --smoke."""

    iteration_systems: tuple[str, ...]
    iteration_args: tuple[str, ...]       # benchmarks/iteration.py flags (network, batch)
    timed: int                            # timed training iterations
    split_timed: int                      # timed calls of each part alone
    warmup: int
    sweep_trial: tuple[str, ...]          # overrides of one sweep trial
    sweep_trials: int
    sweep_ks: tuple[int, ...]
    sweep_prewarm: bool
    precision_system: str
    precision_burn_in: int                # MCMC iterations before the frozen evaluation
    precision_iterations: int
    budget_s: float                       # the whole check
    budgets: dict                         # task name -> seconds (absent: only the whole budget)


REAL = Sizes(
    iteration_systems=SYSTEMS,
    iteration_args=("--scale", "paper"),
    timed=20, split_timed=10, warmup=2,
    sweep_trial=("system=LiH", "scale=quick", "network.width=64", "network.depth=2",
                 "network.pairwise_width=16", "network.determinants=4", "batch_size=512",
                 "mcmc.steps=10", "optim.iterations=500", "mcmc.burn_in=100",
                 "evaluation.iterations=200", "evaluation.burn_in=50", "pretrain=none",
                 "logger=none"),
    sweep_trials=8, sweep_ks=(1, 4), sweep_prewarm=True,
    precision_system="Ne", precision_burn_in=100, precision_iterations=300,
    budget_s=400.0,   # with the install, 7 minutes on the GPU machine
    budgets={"environment": 30, "iteration_LiH": 50, "iteration_Ne": 60, "iteration_N2": 90,
             "sweep_k1": 110, "sweep_k4": 60, "precision": 50},
)

SMOKE = Sizes(
    iteration_systems=("LiH",),
    iteration_args=("--scale", "quick", "--width", "16", "--depth", "1", "--pairwise", "4",
                    "--determinants", "2", "--batch", "32", "--steps", "2"),
    timed=3, split_timed=2, warmup=1,
    sweep_trial=("system=LiH", "scale=quick", "network.width=8", "network.depth=1",
                 "network.pairwise_width=4", "network.determinants=1", "batch_size=32",
                 "mcmc.steps=2", "optim.iterations=10", "mcmc.burn_in=5",
                 "evaluation.iterations=10", "evaluation.burn_in=5", "pretrain=none",
                 "logger=none"),
    sweep_trials=2, sweep_ks=(1, 2), sweep_prewarm=False,
    precision_system="Ne", precision_burn_in=5, precision_iterations=20,
    budget_s=900.0,   # a ceiling for a loaded machine; about 2-3 minutes on an idle 2-core CPU
    budgets={},       # no per-task ceilings: only the whole budget
)
MIN_TASK_S = 10.0   # a task is skipped when less than this is left of the whole budget


def task_names(sizes: Sizes) -> list[str]:
    return (["environment"] + [f"iteration_{s}" for s in sizes.iteration_systems]
            + [f"sweep_k{k}" for k in sizes.sweep_ks] + ["precision"])


# --- records ----------------------------------------------------------------------------------


def heavy_modules() -> list[str]:
    """The heavy optional modules this process has imported (none is expected)."""
    return sorted(m for m in HEAVY_MODULES if m in sys.modules)


def append_record(out: Path, record: dict) -> None:
    """Appends one JSON line to out/device_check.jsonl and makes it durable at once."""
    record = {"time": datetime.datetime.now().isoformat(timespec="seconds"), **record}
    with open(out / "device_check.jsonl", "a") as fh:
        fh.write(json.dumps(record, default=_jsonable) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _jsonable(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


def _ratio(value, reference):
    return round(value / reference, 3) if value is not None and reference else None


# --- the tasks (each runs in its own process) -------------------------------------------------


def task_environment(sizes: Sizes, work: Path) -> list[dict]:
    import importlib.metadata as md

    import jax

    import ablate.vmc.run  # noqa: F401 - the engine and everything it imports
    import ablate.vmc.training  # noqa: F401
    import sweeps.driver  # noqa: F401 - the sweep driver (optuna is imported where it is used)

    import folx  # noqa: F401
    import kfac_jax
    import optuna  # noqa: F401

    def version(dist):
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    device = jax.devices()[0]
    try:
        stats = device.memory_stats() or {}
    except Exception:  # noqa: BLE001
        stats = {}
    # The sweep driver finds GPUs without JAX (CUDA_VISIBLE_DEVICES or nvidia-smi -L); the
    # sweep tasks fall back on this count where neither is there.
    gpu_count = sum(d.platform == "gpu" for d in jax.devices())
    (work / "environment.json").write_text(json.dumps({"gpu_count": gpu_count}))
    return [{
        "python": platform.python_version(),
        "versions": {d: version(d) for d in (
            "jax", "jaxlib", "kfac-jax", "folx", "optax", "chex", "numpy", "scipy", "distrax",
            "tfp-nightly", "hydra-core", "omegaconf", "optuna", "SQLAlchemy")},
        "kfac_jax_path": str(Path(kfac_jax.__file__).parent),
        "backend": jax.default_backend(),
        "devices": [f"{d.platform}:{getattr(d, 'device_kind', '')}" for d in jax.devices()],
        "device_memory_bytes": stats.get("bytes_limit"),
        "default_matmul_precision": str(jax.config.jax_default_matmul_precision),
        "nvidia_smi": _nvidia_smi(),
        "pack": _pack_manifest(),
    }]


def _pack_manifest() -> str | None:
    """The kfac-jax commit line of .device/MANIFEST.txt (benchmarks/device_pack.sh), if any."""
    path = ROOT / ".device" / "MANIFEST.txt"
    if not path.exists():
        return None
    return next((l for l in path.read_text().splitlines() if l.startswith("kfac-jax")), None)


def _nvidia_smi() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def task_iteration(sizes: Sizes, work: Path, system: str) -> list[dict]:
    import iteration

    args = iteration.parse(["--system", system, *sizes.iteration_args,
                            "--override", f"output_root={work / 'runs'}"])
    record = iteration.measure(iteration.overrides(args), sizes.timed, sizes.warmup,
                               sizes.split_timed)
    reference = REFERENCE_H100_MS.get(system)
    record.update(
        reference_h100_ms=reference,
        ratio_to_reference=_ratio(record["ms_per_iteration"], reference),
        same_card_as_reference="H100" in record["device"],
        peak_memory_gib=(round(record["peak_memory_bytes"] / 2**30, 3)
                         if record["peak_memory_bytes"] is not None else None),
    )
    return [record]


def task_sweep(sizes: Sizes, work: Path, k: int) -> list[dict]:
    """One study of ``sizes.sweep_trials`` trials (seeds 0..n-1) through the real driver."""
    import sweep_throughput
    from sweeps.workers import detect_gpus

    gpus = detect_gpus()
    seen = work / "environment.json"
    if not gpus and seen.exists():
        gpus = [str(i) for i in range(json.loads(seen.read_text())["gpu_count"])]
    if gpus:
        gpu_list = "[" + ",".join(gpus) + "]"
        slots = [f"sweep.gpus={gpu_list}", f"sweep.trials_per_gpu={k}"]
    else:
        slots = [f"sweep.workers={k}", "sweep.gpus=[]"]
    out = work / "sweeps"
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    tag = time.strftime("%H%M%S")
    prewarm_s = None
    if sizes.sweep_prewarm and not (out / "prewarmed").exists():
        # One short trial of the same shapes fills the persistent compilation cache, so the
        # measured studies (k = 1 and k = 4 alike) start on a warm cache.
        t0 = time.perf_counter()
        short = [o for o in sizes.sweep_trial if not o.startswith(("optim.iterations=",
                 "evaluation.iterations=", "evaluation.burn_in=", "mcmc.burn_in="))]
        short += ["optim.iterations=5", "evaluation.iterations=5", "evaluation.burn_in=2",
                  "mcmc.burn_in=2"]
        one = slots[:1] + ["sweep.trials_per_gpu=1"] if gpus else ["sweep.workers=1", "sweep.gpus=[]"]
        sweep_throughput.run_study(out, f"prewarm{tag}", 1, short, one, env)
        prewarm_s = round(time.perf_counter() - t0, 1)
        (out / "prewarmed").touch()
    result = sweep_throughput.run_study(out, f"k{k}t{tag}", sizes.sweep_trials,
                                        list(sizes.sweep_trial), slots, env)
    reference = REFERENCE_H100_TRIALS_PER_HOUR.get(k)
    later = result["later_trials"]["median_wall_s"]
    return [{
        "trials_per_gpu": k, "slots": "gpu" if gpus else "cpu", "gpus": gpus,
        "trials": sizes.sweep_trials, "trial_overrides": list(sizes.sweep_trial),
        **result,
        # k workers each finishing a trial every `later` seconds: a long sweep's rate once
        # its workers are warm (worker start-up amortised away)
        "steady_trials_per_hour": round(k * 3600 / later, 1) if later else None,
        "prewarm_s": prewarm_s,
        "reference_h100_trials_per_hour": reference,
        "ratio_to_reference": _ratio(result["trials_per_hour"], reference),
    }]


def task_precision(sizes: Sizes, work: Path) -> list[dict]:
    """E_L of the same walkers at default and at highest float32 matmul precision."""
    import iteration
    import jax
    import numpy as np

    from ablate.config.compose import compose
    from ablate.config.experiment import validate
    from ablate.records.stats import reblock
    from ablate.runtime.jax_setup import setup_jax
    from ablate.vmc import training

    args = iteration.parse(["--system", sizes.precision_system, *sizes.iteration_args,
                            "--override", f"output_root={work / 'runs'}"])
    experiment = validate(compose(iteration.overrides(args)))
    setup_jax(experiment.run.precision)
    engine = training.build_engine(experiment)
    state = training.initial_state(engine)
    t0 = time.perf_counter()
    state = training.burn_in(engine, state, sizes.precision_burn_in, training.Progress(False),
                             "burn-in")
    params, walkers, key, width = state.params, state.walkers, state.key, state.width
    batch_e_local = engine.programs.batch_local_energy

    def compiled(precision: str | None):
        """E_L of a batch, lowered (and so traced) under one default matmul precision."""
        if precision is None:
            lowered = jax.jit(batch_e_local).lower(params, walkers)
        else:
            with jax.default_matmul_precision(precision):
                lowered = jax.jit(batch_e_local).lower(params, walkers)
        text = lowered.as_text()
        dots = {p: text.count(f"precision = [{p}, {p}]") for p in ("DEFAULT", "HIGHEST")}
        return lowered.compile(), dots

    e_default, dots_default = compiled(None)
    e_highest, dots_highest = compiled("highest")
    burn_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    default, highest, diff, rms = [], [], [], []
    for _ in range(sizes.precision_iterations):
        walkers, key, width, _ = engine.mcmc_iteration(params, walkers, key, width,
                                                       adapt_now=False)
        a = np.asarray(e_default(params, walkers), np.float64)
        b = np.asarray(e_highest(params, walkers), np.float64)
        default.append(a.mean())
        highest.append(b.mean())
        diff.append((a - b).mean())
        rms.append(np.sqrt(np.mean((a - b) ** 2)))
    eval_s = time.perf_counter() - t0
    d, h, x = reblock(default), reblock(highest), reblock(diff)
    device = jax.devices()[0]
    return [{
        "system": experiment.system.name,
        "batch_size": experiment.run.batch_size,
        "hidden_dims": [list(dims) for dims in experiment.hidden_dims],
        "determinants": experiment.network.determinants,
        "wave_function": f"seed-{experiment.run.seed} initialisation (untrained), walkers burned in "
                         f"for {sizes.precision_burn_in} MCMC iterations",
        "iterations": sizes.precision_iterations,
        "device": f"{device.platform}:{getattr(device, 'device_kind', '')}",
        "energy_default_ha": d.mean, "energy_default_stderr_ha": d.stderr,
        "energy_highest_ha": h.mean, "energy_highest_stderr_ha": h.stderr,
        "difference_mha": 1e3 * x.mean, "difference_stderr_mha": 1e3 * x.stderr,
        "difference_block_size": x.block_size,
        "walker_rms_difference_mha": 1e3 * float(np.mean(rms)),
        "finite": bool(np.all(np.isfinite(default + highest + diff))),
        "dot_precision_in_hlo": {"default": dots_default, "highest": dots_highest},
        "compile_and_burn_in_s": round(burn_s, 2), "evaluation_s": round(eval_s, 2),
    }]


def run_task(name: str, sizes: Sizes, work: Path) -> list[dict]:
    if name == "environment":
        return task_environment(sizes, work)
    if name.startswith("iteration_"):
        return task_iteration(sizes, work, name.split("_", 1)[1])
    if name.startswith("sweep_k"):
        return task_sweep(sizes, work, int(name[len("sweep_k"):]))
    if name == "precision":
        return task_precision(sizes, work)
    raise SystemExit(f"device_check: unknown task {name!r}")


def kind_of(name: str) -> str:
    return name.split("_", 1)[0]


def child_main(args) -> int:
    """One task in this process: its records go straight to the JSON lines file."""
    sizes = SMOKE if args.smoke else REAL
    out, work = Path(args.out), Path(args.work)
    t0 = time.perf_counter()
    for record in run_task(args.task, sizes, work):
        append_record(out, {"kind": kind_of(args.task), "task": args.task, "status": "ok",
                            "smoke": args.smoke, **record,
                            "task_wall_s": round(time.perf_counter() - t0, 2),
                            "heavy_modules": heavy_modules()})
    return 0


# --- the parent: runs the tasks in turn, each in a fresh process with a deadline ---------------


def run_child(name: str, args, out: Path, work: Path, timeout: float, env: dict) -> tuple[str, str]:
    """Runs one task; returns (status, tail of its output). Kills its whole process group
    (the sweep driver and its workers included) when the deadline passes."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--task", name, "--out", str(out),
           "--work", str(work)] + (["--smoke"] if args.smoke else [])
    log = out / "device_check.log"
    with open(log, "a") as fh:
        fh.write(f"\n===== {name} (timeout {timeout:.0f} s) {datetime.datetime.now():%H:%M:%S}\n")
        fh.flush()
        start = fh.tell()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
            status = "ok" if code == 0 else f"failed (exit code {code})"
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            status = f"timeout after {timeout:.0f} s"
    with open(log) as fh:
        fh.seek(start)
        tail = fh.read()[-2500:]
    return status, tail


def _kill_group(proc) -> None:
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def parent_main(args) -> int:
    sizes = SMOKE if args.smoke else REAL
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="device_check_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    names = task_names(sizes)
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        unknown = [w for w in wanted if w not in names and w not in {kind_of(n) for n in names}]
        if unknown:
            print(f"--only: {','.join(unknown)}: allowed: {', '.join(names)} or a kind "
                  "(iteration, sweep)", file=sys.stderr)
            return 2
        names = [n for n in names if n in wanted or kind_of(n) in wanted]
    budget = args.budget_s or sizes.budget_s
    env = dict(os.environ)
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")   # one task never starves the next
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(work / "jax_cache"))
    # as ablate.runtime.jax_setup does when it sets the cache itself: every program (MIN_COMPILE_TIME_S;
    # JAX's default keeps only those that took >= 1 s)
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in
                                        env.get("PYTHONPATH", "").split(os.pathsep) if p])
    if args.smoke:
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # XLA:CPU cache-load noise
    append_record(out, {"kind": "plan", "status": "ok", "smoke": args.smoke, "tasks": names,
                        "budget_s": budget, "budgets_s": {n: sizes.budgets.get(n) for n in names},
                        "commit": _git_commit(), "host": platform.node(),
                        "python": platform.python_version()})
    print(f"device_check: {len(names)} tasks within {budget:.0f} s -> {out / 'device_check.jsonl'}",
          flush=True)
    deadline = time.monotonic() + budget
    for name in names:
        left = deadline - time.monotonic()
        timeout = min(float(sizes.budgets.get(name, left)), left)
        if timeout < MIN_TASK_S:
            append_record(out, {"kind": kind_of(name), "task": name, "status": "skipped",
                                "reason": f"{left:.0f} s left of the {budget:.0f} s budget"})
            print(f"  {name:16s} skipped ({left:.0f} s left)", flush=True)
            continue
        t0 = time.monotonic()
        status, tail = run_child(name, args, out, work, timeout, env)
        wall = time.monotonic() - t0
        if status != "ok":
            append_record(out, {"kind": kind_of(name), "task": name, "status": status,
                                "wall_s": round(wall, 1), "output_tail": tail})
        print(f"  {name:16s} {status} in {wall:.0f} s", flush=True)
    print(format_table(read_records(out)), flush=True)
    records = read_records(out)
    failed = [r for r in records if r.get("kind") != "plan" and r.get("status") != "ok"]
    return 1 if failed else 0


def read_records(out: Path) -> list[dict]:
    path = Path(out) / "device_check.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _fmt(x, spec="{:.1f}") -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else spec.format(x)


def format_table(records: list[dict]) -> str:
    """A short human table of the latest run in the records."""
    starts = [i for i, r in enumerate(records) if r.get("kind") == "plan"]
    records = records[starts[-1]:] if starts else records
    lines = [f"{'measurement':22s} {'value':>34s} {'reference':>12s} {'ratio':>6s}  notes"]
    for r in records:
        kind, status = r.get("kind"), r.get("status")
        if kind == "plan":
            continue
        if status != "ok":
            lines.append(f"{r.get('task', kind):22s} {status}")
            continue
        if kind == "environment":
            v = r["versions"]
            lines.append(f"{'environment':22s} {', '.join(r['devices'])[:34]:>34s} {'':>12s} {'':>6s}"
                         f"  jax {v['jax']}, kfac-jax {v['kfac-jax']}, folx {v['folx']}")
        elif kind == "iteration":
            s = r["split_ms"]
            lines.append(
                f"{'iteration ' + r['system']:22s} {_fmt(r['ms_per_iteration']) + ' ms/it':>34s} "
                f"{_fmt(r['reference_h100_ms']) + ' ms':>12s} {_fmt(r['ratio_to_reference'], '{:.2f}'):>6s}"
                f"  sample {_fmt(s['sampling'])} E_L {_fmt(s['local_energy'])} grad "
                f"{_fmt(s['gradient_incl_local_energy'])} opt {_fmt(s['optimizer_update'])} ms; "
                f"start-up {_fmt(r['config_to_first_iteration_s'])} s; peak "
                f"{_fmt(r['peak_memory_gib'], '{:.2f}')} GiB")
        elif kind == "sweep":
            later = r.get("later_trials") or {}
            lines.append(
                f"{'sweep k=' + str(r['trials_per_gpu']):22s} "
                f"{_fmt(r['trials_per_hour']) + ' trials/h':>34s} "
                f"{_fmt(r['reference_h100_trials_per_hour']) + '/h':>12s} "
                f"{_fmt(r['ratio_to_reference'], '{:.2f}'):>6s}  {r['trials']} trials in "
                f"{_fmt(r['wall_s'])} s; warm trial {_fmt(later.get('median_wall_s'))} s, "
                f"start-up {_fmt(later.get('median_startup_s'))} s")
        elif kind == "precision":
            lines.append(
                f"{'precision ' + r['system']:22s} "
                f"{_fmt(r['difference_mha'], '{:+.3f}') + ' +- ' + _fmt(r['difference_stderr_mha'], '{:.3f}') + ' mHa':>34s} "
                f"{'':>12s} {'':>6s}  default - highest; E(default) "
                f"{_fmt(r['energy_default_ha'], '{:.4f}')} Ha; per-walker rms "
                f"{_fmt(r['walker_rms_difference_mha'], '{:.2f}')} mHa")
    return "\n".join(lines)


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for device_check.jsonl and .log")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, any device (CI)")
    p.add_argument("--only", help="comma-separated tasks or kinds (environment, iteration, "
                                  "iteration_N2, sweep, sweep_k4, precision)")
    p.add_argument("--budget-s", type=float, help="seconds for the whole check "
                                                  f"(default {REAL.budget_s:.0f}; smoke {SMOKE.budget_s:.0f})")
    p.add_argument("--work", help="scratch folder for run directories, studies and the "
                                  "compilation cache (default: a new temporary folder)")
    p.add_argument("--task", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    if args.task:
        return child_main(args)
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
