"""Binance USD-M Futures: `wire` (paths, tables, pure parsers), `rest` (the REST client and
its limits), `ws` (the market streams). Exports what code outside `venues/` uses."""

from oiradar.venues.binance.rest import OI_RETENTION_MS, RETENTION_MARGIN_MS, BinanceClient
from oiradar.venues.binance.wire import (
    KLINE_INTERVALS,
    OI_PERIODS,
    POSITIONING_PERIODS,
    PREMIUM_INTERVALS,
)
from oiradar.venues.binance.ws import BinanceStream

__all__ = [
    "KLINE_INTERVALS",
    "OI_PERIODS",
    "OI_RETENTION_MS",
    "POSITIONING_PERIODS",
    "PREMIUM_INTERVALS",
    "RETENTION_MARGIN_MS",
    "BinanceClient",
    "BinanceStream",
]
