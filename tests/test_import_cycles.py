"""The project's own modules import each other one way: no cycle, and ``shared`` imports no other.

The graph is built from the sources with ``ast`` (nothing is imported). An edge is eager when the
import runs as the module is imported: at module level, in a class body, or under a top-level
``if``/``try``/``with``. An import inside a function is deferred (the Pi must not need the cloud's
dependencies), one under ``if TYPE_CHECKING:`` is for annotations only. Eager imports make no
cycle; nor do deferred ones: a function-local import that closes a cycle only hides it (the
connector hub once imported its poller inside a method because the poller imported the routes,
which import the hub). Annotation-only imports never run and may close one.
``from package import name`` is an edge to ``package.name`` when that is a module, else to
``package`` (its ``__init__``). grimp (import-linter's engine) was not used: it counts every
import statement alike, annotation-only ones included.
"""

import ast
from collections.abc import Iterable, Iterator
from enum import Enum
from pathlib import Path

from cityops.paths import REPO_ROOT

PACKAGES = ("cityops", "cloud", "edge", "firmware", "provisioning", "shared")
Graph = dict[str, set[str]]
"""Module -> the project modules it imports."""


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")


def project_modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
    }


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class Kind(Enum):
    EAGER = "eager"
    """Module level, a class body, a top-level ``if``/``try``/``with``: runs at import."""
    DEFERRED = "deferred"
    """Inside a function: runs when it is called."""
    TYPING = "typing"
    """Under ``if TYPE_CHECKING:``: never runs."""


def _imports(
    nodes: Iterable[ast.AST], kind: Kind
) -> Iterator[tuple[ast.Import | ast.ImportFrom, Kind]]:
    """Every import statement under *nodes*, with when it runs."""
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, kind
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _imports(node.body, Kind.TYPING)
            yield from _imports(node.orelse, kind)
        elif kind is Kind.EAGER and isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
        ):
            yield from _imports(ast.iter_child_nodes(node), Kind.DEFERRED)
        else:  # a class body or a top-level if/try/with runs at import
            yield from _imports(ast.iter_child_nodes(node), kind)


def _targets(
    node: ast.Import | ast.ImportFrom, importer: str, is_package: bool, modules: dict[str, Path]
) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    base = node.module or ""
    if node.level:
        parts = importer.split(".")
        anchor = parts if is_package else parts[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        yield submodule if submodule in modules else base


def import_graph() -> dict[Kind, Graph]:
    """Edges between the project's own modules, by when the import runs."""
    modules = project_modules()
    graphs: dict[Kind, Graph] = {kind: {name: set() for name in modules} for kind in Kind}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        for node, kind in _imports(tree.body, Kind.EAGER):
            for target in _targets(node, name, is_package, modules):
                if target in modules and target != name:
                    graphs[kind][name].add(target)
    return graphs


def edges(*kinds: Kind) -> Graph:
    """The import graph with the edges of *kinds* only."""
    graphs = import_graph()
    return {m: set().union(*(graphs[k][m] for k in kinds)) for m in graphs[Kind.EAGER]}


def _components(graph: Graph) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
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
            visit(node)
    return components


def _cycle_from(graph: Graph, component: set[str], start: str) -> list[str]:
    """The shortest cycle from *start* back to it inside its component (breadth-first)."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for succ in sorted(graph[node] & component):
                if succ == start:
                    return [*paths[node], start]
                if succ not in paths:
                    paths[succ] = [*paths[node], succ]
                    following.append(succ)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in packages)


def find_cycles(graph: Graph) -> list[list[str]]:
    """The shortest cycle (``[a, b, a]``) of each component that has one."""
    return [
        min((_cycle_from(graph, component, m) for m in sorted(component)), key=len)
        for component in _components(graph)
    ]


def _chains(cycles: list[list[str]]) -> str:
    return "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_project_modules_have_no_import_cycle() -> None:
    cycles = find_cycles(edges(Kind.EAGER))
    assert not cycles, f"import cycles (module-level imports):\n{_chains(cycles)}"


def test_no_function_local_import_hides_a_cycle() -> None:
    cycles = find_cycles(edges(Kind.EAGER, Kind.DEFERRED))
    assert not cycles, f"import cycles closed by a function-local import:\n{_chains(cycles)}"


def test_shared_imports_no_other_project_package() -> None:
    graph = edges(*Kind)
    outward = sorted(
        f"{importer} -> {imported}"
        for importer, targets in graph.items()
        if _within(importer, ("shared",))
        for imported in targets
        if not _within(imported, ("shared",))
    )
    assert not outward, "shared is the wire contract and imports nothing else:\n" + "\n".join(
        outward
    )
