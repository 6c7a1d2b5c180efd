"""Study tables and one-line summaries, and ``python -m sweeps status NAME``.

Reads the Optuna storage only (never the run directories), so it works at any time,
from any machine that reaches the storage, while drivers are running.
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ablate.records.errors import ConfigError
from ablate.records.redact import redact_url
from ablate.records.safe_paths import check_path_text, check_study_name
from ablate.records.study_record import TrialRow, default_storage_url, sqlite_path

from .storage import check_storage_url, open_storage

_STATE_ORDER = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "WAITING": 3, "FAIL": 4}


def short_key(key: str) -> str:
    """``network.width`` -> ``width`` (the last part of a flat key)."""
    return key.rsplit(".", 1)[-1]


def format_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "null" if v is None else str(v)


def format_params(params: dict) -> str:
    """``{"network.width": 8, "seed": 0}`` -> ``width=8 seed=0``."""
    shorts = [short_key(k) for k in params]
    keys = [s if shorts.count(s) == 1 else k for k, s in zip(params, shorts)]
    return " ".join(f"{k}={format_value(v)}" for k, v in zip(keys, params.values()))


def study_line(study, n_planned: int | None = None) -> str:
    """``3/8 complete, 2 running, 0 failed, 3 waiting; best 3.21 mHa (t0001)``."""
    trials = study.get_trials(deepcopy=False)
    rows = [TrialRow.from_trial(t) for t in trials]
    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    final_fail = sum(r.state == "FAIL" and not r.requeued for r in rows)
    total = n_planned or study.user_attrs.get("n_planned") or len(trials)
    line = (f"{count[TrialState.COMPLETE]}/{total} complete, {count[TrialState.RUNNING]} running, "
            f"{count[TrialState.WAITING]} waiting, {final_fail} failed")
    if count[TrialState.PRUNED]:
        line += f", {count[TrialState.PRUNED]} pruned"
    done = [r for r in rows if r.state == "COMPLETE" and r.value is not None]
    if len(study.directions) > 1:
        line += _front_text(study, rows)
    elif done:
        sign = 1 if study.direction.name == "MINIMIZE" else -1
        best = min(done, key=lambda r: sign * r.value)
        objective = study.user_attrs.get("objective")
        unit = "mHa" if objective == "error_mha" and best.attr("error_mha") is not None else "Ha"
        unit = _UNITS[objective][1].strip() if objective in ("device_seconds", "training_flops") else unit
        line += f"; best {best.value:.4f} {unit} ({best.run_id}: {format_params(best.params)})"
    return line


_UNITS = {"error_mha": ("{:.2f}", " mHa"), "energy": ("{:.5f}", " Ha"), "device_seconds": ("{:.0f}", " device-s"),
          "training_flops": ("{:.3g}", " FLOP")}


def objective_names(study) -> list[str]:
    """The objectives of a study as recorded by the driver (``objective`` attribute)."""
    names = study.user_attrs.get("objective")
    names = names if isinstance(names, list) else [names or "objective"]
    return [str(n) for n in names]


def front_numbers(study) -> set[int]:
    """Trial numbers on the Pareto front of a multi-objective study (Optuna's ``best_trials``)."""
    try:
        return {t.number for t in study.best_trials}
    except (RuntimeError, ValueError):
        return set()


def _front_text(study, rows) -> str:
    """``; Pareto front (3): t0002 3.21 mHa 75 device-s, ...`` for a multi-objective study."""
    front = front_numbers(study)
    if not front:
        return ""
    names = objective_names(study)
    shown = []
    for r in sorted((r for r in rows if r.number in front), key=lambda r: r.values[0] if r.values else 0.0)[:4]:
        vals = " ".join((_UNITS.get(n, ("{:.4g}", ""))[0].format(v) + _UNITS.get(n, ("", ""))[1]) if v is not None else "?"
                        for n, v in zip(names, r.values))
        shown.append(f"{r.run_id} {vals}")
    more = ", ..." if len(front) > len(shown) else ""
    return f"; Pareto front ({len(front)}): " + ", ".join(shown) + more


def format_table(study) -> str:
    """A plain-text table of every trial: params, state, energy ± error, error in mHa, wall time."""
    rows = sorted((TrialRow.from_trial(t) for t in study.get_trials(deepcopy=False)), key=lambda r: r.number)
    keys = list(dict.fromkeys(k for r in rows for k in r.params))
    shorts = [short_key(k) for k in keys]
    multi = len(study.directions) > 1
    front = front_numbers(study) if multi else set()
    heads = ["trial", "run"] + [s if shorts.count(s) == 1 else k for k, s in zip(keys, shorts)] + \
        ["state", "energy (Ha)", "error (mHa)", "wall (s)"] + (["device (s)", "front"] if multi else []) + ["note"]
    body = []
    for r in rows:
        e, err, mha, wall = (r.attr(k) for k in ("energy", "energy_stderr", "error_mha", "wall_time_s"))
        energy = "" if not _num(e) else (f"{e:.5f} ± {err:.5f}" if _num(err) else f"{e:.5f}")
        dev = r.attr("device_seconds")
        extra = [f"{dev:.0f}" if _num(dev) else "", "yes" if r.number in front else ""] if multi else []
        body.append([str(r.number), r.run_id]
                    + [format_value(r.params[k]) if k in r.params else "" for k in keys]
                    + [r.state + ("*" if r.requeued else ""), energy, f"{mha:.2f}" if _num(mha) else "",
                       f"{wall:.0f}" if _num(wall) else ""] + extra + [_clip(r.reason or "", 60)])
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(heads)]
    lines = [f"study {study.study_name}: {study_line(study)}",
             "  ".join(h.ljust(w) for h, w in zip(heads, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in body]
    if any(r.requeued for r in rows):
        lines.append("FAIL* = failed and enqueued again (the trial with the same run id resumed it)")
    return "\n".join(lines)


def show_status(name: str, storage_url: str | None = None, output_root: str = "runs") -> int:
    """Print the study table; ConfigError when the storage or study does not exist."""
    check_study_name("study", name)
    check_path_text("--output-root", output_root)
    url = storage_url or default_storage_url(Path(output_root))
    check_storage_url(url, "--storage")   # a password in the URL: refused, never printed
    db = sqlite_path(url)
    if db is not None and not db.exists():
        raise ConfigError("--storage", url, "an existing study storage (run a sweep first, or give --output-root/--storage)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url, key="--storage")
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = sorted(optuna.get_all_study_names(storage=storage))
        raise ConfigError("study", name, f"one of the studies in {redact_url(url)}: "
                                         f"{', '.join(names) or '(none)'}") from None
    print(format_table(study))
    for line in next_commands(name, Path(output_root), url):
        print(line)
    return 0


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def location_args(output_root: Path, storage_url: str) -> str:
    """`` --output-root ROOT --storage URL`` for the commands that read a study, each only when
    it is not the default (the password redacted)."""
    root = Path(output_root).resolve()
    extra = ""
    if root != Path("runs").resolve():
        extra += f" --output-root {shlex.quote(str(root))}"
    if sqlite_path(storage_url) != root / "studies.db":
        extra += f" --storage {shlex.quote(redact_url(storage_url))}"
    return extra


def next_commands(study: str, output_root: Path, storage_url: str, figure: Path | None = None) -> list[str]:
    """The lines naming what to run next: the analysis, the table, optuna-dashboard, wandb sync."""
    root = Path(output_root).resolve()
    extra = location_args(root, storage_url)
    name = shlex.quote(study)
    lines = [f"next: python -m analysis {name}{extra}    # figures, claims report and tables in {root / study}"]
    if figure is not None:
        lines.append(f"      (the sweep figure is already written: {figure})")
    lines.append(f"      python -m sweeps status {name}{extra}    # the trial table, at any time")
    lines.append(f"      optuna-dashboard {shlex.quote(redact_url(storage_url))}    # browse the study in a web page")
    if any((root / study).glob("*/wandb/offline-run-*")):
        lines.append(f"      wandb sync {shlex.quote(str(root / study))}/*/wandb/offline-run-*"
                     "    # upload the offline W&B runs (wandb login first)")
    return lines
