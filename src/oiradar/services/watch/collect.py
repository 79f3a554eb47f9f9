"""`oiradar watch --collect-only`: the venues' streams, polls and gap fills into the shared
store, and nothing else: no alerts, no published watch state (that is the decider's). A
collector restarted after a long stop first fills its venue's gap from REST (from each
symbol's newest stored bar), so the store ends as one uninterrupted process would leave it
(liquidations excepted: no venue serves their history; those bars read as unknown).

Each collector is the plain daemon (`Watch`: `VenueWatch` per venue, the same bar closes,
REST gap fills and warm-up backfill after a restart) with its alerts dropped and its status
published as a heartbeat row (`workers`): every `BEAT_EVERY_S`, and as soon as a venue
closed a bar, after the flush that stored it, so the mark a decider steps to is always in
the store. Each flush that changed market data wakes the deciders (`Store.wait_changed`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from oiradar.errors import StoreError, VenueError
from oiradar.kinds import Kind
from oiradar.services.alerts import Alert
from oiradar.services.watch.daemon import Watch
from oiradar.services.watch.venue import VenueWatch
from oiradar.services.watch.workers import BEAT_EVERY_S, Role, heartbeat
from oiradar.store import Store
from oiradar.units import DAY_MS, iso
from oiradar.venues.base import VenueClient
from oiradar.venues.stream import VenueStream

log = logging.getLogger(__name__)
MARK_TICK_S = 0.05  # how often a close (a venue's newer mark) is looked for
CATCH_UP_MS = 7 * DAY_MS  # the longest gap a restarted collector fills before streaming


class Collector(Watch):
    _stored: dict[str, int | None]
    _firsts: dict[str, int]
    _refilled = 0  # rows dropped over the ingest's bound that a catch-up has refetched
    _last_write_ms: int | None = None

    def _emit(self, alert: Alert) -> None:
        """A collector raises no alerts: the decider, reading the store, does."""

    async def _start_venue(self, client: VenueClient, stream: VenueStream) -> VenueWatch | None:
        """A collector back after a stop longer than the warm-up fills its gap first: from
        each symbol's newest stored bar (at most CATCH_UP_MS back), as REST still serves it."""
        vw = await super()._start_venue(client, stream)
        if vw is not None:
            await self._catch_up(vw)
        return vw

    async def _catch_up(self, vw: VenueWatch, since_ms: int | None = None) -> None:
        """Every bar the store lacks from each symbol's newest stored one (or `since_ms`:
        where rows were dropped) up to the last closed one."""
        now, bar = vw.now_ms(), self.req.bar_ms
        last_closed = now - now % bar - bar

        def newest(store: Store) -> dict[str, int | None]:
            return {s: store.last_ts(Kind.CANDLES, vw.venue, s, None, None) for s in vw.symbols}

        firsts = {
            sym: max(last + bar if since_ms is None else since_ms - since_ms % bar,
                     last_closed - CATCH_UP_MS)
            for sym, last in (await self.reads.run(newest)).items()
            if last is not None and (last < last_closed or since_ms is not None)
        }  # fmt: skip
        if firsts:
            try:
                await vw.gaps.fill(firsts, last_closed, vw._each)
            except VenueError as exc:
                log.warning("venue=%s event=catch_up_failed error=%s", vw.venue, exc)
            filled = vw.gaps.take_filled()
            log.info("venue=%s event=caught_up bars=%d", vw.venue, len(filled))

    async def _resume(self) -> None:
        self._stored, self._firsts = {}, {}

    async def _tracks_loop(self) -> None:
        return  # track records are the decider's garnish

    def _marks(self) -> dict[str, int | None]:
        return {v.venue: v.status.last_bar_ms for v in self.venues}

    async def publish(self) -> None:
        """Flush, then beat with the marks taken before the flush: a mark is only sent once
        every row of its bar is stored (a failed flush keeps the previous marks)."""
        marks = self._marks()
        failures = self.ingest.stats.failures
        await self.ingest.flush_async()
        if self.ingest.stats.failures == failures:
            if self.ingest.stats.dropped > self._refilled:  # the store was down too long
                self._refilled = self.ingest.stats.dropped
                for vw in self.venues:
                    await self._catch_up(vw, self.ingest.stats.dropped_from_ms)
                await self.ingest.flush_async()
            self._stored = marks
            for venue, mark in marks.items():
                if mark is not None:  # the first close after the warm-up: one bar on
                    self._firsts.setdefault(venue, mark - self.req.bar_ms)
            self._last_write_ms = int(time.time() * 1000)
        beat = heartbeat(Role.COLLECT, int(time.time() * 1000), self.detail())
        try:
            await self.ingest.write(lambda s: s.beat(beat))
        except StoreError as exc:
            log.warning("event=heartbeat_failed error=%s", exc)

    def detail(self) -> dict[str, Any]:
        venues = {}
        for v in self.venues:
            venues[v.venue] = {
                "symbols": list(v.symbols),
                "last_bar_ms": self._stored.get(v.venue),
                "first_bar_ms": self._firsts.get(v.venue),
                "feed": v.feed.value,
                "funding": {s: list(f) for s, f in v.funding.items() if s in v.running},
                "line": v.describe(),
            }
        store = self.status()["store"]
        last = self._last_write_ms
        return {
            "state": self.state,
            "venues": venues,
            "last_write": iso(last) if last else None,
            "rows_written": store["rows_written"],
            "pending": store["pending"],
        }

    async def _status_loop(self) -> None:
        """A beat every BEAT_EVERY_S, and one as soon as any venue closed a bar."""
        sent: dict[str, int | None] = {}
        due = 0.0
        while True:
            if self._marks() != sent or time.monotonic() >= due:
                sent = self._marks()
                await self.publish()
                due = time.monotonic() + BEAT_EVERY_S
            await asyncio.sleep(MARK_TICK_S)
