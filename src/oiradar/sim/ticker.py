"""One push clock for all of a simulator's WebSocket connections."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

PERIOD_S = 0.1  # wall seconds between pushes, every venue's connections alike


class PushTicker:
    """Wakes every connection's pusher in the same pass of the loop with the same `now`.

    A venue computes a broadcast once and sends it to all its subscribers at the same
    instant. With a timer per connection, the same liquidation left for two clients up to a
    push period apart (more when the loop ran late between the two timers), so a client
    timing one feed against another measured the simulator, not itself. Ticks sit on a grid
    of the loop's clock; a pusher whose work outlasts a period takes the next tick.

    Connections carrying a liquidation feed (`first=True`) push before the rest: a venue's
    liquidation broadcast does not wait while it builds 500 closing candles elsewhere, so
    one client's copy must not leave behind another client's candle burst either.
    """

    def __init__(self, period_s: float = PERIOD_S) -> None:
        self.period_s = period_s
        self._first: asyncio.Future[int] | None = None
        self._rest: asyncio.Future[int] | None = None

    async def next(self, now_ms: Callable[[], int], *, first: bool = False) -> int:
        """The simulated time of the next tick, once it has come (for this pusher's turn)."""
        loop = asyncio.get_running_loop()
        if self._first is None or self._first.done() or self._first.get_loop() is not loop:
            self._first, self._rest = loop.create_future(), loop.create_future()
            at = (math.floor(loop.time() / self.period_s) + 1) * self.period_s
            loop.call_at(at, _fire, self._first, self._rest, now_ms)
        fut = self._first if first else self._rest
        assert fut is not None
        # shielded: one pusher cancelled (its connection closed) must not cancel the tick
        return await asyncio.shield(fut)


def _fire(first: asyncio.Future[int], rest: asyncio.Future[int], now_ms: Callable[[], int]) -> None:
    now = now_ms()
    first.set_result(now)
    # the rest once the first pushers have run: their wake-ups (shield's callback, then the
    # task's step) are queued now, so two hops later they have all taken their step
    loop = first.get_loop()
    loop.call_soon(loop.call_soon, _set, rest, now)


def _set(fut: asyncio.Future[int], now: int) -> None:
    if not fut.done():
        fut.set_result(now)
