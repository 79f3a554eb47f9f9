"""Client-side rate limiting that keeps every request inside the venue's budget.

Each budget is a sliding window ("at most `limit` units in any `period_s` seconds"),
optionally per key (OKX counts per instrument). A sliding window that never exceeds a
fraction of the limit also never exceeds it in the venue's own fixed windows, so the
limiter prevents 429s instead of reacting to them; the safety margin absorbs network
jitter between sending and the venue counting. The venue's usage headers can only make
it more careful, never less.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

# Stay 5 % under every budget: enough for loopback and WAN jitter in our tests and benches,
# close enough to the limit that a rate-bound scan runs near the venue's floor.
SAFETY = 0.95


@dataclass(frozen=True, slots=True)
class Budget:
    limit: int
    period_s: float


@dataclass(slots=True)
class _Window:
    budget: Budget
    events: deque[tuple[float, int]] = field(default_factory=deque)
    used: int = 0

    def expire(self, now: float) -> None:
        horizon = now - self.budget.period_s
        while self.events and self.events[0][0] <= horizon:
            self.used -= self.events.popleft()[1]

    def wait_for(self, cost: int, cap: float, now: float) -> float:
        """Seconds until `cost` more units fit under `cap`."""
        self.expire(now)
        if self.used + cost <= cap:
            return 0.0
        excess, freed = self.used + cost - cap, 0
        for t, c in self.events:
            freed += c
            if freed >= excess:
                return t + self.budget.period_s - now
        return self.budget.period_s


class Limiter:
    """One per venue; `acquire` before each request, with its (bucket, key, cost) charges."""

    def __init__(self, venue: str, budgets: dict[str, Budget], safety: float = SAFETY) -> None:
        self.venue = venue
        self.budgets = budgets
        self.safety = safety
        self._windows: dict[tuple[str, str], _Window] = {}
        self._lock = asyncio.Lock()
        self._paused_until = 0.0
        self.banned_until = 0.0
        self.requests = 0
        self.waited_s = 0.0

    def _window(self, bucket: str, key: str) -> _Window:
        w = self._windows.get((bucket, key))
        if w is None:
            w = self._windows[(bucket, key)] = _Window(self.budgets[bucket])
        return w

    def banned_for(self) -> float:
        return max(0.0, self.banned_until - time.monotonic())

    async def acquire(self, charges: list[tuple[str, str, int]]) -> None:
        """Wait until every charge fits, then record them (callers queue fairly on a lock)."""
        async with self._lock:
            while True:
                now = time.monotonic()
                wait = max(0.0, self._paused_until - now)
                for bucket, key, cost in charges:
                    cap = self.budgets[bucket].limit * self.safety
                    wait = max(wait, self._window(bucket, key).wait_for(cost, cap, now))
                if wait <= 0:
                    break
                self.waited_s += wait
                await asyncio.sleep(wait)
            for bucket, key, cost in charges:
                w = self._window(bucket, key)
                w.events.append((now, cost))
                w.used += cost
            self.requests += 1

    def usage(self) -> dict[str, tuple[int, int]]:
        """(units used now, limit) per bucket, the busiest key of each, for `oiradar status`."""
        now = time.monotonic()
        out = {bucket: (0, b.limit) for bucket, b in self.budgets.items()}
        for (bucket, _), w in self._windows.items():
            w.expire(now)
            out[bucket] = (max(out[bucket][0], w.used), w.budget.limit)
        return out

    def observe_used(self, bucket: str, used: int, key: str = "") -> None:
        """The venue reported `used` units in the current window (e.g. X-MBX-USED-WEIGHT-1M)."""
        w = self._window(bucket, key)
        w.expire(time.monotonic())
        if used > w.used:
            w.events.append((time.monotonic(), used - w.used))
            w.used = used

    def pause(self, seconds: float) -> None:
        """Retry-After: no request to this venue for `seconds`."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def ban(self, seconds: float) -> None:
        self.banned_until = max(self.banned_until, time.monotonic() + seconds)
