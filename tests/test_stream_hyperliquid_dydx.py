"""Hyperliquid's context stream (no liquidations) and dYdX's markets and LIQUIDATED fills:
parsers on the doc payloads, then the streams against the simulator over real sockets,
through drops, duplicates and reordering."""

from __future__ import annotations

import asyncio
import functools
import json

import pytest

from oiradar.records import Candle, LiquidationFeed, Side
from oiradar.sim.market import last_price, oi_at
from oiradar.sim.server import SimServer
from oiradar.sim.venues.dydx.data import markets, trades
from oiradar.sim.venues.hyperliquid.data import coin_of
from oiradar.venues.dydx import DydxStream
from oiradar.venues.dydx import ws as dydx_ws
from oiradar.venues.dydx.wire import iso_ms
from oiradar.venues.hyperliquid import HyperliquidClient, HyperliquidStream
from oiradar.venues.hyperliquid import wire as hl_wire
from oiradar.venues.stream import State
from oiradar.venues.wsstream import WsStream
from tests.simkit import MINUTE, running
from tests.streamkit import (
    Key,
    closed_all,
    fast,
    keyed,
    liqs,
    primed,
    snaps,
    streaming,
    until,
)

# exchange-apis.md §11.4 / §9.1: the subscribe reply and the per-coin context push.
CTX = {
    "dayNtlVlm": "9450588.2273", "funding": "0.0000198", "markPx": "0.010804",
    "midPx": "0.010805", "openInterest": "10764.48", "oraclePx": "0.010799",
    "premium": "0.00055561", "prevDayPx": "0.011181", "impactPxs": ["0.0108", "0.0109"],
}  # fmt: skip
HL_CTX = {"channel": "activeAssetCtx", "data": {"coin": "kPEPE", "ctx": CTX}}


def test_hyperliquid_context_push_and_subscriptions() -> None:
    [snap] = hl_wire.parse_active_ctx(HL_CTX, {"kPEPE": "1000PEPEUSDT"}, 1_700_000_000_000)
    assert (snap.symbol, snap.oi_base, snap.mark_price) == ("1000PEPEUSDT", 10764.48, 0.010804)
    assert hl_wire.parse_active_ctx(HL_CTX, {}, 1) == []  # a coin we do not list
    assert json.loads(hl_wire.subscribe_message("BTC", "trades")) == {
        "method": "subscribe", "subscription": {"type": "trades", "coin": "BTC"}}  # fmt: skip


def test_dydx_markets_ride_the_first_of_connections_of_30_trade_subscriptions() -> None:
    frames = [json.loads(f) for f in dydx_ws.subscribe_messages(["BTC-USD", "ETH-USD"], True)]
    assert frames == [
        {"type": "subscribe", "channel": "v4_markets"},
        {"type": "subscribe", "channel": "v4_trades", "id": "BTC-USD"},
        {"type": "subscribe", "channel": "v4_trades", "id": "ETH-USD"},
    ]
    assert len(dydx_ws.subscribe_messages(["BTC-USD"], False)) == 1


# -- Hyperliquid against the simulator ---------------------------------------------------------


async def test_hyperliquid_contexts_follow_the_venues_clock_not_ours() -> None:
    async with running(venues=("hyperliquid",)) as (sim, http):
        stream = fast(HyperliquidStream, sim, http)
        assert stream.liquidations is LiquidationFeed.NONE
        async with primed(stream, sim) as got:
            t1 = sim.ctx.now_ms() + 2 * MINUTE
            sim.ctx.clock.set(t1)  # the venue jumps; only its trades can tell the stream
            await until(
                lambda: (
                    {s.symbol for s in snaps(got) if s.ts_ms >= t1} == set(sim.ctx.market.symbols)
                )
            )
        for s in (s for s in snaps(got) if s.ts_ms >= t1):
            sd = sim.ctx.market.get(s.symbol)
            assert s.ts_ms - t1 < 1000  # stamped by the venue's clock
            assert s.oi_base == pytest.approx(0.06 * oi_at(sd, t1), rel=1e-3)
            assert s.mark_price == pytest.approx(float(coin_of(sd).px(last_price(sd, t1))))
        assert not liqs(got) and stream.stats.duplicates == 0


