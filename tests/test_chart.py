"""`oiradar chart`: the real squeeze days render, the data behind them is right, and bad input
is one clear line. Hand-made stores pin the aggregate and unknown-liquidation rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oiradar.records import Candle, LiquidationBar, OISample
from oiradar.services.chart import ChartData, base_asset, gather, select
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import Regime
from oiradar.store import open_store
from oiradar.units import HOUR_MS, parse_time
from tests.conftest import run_cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T0 = 1_717_200_000_000  # 2024-06-01T00:00Z
ONE_HOUR = EngineParams(windows_ms=(HOUR_MS,))


def _gather(db: Path, symbol: str, start: str, end: str, venue: str | None = None) -> ChartData:
    with open_store(db, readonly=True) as store:
        sel = select(store, symbol, venue, parse_time(start), parse_time(end), "1h")
        return gather(store, sel, ONE_HOUR)


@pytest.fixture(scope="module")
def btc(real_db: Path) -> ChartData:
    return _gather(real_db, "BTCUSDT", "2024-08-07", "2024-08-10")


@pytest.fixture(scope="module")
def sol(real_db: Path) -> ChartData:
    return _gather(real_db, "SOLUSDT", "2024-08-04", "2024-08-14")


def _squeezes(d: ChartData) -> list[str]:
    """Signal times (ISO, minutes) of the squeeze events drawn."""
    return [
        str(np.datetime64(e.signal_ms, "ms"))[:16]
        for e in d.events
        if e.regime is Regime.SHORT_SQUEEZE
    ]


def test_btc_squeeze_day_png(real_db: Path, btc: ChartData, tmp_path: Path) -> None:
    out = tmp_path / "btc-squeeze.png"
    res = run_cli(
        "chart",
        "BTCUSDT",
        "--db",
        str(real_db),
        "--from",
        "2024-08-07",
        "--to",
        "2024-08-10",
        "--interval",
        "1h",
        "--window",
        "1h",
        "-o",
        str(out),
    )
    assert res.code == 0, res.err
    assert res.out.strip() == str(out)
    blob = out.read_bytes()
    assert blob[:8] == PNG_MAGIC
    assert 50_000 < len(blob) < 2_000_000
    with Image.open(out) as im:
        assert im.size == (1960, 1260)  # 14 x 9 in at 140 dpi
    assert not list(tmp_path.glob(".*.part"))  # the temporary file is gone
    # The data drawn: the 2024-08-08 squeezes of `oiradar analyze`, on 73 hourly bars.
    assert len(btc.ts) == 73 and btc.venues == ("binance",) and btc.base == "BTC"
    assert _squeezes(btc) == ["2024-08-08T02:00", "2024-08-08T22:00"]
    first = btc.events[0]
    # 01:00 and 02:00 read covering over 1h (bands 1.0 % / 0.8 % at 1h): one two-hour event.
    assert first.oi_pct == pytest.approx(-3.14, abs=0.01)
    assert first.price_pct == pytest.approx(3.73, abs=0.01)
    assert first.label.startswith("SQUEEZE 08 Aug 02:00\nOI -3.1%  px +3.7% /1h")
    # The $15M short-liquidation hour after the second squeeze is an outlier: clipped.
    limit, clipped = btc.liq_scale()
    assert clipped and limit < float(np.nanmax(btc.liq_short_usd)) / 2
    assert not btc.has_funding  # no funding in this data set: an empty panel, not zeros


def test_sol_squeezes_and_self_contained_html(
    real_db: Path, sol: ChartData, tmp_path: Path
) -> None:
    assert _squeezes(sol) == [
        "2024-08-05T08:00",
        "2024-08-05T21:00",
        "2024-08-12T08:00",
        "2024-08-12T12:00",
        "2024-08-13T00:00",
        "2024-08-13T17:00",
    ]
    assert [e.regime for e in sol.events].count(Regime.SHORT_COVERING) == 3
    out = tmp_path / "sol.html"
    res = run_cli(
        "chart",
        "SOLUSDT",
        "--db",
        str(real_db),
        "--from",
        "2024-08-04",
        "--to",
        "2024-08-14",
        "--window",
        "1h",
        "-o",
        str(out),
    )
    assert res.code == 0, res.err
    html = out.read_text(encoding="utf-8")
    assert len(html) > 1_000_000  # plotly.js is inlined...
    assert "Plotly.newPlot" in html and "plotly.js" in html.lower()
    assert '<script src="http' not in html  # ...and nothing is fetched from a CDN
    for e in sol.events:
        assert e.label.splitlines()[0] in html  # e.g. "SQUEEZE 05 Aug 08:00"
    assert "shorts liquidated" in html and "open interest" in html


def _hand_made(path: Path) -> None:
    """Two venues, 30 hourly bars: bybit misses one OI snapshot (bar 10); only binance has
    liquidations, per-bar history without bar 5 (unknown) and with bar 7 at zero."""
    recs: list[Candle | OISample | LiquidationBar] = []
    for venue, share in (("binance", 1.0), ("bybit", 0.5)):
        for i in range(30):
            t = T0 + i * HOUR_MS
            px = 100.0 + i
            recs.append(Candle(venue, "TESTUSDT", HOUR_MS, t, px, px + 1, px - 1, px, 10.0))
            if not (venue == "bybit" and i == 10):
                recs.append(OISample(venue, "TESTUSDT", t + HOUR_MS, 1000.0 * share))
    for i in range(30):
        if i != 5:
            usd = (0.0, 0.0) if i == 7 else (100.0, 200.0)
            recs.append(
                LiquidationBar("binance", "TESTUSDT", HOUR_MS, T0 + i * HOUR_MS, 1, 2, *usd)
            )
    with open_store(path) as store:
        store.write_records(recs)


def test_aggregate_and_unknown_liquidations(tmp_path: Path) -> None:
    db = tmp_path / "hand.sqlite"
    _hand_made(db)
    with open_store(db, readonly=True) as store:
        sel = select(store, "TESTUSDT", None, T0, T0 + 29 * HOUR_MS, None)
        d = gather(store, sel, ONE_HOUR)
    assert sel.interval == "1h" and d.price_venue == "binance"  # a tie: binance first
    assert d.venues == ("binance", "bybit") and len(d.ts) == 30
    close = 100.0 + np.arange(30)
    # The sum in USD at each bar, and a gap (never a dip) where one venue has no OI.
    assert np.isnan(d.oi[1].oi_base[10]) and np.isnan(d.oi_total_usd[10])
    ok = np.arange(30) != 10
    assert np.allclose(d.oi_total_usd[ok], 1500.0 * close[ok])
    assert np.allclose(d.oi[0].oi_usd, 1000.0 * close)
    # Liquidations: only binance has them; bar 5 unknown (NaN), bar 7 a real zero.
    assert d.liq_venues == ("binance",)
    assert np.isnan(d.liq_short_usd[5]) and np.isnan(d.liq_long_usd[5])
    assert d.liq_short_usd[7] == 0.0 and d.liq_short_usd[4] == 200.0
    assert d.liq_long_usd[4] == 100.0
    assert d.unknown_liq_runs() == [(T0 + 5 * HOUR_MS, T0 + 6 * HOUR_MS)]
    assert d.liq_scale() == (200.0, False)
    assert not d.has_funding and not d.events


def test_one_venue_and_the_png_of_a_hand_made_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "hand.sqlite"
    _hand_made(db)
    with open_store(db, readonly=True) as store:
        sel = select(store, "TESTUSDT", "bybit", None, None, None)
        d = gather(store, sel, ONE_HOUR)
    assert d.venues == ("bybit",) and not d.has_liquidations
    assert np.isnan(d.oi_total_usd[10])  # one venue: the total is that venue, gap and all
    # Without -o: SYMBOL_FROM-TO.png in the current directory (times when not midnight).
    monkeypatch.chdir(tmp_path)
    res = run_cli("chart", "TESTUSDT", "--db", str(db), "--from", "2024-06-01")
    assert res.code == 0, res.err
    assert res.out.strip() == "TESTUSDT_20240601-20240602T0500.png"
    assert (tmp_path / res.out.strip()).read_bytes()[:8] == PNG_MAGIC


def test_base_asset() -> None:
    assert base_asset("BTCUSDT") == "BTC"
    assert base_asset("1000PEPEUSDC") == "1000PEPE"
    assert base_asset("USDT") == "USDT"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["NOPEUSDT"], "no candles for NOPEUSDT in"),
        (["BTCUSDT", "--from", "2024-08-10", "--to", "2024-08-07"], "empty range"),
        (["BTCUSDT", "--from", "2030-01-01"], "empty range"),
        (
            ["BTCUSDT", "--from", "2030-01-01", "--to", "2030-01-02"],
            "no 5m candles for BTCUSDT between 2030-01-01T00:00:00Z",
        ),
        (["BTCUSDT", "-o", "chart.jpg"], "use a .png or .html file"),
        (["BTCUSDT", "-o", "/nonexistent/dir/x.png"], "cannot write /nonexistent/dir/x.png"),
        (["BTCUSDT", "--venue", "bybit"], "no candles for BTCUSDT on bybit"),
        (["BTCUSDT", "--interval", "4h"], "no 4h candles for BTCUSDT"),
        (["BTCUSDT", "--interval", "7x"], "invalid interval '7x'"),
        (["BTCUSDT", "--interval", "1h", "--window", "15m"], "not a multiple"),
        (["BTCUSDT", "--oi-threshold", "0"], "--oi-threshold must be a positive"),
    ],
)
def test_bad_input_is_one_clear_line(real_db: Path, args: list[str], message: str) -> None:
    res = run_cli("chart", "--db", str(real_db), *args)
    assert res.code == 2
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("oiradar: error:"), res.err
    assert message in lines[0], lines[0]
    assert "Traceback" not in res.err + res.out


def test_unwritable_output_keeps_the_old_file(real_db: Path, tmp_path: Path) -> None:
    """A path that cannot be written (here a directory) is a one-line error, and nothing
    half-written is left behind."""
    target = tmp_path / "taken.png"
    target.mkdir()
    res = run_cli(
        "chart", "BTCUSDT", "--db", str(real_db), "--to", "2024-08-10", "--interval", "1h",
        "-o", str(target),
    )  # fmt: skip
    assert res.code == 2 and "cannot write" in res.err and "Traceback" not in res.err
    assert target.is_dir() and not list(tmp_path.glob(".*.part"))


def test_the_cli_does_not_import_the_plotting_libraries() -> None:
    code = (
        "import sys, oiradar.cli; oiradar.cli.full_app(); "
        "bad = [m for m in ('matplotlib', 'plotly') if m in sys.modules]; "
        "print(*bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert proc.returncode == 0, f"imported at startup: {proc.stdout}{proc.stderr}"


def test_funding_ticks_tell_neighbours_apart_on_tiny_rates(tmp_path: Path) -> None:
    """A calm market's funding (a few 0.001 % per 8 h) repeated tick labels at three
    decimals (issue #12, item 13): every label must be distinct and signed."""
    from oiradar.charts.png import figure
    from oiradar.records import FundingSample

    db = tmp_path / "calm.sqlite"
    _hand_made(db)
    with open_store(db) as store:
        store.write_records(
            [FundingSample("binance", "TESTUSDT", T0 + i * HOUR_MS, 0.000004 + 0.000002 * (i % 4))
             for i in range(30)]
        )  # fmt: skip
        d = gather(store, select(store, "TESTUSDT", "binance", None, None, None), ONE_HOUR)
    assert d.has_funding
    fig = figure(d)
    fig.canvas.draw()
    funding = fig.axes[2]
    assert "funding" in funding.get_ylabel()
    labels = [t.get_text() for t in funding.get_yticklabels() if t.get_text()]
    assert len(labels) >= 3 and len(set(labels)) == len(labels), labels
    assert all(x == "+0" or x.startswith(("+", "-")) or x == "0" for x in labels), labels
