"""`oiradar watch`: the venues, the store writer, the decider and the alert sinks as one
asyncio program, publishing its state in the store (for `oiradar status`, the dashboard and
a restart) and stopping cleanly.

Stopping (the `stop` event; `services.watch.run` sets it on SIGINT/SIGTERM) cancels the
venue tasks, writes every record still in memory (and the liquidation-feed coverage) in a
last transaction, gives the alert sinks a few seconds to drain, and publishes the state
stopped. Every store call runs off the event loop: writes on the ingest's writer thread,
reads on a reader thread, track records on two history threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from oiradar.errors import StoreError, VenueError
from oiradar.lifecycle import cancel_and_wait
from oiradar.memory import keep_trimmed
from oiradar.services.alerts import Alert, Delivery, Dispatcher, Gate, Sink
from oiradar.services.history import TrackBook
from oiradar.services.retention import PruneRequest, keep_bounded
from oiradar.services.watch.decide import Decider, Phase
from oiradar.services.watch.ingest import Ingest
from oiradar.services.watch.lag import LoopLag
from oiradar.services.watch.state import engine_settings, rss_bytes
from oiradar.services.watch.venue import VenueWatch
from oiradar.services.watch.workers import Role
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import Regime
from oiradar.store import Episode, Store, WatchState
from oiradar.store.aio import AsyncStore, Batches
from oiradar.units import MINUTE_MS, iso
from oiradar.venues.base import VenueClient
from oiradar.venues.stream import VenueStream

log = logging.getLogger(__name__)
LoggedAlert = tuple[dict[str, Any], WatchState | None]  # as sent; the state: `_with_state`
STATUS_EVERY_S = 2.0
TRACKS_EVERY_S = 60.0  # how often due track records are looked for (wall time)


@dataclass(frozen=True, slots=True)
class WatchRequest:
    venues: tuple[str, ...]
    symbols: tuple[str, ...] | None = None  # None: --top (per venue) or --all
    top: int | None = 30
    params: EngineParams = field(default_factory=EngineParams)
    bar_ms: int = 5 * MINUTE_MS
    settle_ms: int = 1_000  # venue ms after a close before the bar is evaluated
    flush_s: float = 1.0
    endpoint: str | None = None  # every venue's requests go here (a simulator); None: the venues
    limit_scale: float = 1.0  # divide every rate-limit window by this (a simulator at N x)
    retain_ms: int | None = None  # raw OI/orders older than this become per-bar (retention)
    role: Role = Role.ALL  # or a collector / decider of a split deployment (docs/scaling.md)
    lease_ttl_ms: int = 15_000  # a decider's lease (services.lease); renewed every fifth


@dataclass(frozen=True, slots=True)
class Publishing:
    """A symbol's alert on its way out: the task, and whether its log write is queued."""

    task: asyncio.Task[None]
    queued: asyncio.Future[None]


@dataclass(slots=True)
class AlertLog:
    """Counters for the status line; deliveries per sink."""

    produced: int = 0
    admitted: int = 0
    delivered: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    last: list[dict[str, Any]] = field(default_factory=list)


