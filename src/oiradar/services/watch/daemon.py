"""`oiradar watch`: the venues, the store writer, the decider and the alert sinks as one
asyncio program, with a status file for `oiradar status` and a clean stop.

Stopping (SIGINT/SIGTERM, or the `stop` event) cancels the venue tasks, writes every record
still in memory (and the liquidation-feed coverage) in a last transaction, gives the alert
sinks a few seconds to drain, and marks the status file stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from oiradar.errors import UserError, VenueError
from oiradar.services.alerts import Alert, Delivery, Dispatcher, Gate, Sink
from oiradar.services.history import TrackBook
from oiradar.services.watch.decide import Decider, Phase
from oiradar.services.watch.ingest import Ingest
from oiradar.services.watch.venue import VenueWatch
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import Regime
from oiradar.store import Store
from oiradar.units import MINUTE_MS, iso
from oiradar.venues.base import VenueClient
from oiradar.venues.stream import VenueStream

log = logging.getLogger(__name__)
STATUS_EVERY_S = 2.0
TRACKS_EVERY_S = 60.0  # how often due track records are looked for (wall time)


@dataclass(frozen=True, slots=True)
class WatchRequest:
    venues: tuple[str, ...]
    symbols: tuple[str, ...] | None = None  # None: --top (per venue) or --all
    top: int | None = 30
    params: EngineParams = field(default_factory=EngineParams)
    bar_ms: int = 5 * MINUTE_MS
    settle_ms: int = 2_000  # venue ms after a close before the bar is evaluated
    flush_s: float = 1.0


def status_path(store_path: Path) -> Path:
    """Where the daemon writing `store_path` publishes its status (next to the store)."""
    return store_path.with_name(store_path.name + ".watch.json")


def alerts_path(store_path: Path) -> Path:
    """Every alert sent, one JSON object per line (the dashboard's alert feed reads it)."""
    return store_path.with_name(store_path.name + ".alerts.jsonl")


def read_status(store_path: Path) -> dict[str, Any]:
    path = status_path(store_path)
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(
            f"no watch status next to {store_path}: is `oiradar watch` running on this store?"
        ) from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    return data


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
        feeds = {s.name: s.liquidations for s in self.streams}
        self.decider = Decider(req.params, req.bar_ms, feeds, self._emit)
        self._publishing: dict[str, asyncio.Task[None]] = {}  # the newest alert per symbol
        self._history_pool: ThreadPoolExecutor | None = None
        self._history_local = threading.local()
        self._history_stores: list[Store] = []
        self.tracks = TrackBook(req.params)  # precomputed: alerts never run the study
        self.venues: list[VenueWatch] = []
        self.started_wall = time.time()
        self.state = "starting"
        self._resume()

    def _resume(self) -> None:
        """Episodes a previous run announced stay announced (no NEW again after a restart),
        unless older than the cooldown."""
        try:
            previous = json.loads(status_path(self.store.path).read_text())
            episodes = previous["alerts"]["episodes"]
            items = [(str(k), Phase(v["phase"]), int(v["started_ms"])) for k, v in episodes.items()]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return
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
        task = asyncio.get_running_loop().create_task(self._publish(alert, before))
        self._publishing[alert.symbol] = task
        task.add_done_callback(functools.partial(self._published, alert.symbol))

    def _published(self, symbol: str, task: asyncio.Task[None]) -> None:
        if self._publishing.get(symbol) is task:
            del self._publishing[symbol]

    def _history_thread(self) -> ThreadPoolExecutor:
        if self._history_pool is None:
            self._history_pool = ThreadPoolExecutor(2, thread_name_prefix="oiradar-history")
        return self._history_pool

    async def _publish(self, alert: Alert, before: asyncio.Task[None] | None) -> None:
        loop = asyncio.get_running_loop()
        alert = await loop.run_in_executor(self._history_thread(), self._with_history, alert)
        if before is not None:
            await asyncio.wait([before])
        self.log.last = [*self.log.last[-19:], alert.to_dict()]
        log.info(
            "event=alert kind=%s symbol=%s regime=%s drivers=%s",
            alert.kind.value,
            alert.symbol,
            alert.regime,
            ",".join(alert.drivers),
        )
        if self.on_alert is not None:
            self.on_alert(alert)
        self.dispatcher.submit(alert)
        try:
            with alerts_path(self.store.path).open("a", encoding="utf-8") as f:
                f.write(json.dumps(alert.to_dict(), separators=(",", ":")) + "\n")
        except OSError as exc:
            log.warning("event=alert_log_failed error=%s", exc)

    def _history_store(self) -> Store:
        """The worker thread's own read-only connection."""
        store: Store | None = getattr(self._history_local, "store", None)
        if store is None:
            store = self._history_local.store = Store(self.store.path, readonly=True)
            self._history_stores.append(store)
        return store

    def _with_history(self, alert: Alert) -> Alert:
        """The symbol's own record for this regime (the driving venue's stored history), as
        the track book holds it; on a worker thread."""
        venue = alert.drivers[0] if alert.drivers else (self.req.venues or ("binance",))[0]
        try:
            store = self._history_store()
            track = self.tracks.read(store, venue, alert.symbol, alert.regime, alert.ts_ms)
        except Exception as exc:  # the record is a garnish: the alert goes out regardless
            log.warning("event=history_failed symbol=%s error=%s", alert.symbol, exc)
            return alert
        return replace(alert, history=track.text(alert.symbol)) if track else alert

    async def _tracks_loop(self) -> None:
        """Keeps the watched symbols' track records fresh, off the loop and the alert path."""
        loop = asyncio.get_running_loop()
        while True:
            watched = [(v.venue, s, v.now_ms()) for v in self.venues for s in v.symbols]
            try:
                await loop.run_in_executor(self._history_thread(), self._refresh_tracks, watched)
            except Exception as exc:  # a garnish, as in _with_history
                log.warning("event=tracks_failed error=%s", exc)
            await asyncio.sleep(TRACKS_EVERY_S)

    def _refresh_tracks(self, watched: list[tuple[str, str, int]]) -> None:
        self.tracks.refresh_due(self._history_store(), watched)

    async def _drain_alerts(self) -> None:
        """Alerts still being published go out before the sinks close."""
        while self._publishing:
            await asyncio.gather(*self._publishing.values(), return_exceptions=True)
        if self._history_pool is not None:
            self._history_pool.shutdown(wait=True)
            self._history_pool = None
        self._history_local = threading.local()
        for store in self._history_stores:
            store.close()
        self._history_stores.clear()

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
                self.store,
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
        status_task = asyncio.create_task(self._status_loop())
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
            await stop.wait()
        finally:
            self.state = "stopping"
            for t in [*tasks, ingest_task]:
                t.cancel()
            await asyncio.gather(*tasks, ingest_task, return_exceptions=True)
            for v in self.venues:
                v._record_coverage()
            await self.ingest.close()
            rows = self.ingest.pending
            self.ingest.flush()
            log.info("event=stopped flushed_rows=%d", rows)
            await self._drain_alerts()
            await self.dispatcher.close(timeout_s=5.0)
            status_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await status_task
            self.state = "stopped"
            self.write_status()

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
            # The dashboard reads the store with the same engine settings.
            "engine": {
                "windows_ms": list(p.windows_ms),
                "oi_threshold_pct": p.oi_threshold_pct,
                "price_threshold_pct": p.price_threshold_pct,
                "oi_taper": p.oi_taper,
                "price_taper": p.price_taper,
                "evidence": [e.value for e in p.evidence],
                "adaptive": p.adaptive,
                "min_history_ms": p.min_history_ms,
            },
            "started": iso(int(self.started_wall * 1000)),
            "updated": iso(int(time.time() * 1000)),
            "venues": [v.describe() for v in self.venues],
            "store": {
                "path": str(self.store.path),
                "rows_written": self.ingest.stats.rows,
                "flushes": self.ingest.stats.flushes,
                "pending": self.ingest.pending,
                "write_failures": self.ingest.stats.failures,
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

    def write_status(self) -> None:
        path = status_path(self.store.path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(self.status(), indent=1))
            tmp.replace(path)
        except OSError as exc:
            log.warning("event=status_write_failed error=%s", exc)

    async def _status_loop(self) -> None:
        while True:
            self.write_status()
            await asyncio.sleep(STATUS_EVERY_S)
