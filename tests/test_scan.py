"""`oiradar scan` end to end against `oiradar sim`: rows, aggregation, agreement with analyze."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from oiradar.records import MarketSeries
from oiradar.services.analyze import Query, run_timeline
from oiradar.services.scan import HISTORY_KEYS
from oiradar.signals.engine import timeline
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import Regime
from oiradar.sim.market import bars, oi_at, oi_snapshots
from oiradar.store import open_store
from oiradar.venues.registry import DEFAULT_VENUES
from tests.conftest import run_cli
from tests.simkit import MINUTE, NOW, threaded

FIVE = 5 * MINUTE
VENUES = DEFAULT_VENUES  # binance, bybit, okx, bitget, gate, dydx
REQUIRED = {
    "venue",
    "symbol",
    "regime",
    "oi_change_pct",
    "price_change_pct",
    "oi_usd",
    "funding_rate",
    "confidence",
    "ts",
}


def _scan(url: str, db: Path, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    res = run_cli("--db", str(db), "scan", "--endpoint", url, "--format", "json", *args)
    return res.code, (json.loads(res.out) if res.out.strip() else []), res.err


def _requests(url: str) -> dict[str, int]:
    with urllib.request.urlopen(url + "/_sim/stats", timeout=10) as r:
        venues = json.loads(r.read())["venues"]
    return {v: s["requests"] for v, s in venues.items()}


def _reset(url: str) -> None:
    req = urllib.request.Request(url + "/_sim/stats/reset", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=10):
        pass


def test_scan_all_venues_rows_and_aggregates(tmp_path: Path) -> None:
    with threaded() as sim:
        code, rows, err = _scan(sim.url, tmp_path / "s.sqlite", "--all")
    assert code == 0, err
    venue_rows = [r for r in rows if r["venue"] != "all"]
    assert {(r["venue"], r["symbol"]) for r in venue_rows} == {
        (v, s) for v in VENUES for s in sim.ctx.market.symbols
    }
    for r in rows:
        assert r.keys() >= REQUIRED
        assert r["ts"].endswith("Z")
    agg = {r["symbol"]: r for r in rows if r["venue"] == "all"}
    assert set(agg) == set(sim.ctx.market.symbols)
    btc = [r for r in venue_rows if r["symbol"] == "BTCUSDT"]
    assert agg["BTCUSDT"]["oi_usd"] == pytest.approx(sum(r["oi_usd"] for r in btc), rel=1e-6)
    driver = max(btc, key=lambda r: abs(r["oi_change_usd"] or 0.0))
    assert agg["BTCUSDT"]["driver"] == driver["venue"]
    # Binance holds 40 % of the one market, Bitget 10 %: units were normalized per venue.
    usd = {r["venue"]: r["oi_usd"] for r in btc}
    assert usd["binance"] / usd["bitget"] == pytest.approx(4.0, rel=0.02)
    assert usd["okx"] / usd["bybit"] == pytest.approx(2 / 3, rel=0.02)


def test_regimes_equal_analyze_on_the_same_data(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    with threaded() as sim:
        code, rows, err = _scan(sim.url, db, "--all", "--venues", "binance,okx")
        now = sim.ctx.now_ms()
    assert code == 0, err
    with open_store(db, readonly=True) as store:
        for r in rows:
            if r["venue"] == "all":
                continue
            q = Query(r["symbol"], r["venue"], now - 2 * 3_600_000, now, "5m")
            tl, _ = run_timeline(store, q, EngineParams())
            assert Regime(int(tl.regime[-1])).name == r["regime"], r


def _venue_view(sim: Any, symbol: str, now: int) -> MarketSeries:
    """What a venue shows at `now`, straight from the market truth: bars through the
    running one, OI snapshots at 5 m closes plus the live one at `now`."""
    sd = sim.ctx.market.get(symbol)
    start = now - now % FIVE - 86_400_000
    b = bars(sd, FIVE, start, now, now)
    t, oi, _ = oi_snapshots(sd, FIVE, start, now, now)
    t = np.append(t, now)
    oi = np.append(oi, oi_at(sd, now))
    e = np.empty(0)
    return MarketSeries(
        "truth",
        symbol,
        FIVE,
        b.ts,
        b.open,
        b.high,
        b.low,
        b.close,
        b.volume,
        t,
        oi,
        np.empty(0, np.int64),
        e,
        e,
        np.empty(0, np.int64),
        e,
        e,
        False,
        np.empty(0, np.int64),
        taker_buy=b.taker_buy,  # Binance's klines carry it: the squeeze's taker evidence
    )


def test_scan_says_covering_when_the_market_is_covering(tmp_path: Path) -> None:
    """Through connectors, store and engine, the scan equals the engine on the market truth.
    The synthetic day's shorts are squeezed: Binance's klines carry taker volume, whose
    forced buying says so; Bybit and OKX give no taker volume and a cold scan no
    liquidation history, so there it is covering, its squeeze unknown."""
    covering_like = (Regime.SHORT_COVERING, Regime.SHORT_SQUEEZE)
    with threaded() as sim:
        base = NOW - NOW % FIVE
        tl = timeline(_venue_view(sim, "BTCUSDT", base), EngineParams())
        found, truth = None, None
        for k in np.flatnonzero(np.isin(tl.regime[:-1], covering_like))[::-1]:
            t = int(tl.grid.ts[k]) + FIVE - 1  # 1 ms before that bar closes
            view = timeline(_venue_view(sim, "BTCUSDT", t), EngineParams())
            if Regime(int(view.regime[-1])) in covering_like:
                found, truth = t, Regime(int(view.regime[-1])).name
                break
        assert found is not None, "the synthetic day has a covering bar visible live"
        sim.ctx.clock.set(found)
        code, rows, err = _scan(sim.url, tmp_path / "s.sqlite", "--symbols", "BTCUSDT")
    assert code == 0, err
    got = {r["venue"]: r["regime"] for r in rows}
    # Same market on every venue; Bitget keeps no OI history, so a cold scan cannot know its
    # OI change yet (NO_DATA, never a guess) and the cross-venue row sums the other five.
    assert truth == "SHORT_SQUEEZE"
    assert got == {
        "binance": truth,
        "bybit": "SHORT_COVERING",
        "okx": "SHORT_COVERING",
        "bitget": "NO_DATA",
        "gate": "SHORT_COVERING",  # no taker volume either
        "dydx": "SHORT_COVERING",
        "all": "SHORT_SQUEEZE",  # a venue shows the squeeze
    }, got
    # A cold scan stores an hour: no track record yet, and it says so (issue #12, item 6).
    binance = next(r for r in rows if r["venue"] == "binance")
    assert binance["history"] == "not enough history" and binance["history_events"] is None
    assert all(r.keys() >= set(HISTORY_KEYS) for r in rows if r["venue"] != "all")


def test_unknown_symbol_warns_and_the_rest_is_scanned(tmp_path: Path) -> None:
    with threaded() as sim:
        code, rows, err = _scan(
            sim.url,
            tmp_path / "s.sqlite",
            "--symbols",
            "BTCUSDT,FOOUSDT",
            "--venues",
            "binance,bybit",
        )
    assert code == 0
    assert {(r["venue"], r["symbol"]) for r in rows if r["venue"] != "all"} == {
        ("binance", "BTCUSDT"),
        ("bybit", "BTCUSDT"),
    }
    assert "FOOUSDT is not listed on binance" in err and "FOOUSDT is not listed on bybit" in err


def test_a_venue_whose_history_lags_a_bar_reads_on_the_snapshot(tmp_path: Path) -> None:
    """Binance's OI history holds back its newest row (`sim --history-lag`): the closed
    bar takes the live snapshot's OI, flagged, and every market reads as on a prompt venue
    (no NO_DATA); OKX, not lagging, keeps its history rows."""
    args = ("--venues", "binance,okx", "--symbols", "BTCUSDT,ETHUSDT,SOLUSDT")
    with threaded() as sim:
        code, prompt, _ = _scan(sim.url, tmp_path / "prompt.sqlite", *args)
    with threaded(history_lag_ms={"binance": 5 * MINUTE}) as sim:
        lag_code, lagging, _ = _scan(sim.url, tmp_path / "lag.sqlite", *args)
    assert code == lag_code == 0
    venue_rows = [r for r in lagging if r["venue"] != "all"]
    assert len(venue_rows) == 6
    assert {r["oi_source"] for r in venue_rows if r["venue"] == "binance"} == {"snapshot"}
    assert {r["oi_source"] for r in venue_rows if r["venue"] == "okx"} == {"history"}
    assert {r["oi_source"] for r in prompt if r["venue"] != "all"} == {"history"}
    assert all(r["regime"] != "NO_DATA" for r in venue_rows)
    keys = ("venue", "symbol", "regime", "oi_change_pct", "price_change_pct")
    assert sorted(tuple(r[k] for k in keys) for r in venue_rows) == sorted(
        tuple(r[k] for k in keys) for r in prompt if r["venue"] != "all"
    )


def test_only_unknown_symbols_is_an_error_not_an_empty_table(tmp_path: Path) -> None:
    """scan and backfill alike: a table of nothing would read as a quiet market."""
    db = str(tmp_path / "s.sqlite")
    with threaded() as sim:
        scan = run_cli("--db", db, "scan", "--endpoint", sim.url, "--symbols", "FOOUSDT,BARUSDT",
                       "--venues", "binance,bybit")  # fmt: skip
        fill = run_cli("--db", db, "backfill", "--endpoint", sim.url, "--symbols", "FOOUSDT",
                       "--venues", "okx", "--from", "2026-05-01", "--no-archive")  # fmt: skip
    assert scan.code == 2 and scan.out == "", scan.out
    assert "none of FOOUSDT, BARUSDT is listed on binance, bybit" in scan.err
    assert fill.code == 2 and fill.out == "", fill.out
    assert "none of FOOUSDT is listed on okx" in fill.err


def test_unreachable_venue_is_named_and_the_others_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OIRADAR_OKX_REST", "http://127.0.0.1:9")  # nothing listens there
    with threaded() as sim:
        monkeypatch.setenv("OIRADAR_ENDPOINT", sim.url)
        res = run_cli(
            "--db", str(tmp_path / "s.sqlite"), "scan", "--format", "json", "--symbols", "ETHUSDT"
        )
    assert res.code == 5
    assert "okx unreachable" in res.err
    venues = {r["venue"] for r in json.loads(res.out)}
    assert venues == {"binance", "bybit", "bitget", "gate", "dydx", "all"}


def test_no_venue_answering_is_its_own_exit_code(tmp_path: Path) -> None:
    res = run_cli("--db", str(tmp_path / "s.sqlite"), "scan", "--venues", "bitget")
    assert res.code == 4
    assert "bitget unreachable" in res.err and "no venue answered (bitget)" in res.err
    assert res.out == ""  # no empty "0 market(s)" table before the error (issue #12, item 15)


def test_second_scan_reuses_the_store(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    with threaded() as sim:
        _scan(sim.url, db, "--all")
        first = _requests(sim.url)
        _reset(sim.url)
        sim.ctx.clock.set(sim.ctx.now_ms() + MINUTE)
        code, rows, _ = _scan(sim.url, db, "--all")
        second = _requests(sim.url)
    assert code == 0 and rows
    for venue in VENUES:
        assert second[venue] < first[venue], (venue, first, second)


def test_reference_and_filters(tmp_path: Path) -> None:
    with threaded() as sim:
        code, rows, _ = _scan(sim.url, tmp_path / "s.sqlite", "--all", "--reference")
        assert code == 0
        blog_labels = {"NEW_LONGS", "SHORT_COVERING", "LONG_LIQUIDATION", "NONE", "NO_DATA"}
        # Venue rows and the cross-venue rows alike (issue #12, item 10).
        assert {r["venue"] for r in rows} == {*VENUES, "all"}
        assert {r["regime"] for r in rows} <= blog_labels, {r["regime"] for r in rows}
        ref = run_cli("--db", str(tmp_path / "s.sqlite"), "scan", "--endpoint", sim.url,
                      "--top", "2", "--reference")  # fmt: skip
        assert ref.code == 0 and "45m reference window (last 10 5m candles)" in ref.out
        assert "15m window" not in ref.out
        code, rows, _ = _scan(
            sim.url, tmp_path / "s.sqlite", "--all", "--min-regime", "short_covering"
        )
        assert all(r["regime"] in ("SHORT_COVERING", "SHORT_SQUEEZE") for r in rows)
        table = run_cli(
            "--db", str(tmp_path / "s.sqlite"), "scan", "--endpoint", sim.url, "--top", "2"
        )
    assert table.code == 0 and "scan of binance, bybit, okx, bitget, gate, dydx" in table.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--venues", "kraken"], "unknown venue(s) kraken"),
        (["--top", "0"], "--top must be a positive number"),
        (["--all", "--top", "3"], "use one of --symbols, --watchlist, --top and --all"),
        (["--window", "7m"], "not a multiple of the 5m bars"),
        (["--min-regime", "moon"], "unknown regime 'moon'"),
        (["--watchlist", "/nonexistent"], "cannot read watchlist"),
        (["--endpoint", "localhost:1"], "is not a URL"),
    ],
)
def test_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    res = run_cli("--db", str(tmp_path / "s.sqlite"), "scan", *args)
    assert res.code == 2 and message in res.err and res.err.count("\n") == 1, res.err


def test_csv_has_every_column_of_venue_and_cross_venue_rows(tmp_path: Path) -> None:
    """Cross-venue rows add `driver` and `venues`: CSV must carry them (issue #12, item 3)."""
    import csv
    import io

    with threaded() as sim:
        res = run_cli("--db", str(tmp_path / "s.sqlite"), "scan", "--endpoint", sim.url,
                      "--symbols", "BTCUSDT,ETHUSDT", "--format", "csv")  # fmt: skip
    assert res.code == 0, res.err
    rows = list(csv.DictReader(io.StringIO(res.out)))
    assert set(rows[0]) >= REQUIRED | {"driver", "venues"}
    by_venue = {(r["venue"], r["symbol"]): r for r in rows}
    assert len(by_venue) == len(rows) == 14  # 2 symbols x 6 venues + 2 cross-venue rows
    assert by_venue[("all", "BTCUSDT")]["driver"] in VENUES
    assert by_venue[("binance", "BTCUSDT")]["driver"] == ""