class Watch:
    def __init__(
        self,
        req: WatchRequest,
        store: Store,
        clients: Sequence[VenueClient],
        streams: Sequence[VenueStream],
        sinks: Sequence[Sink],
        gate: Gate,
        *,
        dispatcher_kw: dict[str, Any] | None = None,
        on_alert: Callable[[Alert], None] | None = None,
    ) -> None:
        self.req, self.store = req, store
        self.clients, self.streams = list(clients), list(streams)
        self.gate = gate
        self.log = AlertLog()
        self.on_alert = on_alert
        self.dispatcher = Dispatcher(sinks, on_delivery=self._delivered, **(dispatcher_kw or {}))
        self.ingest = Ingest(store, req.flush_s)
        self.reads = AsyncStore(store, name="oiradar-reader")
        self.history = AsyncStore(store, threads=2, name="oiradar-history")
        feeds = {s.name: s.liquidations for s in self.streams}
        self.decider = Decider(req.params, req.bar_ms, feeds, self._emit)
        self._publishing: dict[str, Publishing] = {}  # the newest alert per symbol
        self.tracks = TrackBook(req.params)  # precomputed: alerts never run the study
        self._alert_log = Batches(self.ingest.write, self._record_alerts, self._with_state)
        self.loop_lag = LoopLag()
        self.venues: list[VenueWatch] = []
        self.started_wall = time.time()
        self.state = "starting"

    async def _resume(self) -> None:
        """Episodes a previous run announced stay announced (no NEW again after a restart),
        unless older than the cooldown."""
        previous = await self.reads.run(lambda s: s.watch_state())
        items = []
        for e in previous.episodes if previous is not None else ():
            with contextlib.suppress(ValueError):
                items.append((e.symbol, Phase(e.phase), e.started_ms))
        regime = {Phase.COVERING: Regime.SHORT_COVERING, Phase.SQUEEZE: Regime.SHORT_SQUEEZE}
        for symbol, phase, started in items:
            if phase in regime:
                self.decider.resume(symbol, phase, started)
                self.gate.remember(symbol, regime[phase], started)
        if items:
            log.info("event=resumed episodes=%d", len(items))

    # -- alerts ----------------------------------------------------------------------------

    def _emit(self, alert: Alert) -> None:
        """The decider's callback (on the loop). The alert goes out from a task once its
        symbol's 30-day record is read on a worker thread — tens of milliseconds over a month
        of bars, which on the loop would hold every liquidation waiting behind it, dozens of
        times over when many symbols alert at one bar close. Per symbol, alerts keep their
        order."""
        self.log.produced += 1
        if not self.gate.admit(alert):
            return
        self.log.admitted += 1
        before = self._publishing.get(alert.symbol)
        loop = asyncio.get_running_loop()
        queued: asyncio.Future[None] = loop.create_future()
        task = loop.create_task(self._publish(alert, before, time.time(), queued))
        self._publishing[alert.symbol] = Publishing(task, queued)
        task.add_done_callback(functools.partial(self._published, alert.symbol))

    def _published(self, symbol: str, task: asyncio.Task[None]) -> None:
        got = self._publishing.get(symbol)
        if got is not None and got.task is task:
            del self._publishing[symbol]

    async def _publish(
        self, alert: Alert, before: Publishing | None, made: float, queued: asyncio.Future[None]
    ) -> None:
        """Its record, the alert log and the episode stored, then the sinks. The symbol's
        alert before it is written ahead of it (the log's queue is in order) and sent ahead
        of it; the two writes share a transaction when they can. An escalation made right
        after its episode's NEW used to wait for the NEW's whole publication (its write and
        its dispatch) before queueing its own write: up to 119 ms of a burst escalation in
        bench/watch.py. The log line carries the wall times of each step (decided, record
        read, stored) for `bench/watch.py`."""
        try:
            venue = self._driver(alert)
            track = self.tracks.cached(venue, alert.symbol, alert.regime, alert.ts_ms)
            if track is not None:  # known on the loop: no queue on the history threads
                alert = replace(alert, history=track.text(alert.symbol))
            else:
                alert = await self.history.run(functools.partial(self._with_history, alert=alert))
            if before is not None:
                await asyncio.wait([before.queued])
            read = time.time()
            self.log.last = [*self.log.last[-19:], alert.to_dict()]
            written = self._alert_log.submit((alert.to_dict(), None))
        finally:
            if not queued.done():  # whatever happened, the next alert need not wait for it
                queued.set_result(None)
        try:
            await written
        except StoreError as exc:
            log.warning("event=alert_log_failed error=%s", exc)
        if before is not None:
            await asyncio.wait([before.task])
        log.info(
            "event=alert kind=%s symbol=%s regime=%s drivers=%s ts_ms=%d made_wall=%.3f "
            "read_wall=%.3f stored_wall=%.3f",
            alert.kind.value, alert.symbol, alert.regime, ",".join(alert.drivers), alert.ts_ms,
            made, read, time.time(),
        )  # fmt: skip
        # Only once its episode is stored: a crash after the dispatch must not send it again.
        if self.on_alert is not None:
            self.on_alert(alert)
        self.dispatcher.submit(alert)

    def _with_state(self, alerts: list[LoggedAlert]) -> list[LoggedAlert]:
        """The state as the batch leaves (it holds every episode of the batch), on its
        newest alert: built once per batch, not per alert of a bar close's burst."""
        return [*alerts[:-1], (alerts[-1][0], self.watch_state())]

    @staticmethod
    def _record_alerts(store: Store, alerts: list[LoggedAlert]) -> list[None]:
        """The dashboard's alert feed, and the episodes `_resume` will not announce again (the
        newest state holds every one of them): the alerts of a bar close in one transaction,
        so that a burst escalation queues behind one write, not behind each of theirs."""
        for sent, _ in alerts:
            store.append_alert(sent)
        state = alerts[-1][1]
        if state is not None:
            store.put_watch_state(state)
        return [None] * len(alerts)

    def _driver(self, alert: Alert) -> str:
        """The venue whose stored history is the symbol's record."""
        return alert.drivers[0] if alert.drivers else (self.req.venues or ("binance",))[0]

    def _with_history(self, store: Store, alert: Alert) -> Alert:
        """The symbol's own record for this regime (the driving venue's stored history), as
        the track book holds it; on a history thread."""
        venue = self._driver(alert)
        try:
            track = self.tracks.read(store, venue, alert.symbol, alert.regime, alert.ts_ms)
        except Exception as exc:  # the record is a garnish: the alert goes out regardless
            log.warning("event=history_failed symbol=%s error=%s", alert.symbol, exc)
            return alert
        return replace(alert, history=track.text(alert.symbol)) if track else alert

    async def _tracks_loop(self) -> None:
        """Keeps the watched symbols' track records fresh, off the loop and the alert path."""
        while True:
            watched = [(v.venue, s, v.now_ms()) for v in self.venues for s in v.symbols]
            try:
                await self.history.run(functools.partial(self.tracks.refresh_due, watched=watched))
            except Exception as exc:  # a garnish, as in _with_history
                log.warning("event=tracks_failed error=%s", exc)
            await asyncio.sleep(TRACKS_EVERY_S)

    async def _drain_alerts(self) -> None:
        """Alerts still being published go out before the sinks close."""
        while self._publishing:
            tasks = [p.task for p in self._publishing.values()]
            await asyncio.gather(*tasks, return_exceptions=True)
        self.history.close()

    def _delivered(self, d: Delivery) -> None:
        book = self.log.delivered if d.ok else self.log.failed
        book[d.sink] = book.get(d.sink, 0) + 1

    # -- running ---------------------------------------------------------------------------

    async def _universe(self, client: VenueClient) -> list[str]:
        req = self.req
        if req.symbols is not None:
            return list(req.symbols)
        snaps = await client.snapshot(None)
        ranked = sorted(snaps, key=lambda s: -(s.quote_volume_24h or 0.0))
        chosen = ranked if req.top is None else ranked[: req.top]
        return [s.symbol for s in chosen]

    async def _start_venue(self, client: VenueClient, stream: VenueStream) -> VenueWatch | None:
        p = self.req.params
        try:
            symbols = await self._universe(client)
            vw = VenueWatch(
                client,
                stream,
                symbols,
                self.reads,
                self.ingest,
                self.decider,
                p,
                bar_ms=self.req.bar_ms,
                settle_ms=self.req.settle_ms,
            )
            await vw.listing()
        except VenueError as exc:
            log.error("venue=%s event=start_failed error=%s", client.name, exc)  # noqa: TRY400
            return None
        return vw

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set; then flush and return."""
        await self._resume()  # before the first publish replaces the episodes stored
        status_task = asyncio.create_task(self._status_loop())
        lag_task = asyncio.create_task(self.loop_lag.watch())
        ingest_task = asyncio.create_task(self.ingest.run())
        self.dispatcher.start()
        tasks: list[asyncio.Task[None]] = []
        try:
            started = await asyncio.gather(
                *(self._start_venue(c, s) for c, s in zip(self.clients, self.streams, strict=True))
            )
            self.venues = [v for v in started if v is not None]
            if not self.venues and not stop.is_set():
                raise VenueError(
                    ",".join(self.req.venues), "no venue could be started (see the log above)"
                )
            self.state = "running"
            tasks = [asyncio.create_task(self._guard(v)) for v in self.venues]
            tasks.append(asyncio.create_task(self._tracks_loop()))
            tasks.append(asyncio.create_task(keep_trimmed()))  # RSS flat over months
            if self.req.retain_ms is not None:
                keep = PruneRequest(self.req.retain_ms, self.req.bar_ms)
                tasks.append(asyncio.create_task(keep_bounded(self.ingest.write, keep, self._now)))
            await stop.wait()
        finally:
            self.state = "stopping"
            for t in [*tasks, ingest_task]:
                t.cancel()
            await asyncio.gather(*tasks, ingest_task, return_exceptions=True)
            for v in self.venues:
                v.store_pending()
            rows = self.ingest.pending
            await self.ingest.flush_async()  # everything in memory, in a last transaction
            log.info("event=stopped flushed_rows=%d", rows)
            await self._drain_alerts()
            await self.dispatcher.close(timeout_s=5.0)
            await cancel_and_wait([status_task, lag_task])
            self.state = "stopped"
            await self.publish()
            await self.ingest.close()
            self.reads.close()

    def _now(self) -> int | None:
        """The venues' time (the earliest of them), None before any venue runs."""
        return min((v.now_ms() for v in self.venues), default=None)

    async def _guard(self, vw: VenueWatch) -> None:
        """A venue that fails is logged and restarted; the others keep running."""
        p = self.req.params
        warm = p.min_history_ms + p.window_ms + 2 * self.req.bar_ms
        lookback = max(p.context_lookback_ms, p.adaptive_lookback_ms if p.adaptive else 0)
        while True:
            try:
                await vw.run(warm, lookback + p.window_ms)
            except asyncio.CancelledError:
                raise
            except Exception:  # one venue's bug must not stop the daemon
                log.exception("venue=%s event=crashed", vw.venue)
                await asyncio.sleep(5.0)

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        p = self.req.params
        return {
            "state": self.state,
            "pid": os.getpid(),
            "host": socket.gethostname(),  # a pid means something on this host only
            "rss_bytes": rss_bytes(),
            "loop": self.loop_lag.status(),
            "engine": engine_settings(p),
            "started": iso(int(self.started_wall * 1000)),
            "updated": iso(int(time.time() * 1000)),
            "venues": [v.describe() for v in self.venues],
            "store": {
                "path": self.store.location,
                "rows_written": self.ingest.stats.rows,
                "flushes": self.ingest.stats.flushes,
                "pending": self.ingest.pending,
                "write_failures": self.ingest.stats.failures,
                "write_s": round(self.ingest.stats.flush_s, 4),
                "last_write_s": round(self.ingest.stats.last_flush_s, 4),
            },
            "alerts": {
                "produced": self.log.produced,
                "sent": self.log.admitted,
                "delivered": self.log.delivered,
                "failed": self.log.failed,
                "recent": self.log.last[-5:],
                "episodes": self.decider.open_episodes(),
            },
        }

    def watch_state(self) -> WatchState:
        """The status, the engine settings (the dashboard reads the store with them) and the
        open episodes, as one row."""
        status = self.status()
        episodes = tuple(
            Episode(symbol, str(e["phase"]), cast(int, e["started_ms"]))
            for symbol, e in status["alerts"]["episodes"].items()
        )
        return WatchState(status, status["engine"], episodes)

    async def publish(self) -> None:
        state = self.watch_state()
        try:
            await self.ingest.write(lambda s: s.put_watch_state(state))
        except StoreError as exc:
            log.warning("event=status_write_failed error=%s", exc)

    async def _status_loop(self) -> None:
        while True:
            await self.publish()
            await asyncio.sleep(STATUS_EVERY_S)
