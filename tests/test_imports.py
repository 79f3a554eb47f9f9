"""The import graph reads top to bottom: no module imports itself back through others, the
CLI's shared module imports no command, and the store imports nothing above it."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

SRC = ROOT / "src" / "oiradar"


def _graph() -> dict[str, set[str]]:
    """Module -> the oiradar modules it imports at module level (lazy imports aside)."""
    names = {
        ".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in SRC.rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        edges: set[str] = set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("oiradar"):
                base = str(node.module)
                edges |= {f"{base}.{a.name}" if f"{base}.{a.name}" in names else base
                          for a in node.names}  # fmt: skip
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name.startswith("oiradar")}
        graph[name] = edges & set(names)
    return graph


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_no_module_imports_itself_back() -> None:
    graph = _graph()
    circles = sorted(m for m in graph if m in _reach(graph, m))
    assert circles == []


def test_the_cli_shares_one_module_that_imports_no_command() -> None:
    graph = _graph()
    commands = {m for m in graph if m.startswith("oiradar.commands.")}
    assert not _reach(graph, "oiradar.commands.app") & (commands - {"oiradar.commands.app"})


def test_the_store_imports_nothing_above_it() -> None:
    graph = _graph()
    above = ("oiradar.services", "oiradar.signals", "oiradar.commands", "oiradar.web")
    for module in (m for m in graph if m.startswith("oiradar.store")):
        assert not [m for m in _reach(graph, module) if m.startswith(above)], module
