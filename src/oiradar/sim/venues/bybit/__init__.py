"""Bybit v5, category `linear`, as the simulator serves it (exchange-apis.md §2): REST under
`/v5/market/*` (`rest`), the public WebSocket on `/v5/public/linear` (`ws`), the interval
tables and the payload rows both read in `data`.
"""

from aiohttp import web

from oiradar.sim.context import SimContext
from oiradar.sim.venues.bybit import rest, ws
from oiradar.sim.venues.bybit.data import PREFIXES, VENUE
from oiradar.sim.venues.bybit.rest import check_limits

__all__ = ["PREFIXES", "VENUE", "check_limits", "setup"]


def setup(app: web.Application, ctx: SimContext) -> None:
    rest.setup(app, ctx)
    ws.setup(app)
