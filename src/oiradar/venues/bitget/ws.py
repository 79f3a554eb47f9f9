"""Bitget public WebSockets: the v2 USDT-FUTURES `ticker` channel (real-time OI
`holdingAmount`, coin, one side; mark/last price; funding) as `MarketSnapshot`
(exchange-apis.md §4.4), and the UTA v3 `liquidation` topic as `Liquidation` (§12).

- Fewer than 50 channels per connection are recommended: symbols are split over several
  connections (each its own task), `CHANNELS_PER_CONN` each.
- At most 10 messages/s per connection, pings included: subscribe messages are paced
  (`SUBSCRIBE_GAP_S` apart) and batch `ARGS_PER_REQUEST` channels each (240 subscribe
  requests/hour/connection).
- Keepalive: the text `ping` every 30 s, answered by `pong`.
- The venue force-closes every connection after 24 h: handled like any drop (reconnect with
  backoff, resubscribe).
- Liquidations come from `/v3/ws/public`, topic `liquidation`, instType `usdt-futures`: one
  subscription for every symbol on a connection of its own. **Sampled**: once a second, per
  symbol, only the largest long and the largest short liquidation (`LiquidationFeed.SAMPLED`;
  sums are lower bounds). The v3 socket's rules are assumed to be v2's (text `ping` every
  30 s, 10 messages/s, 24 h cut): the v3 intro page is not in the stored copies.
- `candle5m` (when `want_candles` asked) beside each `ticker`: two channels per symbol, so
  22 symbols per connection; a bar is closed once a push made after its close carries it
  (`wire.parse_candle_push`: the channel has no closed flag).
- The push carries no funding interval: it is filled from the instruments when the stream
  fetched them itself (`symbols=None`), else left None.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiohttp

from oiradar.records import LiquidationFeed
from oiradar.venues.bitget.rest import BitgetClient
from oiradar.venues.bitget.wire import (
    GRANULARITY,
    PRODUCT,
    VENUE,
    parse_candle_push,
    parse_liquidations,
    parse_ticker,
)
from oiradar.venues.stream import StreamRecord, envelope_ms
from oiradar.venues.wsstream import Connection, FeedGroup, Group, WsStream

PATH = "/v2/ws/public"
UTA_PATH = "/v3/ws/public"
LIQUIDATIONS = json.dumps(
    {"op": "subscribe", "args": [{"instType": "usdt-futures", "topic": "liquidation"}]},
    separators=(",", ":"),
)
CHANNELS_PER_CONN = 45  # the venue recommends < 50 per connection
ARGS_PER_REQUEST = 45
SUBSCRIBE_GAP_S = 0.25  # <= 4 subscribe messages/s, well under 10 messages/s with pings
SILENCE_MIN_S = 60.0  # no message at all for this long (and 3 pings): the link is dead


# -- connections -----------------------------------------------------------------------------


def split_symbols(symbols: Sequence[str], per_conn: int = CHANNELS_PER_CONN) -> list[list[str]]:
    """Symbols in order, `per_conn` per connection."""
    return [list(symbols[i : i + per_conn]) for i in range(0, len(symbols), per_conn)]


def subscribe_messages(
    symbols: Sequence[str], per_request: int = ARGS_PER_REQUEST, candle: str | None = None
) -> list[str]:
    """`ticker` (and `candle<g>`) subscribe requests for `symbols`, `per_request` channels
    each."""
    channels = ["ticker"] if candle is None else ["ticker", f"candle{candle}"]
    args = [{"instType": PRODUCT, "channel": c, "instId": s} for s in symbols for c in channels]
    return [
        json.dumps({"op": "subscribe", "args": args[i : i + per_request]}, separators=(",", ":"))
        for i in range(0, len(args), per_request)
    ]


# -- the stream ------------------------------------------------------------------------------


class BitgetStream(WsStream):
    """Bitget USDT-FUTURES tickers over connections of < 50 channels each, and liquidations
    on one more connection (the last: `items` None, since the topic covers every symbol).

    Dedupe: tickers per connection (the snapshot after a resubscribe may repeat the last one
    exactly); liquidation pushes are events, a repeat is a duplicate."""

    name = VENUE
    liquidations = LiquidationFeed.SAMPLED
    ping_text = "ping"
    ping_periodic = True
    subscribe_gap_s = SUBSCRIBE_GAP_S  # the 10 messages/s budget is shared with pings

    def __init__(self, *args: Any, ping_s: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, ping_s=ping_s, **kwargs)
        self._intervals: dict[str, float | None] = {}
        self._candle: str | None = None

    def want_candles(self, interval_ms: int) -> bool:
        self._candle = GRANULARITY.get(interval_ms)
        self.candle_ms = interval_ms if self._candle is not None else None
        return self._candle is not None

    async def plan(
        self, session: aiohttp.ClientSession, symbols: Sequence[str] | None
    ) -> list[Group]:
        if symbols is None:
            async with self.rest(session, BitgetClient) as client:
                instruments = await client.instruments()
            self._intervals = {i.symbol: i.funding_interval_h for i in instruments}
            symbols = [i.symbol for i in instruments]
        per_symbol = 1 if self._candle is None else 2
        groups: list[Group] = list(split_symbols(symbols, CHANNELS_PER_CONN // per_symbol))
        return [*groups, FeedGroup()]  # the UTA socket's all-symbol liquidation channel

    def url(self) -> str:
        return self.base_url + PATH

    def url_for(self, conn: Connection) -> str:
        return self.base_url + (UTA_PATH if conn.feed else PATH)

    def subscribe_messages(self, conn: Connection) -> list[str]:
        if conn.feed:
            return [LIQUIDATIONS]
        return subscribe_messages(conn.items or (), ARGS_PER_REQUEST, self._candle)

    def silence(self) -> tuple[float, int]:
        return max(3 * self.ping_s, SILENCE_MIN_S), 1

    def decode(self, text: str) -> Any:
        return None if text == "pong" else super().decode(text)

    def dedupe_key(self, text: str, msg: Any, conn: Connection) -> str | None:
        if not isinstance(msg, dict):
            return None
        if "event" in msg:  # subscribe acks and errors
            if msg["event"] == "error":
                code, error = msg.get("code"), msg.get("msg")
                self.venue_error("stream_error", f"{code}: {error}", code=code, error=error)
            return None
        arg = msg.get("arg")
        if not isinstance(arg, dict):
            return None
        if arg.get("topic") == "liquidation":
            return text
        channel = arg.get("channel")
        wanted = channel is not None and channel in ("ticker", self._channel)
        return f"{conn.link}:{text}" if wanted else None

    def message_ms(self, msg: Any) -> int | None:
        return envelope_ms(msg)

    @property
    def _channel(self) -> str | None:
        return None if self._candle is None else f"candle{self._candle}"

    def records(self, msg: Any, symbols: frozenset[str] | None) -> list[StreamRecord]:
        if msg["arg"].get("topic") == "liquidation":
            found = parse_liquidations(msg)
            return [r for r in found if symbols is None or r.symbol in symbols]
        if self.candle_ms is not None and msg["arg"].get("channel") == self._channel:
            return list(parse_candle_push(msg, self.candle_ms))
        return list(parse_ticker(msg, self._intervals))
