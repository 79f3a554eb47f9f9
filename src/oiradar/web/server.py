"""Running the dashboard: alone (`oiradar serve`) or inside `oiradar watch --serve`."""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
    """The app listening on (host, port); yields its URL."""
    check_binding(config.host, config.token)
    runner = web.AppRunner(build_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UserError(f"cannot listen on {config.host}:{config.port}: {exc.strerror}") from None
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
