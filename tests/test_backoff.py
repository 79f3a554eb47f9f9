"""One retry rule (oiradar.backoff) for venue HTTP, archive downloads, streams and sinks:
full jitter under an exponential ceiling, and a server's `Retry-After` as a floor — checked
over real local servers answering 503 / 429 with `Retry-After`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from oiradar.backoff import MAX_RETRY_AFTER_S, Backoff, retry_after_s
from oiradar.clock import SimClock
from oiradar.config import Secret, SinkConfig, SinkType
from oiradar.datafiles.archive import RemoteArchive
from oiradar.services.alerts import Delivery, Dispatcher, build_sink, sample_alert
from oiradar.venues.http import HttpClient
from oiradar.venues.limiter import Budget, Limiter

LATER = "Wed, 21 Oct 2015 07:28:00 GMT"


def test_the_wait_is_jittered_under_a_capped_exponential_ceiling() -> None:
    rule = Backoff(0.5, max_s=8.0)
    for attempt in range(12):
        waits = [rule.delay(attempt) for _ in range(200)]
        ceiling = min(8.0, 0.5 * 2**attempt)
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling / 2 > min(waits)  # spread, not one value
    assert all(rule.delay(0, retry_after_s=5.0) >= 5.0 for _ in range(50))  # a floor
    assert rule.delay(10**6) <= 8.0  # no overflow on a long outage


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": " 0 "}, 0.0),
        ({"Retry-After": LATER, "Date": "Wed, 21 Oct 2015 07:27:30 GMT"}, 30.0),
        ({"Retry-After": LATER, "Date": "Wed, 21 Oct 2015 08:00:00 GMT"}, 0.0),
        ({"Retry-After": "99999999"}, MAX_RETRY_AFTER_S),
        ({"Retry-After": "²"}, None),
        ({"Retry-After": "-3"}, None),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(
    headers: dict[str, str], seconds: float | None
) -> None:
    assert retry_after_s(headers) == seconds


def test_an_http_date_without_a_date_header_is_read_on_the_clock() -> None:
    clock = SimClock(1_445_412_450_000, speed=0.0)  # 2015-10-21T07:27:30Z, frozen
    assert retry_after_s({"Retry-After": LATER}, clock) == 30.0


Answer = Callable[[int], web.Response]


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[float], list[Answer]]]:
    """A server answering each request with the next queued answer (then 200 `[]`)."""
    seen: list[float] = []
    plan: list[Answer] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(time.monotonic())
        return plan.pop(0)(len(seen)) if plan else web.json_response([])

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen, plan
    await runner.cleanup()


def _busy(status: int, seconds: int) -> Answer:
    return lambda _: web.Response(status=status, headers={"Retry-After": str(seconds)})


async def test_venue_http_waits_as_long_as_a_503_asks(
    server: tuple[str, list[float], list[Answer]],
) -> None:
    url, seen, plan = server
    plan.append(_busy(503, 1))
    limiter = Limiter("test", {"ip": Budget(100, 1.0)})
    client = HttpClient("test", url, limiter, backoff_s=0.001)
    try:
        assert await client.get("/x", None, [("ip", "", 1)]) == []
    finally:
        await client.close()
    assert len(seen) == 2 and seen[1] - seen[0] >= 1.0  # not the 1 ms the backoff alone gives


async def test_a_sink_waits_as_long_as_a_429_asks(
    server: tuple[str, list[float], list[Answer]],
) -> None:
    url, seen, plan = server
    plan.append(_busy(429, 30))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # the 30 s is asked for, not spent
        slept.append(seconds)

    done: list[Delivery] = []
    sink = build_sink(SinkConfig(SinkType.WEBHOOK, "hook", url=Secret(f"{url}/hook")))
    async with Dispatcher([sink], backoff_s=0.001, on_delivery=done.append, sleep=sleep) as d:
        d.submit(sample_alert(1_780_000_000_000))
    assert len(seen) == 2 and done[0].ok and done[0].attempts == 2
    assert slept and slept[0] >= 30.0


async def test_an_archive_download_waits_as_long_as_a_503_asks(
    server: tuple[str, list[float], list[Answer]], tmp_path: Path
) -> None:
    url, seen, plan = server
    plan.append(_busy(503, 1))
    archive = RemoteArchive(url, tmp_path, backoff_s=0.001)
    try:
        assert await archive._get("data/x.zip") == b"[]"
    finally:
        await archive.close()
    assert len(seen) == 2 and seen[1] - seen[0] >= 1.0
