"""``python -m ablate --help``: a page generated from the same declarations validation reads.

The page is Hydra's ``hydra/help`` template (``conf/hydra/help/ablate.yaml``), whose text is
the ``${ablate_help:}`` resolver registered by the CLI: config groups and their options, every
key `ablate.config.validate` checks with its meaning, unit and allowed values (from the field
declarations, so the page cannot drift from the validation), the scale presets, the built-in
sweeps, and example commands. ``--hydra-help`` keeps Hydra's own page.

Near-miss suggestions for misspelled keys, groups and options (`suggest_key`,
`suggest_option`) live here too: they read the same names.
"""

from __future__ import annotations

import difflib
import re
import textwrap
from pathlib import Path

from ablate import config
from ablate.systems import available_systems

WIDTH = 100


def _first_comment(path: Path) -> str:
    """The first comment line of a YAML file that is not a Hydra directive."""
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.lstrip("# ").strip()
        if line.startswith("#") and text and not text.startswith("@package"):
            return text
    return ""


def _wrap(text: str, indent: int) -> list[str]:
    return textwrap.wrap(text, WIDTH - indent) or [""]


def groups_section() -> list[str]:
    lines = ["CONFIG GROUPS (group=option; the first is the default where marked *)"]
    defaults = {"system": "LiH", "network": "ferminet", "mcmc": "default", "optim": "kfac",
                "pretrain": "hf", "logger": "wandb", "scale": "quick"}
    for group in config.GROUPS:
        if group == "sweep":
            continue
        options = config.group_options(group)
        if group == "system":
            options = available_systems()
        marked = [o + ("*" if defaults.get(group) == o else "") for o in options]
        text = ", ".join(marked)
        first, *rest = _wrap(text, 14)
        lines.append(f"  {group:<10}  {first}")
        lines += [f"  {'':<10}  {r}" for r in rest]
    return lines


def keys_section() -> list[str]:
    lines = ["KEYS (key=value; units are atomic: Hartree, bohr)"]
    for _, prefix, cls in config.GROUP_TYPES:
        for key, doc, unit, allowed in config.key_table(cls, prefix):
            head = f"  {key:<26} "
            body = f"{doc}" + (f" [{unit}]" if unit else "") + f"; {allowed}"
            wrapped = _wrap(body, len(head))
            lines.append(head + wrapped[0])
            lines += [" " * len(head) + w for w in wrapped[1:]]
    lines.append("  system.*                   system.name (the group), spin (n_up - n_down), charge, "
                 "bond_length, n_atoms, units=bohr|angstrom, atoms=[[symbol, x, y, z], ...] (custom)")
    return lines


def scales_section() -> list[str]:
    lines = ["SCALE PRESETS (scale=...; they set network size, batch, iterations, pretraining)"]
    for name in config.group_options("scale"):
        lines.append(f"  {name:<10}  {_first_comment(config.CONF_DIR / 'scale' / f'{name}.yaml')}")
    return lines


def sweeps_section() -> list[str]:
    lines = ["BUILT-IN SWEEPS (python -m ablate +sweep=NAME [overrides]; an Optuna study over every local GPU)"]
    for name in config.group_options("sweep"):
        lines.append(f"  {name:<14}  {_first_comment(config.CONF_DIR / 'sweep' / f'{name}.yaml')}")
    return lines


EXAMPLES = [
    "python -m ablate system=He                                 # one run: He at quick scale",
    "python -m ablate system=N2 scale=paper network.determinants=32",
    "python -m ablate +sweep=width sweep.seeds=2                # a study; then: python -m analysis width",
    "python -m ablate -m system=He,Li optim.iterations=500      # a small hand-made grid (Hydra multirun)",
]


def help_page() -> str:
    """The whole --help page (no ``$``: Hydra's template substitutes those)."""
    lines = ["ablate: train FermiNet wave functions by variational Monte Carlo, and run ablation sweeps.",
             "",
             "usage: python -m ablate [group=option ...] [key=value ...]        one run",
             "       python -m ablate +sweep=NAME [sweep.KEY=VALUE ...] [...]    an Optuna study",
             "       python -m ablate -m key=a,b [...]                           a Hydra multirun grid",
             "       --hydra-help (Hydra's own help), --cfg job (the composed config), "
             "--shell-completion (see README)",
             ""]
    for section in (groups_section(), keys_section(), scales_section(), sweeps_section()):
        lines += section + [""]
    lines += ["EXAMPLES"] + [f"  {e}" for e in EXAMPLES]
    lines += ["", "Everything a run or study writes goes under output_root (./runs). "
              "Docs: README.md, docs/sweeps.md, docs/analysis.md, docs/contracts.md."]
    return "\n".join(lines).replace("$", "$$")


def all_keys(composed) -> list[str]:
    """Every dotted key of a composed config (for suggestions)."""
    from ablate.records import flatten

    return sorted(flatten(config._container(composed), keep=()))


def suggest(word: str, candidates, n: int = 3) -> list[str]:
    """The closest names to a misspelled one (difflib's ratio, case-insensitive)."""
    lowered = {c.lower(): c for c in candidates}
    return [lowered[m] for m in difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.6)]


def did_you_mean(word: str, candidates) -> str:
    close = suggest(word, candidates)
    return f"did you mean {' or '.join(close)}?" if close else ""


OVERRIDE_KEY = re.compile(r"Could not override '([^']+)'")
