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
    """

    def __init__(self, period_s: float = PERIOD_S) -> None:
        self.period_s = period_s
        self._fut: asyncio.Future[int] | None = None

    async def next(self, now_ms: Callable[[], int]) -> int:
        """The simulated time of the next tick, once it has come."""
        loop = asyncio.get_running_loop()
        fut = self._fut
        if fut is None or fut.done() or fut.get_loop() is not loop:
            fut = self._fut = loop.create_future()
            at = (math.floor(loop.time() / self.period_s) + 1) * self.period_s
            loop.call_at(at, _fire, fut, now_ms)
        # shielded: one pusher cancelled (its connection closed) must not cancel the tick
        return await asyncio.shield(fut)


def _fire(fut: asyncio.Future[int], now_ms: Callable[[], int]) -> None:
    if not fut.done():
        fut.set_result(now_ms())
