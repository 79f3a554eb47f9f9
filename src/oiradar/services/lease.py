"""One holder at a time of a named lease in the store: the decider that may alert.

`renew` takes or renews the lease in one conditional upsert (`Store.take_lease`); the
holder renews every fifth of the `ttl_ms` (<= 20 s), so a holder that dies (kill -9, a
host gone) lets another take it at most `ttl_ms + renew_s` later. `valid` is the holder's
own view: true until 85 % of the ttl after it asked for its last granted renewal, so it
stops alerting before anyone else may start, even when a renewal hangs on the network.
"""

from __future__ import annotations

import logging
import time

from oiradar.clock import Clock, WallClock
from oiradar.errors import StoreError
from oiradar.store.aio import AsyncStore

log = logging.getLogger(__name__)
TTL_MS = 15_000
MAX_TTL_MS = 20_000  # a dead leader's alerts wait at most this (+ a renewal) for a stand-by
MARGIN = 0.15  # the holder stops this share of the ttl before the store lets another in


class Lease:
    def __init__(
        self,
        store: AsyncStore,
        name: str,
        holder: str,
        *,
        ttl_ms: int = TTL_MS,
        clock: Clock | None = None,
    ) -> None:
        self.store, self.name, self.holder, self.ttl_ms = store, name, holder, ttl_ms
        if not 0 < ttl_ms <= MAX_TTL_MS:
            raise ValueError(f"lease ttl {ttl_ms} ms: want 1..{MAX_TTL_MS}")
        self.clock = clock or WallClock()
        self.renew_s = ttl_ms / 5000  # four renewals may fail before the lease runs out
        self._until = 0.0  # monotonic time the holder's own view of the lease ends

    @property
    def valid(self) -> bool:
        return time.monotonic() < self._until

    async def renew(self) -> bool:
        """Take or renew it; False if another holds it (or the store cannot be reached)."""
        asked = time.monotonic()
        now, ttl = self.clock.now_ms(), self.ttl_ms
        try:
            granted = await self.store.run(lambda s: s.take_lease(self.name, self.holder, now, ttl))
        except StoreError as exc:
            log.warning("event=lease_failed lease=%s error=%s", self.name, exc)
            granted = False
        self._until = asked + ttl / 1000 * (1 - MARGIN) if granted else 0.0
        return granted

    async def release(self) -> None:
        """At a clean stop: another may take it at once."""
        self._until = 0.0
        try:
            await self.store.run(lambda s: s.release_lease(self.name, self.holder))
        except StoreError as exc:
            log.warning("event=lease_release_failed lease=%s error=%s", self.name, exc)
