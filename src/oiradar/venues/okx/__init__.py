"""OKX v5 SWAP: `wire` (bar tables, envelope codes, pure parsers), `rest` (the REST client and
its route budgets), `ws` (the public stream). Exports what code outside `venues/` uses."""

from oiradar.venues.okx.rest import OkxClient
from oiradar.venues.okx.wire import BARS, OI_PERIODS, PREMIUM_INTERVALS
from oiradar.venues.okx.ws import OkxStream

__all__ = ["BARS", "OI_PERIODS", "PREMIUM_INTERVALS", "OkxClient", "OkxStream"]
