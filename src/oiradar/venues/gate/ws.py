"""Gate USDT-perpetual public WebSocket `/v4/ws/usdt` (exchange-apis.md §10.3, §10.5):
every liquidation and real-time OI, normalized to `Liquidation` / `MarketSnapshot`.

- `futures.public_liquidates` with payload `["!all"]`: every contract in one subscription,
  **complete** since 2026-08-20 (all of a contract's orders in each 1 s aggregation period,
  see `wire`). A row's `size` is the forced ORDER in contracts: a sell closed a LONG. It
  goes on a connection of its own (the last): beside the tickers, an order waited behind
  every ticker frame queued before it in the same TCP stream.
- `futures.tickers` per contract (payload = contract list, 100 per frame as a measured
  client does; no per-connection topic cap is documented): `total_size` is OI in contracts,
  x `quanto_multiplier` (read once over REST) = base units.
- `futures.candlesticks` (when `want_candles` asked): one `[interval, contract]` subscription
  per contract (the doc shows one pair a request); rows carry no closed flag, so a row is
  final when its push (`time_ms`) is at or after the bar's close (`wire.parse_candle_push`).
  That Gate pushes a bar's final row after its close is assumed (unverified): a bar without
  one is filled from REST after the close's grace, never taken from an earlier row.
- The bare `/v4/ws` routes to BTC-settled contracts: never used.
- Keepalive: the server pings at the protocol level (aiohttp answers); `futures.ping` goes
  out after `ping_s` of silence. The doc's examples send a fixed `time` in requests, so it is
  not checked on public channels; the venue's clock (REST `Date`) is sent anyway.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import aiohttp

from oiradar.records import LiquidationFeed
from oiradar.venues.base import routed
from oiradar.venues.gate.rest import GateClient
from oiradar.venues.gate.wire import (
    CANDLE_INTERVALS,
    VENUE,
    Listing,
    envelope_ms,
    parse_candle_push,
    parse_liquidations,
    stream_tickers,
)
from oiradar.venues.stream import StreamRecord
from oiradar.venues.wsstream import Connection, FeedGroup, Group, WsStream

PATH = "/v4/ws/usdt"
CONTRACTS_PER_FRAME = 100
LIQUIDATIONS, TICKERS = "futures.public_liquidates", "futures.tickers"
CANDLES = "futures.candlesticks"


def _frame(channel: str, payload: list[str], time_s: int) -> str:
    body = {"time": time_s, "channel": channel, "event": "subscribe", "payload": payload}
    return json.dumps(body, separators=(",", ":"))


def liquidation_message(time_s: int) -> str:
    """The all-contract liquidation subscription (on its own connection)."""
    return _frame(LIQUIDATIONS, ["!all"], time_s)


def subscribe_messages(contracts: list[str], time_s: int, candle: str | None = None) -> list[str]:
    """Tickers 100 contracts a frame, then (with `candle`, an interval name) one
    candlesticks subscription per contract."""
    chunks = range(0, len(contracts), CONTRACTS_PER_FRAME)
    candles = [] if candle is None else [_frame(CANDLES, [candle, c], time_s) for c in contracts]
    return [*(_frame(TICKERS, contracts[i : i + CONTRACTS_PER_FRAME], time_s) for i in chunks),
            *candles]  # fmt: skip


class GateStream(WsStream):
    """All USDT perpetuals (or `symbols`) on one connection, their liquidations on another.

    Dedupe: tickers are state of their connection (keyed per connection), liquidation pushes
    are events (a repeat is a duplicate whichever connection brought it)."""

    name = VENUE
    liquidations = LiquidationFeed.COMPLETE
    ping_text = '{"time":0,"channel":"futures.ping"}'

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listings: dict[str, Listing] = {}  # contract -> listing
        self._clock: Callable[[], int | None] = lambda: None
        self._candle: str | None = None
        self._channels: dict[str, Callable[[Mapping[str, Any]], Iterable[StreamRecord]]] = {
            LIQUIDATIONS: self._liquidations,
            TICKERS: lambda msg: stream_tickers(msg, self._listings),
            CANDLES: self._candles,
        }

    def want_candles(self, interval_ms: int) -> bool:
        self._candle = CANDLE_INTERVALS.get(interval_ms)
        self.candle_ms = interval_ms if self._candle is not None else None
        return self._candle is not None

    async def prepare(self, session: aiohttp.ClientSession) -> None:
        async with self.rest(session, GateClient) as client:
            self._listings = await client.listings()
        self._clock = client.http.clock.now_ms

    async def plan(
        self, session: aiohttp.ClientSession, symbols: Sequence[str] | None
    ) -> list[Group]:
        return [None if symbols is None else list(symbols), FeedGroup()]

    def url(self) -> str:
        return self.base_url + PATH

    def subscribe_messages(self, conn: Connection) -> list[str]:
        if conn.feed:
            return [liquidation_message((self._clock() or 0) // 1000)]
        wanted = None if conn.items is None else set(conn.items)
        contracts = [c for c, x in self._listings.items()
                     if wanted is None or x.instrument.symbol in wanted]  # fmt: skip
        return subscribe_messages(contracts, (self._clock() or 0) // 1000, self._candle)

    def dedupe_key(self, text: str, msg: Any, conn: Connection) -> str | None:
        if not isinstance(msg, dict):
            return None
        channel, event = msg.get("channel"), msg.get("event")
        if msg.get("error"):
            error = msg["error"]
            text_error = f"{channel}: {error.get('code')} {error.get('message')}"
            self.venue_error("stream_error", text_error, channel=channel, error=error)
            return None
        if event != "update":  # subscribe acks, futures.pong
            return None
        return f"{conn.link}:{text}" if channel in (TICKERS, CANDLES) else text

    def message_ms(self, msg: Any) -> int | None:
        return envelope_ms(msg)

    def records(self, msg: Any, symbols: frozenset[str] | None) -> list[StreamRecord]:
        out = routed(self._channels, msg.get("channel"), msg)
        return out if symbols is None else [r for r in out if r.symbol in symbols]

    def _liquidations(self, msg: Mapping[str, Any]) -> list[StreamRecord]:
        quanto = {c: x.instrument.contract_size for c, x in self._listings.items()}
        return list(parse_liquidations(msg["result"], quanto))

    def _candles(self, msg: Mapping[str, Any]) -> list[StreamRecord]:
        if self.candle_ms is None:
            return []
        return list(parse_candle_push(msg, self._listings, self.candle_ms))
