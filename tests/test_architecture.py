"""The package layers of docs/architecture.md, checked: what each layer may import, and no cycles.

(1) Each layer's entry modules are imported in a fresh interpreter and the modules it pulled in
are compared with what its layer may use. (2) Every project module's imports, module level and
inside functions alike, are read with ``ast``: the import graph between project modules has no
cycle (an import inside a function is no way around a cycle), no private name is imported from
another module, and project modules are imported inside functions only where docs/architecture.md
says why (:data:`LAZY`).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ablate", "sweeps", "analysis")

# module imported alone -> top-level names it must not load (directly or through anything it imports)
FORBIDDEN = {
    # records: stdlib only, readable by every layer
    "ablate.records.run_record": ("jax", "numpy", "pandas", "optuna", "sweeps", "analysis", "wandb", "hydra"),
    "ablate.records.study_record": ("jax", "numpy", "pandas", "optuna", "sweeps", "analysis", "wandb", "hydra"),
    "sweeps.messages": ("jax", "numpy", "pandas", "optuna", "analysis", "wandb", "hydra"),
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


def project_modules() -> dict[str, Path]:
    """Dotted name -> file for every module of the project's packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
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
