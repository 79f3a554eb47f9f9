"""Gate's stream (complete liquidations, tickers OI) and Bitget's sampled liquidation topic
(UTA v3): parsers on the doc payloads, then the streams against the simulator over real
sockets, through drops, duplicates and reordering."""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import replace

import pytest

from oiradar.records import Candle, Liquidation, LiquidationFeed, Side
from oiradar.sim.context import num, price_decimals, qty_decimals
from oiradar.sim.market import LiqOrder, last_price, liquidation_orders, oi_at
from oiradar.sim.server import SimServer
from oiradar.sim.venues.gate.data import contract_of
from oiradar.venues.bitget import BitgetStream
from oiradar.venues.bitget import wire as bitget_wire
from oiradar.venues.gate import GateStream
from oiradar.venues.gate import ws as gate_ws
from oiradar.venues.registry import client
from oiradar.venues.stream import State
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

# exchange-apis.md §12: the verbatim push of Bitget's UTA liquidation page.
BITGET_LIQ = json.loads(
    '{"data":[{"symbol":"BTCUSDT","side":"buy","price":"89000","amount":"37.722858",'
    '"ts":"1736371332162"}],"arg":{"instType":"usdt-futures","topic":"liquidation"},'
    '"action":"update","ts":1736371332162}'
)


def test_bitget_liquidation_side_names_the_position_and_amount_is_usdt() -> None:
    [liq] = bitget_wire.parse_liquidations(BITGET_LIQ)
    assert liq == Liquidation("bitget", "BTCUSDT", 1736371332162, Side.LONG,
                              pytest.approx(37.722858 / 89000), 89000.0, 37.722858)  # type: ignore[arg-type]  # fmt: skip
    sell = {**BITGET_LIQ, "data": [{**BITGET_LIQ["data"][0], "side": "sell"}]}
    assert bitget_wire.parse_liquidations(sell)[0].position_side is Side.SHORT


def test_gate_subscribes_every_liquidation_apart_and_tickers_100_a_frame() -> None:
    contracts = [f"C{i}_USDT" for i in range(150)]
    first = json.loads(gate_ws.liquidation_message(1_700_000_000))
    tickers = list(map(json.loads, gate_ws.subscribe_messages(contracts, 1_700_000_000)))
    assert first == {"time": 1_700_000_000, "channel": "futures.public_liquidates",
                     "event": "subscribe", "payload": ["!all"]}  # fmt: skip
    assert [len(t["payload"]) for t in tickers] == [100, 50]
    assert {t["channel"] for t in tickers} == {"futures.tickers"}


# -- against the simulator -------------------------------------------------------------------


def gate_truth(sim: SimServer, t0: int, t1: int) -> dict[Key, float]:
    """(symbol, ts, side) -> base: every order in (t0, t1], whole contracts (at least one)."""
    out = {}
    for symbol in sim.ctx.market.symbols:
        sd = sim.ctx.market.get(symbol)
        c = contract_of(sd)
        for o in liquidation_orders(sd, t0, t1, sim.ctx.venue_seed("gate")):
            side = Side.LONG if o.long else Side.SHORT
            out[(symbol, o.ts_ms, side)] = max(1, c.contracts(0.08 * o.qty_base)) * c.quanto
    return out


async def test_gate_delivers_every_liquidation_and_oi_in_coin() -> None:
    async with running(venues=("gate",)) as (sim, http):
        stream = fast(GateStream, sim, http)
        assert stream.liquidations is LiquidationFeed.COMPLETE
        async with primed(stream, sim) as got:
            t0 = sim.ctx.now_ms()
            for s in snaps(got):
                sd = sim.ctx.market.get(s.symbol)
                c = contract_of(sd)
                assert s.ts_ms == t0 and s.oi_base == pytest.approx(
                    c.contracts(0.08 * oi_at(sd, t0)) * c.quanto)  # fmt: skip
                assert s.mark_price == round(last_price(sd, t0), price_decimals(sd))
            truth = gate_truth(sim, t0, t0 + 6 * MINUTE)
            sim.ctx.clock.set(t0 + 6 * MINUTE)
            await until(lambda: len(liqs(got)) >= len(truth))
            await asyncio.sleep(0.15)  # nothing more may follow
        assert truth and {w[2] for w in truth} == {Side.LONG, Side.SHORT}
        assert keyed(got) == pytest.approx(truth) and len(liqs(got)) == len(truth)
        # The tickers on one connection, the liquidations on their own.
        assert stream.stats.connects == 2 and stream.stats.last_message_ms == t0 + 6 * MINUTE


async def test_gate_duplicates_and_reordering_lose_nothing() -> None:
    async with running(venues=("gate",), ws_duplicate=1.0, ws_reorder=0.3) as (sim, http):
        stream = fast(GateStream, sim, http, ping_s=0.5)  # pongs flush held-back pushes; 0.5: below
        async with streaming(stream) as got:
            await until(lambda: stream.stats.state is State.LIVE and bool(snaps(got)))
            t0 = sim.ctx.now_ms()
            truth = gate_truth(sim, t0, t0 + 3 * MINUTE)
            for step in range(1, 7):
                sim.ctx.clock.set(t0 + step * 30_000)
                await asyncio.sleep(0.05)
            await until(lambda: len(liqs(got)) >= len(truth))
            await asyncio.sleep(0.3)
        assert keyed(got) == pytest.approx(truth) and len(liqs(got)) == len(truth)
        assert stream.stats.duplicates >= stream.stats.messages // 3


