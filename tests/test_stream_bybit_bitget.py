"""Bybit v5 and Bitget v2 WebSocket streams: parsers on the doc payloads (exchange-apis.md
§2.5, §4.4) and the streams against the simulator over real sockets."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from oiradar.records import Liquidation, LiquidationFeed, MarketSnapshot, Side
from oiradar.sim.context import num, price_decimals, qty_decimals
from oiradar.sim.market import last_price, liquidation_orders, oi_at
from oiradar.sim.server import SimServer
from oiradar.venues.bitget import BitgetStream
from oiradar.venues.bitget import wire as bitget_wire
from oiradar.venues.bitget import ws as bitget_ws
from oiradar.venues.bybit import BybitStream
from oiradar.venues.bybit import wire as bybit_wire
from oiradar.venues.bybit import ws as bybit_ws
from oiradar.venues.stream import State, StreamRecord, VenueStream
from oiradar.venues.wsstream import WsStream
from tests.simkit import MINUTE, running

BYBIT_TICKER = json.loads(
    '{"topic":"tickers.BTCUSDT","type":"snapshot","data":{"symbol":"BTCUSDT",'
    '"lastPrice":"66666.60","markPrice":"66666.60","openInterest":"492373.72",'
    '"openInterestValue":"32824881841.75","fundingRate":"-0.005",'
    '"nextFundingTime":"1760342400000"},"cs":9532239429,"ts":1760325052630}'
)
BYBIT_LIQ = json.loads(
    '{"topic":"allLiquidation.ROSEUSDT","type":"snapshot","ts":1739502303204,'
    '"data":[{"T":1739502302929,"s":"ROSEUSDT","S":"Sell","v":"20000","p":"0.04499"}]}'
)
BITGET_TICKER = json.loads(
    '{"action":"snapshot","arg":{"instType":"USDT-FUTURES","channel":"ticker",'
    '"instId":"BTCUSDT"},"data":[{"instId":"BTCUSDT","lastPr":"43480.4","markPrice":"43476.4",'
    '"indexPrice":"43478.4","fundingRate":"0.000096","nextFundingTime":"1701849600000",'
    '"holdingAmount":"50670.787","baseVolume":"120187.104","quoteVolume":"5167385048.693",'
    '"ts":"1701843962811"}],"ts":1701843962812}'
)


# -- parsers ---------------------------------------------------------------------------------


def test_bybit_ticker_is_one_sided() -> None:
    snap = bybit_wire.parse_ticker(BYBIT_TICKER["data"], BYBIT_TICKER["ts"])
    assert snap.symbol == "BTCUSDT" and snap.ts_ms == 1760325052630
    assert snap.oi_base == pytest.approx(492373.72 / 2)  # two-sided on the wire
    assert snap.oi_usd == pytest.approx(32824881841.75 / 2)
    assert snap.mark_price == snap.last_price == pytest.approx(66666.60)
    assert snap.funding_rate == pytest.approx(-0.005)
    assert snap.next_funding_ms == 1760342400000
    single = bybit_wire.parse_ticker({**BYBIT_TICKER["data"], "singleOpenInterest": "246000"}, 1)
    assert single.oi_base == pytest.approx(246000.0)  # the one side as sent wins


def test_bybit_delta_merge_keeps_unchanged_fields() -> None:
    state = bybit_wire.merge_ticker(None, "snapshot", BYBIT_TICKER["data"])
    delta = {"symbol": "BTCUSDT", "markPrice": "66700.10", "openInterest": "500000"}
    merged = bybit_wire.merge_ticker(state, "delta", delta)
    snap = bybit_wire.parse_ticker(merged, 1760325052730)
    assert snap.mark_price == pytest.approx(66700.10)
    assert snap.oi_base == pytest.approx(250000.0)
    assert snap.last_price == pytest.approx(66666.60)  # unchanged, not in the delta
    assert snap.funding_rate == pytest.approx(-0.005)
    assert snap.next_funding_ms == 1760342400000
    assert state["markPrice"] == "66666.60"  # the merge does not mutate the old state
    fresh = bybit_wire.merge_ticker(merged, "snapshot", {"symbol": "BTCUSDT", "lastPrice": "1"})
    assert fresh == {"symbol": "BTCUSDT", "lastPrice": "1"}  # a snapshot replaces


def test_bybit_liquidation_side_is_the_position() -> None:
    (liq,) = bybit_wire.parse_liquidations(BYBIT_LIQ)
    assert liq == Liquidation(
        "bybit", "ROSEUSDT", 1739502302929, Side.SHORT, 20000.0, 0.04499, 20000 * 0.04499
    )
    buy = {**BYBIT_LIQ, "data": [{**BYBIT_LIQ["data"][0], "S": "Buy"}]}
    assert bybit_wire.parse_liquidations(buy)[0].position_side is Side.LONG  # Buy = a long


def test_bybit_split_respects_the_args_cap() -> None:
    symbols = [f"SYM{i:04d}USDT" for i in range(2000)]
    for feed in (False, True):  # the tickers' connections, the liquidations' own
        groups = bybit_ws.split_symbols(symbols, feed=feed)
        assert [s for g in groups for s in g] == symbols and len(groups) > 1
        for group in groups:
            size = sum(len(t) for s in group for t in bybit_ws.topics(s, feed=feed))
            assert size <= bybit_ws.ARGS_CAP
        msgs = [
            json.loads(m)
            for m in bybit_ws.subscribe_messages(groups[0], iter(range(1, 99)), feed=feed)
        ]
        assert msgs[0]["op"] == "subscribe" and msgs[0]["req_id"] == "1"
        first = "allLiquidation.SYM0000USDT" if feed else "tickers.SYM0000USDT"
        assert msgs[0]["args"][0] == first
        assert sum(len(m["args"]) for m in msgs) == len(groups[0])


def test_bitget_ticker() -> None:
    (snap,) = bitget_wire.parse_ticker(BITGET_TICKER, {"BTCUSDT": 8.0})
    assert snap == MarketSnapshot(
        "bitget",
        "BTCUSDT",
        1701843962811,
        last_price=43480.4,
        mark_price=43476.4,
        oi_base=50670.787,
        oi_usd=pytest.approx(50670.787 * 43476.4),  # type: ignore[arg-type]
        funding_rate=0.000096,
        funding_interval_h=8.0,
        next_funding_ms=1701849600000,
        quote_volume_24h=5167385048.693,
    )


def test_bitget_split_and_subscribe() -> None:
    symbols = [f"S{i}USDT" for i in range(120)]
    groups = bitget_ws.split_symbols(symbols)
    assert all(len(g) < 50 for g in groups) and [s for g in groups for s in g] == symbols
    (msg,) = map(json.loads, bitget_ws.subscribe_messages(groups[0]))
    assert msg["op"] == "subscribe"
    assert msg["args"][0] == {"instType": "USDT-FUTURES", "channel": "ticker", "instId": "S0USDT"}


# -- against the simulator -------------------------------------------------------------------


async def until(cond: Callable[[], bool], timeout: float = 4.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


class Run:
    """A stream running as a task, collecting what it delivers."""

    def __init__(self, stream: VenueStream, symbols: list[str] | None = None) -> None:
        self.stream, self.got = stream, list[StreamRecord]()
        self.task = asyncio.create_task(stream.run(symbols, self.got.append))

    def snaps(self) -> list[MarketSnapshot]:
        return [r for r in self.got if isinstance(r, MarketSnapshot)]

    def liqs(self) -> list[Liquidation]:
        return [r for r in self.got if isinstance(r, Liquidation)]

    async def stop(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task
        assert self.stream.stats.state is State.STOPPED


def expected_liqs(sim: SimServer, t0: int, t1: int) -> list[tuple[str, int, Side, str, str]]:
    """What the sim serves: orders in (t0, t1] x 0.30, `v` in whole lots (at least one)."""
    out = []
    for name in sim.ctx.market.symbols:
        sd = sim.ctx.market.get(name)
        qd, pd = qty_decimals(sd), price_decimals(sd)
        for o in liquidation_orders(sd, t0, t1, sim.ctx.venue_seed("bybit")):
            qty = num(max(round(o.qty_base * 0.30, qd), 10.0**-qd), qd)
            side = Side.LONG if o.long else Side.SHORT
            out.append((name, o.ts_ms, side, qty, num(o.price, pd)))
    return sorted(out)


def got_liqs(sim: SimServer, liqs: list[Liquidation]) -> list[tuple[str, int, Side, str, str]]:
    out = []
    for x in liqs:
        sd = sim.ctx.market.get(x.symbol)
        qty, price = num(x.qty_base, qty_decimals(sd)), num(x.price, price_decimals(sd))
        assert x.usd == pytest.approx(x.qty_base * x.price)
        out.append((x.symbol, x.ts_ms, x.position_side, qty, price))
    return sorted(out)


def check_bybit_oi(sim: SimServer, snap: MarketSnapshot, now: int) -> None:
    sd = sim.ctx.market.get(snap.symbol)
    qd, pd = qty_decimals(sd), price_decimals(sd)
    single = round(oi_at(sd, now) * 0.30, qd)
    assert snap.oi_base == pytest.approx(single)  # one side, not Bybit's two-sided figure
    assert snap.oi_usd == pytest.approx(round(single * round(last_price(sd, now), pd), 2))
    assert snap.mark_price == pytest.approx(round(last_price(sd, now), pd))
    assert snap.funding_interval_h == sd.funding_interval_h
    assert snap.next_funding_ms is not None and snap.funding_rate is not None


async def test_bybit_stream_snapshots_deltas_and_every_liquidation() -> None:
    async with running(venues=("bybit",)) as (sim, http):
        names = set(sim.ctx.market.symbols)
        run = Run(BybitStream(sim.url, session=http))
        assert run.stream.liquidations is LiquidationFeed.COMPLETE
        await until(lambda: {s.symbol for s in run.snaps()} == names)
        assert run.stream.stats.state is State.LIVE
        t0 = sim.ctx.now_ms()
        for snap in run.snaps():
            check_bybit_oi(sim, snap, t0)
        t1 = t0 + 6 * MINUTE  # the sim replays at most 10 min after a jump
        sim.ctx.clock.set(t1)
        want = expected_liqs(sim, t0 // 500 * 500, t1 // 500 * 500)
        assert want and {w[2] for w in want} == {Side.LONG, Side.SHORT}
        await until(lambda: len(run.liqs()) >= len(want))
        assert got_liqs(sim, run.liqs()) == want
        # deltas after the jump, merged onto the snapshot: every field still known
        await until(lambda: {s.symbol for s in run.snaps() if s.ts_ms == t1} == names)
        for snap in (s for s in run.snaps() if s.ts_ms == t1):
            check_bybit_oi(sim, snap, t1)
        stats = run.stream.stats
        # The tickers on one connection, the liquidations on their own.
        assert stats.connects == 2 and stats.duplicates == 0 and stats.records == len(run.got)
        assert stats.last_message_ms == t1
        await run.stop()


async def test_bitget_stream_ticker_oi() -> None:
    async with running(venues=("bitget",)) as (sim, http):
        names = set(sim.ctx.market.symbols)
        run = Run(BitgetStream(sim.url, session=http))
        assert run.stream.liquidations is LiquidationFeed.SAMPLED
        await until(lambda: {s.symbol for s in run.snaps()} == names)
        now = sim.ctx.now_ms()
        for snap in run.snaps():
            sd = sim.ctx.market.get(snap.symbol)
            assert snap.ts_ms == now
            assert snap.oi_base == pytest.approx(round(0.10 * oi_at(sd, now), qty_decimals(sd)))
            assert snap.mark_price == pytest.approx(round(last_price(sd, now), price_decimals(sd)))
            assert snap.oi_base is not None and snap.mark_price is not None
            assert snap.oi_usd == pytest.approx(snap.oi_base * snap.mark_price)
            assert snap.funding_interval_h == sd.funding_interval_h  # from the instruments
            assert snap.next_funding_ms is not None and snap.funding_rate is not None
        assert run.stream.stats.state is State.LIVE and not run.liqs()
        await run.stop()


@pytest.mark.parametrize("venue", ["bybit", "bitget"])
async def test_stream_reconnects_after_drops(venue: str) -> None:
    async with running(venues=(venue,), ws_drop_s=0.3) as (sim, http):
        cls = BybitStream if venue == "bybit" else BitgetStream
        run = Run(cls(sim.url, session=http, reconnect_base_s=0.02, reconnect_max_s=0.1))
        n = len(sim.ctx.market.symbols)
        first = 2  # each venue's liquidations have a connection of their own
        await until(lambda: run.stream.stats.connects >= first + 1)
        before = len(run.snaps())
        # the clock is frozen: only a resubscribe brings fresh snapshots
        await until(lambda: len(run.snaps()) >= before + n)
        stats = run.stream.stats
        assert stats.disconnects >= 1 and stats.gaps
        assert all(down <= back for down, back in stats.gaps)
        assert stats.last_error is not None
        await run.stop()


async def test_stream_log_lines_are_key_value(caplog: pytest.LogCaptureFixture) -> None:
    """Reconnects log as `key=value` like every other line (issue #12, item 16)."""
    import re

    caplog.set_level(logging.INFO, logger="oiradar.venues")
    async with running(venues=("bybit",), ws_drop_s=0.3) as (sim, http):
        run = Run(BybitStream(sim.url, session=http, reconnect_base_s=0.02, reconnect_max_s=0.1))
        await until(lambda: run.stream.stats.connects >= 3)  # two connections, a reconnect
        await run.stop()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("oiradar.venues")]
    reconnects = [x for x in lines if "event=stream_reconnect" in x]
    assert reconnects, lines
    assert re.match(
        r"^venue=bybit event=stream_reconnect connection=\d+ attempt=\d+ error=", reconnects[0]
    )
    assert all(re.match(r"^venue=\w+ event=\w+( \w+=)?", x) for x in lines), lines


