"""The import graph reads top to bottom: no circles, nothing imports upward.

Layers, lowest first; a module imports its own package, lower layers, and the same layer
only where `SIDEWAYS` names it:

0. foundations: errors, units, kinds, records, clock, lifecycle, backoff, logs, cache, memory
1. config, store, venues, signals, datafiles
2. research (studies over the signal core)
3. services (the Python API: scan, watch, backfill, import, ...)
4. interfaces: render, charts, web, sim, commands, cli

Every import counts, including those inside functions (a lazy import still ties two modules
together). `sim` never imports `venues` (it is an independent reading of the venues' docs) or
`services`; renderers never read the store or a venue; commands build a request, call a
service and render its result, so they hold no sockets, sinks or event-loop wiring.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import ROOT

SRC = ROOT / "src"
LAYER = {
    **dict.fromkeys(
        (
            "errors",
            "units",
            "kinds",
            "records",
            "clock",
            "lifecycle",
            "backoff",
            "logs",
            "cache",
            "memory",
        ),
        0,
    ),
    **dict.fromkeys(("config", "store", "venues", "signals", "datafiles"), 1),
    "research": 2,
    "services": 3,
    **dict.fromkeys(("render", "charts", "web", "sim", "commands", "cli"), 4),
}
# Same-layer imports that are part of the design (importer -> imported).
SIDEWAYS = {
    ("units", "errors"),
    ("records", "units"),
    ("clock", "errors"),
    ("backoff", "clock"),
    ("store", "kinds"),
    ("datafiles", "kinds"),
    ("charts", "render"),  # one colour table for terminal and charts
    ("commands", "render"),
    ("commands", "charts"),
    ("commands", "web"),
    ("commands", "sim"),
    ("cli", "commands"),
    ("cli", "render"),
    ("render", "signals"),
}
FORBIDDEN = {
    ("sim", "venues"): "the simulator is an independent reading of the docs",
    ("sim", "services"): "the simulator takes a store, never a service",
    ("render", "store"): "renderers render what a service computed",
    ("charts", "store"): "renderers render what a service computed",
    ("charts", "venues"): "renderers render what a service computed",
    ("signals", "store"): "the signal core is pure: no I/O",
    ("signals", "venues"): "the signal core is pure: no I/O",
}
# What a command may import from outside commands/: never transports or the daemon's parts.
COMMAND_BANNED = ("aiohttp", "websockets", "signal", "oiradar.services.watch.daemon")


def _modules() -> dict[str, Path]:
    mods = {}
    for path in (SRC / "oiradar").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every module of ours `name` imports; `from pkg import submodule` names the submodule."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            found.update(subs if len(subs) == len(node.names) else [base, *subs])
    return {m for m in found if m in known and m != name}


GRAPH = {name: _imports(name, path, _modules()) for name, path in _modules().items()}


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "oiradar"


def test_every_area_has_a_layer() -> None:
    areas = {_area(m) for m in GRAPH} - {"oiradar"}
    assert areas <= LAYER.keys(), f"give {sorted(areas - LAYER.keys())} a layer in this test"


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root, targets in GRAPH.items():
        if root in index:
            continue
        work = [(root, iter(sorted(targets)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(GRAPH[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_the_import_graph_has_no_circle() -> None:
    assert _cycles() == []


def test_nothing_imports_upward_or_sideways_unannounced() -> None:
    bad = defaultdict(list)
    for module, targets in GRAPH.items():
        src = _area(module)
        for target in targets:
            dst = _area(target)
            if src == dst or "oiradar" in (src, dst):
                continue
            if LAYER[dst] > LAYER[src] or (LAYER[dst] == LAYER[src] and (src, dst) not in SIDEWAYS):
                bad[f"{src} -> {dst}"].append(f"{module} imports {target}")
    assert not bad, dict(bad)


@pytest.mark.parametrize(("src", "dst"), sorted(FORBIDDEN))
def test_forbidden_edges(src: str, dst: str) -> None:
    offenders = [
        f"{m} imports {t}"
        for m, targets in GRAPH.items()
        if _area(m) == src
        for t in targets
        if _area(t) == dst
    ]
    assert not offenders, f"{FORBIDDEN[src, dst]}: {offenders}"


def test_commands_hold_no_wiring() -> None:
    offenders = []
    for path in (SRC / "oiradar" / "commands").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [
                f"{path.name} imports {n}"
                for n in names
                if any(n == b or n.startswith(b + ".") for b in COMMAND_BANNED)
            ]
    assert not offenders


def test_the_checker_sees_a_circle() -> None:
    """The walk above must be able to fail: a made-up two-module circle is found."""
    saved = dict(GRAPH)
    try:
        GRAPH["oiradar.units"] = GRAPH["oiradar.units"] | {"oiradar.services.scan"}
        assert any("oiradar.units" in c for c in _cycles())
    finally:
        GRAPH.clear()
        GRAPH.update(saved)
