"""The venue boundary as imports: `venues/` depends on records only (nothing above it), and the
simulator and the connectors never import each other (two independent readings of the venue
docs, so a parser bug cannot be mirrored by the simulator and pass unnoticed)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "oiradar"
# What a connector may import from oiradar: the records it returns, the errors it raises,
# units, the one retry rule (and the clock it reads a Retry-After date on), where the cache
# is (the budget spent by other processes), how a task is ended (`lifecycle`), its own package.
VENUES_MAY_IMPORT = (
    "oiradar.errors",
    "oiradar.records",
    "oiradar.units",
    "oiradar.backoff",
    "oiradar.clock",
    "oiradar.cache",
    "oiradar.lifecycle",
    "oiradar.venues",
)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in `path`, lazy ones inside functions included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def offending(package: str, allowed: tuple[str, ...]) -> list[str]:
    """`file:line module` for each oiradar import under `package` outside `allowed`."""
    out = []
    for path in sorted((SRC / package).rglob("*.py")):
        for line, module in imports(path):
            if within(module, ("oiradar",)) and not within(module, allowed):
                out.append(f"{path.relative_to(SRC)}:{line} {module}")
    return out


def test_venues_import_nothing_above_the_records() -> None:
    assert offending("venues", VENUES_MAY_IMPORT) == []


@pytest.mark.parametrize(("package", "forbidden"), [("sim", "venues"), ("venues", "sim")])
def test_the_simulator_and_the_connectors_never_import_each_other(
    package: str, forbidden: str
) -> None:
    bad = [
        f"{path.relative_to(SRC)}:{line} {module}"
        for path in sorted((SRC / package).rglob("*.py"))
        for line, module in imports(path)
        if within(module, (f"oiradar.{forbidden}",))
    ]
    assert bad == []


def test_the_scan_sees_a_lazy_import(tmp_path: Path) -> None:
    """The check reads imports inside functions too (the registry imports lazily)."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from oiradar.services import scan\n    import json\n")
    assert imports(module) == [(2, "oiradar.services"), (2, "oiradar.services.scan"), (3, "json")]
    assert not within("oiradar.services.scan", VENUES_MAY_IMPORT)
    assert within("oiradar.venues.okx.wire", VENUES_MAY_IMPORT)
