"""The connect/subscribe/keepalive/reconnect/dedupe/deliver loop every venue's WebSocket feed
shares (`venues.stream.VenueStream` is the interface): a venue says where to connect, what to
subscribe and how to read a message; this module does the rest, per connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from abc import abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from aiohttp import WSServerHandshakeError

from oiradar.backoff import Backoff, retry_after_s
from oiradar.lifecycle import cancel_and_wait
from oiradar.venues.base import VenueClient
from oiradar.venues.dedupe import Dedupe
from oiradar.venues.endpoints import endpoints
from oiradar.venues.http import RestClient
from oiradar.venues.lane import lane
from oiradar.venues.stream import (
    Handler,
    State,
    StreamRecord,
    StreamStats,
    VenueStream,
    deliver,
)

log = logging.getLogger(__name__)
# A connection whose frames are buffered reads them without ever suspending (aiohttp hands
# a buffered frame back at once): a ticker connection's backlog at a bar close held the loop
# for its whole length, and the liquidation connection's frames, already in, waited for it.
# After this long a connection lets the others (and the timers) run before its next frame:
# a market-data connection queues for the next pass's turn (`venues.lane`), a liquidation
# feed just lets the pass end.
FAIR_TURN_S = 0.005
C = TypeVar("C", bound=RestClient)


@dataclass(frozen=True, slots=True)
class FeedGroup:
    """A `plan` entry for the liquidation feed: its items (None: the venue's all-symbol
    channel) get a connection of their own, so an order is never read behind a backlog of
    market data queued on the same socket. The connection's `feed` is True."""

    items: Sequence[str] | None = None


Group = Sequence[str] | None | FeedGroup  # one connection's share of a `plan`


@dataclass(slots=True)
class Connection:
    """One of a stream's connections: its subscription items and reconnect bookkeeping."""

    index: int
    items: Sequence[str] | None  # None = the whole universe (single-connection venues)
    feed: bool = False  # carries the liquidation feed alone (a `FeedGroup` of the plan)
    link: int = 0  # stats.connects when it last connected: scopes per-connection dedupe
    down_since: int | None = None  # venue ms of the newest message before a drop


def connection(index: int, group: Group) -> Connection:
    """The connection a plan's group makes (`WsStream.run`; tests and benches ask too)."""
    if isinstance(group, FeedGroup):
        return Connection(index, group.items, feed=True)
    return Connection(index, group)


