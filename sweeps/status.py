"""Study tables and one-line summaries, and ``python -m sweeps status NAME``.

Reads the Optuna storage only (never the run directories), so it works at any time,
from any machine that reaches the storage, while drivers are running.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ablate.errors import ConfigError

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
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    final_fail = sum(t.state == TrialState.FAIL and not t.user_attrs.get("requeued") for t in trials)
    total = n_planned or study.user_attrs.get("n_planned") or len(trials)
    line = (f"{count[TrialState.COMPLETE]}/{total} complete, {count[TrialState.RUNNING]} running, "
            f"{count[TrialState.WAITING]} waiting, {final_fail} failed")
    if count[TrialState.PRUNED]:
        line += f", {count[TrialState.PRUNED]} pruned"
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if done:
        sign = 1 if study.direction.name == "MINIMIZE" else -1
        best = min(done, key=lambda t: sign * t.value)
        unit = "mHa" if study.user_attrs.get("objective") == "error_mha" and best.user_attrs.get("error_mha") is not None else "Ha"
        line += f"; best {best.value:.4f} {unit} ({best.user_attrs.get('run_id', f't{best.number:04d}')}: {format_params(best.params)})"
    return line


def trial_rows(study) -> list[dict]:
    """One dict per trial, for tables (and tests): number, run_id, state, params, results."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        params = t.params or t.system_attrs.get("fixed_params", {})
        rows.append({
            "number": t.number,
            "run_id": a.get("run_id", f"t{t.number:04d}"),
            "state": t.state.name + ("*" if t.state.name == "FAIL" and a.get("requeued") else ""),
            "params": params,
            "energy": a.get("energy"),
            "energy_stderr": a.get("energy_stderr"),
            "error_mha": a.get("error_mha"),
            "wall_time_s": a.get("wall_time_s"),
            "reason": a.get("fail_reason") if t.state.name == "FAIL" else None,
        })
    return rows


def format_table(study) -> str:
    """A plain-text table of every trial: params, state, energy ± error, error in mHa, wall time."""
    rows = trial_rows(study)
    keys = list(dict.fromkeys(k for r in rows for k in r["params"]))
    shorts = [short_key(k) for k in keys]
    heads = ["trial", "run"] + [s if shorts.count(s) == 1 else k for k, s in zip(keys, shorts)] + \
        ["state", "energy (Ha)", "error (mHa)", "wall (s)", "note"]
    body = []
    for r in sorted(rows, key=lambda r: r["number"]):
        e, err = r["energy"], r["energy_stderr"]
        energy = "" if not _num(e) else (f"{e:.5f} ± {err:.5f}" if _num(err) else f"{e:.5f}")
        body.append([str(r["number"]), r["run_id"]]
                    + [format_value(r["params"][k]) if k in r["params"] else "" for k in keys]
                    + [r["state"], energy, f"{r['error_mha']:.2f}" if _num(r["error_mha"]) else "",
                       f"{r['wall_time_s']:.0f}" if _num(r["wall_time_s"]) else "", _clip(r["reason"] or "", 60)])
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(heads)]
    lines = [f"study {study.study_name}: {study_line(study)}",
             "  ".join(h.ljust(w) for h, w in zip(heads, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in body]
    if any(r["state"] == "FAIL*" for r in rows):
        lines.append("FAIL* = failed and enqueued again (the trial with the same run id resumed it)")
    return "\n".join(lines)


def show_status(name: str, storage_url: str | None = None, output_root: str = "runs") -> int:
    """Print the study table; ConfigError when the storage or study does not exist."""
    import optuna

    from .storage import default_storage_url, open_storage, sqlite_path

    url = storage_url or default_storage_url(Path(output_root))
    db = sqlite_path(url)
    if db is not None and not db.exists():
        raise ConfigError("--storage", url, "an existing study storage (run a sweep first, or give --output-root/--storage)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = sorted(optuna.get_all_study_names(storage=storage))
        raise ConfigError("study", name, f"one of the studies in {url}: {', '.join(names) or '(none)'}") from None
    print(format_table(study))
    return 0


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"

