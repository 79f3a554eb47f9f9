"""Bybit v5 linear: `wire` (tables, envelope codes, pure parsers), `rest` (the REST client and
its limits), `ws` (the public stream). Exports what code outside `venues/` uses."""

from oiradar.venues.bybit.rest import BybitClient
from oiradar.venues.bybit.wire import KLINE_INTERVALS, OI_PERIODS, PREMIUM_INTERVALS
from oiradar.venues.bybit.ws import BybitStream

__all__ = ["KLINE_INTERVALS", "OI_PERIODS", "PREMIUM_INTERVALS", "BybitClient", "BybitStream"]
