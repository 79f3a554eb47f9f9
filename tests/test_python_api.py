"""docs/python-api.md runs as shown: each ```python block, in a fresh interpreter in a scratch
folder, prints the ```text block that follows it (alert lines with their digits masked: the
console sink prints them as they come)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PAGE = ROOT / "docs" / "python-api.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def examples() -> list[tuple[str, str]]:
    """(code, the output shown after it) of every python block of the page."""
    fenced = [(m.group(1), m.group(2)) for m in FENCE.finditer(PAGE.read_text(encoding="utf-8"))]
    return [
        (body, fenced[i + 1][1])
        for i, (lang, body) in enumerate(fenced)
        if lang == "python" and i + 1 < len(fenced) and fenced[i + 1][0] == "text"
    ]


def _shape(text: str) -> list[str]:
    """Alert lines (a time, or their indented second line) with digits masked, and the venue
    that drove the OI change (which of two venues moved more first varies run to run)."""
    alert = re.compile(r"^(\d{4}-\d\d-\d\dT|  confidence )")

    def mask(line: str) -> str:
        return re.sub(r"OI driven by \w+", "OI driven by VENUE", re.sub(r"\d", "9", line))

    return [mask(x) if alert.match(x) else x for x in text.splitlines()]


def test_the_page_has_its_examples() -> None:
    assert len(examples()) == 2


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 1], ids=["scan", "watch"])
def test_an_example_prints_what_the_page_shows(index: int, tmp_path: Path) -> None:
    code, shown = examples()[index]
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert _shape(proc.stdout) == _shape(shown)
    assert any(tmp_path.glob("*.sqlite"))  # it wrote the store it opened
