"""Per-venue, per-client-IP rate limits on wall time, scaled for fast tests.

Windows are fixed and aligned to their period (Binance resets weight every minute); a
`scale` of S divides every window and ban by S, so tests can hit limits in milliseconds.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Rule:
    """`limit` units (requests or weight) per `period_s` seconds in bucket `name`."""

    name: str
    limit: int
    period_s: float


@dataclass(slots=True)
class VenueStats:
    requests: int = 0
    weight: int = 0
    rejected_429: int = 0
    bans: int = 0  # 418 on Binance, 403 "access too frequent" on Bybit
    while_banned: int = 0
    faults: int = 0
    ws_connections: int = 0
    ws_messages: int = 0
    paths: dict[str, int] = field(default_factory=dict)  # REST requests per route path

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(slots=True)
class Verdict:
    """Outcome of charging a request: allowed, or which rule was broken and for how long."""

    allowed: bool
    used: dict[str, int]
    broken: Rule | None = None
    retry_after_s: float = 0.0


@dataclass(slots=True)
class Limits:
    scale: float = 1.0
    _counts: dict[tuple[str, str, str, int], int] = field(default_factory=lambda: defaultdict(int))
    _bans: dict[tuple[str, str], float] = field(default_factory=dict)
    _ban_level: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    _over: dict[tuple[str, str], float] = field(default_factory=dict)
    stats: dict[str, VenueStats] = field(default_factory=lambda: defaultdict(VenueStats))

    def now(self) -> float:
        return time.monotonic()

    def _period(self, rule: Rule) -> float:
        return rule.period_s / self.scale

    def charge(self, venue: str, ip: str, charges: list[tuple[Rule, str, int]]) -> Verdict:
        """Add `cost` to each (rule, key) for this IP; refuse if any would exceed its limit.

        A refused request is still counted (venues count rejected requests too).
        """
        now = self.now()
        used: dict[str, int] = {}
        broken: Rule | None = None
        retry = 0.0
        for rule, key, cost in charges:
            period = self._period(rule)
            slot = int(now // period)
            k = (venue, ip, f"{rule.name}:{key}", slot)
            self._counts[k] += cost
            used[rule.name] = self._counts[k]
            if self._counts[k] > rule.limit and broken is None:
                broken = rule
                retry = (slot + 1) * period - now
        if broken is not None:
            self._over[(venue, ip)] = now + retry
        return Verdict(broken is None, used, broken, retry)

    def over_limit(self, venue: str, ip: str) -> bool:
        """True while the IP is still inside a window it already overran."""
        return self._over.get((venue, ip), 0.0) > self.now()

    def ban(self, venue: str, ip: str, base_s: float, max_s: float) -> float:
        """Ban the IP; repeat offenders get doubling bans (Binance: 2 min .. 3 days)."""
        level = self._ban_level[(venue, ip)]
        self._ban_level[(venue, ip)] = level + 1
        seconds = min(base_s * 2.0**level, max_s) / self.scale
        self._bans[(venue, ip)] = self.now() + seconds
        self.stats[venue].bans += 1
        return seconds

    def banned_for(self, venue: str, ip: str) -> float:
        """Seconds left on a ban (0 when not banned)."""
        return max(0.0, self._bans.get((venue, ip), 0.0) - self.now())

    def report(self) -> dict[str, Any]:
        return {"scale": self.scale, "venues": {v: s.as_dict() for v, s in self.stats.items()}}

    def reset(self) -> None:
        self._counts.clear()
        self._bans.clear()
        self._ban_level.clear()
        self._over.clear()
        self.stats.clear()
