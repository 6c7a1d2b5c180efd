"""``report.html``: one self-contained page per study (no network needed to view it).

The page holds, in order: the study's name and status line, then the first screen a reader needs:
for each topic one headline per claim (verdict, effect size, the budget or "in the limit":
:meth:`analysis.verdicts.Claim.headline`) with the topic's figure beside it and the statistics
folded underneath in ``<details>`` (the same :class:`analysis.verdicts.Claim` objects the text
report prints, each rendered as ``[verdict] statement: scope; evidence``), the study notes folded
apart; then the provenance, folded (study, system, scale, sweep file, the git commit of the code
that ran the trials and of the analysis, package versions, the machines); then the trial table, the other
figures with their captions (PNG embedded as base64 ``data:`` URIs), the Pareto front and the
extrapolated limits, and the notes. Inline CSS only: no script, no external link, no web font.
"""

from __future__ import annotations

import base64
import datetime
import html
import math
import platform
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd

from .records import RunSummary, git_commit, package_versions

from .verdicts import Claim
from .loaders import HARTREE_TO_MHA, complete_trials

ANALYSIS_PACKAGES = ("optuna", "pandas", "matplotlib", "scipy", "wandb")
VERDICT_CLASS = {"supported": "ok", "not supported": "bad", "inconclusive": "maybe", "note": "note"}

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
 padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;
 margin-top:1.6em}h3{font-size:1.05em}
