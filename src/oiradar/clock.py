"""The one clock seam: nothing else in oiradar reads the wall clock for market time."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


class WallClock:
    """Real time, ms since epoch UTC."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class SimClock:
    """Simulated time: `start_ms` plus `speed` simulated seconds per wall second; settable."""

    def __init__(self, start_ms: int, speed: float = 1.0) -> None:
        self._anchor_sim = start_ms
        self._anchor_wall = time.monotonic()
        self._speed = speed

    @property
    def speed(self) -> float:
        return self._speed

    def now_ms(self) -> int:
        return self._anchor_sim + int((time.monotonic() - self._anchor_wall) * 1000 * self._speed)

    def set(self, now_ms: int | None = None, speed: float | None = None) -> None:
        """Jump to `now_ms` and/or change speed, keeping time continuous otherwise."""
        current = self.now_ms()
        self._anchor_sim = current if now_ms is None else now_ms
        self._anchor_wall = time.monotonic()
        if speed is not None:
            self._speed = speed
