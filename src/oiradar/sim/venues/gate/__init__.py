"""Gate USDT perpetuals (APIv4, settle `usdt`) as the simulator serves them
(exchange-apis.md §10): REST under `/api/v4/futures/usdt/*` (`rest`), the WebSocket
`/v4/ws/usdt` with tickers and the complete liquidation channel (`ws`), the contract table
and the payload rows both send in `data`.
"""

from aiohttp import web

from oiradar.sim.context import SimContext
from oiradar.sim.venues.gate import rest, ws
from oiradar.sim.venues.gate.data import PREFIXES, VENUE
from oiradar.sim.venues.gate.rest import check_limits

__all__ = ["PREFIXES", "VENUE", "check_limits", "setup"]


def setup(app: web.Application, ctx: SimContext) -> None:
    rest.setup(app, ctx)
    ws.setup(app)