@pytest.mark.parametrize(
    ("venue", "error", "line"),
    [
        (
            "bybit",
            "subscribe: Invalid symbol :[tickers.NOPEUSDT]",
            "venue=bybit event=stream_refused op=subscribe "
            "error=Invalid symbol :[tickers.NOPEUSDT]",
        ),
        (
            "bitget",
            "30001: instType:USDT-FUTURES,channel:ticker,instId:NOPEUSDT doesn't exist",
            "venue=bitget event=stream_error code=30001 "
            "error=instType:USDT-FUTURES,channel:ticker,instId:NOPEUSDT doesn't exist",
        ),
    ],
)
async def test_a_refused_subscription_is_the_last_error_and_a_warning(
    venue: str, error: str, line: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="oiradar.venues")
    async with running(venues=(venue,)) as (sim, http):
        cls = BybitStream if venue == "bybit" else BitgetStream
        run = Run(cls(sim.url, session=http), ["NOPEUSDT"])
        await until(lambda: run.stream.stats.last_error is not None)
        await run.stop()
    # Bybit refuses the ticker and the liquidation subscription, on their two connections.
    assert run.stream.stats.last_error in (error, error.replace("tickers.", "allLiquidation."))
    assert line in [r.getMessage() for r in caplog.records if r.name.startswith("oiradar.venues")]


