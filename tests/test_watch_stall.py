"""A venue whose REST is behind its stream: the close that could not bring a symbol's bar
is tried again with a backoff, not in a tight loop, and the bar is stepped once it comes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from oiradar.services.watch import Watch, WatchRequest
from oiradar.units import MINUTE_MS, parse_time
from tests.test_watch import PARAMS, Readings, recorder
from tests.watchkit import run_daemon, simulated

BAR = 5 * MINUTE_MS
START = parse_time("2026-05-28T16:00Z")
SPEED = 240.0


def test_a_bar_rest_does_not_have_yet_is_retried_with_backoff_then_stepped(
    tmp_path: Path,
) -> None:
    """dYdX (no candle channel: each bar comes from REST at its close) whose REST holds back
    every bar from 16:15 for three bars of venue time (~4 s wall). Before, the close was retried
    at once, over and over (thousands of klines calls a bar in CI), and stepped past the
    bars REST had not served."""
    withheld_from, until = START + 3 * BAR, START + 6 * BAR
    calls: list[int] = []  # venue ms of each klines call while bars were held back
    readings: Readings = {}

    def behind(daemon: Watch) -> None:
        recorder(readings)(daemon)
        client = daemon.clients[0]
        inner = client.klines

        async def klines(symbol: str, interval_ms: int, start_ms: int, end_ms: int) -> Any:
            got = await inner(symbol, interval_ms, start_ms, end_ms)
            now = daemon.venues[0].now_ms() if daemon.venues else 0
            if now < until:
                calls.append(now)
                return [k for k in got if k.ts_ms < withheld_from]
            return got

        client.klines = klines  # type: ignore[method-assign]

    async def scenario() -> None:
        async with simulated(
            tmp_path / "watch.sqlite", speed=SPEED, limit_scale=SPEED, start_ms=START
        ) as run:
            req = WatchRequest(("dydx",), ("BTCUSDT",), None, PARAMS, settle_ms=30_000)
            await run_daemon(run, req, until + 2 * BAR, probe=behind)

    asyncio.run(scenario())
    stepped = sorted(ts for _, _, ts in readings)
    assert stepped == list(range(stepped[0], stepped[-1] + BAR, BAR))  # none skipped
    assert stepped[-1] >= until
    held = [t for t in calls if t >= withheld_from + BAR]
    assert 1 <= len(held) <= 20, len(held)  # a backoff; was one call per loop turn
