"""Hyperliquid public WebSocket `/ws` (exchange-apis.md §9.1, §11.4): real-time OI, mark and
funding per coin from `activeAssetCtx`, as `MarketSnapshot`.

- There is **no public liquidation feed** (REST or WS; the main SDK's maintainer: no API for
  all users' liquidations): `LiquidationFeed.NONE`, so liquidation figures stay null.
- One `activeAssetCtx` subscription per coin (the all-coin `allDexsAssetCtxs` is not on the
  official page: unverified, not used). Per IP: 1,000 subscriptions and 2,000 client
  messages a minute, so subscribe frames go out `SUBSCRIBE_GAP_S` apart (<= 1,200 a minute)
  on one connection (10 connections per IP in the newest page copy).
- Keepalive: the server closes a connection after 60 s without traffic; `{"method":"ping"}`
  every `ping_s` (30 s), answered by `{"channel":"pong"}`.
- Candles (when `want_candles` asked): one `candle` subscription per coin beside its
  context, for as many coins as the 1,000 subscriptions leave (the rest take their bars
  from REST at the close: `streams_candles`). A push is the running bar's row so far, with
  no closed flag and no push time (the SDKs' schemas); pushes follow trades, so a bar's
  newest row is final once a row of a later bar comes on the same connection: then it is
  delivered as closed. A row of an older bar after that (two pushes reordered) is the
  closed bar's own later row: delivered as closed again, replacing the first. A coin that
  does not trade in the next bar's first moments gets its bar from REST after the close's
  grace. Rows held on a dropped connection are dropped with it.
- A context carries no time: each is stamped with the venue's clock, set from the REST `Date`
  header while preparing and then from the trades of the universe's first coin (`trades`
  rows carry `time`; BTC trades several times a second), plus the monotonic time since — so
  it follows the venue, not this machine's clock. Nor a sequence: only a push equal to the
  coin's previous one on the same connection counts as a duplicate.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from oiradar.records import Candle, LiquidationFeed
from oiradar.venues.http import ServerClock
from oiradar.venues.hyperliquid.rest import HyperliquidClient
from oiradar.venues.hyperliquid.wire import (
    INTERVALS,
    VENUE,
    candle_subscribe_message,
    coins_of,
    parse_active_ctx,
    parse_candle_push,
    subscribe_message,
    trade_times,
)
from oiradar.venues.stream import StreamRecord
from oiradar.venues.wsstream import Connection, WsStream

PATH = "/ws"
SUBSCRIBE_GAP_S = 0.05  # 20 frames/s: 1,200 a minute, under the 2,000 client messages a minute
MAX_SUBSCRIPTIONS = 1000  # per IP, every kind together


class HyperliquidStream(WsStream):
    """Every listed perp (or `symbols`) on one connection, one subscription per coin."""

    name = VENUE
    liquidations = LiquidationFeed.NONE
    ping_text = '{"method":"ping"}'
    ping_periodic = True
    subscribe_gap_s = SUBSCRIBE_GAP_S

    def __init__(self, *args: Any, ping_s: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, ping_s=ping_s, **kwargs)
        self._coins: dict[str, str] = {}  # coin -> canonical symbol
        self.clock = ServerClock()
        self._pushes: dict[tuple[int, str], tuple[str, int]] = {}  # (link, coin) -> (text, n)
        self._candle: str | None = None
        self._candle_symbols: frozenset[str] = frozenset()
        self._held: dict[str, Candle] = {}  # symbol -> its newest bar's latest row (this link)

    def want_candles(self, interval_ms: int) -> bool:
        self._candle = INTERVALS.get(interval_ms)
        self.candle_ms = interval_ms if self._candle is not None else None
        return self._candle is not None

    def streams_candles(self, symbol: str) -> bool:
        return self.candle_ms is not None and symbol in self._candle_symbols

    async def prepare(self, session: aiohttp.ClientSession) -> None:
        async with self.rest(session, HyperliquidClient) as client:
            self._coins = coins_of(list((await client.markets()).values()))
        seed = client.http.clock.now_ms()
        if seed is not None:
            self.clock.observe_ms(seed)

    def url(self) -> str:
        return self.base_url + PATH

    def on_connect(self, conn: Connection) -> None:
        self._pushes.clear()  # one connection: the previous link's states are gone
        self._held.clear()

    def subscribe_messages(self, conn: Connection) -> list[str]:
        wanted = None if conn.items is None else set(conn.items)
        clock = [subscribe_message(c, "trades") for c in list(self._coins)[:1]]
        coins = [c for c, s in self._coins.items() if wanted is None or s in wanted]
        room = 0 if self._candle is None else MAX_SUBSCRIPTIONS - len(clock) - len(coins)
        with_candles = coins[: max(0, room)]
        self._candle_symbols = frozenset(self._coins[c] for c in with_candles)
        out = list(clock)
        for k, coin in enumerate(coins):  # a coin's context and candles together
            out.append(subscribe_message(coin))
            if self._candle is not None and k < len(with_candles):
                out.append(candle_subscribe_message(coin, self._candle))
        return out

    def silence(self) -> tuple[float, int]:
        return max(3 * self.ping_s, 60.0), 1  # pongs arrive every ping_s

    def dedupe_key(self, text: str, msg: Any, conn: Connection) -> str | None:
        if not isinstance(msg, dict):
            return None
        channel = msg.get("channel")
        if channel == "error":
            self.venue_error("stream_error", str(msg.get("data")), error=msg.get("data"))
            return None
        if channel == "trades":  # rows carry `tid` and `time`: a repeat is a duplicate
            return text
        if channel == "candle":  # the same row again on this connection says nothing new
            return f"{conn.link}:{text}"
        if channel != "activeAssetCtx":  # subscriptionResponse, pong
            return None
        coin = str(msg.get("data", {}).get("coin"))
        last, n = self._pushes.get((conn.link, coin), ("", 0))
        n = n if text == last else n + 1  # the same state again: the same key
        self._pushes[(conn.link, coin)] = (text, n)
        return f"{conn.link}:{coin}:{n}"

    def message_ms(self, msg: Any) -> int | None:
        if msg.get("channel") == "trades":
            return max(trade_times(msg), default=None)
        return self.clock.now_ms()

    def records(self, msg: Any, symbols: frozenset[str] | None) -> list[StreamRecord]:
        if msg.get("channel") == "candle":
            closed = self._closed(msg)
            return [c for c in closed if symbols is None or c.symbol in symbols]
        if msg.get("channel") == "trades":
            newest = max(trade_times(msg), default=None)
            if newest is not None:
                self.clock.observe_ms(newest)
            return []
        now = self.clock.now_ms()
        if now is None:
            raise ValueError("no venue clock yet")
        out = parse_active_ctx(msg, self._coins, now)
        return [r for r in out if symbols is None or r.symbol in symbols]

    def _closed(self, msg: Any) -> list[Candle]:
        """The bars a `candle` push closes: the coin's held row once a later bar's row comes;
        a row of an older bar than the one held (reordered) is closed already."""
        if self.candle_ms is None:
            return []
        row = parse_candle_push(msg, self._coins, self.candle_ms)
        if row is None:
            return []
        held = self._held.get(row.symbol)
        if held is None or row.ts_ms >= held.ts_ms:
            self._held[row.symbol] = row
            return [held] if held is not None and held.ts_ms < row.ts_ms else []
        return [row]