@pytest.mark.parametrize("venue", ["bybit", "bitget"])
async def test_stream_drops_duplicates(venue: str) -> None:
    async with running(venues=(venue,), ws_duplicate=1.0) as (sim, http):
        cls = BybitStream if venue == "bybit" else BitgetStream
        run = Run(cls(sim.url, session=http))
        n = len(sim.ctx.market.symbols)
        await until(lambda: run.stream.stats.duplicates >= n)
        assert len(run.snaps()) == n  # frozen clock: one snapshot per symbol, each sent twice
        if venue == "bybit":
            t0 = sim.ctx.now_ms()
            sim.ctx.clock.set(t0 + 3 * MINUTE)
            want = expected_liqs(sim, t0 // 500 * 500, (t0 + 3 * MINUTE) // 500 * 500)
            await until(lambda: len(run.liqs()) >= len(want))
            assert got_liqs(sim, run.liqs()) == want
            await asyncio.sleep(0.2)  # a late second copy would show up here
            assert got_liqs(sim, run.liqs()) == want
        await run.stop()


@pytest.mark.parametrize("venue", ["bybit", "bitget"])
async def test_stream_splits_symbols_over_connections_and_pings(
    venue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if venue == "bybit":  # about two symbols' tickers (or liquidations) per connection
        monkeypatch.setattr(bybit_ws, "ARGS_BUDGET", 2 * len("allLiquidation.BTCUSDT"))
    else:
        monkeypatch.setattr(bitget_ws, "CHANNELS_PER_CONN", 2)
    async with running(venues=(venue,)) as (sim, http):
        names = sorted(sim.ctx.market.symbols)
        cls = BybitStream if venue == "bybit" else BitgetStream
        run = Run(cls(sim.url, session=http, ping_s=0.15), names)
        await until(lambda: {s.symbol for s in run.snaps()} == set(names))
        groups = (
            bybit_ws.split_symbols(names, bybit_ws.ARGS_BUDGET)
            if venue == "bybit"
            else bitget_ws.split_symbols(names, 2)
        )
        # Liquidations on connections of their own: Bitget one, Bybit as many as the budget.
        feeds = bybit_ws.split_symbols(names, bybit_ws.ARGS_BUDGET, feed=True)
        conns = len(groups) + (1 if venue == "bitget" else len(feeds))
        assert len(groups) >= 3
        await until(lambda: run.stream.stats.connects == conns)
        await until(lambda: run.stream.stats.state is State.LIVE)
        # frozen clock: nothing but acks and pongs after the snapshots
        seen = run.stream.stats.messages
        await until(lambda: run.stream.stats.messages >= seen + 3)
        assert run.stream.stats.last_error is None
        assert run.stream.stats.connects == conns
        await run.stop()


async def test_a_stop_while_a_dropped_connection_tears_down_ends_the_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stop cancels the stream while a dropped connection waits for its ping task to
    end: that cancellation must end the stream, not be swallowed (it reconnected instead,
    and a watch under load did not stop within a minute)."""
    tearing = asyncio.Event()

    async def slow_ping(self: WsStream, ws: Any, text: str) -> None:
        try:
            while not ws.closed:
                await asyncio.sleep(3600)
        except asyncio.CancelledError:
            tearing.set()
            await asyncio.sleep(0.5)  # a helper slow to end: the stop lands meanwhile
            raise

    monkeypatch.setattr(WsStream, "_ping", slow_ping)
    async with running(venues=("bybit",), ws_drop_s=0.2) as (sim, http):
        stream = BybitStream(sim.url, session=http, reconnect_base_s=0.01, reconnect_max_s=0.05)
        task = asyncio.create_task(stream.run(["BTCUSDT"], lambda rec: None))
        await asyncio.wait_for(tearing.wait(), 10)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        assert task in done and task.cancelled(), stream.stats
        assert stream.stats.state is State.STOPPED
