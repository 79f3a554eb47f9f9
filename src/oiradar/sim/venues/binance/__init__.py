"""Binance USD-M Futures, as the simulator serves it (exchange-apis.md §1): REST under
`/fapi/*` and `/futures/data/*` (`rest`, with the premium-index klines and the long/short and
taker ratios in `evidence`), WebSocket market streams under `/market/*` (`ws`), the public
archive's liquidation snapshot files under `/data/futures/um/` (`archive`); the interval
tables and the payload rows both read live in `data`.
"""

from aiohttp import web

from oiradar.sim.context import SimContext
from oiradar.sim.venues.binance import archive, evidence, rest, ws
from oiradar.sim.venues.binance.data import PREFIXES, VENUE
from oiradar.sim.venues.binance.rest import check_limits

__all__ = ["PREFIXES", "VENUE", "check_limits", "setup"]


def setup(app: web.Application, ctx: SimContext) -> None:
    rest.add_routes(app, {**rest.ROUTES, **evidence.ROUTES})
    ws.setup(app)
    archive.setup(app)
