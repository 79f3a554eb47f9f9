"""The dashboard's aiohttp app: a JSON API, a server-sent event stream, one page.

The store is opened read-only and read on one worker thread, so a slow refresh never
stalls a request. Every few seconds the worker checks the store's version (one row) and
recomputes only the markets whose newest bar moved; clients on `/api/stream` get the new
table and every new alert (from the alert log `oiradar watch` keeps in the store) as they
happen. Errors are JSON `{"error": ...}` with a 4xx status; nothing ever returns a
traceback. With a token configured, every request needs it (header, cookie or `?token=`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from oiradar.clock import WallClock
from oiradar.errors import OiradarError
from oiradar.lifecycle import cancel_and_wait
from oiradar.services.dashboard import Board, symbol_chart, symbol_events
from oiradar.services.watch.state import checked
from oiradar.services.watch.workers import with_workers
from oiradar.signals.params import EngineParams
from oiradar.store import Store, location_of
from oiradar.venues.registry import ALL_VENUES
from oiradar.web import params
from oiradar.web.guard import make_guard, security_headers
from oiradar.web.openapi import SPEC
from oiradar.web.payloads import chart_json
from oiradar.web.reader import Reader

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
REFRESH_S = 2.0
HEARTBEAT_S = 15.0
MAX_WINDOWS = 4  # boards kept for different ?window= values
T = TypeVar("T")


@dataclass(slots=True)
class ServeConfig:
    store: str | Path | None  # a path or URL (open_store); None: the default store
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    window_ms: int | None = None  # None: the engine's horizons at once
    refresh_s: float = REFRESH_S
    params: EngineParams | None = None  # None: the running watch's, else the defaults

    def engine(self, store: Store) -> EngineParams:
        """The watch's engine settings (it keeps them in the store), so the page reads as it
        alerts."""
        from oiradar.services.watch import engine_params

        return self.params if self.params is not None else engine_params(store)


@dataclass(slots=True)
class Hub:
    """Live state shared by the handlers: boards per window, alert offsets, listeners."""

    config: ServeConfig
    reader: Reader
    boards: dict[int | None, Board] = field(default_factory=dict)
    listeners: set[asyncio.Queue[tuple[str, Any]]] = field(default_factory=set)
    version: int | None = None
    alerts_seq: int = 0  # the newest alert published

    async def table(self, window_ms: int | None) -> dict[str, Any]:
        b = self.boards.get(window_ms)
        if b is None:
            if len(self.boards) >= MAX_WINDOWS:
                self.boards.pop(next(iter(self.boards)))
            params = await self.reader.run(self.config.engine)
            if window_ms is not None:
                params = replace(params, windows_ms=(window_ms,))
            b = self.boards[window_ms] = Board(params)
            await self.reader.run(b.refresh)
        return b.table()

    async def refresh(self) -> None:
        """Recompute what moved; tell every listener about new tables and new alerts."""
        version = await self.reader.run(lambda s: s.version())
        if version != self.version:
            self.version = version
            for window_ms, b in list(self.boards.items()):
                if await self.reader.run(b.refresh):
                    self.publish("table", window_ms)
        for logged in await self.reader.run(lambda s: s.alerts(after=self.alerts_seq)):
            self.alerts_seq = logged.seq
            self.publish("alert", logged.alert)

    def publish(self, kind: str, payload: Any) -> None:
        for q in list(self.listeners):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait((kind, payload))

    async def loop(self) -> None:
        with contextlib.suppress(OiradarError):  # alerts logged before the page opened
            newest = await self.reader.run(lambda s: s.alerts(limit=1))
            self.alerts_seq = newest[-1].seq if newest else 0
        while True:
            try:
                await self.refresh()
            except OiradarError as exc:
                log.warning("event=refresh_failed error=%s", exc)
            await asyncio.sleep(self.config.refresh_s)


HUB = web.AppKey("hub", Hub)


# -- handlers ----------------------------------------------------------------------------


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(SPEC)


async def markets(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    return web.json_response(await hub.table(params.window(request, hub.config.window_ms)))


async def alerts(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    limit = params.whole(request, "limit", 50, 1, 1000)
    logged = await hub.reader.run(lambda s: s.alerts(limit=limit))
    return web.json_response({"alerts": [a.alert for a in reversed(logged)]})


async def status(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    state, beats = await hub.reader.run(lambda s: (s.watch_state(), s.workers()))
    now = WallClock().now_ms()
    data: dict[str, Any] = {"state": "not running"}
    if state is not None:
        data = checked(state.status, now)
    data = with_workers(data, beats, now)
    # Only what the page shows: no paths, pids or error texts from the daemon.
    keep = ("state", "started", "updated")
    venues = [
        {k: v.get(k) for k in ("venue", "stream", "msg_per_s", "last_bar", "liquidations", "stale")}
        for v in data.get("venues", [])
    ]
    return web.json_response({**{k: data.get(k) for k in keep}, "venues": venues})


async def chart(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    symbol = params.symbol(request)
    venue = params.venue(request, "all")
    start, end = params.time(request, "from"), params.time(request, "to")
    if start is not None and end is not None and start >= end:
        raise params.BadRequest("from must be before to")
    window = params.window(request, hub.config.window_ms)
    data = await hub.reader.run(lambda s: symbol_chart(s, symbol, venue, start, end, window))
    return web.json_response(chart_json(data))


async def events(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    symbol = params.symbol(request)
    venue = params.venue(request, "binance")
    if venue == "all":
        raise params.BadRequest(f"events come from one venue: {', '.join(ALL_VENUES)}")
    days = params.whole(request, "days", 30, 1, 3650)
    window = params.window(request, hub.config.window_ms)
    payload = await hub.reader.run(lambda s: symbol_events(s, symbol, venue, days, window))
    return web.json_response(payload)


async def stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `table` (the whole table, on connect and on change) and `alert`."""
    hub = request.app[HUB]
    window = params.window(request, hub.config.window_ms)
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(256)
    hub.listeners.add(queue)
    try:
        await _send(resp, "table", await hub.table(window))
        while True:
            try:
                kind, payload = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
            except TimeoutError:
                await resp.write(b": keepalive\n\n")
                continue
            if kind == "table":
                if payload == window:
                    await _send(resp, "table", await hub.table(window))
            elif kind == "close":  # the server is stopping: do not hold it up
                break
            else:
                await _send(resp, kind, payload)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.listeners.discard(queue)
    return resp


