"""scan, watch and backfill on Gate, Hyperliquid and dYdX (with Bitget's liquidation channel),
through the services against the simulator over real sockets: every venue read, each feed's
completeness carried through, null (never 0) where a venue publishes no liquidations."""

from __future__ import annotations

import math
from pathlib import Path

from oiradar.kinds import Kind
from oiradar.services.backfill import BackfillRequest, run
from oiradar.services.dashboard import Board
from oiradar.services.scan import ScanRequest, scan
from oiradar.services.watch import WatchRequest
from oiradar.signals.params import EngineParams
from oiradar.store import open_store
from oiradar.units import DAY_MS, MINUTE_MS, parse_time
from oiradar.venues.registry import ALL_VENUES, client
from tests.simkit import running
from tests.watchkit import watch_until

NEW = ("gate", "hyperliquid", "dydx")
FIVE = 5 * MINUTE_MS
NO_OI_HISTORY = {"hyperliquid", "bitget"}


async def test_scan_reads_all_seven_venues_and_aggregates_them(tmp_path: Path) -> None:
    async with running() as (sim, _):
        req = ScanRequest(ALL_VENUES, ("BTCUSDT", "ETHUSDT"), endpoint=sim.url)
        with open_store(tmp_path / "s.sqlite") as store:
            result = await scan(req, store)
    assert result.failed == [] and result.warnings == []
    rows = {(r["venue"], r["symbol"]): r for r in result.rows}
    assert set(rows) == {(v, s) for v in ALL_VENUES for s in ("BTCUSDT", "ETHUSDT")}
    for (venue, _), row in rows.items():
        assert row["oi_usd"] > 0 and row["price_change_pct"] is not None, venue
        # Hyperliquid and Bitget keep no OI history: a cold scan cannot know the OI change.
        assert (row["regime"] == "NO_DATA") == (venue in NO_OI_HISTORY), row
    coins = {r["symbol"]: r for r in result.aggregates}
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert coins[symbol]["venues"] == 5  # every venue whose OI change is known
        venue_usd = [rows[(v, symbol)]["oi_usd"] for v in ALL_VENUES]
        assert math.isclose(coins[symbol]["oi_usd"], sum(venue_usd), rel_tol=1e-6)
        assert coins[symbol]["driver"] in set(ALL_VENUES) - NO_OI_HISTORY


async def test_watch_carries_each_new_feed_and_its_completeness(tmp_path: Path) -> None:
    venues = ("gate", "hyperliquid", "dydx", "bitget")
    start = parse_time("2026-05-28T14:00Z")
    params = EngineParams(min_history_ms=30 * MINUTE_MS)
    req = WatchRequest(venues, ("ADAUSDT", "BTCUSDT"), None, params, settle_ms=60_000)
    # Streams connect after the warm-up (~14:08); the 15m liquidation sums need 15 min of feed.
    run_ = await watch_until(
        tmp_path, req, start + 45 * MINUTE_MS, speed=600.0, limit_scale=600.0, start_ms=start
    )
    status = {v["venue"]: v for v in run_.status["venues"]}
    feeds = {v: status[v]["liquidations"] for v in venues}
    assert feeds == {"gate": "complete", "hyperliquid": "none", "dydx": "complete",
                     "bitget": "sampled"}  # fmt: skip
    for v in venues:
        assert status[v]["bars_stepped"] > 0 and status[v]["disconnects"] == 0, status[v]
        # Candles from REST at each close is the way of a venue without a candle channel,
        # not a bar filled for a lost close (it was counted and logged per bar).
        rest = status[v]["candles"] == "rest"
        assert rest == (v == "dydx"), status[v]  # Gate and Hyperliquid: their candle channels
        assert not status[v]["filled"] if rest else True, status[v]
    with open_store(run_.db, readonly=True) as store:
        for venue in venues:
            series = store.read_series(venue, "ADAUSDT", "5m")
            orders = store.timestamps(Kind.LIQUIDATION_ORDERS, venue, "ADAUSDT", start, 2**62)
            if venue == "hyperliquid":  # no public feed: null, never a 0
                assert not series.liq_coverage and orders.size == 0
            else:
                assert series.liq_tracked and orders.size > 0, venue
                # The stop's record: the feed covered the bars stored then, to its newest message.
                newest = parse_time(status[venue]["last_message"])
                assert int(series.liq_spans[:, 1].max()) >= newest, venue
            assert series.oi_ts.size > 0, venue  # OI streamed (or polled) and stored
        board = Board(params)  # the dashboard's table, from the same store
        board.refresh(store)
    table = {(r["venue"], r["symbol"]): r for r in board.table()["rows"]}
    assert {v for v, _ in table} == set(venues)
    for (venue, _), row in table.items():
        assert (row["short_liq_usd"] is None) == (venue == "hyperliquid"), row


async def test_backfill_stores_gates_liquidation_bars_and_dydx_oi(tmp_path: Path) -> None:
    day = parse_time("2026-05-26")
    db = tmp_path / "b.sqlite"
    async with running() as (sim, _):
        req = BackfillRequest(NEW, day, day + DAY_MS, ("BTCUSDT",), endpoint=sim.url)
        with open_store(db) as store:
            first = await run(req, store)
            stats_pages = sim.ctx.limits.stats["gate"].paths.get(
                "/api/v4/futures/usdt/contract_stats"
            )
            again = await run(req, store)
        gate = client("gate", sim.url)
        try:
            want = await gate.liquidation_history("BTCUSDT", FIVE, day, day + DAY_MS - FIVE)
        finally:
            await gate.close()
    reports = {v.venue: v for v in first.venues}
    assert {v: (r.fetched, r.failed) for v, r in reports.items()} == dict.fromkeys(NEW, (1, None))
    assert [(v.venue, v.fetched, v.skipped) for v in again.venues] == [(v, 0, 1) for v in NEW]
    assert reports["gate"].rows["liquidations"] == 288 == len(want)
    # OI, positioning and liquidations of the day share contract_stats' 3 pages of 100 rows.
    assert stats_pages == 3
    assert reports["dydx"].rows["open_interest"] == 288
    assert reports["hyperliquid"].rows["open_interest"] == 0
    assert any("hyperliquid publishes no OI history" in m for m in reports["hyperliquid"].missing)
    with open_store(db, readonly=True) as store:
        stored = [r for r in store.rows(Kind.LIQUIDATIONS) if r[1] == "gate"]
        for venue in NEW:
            bars = store.timestamps(Kind.CANDLES, venue, "BTCUSDT", day, day + DAY_MS - 1)
            assert bars.tolist() == list(range(day, day + DAY_MS, FIVE)), venue
        series = store.read_series("gate", "BTCUSDT", "5m", day, day + DAY_MS - 1)
    assert [(r[0], r[6], r[7]) for r in stored] == [
        (b.ts_ms, b.long_usd, b.short_usd) for b in want
    ]
    assert series.liq_coverage and math.isclose(
        float(series.liq_short_usd.sum()), sum(b.short_usd or 0.0 for b in want)
    )
    assert sum(1 for b in want if (b.long_usd or 0) + (b.short_usd or 0) > 0) > 10
