"""The import graph points one way (docs/architecture.md, "Layers"): `apps.core` imports no
app, and no two modules of ours import each other, directly or round a longer circle. Every
import counts: at the top, inside a function, or under `TYPE_CHECKING`."""

from __future__ import annotations

import ast
import gc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in [*ROOT.glob("apps/**/*.py"), *ROOT.glob("autoglue/**/*.py")]:
        if "tests" in path.parts or "migrations" in path.parts:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _parse(path: Path) -> ast.Module:
    """The module's tree, parsed with the garbage collector paused: CPython 3.11.7's `ast.parse`
    can fail with "AST constructor recursion depth mismatch" when a collection runs finalizers
    while it builds a tree (seen at random late in full runs; tests/conformance/conftest.py)."""
    gc.disable()
    try:
        return ast.parse(path.read_text())
    finally:
        gc.enable()


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            candidates = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for candidate in candidates:
            # `from apps.x import services` names a module; `from apps.x.services import f`
            # names something in one: walk up to the nearest module of ours.
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                targets.add(candidate)
    return targets


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that reach each other (each group listed once, sorted)."""
    reach = {node: _reachable(graph, node) for node in graph}
    circles = {
        tuple(sorted(other for other in reach[node] if node in reach[other]))
        for node in graph
        if node in reach[node]
    }
    return sorted(list(circle) for circle in circles)


def test_core_imports_no_other_app():
    graph = _graph()
    offenders = {
        name: sorted(t for t in targets if not t.startswith("apps.core"))
        for name, targets in graph.items()
        if name.startswith("apps.core")
        and any(t.startswith("apps.") and not t.startswith("apps.core") for t in targets)
    }
    assert offenders == {}


def test_no_two_modules_import_each_other_even_round_a_circle():
    assert _circles(_graph()) == []


def test_the_checker_finds_a_circle_when_there_is_one():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
