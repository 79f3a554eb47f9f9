"""The one HTTP layer every venue client uses: pooled session, bounded concurrency, the
venue's limiter before every request, retries with exponential backoff and jitter on
transient failures, Retry-After, and no request at all while a venue has us banned.

Venue modules plug in two small functions: `check_response` (status/headers/body -> an
error, for venue-specific statuses such as Bybit's 403 ban) and `check_payload` (the decoded
JSON -> an error, for envelope codes such as `retCode`). GET takes query parameters; POST
(Hyperliquid's one `/info` endpoint) a JSON body. Every reply's `Date` header sets
`ServerClock`, the venue's time for venues whose payloads carry none.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import aiohttp

from oiradar.backoff import Backoff, retry_after_s
from oiradar.errors import (
    Banned,
    RateLimited,
    VenueError,
    VenueProtocolError,
    VenueUnavailable,
)
from oiradar.records import MarketSnapshot
from oiradar.venues import usage
from oiradar.venues.base import VenueClient
from oiradar.venues.endpoints import endpoints
from oiradar.venues.limiter import SAFETY, Budget, Limiter
from oiradar.venues.usage import usage_file

Charges = list[tuple[str, str, int]]
T = TypeVar("T")
EMPTY_RETRIES = 2  # an empty answer where rows must exist is asked this many more times
_JSON = {"Content-Type": "application/json"}
ResponseCheck = Callable[[int, Mapping[str, str], bytes], VenueError | None]
PayloadCheck = Callable[[Any], VenueError | None]
HeaderHook = Callable[[Mapping[str, str]], None]


@dataclass(slots=True)
class HttpStats:
    requests: int = 0
    retries: int = 0
    last_path: str = ""  # the endpoint asked last (`oiradar doctor` names it on a failure)
    failures: dict[str, int] = field(default_factory=dict)


class ServerClock:
    """The venue's time from the HTTP `Date` header of its latest reply (RFC 9110: whole
    seconds, truncated) plus the monotonic time since; None before any reply carried one.

    Gate's tickers, Hyperliquid's `/info` and dYdX's markets carry no time of their own, and
    venue modules never read the wall clock: this is the venue's own clock, as Bitget's
    `requestTime` or Bybit's `time` are elsewhere."""

    def __init__(self) -> None:
        self._stamp: tuple[int, float] | None = None  # (venue ms, monotonic then)
        self._date: tuple[str, int | None] = ("", None)  # the last header and its ms

    def observe(self, headers: Mapping[str, str]) -> None:
        text = headers.get("Date")
        if not text:
            return
        if text != self._date[0]:  # parsed once a second, not once a reply
            self._date = (text, _date_ms(text))
        if self._date[1] is not None:
            self.observe_ms(self._date[1])

    def observe_ms(self, ts_ms: int) -> None:
        """The venue stamped something `ts_ms` just now (a trade, an oracle price): a stream
        keeps its clock on the venue's this way between REST replies."""
        self._stamp = (ts_ms, time.monotonic())

    def now_ms(self) -> int | None:
        if self._stamp is None:
            return None
        stamp, at = self._stamp
        return stamp + int((time.monotonic() - at) * 1000)


def _date_ms(text: str) -> int | None:
    """An HTTP date in ms; None if it does not parse or names no zone."""
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return int(when.timestamp()) * 1000 if when.tzinfo is not None else None


def default_check(
    status: int, headers: Mapping[str, str], body: bytes, venue: str
) -> VenueError | None:
    """Statuses that mean the same on every venue."""
    if status == 429:
        wait = retry_after_s(headers)
        return RateLimited(venue, "HTTP 429 too many requests", 1.0 if wait is None else wait)
    if status == 418:
        wait = retry_after_s(headers)
        return Banned(venue, "HTTP 418: IP banned", 120.0 if wait is None else wait)
    if status >= 500 or status == 408:
        return VenueUnavailable(venue, f"HTTP {status}", retry_after_s(headers))
    if "html" in headers.get("Content-Type", ""):
        return VenueUnavailable(venue, f"HTTP {status}: an HTML page (maintenance?)")
    return None


