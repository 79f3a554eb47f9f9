"""Client-side rate limiting that keeps every request inside the venue's budget.

Each budget is a sliding window ("at most `limit` units in any `period_s` seconds"),
optionally per key (OKX counts per instrument). A sliding window that never exceeds a
fraction of the limit also never exceeds it in the venue's own fixed windows, so the
limiter prevents 429s instead of reacting to them. The venue counts a request at some
moment between our sending it and its reply arriving, so a request holds its units from
the send until `period_s` after the reply: then no scheduling delay or network jitter can
make the venue see more in one window than we allowed (a request still in flight blocks
its units). The venue's usage headers can only make it more careful.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

# The share of each budget we use. In-flight time is charged, so the whole budget is safe
# against the venue's count of our own requests (a margin would not protect against another
# process on the same IP either: only the venue's usage headers can). Lower it to leave room.
SAFETY = 1.0


@dataclass(frozen=True, slots=True)
class Budget:
    limit: int
    period_s: float


@dataclass(slots=True)
class _Charge:
    cost: int
    done: float = math.inf  # when the reply arrived; until then the units stay charged
    shared: bool = False  # spent by another process (`seed`): not ours to report again
    period_s: float = 0.0  # its window's period (an unanswered request is held one more)


@dataclass(slots=True)
class _Window:
    budget: Budget
    charges: deque[_Charge] = field(default_factory=deque)
    used: int = 0

    def expire(self, now: float) -> None:
        """Drop charges whose reply is a full period old (oldest first: a slow request at the
        head holds the ones behind it a little longer, which only errs on the careful side)."""
        period = self.budget.period_s
        while self.charges and self.charges[0].done + period <= now:
            self.used -= self.charges.popleft().cost

    def wait_for(self, cost: int, cap: float, now: float) -> float:
        """Seconds until `cost` more units fit under `cap` (inf: a reply must come first)."""
        self.expire(now)
        if self.used + cost <= cap:
            return 0.0
        excess, freed, free_at = self.used + cost - cap, 0, now
        for c in self.charges:
            freed += c.cost
            free_at = max(free_at, c.done + self.budget.period_s)
            if freed >= excess:
                return free_at - now
        return self.budget.period_s  # over the cap on its own: let the period pass and try


Ticket = list[_Charge]


class Limiter:
    """One per venue; `acquire` before each request, with its (bucket, key, cost) charges."""

    def __init__(self, venue: str, budgets: dict[str, Budget], safety: float = SAFETY) -> None:
        self.venue = venue
        self.budgets = budgets
        self.safety = safety
        self._windows: dict[tuple[str, str], _Window] = {}
        # Callers queue fairly per set of windows they charge: one waiting for a spent
        # endpoint budget (Gate's candlesticks) never holds up one whose budget is free
        # (contract_stats). Check and charge run with no await between: never over a cap.
        self._locks: dict[frozenset[tuple[str, str]], asyncio.Lock] = {}
        self._replied = asyncio.Event()
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

    def _lock(self, charges: list[tuple[str, str, int]]) -> asyncio.Lock:
        keys = frozenset((bucket, key) for bucket, key, _ in charges)
        lock = self._locks.get(keys)
        if lock is None:
            lock = self._locks[keys] = asyncio.Lock()
        return lock

    async def _fit(self, charges: list[tuple[str, str, int]]) -> None:
        """Return once every charge fits (not charged: the caller charges with no await)."""
        while True:
            now = time.monotonic()
            if self.banned_until > now:
                return  # the sender refuses it at once (`HttpClient`), never after the ban
            wait = max(0.0, self._paused_until - now)
            for bucket, key, cost in charges:
                cap = self.budgets[bucket].limit * self.safety
                wait = max(wait, self._window(bucket, key).wait_for(cost, cap, now))
            if wait <= 0:
                return
            self._replied.clear()
            started = time.monotonic()
            try:
                if math.isinf(wait):
                    await self._replied.wait()
                else:  # a ban coming back meanwhile is noticed within a second
                    await asyncio.sleep(min(wait, 1.0))
            finally:  # counted even when the caller gives up waiting
                self.waited_s += time.monotonic() - started

    async def acquire(self, charges: list[tuple[str, str, int]]) -> Ticket:
        """Wait until every charge fits, then record them (callers charging the same windows
        queue fairly on their lock).

        Hand the ticket to `done` when the reply has arrived (or the request failed)."""
        async with self._lock(charges):
            await self._fit(charges)
            ticket: Ticket = []
            for bucket, key, cost in charges:
                w = self._window(bucket, key)
                ticket.append(charge := _Charge(cost, period_s=w.budget.period_s))
                w.charges.append(charge)
                w.used += cost
            self.requests += 1
            return ticket

    def done(self, ticket: Ticket, answered: bool = True) -> None:
        """The reply to a request has arrived: its units free one period from now. A request
        sent but never answered (a timeout, a dropped connection) may still be counted when
        the venue gets to it, after we gave up: its units are held one period longer."""
        now = time.monotonic()
        for charge in ticket:
            charge.done = now if answered else now + charge.period_s
        self._replied.set()

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
            w.charges.append(_Charge(used - w.used, time.monotonic(), shared=True))
            w.used = used

    def spent(self) -> list[tuple[str, str, int, float]]:
        """(bucket, key, cost, monotonic time its reply came) of every charge still held
        whose reply came: what another process must not spend again (`venues.usage`)."""
        now = time.monotonic()
        out: list[tuple[str, str, int, float]] = []
        for (bucket, key), w in self._windows.items():
            w.expire(now)
            out.extend(
                (bucket, key, c.cost, c.done) for c in w.charges if c.done <= now and not c.shared
            )
        return out

    def seed(self, spent: Iterable[tuple[str, str, int, float]]) -> None:
        """Charge what other processes spent: (bucket, key, cost, monotonic time of its
        reply), each window's charges kept in reply order (sorted once, not per charge)."""
        touched = set()
        for bucket, key, cost, done in spent:
            if bucket in self.budgets:
                w = self._window(bucket, key)
                w.charges.append(_Charge(cost, done, shared=True))
                w.used += cost
                touched.add((bucket, key))
        now = time.monotonic()
        for bucket, key in touched:
            w = self._window(bucket, key)
            w.charges = deque(sorted(w.charges, key=lambda c: c.done))
            w.expire(now)

    def pause(self, seconds: float) -> None:
        """Retry-After: no request to this venue for `seconds`."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def paused_for(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())

    def ban(self, seconds: float) -> None:
        self.banned_until = max(self.banned_until, time.monotonic() + seconds)
