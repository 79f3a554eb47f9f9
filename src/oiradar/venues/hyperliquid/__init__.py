"""Hyperliquid perps (main dex): `wire` (weights, tables, pure parsers), `rest` (the `/info`
client and its weight budget), `ws` (the public stream). Exports what code outside `venues/`
uses."""

from oiradar.venues.hyperliquid.rest import HyperliquidClient
from oiradar.venues.hyperliquid.wire import INTERVALS
from oiradar.venues.hyperliquid.ws import HyperliquidStream

__all__ = ["INTERVALS", "HyperliquidClient", "HyperliquidStream"]