class HttpClient:
    """GET JSON from one venue within its limits; raises the `errors.VenueError` family."""

    def __init__(
        self,
        venue: str,
        base_url: str,
        limiter: Limiter,
        *,
        session: aiohttp.ClientSession | None = None,
        concurrency: int = 256,
        timeout_s: float = 10.0,
        max_attempts: int = 5,
        backoff_s: float = 0.25,
        check_response: ResponseCheck | None = None,
        check_payload: PayloadCheck | None = None,
        on_headers: HeaderHook | None = None,
    ) -> None:
        self.venue, self.base_url, self.limiter = venue, base_url.rstrip("/"), limiter
        self._own_session = session is None
        self._session = session
        self._closed = False
        self._sem = asyncio.Semaphore(concurrency)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.max_attempts, self.backoff = max_attempts, Backoff(backoff_s)
        self._check_response = check_response
        self._check_payload = check_payload
        self._on_headers = on_headers
        self.stats = HttpStats()
        self.clock = ServerClock()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._closed:
            # A task that outlived `close()` must not open a session nobody will close.
            raise VenueUnavailable(self.venue, "client closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            )
        return self._session

    async def close(self) -> None:
        self._closed = True
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, path: str, params: Mapping[str, str | int] | None, charges: Charges) -> Any:
        """The decoded JSON of GET `path`, retried on transient failures."""
        return await self._send("GET", path, params, None, charges)

    async def post(self, path: str, body: Mapping[str, Any], charges: Charges) -> Any:
        """The decoded JSON of POST `path` with a JSON `body` (a read: retried the same way)."""
        return await self._send("POST", path, None, body, charges)

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str | int] | None,
        body: Mapping[str, Any] | None,
        charges: Charges,
    ) -> Any:
        last: VenueError | None = None
        for attempt in range(self.max_attempts):
            if self._closed:
                raise VenueUnavailable(self.venue, "client closed")
            self._refuse_if_banned()  # before waiting for a budget it could not use
            try:
                return await self._once(method, path, params, body, charges)
            except RateLimited as exc:
                self.limiter.pause(exc.retry_after_s)
                last = exc
            except Banned as exc:
                self.limiter.ban(exc.seconds)
                raise
            except VenueUnavailable as exc:
                last = exc
                await asyncio.sleep(self.backoff.delay(attempt, exc.retry_after_s))
            self.stats.retries += 1
            self.stats.failures[type(last).__name__] = (
                self.stats.failures.get(type(last).__name__, 0) + 1
            )
        assert last is not None
        raise last

    async def _once(
        self,
        method: str,
        path: str,
        params: Mapping[str, str | int] | None,
        body: Mapping[str, Any] | None,
        charges: Charges,
    ) -> Any:
        url = self.base_url + path
        self.stats.last_path = path
        query = {k: str(v) for k, v in (params or {}).items()}
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        # Charged before a connection slot is taken: a burst waiting on one endpoint's budget
        # then holds no slot, so the venue's other endpoints (their own budgets) keep moving.
        # A charged request waiting for a slot holds its units a little early: careful only.
        ticket = await self.limiter.acquire(charges)
        answered = True
        try:
            async with self._sem:
                await self._clear_to_send()
                self.stats.requests += 1
                async with self.session.request(
                    method,
                    url,
                    params=query,
                    data=data,
                    timeout=self._timeout,
                    headers=_JSON if data is not None else None,
                ) as r:
                    status, headers, raw = r.status, r.headers, await r.read()
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            # Sent but unanswered, it may be counted later: not so if it never connected.
            answered = isinstance(exc, aiohttp.ClientConnectorError)
            raise VenueUnavailable(self.venue, f"{type(exc).__name__} on {path}") from None
        finally:
            self.limiter.done(ticket, answered)
        self.clock.observe(headers)
        if self._on_headers is not None:
            self._on_headers(headers)
        return self._decode(path, status, headers, raw)

    def _refuse_if_banned(self) -> None:
        banned = self.limiter.banned_for()
        if banned:
            raise Banned(self.venue, f"banned for another {banned:.0f} s; not sending", banned)

    async def _clear_to_send(self) -> None:
        """Checked again at the moment of sending: a request that waited for its budget or a
        connection while a 429 (Retry-After) or a ban came back must not go out (a scan's
        hundreds of queued requests kept the ban going, 250 of them sent into it)."""
        while True:
            self._refuse_if_banned()
            paused = self.limiter.paused_for()
            if paused <= 0:
                return
            await asyncio.sleep(min(paused, 1.0))  # a ban meanwhile: refused within a second

    def _decode(self, path: str, status: int, headers: Mapping[str, str], body: bytes) -> Any:
        """The reply's JSON, or the error its status, headers or envelope mean."""
        err = self._check_response(status, headers, body) if self._check_response else None
        err = err or default_check(status, headers, body, self.venue)
        if err is None and status >= 400:
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
            err = (
                self._check_payload(payload)
                if self._check_payload and payload is not None
                else None
            )
            if err is None:
                err = VenueProtocolError(self.venue, f"HTTP {status} on {path}: {body[:200]!r}")
        if err is not None:
            raise err
        try:
            payload = json.loads(body)
        except ValueError:
            raise VenueUnavailable(
                self.venue, f"garbled JSON from {path} ({len(body)} bytes)"
            ) from None
        if self._check_payload is not None and (perr := self._check_payload(payload)) is not None:
            raise perr
        return payload


