"""Bitget v2 mix USDT-FUTURES: `wire` (tables, envelope codes, pure parsers), `rest` (the REST
client and its limits), `ws` (the public ticker stream). Exports what code outside
`venues/` uses."""

from oiradar.venues.bitget.rest import BitgetClient
from oiradar.venues.bitget.wire import GRANULARITY
from oiradar.venues.bitget.ws import BitgetStream

__all__ = ["GRANULARITY", "BitgetClient", "BitgetStream"]
