"""`oiradar watch --decide-only`: the engine, the alerts and (with `--serve`) the dashboard,
fed from the store the collectors write, with one decider alerting at a time.

It sleeps in `Store.wait_changed` (PostgreSQL: LISTEN, woken by the NOTIFY of a collector's
commit; SQLite: a polled version) and on each wake steps every venue's feed (`fed`) up to
what its collectors say they stored, then checks running bars for bursts. Every decider
computes every alert; only the holder of the `decider` lease (`services.lease`) sends them.
A stand-by keeps what it computed for the last `HELD_S`: on taking the lease over it reads
the alert log (the truth of what was sent), lets the gate remember those, and sends the
held alerts the log lacks (the leader died before sending them), each once. A leader that
stops cleanly releases the lease; one that dies is replaced within ttl + a renewal (< 20 s).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import Sequence
from typing import Any

from oiradar.clock import WallClock
from oiradar.errors import StoreError
from oiradar.memory import keep_trimmed
from oiradar.records import LiquidationFeed
from oiradar.services.alerts import Alert, AlertKind, Gate, Sink
from oiradar.services.lease import Lease
from oiradar.services.watch.daemon import TRACKS_EVERY_S, Watch, WatchRequest
from oiradar.services.watch.fed import StoreFeed
from oiradar.services.watch.workers import LEASE, Role, VenueView, heartbeat, venue_views, worker_id
from oiradar.signals.regimes import Regime
from oiradar.store import Store, WatchState
from oiradar.store.aio import AsyncStore
from oiradar.units import iso

log = logging.getLogger(__name__)
WAKE_S = 1.0  # the longest sleep between two looks at the store (heartbeats, stop)
HELD_S = 120.0  # wall seconds a stand-by keeps the alerts it computed


class DecideOnly(Watch):
    def __init__(
        self,
        req: WatchRequest,
        store: Store,
        sinks: Sequence[Sink],
        gate: Gate,
        *,
        dispatcher_kw: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(req, store, [], [], sinks, gate, dispatcher_kw=dispatcher_kw)
        self.feeds: dict[str, StoreFeed] = {}
        self.views: dict[str, VenueView] = {}
        self.worker = worker_id()
        lease_store = AsyncStore(self.store, name="oiradar-lease")
        self.lease = Lease(lease_store, LEASE, self.worker, ttl_ms=req.lease_ttl_ms)
        self.leading = False
        self.held: collections.deque[tuple[float, Alert]] = collections.deque(maxlen=10_000)
        self.waits = AsyncStore(self.store, name="oiradar-waiter")

    # -- alerts: only the lease holder sends -------------------------------------------------

    def _emit(self, alert: Alert) -> None:
        if self.leading and self.lease.valid:
            super()._emit(alert)
            return
        self.log.produced += 1
        now = time.monotonic()
        while self.held and self.held[0][0] < now - HELD_S:
            self.held.popleft()
        self.held.append((now, alert))

    async def _take_over(self) -> None:
        """The alert log says what the previous leader sent; the rest of what this one
        computed meanwhile goes out now."""
        logged = [a.alert for a in await self.reads.run(lambda s: s.alerts(limit=1000))]
        newest = {str(a.get("symbol")): a for a in logged}  # in the order sent
        for symbol, a in newest.items():
            if a.get("kind") == AlertKind.EXHAUSTION.value:
                continue  # its episode is over: the gate forgets it, as when it was sent
            with contextlib.suppress(KeyError, ValueError, TypeError):
                self.gate.remember(symbol, Regime[str(a["regime"])], int(a["ts_ms"]))
        self.leading = True
        held, self.held = list(self.held), collections.deque(maxlen=self.held.maxlen)
        sent = 0
        for _, alert in held:
            if not _logged(alert, logged, self.req.bar_ms):
                self.log.produced -= 1  # counted when held
                super()._emit(alert)
                sent += 1
        log.info("event=lease_taken worker=%s logged=%d sent_held=%d", self.worker,
                 len(logged), sent)  # fmt: skip
        await self.publish()

    async def _lease_loop(self) -> None:
        while True:
            granted = await self.lease.renew()
            # Held alerts while leading: a renewal was late and the lease ran out meanwhile.
            if granted and (not self.leading or self.held):
                try:
                    await self._take_over()
                except StoreError as exc:  # the log unread: not leading yet, next round
                    self.leading = False
                    log.warning("event=take_over_failed error=%s", exc)
            elif not granted and self.leading:
                self.leading = False
                log.warning("event=lease_lost worker=%s", self.worker)
            await asyncio.sleep(self.lease.renew_s)

    # -- the store feeds the engine ----------------------------------------------------------

    async def _tick(self) -> None:
        beats = await self.reads.run(lambda s: s.workers())
        self.views = venue_views(beats, WallClock().now_ms())
        p, settle = self.req.params, self.req.settle_ms
        lookback = max(p.context_lookback_ms, p.adaptive_lookback_ms if p.adaptive else 0)
        views = {v: view for v, view in self.views.items()
                 if not self.req.venues or v in self.req.venues}  # fmt: skip
        bursts = []
        for venue, view in views.items():
            feed = self.feeds.get(venue)
            if feed is None:
                feed = StoreFeed(venue, self.reads, self.decider, p, self.req.bar_ms)
                self.feeds[venue] = feed
            feed.feed = LiquidationFeed(view.feed)
            feed.funding.update(view.funding)
            self.decider.feeds[venue] = feed.feed
            bursts += [(b.ts_ms, sym, b) for sym, b in await feed.read_orders(settle)]
        for _, sym, burst in sorted(bursts, key=lambda x: x[0]):  # as they came, venues mixed
            self.decider.on_burst(sym, burst)
        for venue, view in views.items():
            wanted = self.req.symbols
            marks = {s: m for s, m in view.marks.items() if wanted is None or s in wanted}
            firsts = view.firsts
            await self.feeds[venue].advance(marks, firsts, lookback + p.window_ms, settle)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set; a leader releases its lease on the way out."""
        await self._resume()
        self.dispatcher.start()
        tasks = [
            asyncio.create_task(self.ingest.run()),
            asyncio.create_task(self._status_loop()),
            asyncio.create_task(self._lease_loop()),
            asyncio.create_task(self._tracks_loop()),
            asyncio.create_task(keep_trimmed()),
            asyncio.create_task(self.loop_lag.watch()),
        ]
        self.state = "running"
        version = -1
        try:
            while not stop.is_set():
                try:
                    version = await self.waits.run(
                        functools.partial(_wait, version=version, timeout_s=WAKE_S)
                    )
                    await self._tick()
                except StoreError as exc:  # a database restarting: the pool reconnects
                    log.warning("event=store_read_failed error=%s", exc)
                    await asyncio.sleep(WAKE_S)
        finally:
            self.state = "stopping"
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._drain_alerts()
            await self.dispatcher.close(timeout_s=5.0)
            self.state = "stopped"
            await self.publish()
            if self.leading:
                await self.lease.release()
            await self.ingest.close()
            self.waits.close()
            self.lease.store.close()
            self.reads.close()

    async def _tracks_loop(self) -> None:
        while True:
            watched = [(f.venue, s, (f.last_bar_ms or 0) + self.req.bar_ms)
                       for f in self.feeds.values() for s in f.symbols]  # fmt: skip
            try:
                await self.history.run(functools.partial(self.tracks.refresh_due, watched=watched))
            except Exception as exc:  # a garnish, as in Watch._with_history
                log.warning("event=tracks_failed error=%s", exc)
            await asyncio.sleep(TRACKS_EVERY_S)

    # -- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        status = super().status()
        venues = []
        for venue, feed in sorted(self.feeds.items()):
            view = self.views.get(venue) or VenueView()
            stale = bool(view.stale) and not view.marks
            line = {
                **view.line,
                "venue": venue,
                "collectors": view.collectors,
                "stale_symbols": sorted(view.stale),
                "decided_bars": feed.bars_stepped,
            }
            if feed.last_bar_ms is not None:
                line["last_bar"] = iso(feed.last_bar_ms)
            venues.append({**line, "stream": "stale", "stale": True} if stale else line)
        return {**status, "role": Role.DECIDE.value, "leading": self.leading, "venues": venues}

    async def publish(self) -> None:
        """A heartbeat always; the watch state (status, episodes) only from the leader."""
        beat = heartbeat(Role.DECIDE, WallClock().now_ms(), {"leading": self.leading,
                         "state": self.state})  # fmt: skip
        state: WatchState | None = self.watch_state() if self.leading else None

        def write(s: Store) -> None:
            s.beat(beat)
            if state is not None:
                s.put_watch_state(state)

        try:
            await self.ingest.write(write)
        except StoreError as exc:
            log.warning("event=status_write_failed error=%s", exc)


def _wait(store: Store, version: int, timeout_s: float) -> int:
    return store.wait_changed(version, timeout_s)


def _logged(alert: Alert, logged: list[dict[str, Any]], bar_ms: int) -> bool:
    """Whether the log holds this transition already: the same symbol and kind within a bar
    (a burst's time is the order that tipped it, which two deciders may see apart)."""
    return any(
        a.get("symbol") == alert.symbol
        and a.get("kind") == alert.kind.value
        and abs(int(a.get("ts_ms", 0)) - alert.ts_ms) <= bar_ms
        for a in logged
    )