async def test_hyperliquid_drops_duplicates_and_idle_pings() -> None:
    async with running(venues=("hyperliquid",), ws_drop_s=0.4, ws_duplicate=1.0) as (sim, http):
        stream = fast(HyperliquidStream, sim, http)
        async with streaming(stream) as got:
            await until(lambda: stream.stats.connects >= 3, timeout=6)
        n = len(sim.ctx.market.symbols)
        assert stream.stats.duplicates >= n and len(snaps(got)) >= 2 * n  # a state per connect
    idle = {"hyperliquid_idle_s": 0.4}
    async with running(venues=("hyperliquid",), extra=idle) as (sim, http):
        stream = fast(HyperliquidStream, sim, http, ping_s=0.1)
        async with streaming(stream):
            await until(lambda: stream.stats.state is State.LIVE)
            await asyncio.sleep(1.0)  # a frozen clock: only pongs keep the link alive
            assert stream.stats.connects == 1 and stream.stats.state is State.LIVE


async def test_hyperliquid_candles_close_as_rest_serves_them_through_reordering() -> None:
    """Bars closed by the `candle` channel equal the bars `candleSnapshot` serves, with
    duplicated and reordered pushes (a bar's final row and the next bar's first are sent
    together, so a swap delivers the bar first from its older row, then corrected)."""
    bar = 5 * MINUTE
    async with running(venues=("hyperliquid",), ws_duplicate=0.2, ws_reorder=0.3) as (sim, http):
        stream = fast(HyperliquidStream, sim, http)
        assert stream.want_candles(bar)
        t0 = sim.ctx.now_ms() // bar * bar + bar
        sim.ctx.clock.set(t0 + 30_000)
        async with primed(stream, sim) as got:
            names = set(sim.ctx.market.symbols)
            await until(lambda: stream.streams_candles(min(names)))
            for k in range(1, 4):  # three closes, a minute at a time so each bar grows
                for m in range(1, 7):  # and into the next bar: a held (reordered) push goes
                    sim.ctx.clock.set(t0 + (k - 1) * bar + m * MINUTE + 30_000)
                    await asyncio.sleep(0.25)
                closed = functools.partial(closed_all, got, t0 + (k - 1) * bar, names)
                await until(closed, timeout=20)  # a loaded machine: pushes come late
            client = HyperliquidClient(sim.url, session=http)
            for sym in names:
                truth = await client.klines(sym, bar, t0, t0 + 2 * bar)
                last = {c.ts_ms: c for c in got if isinstance(c, Candle) and c.symbol == sym}
                assert len(truth) == 3 and [last[c.ts_ms] for c in truth] == truth
        assert stream.stats.duplicates > 0


# -- dYdX against the simulator ----------------------------------------------------------------


async def trades_primed(stream: WsStream, sim: SimServer) -> None:
    """Every market's first `v4_trades` replay seen: the orders before it only prime the
    dedupe, so a test moving the clock earlier would count them lost."""
    assert isinstance(stream, DydxStream)
    await until(lambda: len(stream._primed) == len(markets(sim.ctx)))


def dydx_truth(sim: SimServer, t0: int, t1: int) -> dict[Key, float]:
    out = {}
    for m in markets(sim.ctx).values():
        for row in trades(sim.ctx, m, t0, t1):
            if row["type"] == "LIQUIDATED":
                side = Side.LONG if row["side"] == "SELL" else Side.SHORT
                out[(m.sd.symbol, iso_ms(row["createdAt"]), side)] = float(row["size"])
    return out


