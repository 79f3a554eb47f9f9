"""The simulator's shared push tick: one broadcast reaches every subscriber in the same pass."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp

from oiradar.sim.ticker import PushTicker
from tests.simkit import threaded


async def _first(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> tuple[float, list[Any]]:
    """When the first message came (loop time) and what came within `seconds` after it."""
    first = await ws.receive(timeout=seconds)
    at, out = asyncio.get_running_loop().time(), [json.loads(first.data)]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0.3):
            async for msg in ws:
                out.append(json.loads(msg.data))  # noqa: PERF401
    return at, out


async def test_subscribers_get_a_liquidation_in_the_same_push() -> None:
    # Two connections opened half a push period apart (the simulator on a loop of its own,
    # so that its pushes, not this loop, time the arrivals): with a timer per connection
    # the second heard of the same orders ~50 ms after the first (a probe timing the
    # daemon measured that).
    loop = asyncio.get_running_loop()
    path = "/market/ws/!forceOrder@arr"
    with threaded(venues=("binance",)) as sim:
        async with aiohttp.ClientSession() as http, contextlib.AsyncExitStack() as stack:
            t0 = sim.ctx.now_ms()
            a = await stack.enter_async_context(http.ws_connect(sim.url + path))
            phase_a = loop.time()
            for _ in range(20):
                b = await stack.enter_async_context(http.ws_connect(sim.url + path))
                if 0.035 < (loop.time() - phase_a) % 0.1 < 0.065:
                    break
                await b.close()
                await asyncio.sleep(0.013)
            else:
                raise AssertionError("no connection opened half a period after the first")
            got: list[tuple[float, list[Any]]] = []
            for step in (1, 2):  # the first computes the market's minute, the second times
                sim.ctx.clock.set(t0 + step * 10_000)
                got = list(await asyncio.gather(_first(a, 2.0), _first(b, 2.0)))
    (at_a, got_a), (at_b, got_b) = got
    assert got_a and got_a == got_b
    assert abs(at_a - at_b) < 0.04, (at_a, at_b)  # ~50-90 ms with a timer each


async def test_a_cancelled_waiter_leaves_the_tick_to_the_others() -> None:
    ticker, now = PushTicker(0.05), iter(range(100, 10_000, 100))
    gone = asyncio.create_task(ticker.next(lambda: next(now)))
    stays = [asyncio.create_task(ticker.next(lambda: next(now))) for _ in range(2)]
    await asyncio.sleep(0)
    gone.cancel()
    got = await asyncio.gather(*stays)
    assert got[0] == got[1]  # one tick, one `now`, for all its waiters
    assert gone.cancelled()
    assert await ticker.next(lambda: next(now)) > got[0]  # the next tick is a new one


async def test_liquidation_pushers_take_a_tick_before_the_rest() -> None:
    # A candle pusher waiting first still goes after a liquidation pusher: at a close its
    # 500 candles would otherwise hold one client's copy of an order behind another's.
    ticker, order = PushTicker(0.02), list[str]()

    async def pusher(name: str, liquidations: bool) -> int:
        now = await ticker.next(lambda: 7, first=liquidations)
        order.append(name)
        return now

    got = await asyncio.gather(pusher("candles", False), pusher("liquidations", True))
    assert order == ["liquidations", "candles"] and list(got) == [7, 7]
