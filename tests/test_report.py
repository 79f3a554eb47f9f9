"""`oiradar report`: one self-contained HTML page of a backtest, with its charts."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import run_cli


def test_report_on_the_real_data_is_one_self_contained_page(real_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    res = run_cli("--db", str(real_db), "report", "--interval", "1h",
                  "--charts", "2", "--out", str(out))  # fmt: skip
    assert res.code == 0, res.err
    page = out / "index.html"
    assert res.out.strip() == str(page)
    text = page.read_text()
    assert "<h1>Backtest: 48 events</h1>" in text
    assert "SHORT_COVERING" in text and "SOLUSDT" in text
    assert "Without the top contributors" in text
    # Every image is embedded, and nothing is fetched from the network when it is opened.
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 3
    assert not re.search(r'(src|href)="https?://', text)
    assert {p.name for p in out.iterdir()} >= {"index.html", "returns-1h.png"}
    assert len(list(out.glob("chart-*.png"))) == 2
    assert (out / "returns-1h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_bad_input(real_db: Path, tmp_path: Path) -> None:
    afile = tmp_path / "x.html"
    afile.write_text("")
    res = run_cli("--db", str(real_db), "report", "--out", str(afile))
    assert res.code == 2 and "is a file, not a folder" in res.err
    res = run_cli("--db", str(real_db), "report", "--charts", "-1", "--out", str(tmp_path / "r"))
    assert res.code == 2 and "--charts" in res.err
