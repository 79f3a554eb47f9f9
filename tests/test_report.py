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


def _cells(page: str, header: str, table: int = 0) -> list[str]:
    """The text of one column of the page's `table`-th table, by its header."""
    tables = re.findall(r"<table>(.*?)</table>", page, re.S)
    heads = re.findall(r"<th>(.*?)</th>", tables[table])
    col = heads.index(header)
    rows = re.findall(r"<tr>(.*?)</tr>", tables[table].split("<tbody>")[1], re.S)
    return [re.findall(r"<td>(.*?)</td>", r)[col] for r in rows]


def test_report_prints_counts_p_values_and_prices_plainly(tmp_path: Path) -> None:
    """'1 event', p-values and entry prices without a + sign (issue #12, item 13)."""
    from tests.test_backtest import _hourly_store

    one, two = tmp_path / "one.sqlite", tmp_path / "two.sqlite"
    _hourly_store(one)
    _hourly_store(two, ("AAAUSDT", "BBBUSDT"))
    res = run_cli("--db", str(one), "report", "--charts", "0", "--out", str(tmp_path / "r1"))
    assert res.code == 0, res.err
    page = (tmp_path / "r1" / "index.html").read_text()
    assert "<h1>Backtest: 1 event</h1>" in page
    assert "1 event, 20 control entries" in page
    assert _cells(page, "entry", table=1) == ["102"]
    assert _cells(page, "+1h %", table=1) == ["-0.10"]  # returns keep their sign
    res = run_cli("--db", str(two), "report", "--charts", "0", "--out", str(tmp_path / "r2"))
    assert res.code == 0, res.err
    p_values = [p for p in _cells((tmp_path / "r2" / "index.html").read_text(), "p") if p != "-"]
    assert p_values and all(re.fullmatch(r"\d\.\d{3}", p) for p in p_values), p_values


def test_report_tables_fit_a_1400_px_window(real_db: Path, tmp_path: Path) -> None:
    """Wide tables were clipped to a 1200 px column on a 1400 px screen (item 13)."""
    import asyncio

    from tests.test_dashboard import CHROMIUM_ARGS, _chromium

    chromium = _chromium()
    out = tmp_path / "report"
    res = run_cli("--db", str(real_db), "report", "--interval", "1h", "--window", "1h",
                  "--charts", "0", "--out", str(out))  # fmt: skip
    assert res.code == 0, res.err

    async def widths() -> list[list[int]]:
        from playwright.async_api import async_playwright

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            await page.goto((out / "index.html").as_uri())
            got: list[list[int]] = await page.evaluate(
                "[...document.querySelectorAll('table')]"
                ".map(t => [t.scrollWidth, t.parentElement.clientWidth])"
            )
            await browser.close()
            return got

    tables = asyncio.run(widths())
    assert len(tables) == 3
    assert all(table <= room for table, room in tables), tables
