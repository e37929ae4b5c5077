"""The rules of the house, checked on the source: who may import whom, no import cycles
(TYPE_CHECKING and function-local imports included), pure packages free of I/O and clocks.

The graph is read with ``ast``: nothing is imported, so a cycle hidden behind a lazy import or
``if TYPE_CHECKING:`` is still seen.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("events", "drivers", "parking", "charging", "tariffcore", "telemetry", "dronelink")
OURS = (*PACKAGES, "gateway")

# What each top-level package may import of ours (itself always): packages or modules.
ALLOWED: dict[str, set[str]] = {
    "events": set(),
    "tariffcore": {"events"},
    "drivers": {"events"},
    "parking": {"events", "tariffcore"},
    "charging": {"events", "tariffcore"},
    "telemetry": {"events", "drivers.backoff"},  # the one reconnect policy
    "dronelink": {"events", "drivers"},
    "gateway": set(OURS),
}
# Nothing is exempt any more (charging.ocpp became drivers.ocpp).
LEGACY: tuple[str, ...] = ()
# Pure logic: no sockets, no event loop, no database, no files of their own making.
PURE = ("parking", "charging", "tariffcore", "events")
IO_MODULES = {"asyncio", "socket", "ssl", "websockets", "sqlalchemy", "aiohttp", "aiomqtt"}
CLOCK_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "monotonic"),
    ("time", "perf_counter"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top in OURS:
        base = ROOT / top
        if base.is_dir():
            for path in base.rglob("*.py"):
                name = module_name(path)
                if not name.startswith(LEGACY):
                    found[name] = path
    return found


MODULES = sources()


def imported(path: Path, name: str) -> Iterator[tuple[str, int]]:
    """Every module *path* imports, anywhere in the file, as dotted names with line numbers."""
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target, node.lineno
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:  # ``from pkg import module``
                    yield sub, node.lineno


def resolve(target: str) -> str | None:
    """The module of ours that *target* names (the longest known prefix), or None."""
    parts = target.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for name, path in MODULES.items():
        for target, _ in imported(path, name):
            found = resolve(target)
            if found is not None and found != name:
                edges[name].add(found)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_the_graph_is_read() -> None:
    edges = graph()
    assert "gateway.supervisor" in edges and "gateway.wiring" in edges["gateway.supervisor"]
    assert "events" in edges["parking.occupancy"]


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("top", sorted(ALLOWED))
def test_dependencies_point_inward(top: str) -> None:
    bad = []
    for name, path in MODULES.items():
        if name.split(".")[0] != top:
            continue
        for target, line in imported(path, name):
            first = target.split(".")[0]
            allowed = any(target == a or target.startswith(a + ".") for a in ALLOWED[top])
            if first in OURS and first != top and not allowed:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not bad, "\n".join(bad)


def test_production_runtime_does_not_import_the_demo() -> None:
    """Simulators and the embedded broker live apart: only the CLI (``citygate demo``,
    ``simulate``) reaches them."""
    bad = []
    for name, path in MODULES.items():
        if name.startswith(("gateway.demo", "gateway.cli")):
            continue
        for target, line in imported(path, name):
            if target == "gateway.demo" or target.startswith("gateway.demo."):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("top", PURE)
def test_pure_packages_do_no_io(top: str) -> None:
    bad = []
    for name, path in MODULES.items():
        if name.split(".")[0] != top:
            continue
        for target, line in imported(path, name):
            if target.split(".")[0] in IO_MODULES:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("top", PURE)
def test_pure_packages_never_read_the_clock(top: str) -> None:
    bad = []
    for name, path in MODULES.items():
        if name.split(".")[0] != top:
            continue
        tree = ast.parse(path.read_text())
        clocks = {  # the edges' one clock is defined (not read) here
            id(n)
            for fn in ast.walk(tree)
            if isinstance(fn, ast.FunctionDef) and fn.name == "now_utc"
            for n in ast.walk(fn)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or id(node) in clocks:
                continue
            f = node.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                if (f.value.id, f.attr) in CLOCK_CALLS:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {f.value.id}.{f.attr}()")
            elif isinstance(f, ast.Name) and f.id == "now_utc":
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} now_utc()")
    assert not bad, "\n".join(bad)


def test_gateway_top_level_stays_small() -> None:
    """The runtime is grouped by role: a handful of wiring modules at the top, rooms below."""
    top = [p for p in (ROOT / "gateway").glob("*.py") if p.name != "__init__.py"]
    assert len(top) <= 12, sorted(p.name for p in top)


def test_long_modules_say_why() -> None:
    """Small modules with one job: a module of over 400 lines says in its docstring why it
    stays one piece."""
    bad = []
    for name, path in MODULES.items():
        text = path.read_text()
        if text.count("\n") <= 400 or ".migrations." in name:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if "400 lines" not in doc and "long because" not in doc:
            bad.append(f"{path.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    assert not bad, "long modules without the reason in their docstring:\n" + "\n".join(bad)