async def _send(resp: web.StreamResponse, event: str, data: Any) -> None:
    body = json.dumps(data, separators=(",", ":"))
    await resp.write(f"event: {event}\ndata: {body}\n\n".encode())


def plotly_js() -> Path | None:
    """The plotly.js bundle that ships inside the plotly package (served locally, no CDN)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


async def vendor_plotly(request: web.Request) -> web.StreamResponse:
    path = plotly_js()
    if path is None:
        raise web.HTTPNotFound(reason="plotly is not installed")
    return web.FileResponse(path, headers={"Cache-Control": "max-age=86400"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus scrapes the dashboard too (behind its token, when it has one)."""
    from oiradar.web.metrics import scrape

    return await scrape(request.app[HUB].reader)


async def favicon(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "favicon.svg", headers={"Content-Type": "image/svg+xml"})


def build_app(config: ServeConfig) -> web.Application:
    db = Path(location_of(config.store))
    hidden = (str(db.resolve()), str(db.absolute()), str(db))
    app = web.Application(middlewares=[make_guard(config.token, hidden)])
    app.on_response_prepare.append(security_headers)
    hub = Hub(config, Reader(config.store))
    app[HUB] = hub
    app.router.add_get("/", index)
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_get("/api/markets", markets)
    app.router.add_get("/api/alerts", alerts)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/symbols/{symbol}/chart", chart)
    app.router.add_get("/api/symbols/{symbol}/events", events)
    app.router.add_get("/api/stream", stream)
    app.router.add_get("/static/vendor/plotly.min.js", vendor_plotly)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/metrics", metrics)  # asked for by clients that skip the <link>
    app.router.add_static("/static/", STATIC)

    async def lifecycle(app: web.Application) -> Any:
        task = asyncio.create_task(hub.loop())
        yield
        await cancel_and_wait([task])
        hub.reader.close()

    async def end_streams(app: web.Application) -> None:
        """Open event streams end at shutdown; otherwise each holds the server's stop until
        its next heartbeat (up to 15 s) notices that the browser has gone."""
        hub.publish("close", None)

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(end_streams)
    return app
