"""What every simulated venue shares: market, clock, limits, faults and helpers."""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from oiradar.clock import SimClock
from oiradar.sim.faults import Faults
from oiradar.sim.limits import Limits
from oiradar.sim.market import Market, SymbolData
from oiradar.sim.ticker import PushTicker

# Each venue carries a constant share of the one underlying market's OI and liquidations. The
# four majors' shares sum to one; the three newer venues come on top (kept apart so the
# majors serve what they always served).
VENUE_SHARE = {"binance": 0.40, "bybit": 0.30, "okx": 0.20, "bitget": 0.10}
VENUE_SHARE |= {"gate": 0.08, "hyperliquid": 0.06, "dydx": 0.03}
_SEED_ORDER = ("binance", "bitget", "bybit", "okx", "dydx", "gate", "hyperliquid")


@dataclass(slots=True)
class SimContext:
    market: Market
    clock: SimClock
    limits: Limits
    faults: Faults
    seed: int = 7
    history_lag_ms: dict[str, int] = field(default_factory=dict)  # venue -> OI history lag
    renamed_fields: dict[str, str] = field(default_factory=dict)  # REST drift: old -> new key
    ticker: PushTicker = field(default_factory=PushTicker)

    def now_ms(self) -> int:
        return self.clock.now_ms()

    async def push_now(self, *, liquidations: bool = False) -> int:
        """Wait for the next push tick (shared by every WebSocket connection, as a venue's
        broadcast reaches all subscribers at once) and return its simulated time;
        `liquidations`: the connection carries a liquidation feed, which pushes first."""
        return await self.ticker.next(self.clock.now_ms, first=liquidations)

    async def pushes(
        self,
        ws: web.WebSocketResponse,
        liquidations: Callable[[], bool] = lambda: False,
        *,
        at_once: bool = True,
    ) -> AsyncIterator[int]:
        """The simulated time of each of one connection's pushes while `ws` is open: the
        first at once (`at_once`: a venue that pushes from the connect), then at each shared
        tick (`push_now`), first among them while `liquidations()` says the connection
        carries a liquidation feed (asked before each wait: subscriptions change)."""
        if at_once and not ws.closed:
            yield self.now_ms()
        while not ws.closed:
            now = await self.push_now(liquidations=liquidations())
            if ws.closed:
                return
            yield now

    def history_now_ms(self, venue: str) -> int:
        """The newest time a venue's OI history has reached: `now` less its lag (a venue
        whose row for the bar just closed is not out yet, `oiradar sim --history-lag`)."""
        return self.now_ms() - self.history_lag_ms.get(venue, 0)

    def share(self, venue: str) -> float:
        return VENUE_SHARE[venue]

    def venue_seed(self, venue: str) -> int:
        return self.seed * 1000 + _SEED_ORDER.index(venue)


SIM = web.AppKey("sim", SimContext)


def ctx_of(request: web.Request) -> SimContext:
    """The simulator context of a request (handlers use this, not app["..."])."""
    return request.app[SIM]


HEADERS = web.RequestKey("sim_headers", dict)
EMPTY = web.RequestKey("sim_empty", bool)


def add_headers(request: web.Request, headers: dict[str, str]) -> None:
    """Headers the middleware adds to the handler's response (e.g. used-weight)."""
    request[HEADERS] = {**request.get(HEADERS, {}), **headers}


def is_empty_fault(request: web.Request) -> bool:
    """Handlers of list endpoints answer an empty (but well-formed) list when this is set."""
    return bool(request.get(EMPTY))


def client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


def http_date(ts_ms: int) -> str:
    """An RFC 9110 `Date` value (whole seconds): what a venue's clock says in its headers."""
    return email.utils.formatdate(ts_ms / 1000, usegmt=True)


def price_decimals(sd: SymbolData) -> int:
    """Tick size as decimals, from the symbol's price level (BTC 60000 -> 1, DOGE 0.1 -> 5)."""
    return int(min(8, max(1, 5 - math.floor(math.log10(max(float(sd.close[0]), 1e-9))))))


def qty_decimals(sd: SymbolData) -> int:
    """Quantity step as decimals: coarser for cheap coins (BTC 3, DOGE 0)."""
    return int(min(4, max(0, math.floor(math.log10(max(float(sd.close[0]), 1e-9))) - 1)))


def num(x: float, decimals: int) -> str:
    """A venue-style decimal string."""
    return f"{x:.{decimals}f}"


def dec(x: float, decimals: int) -> str:
    """A venue-style decimal string with trailing zeros stripped (`"108.04"`, `"0"`): how
    Bitget, OKX, Gate, Hyperliquid and dYdX print numbers."""
    s = num(x, decimals)
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """Compact JSON bytes, stable across runs (same seed, same bytes)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


async def sleep_sim(ctx: SimContext, sim_ms: float, min_wall_s: float = 0.01) -> None:
    """Sleep for `sim_ms` of simulated time (at least `min_wall_s` of wall time)."""
    speed = ctx.clock.speed
    wall = sim_ms / 1000 / speed if speed > 0 else 1.0
    await asyncio.sleep(max(min_wall_s, wall))
