"""Binance and OKX WebSocket streams: parsers on the doc payloads, then the simulator."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest

from oiradar.records import Liquidation, LiquidationFeed, MarketSnapshot, Side
from oiradar.sim.context import num, qty_decimals
from oiradar.sim.market import liquidation_orders
from oiradar.sim.server import SimServer
from oiradar.sim.venues.okx.data import OKX
from oiradar.venues.binance import BinanceStream
from oiradar.venues.binance import wire as binance_wire
from oiradar.venues.okx import OkxStream
from oiradar.venues.okx import wire as okx_wire
from oiradar.venues.okx import ws as okx_ws
from oiradar.venues.stream import State
from oiradar.venues.wsstream import WsStream
from tests.simkit import running
from tests.streamkit import fast, liqs, snaps, streaming, until

MINUTE = 60_000


# -- parsers on the payloads quoted in exchange-apis.md §1.4 / §3.5 -------------------------

BINANCE_FORCE: dict[str, Any] = {
    "e": "forceOrder",
    "E": 1698871323061,
    "o": {
        "s": "BTCUSDT",
        "S": "BUY",
        "o": "LIMIT",
        "f": "IOC",
        "q": "1.437",
        "p": "35100.81",
        "ap": "34959.70",
        "X": "FILLED",
        "l": "1.437",
        "z": "1.437",
        "T": 1698871323059,
    },
}
BINANCE_MARK: dict[str, Any] = {
    "e": "markPriceUpdate",
    "E": 1562305380000,
    "s": "BTCUSDT",
    "p": "11794.15",
    "i": "11784.62",
    "P": "11784.25",
    "r": "0.00038167",
    "T": 1562306400000,
}
OKX_LIQ: dict[str, Any] = {
    "arg": {"channel": "liquidation-orders", "instType": "SWAP"},
    "data": [
        {
            "instId": "IOST-USDT-SWAP",
            "instFamily": "IOST-USDT",
            "uly": "IOST-USDT",
            "details": [
                {
                    "side": "buy",
                    "posSide": "short",
                    "sz": "13",
                    "bkPx": "0.007831",
                    "bkLoss": "0",
                    "ts": "1692266434010",
                }
            ],
        }
    ],
}
OKX_OI: dict[str, Any] = {
    "arg": {"channel": "open-interest", "instId": "BTC-USDT-SWAP"},
    "data": [
        {
            "instId": "BTC-USDT-SWAP",
            "instType": "SWAP",
            "oi": "5000",
            "oiCcy": "555.55",
            "oiUsd": "50000",
            "ts": "1597026383085",
        }
    ],
}


def test_binance_force_order_is_the_short_side_and_notional_is_z_times_ap() -> None:
    [liq] = binance_wire.parse_message({"stream": "!forceOrder@arr", "data": BINANCE_FORCE})
    assert liq == Liquidation(
        "binance", "BTCUSDT", 1698871323059, Side.SHORT, 1.437, 34959.70, 1.437 * 34959.70
    )  # BUY closes a short; notional = z x ap
    sell = {**BINANCE_FORCE, "o": {**BINANCE_FORCE["o"], "S": "SELL"}}
    assert binance_wire.parse_force_order(sell)[0].position_side is Side.LONG


def test_binance_mark_price_array_carries_mark_funding_and_next_time() -> None:
    delivery = {**BINANCE_MARK, "s": "BTCUSDT_250627", "r": "", "T": 0}
    recs = binance_wire.parse_message(
        {"stream": "!markPrice@arr@1s", "data": [BINANCE_MARK, delivery]}
    )
    assert recs == [
        MarketSnapshot(
            "binance",
            "BTCUSDT",
            1562305380000,
            mark_price=11794.15,
            funding_rate=0.00038167,
            next_funding_ms=1562306400000,
        )
    ]
    assert binance_wire.message_ms({"stream": "x", "data": [BINANCE_MARK]}) == 1562305380000
    assert binance_wire.parse_message({"result": None, "id": 1}) == []


def test_okx_liquidation_sides_and_contract_value() -> None:
    ct = {"IOST-USDT-SWAP": 1000.0}
    [liq] = liqs(okx_wire.parse_message(OKX_LIQ, ct))
    assert liq.symbol == "IOSTUSDT" and liq.ts_ms == 1692266434010
    assert liq.position_side is Side.SHORT  # buy closes a short
    assert liq.qty_base == 13 * 1000.0 and liq.price == 0.007831  # sz is contracts
    assert liq.usd == pytest.approx(13_000 * 0.007831)
    net = [
        {
            **OKX_LIQ["data"][0],
            "details": [
                {"side": "sell", "posSide": "net", "sz": "2", "bkPx": "1", "ts": "5"},
                {"side": "buy", "posSide": "net", "sz": "2", "bkPx": "1", "ts": "6"},
            ],
        }
    ]
    sides = [x.position_side for x in okx_wire.parse_liquidations(net, ct)]
    assert sides == [Side.LONG, Side.SHORT]  # net mode: from the order side
    assert okx_wire.parse_liquidations(net, {}) == []  # unknown ctVal: no guessed units


def test_okx_oi_funding_and_control_messages() -> None:
    [oi] = snaps(okx_wire.parse_message(OKX_OI, {"BTC-USDT-SWAP": 0.01}))
    assert (oi.symbol, oi.ts_ms, oi.oi_base, oi.oi_usd) == ("BTCUSDT", 1597026383085, 555.55, 5e4)
    funding = {
        "arg": {"channel": "funding-rate", "instId": "BTC-USDT-SWAP"},
        "data": [
            {
                "instId": "BTC-USDT-SWAP",
                "fundingRate": "0.0001",
                "fundingTime": "1597036800000",
                "nextFundingTime": "1597065600000",
                "ts": "1597026383085",
            }
        ],
    }
    [f] = snaps(okx_wire.parse_message(funding, {}))
    assert (f.funding_rate, f.funding_interval_h, f.next_funding_ms) == (1e-4, 8.0, 1597036800000)
    assert f.oi_base is None and f.mark_price is None
    ack = {"event": "subscribe", "arg": {"channel": "open-interest"}, "connId": "a"}
    assert okx_wire.parse_message(ack, {}) == [] and okx_wire.message_ms(ack) is None
    assert okx_wire.message_ms(OKX_LIQ) == 1692266434010
    msgs = okx_ws.subscribe_messages([f"X{i}-USDT-SWAP" for i in range(150)], batch=100)
    assert len(msgs) == 3 and not any("liquidation-orders" in m for m in msgs)  # 300 args
    assert json.loads(okx_ws.LIQUIDATIONS)["args"] == [
        {"channel": "liquidation-orders", "instType": "SWAP"}  # on a connection of its own
    ]


def test_okx_error_event_is_the_last_error_and_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    stream = OkxStream("http://127.0.0.1:9")  # never connects: only its message hook runs
    error = {"event": "error", "code": "60018", "msg": "Wrong URL or channel", "connId": "a"}
    with caplog.at_level(logging.WARNING, logger="oiradar.venues"):
        assert stream.records(error, None) == []
    assert stream.stats.last_error == "okx 60018: Wrong URL or channel"
    line = "venue=okx event=stream_error error=okx 60018: Wrong URL or channel"
    assert [r.getMessage() for r in caplog.records] == [line]


# -- against the simulator over real sockets --------------------------------------------------


def binance_truth(
    sim: SimServer, symbols: list[str], t0: int, t1: int
) -> set[tuple[str, int, Side, float]]:
    out: set[tuple[str, int, Side, float]] = set()
    for s in symbols:
        sd = sim.ctx.market.get(s)
        latest = {
            o.ts_ms // 1000: o
            for o in liquidation_orders(sd, t0, t1, sim.ctx.venue_seed("binance"))
        }
        for o in latest.values():
            qty = float(num(o.qty_base * 0.40, qty_decimals(sd)))  # the venue's lot precision
            if qty:
                out.add((s, o.ts_ms, Side.LONG if o.long else Side.SHORT, qty))
    return out


async def test_binance_liquidations_equal_the_sampled_truth() -> None:
    async with running(venues=("binance",)) as (sim, http):
        stream = fast(BinanceStream, sim, http)
        assert stream.liquidations is LiquidationFeed.SAMPLED
        wanted = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
        async with streaming(stream, wanted) as got:
            await until(lambda: stream.stats.state is State.LIVE)
            t0 = sim.ctx.now_ms()
            truth = binance_truth(sim, wanted, t0, t0 + 10 * MINUTE)
            sim.ctx.clock.set(t0 + 10 * MINUTE)
            await until(lambda: len(liqs(got)) >= len(truth) and bool(snaps(got)))
            await asyncio.sleep(0.15)  # nothing more may follow
        received = liqs(got)
        assert received and {r.symbol for r in got} <= set(wanted)
        keys = {(r.symbol, r.ts_ms) for r in received}
        assert len(keys) == len(received)  # at most one order per symbol per second
        by_key = {(r.symbol, r.ts_ms): r for r in received}
        assert {k[:2] for k in truth} == set(by_key)
        for s, ts, side, qty in truth:
            r = by_key[(s, ts)]
            assert r.position_side is side
            assert r.qty_base == qty
            assert r.usd == pytest.approx(r.qty_base * r.price)
        marks = snaps(got)
        assert all(m.mark_price and m.funding_rate is not None and m.next_funding_ms for m in marks)
        assert all(m.oi_base is None for m in marks)
        # Mark prices on one connection, liquidations on their own.
        assert stream.stats.records == len(got) and stream.stats.connects == 2
        assert stream.stats.last_message_ms == t0 + 10 * MINUTE


async def test_okx_liquidations_use_ct_val_and_oi_funding_arrive() -> None:
    async with running(venues=("okx",)) as (sim, http):
        stream = fast(OkxStream, sim, http)
        async with streaming(stream) as got:
            # the current OI/funding state arrives on subscribe: liquidation-orders is set too
            symbols = set(sim.ctx.market.symbols)
            await until(lambda: {s.symbol for s in snaps(got) if s.oi_base} == symbols)
            await until(lambda: {s.symbol for s in snaps(got) if s.funding_rate} == symbols)
            t0 = sim.ctx.now_ms()
            t1 = t0 + MINUTE
            okx = sim.app[OKX]
            truth = {}
            for s in symbols:
                inst = okx.inst(f"{s.removesuffix('USDT')}-USDT-SWAP")
                assert inst is not None
                orders = liquidation_orders(
                    inst.sd, t0 // 1000 * 1000 - 1, t1 // 1000 * 1000 - 1, sim.ctx.venue_seed("okx")
                )
                for o in {o.ts_ms // 1000: o for o in orders}.values():
                    qty = inst.coin(max(1, inst.lots(o.qty_base * 0.20)))
                    truth[(s, o.ts_ms)] = (Side.LONG if o.long else Side.SHORT, qty)
            sim.ctx.clock.set(t1)
            await until(lambda: len(liqs(got)) >= len(truth))
            await asyncio.sleep(0.15)
        received = {(r.symbol, r.ts_ms): r for r in liqs(got)}
        assert truth and set(received) == set(truth) and len(received) == len(liqs(got))
        for key, (side, qty) in truth.items():
            assert received[key].position_side is side
            assert received[key].qty_base == pytest.approx(qty)  # contracts x ctVal
        btc = next(s for s in snaps(got) if s.symbol == "BTCUSDT" and s.oi_base)
        assert btc.oi_usd and btc.mark_price is None


@pytest.mark.parametrize("venue", ["binance", "okx"])
async def test_reconnects_after_drops_and_keeps_delivering(venue: str) -> None:
    async with running(venues=(venue,), ws_drop_s=0.3) as (sim, http):
        cls: type[WsStream] = BinanceStream if venue == "binance" else OkxStream
        stream = fast(cls, sim, http)
        seen_at: list[int] = []  # stats.connects when each record arrived
        async with streaming(stream) as got:
            t = sim.ctx.now_ms()
            deadline = time.monotonic() + 6
            # Two connections (the liquidations on their own): two reconnects, data after.
            while not (
                stream.stats.connects >= 4 and max(seen_at, default=0) >= 3 and stream.stats.gaps
            ):
                assert time.monotonic() < deadline, stream.stats
                t += 1_000
                sim.ctx.clock.set(t)
                await asyncio.sleep(0.05)
                seen_at.extend([stream.stats.connects] * (len(got) - len(seen_at)))
        stats = stream.stats
        assert stats.disconnects >= 2 and stats.gaps
        assert all(down <= back for down, back in stats.gaps)
        assert stats.last_error


@pytest.mark.parametrize("venue", ["binance", "okx"])
async def test_duplicates_are_dropped_and_reordering_is_harmless(venue: str) -> None:
    async with running(venues=(venue,), ws_duplicate=1.0, ws_reorder=0.3) as (sim, http):
        cls: type[WsStream] = BinanceStream if venue == "binance" else OkxStream
        stream = fast(cls, sim, http)
        async with streaming(stream) as got:
            t0 = sim.ctx.now_ms()
            for step in range(1, 8):
                sim.ctx.clock.set(t0 + step * 10_000)
                await asyncio.sleep(0.05)
            await until(lambda: len(liqs(got)) > 0 and stream.stats.duplicates > 0)
        assert len(got) == len(set(got))  # no record twice
        assert stream.stats.connects == 2 and stream.stats.duplicates >= stream.stats.messages // 3


async def test_okx_keeps_an_idle_connection_alive_with_text_pings() -> None:
    async with running(venues=("okx",), extra={"okx_idle_s": 0.3}) as (sim, http):
        stream = fast(OkxStream, sim, http, ping_s=0.1)
        async with streaming(stream) as got:
            await until(lambda: bool(snaps(got)))
            await asyncio.sleep(0.9)  # three idle windows with a frozen clock: only pongs
            assert stream.stats.connects == 2 and stream.stats.state is State.LIVE


async def test_binance_reconnects_a_silent_connection() -> None:
    async with running(venues=("binance",)) as (sim, http):
        stream = fast(BinanceStream, sim, http, ping_s=0.05)  # frozen clock: no pushes at all
        async with streaming(stream):
            await until(lambda: stream.stats.disconnects >= 1)
        assert "nothing received" in (stream.stats.last_error or "")