class RestClient(VenueClient):
    """What every REST connector shares: its limiter and HTTP client, built from the same
    knobs. Subclasses set `name` and `budgets` and may override the three hooks."""

    budgets: ClassVar[Mapping[str, Budget]]

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        concurrency: int = 256,
        safety: float = SAFETY,
        env: Mapping[str, str] | None = None,
        limit_scale: float = 1.0,
        backoff_s: float = 0.25,
        max_attempts: int = 5,
    ) -> None:
        """`limit_scale` divides every budget period (only to match a scaled simulator)."""
        budgets = {k: Budget(b.limit, b.period_s / limit_scale) for k, b in self.budgets.items()}
        self.limiter = Limiter(self.name, budgets, safety)
        rest = endpoints(self.name, endpoint, env).rest
        self._usage = usage_file(self.name, rest, env)  # what this host's others spent
        usage.load(self.limiter, self._usage)
        self.http = HttpClient(
            self.name,
            rest,
            self.limiter,
            session=session,
            concurrency=concurrency,
            backoff_s=backoff_s,
            max_attempts=max_attempts,
            check_response=self.check_response,
            check_payload=self.check_payload,
            on_headers=self.on_headers,
        )
        self.unknown: list[str] = []  # symbols the last snapshot() asked for but not listed
        self.empty_retries = 0  # empty answers asked again (`refetch_empty`)
        self.init_state()

    async def refetch_empty(
        self, fetch: Callable[[], Awaitable[T]], empty: Callable[[T], bool] = lambda r: r == []
    ) -> T:
        """`fetch()`, asked again up to EMPTY_RETRIES times while its answer is `empty`: call it
        only where rows must exist, since an empty list is what a flaky edge or a half-failed
        node returns (a fault rate p leaves three empties in a row with p^3). The last answer
        is believed."""
        answer = await fetch()
        for _ in range(EMPTY_RETRIES):
            if not empty(answer):
                break
            self.empty_retries += 1
            answer = await fetch()
        return answer

    def venue_now(self) -> int:
        """The venue's time (ms) by the `Date` header of its latest reply (`ServerClock`):
        for venues whose payloads carry none."""
        now = self.http.clock.now_ms()
        if now is None:
            raise VenueProtocolError(self.name, "replies carry no Date header: no venue clock")
        return now

    def chosen(
        self, found: Mapping[str, MarketSnapshot], symbols: Sequence[str] | None
    ) -> list[MarketSnapshot]:
        """The snapshots `snapshot(symbols)` returns from one bulk answer: all, or those asked
        for in their order, the ones the venue lacks noted in `unknown`."""
        if symbols is None:
            return list(found.values())
        wanted = list(dict.fromkeys(symbols))
        self.unknown = [s for s in wanted if s not in found]
        return [found[s] for s in wanted if s in found]

    def init_state(self) -> None:
        """Per-connector caches and counters."""

    def check_response(
        self, status: int, headers: Mapping[str, str], body: bytes
    ) -> VenueError | None:
        """Venue-specific meaning of an HTTP status (before the shared one)."""
        return None

    def check_payload(self, payload: Any) -> VenueError | None:
        """Venue envelope error codes."""
        return None

    def on_headers(self, headers: Mapping[str, str]) -> None:
        """Usage headers the limiter should learn from."""

    async def close(self) -> None:
        await self.http.close()
        usage.save(self.limiter, self._usage)
