"""dYdX v4 indexer (read-only): `wire` (resolutions, error bodies, pure parsers), `rest` (the
REST client and its limits), `ws` (the public stream). Exports what code outside `venues/`
uses."""

from oiradar.venues.dydx.rest import DydxClient
from oiradar.venues.dydx.wire import RESOLUTIONS
from oiradar.venues.dydx.ws import DydxStream

__all__ = ["RESOLUTIONS", "DydxClient", "DydxStream"]
