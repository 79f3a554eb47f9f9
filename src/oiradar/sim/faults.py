"""Seeded latency and fault injection for REST responses and WebSocket streams."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from enum import StrEnum


class Fault(StrEnum):
    ERROR_5XX = "5xx"
    SLOW_504 = "slow-504"
    RESET = "reset"
    TRUNCATED = "truncated-json"
    MAINTENANCE = "html-maintenance"
    EMPTY = "empty-list"


MAINTENANCE_HTML = (
    "<!DOCTYPE html><html><head><title>System maintenance</title></head><body>"
    "<h1>We'll be back soon</h1><p>The system is under maintenance.</p></body></html>"
)


@dataclass(slots=True)
class Faults:
    """`rate` is the probability that a REST response is replaced by a fault."""

    rate: float = 0.0
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    seed: int = 7
    kinds: tuple[Fault, ...] = tuple(Fault)
    slow_s: float = 2.0
    # WebSocket: drop every ~N s (0 = never), duplicate / reorder probabilities per message,
    # and the probability that a candle channel's closing message for a bar is never sent.
    ws_drop_s: float = 0.0
    ws_duplicate: float = 0.0
    ws_reorder: float = 0.0
    ws_lose_close: float = 0.0
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    async def delay(self) -> None:
        if self.latency_ms or self.jitter_ms:
            ms = self.latency_ms + self._rng.uniform(-self.jitter_ms, self.jitter_ms)
            await asyncio.sleep(max(0.0, ms) / 1000)

    def pick(self) -> Fault | None:
        if self.rate and self._rng.random() < self.rate:
            return self._rng.choice(self.kinds)
        return None

    def chance(self, p: float) -> bool:
        return bool(p) and self._rng.random() < p

    def lose_close(self) -> bool:
        """True when a bar's closing candle message is to be lost (never sent)."""
        return self.chance(self.ws_lose_close)

    def drop_after(self) -> float | None:
        """Seconds until the next forced WebSocket drop, or None."""
        if not self.ws_drop_s:
            return None
        return self._rng.uniform(0.5, 1.5) * self.ws_drop_s
