"""The project's own modules import each other one way: no cycle, and ``shared`` imports no other.

The graph is built from the sources with ``ast`` (nothing is imported). An edge is an import that
runs when the module is imported: at module level, in a class body, or under a top-level
``if``/``try``/``with``. Imports inside a function and under ``if TYPE_CHECKING:`` are lazy by
design (the Pi must not need the cloud's dependencies; annotations only): they are kept apart
and count only where ``LAYERED`` says.
``from package import name`` is an edge to ``package.name`` when that is a module, else to
``package`` (its ``__init__``). grimp (import-linter's engine) was not used: it counts every
import statement, function-local ones included, so it would report the deliberate lazy imports.
"""

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

from cityops.paths import REPO_ROOT

PACKAGES = ("cityops", "cloud", "edge", "firmware", "provisioning", "shared")
# Here a function-local import must not close a cycle either: the connector hub once imported
# its poller inside a method because the poller imported the routes, which import the hub.
# Elsewhere two lazy cycles remain: ``cloud.db.base.register_tables`` imports every table module
# (each imports ``Base``); ``edge.privacy.faces.make_blurrer`` imports the audit, which imports
# ``FaceBlurrer`` from faces.
LAYERED = ("cloud.connectors", "cloud.ingest")


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


def _imports(
    nodes: Iterable[ast.AST], *, lazy: bool
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement under *nodes*, with whether it is lazy (function or TYPE_CHECKING)."""
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, lazy
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _imports(node.body, lazy=True)
            yield from _imports(node.orelse, lazy=lazy)
        else:  # a function body runs when called; a class body or a top-level if/try at import
            inner = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from _imports(ast.iter_child_nodes(node), lazy=inner)


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


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Module-level edges and lazy edges between the project's own modules."""
    modules = project_modules()
    eager: dict[str, set[str]] = {name: set() for name in modules}
    lazy: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        for node, is_lazy in _imports(tree.body, lazy=False):
            for target in _targets(node, name, is_package, modules):
                if target in modules and target != name:
                    (lazy if is_lazy else eager)[name].add(target)
    return eager, lazy


def _components(graph: dict[str, set[str]]) -> list[set[str]]:
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


def _cycle_from(graph: dict[str, set[str]], component: set[str], start: str) -> list[str]:
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


def find_cycles(graph: dict[str, set[str]], through: tuple[str, ...] = PACKAGES) -> list[list[str]]:
    """The shortest cycle (``[a, b, a]``) through a module of *through*, one per component."""
    cycles = []
    for component in _components(graph):
        starts = sorted(m for m in component if _within(m, through))
        if starts:
            cycles.append(min((_cycle_from(graph, component, m) for m in starts), key=len))
    return cycles


def _chains(cycles: list[list[str]]) -> str:
    return "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_project_modules_have_no_import_cycle() -> None:
    eager, _ = import_graph()
    cycles = find_cycles(eager)
    assert not cycles, f"import cycles (module-level imports):\n{_chains(cycles)}"


def test_no_function_local_import_hides_a_cycle_in_connectors_or_ingest() -> None:
    eager, lazy = import_graph()
    cycles = find_cycles({m: eager[m] | lazy[m] for m in eager}, through=LAYERED)
    assert not cycles, f"import cycles closed by a lazy import:\n{_chains(cycles)}"


def test_shared_imports_no_other_project_package() -> None:
    eager, lazy = import_graph()
    outward = sorted(
        f"{importer} -> {imported}"
        for graph in (eager, lazy)
        for importer, targets in graph.items()
        if _within(importer, ("shared",))
        for imported in targets
        if not _within(imported, ("shared",))
    )
    assert not outward, "shared is the wire contract and imports nothing else:\n" + "\n".join(
        outward
    )