async def test_dydx_every_liquidation_and_merged_market_state() -> None:
    async with running(venues=("dydx",)) as (sim, http):
        stream = fast(DydxStream, sim, http)
        assert stream.liquidations is LiquidationFeed.COMPLETE
        async with primed(stream, sim) as got:
            await trades_primed(stream, sim)
            assert not liqs(got)  # the first replay of each market only primes
            t0 = sim.ctx.now_ms()
            truth = dydx_truth(sim, t0, t0 + 5 * MINUTE)
            sim.ctx.clock.set(t0 + 5 * MINUTE)
            await until(lambda: len(liqs(got)) >= len(truth))
            await until(lambda: any(s.ts_ms == t0 + 5 * MINUTE for s in snaps(got)))
            await asyncio.sleep(0.15)
        assert truth and keyed(got) == truth and len(liqs(got)) == len(truth)
        late = [s for s in snaps(got) if s.ts_ms == t0 + 5 * MINUTE]
        for s in late:  # deltas merged onto the subscribe reply: every field still known
            sd = sim.ctx.market.get(s.symbol)
            assert s.oi_base == pytest.approx(0.03 * oi_at(sd, s.ts_ms), rel=1e-3, abs=1e-3)
            assert s.funding_rate is not None and s.mark_price is not None


async def test_dydx_market_pushes_follow_the_venues_clock_not_ours() -> None:
    """A `trading` push carries no time: it is stamped by the venue's clock, which stamped
    pushes (oracle prices) keep. From the REST `Date` read when connecting plus our own time
    since, a 60x soak stored OI hours behind the venue's bars."""
    async with running(venues=("dydx",)) as (sim, http):
        stream = fast(DydxStream, sim, http)
        async with primed(stream, sim) as got:
            t1 = sim.ctx.now_ms() + 2 * MINUTE
            sim.ctx.clock.set(t1)  # the venue jumps: its oracle prices tell the stream
            await until(lambda: any(s.ts_ms == t1 for s in snaps(got)))
            await asyncio.sleep(0.1)
            n = len(snaps(got))
            sim.ctx.clock.set(t1 + 2 * MINUTE)  # its next `trading` push comes first
            await until(lambda: len(snaps(got)) > n)
            await asyncio.sleep(0.1)
        later = snaps(got)[n:]
        assert later and min(s.ts_ms for s in later) >= t1


async def test_dydx_drops_lose_no_liquidation_thanks_to_the_replay() -> None:
    async with running(venues=("dydx",), ws_drop_s=0.3) as (sim, http):
        stream = fast(DydxStream, sim, http)
        async with streaming(stream) as got:
            await until(lambda: stream.stats.state is State.LIVE and bool(snaps(got)))
            await trades_primed(stream, sim)
            t0 = t = sim.ctx.now_ms()
            while stream.stats.connects < 3:
                t += 10_000
                sim.ctx.clock.set(t)
                await asyncio.sleep(0.05)
            truth = dydx_truth(sim, t0, t)
            await until(lambda: set(keyed(got)) >= set(truth), timeout=6)
        assert stream.stats.disconnects >= 2 and keyed(got) == truth


async def test_dydx_duplicates_reordering_and_split_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dydx_ws, "TRADES_PER_CONN", 2)
    async with running(venues=("dydx",), ws_duplicate=1.0, ws_reorder=0.3) as (sim, http):
        # Pongs flush held-back pushes; at 0.1 s a stalled test process reconnected (2 quiet
        # windows) and lost what was pushed meanwhile.
        stream = fast(DydxStream, sim, http, ping_s=0.5)
        async with streaming(stream) as got:
            await until(lambda: stream.stats.connects == 3 and stream.stats.state is State.LIVE)
            await until(lambda: bool(snaps(got)))
            t0 = sim.ctx.now_ms()
            truth = dydx_truth(sim, t0, t0 + 3 * MINUTE)
            for step in range(1, 7):
                sim.ctx.clock.set(t0 + step * 30_000)
                await asyncio.sleep(0.05)
            await until(lambda: len(liqs(got)) >= len(truth))
            await asyncio.sleep(0.3)
        assert keyed(got) == truth and len(liqs(got)) == len(truth)
        assert stream.stats.duplicates > 0