table{border-collapse:collapse;font-size:.82em;margin:.5em 0}th,td{border:1px solid #ddd;padding:2px 6px;
 text-align:left;vertical-align:top}th{background:#f4f4f4}
dl.head{display:grid;grid-template-columns:max-content 1fr;gap:2px 1em;font-size:.9em}dl.head dt{color:#666}
dl.head dd{margin:0}code{font-size:.9em}
ul.claims{list-style:none;padding-left:0}li.claim{margin:.35em 0;padding:.3em .5em;border-left:4px solid #999;
 background:#fafafa}li.ok{border-color:#2a8a2a}li.bad{border-color:#c0392b}li.maybe{border-color:#d4a017}
li.note{border-color:#5b7db1}b.verdict{font-variant:small-caps}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.9em;color:#444}
section.claim-block{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start;margin:.8em 0 1.4em}
section.claim-block>div{flex:1 1 380px}section.claim-block>figure{flex:1 1 480px;margin:0}
p.headline{margin:.3em 0;padding:.35em .6em;border-left:5px solid #999;background:#f6f6f6;font-weight:600}
p.ok{border-color:#2a8a2a}p.bad{border-color:#c0392b}p.maybe{border-color:#d4a017}
details{margin:.3em 0}summary{cursor:pointer;color:#555;font-size:.9em}
p.small{font-size:.85em;color:#555}
"""


# ----------------------------------------------------------------------------- provenance


def _summaries(trials: pd.DataFrame) -> list[RunSummary]:
    done = complete_trials(trials)
    found = []
    for run_dir in done["run_dir"].dropna():
        summary = RunSummary.read_or_none(run_dir)
        if summary is not None:
            found.append(summary)
    return found


def _distinct(values: Iterable) -> list[str]:
    return list(dict.fromkeys(str(v) for v in values if v not in (None, "", {})))


def _scale(overrides: Sequence | None) -> str:
    if overrides is None:
        return "unknown (not recorded)"
    for item in reversed(list(overrides)):
        if isinstance(item, str) and item.lstrip("+").startswith("scale="):
            return item.split("=", 1)[1]
    return "quick (the default)"


def header_facts(trials: pd.DataFrame) -> list[tuple[str, str]]:
    """(label, text) rows of the page header, from the frame's attributes and the trials' summaries."""
    attrs = trials.attrs
    summaries = _summaries(trials)
    systems = _distinct(trials["system"].dropna()) if "system" in trials else []
    sweep = attrs.get("sweep")
    versions: dict[str, list[str]] = {}
    for s in summaries:
        for name, version in (s.versions or {}).items():
            versions.setdefault(name, [])
            if version not in versions[name]:
                versions[name].append(version)
    here = package_versions(ANALYSIS_PACKAGES)
    machines = _distinct(f"{s.host} ({s.devices} x {s.device_kind})" if s.devices else s.host for s in summaries)
    objective = attrs.get("objective")
    objective = ", ".join(objective) if isinstance(objective, list) else objective
    return [
        ("study", str(attrs.get("study"))),
        ("system", ", ".join(systems) or "unknown"),
        ("scale", _scale(attrs.get("base_overrides"))),
        ("sweep file", f"conf/sweep/{sweep}.yaml" if sweep else "unknown (not recorded)"),
        ("objective", f"{objective or 'unknown'} ({attrs.get('direction') or 'minimize'})"),
        ("base overrides", " ".join(attrs.get("base_overrides") or []) or "unknown"),
        ("storage", str(attrs.get("storage") or attrs.get("source") or "unknown")),
        ("code of the trials", ", ".join(_distinct(s.git_commit for s in summaries)) or "unknown (not recorded)"),
        ("code of this analysis", git_commit(Path(__file__).resolve().parent)),
        ("packages of the trials", "; ".join(f"{k} {', '.join(v)}" for k, v in sorted(versions.items()))
         or "unknown (not recorded)"),
        ("packages of this analysis", "; ".join(f"{k} {v}" for k, v in here.items())),
        ("machines of the trials", ", ".join(machines) or "unknown"),
        ("machine of this analysis", f"{platform.node()} ({platform.platform()}, Python {platform.python_version()})"),
        ("written", datetime.datetime.now().isoformat(timespec="seconds")),
    ]


# ----------------------------------------------------------------------------- pieces


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def claim_item(claim: Claim) -> str:
    """One claim as a list item whose text is exactly ``claim.render()``."""
    css = VERDICT_CLASS.get(claim.verdict, "note")
    verdict = f"[{claim.verdict}]"
    return (f'<li class="claim {css}" data-topic="{_e(claim.topic)}"><b class="verdict">{_e(verdict)}</b>'
            f"{_e(claim.render()[len(verdict):])}</li>")


def claim_blocks(claims: Sequence[Claim]) -> list[tuple[str, list[Claim]]]:
    """Consecutive claims grouped by topic, in order; notes form groups of their own (topic "")."""
    blocks: list[tuple[str, list[Claim]]] = []
    for claim in claims:
        topic = "" if claim.verdict == "note" else claim.topic
        if blocks and blocks[-1][0] == topic:
            blocks[-1][1].append(claim)
        else:
            blocks.append((topic, [claim]))
    return blocks


def claims_html(claims: Sequence[Claim], figures: Mapping[str, tuple[str, Path]]) -> tuple[list[str], set[str]]:
    """The first screen: for each topic one headline per claim (verdict, effect, scope), the
    topic's figure beside them, and the full statistics folded underneath; notes folded apart.
    Returns the HTML parts and the names of the figures placed here."""
    parts, placed = [], set()
    for topic, group in claim_blocks(claims):
        items = "".join(claim_item(c) for c in group)
        if not topic:
            title = "; ".join(c.statement for c in group)
            parts.append(f'<details class="notes"><summary>{len(group)} note{"s" if len(group) > 1 else ""}: '
                         f'{_e(title)}</summary><ul class="claims">{items}</ul></details>')
            continue
        heads = "".join(f'<p class="headline {VERDICT_CLASS.get(c.verdict, "note")}">{_e(c.headline())}</p>'
                        for c in group)
        block = [f'<section class="claim-block" data-topic="{_e(topic)}"><div>{heads}'
                 f'<details><summary>the statistics behind {"these verdicts" if len(group) > 1 else "this verdict"}'
                 f'</summary><ul class="claims">{items}</ul></details></div>']
        if topic in figures and topic not in placed:
            caption, png = figures[topic]
            block.append(figure_block(topic, caption, png))
            placed.add(topic)
        parts.append("".join(block) + "</section>")
    return parts, placed


def figure_block(name: str, caption: str, png: Path) -> str:
    """A figure with its PNG embedded as a base64 data URI and its caption."""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return (f'<figure id="fig-{_e(name)}"><img alt="{_e(name)}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>{_e(name)}</b>: {_e(caption)}</figcaption></figure>")


def table_html(frame: pd.DataFrame) -> str:
    """A plain HTML table of a frame (cells escaped, no index)."""
    if frame is None or frame.empty:
        return "<p class=small>(none)</p>"
    return frame.to_html(index=False, escape=True, na_rep="", border=0)


def _num(value, fmt: str) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return ""
    return format(value, fmt) if math.isfinite(value) else ""


def pareto_table(data: pd.DataFrame | None) -> pd.DataFrame:
    """The Pareto-optimal trials of one Pareto figure's data, as strings."""
    if data is None or data.empty:
        return pd.DataFrame()
    front = data[data["pareto"].astype(bool)].sort_values("x")
    unit = "error (mHa)" if front["y_name"].iloc[0] == "error_mha" else "energy (Ha)"
    digits = ".2f" if unit.startswith("error") else ".5f"
    cost = "training FLOPs" if front["x_name"].iloc[0] == "training_flops" else "device-hours"
    return pd.DataFrame({
        "trial": [f"t{t}" for t in front["trial"]],
        "settings": front["label"].to_numpy(),
        unit: [f"{_num(y, digits)} ± {_num(e, digits)}" for y, e in zip(front["y"], front["yerr"])],
        cost: [_num(x, ".3g") for x in front["x"]],
    })


def training_limit_table(data: pd.DataFrame | None) -> pd.DataFrame:
    """Per trial: evaluated energy, predicted converged energy, their difference, or the reason."""
    if data is None or data.empty:
        return pd.DataFrame()
    rows = []
    for _, r in data.iterrows():
        usable = bool(r["usable"])
        ref = r.get("reference_energy")
        rows.append({
            "trial": f"t{r['trial']}", "settings": r["label"], "iterations": r["iterations"],
            "evaluated (Ha)": f"{_num(r['energy'], '.5f')} ± {_num(r['energy_stderr'], '.5f')}",
            "E_inf (Ha)": f"{_num(r['limit'], '.5f')} ± {_num(r['limit_stderr'], '.5f')}" if usable else "",
            "evaluated - E_inf (mHa)": (f"{_num(r['evaluated_minus_limit_mha'], '.2f')} ± "
                                        f"{_num(r['evaluated_minus_limit_stderr_mha'], '.2f')}") if usable else "",
            "E_inf - reference (mHa)": (f"{_num((r['limit'] - ref) * HARTREE_TO_MHA, '.2f')} ± "
                                        f"{_num(r['limit_stderr'] * HARTREE_TO_MHA, '.2f')}")
            if usable and _num(ref, ".5f") else "",
            "fit": "usable" if usable else f"too poor to use: {r['reason']}",
        })
    return pd.DataFrame(rows)


def series_limit_table(data: pd.DataFrame | None) -> pd.DataFrame:
    """Per series: the extrapolated limit beside the reference, or why the fit is too poor."""
    if data is None or data.empty:
        return pd.DataFrame()
    rows = []
    for _, r in data[data["kind"] == "limit"].iterrows():
        usable = bool(r["usable"])
        rows.append({
            "series": r["series"], "points": int(r["n_points"]),
            "limit (Ha)": f"{_num(r['limit'], '.5f')} ± {_num(r['limit_stderr'], '.5f')}" if usable else "",
            "reference (Ha)": _num(r["reference_energy"], ".5f"),
            "limit - reference (mHa)": (f"{_num(r['limit_minus_reference_mha'], '.2f')} ± "
                                        f"{_num(r['limit_minus_reference_stderr_mha'], '.2f')}")
            if usable and _num(r["reference_energy"], ".5f") else "",
            "chi^2/dof": _num(r["chi2_dof"], ".2f"), "p": _num(r["p_value"], ".2g"),
            "fit": "usable" if usable else f"too poor to use: {r['reason']}",
            "model": r["model"],
        })
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the page


def render(*, trials: pd.DataFrame, status_line: str, table: pd.DataFrame, claims: Sequence[Claim],
           figures: Sequence[tuple[str, str, Path]], notes: Sequence[str], missing: Sequence[str] = (),
           figure_data: Mapping[str, pd.DataFrame] | None = None) -> str:
    """The page as a string (see the module docstring). ``figures``: (name, caption, png path)."""
    figure_data = figure_data or {}
    study = str(trials.attrs.get("study"))
    head = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in header_facts(trials))
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>ablate study {_e(study)}</title><style>{CSS}</style></head><body>",
        f"<h1>Study <code>{_e(study)}</code></h1>", f'<p id="status">{_e(status_line)}</p>',
    ]
    if missing:
        parts.append("<p class=small>" + "<br>".join(_e(m) for m in missing) + "</p>")
    parts.append('<h2 id="claims">Claims</h2>')
    by_name = {name: (caption, png) for name, caption, png in figures}
    first_screen, placed = claims_html(claims, by_name)
    parts += first_screen or ["<p>none of the checks applies to the swept keys</p>"]
    parts.append(f'<details id="provenance"><summary>provenance: the code, packages and machines behind these '
                 f'numbers</summary><dl class="head">{head}</dl></details>')
    parts += ['<h2 id="trials">Trials</h2>', table_html(table),
              "<p class=small>device s: devices x wall seconds of the run's phases; train FLOP: XLA's FLOPs of one "
              "training iteration x iterations (see each run's summary.json, <code>flops_counted</code>).</p>"]
    parts.append('<h2 id="cost">Cost: the Pareto front</h2>')
    for name in ("pareto_flops", "pareto_device_hours"):
        if name in figure_data:
            parts += [f"<h3>{_e(name)}</h3>", table_html(pareto_table(figure_data[name]))]
    if not any(n in figure_data for n in ("pareto_flops", "pareto_device_hours")):
        parts.append("<p class=small>no complete trial recorded its cost</p>")
    parts.append('<h2 id="limits">Extrapolated limits</h2>')
    for name, title, build in (("training_limit", "converged energy from each training curve", training_limit_table),
                               ("energy_variance", "energy-variance extrapolation per series", series_limit_table),
                               ("width_limit", "infinite width per series", series_limit_table)):
        if name in figure_data:
            parts += [f"<h3>{_e(title)}</h3>", table_html(build(figure_data[name]))]
    parts.append("<p class=small>How each limit is fitted, and when a fit is called too poor to use: "
                 "docs/analysis.md (analysis/extrapolate.py).</p>")
    parts.append('<h2 id="figures">Figures</h2>')
    parts += [figure_block(name, caption, png) for name, caption, png in figures if name not in placed]
    if notes:
        parts += ['<h2 id="notes">Notes</h2><ul>', *[f"<li>{_e(n)}</li>" for n in notes], "</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html(path: Path, **kwargs) -> Path:
    """Writes :func:`render`'s page to ``path`` (atomically) and returns the path."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(**kwargs), encoding="utf-8")
    tmp.replace(path)
    return path
