"""The package layers of docs/architecture.md, checked: what each layer may import, and no cycles.

(1) Each layer's entry modules are imported in a fresh interpreter and the modules it pulled in
are compared with what its layer may use. (2) Every project module's imports, module level and
inside functions alike, are read with ``ast``: each folder of ablate/ imports only itself and the
folders below it (:data:`LAYERS`), only the command line (ablate/cli/, ablate/__main__.py) imports
``sweeps`` or ``analysis``, the records import the standard library only (and what
:data:`RECORDS_MAY_IMPORT` names), no folder holds more than :data:`MAX_MODULES` modules, the
import graph between project modules has no cycle (an import inside a function is no way around a
cycle), no private name is imported from another module, and project modules are imported inside
functions only where docs/architecture.md says why (:data:`LAZY`).
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ablate", "sweeps", "analysis")

# ablate's folders from the ground up: each may import itself and the folders before it, none after
LAYERS = ("records", "config", "runtime", "wavefunction", "hamiltonian", "tracking", "vmc", "cli")
COMMAND_LINE = ("ablate.cli", "ablate.__main__")   # the only importers of sweeps and analysis in ablate
# records import the standard library, their own folder and only these (module -> (package, where))
RECORDS_MAY_IMPORT = {
    "ablate.records.stats": {"numpy": "module"},                 # reblocking works on arrays
    "ablate.records.redact": {"sqlalchemy": "function"},         # make_url, only for a URL with a password
}
MAX_MODULES = 12   # modules a folder holds (its __init__.py not counted)

# module imported alone -> top-level names it must not load (directly or through anything it imports)
FORBIDDEN = {
    # records: stdlib only, readable by every layer (stats: numpy too)
    "ablate.records": ("jax", "numpy", "pandas", "optuna", "sweeps", "analysis", "wandb", "hydra"),
    "ablate.records.run_record": ("jax", "numpy", "pandas", "optuna", "sweeps", "analysis", "wandb", "hydra"),
    "ablate.records.study_record": ("jax", "numpy", "pandas", "optuna", "sweeps", "analysis", "wandb", "hydra"),
    "ablate.records.stats": ("jax", "pandas", "optuna", "sweeps", "analysis", "wandb", "hydra", "scipy"),
    "sweeps.messages": ("jax", "numpy", "pandas", "optuna", "analysis", "wandb", "hydra"),
    # the config is read by the sweep driver and --help: no JAX
    "ablate.config.compose": ("jax", "sweeps", "analysis", "optuna", "wandb"),
    # the engine never reaches up to the driver or the analysis
    "ablate.vmc.training": ("sweeps", "analysis", "optuna"),
    "ablate.vmc.run": ("sweeps", "analysis", "optuna"),
    # the driver process runs no JAX and no analysis
    "sweeps.driver": ("jax", "analysis"),
    # the analysis reads records and storages only
    "analysis": ("jax", "sweeps.driver", "sweeps.workers", "ablate.vmc.training", "ablate.vmc.run", "wandb"),
}


def loaded_by(module: str) -> set[str]:
    """Every module in sys.modules after importing ``module`` in a fresh interpreter."""
    code = f"import importlib, json, sys; importlib.import_module({module!r}); print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_each_layer_imports_only_what_it_may(module: str):
    if not (ROOT / (module.replace(".", "/") + ".py")).exists() and not (ROOT / module.replace(".", "/")).is_dir():
        pytest.fail(f"{module} named in docs/architecture.md does not exist")
    loaded = loaded_by(module)
    bad = sorted(m for m in loaded for f in FORBIDDEN[module] if m == f or m.startswith(f + "."))
    assert not bad, f"importing {module} loads {bad}"


# modules that import project modules inside functions, and why (the heavy layer loads on demand)
LAZY = {
    "ablate.__main__": "the CLI loads the engine (JAX) only for a run, not for --help or a sweep",
    "ablate.cli.sweep_cli": "the CLI's sweep path loads the analysis only to log a finished study",
    "sweeps": "run_sweep loads the driver (Optuna) on first use",
    "sweeps.workers": "a worker process loads JAX and the engine; the driver process never does",
}


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted name -> file for every module of the project's packages (under ``root``)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that ``name`` imports anywhere in its file (package parents excluded)."""
    return {target for target, _, _ in import_statements(name, path, modules)}


