"""How late the daemon's event loop runs: the one number that says whether a liquidation
can be checked the moment it arrives.

Every message, bar close, REST answer and alert of every venue runs on one event loop; a
callback that holds it (or a thread holding the GIL) delays everything queued behind it,
and a burst escalation waits with the rest. A timer that asks to wake every `TICK_S` and
notes how late it woke measures that delay from inside, at the cost of 50 wake-ups a
second. Each stall of `STALL_MS` or more is counted and logged (`event=loop_lag`, with its
wall time, so `bench/watch.py` can lay stalls beside bar closes and escalations); the
status carries the worst lag of the last `WINDOW_S` seconds and the stalls so far.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

log = logging.getLogger(__name__)
TICK_S = 0.02
STALL_MS = 100.0
WINDOW_S = 10


class LoopLag:
    """Run `watch()` as a task on the loop to be measured; read `peak_ms()`, `stalls`."""

    def __init__(self) -> None:
        self.stalls = 0  # wake-ups STALL_MS or more late
        self.worst_ms = 0.0  # since the start
        self._seconds: deque[tuple[int, float]] = deque(maxlen=WINDOW_S)  # (second, worst)

    def note(self, lag_ms: float, now_s: float) -> None:
        """One wake-up `lag_ms` late at wall time `now_s`."""
        second = int(now_s)
        if self._seconds and self._seconds[-1][0] == second:
            if lag_ms > self._seconds[-1][1]:
                self._seconds[-1] = (second, lag_ms)
        else:
            self._seconds.append((second, lag_ms))
        self.worst_ms = max(self.worst_ms, lag_ms)
        if lag_ms >= STALL_MS:
            self.stalls += 1
            log.info("event=loop_lag lag_ms=%.0f at_wall=%.3f", lag_ms, now_s)

    def peak_ms(self, now_s: float | None = None) -> float:
        """The worst lag over the last `WINDOW_S` seconds."""
        now = int(time.time() if now_s is None else now_s)
        return max((w for s, w in self._seconds if now - s < WINDOW_S), default=0.0)

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(TICK_S)
            self.note(max(0.0, (loop.time() - asked - TICK_S) * 1000), time.time())

    def status(self) -> dict[str, float | int]:
        return {
            "lag_ms": round(self.peak_ms(), 1),
            "worst_lag_ms": round(self.worst_ms, 1),
            "stalls": self.stalls,
        }
