"""The layout holds: dependencies point one way, the core is pure, the store imports nothing above it.

An AST walk over ``hypermindlabs/`` (every import, module-level or inside a function, counts) and a
fresh interpreter for what importing the pure packages loads. See docs/architecture.md.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hypermindlabs"

# What each package may import from the project (besides itself). Top-level modules count as their
# own "package" (config, conventions, wiring, the contract facades).
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "conventions": set(),
    "core": set(),
    "triage": {"core"},
    "regressions": {"core", "conventions"},
    "generate": {"core", "conventions", "config"},
    "store": {"core"},
    "rollups": {"core", "store"},
    "export": {"core", "store", "conventions", "config"},
    "ingest": {"core", "store", "conventions", "config"},
    "sdk": {"core", "ingest", "store"},
    "wiring": {"config", "core", "triage", "store", "rollups", "export", "ingest"},
    # Contract facades: each re-exports one package.
    "run_events": {"core"},
    "failure_triage": {"triage"},
    "telemetry": {"export"},
    "run_manager": {"sdk"},
}
# Above everything (may import any package, nothing imports them but each other and the facades).
TOP = {"web", "cli", "demo", "__init__"}
PURE = ("core", "triage")
IO_LIBRARIES = ("sqlalchemy", "alembic", "psycopg", "flask", "werkzeug", "opentelemetry.sdk", "waitress")


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "hypermindlabs":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            # ``from hypermindlabs import web`` imports the submodule web.
            found.update(f"{target}.{alias.name}" for alias in node.names if target == "hypermindlabs")
    return found


def _package_graph() -> dict[str, dict[str, set[str]]]:
    """package → imported package → the modules making that import (for the failure message)."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for module, path in _modules().items():
        src = _package_of(module)
        if src is None:
            continue
        for target in _imports(module, path):
            dst = _package_of(target)
            if dst is None or dst == src or (dst == "__init__" and target == "hypermindlabs"):
                continue
            graph[src][dst].add(module)
    return graph


def test_every_package_imports_only_the_packages_below_it():
    graph = _package_graph()
    wrong = []
    for src, targets in sorted(graph.items()):
        if src in TOP or src not in ALLOWED:
            continue
        for dst, where in sorted(targets.items()):
            if dst not in ALLOWED[src]:
                wrong.append(f"{src} -> {dst} (in {', '.join(sorted(where))})")
    assert not wrong, "imports against the layout (docs/architecture.md):\n" + "\n".join(wrong)


def test_nothing_imports_the_top_of_the_stack_from_below():
    graph = _package_graph()
    wrong = [
        f"{src} -> {dst} (in {', '.join(sorted(where))})"
        for src, targets in sorted(graph.items())
        if src not in TOP
        for dst, where in sorted(targets.items())
        if dst in TOP - {"__init__"}
    ]
    assert not wrong, "\n".join(wrong)


def test_there_are_no_import_cycles_between_packages():
    graph = _package_graph()
    edges = {src: {d for d in targets if d != "__init__"} for src, targets in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles between packages: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_store_imports_nothing_from_rollups_triage_export_or_web():
    graph = _package_graph()
    assert not set(graph.get("store", {})) & {"rollups", "triage", "export", "web", "ingest", "wiring"}


# Packages that may open connections or transactions on a SQLAlchemy engine themselves: the store, and
# the export view's renderers (they read ``export_series`` in one snapshot per scrape).
OWN_TRANSACTIONS = {"store", "export"}


def _engine_transactions(path: Path) -> list[int]:
    """Lines calling ``<…engine>.begin()`` / ``.connect()`` (``store.engine.begin()``, ``self._engine.connect()``)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in ("begin", "connect"):
            continue
        owner = node.func.value
        name = owner.attr if isinstance(owner, ast.Attribute) else owner.id if isinstance(owner, ast.Name) else ""
        if name.lstrip("_") == "engine":
            lines.append(node.lineno)
    return lines


def test_only_the_store_and_the_export_view_open_transactions_on_the_engine():
    found = {
        f"{m}:{line}": _package_of(m)
        for m, path in _modules().items()
        for line in _engine_transactions(path)
    }
    assert any(pkg == "store" for pkg in found.values()), "the walk finds the store's own transactions"
    outside = sorted(where for where, pkg in found.items() if pkg not in OWN_TRANSACTIONS)
    assert not outside, f"transactions opened outside the store (add a store method): {outside}"


@pytest.mark.parametrize("package", PURE)
def test_importing_a_pure_package_in_a_fresh_interpreter_loads_no_io_library(package: str):
    modules = sorted(m for m in _modules() if m == f"hypermindlabs.{package}" or m.startswith(f"hypermindlabs.{package}."))
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    loaded = json.loads(out.stdout)
    io = [m for m in loaded if any(m == lib or m.startswith(lib + ".") for lib in IO_LIBRARIES)]
    assert len(modules) > 3
    assert not io, f"importing hypermindlabs.{package} loads {io[:8]}"


def test_the_walk_sees_the_imports_it_checks():
    # Guard against a walk that silently finds nothing: known edges must be there.
    graph = _package_graph()
    assert "core" in graph["store"] and "store" in graph["rollups"] and "wiring" in graph["web"]