class WsStream(VenueStream):
    """The one connect/subscribe/keepalive/reconnect/dedupe/deliver loop every venue shares.

    `plan` splits the symbols into connections (default: one); each runs as its own task,
    reconnecting with backoff forever. Venues say where to connect (`url`), what to send on a
    fresh connection (`subscribe_messages`, paced `subscribe_gap_s` apart in the background
    when > 0), how to keep it alive (`ping_text`: after `ping_s` of silence, or every `ping_s`
    when `ping_periodic`; `silence()`: when the link counts as dead) and how to read a message
    (`decode`, `dedupe_key`, `message_ms`, `records`).

    Shared bookkeeping: `messages` counts every text frame (pongs and acks too); a failed
    attempt resets the backoff only once a connection delivered data; `disconnects` counts
    connections that were up and ended; `gaps` are per connection, in venue time (the newest
    message before the drop -> the first one after it); any exception but cancellation means
    reconnect, and one bad message never ends a connection."""

    ping_text: str | None = None
    ping_periodic = False  # True: ping every ping_s whatever arrives; False: only when idle
    silent_windows = 3  # idle keepalive without pings: this many quiet ping_s windows = dead
    subscribe_gap_s = 0.0

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        rest: VenueClient | None = None,
        reconnect_base_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        ping_s: float = 20.0,
    ) -> None:
        if rest is not None and rest.name != self.name:  # its limiter would not pace us
            raise ValueError(f"the {self.name} stream was handed the {rest.name} client")
        self.endpoint, self.env = endpoint, env
        self.base_url = endpoints(self.name, endpoint, env).ws
        self._session, self._rest = session, rest
        self.reconnect_base_s, self.reconnect_max_s, self.ping_s = (
            reconnect_base_s,
            reconnect_max_s,
            ping_s,
        )
        self._stats = StreamStats()
        self._dedupe = Dedupe()
        self._conn_state: dict[int, State] = {}
        self._prepared = False

    @property
    def stats(self) -> StreamStats:
        return self._stats

    # -- venue hooks -----------------------------------------------------------------------

    async def plan(
        self, session: aiohttp.ClientSession, symbols: Sequence[str] | None
    ) -> list[Group]:
        """The connections' subscription items, once before connecting; default one for all.
        A venue with a liquidation channel adds it as `FeedGroup`s."""
        return [None if symbols is None else list(symbols)]

    async def prepare(self, session: aiohttp.ClientSession) -> None:
        """Before the first connection (and again, with backoff, while it fails)."""

    @contextlib.asynccontextmanager
    async def rest(self, session: aiohttp.ClientSession, cls: type[C]) -> AsyncIterator[C]:
        """The venue's REST client for `plan`/`prepare`: the one handed in (`rest=`, the
        daemon's: its limiter holds the venue's whole budget, so a start-up request is paced
        with the backfill running beside it, checked to be the venue's at construction),
        else one of its own for the call."""
        if self._rest is not None:
            if not isinstance(self._rest, cls):
                raise TypeError(f"{type(self._rest).__name__} is not a {cls.__name__}")
            yield self._rest
            return
        made = cls(self.endpoint, env=self.env, session=session)
        try:
            yield made
        finally:
            await made.close()

    @abstractmethod
    def url(self) -> str: ...

    def url_for(self, conn: Connection) -> str:
        """Where `conn` connects (venues with several endpoints say which per connection)."""
        return self.url()

    def subscribe_messages(self, conn: Connection) -> list[str]:
        """The text frames subscribing `conn.items` on a fresh connection."""
        return []

    def on_connect(self, conn: Connection) -> None:
        """A fresh connection for `conn`, before it subscribes (reset per-connection state)."""

    def silence(self) -> tuple[float, int]:
        """(window s, windows): that many quiet windows in a row mean the link is dead."""
        return self.ping_s, 2 if self.ping_text and not self.ping_periodic else self.silent_windows

    def decode(self, text: str) -> Any:
        """A text frame -> the message (None = a control frame such as `pong`)."""
        return json.loads(text)

    def dedupe_key(self, text: str, msg: Any, conn: Connection) -> str | None:
        """The fingerprint duplicates share; None = no data (control frame, ack): skipped."""
        return None if msg is None else text

    @abstractmethod
    def message_ms(self, msg: Any) -> int | None: ...

    def venue_error(self, event: str, last_error: str, /, **fields: object) -> None:
        """An error or refusal the venue sent on the stream (a subscription it refused): the
        stream's last error (for `oiradar status`) and a `key=value` warning."""
        self._stats.last_error = last_error
        pairs = "".join(f" {key}={value}" for key, value in fields.items())
        log.warning("venue=%s event=%s%s", self.name, event, pairs)

    @abstractmethod
    def records(self, msg: Any, symbols: frozenset[str] | None) -> list[StreamRecord]: ...

    # -- the loop --------------------------------------------------------------------------

    async def run(self, symbols: Sequence[str] | None, on_record: Handler) -> None:
        session = self._session or aiohttp.ClientSession()
        wanted = frozenset(symbols) if symbols is not None else None
        try:
            groups = await self.plan(session, symbols)
            self._stats.stopped_live = False
            self._set_state(None, State.CONNECTING)
            async with asyncio.TaskGroup() as tg:
                for k, group in enumerate(groups):
                    conn = connection(k, group)
                    tg.create_task(self._connection(conn, session, wanted, on_record))
        finally:
            self._stats.stopped_live = self._stats.state is State.LIVE
            self._stats.state = State.STOPPED
            if self._session is None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(session.close())

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
        self,
        conn: Connection,
        session: aiohttp.ClientSession,
        wanted: frozenset[str] | None,
        on_record: Handler,
    ) -> None:
        """One connection, reconnected with backoff forever (until cancelled)."""
        attempt = 0
        while True:
            self._set_state(conn.index, State.CONNECTING)
            connected, asked = False, None
            try:
                if not self._prepared:
                    await self.prepare(session)
                    self._prepared = True
                async with session.ws_connect(self.url_for(conn), autoping=True) as ws:
                    connected = True
                    self._stats.connects += 1
                    conn.link = self._stats.connects
                    self.on_connect(conn)
                    self._set_state(conn.index, State.LIVE)
                    if await self._read(ws, conn, wanted, on_record):
                        attempt = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure means reconnect
                self._stats.last_error = f"{type(exc).__name__}: {exc}"
                # A refused handshake (429/503) may say when to come back.
                if isinstance(exc, WSServerHandshakeError) and exc.headers:
                    asked = retry_after_s(exc.headers)
            if connected:
                self._stats.disconnects += 1
            if conn.down_since is None:
                conn.down_since = self._stats.last_message_ms
            log.info(
                "venue=%s event=stream_reconnect connection=%d attempt=%d error=%s",
                self.name,
                conn.index,
                attempt,
                self._stats.last_error,
            )
            self._set_state(conn.index, State.BACKOFF)
            backoff = Backoff(self.reconnect_base_s, self.reconnect_max_s)
            await asyncio.sleep(backoff.delay(attempt, asked))
            attempt += 1

    async def _read(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        conn: Connection,
        wanted: frozenset[str] | None,
        on_record: Handler,
    ) -> bool:
        """Subscribe, then read until the connection ends; True if any data message arrived."""
        helpers = []
        subscribe = self.subscribe_messages(conn)
        if self.subscribe_gap_s > 0:
            helpers.append(asyncio.create_task(self._send_paced(ws, subscribe)))
        else:
            for text in subscribe:
                await ws.send_str(text)
        if self.ping_periodic and self.ping_text:
            helpers.append(asyncio.create_task(self._ping(ws, self.ping_text)))
        try:
            return await self._receive(ws, conn, wanted, on_record)
        finally:
            await _end(helpers)

    async def _send_paced(self, ws: aiohttp.ClientWebSocketResponse, texts: list[str]) -> None:
        for n, text in enumerate(texts):
            if n:
                await asyncio.sleep(self.subscribe_gap_s)
            await ws.send_str(text)

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse, text: str) -> None:
        while not ws.closed:
            await asyncio.sleep(self.ping_s)
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await ws.send_str(text)

    async def _receive(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        conn: Connection,
        wanted: frozenset[str] | None,
        on_record: Handler,
    ) -> bool:
        window_s, windows = self.silence()
        got_any, quiet = False, 0  # quiet: windows in a row with nothing received
        loop = asyncio.get_running_loop()
        market = None if conn.feed else lane()  # the liquidation feed never queues there
        turn_ends = loop.time() + FAIR_TURN_S
        while True:
            try:
                msg = await ws.receive(timeout=window_s)
            except TimeoutError:
                quiet += 1
                if quiet >= windows:
                    self._stats.last_error = f"nothing received for {quiet * window_s:g} s"
                    await ws.close()
                    return got_any
                if self.ping_text and not self.ping_periodic:
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
            if msg.type is aiohttp.WSMsgType.TEXT:
                if market is not None and (not market.holds(conn) or loop.time() >= turn_ends):
                    await market.turn(conn)  # one market-data turn per pass (`venues.lane`)
                    turn_ends = loop.time() + FAIR_TURN_S
                got_any = await self._handle(str(msg.data), conn, wanted, on_record) or got_any
            if market is None and loop.time() >= turn_ends:  # a feed's own backlog
                await asyncio.sleep(0)
                turn_ends = loop.time() + FAIR_TURN_S

    async def _handle(
        self, text: str, conn: Connection, wanted: frozenset[str] | None, on_record: Handler
    ) -> bool:
        """One text frame; True if it carried venue time (data)."""
        self._stats.messages += 1
        try:
            msg = self.decode(text)
            key = self.dedupe_key(text, msg, conn)
            if key is None:
                return False
            if not self._dedupe.fresh(key):
                self._stats.duplicates += 1
                return False
            ts = self.message_ms(msg)
            records = self.records(msg, wanted)
        except Exception as exc:  # one bad message must not end the stream
            self._stats.last_error = f"unparsable message: {type(exc).__name__}: {exc}"
            log.warning(
                "venue=%s event=stream_unparsable error=%s message=%.200r",
                self.name,
                self._stats.last_error,
                text,
            )
            return False
        if ts is not None:
            if conn.down_since is not None:
                self._stats.gaps.append((conn.down_since, max(ts, conn.down_since)))
                conn.down_since = None
            last = self._stats.last_message_ms
            self._stats.last_message_ms = ts if last is None else max(last, ts)
        for record in records:
            self._stats.records += 1
            await deliver(on_record, record)
        return ts is not None


async def _end(helpers: list[asyncio.Task[None]]) -> None:
    """Cancel a connection's helper tasks and wait for them (a stop landing meanwhile still
    ends the stream: `lifecycle.cancel_and_wait`). A helper's ConnectionError (its socket
    died) is expected; others propagate."""
    for exc in await cancel_and_wait(helpers):
        if not isinstance(exc, ConnectionError):
            raise exc
