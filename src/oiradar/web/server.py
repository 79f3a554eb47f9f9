"""Running the dashboard: alone (`oiradar serve`) or inside `oiradar watch --serve`."""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from oiradar.errors import UserError
from oiradar.lifecycle import stop_on_signals
from oiradar.web.app import ServeConfig, build_app


def check_binding(host: str, token: str | None) -> None:
    """Anything but loopback needs a token: the page shows the whole store."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not token:
        raise UserError(
            f"--host {host} makes the dashboard reachable from the network: give --token "
            "(or OIRADAR_SERVE_TOKEN) so only you can open it"
        )


@asynccontextmanager
async def serving(config: ServeConfig) -> AsyncIterator[str]:
    """The dashboard listening on (host, port); yields its URL."""
    check_binding(config.host, config.token)
    async with listening(build_app(config), config.host, config.port) as url:
        yield url


@asynccontextmanager
async def serving_metrics(target: str | Path | None, port: int) -> AsyncIterator[str]:
    """Only `/metrics` (`watch --metrics-port`), on loopback; yields its URL."""
    from oiradar.web.metrics import metrics_app

    async with listening(metrics_app(target), "127.0.0.1", port) as url:
        yield url


@asynccontextmanager
async def listening(app: web.Application, host: str, port: int) -> AsyncIterator[str]:
    """`app` listening on (host, port); yields its URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    host, port = runner.addresses[0][:2]
    shown = f"[{host}]" if ":" in str(host) else host
    try:
        yield f"http://{shown}:{port}"
    finally:
        await runner.cleanup()


async def serve_forever(config: ServeConfig) -> None:
    async with stop_on_signals() as stop, serving(config) as url:
        sys.stdout.write(f"serving on {url}\n")
        sys.stdout.flush()
        await stop.wait()
