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
- There is no all-symbol topic: two topics per symbol; one connection's args may total at most
  21 000 characters, so symbols are split over several connections (each its own task).
- Keepalive: `{"op":"ping"}` every 20 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
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
    StreamStats,
    VenueStream,
    backoff_delay,
    deliver,
)

log = logging.getLogger(__name__)

VENUE = "bybit"
PATH = "/v5/public/linear"
ARGS_CAP = 21_000  # characters of subscribed args per public connection (§2.5)
ARGS_BUDGET = 20_000  # what we pack per connection, leaving a margin under the cap
ARGS_PER_REQUEST = 200  # topics per subscribe message (linear has no cap; keeps frames small)
CLOSE_TIMEOUT_S = 10.0
SILENCE_MIN_S = 30.0  # no message at all for this long (and 3 pings): the link is dead

Json = dict[str, Any]


# -- pure parsing ----------------------------------------------------------------------------


def topics(symbol: str) -> list[str]:
    """The two topics streamed per symbol."""
    return [f"tickers.{symbol}", f"allLiquidation.{symbol}"]


def split_symbols(symbols: Sequence[str], budget: int = ARGS_BUDGET) -> list[list[str]]:
    """Symbols packed in order into groups whose topics total at most `budget` characters."""
    groups: list[list[str]] = []
    size = budget + 1  # forces a first group
    for sym in symbols:
        need = sum(len(t) for t in topics(sym))
        if size + need > budget:
            groups.append([])
            size = 0
        groups[-1].append(sym)
        size += need
    return groups


def subscribe_messages(symbols: Sequence[str], req_ids: Iterable[int]) -> list[str]:
    """Subscribe requests covering every topic of `symbols`, `ARGS_PER_REQUEST` args each."""
    args = [t for s in symbols for t in topics(s)]
    chunks = [args[i : i + ARGS_PER_REQUEST] for i in range(0, len(args), ARGS_PER_REQUEST)]
    return [
        json.dumps({"req_id": str(rid), "op": "subscribe", "args": chunk}, separators=(",", ":"))
        for rid, chunk in zip(req_ids, chunks, strict=False)
    ]


def _opt(row: Mapping[str, Any], key: str) -> float | None:
    value = row.get(key)
    return None if value in (None, "") else decimal(value)


def _one_sided(row: Mapping[str, Any], both_key: str) -> float | None:
    """One side of a two-sided Bybit OI figure: `single...` when sent, else half."""
    single = _opt(row, "single" + both_key[0].upper() + both_key[1:])
    if single is not None:
        return single
    both = _opt(row, both_key)
    return None if both is None else both / 2


def merge_ticker(
    state: Mapping[str, Any] | None, kind: str, data: Mapping[str, Any]
) -> dict[str, Any]:
    """The symbol's ticker fields after one message: a snapshot replaces, a delta merges
    (absent fields are unchanged)."""
    if kind == "snapshot" or state is None:
        return dict(data)
    return {**state, **data}


def parse_ticker(fields: Mapping[str, Any], ts_ms: int) -> MarketSnapshot:
    """Merged ticker fields as a snapshot at the message's `ts`; OI one-sided."""
    nxt = fields.get("nextFundingTime")
    return MarketSnapshot(
        venue=VENUE,
        symbol=str(fields["symbol"]),
        ts_ms=ts_ms,
        last_price=_opt(fields, "lastPrice"),
        mark_price=_opt(fields, "markPrice"),
        oi_base=_one_sided(fields, "openInterest"),
        oi_usd=_one_sided(fields, "openInterestValue"),
        funding_rate=_opt(fields, "fundingRate"),
        funding_interval_h=_opt(fields, "fundingIntervalHour"),
        next_funding_ms=int(nxt) if nxt not in (None, "", "0") else None,
        quote_volume_24h=_opt(fields, "turnover24h"),
    )


def parse_liquidations(msg: Mapping[str, Any]) -> list[Liquidation]:
    """An `allLiquidation` push: `S` Buy = a LONG position was liquidated; `v` coin."""
    out = []
    for row in msg["data"]:
        side = {"Buy": Side.LONG, "Sell": Side.SHORT}[str(row["S"])]
        qty, price = decimal(row["v"]), decimal(row["p"])
        out.append(Liquidation(VENUE, str(row["s"]), int(row["T"]), side, qty, price, qty * price))
    return out


# -- the stream ------------------------------------------------------------------------------


def _wall_ms() -> int:
    return int(time.time() * 1000)


