"""The layers of `src/`, read from the code's own imports (every `import`, also inside
functions): each module imports only its own layer and the layers below, the router and the
models never import a channel (only the interface `channels.base`), the pure `decide` layer
does no I/O, and no modules import each other in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# Lowest first. A module's layer is the longest prefix listed here.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("models",),
    (
        "router",  # the package itself: its version
        "router.errors",
        "router.settings",
        "router.auth",
        "router.logs",
        "router.metrics",
        "router.files",
        "router.bus",
        "router.wake",
        "router.migrate",
        "channels.base",
    ),
    ("router.decide",),
    # The engine and sessions sit with the repositories: the session class indexes what a
    # commit wrote for search (router.repo.search).
    ("router.repo", "router.db", "router.group"),
    ("router.runtime",),
    ("router.bootstrap",),
    ("router.flows",),
    ("router.read",),
    ("router.workers",),
    # The staff console is the API's browser face: its routes, sessions and presence task.
    ("router.api", "router.console"),
    ("router.demo", "router.cli"),
)
# What may do I/O: the decide layer is pure (state and time in, decisions out).
IO_MODULES = ("sqlalchemy", "asyncpg", "aiosqlite", "httpx", "fastapi", "asyncio", "aiogram")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module `path` imports (absolute imports; the tree uses no relative ones)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            # `from router.flows import sla`: a submodule, named as such.
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    return {name: {i for i in _imports(p) if i in files} for name, p in files.items()}


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[1]):
                best = (rank, len(prefix))
    return None if best is None else best[0]


GRAPH = _graph()


def test_the_graph_is_read() -> None:
    # A test that reads nothing would pass on any tree.
    assert "router.flows.ingest" in GRAPH
    assert "router.flows.route" in GRAPH["router.flows.ingest"]
    assert len(GRAPH) > 100


def test_every_router_module_has_a_layer() -> None:
    missing = sorted(m for m in GRAPH if m.startswith(("router", "models")) and layer_of(m) is None)
    assert missing == []


def test_no_import_runs_up_a_layer() -> None:
    upward = []
    for module, deps in GRAPH.items():
        src = layer_of(module)
        if src is None:
            continue  # channels: above the router, checked below
        for dep in deps:
            dst = layer_of(dep)
            if dst is not None and dst > src:
                upward.append(f"{module} -> {dep}")
    assert upward == []


def test_the_router_never_imports_a_channel() -> None:
    leaks = [
        f"{module} -> {dep}"
        for module, deps in GRAPH.items()
        if module.startswith(("router", "models"))
        for dep in deps
        if dep.startswith("channels") and dep != "channels.base" and dep != "channels"
    ]
    assert leaks == []


def test_decide_is_pure() -> None:
    impure = []
    for path in (SRC / "router" / "decide").rglob("*.py"):
        for dep in _imports(path):
            if dep.split(".")[0] in IO_MODULES or dep.startswith(("router.db", "router.repo")):
                impure.append(f"{_module_name(path)} -> {dep}")
    assert impure == []


def test_no_import_circles() -> None:
    # Tarjan's strongly connected components; any component of two or more is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w == v or _is_package_of(w, v):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert circles == []


def _is_package_of(pkg: str, module: str) -> bool:
    # `from router.flows import sla` names the package too; a package is not a dependency.
    return module.startswith(pkg + ".")


@pytest.mark.parametrize(
    ("module", "layer"),
    [("router.flows.ingest", "router.flows"), ("router.decide.rules", "router.decide")],
)
def test_layer_of_uses_the_longest_prefix(module: str, layer: str) -> None:
    assert layer_of(module) == layer_of(layer)
