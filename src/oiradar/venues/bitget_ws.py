"""Bitget v2 public WebSocket, USDT-FUTURES `ticker` channel: real-time OI (`holdingAmount`,
coin, one side), mark/last price and funding, as `MarketSnapshot` (exchange-apis.md §4.4).

- Fewer than 50 channels per connection are recommended: symbols are split over several
  connections (each its own task), `CHANNELS_PER_CONN` each.
- At most 10 messages/s per connection, pings included: subscribe messages are paced
  (`SUBSCRIBE_GAP_S` apart) and batch `ARGS_PER_REQUEST` channels each (240 subscribe
  requests/hour/connection).
- Keepalive: the text `ping` every 30 s, answered by `pong`.
- The venue force-closes every connection after 24 h: handled like any drop (reconnect with
  backoff, resubscribe).
- There is NO public liquidation feed on Bitget (`LiquidationFeed.NONE`).
- The push carries no funding interval: it is filled from the instruments when the stream
  fetched them itself (`symbols=None`), else left None.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from oiradar.records import MarketSnapshot
from oiradar.venues.base import decimal
from oiradar.venues.endpoints import endpoints
from oiradar.venues.stream import (
    Dedupe,
    Handler,
    LiquidationFeed,
    State,
    StreamStats,
    VenueStream,
    backoff_delay,
    deliver,
)

log = logging.getLogger(__name__)

VENUE = "bitget"
PATH = "/v2/ws/public"
PRODUCT = "USDT-FUTURES"
CHANNELS_PER_CONN = 45  # the venue recommends < 50 per connection
ARGS_PER_REQUEST = 45
SUBSCRIBE_GAP_S = 0.25  # <= 4 subscribe messages/s, well under 10 messages/s with pings
CLOSE_TIMEOUT_S = 10.0
SILENCE_MIN_S = 60.0  # no message at all for this long (and 3 pings): the link is dead


# -- pure parsing ----------------------------------------------------------------------------


def split_symbols(symbols: Sequence[str], per_conn: int = CHANNELS_PER_CONN) -> list[list[str]]:
    """Symbols in order, `per_conn` per connection."""
    return [list(symbols[i : i + per_conn]) for i in range(0, len(symbols), per_conn)]


def subscribe_messages(symbols: Sequence[str], per_request: int = ARGS_PER_REQUEST) -> list[str]:
    """`ticker` subscribe requests for `symbols`, `per_request` channels each."""
    args = [{"instType": PRODUCT, "channel": "ticker", "instId": s} for s in symbols]
    return [
        json.dumps({"op": "subscribe", "args": args[i : i + per_request]}, separators=(",", ":"))
        for i in range(0, len(args), per_request)
    ]


def _opt(value: Any) -> float | None:
    return None if value in (None, "") else decimal(value)


def parse_ticker(
    msg: Mapping[str, Any], intervals: Mapping[str, float | None] | None = None
) -> list[MarketSnapshot]:
    """A `ticker` push (`data` is a list): OI in coin, USD = coin x mark."""
    out = []
    for row in msg["data"]:
        sym = str(row.get("instId") or row.get("symbol") or msg["arg"]["instId"])
        mark, oi = _opt(row.get("markPrice")), _opt(row.get("holdingAmount"))
        nxt = row.get("nextFundingTime")
        ts = row.get("ts") or msg["ts"]
        out.append(
            MarketSnapshot(
                VENUE,
                sym,
                int(ts),
                last_price=_opt(row.get("lastPr")),
                mark_price=mark,
                oi_base=oi,
                oi_usd=oi * mark if oi is not None and mark is not None else None,
                funding_rate=_opt(row.get("fundingRate")),
                funding_interval_h=(intervals or {}).get(sym),
                next_funding_ms=int(nxt) if nxt not in (None, "", "0") else None,
                quote_volume_24h=_opt(row.get("quoteVolume")),
            )
        )
    return out


# -- the stream ------------------------------------------------------------------------------


def _wall_ms() -> int:
    return int(time.time() * 1000)


class BitgetStream(VenueStream):
    """Bitget USDT-FUTURES tickers over connections of < 50 channels each."""

    name = VENUE
    liquidations = LiquidationFeed.NONE

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        reconnect_base_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        ping_s: float = 30.0,
    ) -> None:
        self.endpoint, self.env = endpoint, env
        self.url = endpoints(VENUE, endpoint, env).ws + PATH
        self._session = session
        self.reconnect_base_s, self.reconnect_max_s, self.ping_s = (
            reconnect_base_s,
            reconnect_max_s,
            ping_s,
        )
        self._stats = StreamStats()
        self._dedupe = Dedupe()
        self._intervals: dict[str, float | None] = {}
        self._conn_state: dict[int, State] = {}

    @property
    def stats(self) -> StreamStats:
        return self._stats

    async def _universe(self, session: aiohttp.ClientSession) -> list[str]:
        from oiradar.venues.bitget import BitgetClient

        client = BitgetClient(self.endpoint, env=self.env, session=session)
        try:
            instruments = await client.instruments()
        finally:
            await client.close()
        self._intervals = {i.symbol: i.funding_interval_h for i in instruments}
        return [i.symbol for i in instruments]

    async def run(self, symbols: Sequence[str] | None, on_record: Handler) -> None:
        own = self._session is None
        session = self._session or aiohttp.ClientSession()
        try:
            names = list(symbols) if symbols is not None else await self._universe(session)
            self._set_state(None, State.CONNECTING)
            async with asyncio.TaskGroup() as tg:
                for k, group in enumerate(split_symbols(names, CHANNELS_PER_CONN)):
                    tg.create_task(self._connection(k, session, group, on_record))
        finally:
            self._stats.state = State.STOPPED
            if own:
                await session.close()

    def _set_state(self, conn: int | None, state: State) -> None:
        """Per-connection state; the stream is LIVE only when every connection is."""
        if conn is not None:
            self._conn_state[conn] = state
        states = set(self._conn_state.values()) or {state}
        if states == {State.LIVE}:
            self._stats.state = State.LIVE
        elif State.BACKOFF in states:
            self._stats.state = State.BACKOFF
        else:
            self._stats.state = State.CONNECTING

    async def _connection(
        self, k: int, session: aiohttp.ClientSession, group: list[str], on_record: Handler
    ) -> None:
        """One connection for `group`, reconnected with backoff forever (until cancelled)."""
        attempt, down_since = 0, None
        while True:
            self._set_state(k, State.CONNECTING)
            try:
                silence = max(3 * self.ping_s, SILENCE_MIN_S)
                timeout = aiohttp.ClientWSTimeout(ws_receive=silence, ws_close=CLOSE_TIMEOUT_S)
                async with session.ws_connect(self.url, timeout=timeout) as ws:
                    self._stats.connects += 1
                    link = self._stats.connects  # this connection's id, for deduplication
                    self._set_state(k, State.LIVE)
                    if down_since is not None:
                        self._stats.gaps.append((down_since, _wall_ms()))
                        down_since = None
                    attempt = 0
                    await self._read(ws, link, group, on_record)
                self._stats.last_error = f"connection {k} closed"
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                self._stats.last_error = f"connection {k}: {exc!r}"
            if down_since is None:
                down_since = _wall_ms()
                self._stats.disconnects += 1
            log.info("bitget ws %s; reconnecting (attempt %d)", self._stats.last_error, attempt)
            self._set_state(k, State.BACKOFF)
            await asyncio.sleep(backoff_delay(attempt, self.reconnect_base_s, self.reconnect_max_s))
            attempt += 1

    async def _read(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        link: int,
        group: list[str],
        on_record: Handler,
    ) -> None:
        helpers = [
            asyncio.create_task(self._subscribe(ws, group)),
            asyncio.create_task(self._ping(ws)),
        ]
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await self._handle(str(msg.data), link, on_record)
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    break
        finally:
            for task in helpers:
                task.cancel()
            for task in helpers:
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await task

    async def _subscribe(self, ws: aiohttp.ClientWebSocketResponse, group: list[str]) -> None:
        """Paced subscribe messages (the 10 messages/s budget is shared with pings)."""
        for n, text in enumerate(subscribe_messages(group)):
            if n:
                await asyncio.sleep(SUBSCRIBE_GAP_S)
            await ws.send_str(text)

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while not ws.closed:
            await asyncio.sleep(self.ping_s)
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await ws.send_str("ping")

    async def _handle(self, text: str, link: int, on_record: Handler) -> None:
        self._stats.messages += 1
        if text == "pong":
            return
        try:
            msg = json.loads(text)
        except ValueError:
            self._stats.last_error = f"not JSON: {text[:100]}"
            return
        if not isinstance(msg, dict):
            return
        if "event" in msg:  # subscribe acks and errors
            if msg["event"] == "error":
                self._stats.last_error = f"{msg.get('code')}: {msg.get('msg')}"
                log.warning("bitget ws error %s: %s", msg.get("code"), msg.get("msg"))
            return
        arg = msg.get("arg")
        if not isinstance(arg, dict) or arg.get("channel") != "ticker":
            return
        # per connection: the snapshot after a resubscribe may repeat the last one exactly
        if not self._dedupe.fresh(f"{link}:{text}"):
            self._stats.duplicates += 1
            return
        if isinstance(msg.get("ts"), int):
            self._stats.last_message_ms = msg["ts"]
        try:
            records = parse_ticker(msg, self._intervals)
        except (KeyError, TypeError, ValueError) as exc:
            self._stats.last_error = f"bad ticker message: {exc!r}"
            log.warning("bitget ws bad ticker message: %r", exc)
            return
        for record in records:
            self._stats.records += 1
            await deliver(on_record, record)
