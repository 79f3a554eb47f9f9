"""`/metrics` for Prometheus: on the dashboard (`oiradar serve`, `watch --serve`) and alone
for a watch without a dashboard (`watch --metrics-port`). Each scrape reads the status the
daemon publishes in the store and renders it (services.watch.metrics)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from oiradar.clock import WallClock
from oiradar.services.watch.metrics import CONTENT_TYPE, exposition
from oiradar.web.guard import security_headers
from oiradar.web.reader import Reader

READER = web.AppKey("metrics_reader", Reader)


async def scrape(reader: Reader) -> web.Response:
    state = await reader.run(lambda s: s.watch_state())
    body = exposition(state.status if state is not None else None, WallClock().now_ms())
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def _metrics(request: web.Request) -> web.Response:
    return await scrape(request.app[READER])


def metrics_app(target: str | Path | None) -> web.Application:
    """Only `/metrics`: nothing of the store's content is served, so it needs no token."""
    app = web.Application()
    app.on_response_prepare.append(security_headers)
    app[READER] = Reader(target)
    app.router.add_get("/metrics", _metrics)

    async def close(app: web.Application) -> None:
        app[READER].close()

    app.on_cleanup.append(close)
    return app
