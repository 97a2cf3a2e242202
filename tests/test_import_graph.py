"""Who may import whom, read from the source tree (ast; nothing is imported).

Modules are named by their path ("server/core/hub"), whether or not an import spells
them under the installed namespace (with the `barrage.` prefix), so these rules hold
for any branch, renamed or not (scripts/dev/rename_namespace.py).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREES = ("server", "clients", "cli", "loadtest", "shoplang")


@dataclass(frozen=True)
class Import:
    importer: str
    """The importing module's path, e.g. "server/core/hub"."""
    target: str
    """The imported module's path (or its package's, for a name imported from it)."""
    type_checking: bool
    """Inside `if TYPE_CHECKING:`: for annotations only, never executed."""
    line: int

    def __str__(self) -> str:
        guard = " (TYPE_CHECKING)" if self.type_checking else ""
        return f"{self.importer}.py:{self.line} imports {self.target}{guard}"


def _path_of(module: str) -> str:
    return module.removeprefix("barrage.").replace(".", "/")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for tree in TREES:
        for file in (ROOT / tree).rglob("*.py"):
            name = file.relative_to(ROOT).with_suffix("").as_posix()
            found[name.removesuffix("/__init__")] = file
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_of(importer: str, file: Path) -> Iterator[Import]:
    package = importer if file.name == "__init__.py" else importer.rpartition("/")[0]

    def walk(node: ast.AST, guarded: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for inner in child.body:
                    yield from walk_one(inner, True)
                for inner in child.orelse:
                    yield from walk_one(inner, guarded)
            else:
                yield from walk_one(child, guarded)

    def walk_one(node: ast.AST, guarded: bool) -> Iterator[Import]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(importer, _path_of(alias.name), guarded, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = "/".join(package.split("/")[: len(package.split("/")) - node.level + 1])
                base = f"{base}/{node.module.replace('.', '/')}" if node.module else base
            else:
                base = _path_of(node.module or "")
            for alias in node.names:
                # Importing `hub` from the package server/core imports the module server/core/hub.
                target = f"{base}/{alias.name}"
                yield Import(importer, target if target in MODULES else base, guarded, node.lineno)
        else:
            yield from walk(node, guarded)

    yield from walk(ast.parse(file.read_text(encoding="utf-8")), False)


IMPORTS = [imp for name, file in MODULES.items() for imp in _imports_of(name, file)]


def _under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree + "/")


def _violations(importers: str, targets: str, *, type_checking_too: bool = True) -> list[str]:
    return [
        str(imp)
        for imp in IMPORTS
        if _under(imp.importer, importers)
        and _under(imp.target, targets)
        and (type_checking_too or not imp.type_checking)
    ]


def test_the_graph_sees_the_tree() -> None:
    # Guards the rules below against passing vacuously (a parser that finds nothing).
    assert "server/core/gateway" in MODULES
    assert any(imp.importer == "server/core/hub" and imp.target == "server/core/outbox" for imp in IMPORTS)


def test_clients_never_import_the_server() -> None:
    assert _violations("clients", "server") == []


def test_the_server_never_imports_the_clients() -> None:
    assert _violations("server", "clients") == []


def test_the_core_imports_no_telemetry() -> None:
    # The core defines what it reports (server/core/observer.py); telemetry implements it.
    assert _violations("server/core", "server/telemetry") == []


def test_telemetry_never_imports_the_node_that_sets_it_up() -> None:
    assert _violations("server/telemetry", "server/app") == []


def _cycles(nodes: set[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(nodes):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(edges[succ]))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(set(edges), edges) == [["a", "b", "c"]]


def test_no_import_cycles_among_server_modules() -> None:
    # Imports made at run time (at the top or inside a function) count; those under
    # TYPE_CHECKING are annotations only and may point back.
    nodes = {name for name in MODULES if _under(name, "server")}
    edges: dict[str, set[str]] = {name: set() for name in nodes}
    for imp in IMPORTS:
        if imp.importer in nodes and imp.target in nodes and not imp.type_checking and imp.target != imp.importer:
            edges[imp.importer].add(imp.target)
    assert _cycles(nodes, edges) == []
