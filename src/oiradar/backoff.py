"""The one retry rule of every loop that talks to a server: venue HTTP, archive downloads,
WebSocket reconnects and alert sinks.

Exponential backoff with full jitter (a random wait up to `base_s * 2**attempt`, capped at
`max_s`) so that many clients failing together do not come back together, and a server's
`Retry-After` as a floor: never sooner than it asked. `Retry-After` is delta-seconds or an
HTTP date (RFC 9110 §10.2.3); a date is read against the response's own `Date` header when
there is one, so the two clocks never mix.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from oiradar.clock import Clock, WallClock

MAX_RETRY_AFTER_S = 3600.0  # an hour: more is a misconfigured server, not a plan


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float
    max_s: float = 60.0

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait after failed try number `attempt` (0 = the first)."""
        ceiling = min(self.max_s, self.base_s * 2 ** min(attempt, 62))
        wait = random.uniform(0, ceiling)
        return wait if retry_after_s is None else max(wait, retry_after_s)


def retry_after_s(headers: Mapping[str, str], clock: Clock | None = None) -> float | None:
    """A response's `Retry-After` in seconds (0 .. an hour); None when absent or unreadable."""
    raw = headers.get("Retry-After", "").strip()
    if not raw:
        return None
    if raw.isascii() and raw.isdigit():
        return min(float(raw), MAX_RETRY_AFTER_S)
    try:
        until_ms = parsedate_to_datetime(raw).timestamp() * 1000
        date = headers.get("Date")
        now_ms = (
            parsedate_to_datetime(date).timestamp() * 1000
            if date
            else (clock or WallClock()).now_ms()
        )
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(max(0.0, (until_ms - now_ms) / 1000), MAX_RETRY_AFTER_S)
