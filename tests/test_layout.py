"""The house: the CLI is the roof and nothing imports it; no module imports itself round a circle.

The graph is read from the source with `ast`, not by importing anything: every `import` and
`from … import` counts wherever it sits (module level or inside a function), except those under
`if TYPE_CHECKING:`, which only the type checker follows. `from package import name` is an edge to
`package.name` when that is a module of ours, and to `package` otherwise. Importing `a.b` is an edge
to `a.b` alone: the package `__init__` files that Python runs on the way are not counted, so a
package may re-export its parts while its parts import each other directly.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import connect_devloop

PACKAGE = "connect_devloop"
ROOT = Path(connect_devloop.__file__).parent
CLI = f"{PACKAGE}.cli"
# `python -m connect_devloop` is the one door into the CLI.
MAY_IMPORT_CLI = {f"{PACKAGE}.__main__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def import_nodes(node: ast.AST, typing: bool = False) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import under `node`; those in the body of `if TYPE_CHECKING:` only if `typing`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and is_type_checking(child.test) and not typing:
            for other in child.orelse:
                yield from import_nodes_of(other)
        else:
            yield from import_nodes(child, typing)


def import_nodes_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    else:
        yield from import_nodes(node)


def imported(name: str, path: Path, known: Mapping[str, Path], typing: bool = False) -> set[str]:
    """The modules of ours that the module `name` (at `path`) imports (for typing too if
    `typing`)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in import_nodes(tree, typing):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        if node.level:
            base = name.split(".") if is_package else name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join([*base, *([node.module] if node.module else [])])
        else:
            target = node.module or ""
        for alias in node.names:
            submodule = f"{target}.{alias.name}"
            found.add(submodule if submodule in known else target)
    return {module for module in found if module in known and module != name}


def import_graph(typing: bool = False) -> dict[str, set[str]]:
    known = modules()
    return {name: imported(name, path, known, typing) for name, path in known.items()}


def find_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path that returns to its start) per strongly connected component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan; the graph is a few hundred nodes, recursion is fine
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [shortest_cycle(graph, component) for component in components]


def shortest_cycle(graph: Mapping[str, set[str]], component: set[str]) -> list[str]:
    start = min(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for succ in sorted(graph[node] & component):
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if succ not in previous:
                    previous[succ] = node
                    following.append(succ)
        frontier = following
    raise AssertionError(f"{sorted(component)} is not strongly connected")


def test_nothing_imports_the_cli() -> None:
    offenders = sorted(
        name
        for name, targets in import_graph().items()
        if CLI in targets and name not in MAY_IMPORT_CLI
    )
    assert not offenders, f"the CLI is the roof, but these import {CLI}: {', '.join(offenders)}"


def test_no_import_cycles() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join("  " + " -> ".join(cycle) for cycle in cycles)


def test_the_emulated_host_routes_know_the_site_by_its_protocol() -> None:
    """`host/site.py` assembles the site from the route modules; they see it only as
    `host.types.Host`, not even for typing importing the module that imports them."""
    site = f"{PACKAGE}.host.site"
    offenders = sorted(
        name
        for name, targets in import_graph(typing=True).items()
        if site in targets and name != f"{PACKAGE}.host"
    )
    assert not offenders, f"these import {site} (use host.types.Host): {', '.join(offenders)}"


def test_the_graph_sees_relative_and_function_level_imports() -> None:
    graph = import_graph()
    assert f"{PACKAGE}.cli" in graph[f"{PACKAGE}.__main__"]
    assert f"{PACKAGE}.errors" in graph[f"{PACKAGE}.cli"]  # imported inside functions only


def test_find_cycles_reports_the_path() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
