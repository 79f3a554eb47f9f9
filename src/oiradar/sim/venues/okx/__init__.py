"""OKX v5 public market data, instType SWAP (USDT-margined linear), as the simulator serves it
(exchange-apis.md §3): REST under `/api/v5/*` (`rest`), WebSockets on `/ws/v5/public` and
`/ws/v5/business` (`ws`), the venue's state and the payload rows both send in `data`.
"""

from aiohttp import web

from oiradar.sim.context import SimContext
from oiradar.sim.venues.okx import rest, ws
from oiradar.sim.venues.okx.data import PREFIXES, VENUE
from oiradar.sim.venues.okx.rest import check_limits

__all__ = ["PREFIXES", "VENUE", "check_limits", "setup"]


def setup(app: web.Application, ctx: SimContext) -> None:
    rest.setup(app, ctx)
    ws.setup(app)