def import_statements(name: str, path: Path, modules: dict[str, Path]):
    """(project module imported, the ast node, whether the statement is at module level) for every
    import of a project module in ``name``'s file."""
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                stem = ".".join(anchor + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            candidates = [f"{stem}.{alias.name}" for alias in node.names] + [stem]
        else:
            continue
        for candidate in candidates:
            if candidate in modules and candidate != name:
                yield candidate, node, id(node) in top
                break


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_between_project_modules():
    modules = project_modules()
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    # a package's __init__ re-exporting its own modules is not a cycle with them
    for name in list(graph):
        if modules[name].name == "__init__.py":
            graph[name] = {t for t in graph[name] if not t.startswith(name + ".")}
    assert cycles(graph) == []


def test_no_private_names_across_modules_and_lazy_imports_only_where_stated():
    modules = project_modules()
    private, lazy = [], []
    for name, path in modules.items():
        for target, node, at_top in import_statements(name, path, modules):
            if isinstance(node, ast.ImportFrom):
                private += [f"{name}:{node.lineno} {a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
            if not at_top and name not in LAZY:
                lazy.append(f"{name}:{node.lineno} {target}")
    assert private == [] and lazy == []


def layer_of(name: str) -> int | None:
    """The index in :data:`LAYERS` of an ablate module's folder; None for ``ablate`` and
    ``ablate.__main__`` (the package's face and the command line, outside the folders)."""
    parts = name.split(".")
    if parts[0] != "ablate" or len(parts) < 2 or parts[1] not in LAYERS:
        return None
    return LAYERS.index(parts[1])


def in_command_line(name: str) -> bool:
    return any(name == c or name.startswith(c + ".") for c in COMMAND_LINE)


def layer_violations(modules: dict[str, Path]) -> list[str]:
    """Every import (module level or inside a function) of an ablate module that runs against
    the layers: a folder importing a folder above it, a module outside the command line importing
    sweeps or analysis, ``ablate/__init__.py`` importing anything of the project; and every
    import of a records module that is neither the standard library nor its own folder nor in
    :data:`RECORDS_MAY_IMPORT` (at the place it names)."""
    bad = []
    for name, path in modules.items():
        if not name.startswith("ablate"):
            continue
        source = layer_of(name)
        for target, node, _ in import_statements(name, path, modules):
            where = f"{name}:{node.lineno} imports {target}"
            if target == "ablate":
                continue   # the package itself (IMPORTED_AT), which every module of it loads first anyway
            if target.split(".")[0] in ("sweeps", "analysis"):
                if not in_command_line(name):
                    bad.append(f"{where} (only ablate/cli/ and ablate/__main__.py import sweeps or analysis)")
            elif name == "ablate":
                bad.append(f"{where} (ablate/__init__.py imports nothing of the project)")
            elif source is not None and (layer_of(target) is None or layer_of(target) > source):
                bad.append(f"{where} ({LAYERS[source]}/ may import only {', '.join(LAYERS[:source + 1])})")
        if source == LAYERS.index("records"):
            bad += records_violations(name, path)
    return bad


def records_violations(name: str, path: Path) -> list[str]:
    """The imports of a records module that are neither the standard library, nor ablate's
    records, nor allowed to it by :data:`RECORDS_MAY_IMPORT`."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    allowed = RECORDS_MAY_IMPORT.get(name, {})
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            targets = [node.module or ""]
        else:
            continue
        for target in targets:
            package = target.split(".")[0]
            if package in sys.stdlib_module_names or package == "__future__" or package in PACKAGES:
                continue   # the project's own modules: layer_violations checks those
            if allowed.get(package) == ("module" if id(node) in top else "function"):
                continue
            bad.append(f"{name}:{node.lineno} imports {target} (records import the standard library only)")
    return bad


def test_each_folder_imports_only_the_folders_below_it_and_only_the_command_line_imports_sweeps_or_analysis():
    folders = sorted(p.name for p in (ROOT / "ablate").iterdir() if (p / "__init__.py").is_file())
    assert folders == sorted(LAYERS), "a folder of ablate/ that LAYERS does not place (or a layer with no folder)"
    assert layer_violations(project_modules()) == []


def test_no_folder_holds_more_than_a_dozen_modules():
    for folder in [ROOT / p for p in PACKAGES] + [p for p in (ROOT / "ablate").iterdir() if p.is_dir()]:
        modules = [p.name for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= MAX_MODULES or folder.name in ("analysis", "sweeps"), (folder, len(modules))


@pytest.mark.parametrize("module, line, broken", [
    ("records/jsonio.py", "from ablate.config import compose", "records/ may import only records"),
    ("config/systems.py", "import ablate.vmc.mcmc", "config/ may import only records, config"),
    ("wavefunction/networks.py", "from ablate.hamiltonian.local_energy import local_energy",
     "wavefunction/ may import only"),
    ("vmc/training.py", "from ablate.cli import help", "vmc/ may import only"),
    ("vmc/run.py", "from sweeps import messages", "only ablate/cli/ and ablate/__main__.py import sweeps"),
    ("tracking/wandb_sink.py", "from analysis.loaders import load_study", "only ablate/cli/"),
    ("records/stats.py", "import jax", "records import the standard library only"),
    ("records/run_record.py", "import numpy as np", "records import the standard library only"),
    ("records/redact.py", "from sqlalchemy import make_url  # at module level", "records import the standard"),
])
def test_the_layer_check_finds_an_import_that_runs_up(tmp_path, module, line, broken):
    """The check itself, on a copy of the project with one import added that breaks a rule
    (inside a function, which breaks it the same, unless the line says module level)."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    assert layer_violations(project_modules(tmp_path)) == []
    path = tmp_path / "ablate" / module
    added = f"\n{line}\n" if "module level" in line else f"\n\ndef added():\n    {line}\n"
    path.write_text(path.read_text() + added)
    found = layer_violations(project_modules(tmp_path))
    assert len(found) == 1 and broken in found[0], found
