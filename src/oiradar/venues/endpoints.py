"""Where each venue lives: REST and WebSocket base URLs, overridable for the simulator.

Precedence: an explicit override (`--endpoint`) > `OIRADAR_<VENUE>_REST` / `_WS` >
`OIRADAR_ENDPOINT` (one simulator for every venue) > the venue's public hosts. Clients append
the venue's own paths (`/fapi/...`, `/market/stream`, `/v5/public/linear`, `/ws/v5/public`,
`/v2/ws/public`, `/api/v4/futures/usdt/...`, `/v4/ws/usdt`, `/info`, `/ws`, `/v4/...`,
`/v4/ws`), which are the same on the simulator. Gate serves REST and its USDT-perpetual
socket from different hosts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from oiradar.errors import ConfigError

VENUES = ("binance", "bybit", "okx", "bitget", "gate", "hyperliquid", "dydx")
ENV_ALL = "OIRADAR_ENDPOINT"


@dataclass(frozen=True, slots=True)
class Endpoints:
    rest: str
    ws: str


PUBLIC = {
    "binance": Endpoints("https://fapi.binance.com", "wss://fstream.binance.com"),
    "bybit": Endpoints("https://api.bybit.com", "wss://stream.bybit.com"),
    "okx": Endpoints("https://www.okx.com", "wss://ws.okx.com:8443"),
    "bitget": Endpoints("https://api.bitget.com", "wss://ws.bitget.com"),
    "gate": Endpoints("https://api.gateio.ws", "wss://fx-ws.gateio.ws"),
    "hyperliquid": Endpoints("https://api.hyperliquid.xyz", "wss://api.hyperliquid.xyz"),
    "dydx": Endpoints("https://indexer.dydx.trade", "wss://indexer.dydx.trade"),
}


def _check(url: str, source: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.netloc:
        raise ConfigError(f"{source}={url!r} is not a URL like {schemes[0]}://127.0.0.1:8765")
    return url.rstrip("/")


def ws_of(rest: str) -> str:
    """The WebSocket base beside a REST base (a simulator serves both on one port)."""
    return "ws" + rest.removeprefix("http")  # http -> ws, https -> wss


def endpoints(
    venue: str, override: str | None = None, env: Mapping[str, str] | None = None
) -> Endpoints:
    """The base URLs to use for `venue`, honouring overrides and the environment."""
    if venue not in PUBLIC:
        raise ConfigError(f"unknown venue {venue!r}: use one of {', '.join(VENUES)}")
    env = os.environ if env is None else env
    if override:
        rest = _check(override, "--endpoint", ("http", "https"))
        return Endpoints(rest, ws_of(rest))
    base = PUBLIC[venue]
    shared = env.get(ENV_ALL)
    if shared:
        rest = _check(shared, ENV_ALL, ("http", "https"))
        base = Endpoints(rest, ws_of(rest))
    key = f"OIRADAR_{venue.upper()}"
    rest_env, ws_env = env.get(f"{key}_REST"), env.get(f"{key}_WS")
    return Endpoints(
        _check(rest_env, f"{key}_REST", ("http", "https")) if rest_env else base.rest,
        _check(ws_env, f"{key}_WS", ("ws", "wss")) if ws_env else base.ws,
    )
