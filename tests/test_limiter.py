"""The limiter's promise: whatever the latency and scheduling, the venue never counts more
than the budget in any window, provided it counts each request between send and reply."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable
from pathlib import Path

from oiradar.venues.limiter import Budget, Limiter

PERIOD = 0.2
LIMIT = 20


async def _burst(limiter: Limiter, n: int, flight: Callable[[int], float]) -> list[float]:
    """n requests at once; the k-th to go out is in flight `flight(k)` seconds and counted by
    the 'venue' at a random moment of it."""
    counted: list[float] = []
    rng = random.Random(7)
    sent = itertools.count()

    async def one() -> None:
        ticket = await limiter.acquire([("ip", "", 1)])
        try:
            seconds = flight(next(sent))
            at = rng.uniform(0.0, seconds)
            await asyncio.sleep(at)
            counted.append(time.monotonic())
            await asyncio.sleep(seconds - at)
        finally:
            limiter.done(ticket)

    await asyncio.gather(*(one() for _ in range(n)))
    return sorted(counted)


def _busiest(times: list[float], period: float) -> int:
    """Most requests the venue counted in any window of `period` (sliding, so also fixed)."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - period:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def test_slow_replies_never_let_the_venue_see_more_than_the_budget() -> None:
    # Random flights of up to three quarters of the window.
    limiter = Limiter("x", {"ip": Budget(LIMIT, PERIOD)}, safety=1.0)
    rng = random.Random(3)
    counted = await _burst(limiter, 120, lambda _: rng.uniform(0.0, 0.15))
    assert len(counted) == 120
    assert _busiest(counted, PERIOD) <= LIMIT
    assert limiter.waited_s > 0


async def test_a_stalled_venue_does_not_bunch_two_windows_into_one() -> None:
    # The first window's requests hang until it ends, the next ones fly: charged at send
    # time only, both windows' requests would be counted within a few milliseconds.
    limiter = Limiter("x", {"ip": Budget(LIMIT, PERIOD)}, safety=1.0)
    counted = await _burst(limiter, 3 * LIMIT, lambda k: 0.95 * PERIOD if k < LIMIT else 0.001)
    assert _busiest(counted, PERIOD) <= LIMIT


async def test_a_request_in_flight_holds_its_units_until_the_reply() -> None:
    limiter = Limiter("x", {"ip": Budget(2, 0.05)}, safety=1.0)
    first = await limiter.acquire([("ip", "", 2)])
    waiter = asyncio.create_task(limiter.acquire([("ip", "", 1)]))
    await asyncio.sleep(0.2)  # four periods: a send-time charge would have expired
    assert not waiter.done()
    limiter.done(first)
    await asyncio.sleep(0.02)
    assert not waiter.done()  # the reply came, but the venue may have counted it just now
    limiter.done(await asyncio.wait_for(waiter, 1.0))


async def test_a_request_given_up_on_holds_its_units_a_period_longer() -> None:
    """A request that timed out may still be counted once the venue gets to it (a loaded
    venue's backlog): the first window's requests are given up on after a tenth of the
    window and counted half a window later; the next ones fly. Freed at the give-up, both
    windows' requests would fall in one venue window."""
    limiter = Limiter("x", {"ip": Budget(LIMIT, PERIOD)}, safety=1.0)
    counted: list[float] = []
    loop = asyncio.get_running_loop()

    async def one(late: bool) -> None:
        ticket = await limiter.acquire([("ip", "", 1)])
        if late:  # given up on; the venue counts it later
            await asyncio.sleep(0.1 * PERIOD)
            loop.call_later(0.5 * PERIOD, lambda: counted.append(time.monotonic()))
            limiter.done(ticket, answered=False)
        else:
            counted.append(time.monotonic())
            limiter.done(ticket)

    late = [asyncio.create_task(one(True)) for _ in range(LIMIT)]
    await asyncio.sleep(0)
    await asyncio.gather(*late, *(one(False) for _ in range(LIMIT)))
    await asyncio.sleep(0.6 * PERIOD)
    assert len(counted) == 2 * LIMIT
    assert _busiest(sorted(counted), PERIOD) <= LIMIT


def test_spent_budget_is_shared_through_the_cache_merged_and_forgotten_in_time(
    tmp_path: Path,
) -> None:
    """Two processes' spending adds up in the file (each counted once, also when a process
    re-saves what it was seeded with); a charge older than its window is dropped."""
    from oiradar.venues import usage

    path = tmp_path / "limits" / "x.json"
    budgets = {"w": Budget(100, 60.0), "short": Budget(10, 0.2)}

    def spend(n: int, bucket: str = "w") -> Limiter:
        lim = Limiter("x", budgets)
        usage.load(lim, path)
        for _ in range(n):
            lim.done(asyncio.run(lim.acquire([(bucket, "", 1)])))
        return lim

    first = spend(30)
    first_short = spend(5, "short")
    usage.save(first, path)
    usage.save(first_short, path)
    second = spend(20)  # starts with the 30 (and the 5 on the short window)
    assert second.usage()["w"] == (50, 100)
    usage.save(second, path)  # its 20, not the 30 it was seeded with again
    time.sleep(0.5)  # the short window passes (its charges are kept to the tenth, up)
    third = Limiter("x", budgets)
    usage.load(third, path)
    assert third.usage() == {"w": (50, 100), "short": (0, 10)}
