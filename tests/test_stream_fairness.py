"""Liquidations are read the moment they arrive, whatever else the streams carry: each
venue's liquidation feed has a connection of its own, and a connection with a backlog lets
the others run (`wsstream.FAIR_TURN_S`)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, cast

import aiohttp
import pytest

from oiradar.records import Instrument, LiquidationFeed
from oiradar.venues.binance.ws import FORCE_ORDERS, BinanceStream
from oiradar.venues.bitget.ws import BitgetStream
from oiradar.venues.bybit.ws import BybitStream
from oiradar.venues.gate.wire import Listing
from oiradar.venues.gate.ws import GateStream
from oiradar.venues.lane import Lane
from oiradar.venues.okx.ws import OkxStream
from oiradar.venues.stream import StreamRecord
from oiradar.venues.wsstream import FAIR_TURN_S, Connection, WsStream, connection

BACKLOG = 500
HANDLE_S = 0.0002  # what one ticker frame costs to handle (about what a busy loop sees)


class _Order(WsStream):
    """Only the loop under test: each frame's handling is noted, in order."""

    name = "binance"  # for its endpoints: nothing connects
    liquidations = LiquidationFeed.COMPLETE

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9")
        self.seen: list[str] = []

    def url(self) -> str:
        return "ws://127.0.0.1:9/"

    def message_ms(self, msg: Any) -> int | None:
        return None

    def records(self, msg: Any, symbols: frozenset[str] | None) -> list[StreamRecord]:
        if msg["c"] == "tickers":
            time.sleep(HANDLE_S)
        self.seen.append(f"{msg['c']}:{msg['n']}")
        return []


class _Buffered:
    """A connection whose frames are already in: aiohttp hands each back without suspending."""

    close_code = 1000

    def __init__(self, frames: int, tag: int = 0) -> None:
        self.left, self.tag = frames, tag  # tag: frames of different connections differ

    async def receive(self, timeout: float | None = None) -> aiohttp.WSMessage:
        if not self.left:
            return aiohttp.WSMessage(aiohttp.WSMsgType.CLOSE, None, None)
        self.left -= 1
        text = json.dumps({"c": "tickers", "n": BACKLOG - self.left, "k": self.tag})
        return aiohttp.WSMessage(aiohttp.WSMsgType.TEXT, text, None)


class _Later:
    """A connection whose one frame (a liquidation) arrives once `arrived` is set."""

    close_code = 1000

    def __init__(self, arrived: asyncio.Event) -> None:
        self.arrived, self.sent = arrived, False

    async def receive(self, timeout: float | None = None) -> aiohttp.WSMessage:
        if self.sent:
            return aiohttp.WSMessage(aiohttp.WSMsgType.CLOSE, None, None)
        await self.arrived.wait()
        self.sent = True
        return aiohttp.WSMessage(aiohttp.WSMsgType.TEXT, json.dumps({"c": "liq", "n": 1}), None)


async def test_a_connection_with_a_backlog_lets_the_liquidations_in() -> None:
    """A ticker connection with 500 frames buffered (100 ms of handling) and a liquidation
    arriving 20 ms in on its own connection: the liquidation is handled within a turn, not
    after the whole backlog (it was, before connections took turns)."""
    stream = _Order()
    arrived = asyncio.Event()
    asyncio.get_running_loop().call_later(0.02, arrived.set)
    busy = cast(aiohttp.ClientWebSocketResponse, _Buffered(BACKLOG))
    feed = cast(aiohttp.ClientWebSocketResponse, _Later(arrived))
    await asyncio.gather(
        stream._receive(feed, Connection(1, None), None, lambda r: None),
        stream._receive(busy, Connection(0, None), None, lambda r: None),
    )
    at = stream.seen.index("liq:1")
    assert len(stream.seen) == BACKLOG + 1
    assert at < BACKLOG // 2, f"the liquidation was handled after {at} ticker frames"


