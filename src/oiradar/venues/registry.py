"""Venue name -> connector class, imported lazily so one venue's import cost is paid on use.

`ALL_VENUES` is every venue oiradar can read; `DEFAULT_VENUES` what the commands use when
none are named: the four majors plus Gate and dYdX, which are cheap (a cold `scan --all` of
300 symbols: 602 requests, 13 s on Gate, 4 s on dYdX, against the simulator) and stream
complete liquidations. Hyperliquid is left out: its 1,200 weight a minute makes the same
scan 5 minutes, and it publishes no liquidations (docs/scan.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from oiradar.errors import UserError
from oiradar.venues.base import VenueClient
from oiradar.venues.stream import VenueStream

CLASSES = {
    "binance": ("oiradar.venues.binance", "BinanceClient"),
    "bybit": ("oiradar.venues.bybit", "BybitClient"),
    "okx": ("oiradar.venues.okx", "OkxClient"),
    "bitget": ("oiradar.venues.bitget", "BitgetClient"),
    "gate": ("oiradar.venues.gate", "GateClient"),
    "hyperliquid": ("oiradar.venues.hyperliquid", "HyperliquidClient"),
    "dydx": ("oiradar.venues.dydx", "DydxClient"),
}
STREAMS = {
    "binance": ("oiradar.venues.binance", "BinanceStream"),
    "bybit": ("oiradar.venues.bybit", "BybitStream"),
    "okx": ("oiradar.venues.okx", "OkxStream"),
    "bitget": ("oiradar.venues.bitget", "BitgetStream"),
    "gate": ("oiradar.venues.gate", "GateStream"),
    "hyperliquid": ("oiradar.venues.hyperliquid", "HyperliquidStream"),
    "dydx": ("oiradar.venues.dydx", "DydxStream"),
}
ALL_VENUES = tuple(CLASSES)
DEFAULT_VENUES = ("binance", "bybit", "okx", "bitget", "gate", "dydx")


def parse_venues(text: str) -> tuple[str, ...]:
    """'binance,okx' -> ('binance', 'okx'); unknown names are a user error."""
    names = tuple(dict.fromkeys(v.strip().lower() for v in text.split(",") if v.strip()))
    unknown = [v for v in names if v not in CLASSES]
    if unknown or not names:
        raise UserError(
            f"unknown venue(s) {', '.join(unknown) or '(none)'}: use {', '.join(ALL_VENUES)}"
        )
    return names


def client(
    venue: str, endpoint: str | None = None, env: Mapping[str, str] | None = None, **kw: Any
) -> VenueClient:
    module, cls = CLASSES[venue]
    factory = getattr(importlib.import_module(module), cls)
    made: VenueClient = factory(endpoint, env=env, **kw)
    return made


def stream(
    venue: str, endpoint: str | None = None, env: Mapping[str, str] | None = None, **kw: Any
) -> VenueStream:
    """The venue's WebSocket feed (liquidations, funding, OI where streamed)."""
    module, cls = STREAMS[venue]
    factory = getattr(importlib.import_module(module), cls)
    made: VenueStream = factory(endpoint, env=env, **kw)
    return made
