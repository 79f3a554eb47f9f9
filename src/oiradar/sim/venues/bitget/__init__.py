"""Bitget v2 mix, productType USDT-FUTURES, as the simulator serves it (exchange-apis.md §4):
REST under `/api/v2/mix/*` (`rest`), the WebSocket `/v2/ws/public` with the `ticker` and
`candle<granularity>` channels (`ws`), granularities and the rows both send in `data`; the
UTA (v3) socket `/v3/ws/public` with its sampled `liquidation` topic (`uta`, §12). No OI
history, as on Bitget.
"""

from aiohttp import web

from oiradar.sim.context import SimContext
from oiradar.sim.venues.bitget import rest, uta, ws
from oiradar.sim.venues.bitget.data import PREFIXES, VENUE
from oiradar.sim.venues.bitget.rest import check_limits

__all__ = ["PREFIXES", "VENUE", "check_limits", "setup"]


def setup(app: web.Application, ctx: SimContext) -> None:
    rest.setup(app, ctx)
    ws.setup(app)
    uta.setup(app)
