"""Bybit v5 linear public WebSocket: real-time OI (`tickers.<SYM>`) and every liquidation
(`allLiquidation.<SYM>`), normalized to `MarketSnapshot` / `Liquidation` (exchange-apis.md §2.5).

- `tickers.<SYM>` sends a `snapshot`, then `delta`s carrying only the changed fields: the
  stream keeps each symbol's merged fields and emits the merged state on every message; a
  resubscribe (after any reconnect) brings a fresh snapshot, so that symbol's state is reset.
- OI is two-sided on Bybit: one side = `singleOpenInterest[Value]` when sent, else half of
  `openInterest[Value]`.
- `allLiquidation.<SYM>` is complete and batched: `data` is a list; `S` is the side of the
  liquidated POSITION (`Buy` = a long was liquidated, the opposite of Binance's order side);
  `v` is in coin, `p` is the bankruptcy price.
- There is no all-symbol topic: a topic per symbol and channel; one connection's args may
  total at most 21 000 characters, so symbols are split over several connections (each its
  own task), the tickers (and klines) on some, the liquidations on others of their own.
- `kline.<interval>.<SYM>` (when `want_candles` asked): pushed every 1-60 s; `confirm` true
  marks the closed candle (docs `websocket/public/kline.mdx`). Running pushes are dropped
  before decoding (`"confirm":false` and no `"confirm":true` in the text).
- Keepalive: `{"op":"ping"}` every 20 s.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import aiohttp

from oiradar.records import LiquidationFeed, MarketSnapshot
from oiradar.venues.base import routed
from oiradar.venues.bybit.rest import BybitClient
from oiradar.venues.bybit.wire import (
    KLINE_INTERVALS,
    VENUE,
    merge_ticker,
    parse_kline_push,
    parse_liquidations,
    parse_ticker,
)
from oiradar.venues.stream import StreamRecord, envelope_ms
from oiradar.venues.wsstream import Connection, FeedGroup, Group, WsStream

PATH = "/v5/public/linear"
ARGS_CAP = 21_000  # characters of subscribed args per public connection (§2.5)
ARGS_BUDGET = 20_000  # what we pack per connection, leaving a margin under the cap
ARGS_PER_REQUEST = 200  # topics per subscribe message (linear has no cap; keeps frames small)
SILENCE_MIN_S = 30.0  # no message at all for this long (and 3 pings): the link is dead
RUNNING, CLOSED = '"confirm":false', '"confirm":true'


# -- connections -----------------------------------------------------------------------------


def topics(symbol: str, kline: str | None = None, *, feed: bool = False) -> list[str]:
    """The topics streamed per symbol: its ticker (with `kline.<interval>` when candles are
    wanted), or with `feed` its liquidations (which go on connections of their own)."""
    if feed:
        return [f"allLiquidation.{symbol}"]
    out = [f"tickers.{symbol}"]
    return out if kline is None else [*out, f"kline.{kline}.{symbol}"]


def split_symbols(
    symbols: Sequence[str],
    budget: int = ARGS_BUDGET,
    kline: str | None = None,
    *,
    feed: bool = False,
) -> list[list[str]]:
    """Symbols packed in order into groups whose topics total at most `budget` characters."""
    groups: list[list[str]] = []
    size = budget + 1  # forces a first group
    for sym in symbols:
        need = sum(len(t) for t in topics(sym, kline, feed=feed))
        if size + need > budget:
            groups.append([])
            size = 0
        groups[-1].append(sym)
        size += need
    return groups


def subscribe_messages(
    symbols: Sequence[str], req_ids: Iterable[int], kline: str | None = None, *, feed: bool = False
) -> list[str]:
    """Subscribe requests covering every topic of `symbols`, `ARGS_PER_REQUEST` args each."""
    args = [t for s in symbols for t in topics(s, kline, feed=feed)]
    chunks = [args[i : i + ARGS_PER_REQUEST] for i in range(0, len(args), ARGS_PER_REQUEST)]
    return [
        json.dumps({"req_id": str(rid), "op": "subscribe", "args": chunk}, separators=(",", ":"))
        for rid, chunk in zip(req_ids, chunks, strict=False)
    ]


# -- the stream ------------------------------------------------------------------------------


class BybitStream(WsStream):
    """Bybit linear tickers (and klines) over as many connections as the args cap needs, and
    allLiquidation over as many more (the last ones): on a ticker's connection a liquidation
    waited behind every ticker update of its symbols in the same TCP stream.

    Dedupe: a ticker message is state of its connection (the snapshot after a resubscribe may
    repeat the last one byte for byte and must not be dropped), so it is keyed per connection;
    liquidations are events: a repeat is a duplicate whichever connection brought it."""

    name = VENUE
    liquidations = LiquidationFeed.COMPLETE
    ping_text = '{"op":"ping"}'
    ping_periodic = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tickers: dict[str, dict[str, Any]] = {}  # merged fields per symbol
        self._req_ids = itertools.count(1)
        self._topics: dict[str, Callable[[Mapping[str, Any]], Iterable[StreamRecord]]] = {
            "allLiquidation": parse_liquidations,
            "tickers": self._ticker,
            "kline": parse_kline_push,
        }
        self._kline: str | None = None

    def want_candles(self, interval_ms: int) -> bool:
        self._kline = KLINE_INTERVALS.get(interval_ms)
        self.candle_ms = interval_ms if self._kline is not None else None
        return self._kline is not None

    async def plan(
        self, session: aiohttp.ClientSession, symbols: Sequence[str] | None
    ) -> list[Group]:
        if symbols is None:
            async with self.rest(session, BybitClient) as client:
                symbols = [i.symbol for i in await client.instruments()]
        groups: list[Group] = list(split_symbols(symbols, ARGS_BUDGET, self._kline))
        feeds = split_symbols(symbols, ARGS_BUDGET, feed=True)
        return [*groups, *map(FeedGroup, feeds)]

    def url(self) -> str:
        return self.base_url + PATH

    def on_connect(self, conn: Connection) -> None:
        if conn.feed:
            return
        for sym in conn.items or ():  # a fresh snapshot follows the resubscribe
            self._tickers.pop(sym, None)

    def subscribe_messages(self, conn: Connection) -> list[str]:
        return subscribe_messages(conn.items or (), self._req_ids, self._kline, feed=conn.feed)

    def decode(self, text: str) -> Any:
        running = RUNNING in text and CLOSED not in text  # a kline push of a running bar only
        return None if running else super().decode(text)

    def silence(self) -> tuple[float, int]:
        return max(3 * self.ping_s, SILENCE_MIN_S), 1  # pongs arrive every ping_s

    def dedupe_key(self, text: str, msg: Any, conn: Connection) -> str | None:
        if not isinstance(msg, dict):
            return None
        topic = msg.get("topic")
        if not isinstance(topic, str):  # op replies: pong, subscribe acks
            if msg.get("success") is False:
                op, error = msg.get("op"), msg.get("ret_msg")
                self.venue_error("stream_refused", f"{op}: {error}", op=op, error=error)
            return None
        return f"{conn.link}:{text}" if topic.startswith("tickers.") else text

    def message_ms(self, msg: Any) -> int | None:
        return envelope_ms(msg)

    def records(self, msg: Any, symbols: frozenset[str] | None) -> list[StreamRecord]:
        return routed(self._topics, str(msg["topic"]).partition(".")[0], msg)

    def _ticker(self, msg: Mapping[str, Any]) -> list[MarketSnapshot]:
        """The symbol's merged ticker fields after this message, as one snapshot."""
        symbol = str(msg["topic"]).partition(".")[2]
        merged = merge_ticker(self._tickers.get(symbol), str(msg.get("type")), msg["data"])
        merged.setdefault("symbol", symbol)
        self._tickers[symbol] = merged
        return [parse_ticker(merged, int(msg["ts"]))]
