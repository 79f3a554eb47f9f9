"""The event loop's lag as the daemon measures it (`services.watch.lag`)."""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace
from typing import cast

import pytest

from oiradar.records import LiquidationFeed
from oiradar.services.watch.lag import STALL_MS, WINDOW_S, LoopLag
from oiradar.services.watch.venue_status import VenueStatus
from oiradar.venues.base import VenueClient
from oiradar.venues.stream import State, StreamStats, VenueStream


def test_a_blocked_loop_is_a_stall_logged_and_in_the_status(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lag = LoopLag()

    async def main() -> None:
        task = asyncio.create_task(lag.watch())
        await asyncio.sleep(0.1)
        time.sleep(0.3)  # a callback holding the loop
        await asyncio.sleep(0.1)
        task.cancel()

    with caplog.at_level(logging.INFO, logger="oiradar.services.watch.lag"):
        asyncio.run(main())
    assert lag.stalls == 1
    status = lag.status()
    assert 250 <= status["worst_lag_ms"] < 2_000
    assert status["lag_ms"] == status["worst_lag_ms"]
    assert [r for r in caplog.records if "event=loop_lag" in r.getMessage()]


def test_the_lag_shown_is_the_worst_of_the_last_seconds() -> None:
    lag = LoopLag()
    lag.note(STALL_MS * 3, 1_000.2)
    lag.note(5.0, 1_000.9)
    lag.note(7.0, 1_001.5)
    assert lag.peak_ms(1_001.6) == STALL_MS * 3
    assert lag.peak_ms(1_000 + WINDOW_S + 0.5) == 7.0  # the stall's second has left
    assert lag.peak_ms(1_001 + WINDOW_S + 0.5) == 0.0
    assert lag.worst_ms == STALL_MS * 3 and lag.stalls == 1


def test_a_status_line_rate_is_not_taken_over_milliseconds() -> None:
    """Every alert stores the status: two lines a few milliseconds apart must not read the
    rate over those milliseconds (it read 0, or thousands a second)."""
    stats = StreamStats(state=State.LIVE)
    client = cast(VenueClient, SimpleNamespace(name="bybit"))
    stream = cast(VenueStream, SimpleNamespace(stats=stats, streams_oi=True))
    status = VenueStatus()
    status.rate_mark = (time.monotonic() - 2.0, 0)
    stats.messages = 400
    first = status.line(client, stream, 10, LiquidationFeed.COMPLETE)["msg_per_s"]
    assert 150 < first <= 200
    stats.messages = 401  # one more message, a moment later: the rate stands
    assert status.line(client, stream, 10, LiquidationFeed.COMPLETE)["msg_per_s"] == first
