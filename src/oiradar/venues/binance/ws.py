"""Binance USD-M market streams (exchange-apis.md §1.4): liquidations and mark price/funding.

One combined connection `/market/stream?streams=!forceOrder@arr/!markPrice@arr@1s` carries
every symbol; `symbols` filters on our side. `!forceOrder@arr` is *sampled* (the latest order
per symbol per second). `S` is the side of the forced order: BUY closes a short, so the
liquidated position is SHORT; notional = filled qty `z` x average price `ap` (read in
`wire`). The server pings every 3 min (aiohttp answers) and cuts a connection at 24 h; any
drop reconnects with backoff.

The connection loop is `oiradar.venues.stream.WsStream`, shared by every venue: one
connection, idle keepalive (no text pings), every message deduplicated by raw text.
"""

from __future__ import annotations

from typing import Any

from oiradar.records import LiquidationFeed
from oiradar.venues.binance.wire import VENUE, message_ms, parse_message
from oiradar.venues.stream import StreamRecord, WsStream

STREAMS = ("!forceOrder@arr", "!markPrice@arr@1s")


class BinanceStream(WsStream):
    """All USD-M perpetuals on one combined connection; `symbols` filters client-side."""

    name = VENUE
    liquidations = LiquidationFeed.SAMPLED
    streams_oi = False  # no public OI stream: `oiradar watch` polls openInterest

    def url(self) -> str:
        return f"{self.base_url}/market/stream?streams={'/'.join(STREAMS)}"

    def records(self, msg: Any, symbols: frozenset[str] | None) -> list[StreamRecord]:
        out = parse_message(msg)
        return out if symbols is None else [r for r in out if r.symbol in symbols]

    def message_ms(self, msg: Any) -> int | None:
        return message_ms(msg)
