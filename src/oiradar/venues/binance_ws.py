"""Binance USD-M market streams (exchange-apis.md §1.4): liquidations and mark price/funding.

One combined connection `/market/stream?streams=!forceOrder@arr/!markPrice@arr@1s` carries
every symbol; `symbols` filters on our side. `!forceOrder@arr` is *sampled* (the latest order
per symbol per second). `S` is the side of the forced order: BUY closes a short, so the
liquidated position is SHORT; notional = filled qty `z` x average price `ap`. The server pings
every 3 min (aiohttp answers) and cuts a connection at 24 h; any drop reconnects with backoff.

`WsStream` is the reconnect/keepalive/dedupe loop the OKX stream shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiohttp

from oiradar.records import Liquidation, MarketSnapshot, Side
from oiradar.venues.base import decimal
from oiradar.venues.endpoints import endpoints
from oiradar.venues.stream import (
    Dedupe,
    Handler,
    LiquidationFeed,
    State,
    StreamRecord,
    StreamStats,
    VenueStream,
    backoff_delay,
    deliver,
)

VENUE = "binance"
STREAMS = ("!forceOrder@arr", "!markPrice@arr@1s")
log = logging.getLogger(__name__)


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


class WsStream(VenueStream):
    """Connect, subscribe, keep alive, reconnect with backoff, dedupe, deliver; forever.

    Subclasses say where to connect (`url`), what to send once open (`on_open`), how to read a
    decoded message (`records`, `message_ms`) and optionally a text keepalive (`ping_text`)."""

    ping_text: str | None = None  # sent when nothing arrived for ping_s; an unanswered one
    # means the connection is dead. Without pings, `silent_windows` x ping_s of silence is.
    silent_windows = 3

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        reconnect_base_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        ping_s: float = 20.0,
    ) -> None:
        self.endpoint, self.env = endpoint, env
        self.base_url = endpoints(self.name, endpoint, env).ws
        self._session = session
        self.reconnect_base_s, self.reconnect_max_s, self.ping_s = (
            reconnect_base_s,
            reconnect_max_s,
            ping_s,
        )
        self._stats = StreamStats()
        self._dedupe = Dedupe()
        self._down_since: int | None = None  # venue ms of the last message before a drop

    @property
    def stats(self) -> StreamStats:
        return self._stats

    async def prepare(self, session: aiohttp.ClientSession) -> None:
        """Once before the first connection (and again while it fails)."""

    @abstractmethod
    def url(self, symbols: Sequence[str] | None) -> str: ...

    async def on_open(
        self, ws: aiohttp.ClientWebSocketResponse, symbols: Sequence[str] | None
    ) -> None:
        """Subscribe on a fresh connection."""

    @abstractmethod
    def records(self, msg: Any, symbols: frozenset[str] | None) -> list[StreamRecord]: ...

    @abstractmethod
    def message_ms(self, msg: Any) -> int | None: ...

    def on_text(self, text: str) -> bool:
        """A non-JSON control frame (e.g. `pong`); True if handled."""
        return False

    async def run(self, symbols: Sequence[str] | None, on_record: Handler) -> None:
        session = self._session or aiohttp.ClientSession()
        wanted = frozenset(symbols) if symbols is not None else None
        attempt, prepared = 0, False
        try:
            while True:
                self._stats.state = State.CONNECTING
                connected = False
                try:
                    if not prepared:
                        await self.prepare(session)
                        prepared = True
                    async with session.ws_connect(self.url(symbols), autoping=True) as ws:
                        connected = True
                        self._stats.connects += 1
                        self._stats.state = State.LIVE
                        await self.on_open(ws, symbols)
                        if await self._read(ws, wanted, on_record):
                            attempt = 0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # any failure means reconnect
                    self._stats.last_error = f"{type(exc).__name__}: {exc}"
                    log.info("%s stream error: %s", self.name, self._stats.last_error)
                if connected:
                    self._stats.disconnects += 1
                if self._down_since is None:
                    self._down_since = self._stats.last_message_ms
                self._stats.state = State.BACKOFF
                await asyncio.sleep(
                    backoff_delay(attempt, self.reconnect_base_s, self.reconnect_max_s)
                )
                attempt += 1
        finally:
            self._stats.state = State.STOPPED
            if self._session is None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(session.close())

    async def _read(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        symbols: frozenset[str] | None,
        on_record: Handler,
    ) -> bool:
        """Read until the connection ends; True if any data message arrived."""
        got_any, quiet = False, 0  # quiet: ping_s windows in a row with nothing received
        while True:
            try:
                msg = await ws.receive(timeout=self.ping_s)
            except TimeoutError:
                quiet += 1
                if quiet >= (2 if self.ping_text else self.silent_windows):
                    self._stats.last_error = f"nothing received for {quiet * self.ping_s:g} s"
                    await ws.close()
                    return got_any
                if self.ping_text:
                    await ws.send_str(self.ping_text)
                continue
            quiet = 0
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                            aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):  # fmt: skip
                self._stats.last_error = (
                    f"websocket error: {ws.exception()}"
                    if msg.type is aiohttp.WSMsgType.ERROR
                    else f"closed by the venue (code {ws.close_code})"
                )
                return got_any
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            text = str(msg.data)
            if self.on_text(text):
                continue
            self._stats.messages += 1
            if not self._dedupe.fresh(text):
                self._stats.duplicates += 1
                continue
            try:
                decoded = json.loads(text)
                ts = self.message_ms(decoded)
                records = self.records(decoded, symbols)
            except Exception as exc:  # one bad message must not end the stream
                self._stats.last_error = f"unparsable message: {type(exc).__name__}: {exc}"
                log.warning("%s unparsable message %.200s", self.name, text)
                continue
            if ts is not None:
                got_any = True
                self._mark_time(ts)
            await self._deliver(records, on_record)

    def _mark_time(self, ts: int) -> None:
        if self._down_since is not None:
            self._stats.gaps.append((self._down_since, max(ts, self._down_since)))
            self._down_since = None
        last = self._stats.last_message_ms
        self._stats.last_message_ms = ts if last is None else max(last, ts)

    async def _deliver(self, records: Iterable[StreamRecord], on_record: Handler) -> None:
        for record in records:
            self._stats.records += 1
            await deliver(on_record, record)


class BinanceStream(WsStream):
    """All USD-M perpetuals on one combined connection; `symbols` filters client-side."""

    name = VENUE
    liquidations = LiquidationFeed.SAMPLED

    def url(self, symbols: Sequence[str] | None) -> str:
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
