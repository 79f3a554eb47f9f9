"""Binance USD-M market streams (exchange-apis.md §1.4): liquidations and mark price/funding.

One combined connection `/market/stream?streams=!forceOrder@arr/!markPrice@arr@1s` carries
every symbol; `symbols` filters on our side. `!forceOrder@arr` is *sampled* (the latest order
per symbol per second). `S` is the side of the forced order: BUY closes a short, so the
liquidated position is SHORT; notional = filled qty `z` x average price `ap`. The server pings
every 3 min (aiohttp answers) and cuts a connection at 24 h; any drop reconnects with backoff.

The connection loop is `oiradar.venues.stream.WsStream` (re-exported here), shared by every
venue: one connection, idle keepalive (no text pings), every message deduplicated by raw text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oiradar.records import Liquidation, MarketSnapshot, Side
from oiradar.venues.base import decimal
from oiradar.venues.stream import LiquidationFeed, StreamRecord, WsStream

VENUE = "binance"
STREAMS = ("!forceOrder@arr", "!markPrice@arr@1s")


def _opt(value: object) -> float | None:
    return decimal(value) if value not in (None, "") else None


def parse_force_order(data: Mapping[str, Any]) -> list[Liquidation]:
    """A `forceOrder` event -> the liquidation, by the side of the liquidated *position*."""
    o = data["o"]
    side = Side.SHORT if str(o["S"]).upper() == "BUY" else Side.LONG
    qty = _opt(o.get("z")) or decimal(o["q"])  # filled so far; the order qty if none filled
    price = _opt(o.get("ap")) or decimal(o["p"])  # average fill price; the limit if none
    ts = int(o.get("T") or data["E"])
    return [Liquidation(VENUE, str(o["s"]), ts, side, qty, price, qty * price)]


def parse_mark_price(data: Mapping[str, Any]) -> list[MarketSnapshot]:
    """A `markPriceUpdate` -> mark price, funding rate `r` and next funding time `T`.

    Dated delivery contracts (`BTCUSDT_250627`, no funding) are not perpetuals: skipped."""
    symbol = str(data["s"])
    if "_" in symbol:
        return []
    next_ms = int(data.get("T") or 0) or None
    return [
        MarketSnapshot(
            VENUE,
            symbol,
            int(data["E"]),
            mark_price=_opt(data.get("p")),
            funding_rate=_opt(data.get("r")),
            next_funding_ms=next_ms,
        )
    ]


def parse_message(msg: Any) -> list[StreamRecord]:
    """Any market-stream message (combined-wrapped or raw) -> records; others -> []."""
    data = msg.get("data", msg) if isinstance(msg, dict) and "stream" in msg else msg
    items = data if isinstance(data, list) else [data]
    out: list[StreamRecord] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        event = item.get("e")
        if event == "forceOrder":
            out.extend(parse_force_order(item))
        elif event == "markPriceUpdate":
            out.extend(parse_mark_price(item))
    return out


def message_ms(msg: Any) -> int | None:
    """The newest venue time (`E`) in a message, if it carries one."""
    data = msg.get("data", msg) if isinstance(msg, dict) and "stream" in msg else msg
    items = data if isinstance(data, list) else [data]
    stamps = [int(i["E"]) for i in items if isinstance(i, dict) and isinstance(i.get("E"), int)]
    return max(stamps) if stamps else None


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


__all__ = [
    "BinanceStream",
    "WsStream",
    "message_ms",
    "parse_force_order",
    "parse_mark_price",
    "parse_message",
]