async def test_many_connections_with_a_backlog_take_one_turn_per_pass() -> None:
    """At a bar close every market-data connection has a backlog at once: 30 of them with 100
    frames each (600 ms of handling) and a liquidation arriving 20 ms in on the feed's own
    connection. It is handled within a pass or two (one market-data turn each, `venues.lane`),
    not after a turn of each of the 30 (up to 750 frames)."""
    stream = _Order()
    loop = asyncio.get_running_loop()
    arrived, seen_then = asyncio.Event(), []

    def arrive() -> None:
        seen_then.append(len(stream.seen))
        arrived.set()

    loop.call_later(0.02, arrive)
    feed = cast(aiohttp.ClientWebSocketResponse, _Later(arrived))
    busy = [cast(aiohttp.ClientWebSocketResponse, _Buffered(100, k)) for k in range(30)]
    await asyncio.gather(
        stream._receive(feed, Connection(30, None, feed=True), None, lambda r: None),
        *(
            stream._receive(ws, Connection(k, None), None, lambda r: None)
            for k, ws in enumerate(busy)
        ),
    )
    assert len(stream.seen) == 30 * 100 + 1
    behind = stream.seen.index("liq:1") - seen_then[0]
    per_turn = round(FAIR_TURN_S / HANDLE_S)
    assert behind <= 3 * (per_turn + 1), f"{behind} ticker frames were handled before it"


@pytest.mark.parametrize("cls", [BinanceStream, BybitStream, OkxStream, GateStream, BitgetStream])
async def test_the_liquidation_feed_has_connections_of_its_own(cls: type[WsStream]) -> None:
    """No connection carries liquidations beside anything else (on a shared one, an order
    waited behind every ticker update queued before it in the same TCP stream)."""
    stream = cls("http://127.0.0.1:9")
    assert stream.want_candles(300_000)
    if isinstance(stream, OkxStream):
        stream.inst_ids = {f"S{i}USDT": f"S{i}-USDT-SWAP" for i in range(600)}
    if isinstance(stream, GateStream):
        stream._listings = {f"S{i}_USDT": _gate_listing(f"S{i}USDT") for i in range(600)}
    symbols = [f"S{i}USDT" for i in range(600)]
    async with aiohttp.ClientSession() as session:
        groups = await stream.plan(session, symbols)
    carries: list[tuple[bool, bool]] = []  # (liquidations, anything else) per connection
    for k, group in enumerate(groups):
        conn = connection(k, group)
        url, msgs = stream.url_for(conn), stream.subscribe_messages(conn)
        liq = [t for t in [url, *msgs] if "forceOrder" in t or "iquidat" in t]
        other = [t for t in msgs if t not in liq]
        if url.endswith("markPrice@arr@1s"):
            other.append("mark price")
        carries.append((bool(liq), bool(other)))
        assert conn.feed == bool(liq), (k, url, msgs[:1])  # what the venue code reads
    assert any(liq for liq, _ in carries) and any(other for _, other in carries)
    assert not any(liq and other for liq, other in carries), carries
    if isinstance(stream, BinanceStream):
        assert stream.url_for(connection(len(groups) - 1, groups[-1])).endswith(FORCE_ORDERS)


def _gate_listing(symbol: str) -> Listing:
    contract = symbol.replace("USDT", "_USDT")
    return Listing(Instrument("gate", symbol, contract, symbol[:-4], "USDT", 1.0), None)


async def test_the_lane_passes_on_when_a_waiter_is_cancelled() -> None:
    """A connection cancelled while it waits for its turn (a stop, a reconnect) never keeps
    the lane from the others, whether the lane had been handed to it or not."""
    market = Lane(asyncio.get_running_loop())
    order: list[str] = []

    async def take(who: str) -> None:
        await market.turn(who)
        order.append(who)

    waiters = {w: asyncio.create_task(take(w)) for w in "bcd"}
    await market.turn("a")  # an idle lane: at once (b, c and d have not run yet)
    await asyncio.sleep(0)  # they queue behind a; a's pass ends, handing the lane to b
    waiters["c"].cancel()  # cancelled before its turn
    waiters["b"].cancel()  # cancelled with the lane in hand, before it ran
    await asyncio.wait_for(waiters["d"], 1.0)
    assert order == ["d"]
    assert all(waiters[w].cancelled() for w in "bc")
