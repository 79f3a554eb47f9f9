"""dYdX v4 indexer as the simulator serves it (exchange-apis.md §13): REST under `/v4/`
(`rest`), the WebSocket `/v4/ws` with `v4_markets` and `v4_trades` (`ws`), the market table
and the payload rows both send in `data`.
"""

from aiohttp import web

from oiradar.sim.context import SimContext
from oiradar.sim.venues.dydx import rest, ws
from oiradar.sim.venues.dydx.data import PREFIXES, VENUE
from oiradar.sim.venues.dydx.rest import check_limits

__all__ = ["PREFIXES", "VENUE", "check_limits", "setup"]


def setup(app: web.Application, ctx: SimContext) -> None:
    rest.setup(app, ctx)
    ws.setup(app)