async def test_gate_candles_close_as_rest_serves_them_through_reordering() -> None:
    """Bars closed by `futures.candlesticks` (a row pushed at or after its close) equal the
    REST candlesticks, with duplicated and reordered pushes."""
    bar = 5 * MINUTE
    async with running(venues=("gate",), ws_duplicate=0.3, ws_reorder=0.3) as (sim, http):
        # Pongs flush a held-back message. Silence of 2 x ping_s means a dead link: at 0.1 s a
        # loaded test process stalling past 0.2 s reconnected, and a bar whose closing push
        # went to the old connection never closed on the stream (the daemon takes it from REST).
        stream = fast(GateStream, sim, http, ping_s=0.5)
        assert stream.want_candles(bar)
        t0 = sim.ctx.now_ms() // bar * bar + bar
        sim.ctx.clock.set(t0 + 30_000)
        async with primed(stream, sim) as got:
            names = set(sim.ctx.market.symbols)
            for k in range(1, 4):
                for m in range(1, 7):
                    sim.ctx.clock.set(t0 + (k - 1) * bar + m * MINUTE + 30_000)
                    await asyncio.sleep(0.25)
                closed = functools.partial(closed_all, got, t0 + (k - 1) * bar, names)
                await until(closed, timeout=20)  # a loaded machine: pushes come late
            async with client("gate", sim.url) as rest:
                for sym in names:
                    truth = await rest.klines(sym, bar, t0, t0 + 2 * bar)
                    want = {c.ts_ms: replace(c, volume_quote=None) for c in truth}
                    mine = [c for c in got if isinstance(c, Candle) and c.symbol == sym]
                    assert len(want) == 3 and want.keys() <= {c.ts_ms for c in mine}
                    # Every bar delivered is the final one (no quote volume on the channel):
                    # a running row is never taken for a closed one.
                    assert all(c == want[c.ts_ms] for c in mine if c.ts_ms in want)
        assert stream.stats.duplicates > 0


async def test_gate_reconnects_after_drops_and_resubscribes() -> None:
    async with running(venues=("gate",), ws_drop_s=0.3) as (sim, http):
        stream = fast(GateStream, sim, http)
        async with streaming(stream) as got:
            await until(lambda: stream.stats.connects >= 4, timeout=6)  # two connections
            before = len(snaps(got))
            await until(lambda: len(snaps(got)) > before)  # a resubscribe brings the rows
        assert stream.stats.disconnects >= 2 and stream.stats.gaps
        assert all(down <= back for down, back in stream.stats.gaps)


def bitget_truth(sim: SimServer, t0: int, t1: int) -> dict[Key, float]:
    """Per symbol and second, the largest long and the largest short order, at 10 %."""
    best: dict[tuple[str, int, bool], LiqOrder] = {}
    for symbol in sim.ctx.market.symbols:
        for o in liquidation_orders(sim.ctx.market.get(symbol), t0, t1,
                                    sim.ctx.venue_seed("bitget")):  # fmt: skip
            key = (symbol, -(-o.ts_ms // 1000), o.long)
            if key not in best or o.qty_base > best[key].qty_base:
                best[key] = o
    out = {}
    for (symbol, _, is_long), o in best.items():
        sd = sim.ctx.market.get(symbol)
        qd = qty_decimals(sd)
        qty = max(round(o.qty_base * 0.10, qd), 10.0**-qd)
        amount, price = float(num(qty * o.price, 6)), float(num(o.price, price_decimals(sd)))
        out[(symbol, o.ts_ms, Side.LONG if is_long else Side.SHORT)] = amount / price
    return out


async def test_bitget_liquidations_are_the_largest_per_side_per_second() -> None:
    async with running(venues=("bitget",), ws_duplicate=0.5) as (sim, http):
        stream = fast(BitgetStream, sim, http)
        assert stream.liquidations is LiquidationFeed.SAMPLED
        async with streaming(stream, ["BTCUSDT", "ETHUSDT", "SOLUSDT"]) as got:
            await until(lambda: stream.stats.state is State.LIVE and bool(snaps(got)))
            t0 = sim.ctx.now_ms()
            truth = {k: v for k, v in bitget_truth(sim, t0, t0 + 2 * MINUTE).items()
                     if k[0] in ("BTCUSDT", "ETHUSDT", "SOLUSDT")}  # fmt: skip
            sim.ctx.clock.set(t0 + 2 * MINUTE)  # the simulator replays at most 2 minutes
            await until(lambda: len(liqs(got)) >= len(truth))
            await asyncio.sleep(0.15)
        assert truth and keyed(got) == pytest.approx(truth, rel=1e-6)
        assert len(liqs(got)) == len(truth) and stream.stats.duplicates > 0
        per_second = {(x.symbol, x.ts_ms // 1000, x.position_side) for x in liqs(got)}
        assert len(per_second) == len(truth)  # at most one a side per symbol per second
