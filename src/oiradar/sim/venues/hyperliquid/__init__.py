"""Hyperliquid perps as the simulator serves them (exchange-apis.md §9.1, §11): `POST /info`
by weight (`rest`), the WebSocket `/ws` with `activeAssetCtx` (`ws`), the coin table and the
payload rows both send in `data`. No liquidations and no OI history, as on Hyperliquid.
"""

from aiohttp import web

from oiradar.sim.context import SimContext
from oiradar.sim.venues.hyperliquid import rest, ws
from oiradar.sim.venues.hyperliquid.data import PREFIXES, VENUE
from oiradar.sim.venues.hyperliquid.rest import check_limits

__all__ = ["PREFIXES", "VENUE", "check_limits", "setup"]


def setup(app: web.Application, ctx: SimContext) -> None:
    rest.setup(app, ctx)
    ws.setup(app)
