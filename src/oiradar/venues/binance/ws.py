"""Binance USD-M market streams (exchange-apis.md §1.4): liquidations, mark price/funding and,
when asked (`want_candles`), closed klines.

`/market/stream?streams=!markPrice@arr@1s` carries every symbol's mark price and funding;
`symbols` filters on our side. Liquidations come on a connection of their own,
`/market/stream?streams=!forceOrder@arr` (the last): on the mark price's connection an order
waited behind the all-market push and hundreds of kline updates in the same TCP stream,
and a squeeze call with it. Klines are `<symbol>@kline_<interval>` streams on the mark
price's `/market` path (a connection holds at most 1024 streams, so 1000 symbols' klines per
connection), added by `SUBSCRIBE` messages of 200 streams each, paced 0.25 s apart (the
venue closes a connection that sends more than 10 messages a second). A kline pushes every
250 ms; `k.x` true marks the closing update (developers.binance.com, USD-M "Kline/Candlestick
Streams"): running updates are dropped before they are decoded (`"x":false` in the text).

`!forceOrder@arr` is *sampled* (the latest order
per symbol per second). `S` is the side of the forced order: BUY closes a short, so the
liquidated position is SHORT; notional = filled qty `z` x average price `ap` (read in
`wire`). The server pings every 3 min (aiohttp answers) and cuts a connection at 24 h; any
drop reconnects with backoff.

The connection loop is `oiradar.venues.wsstream.WsStream`, shared by every venue: idle
keepalive (no text pings), every message deduplicated by raw text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiohttp

from oiradar.records import LiquidationFeed
from oiradar.units import interval_name
from oiradar.venues.binance.wire import KLINE_INTERVALS, VENUE, message_ms, parse_message
from oiradar.venues.stream import StreamRecord
from oiradar.venues.wsstream import Connection, FeedGroup, Group, WsStream

MARK_PRICE, FORCE_ORDERS = "!markPrice@arr@1s", "!forceOrder@arr"
KLINES_PER_CONN = 1000  # of the 1024 streams a connection may hold, beside MARK_PRICE
KLINES_PER_REQUEST = 200
RUNNING_KLINE = '"x":false'  # a kline update that does not close its bar


def subscribe_messages(symbols: Sequence[str], interval: str, first_id: int = 1) -> list[str]:
    """`SUBSCRIBE` requests for the symbols' kline streams, `KLINES_PER_REQUEST` each."""
    names = [f"{s.lower()}@kline_{interval}" for s in symbols]
    chunks = [names[i : i + KLINES_PER_REQUEST] for i in range(0, len(names), KLINES_PER_REQUEST)]
    return [
        json.dumps({"method": "SUBSCRIBE", "params": c, "id": first_id + k}, separators=(",", ":"))
        for k, c in enumerate(chunks)
    ]


class BinanceStream(WsStream):
    """All USD-M perpetuals' mark prices (with the klines) on one connection per 1,000
    symbols, their liquidations on one more (the last); `symbols` filters client-side."""

    name = VENUE
    liquidations = LiquidationFeed.SAMPLED
    streams_oi = False  # no public OI stream: `oiradar watch` polls openInterest
    subscribe_gap_s = 0.25  # <= 4 subscribe messages/s of the 10 incoming messages/s allowed

    def want_candles(self, interval_ms: int) -> bool:
        if interval_name(interval_ms) not in KLINE_INTERVALS:
            return False
        self.candle_ms = interval_ms
        return True

    async def plan(
        self, session: aiohttp.ClientSession, symbols: Sequence[str] | None
    ) -> list[Group]:
        groups: list[Group]
        if symbols is None or self.candle_ms is None:
            groups = [None if symbols is None else list(symbols)]
        else:
            step = KLINES_PER_CONN
            groups = [symbols[i : i + step] for i in range(0, len(symbols), step)]
        return [*groups, FeedGroup()]

    def url(self) -> str:
        return f"{self.base_url}/market/stream?streams={MARK_PRICE}"

    def url_for(self, conn: Connection) -> str:
        if conn.feed:
            return f"{self.base_url}/market/stream?streams={FORCE_ORDERS}"
        return self.url()

    def subscribe_messages(self, conn: Connection) -> list[str]:
        if self.candle_ms is None or not conn.items or conn.feed:
            return []
        return subscribe_messages(conn.items, interval_name(self.candle_ms))

    def decode(self, text: str) -> Any:
        return None if RUNNING_KLINE in text else super().decode(text)

    def records(self, msg: Any, symbols: frozenset[str] | None) -> list[StreamRecord]:
        out = parse_message(msg)
        return out if symbols is None else [r for r in out if r.symbol in symbols]

    def message_ms(self, msg: Any) -> int | None:
        return message_ms(msg)
