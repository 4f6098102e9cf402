"""No import circles between lakedoc modules.

The graph: one node per module of ``src/lakedoc``; an edge for every ``import`` / ``from ... import`` of a
lakedoc module executed when the module is imported (module-level statements, also inside ``try``/``if``),
but not those under ``if TYPE_CHECKING:`` (never run); a second graph adds the lazy imports inside
functions. A package's ``__init__`` re-exporting its submodules is an edge like any other; the implicit
import of a parent package is not.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "lakedoc").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level_imports(body: list[ast.stmt]):
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _module_level_imports(node.body)
            yield from _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                yield from _module_level_imports(block)
        elif isinstance(node, ast.With):
            yield from _module_level_imports(node.body)


def _all_imports(node: ast.AST):
    """Every import under ``node``, lazy ones inside functions too, except under ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            yield from _all_imports(ast.Module(body=child.orelse, type_ignores=[]))
        elif isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        else:
            yield from _all_imports(child)


def import_graph(lazy: bool = False) -> dict[str, set[str]]:
    """module -> the lakedoc modules it imports (``lazy``: also those imported inside functions)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in (_all_imports(tree) if lazy else _module_level_imports(tree.body)):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                # ``from pkg import sub`` imports the module pkg.sub; ``from mod import name`` imports mod
                targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target for a in node.names]
            graph[name].update(t for t in targets if t in mods and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``[a, b, ..., a]``), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_the_graph_sees_real_imports():
    g = import_graph()
    assert "lakedoc.evaluation" in g["lakedoc.methods"]
    assert "lakedoc.index.backends.base" in g["lakedoc.index.backends.lancedb_backend"]
    assert {"lakedoc.index.backends.base", "lakedoc.index.backends.registry"} <= g["lakedoc.index.backends"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert "lakedoc.index.backends" in import_graph(lazy=True)["lakedoc.index.stage"]  # a lazy import


@pytest.mark.parametrize("lazy", [False, True])
def test_evaluation_imports_nothing_of_lakedoc(lazy):
    """Plain numpy/metrics code: not even a lazy import of the stages (it used to import the baselines,
    which import it)."""
    g = import_graph(lazy)
    assert g["lakedoc.evaluation"] == set()
    # the harness registers its methods by name; it imports none of them
    assert not {m for m in g["lakedoc.methods"] if m.startswith(("lakedoc.baselines", "lakedoc.classify"))}


@pytest.mark.parametrize("lazy", [False, True])
def test_index_backends_do_not_import_their_registry_or_package(lazy):
    g = import_graph(lazy)
    backends = [m for m in g if m.startswith("lakedoc.index.backends.") and m.rpartition(".")[2]
                not in ("base", "registry")]
    assert backends, "no backend module found"
    for m in backends + ["lakedoc.index.backends.base"]:
        assert not g[m] & {"lakedoc.index.backends", "lakedoc.index.backends.registry"}, m
    assert not any(m in g["lakedoc.index.backends.base"] for m in backends)


@pytest.mark.parametrize("lazy", [False, True])
def test_no_import_cycles_between_lakedoc_modules(lazy):
    """Not at import time, and not through lazy imports inside functions either."""
    assert find_cycle(import_graph(lazy)) is None
