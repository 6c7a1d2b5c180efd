"""The shape of analysis/: no import cycles, no imports of the package hidden inside functions, no
private names imported across its modules, and one registry whose studies name their figures."""

from __future__ import annotations

import ast
from pathlib import Path

from analysis.studies import FIGURE_KINDS, STUDIES
from analysis.study import SOURCES

PACKAGE = Path(__file__).resolve().parents[1] / "analysis"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """The analysis modules an import statement names (relative imports resolved)."""
    if node.level == 0:
        base = node.module or ""
    else:
        parts = module.split(".")
        parts = parts if is_package else parts[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    if not base.startswith("analysis"):
        return []
    return [f"{base}.{a.name}" if not node.module else base for a in node.names]


def import_graph() -> tuple[dict[str, set[str]], list[str], list[str]]:
    """Module-level imports between analysis modules, imports of analysis modules inside functions,
    and private names imported from another analysis module."""
    graph, hidden, private = {}, [], []
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = set()
        top = set(map(id, tree.body))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            targets = [t for t in resolve(name, path.name == "__init__.py", node) if t in modules or t == "analysis"]
            if not targets:
                continue
            if id(node) not in top:
                hidden.append(f"{name}:{node.lineno}")
            graph[name] |= {t for t in targets if t != name}
            private += [f"{name}:{node.lineno} {a.name}" for a in node.names if a.name.startswith("_")]
    return graph, hidden, private


def test_no_import_cycles_hidden_imports_or_private_names():
    graph, hidden, private = import_graph()
    assert not hidden and not private
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join(path + [nxt])
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])


def test_registry_names_every_figure_once_with_a_caption():
    kinds = [kind for study in STUDIES for kind in study.kinds]
    assert len({kind.name for kind in kinds}) == len(kinds) == len(FIGURE_KINDS)
    assert len({study.name for study in STUDIES}) == len(STUDIES)
    assert all(kind.caption and kind.source in SOURCES for kind in kinds)
