"""The package's import graph: no cycles, and no private name used outside the module that owns it.

Imports inside functions count: a lazy import still ties the two modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import psyinsight

ROOT = Path(psyinsight.__file__).parent

PRIVATE_IMPORTS_LEFT: set[tuple[str, str, str]] = set()


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(encoding="utf-8"))
    return found


def import_graph(modules: dict[str, ast.Module]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, tree in modules.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in modules:
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    graph[name].add(target if target in modules else node.module)
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name in modules)
        graph[name].discard(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_sees_a_lazy_cycle():
    graph = import_graph({"a": ast.parse("import b"), "b": ast.parse("def f():\n    from a import x"), "c": ast.parse("")})
    assert cycles(graph) == [["a", "b"]]


def test_the_package_has_no_import_cycle():
    assert cycles(import_graph(_modules())) == []


def test_no_private_name_is_imported_from_another_module():
    modules = _modules()
    used = set()
    for name, tree in modules.items():
        imported_modules = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("psyinsight"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        used.add((name, node.module, alias.name))
                    if f"{node.module}.{alias.name}" in modules:
                        imported_modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
                continue
            if node.value.id in imported_modules and node.attr.startswith("_") and not node.attr.startswith("__"):
                used.add((name, imported_modules[node.value.id], node.attr))
    assert used - PRIVATE_IMPORTS_LEFT == set()