class BybitStream(VenueStream):
    """Bybit linear tickers + allLiquidation over as many connections as the args cap needs."""

    name = VENUE
    liquidations = LiquidationFeed.COMPLETE

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
        self.url = endpoints(VENUE, endpoint, env).ws + PATH
        self._session = session
        self.reconnect_base_s, self.reconnect_max_s, self.ping_s = (
            reconnect_base_s,
            reconnect_max_s,
            ping_s,
        )
        self._stats = StreamStats()
        self._dedupe = Dedupe()
        self._tickers: dict[str, dict[str, Any]] = {}  # merged fields per symbol
        self._conn_state: dict[int, State] = {}
        self._req_ids = itertools.count(1)

    @property
    def stats(self) -> StreamStats:
        return self._stats

    async def _universe(self) -> list[str]:
        from oiradar.venues.bybit import BybitClient

        client = BybitClient(self.endpoint, env=self.env, session=self._session)
        try:
            return [i.symbol for i in await client.instruments()]
        finally:
            await client.close()

    async def run(self, symbols: Sequence[str] | None, on_record: Handler) -> None:
        own = self._session is None
        session = self._session or aiohttp.ClientSession()
        try:
            names = list(symbols) if symbols is not None else None
            if names is None:
                self._session = session
                names = await self._universe()
            groups = split_symbols(names, ARGS_BUDGET)
            self._set_state(None, State.CONNECTING)
            async with asyncio.TaskGroup() as tg:
                for k, group in enumerate(groups):
                    tg.create_task(self._connection(k, session, group, on_record))
        finally:
            self._stats.state = State.STOPPED
            if own:
                self._session = None
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
                silence = max(3 * self.ping_s, SILENCE_MIN_S)  # pongs arrive every ping_s
                timeout = aiohttp.ClientWSTimeout(ws_receive=silence, ws_close=CLOSE_TIMEOUT_S)
                async with session.ws_connect(self.url, timeout=timeout) as ws:
                    self._stats.connects += 1
                    link = self._stats.connects  # this connection's id, for deduplication
                    for sym in group:  # a fresh snapshot follows the resubscribe
                        self._tickers.pop(sym, None)
                    for text in subscribe_messages(group, self._req_ids):
                        await ws.send_str(text)
                    self._set_state(k, State.LIVE)
                    if down_since is not None:
                        self._stats.gaps.append((down_since, _wall_ms()))
                        down_since = None
                    attempt = 0
                    await self._read(ws, link, on_record)
                self._stats.last_error = f"connection {k} closed"
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                self._stats.last_error = f"connection {k}: {exc!r}"
            if down_since is None:
                down_since = _wall_ms()
                self._stats.disconnects += 1
            log.info("bybit ws %s; reconnecting (attempt %d)", self._stats.last_error, attempt)
            self._set_state(k, State.BACKOFF)
            await asyncio.sleep(backoff_delay(attempt, self.reconnect_base_s, self.reconnect_max_s))
            attempt += 1

    async def _read(
        self, ws: aiohttp.ClientWebSocketResponse, link: int, on_record: Handler
    ) -> None:
        pinger = asyncio.create_task(self._ping(ws))
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await self._handle(str(msg.data), link, on_record)
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    break
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while not ws.closed:
            await asyncio.sleep(self.ping_s)
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await ws.send_str('{"op":"ping"}')

    async def _handle(self, text: str, link: int, on_record: Handler) -> None:
        self._stats.messages += 1
        try:
            msg = json.loads(text)
        except ValueError:
            self._stats.last_error = f"not JSON: {text[:100]}"
            return
        if not isinstance(msg, dict):
            return
        topic = msg.get("topic")
        if not isinstance(topic, str):  # op replies: pong, subscribe acks
            if msg.get("success") is False:
                self._stats.last_error = f"{msg.get('op')}: {msg.get('ret_msg')}"
                log.warning("bybit ws refused %s: %s", msg.get("op"), msg.get("ret_msg"))
            return
        # A ticker message is state of this connection: the snapshot after a resubscribe may
        # repeat the last one byte for byte and must not be dropped. Liquidations are events:
        # a repeat is a duplicate whichever connection brought it.
        kind = topic.partition(".")[0]
        if not self._dedupe.fresh(f"{link}:{text}" if kind == "tickers" else text):
            self._stats.duplicates += 1
            return
        ts = msg.get("ts")
        if isinstance(ts, int):
            self._stats.last_message_ms = ts
        try:
            records = self._records(topic, msg)
        except (KeyError, TypeError, ValueError) as exc:
            self._stats.last_error = f"bad {topic} message: {exc!r}"
            log.warning("bybit ws bad %s message: %r", topic, exc)
            return
        for record in records:
            self._stats.records += 1
            await deliver(on_record, record)

    def _records(self, topic: str, msg: Json) -> list[Liquidation] | list[MarketSnapshot]:
        kind, _, symbol = topic.partition(".")
        if kind == "allLiquidation":
            return parse_liquidations(msg)
        if kind == "tickers":
            data = msg["data"]
            merged = merge_ticker(self._tickers.get(symbol), str(msg.get("type")), data)
            merged.setdefault("symbol", symbol)
            self._tickers[symbol] = merged
            return [parse_ticker(merged, int(msg["ts"]))]
        return []
