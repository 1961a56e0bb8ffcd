"""The ``transport`` package depends one way: the ``Remote`` port on no adapter, and no
two modules on each other, counting imports made inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import transport

PACKAGE = Path(transport.__file__).parent


def _imports(path: Path) -> set[str]:
    """The ``transport`` modules ``path`` imports, wherever the import statement is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("transport."))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "transport":
                found.update(f"transport.{a.name}" for a in node.names)
            elif node.module.startswith("transport."):
                found.add(node.module)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {f"transport.{p.stem}": p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {name: _imports(path) & modules.keys() for name, path in modules.items()}


def test_the_remote_port_imports_no_adapter() -> None:
    assert _graph()["transport.remote"] <= {"transport.errors"}


def test_no_two_transport_modules_import_each_other_even_inside_a_function() -> None:
    graph = _graph()
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        for imported in sorted(graph[module]):
            if imported in path:
                cycles.append([*path[path.index(imported) :], imported])
            else:
                visit(imported, [*path, imported])

    for module in sorted(graph):
        visit(module, [module])

    assert cycles == []
