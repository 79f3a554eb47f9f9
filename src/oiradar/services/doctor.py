"""`oiradar doctor`: every endpoint and channel oiradar uses, asked once per venue and read
with the same parsers, for whoever first runs oiradar against the real venues.

Per venue: the instrument list, one symbol's snapshot, klines, OI history and funding
history over REST, and the WebSocket feed until its first record. A payload the parsers
cannot read (a renamed or missing field) is a *drift*: the report names the endpoint and
the parser's complaint, which names the field. It also measures the clock skew (local clock
minus the venue's time on its snapshot; it includes one request's latency) and the lag of
the venue's OI history behind its present (that snapshot's time), over which the history
is asked for. Everything stays within the limits: one request
per endpoint, the venue's own client and limiter.

Assumptions: BTCUSDT is the probe symbol where listed (else the first listed); a venue that
publishes no OI history (Bitget) reports none, not a drift.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from oiradar.clock import Clock, WallClock
from oiradar.errors import VenueError, VenueProtocolError
from oiradar.units import HOUR_MS, MINUTE_MS
from oiradar.venues.base import VenueClient
from oiradar.venues.http import RestClient
from oiradar.venues.registry import client as make_client
from oiradar.venues.registry import stream as make_stream

BAR_MS = 5 * MINUTE_MS
PROBE = "BTCUSDT"
STREAM_WAIT_S = 15.0


@dataclass(slots=True)
class Check:
    """One endpoint or channel: `status` ok, drift (the payload changed) or failed."""

    name: str
    endpoint: str
    status: str
    ms: float
    detail: str = ""


@dataclass(slots=True)
class VenueReport:
    venue: str
    symbol: str | None = None
    checks: list[Check] = field(default_factory=list)
    clock_skew_ms: int | None = None
    history_lag_ms: int | None = None

    @property
    def drift(self) -> bool:
        return any(c.status == "drift" for c in self.checks)

    @property
    def ok(self) -> bool:
        return all(c.status == "ok" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drift": self.drift, "ok": self.ok}


async def _probe(
    report: VenueReport, c: VenueClient, name: str, call: Callable[[], Awaitable[Any]]
) -> Any:
    """Run one check; its result, or None when it failed (recorded either way)."""
    http = c.http if isinstance(c, RestClient) else None
    asked = http.stats.requests if http is not None else 0
    t = time.perf_counter()
    try:
        result = await call()
    except VenueProtocolError as exc:
        status, detail, result = "drift", str(exc), None
    except VenueError as exc:
        status, detail, result = "failed", str(exc), None
    else:
        status, detail = "ok", _describe(result)
    path = http.stats.last_path if http is not None else ""
    if http is not None and http.stats.requests == asked:  # answered without asking
        path, detail = "-", "not published by the venue"
    ms = round((time.perf_counter() - t) * 1000, 1)
    report.checks.append(Check(name, path, status, ms, detail))
    return result


def _describe(result: Any) -> str:
    return f"{len(result)} row(s)" if isinstance(result, list) else ""


async def check_venue(c: VenueClient, endpoint: str | None, clock: Clock) -> VenueReport:
    report = VenueReport(c.name)
    listed = await _probe(report, c, "instruments", c.instruments)
    if not listed:
        return report
    symbols = {i.symbol for i in listed}
    report.symbol = symbol = PROBE if PROBE in symbols else sorted(symbols)[0]
    snaps = await _probe(report, c, "snapshot", lambda: c.snapshot([symbol]))
    now = clock.now_ms()
    if snaps:  # the venue's present: history is asked for and measured against it
        venue_now = max(s.ts_ms for s in snaps)
        report.clock_skew_ms, now = now - venue_now, venue_now
    start = now - HOUR_MS
    await _probe(report, c, "klines", lambda: c.klines(symbol, BAR_MS, start, now))
    oi = await _probe(report, c, "oi_history", lambda: c.oi_history(symbol, BAR_MS, start, now))
    if oi:
        report.history_lag_ms = now - max(o.ts_ms for o in oi)
    day = now - 24 * HOUR_MS
    await _probe(report, c, "funding_history", lambda: c.funding_history(symbol, day, now))
    report.checks.append(await _stream_check(c, endpoint, symbol))
    return report


async def _stream_check(c: VenueClient, endpoint: str | None, symbol: str) -> Check:
    """The venue's WebSocket feed until its first record (or `STREAM_WAIT_S`); its start-up
    requests share the client's limiter with the checks before it."""
    feed = make_stream(c.name, endpoint, rest=c)
    first = asyncio.Event()
    kinds: set[str] = set()

    def on_record(rec: Any) -> None:
        kinds.add(type(rec).__name__)
        first.set()

    t = time.perf_counter()
    task = asyncio.create_task(feed.run([symbol], on_record))
    try:
        await asyncio.wait_for(first.wait(), STREAM_WAIT_S)
    except TimeoutError:
        pass
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    ms = round((time.perf_counter() - t) * 1000, 1)
    if kinds:
        return Check("stream", "websocket", "ok", ms, ", ".join(sorted(kinds)))
    return Check("stream", "websocket", "failed", ms, feed.stats.last_error or "no record")


async def doctor(
    venues: Sequence[str], endpoint: str | None = None, clock: Clock | None = None
) -> list[VenueReport]:
    """Every venue checked concurrently (each within its own limits)."""
    clock = clock or WallClock()
    clients = [make_client(v, endpoint, max_attempts=2) for v in venues]
    try:
        return list(await asyncio.gather(*(check_venue(c, endpoint, clock) for c in clients)))
    finally:
        for c in clients:
            await c.close()
