"""``python -m ablate --help``: a page generated from the same declarations validation reads.

The page is Hydra's ``hydra/help`` template (``conf/hydra/help/ablate.yaml``), whose text is
the ``${ablate_help:}`` resolver registered by the CLI: config groups and their options, every
key `ablate.config.experiment.validate` checks with its meaning, unit and allowed values (from the field
declarations, so the page cannot drift from the validation), the scale presets, the built-in
sweeps, the sweep file's keys (`sweeps.space.SweepFile`, declared the same way), and example
commands. ``--hydra-help`` keeps Hydra's own page.

Near-miss suggestions for misspelled keys, groups and options are `ablate.config.compose.did_you_mean`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from ablate.config import compose
from ablate.config.experiment import FermiNetConfig, config_key_table, declared_defaults, key_table
from ablate.config.systems import available_systems
from sweeps.space import SweepFile

WIDTH = 100


def _description(path: Path) -> str:
    """The first sentence of a YAML file's leading comment (Hydra directives and example
    command lines skipped)."""
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if not text or text.startswith(("@package", "python ", "Paper scale:")) and words:
            break
        if text.startswith("@package"):
            continue
        words.append(text)
        if text.endswith("."):
            break
    return " ".join(words)


def _scale_summary(path: Path) -> str:
    """``batch 256, 2 x (32, 8), K=4, 2000 iterations, pretraining 100 sto-3g``: the FermiNet's
    sizes are its declared ones where the preset sets none."""
    from omegaconf import OmegaConf

    c = OmegaConf.load(path)
    net = {**declared_defaults(FermiNetConfig), **c.get("network", {})}
    optim, pre = c.get("optim", {}), c.get("pretrain", {})
    return (f"batch {c.get('batch_size')}, {net.get('depth')} x ({net.get('width')}, {net.get('pairwise_width')}), "
            f"K={net.get('determinants')}, {optim.get('iterations')} iterations, "
            f"pretraining {pre.get('iterations')} {pre.get('basis')}")


def _wrap(text: str, indent: int) -> list[str]:
    return textwrap.wrap(text, WIDTH - indent) or [""]


def default_choices() -> dict[str, str]:
    """group -> default option, from conf/config.yaml's defaults list."""
    from omegaconf import OmegaConf

    out = {}
    for item in OmegaConf.load(compose.CONF_DIR / "config.yaml").get("defaults", []):
        if isinstance(item, str) or not hasattr(item, "items"):
            continue
        for group, option in item.items():
            if not str(group).startswith("override"):
                out[str(group)] = str(option)
    return out


def groups_section() -> list[str]:
    lines = ["CONFIG GROUPS (group=option; * marks the default)"]
    defaults = default_choices()
    for group in compose.GROUPS:
        if group == "sweep":
            continue
        options = compose.group_options(group)
        if group == "system":
            options = available_systems()
        marked = [o + ("*" if defaults.get(group) == o else "") for o in options]
        text = ", ".join(marked)
        first, *rest = _wrap(text, 14)
        lines.append(f"  {group:<10}  {first}")
        lines += [f"  {'':<10}  {r}" for r in rest]
    return lines


def _key_lines(rows) -> list[str]:
    """One wrapped entry per (key, meaning, unit, allowed) row of a key table."""
    lines = []
    for key, doc, unit, allowed in rows:
        head = f"  {key:<26} "
        body = f"{doc}" + (f" [{unit}]" if unit else "") + f"; {allowed}"
        wrapped = _wrap(body, len(head))
        lines.append(head + wrapped[0])
        lines += [" " * len(head) + w for w in wrapped[1:]]
    return lines


def keys_section() -> list[str]:
    lines = ["KEYS (key=value; units are atomic: Hartree, bohr)"]
    lines += _key_lines(config_key_table())
    head = f"  {'system.*':<26} "
    wrapped = _wrap("system.name (the group), spin (n_up - n_down), charge, bond_length, n_atoms, "
                    "units=bohr|angstrom, atoms=[[symbol, x, y, z], ...] (system=custom)", len(head))
    lines += [head + wrapped[0]] + [" " * len(head) + w for w in wrapped[1:]]
    return lines


def sweep_keys_section() -> list[str]:
    return (["SWEEP KEYS (KEY: VALUE in conf/sweep/NAME.yaml; sweep.KEY=VALUE on the command line)"]
            + _key_lines(key_table(SweepFile, "sweep.")))


def scales_section() -> list[str]:
    lines = ["SCALE PRESETS (scale=...; they set batch, iterations, pretraining, and network sizes that differ)"]
    for name in compose.group_options("scale"):
        path = compose.CONF_DIR / "scale" / f"{name}.yaml"
        head = f"  {name:<10}  "
        wrapped = _wrap(f"{_description(path)} {_scale_summary(path)}", len(head))
        lines += [head + wrapped[0]] + [" " * len(head) + w for w in wrapped[1:]]
    return lines


def sweeps_section() -> list[str]:
    lines = ["BUILT-IN SWEEPS (python -m ablate +sweep=NAME [overrides]; an Optuna study over every local GPU)"]
    for name in compose.group_options("sweep"):
        head = f"  {name:<14}  "
        wrapped = _wrap(_description(compose.CONF_DIR / "sweep" / f"{name}.yaml"), len(head))
        lines += [head + wrapped[0]] + [" " * len(head) + w for w in wrapped[1:]]
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
    for section in (groups_section(), keys_section(), scales_section(), sweeps_section(),
                    sweep_keys_section()):
        lines += section + [""]
    lines += ["EXAMPLES"] + [f"  {e}" for e in EXAMPLES]
    lines += ["", "Everything a run or study writes goes under output_root (./runs). "
              "Docs: README.md, docs/sweeps.md, docs/analysis.md, docs/contracts.md."]
    return "\n".join(lines).replace("$", "$$")
