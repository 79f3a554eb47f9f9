"""dYdX v4 indexer REST as the simulator serves it (exchange-apis.md §13.2, §13.4): markets,
candles, historical funding, trades, height and time under `/v4/`, with the comlink
source's per-IP limits: 100 requests per 10 s shared by every route, `/candles` its own
1,000 per 10 s. Over a limit: HTTP 429 `{"errors":[{"msg":"Too many requests"}]}` with
`Retry-After` in **milliseconds** and `RateLimit-Limit/-Remaining/-Reset` (reset epoch ms).

Validation errors are HTTP 400 `{"errors":[{"value","msg","param","location"}]}` with the
source's messages; an unknown `market` on `/perpetualMarkets` is 404. Assumptions where the
docs are silent:
- the page maximum (API_LIMIT_V4) is 1,000 (`SimConfig.extra["dydx_api_limit"]` sets it:
  older indexers use 100) and the default page when `limit` is omitted;
- candles: `startedAt >= fromISO` and `< toISO`, newest first; a market's candles start with
  its first bar and have no gaps after it ("empty candles are written"); the running bar
  is served;
- historical funding: `effectiveAt <= effectiveBeforeOrAt`, newest first;
- trades: `createdAt <= createdBeforeOrAt`, newest first; the `page` variant is not
  simulated;
- historical funding counts in the shared bucket (the route's own limiter is not certain).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from oiradar.sim.context import (
    SimContext,
    add_headers,
    client_ip,
    ctx_of,
    is_empty_fault,
    json_response,
)
from oiradar.sim.limits import Rule
from oiradar.sim.market import bars
from oiradar.sim.server import CONFIG
from oiradar.sim.venues.dydx.data import (
    HEIGHT_ZERO_S,
    RESOLUTIONS,
    VENUE,
    Market,
    candle_row,
    funding_row,
    funding_times,
    iso,
    market_row,
    markets,
    trades,
)

GET, CANDLES = Rule("get", 100, 10.0), Rule("candles", 1000, 10.0)
API_LIMIT = 1000
BAD_TICKER = "ticker must be a valid ticker (BTC-USD, etc)"


class IndexerError(Exception):
    def __init__(self, msg: str, param: str = "", value: Any = None, status: int = 400) -> None:
        super().__init__(msg)
        self.msg, self.param, self.value, self.status = msg, param, value, status


def check_limits(ctx: SimContext, request: web.Request) -> web.Response | None:
    rule = CANDLES if request.path.startswith("/v4/candles/") else GET
    verdict = ctx.limits.charge(VENUE, client_ip(request), [(rule, "", 1)])
    period_ms = int(rule.period_s / ctx.limits.scale * 1000)
    reset = (ctx.now_ms() // period_ms + 1) * period_ms
    used = verdict.used.get(rule.name, 0)
    headers = {"RateLimit-Limit": str(rule.limit), "RateLimit-Reset": str(reset),
               "RateLimit-Remaining": str(max(0, rule.limit - used))}  # fmt: skip
    if verdict.allowed:
        add_headers(request, headers)
        return None
    ctx.limits.stats[VENUE].rejected_429 += 1
    headers["Retry-After"] = str(max(1, round(verdict.retry_after_s * 1000)))
    return json_response({"errors": [{"msg": "Too many requests"}]}, 429, headers)


# -- parameters ------------------------------------------------------------------------------


def _market(ctx: SimContext, request: web.Request) -> Market:
    found = markets(ctx).get(request.match_info["ticker"])
    if found is None:
        raise IndexerError(BAD_TICKER, "ticker", request.match_info["ticker"])
    return found


def _limit(request: web.Request) -> int:
    top = int(request.app[CONFIG].extra.get("dydx_api_limit", API_LIMIT))
    raw = request.query.get("limit", "")
    if raw == "":
        return top
    if not raw.isdigit() or not 1 <= int(raw) <= top:
        msg = f"limit must be a positive integer that is not greater than max: {top}"
        raise IndexerError(msg, "limit", raw)
    return int(raw)


def _iso(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name, "")
    if raw == "":
        return None
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise IndexerError("Invalid value", name, raw) from None
    return round(when.timestamp() * 1000)


# -- routes ----------------------------------------------------------------------------------

Route = Callable[[SimContext, web.Request], Any]


def _handler(fn: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            return json_response(fn(ctx_of(request), request))
        except IndexerError as exc:
            error = {"value": exc.value, "msg": exc.msg, "param": exc.param, "location": "query"}
            return json_response({"errors": [error]}, exc.status)

    return handle


def perpetual_markets(ctx: SimContext, request: web.Request) -> Any:
    listed, now = markets(ctx), ctx.now_ms()
    name = request.query.get("market")
    if name is not None and name not in listed:
        raise IndexerError(f"{name} not found in markets of type PERPETUAL", status=404)
    chosen = [listed[name]] if name else list(listed.values())
    rows = {} if is_empty_fault(request) else {m.ticker: market_row(ctx, m, now) for m in chosen}
    return {"markets": rows}


def candles(ctx: SimContext, request: web.Request) -> Any:
    m, now = _market(ctx, request), ctx.now_ms()
    resolution = request.query.get("resolution", "")
    step = RESOLUTIONS.get(resolution)
    if step is None or step % m.sd.bar_ms:
        msg = f"resolution must be a valid Candle Resolution, one of {','.join(RESOLUTIONS)}"
        raise IndexerError(msg, "resolution", resolution)
    limit, lo, hi = _limit(request), _iso(request, "fromISO"), _iso(request, "toISO")
    lo, hi = max(lo or 0, m.sd.first_ms), min(hi if hi is not None else now + 1, now + 1)
    lo = max(lo, hi - 1 - limit * step)  # the newest `limit` bars in range are all served
    b = bars(m.sd, step, lo, hi - 1, now)
    rows = [candle_row(ctx, m, resolution, b, k) for k in range(len(b.ts) - 1, -1, -1)]
    return {"candles": [] if is_empty_fault(request) else rows[:limit]}


def historical_funding(ctx: SimContext, request: web.Request) -> Any:
    m, now, limit = _market(ctx, request), ctx.now_ms(), _limit(request)
    upto = _iso(request, "effectiveBeforeOrAt")
    times = funding_times(m, now if upto is None else upto, now)
    rows = [funding_row(m, t) for t in reversed(times[-limit:])]
    return {"historicalFunding": [] if is_empty_fault(request) else rows}


def trade_page(ctx: SimContext, m: Market, upto: int, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` trades at or before `upto`, newest first. Every base bar holds a
    trade, so `limit` + 1 bars hold them all; the tape is read back from `upto` one bar at a
    time until `limit` trades are in (a squeeze bar holds dozens of forced orders): drawing
    1,000 bars of orders for each of 500 subscriptions held the loop for half a minute."""
    bar_ms, newest_first = m.sd.bar_ms, []
    for k in range(limit + 1):
        hi = upto - k * bar_ms
        newest_first.extend(reversed(trades(ctx, m, hi - bar_ms, hi)))
        if len(newest_first) >= limit:
            break
    return newest_first[:limit]


def perpetual_trades(ctx: SimContext, request: web.Request) -> Any:
    m, now, limit = _market(ctx, request), ctx.now_ms(), _limit(request)
    upto = min(_iso(request, "createdBeforeOrAt") or now, now)
    rows = [] if is_empty_fault(request) else trade_page(ctx, m, upto, limit)
    return {"trades": rows, "pageSize": limit, "totalResults": len(rows), "offset": 0}


def block_height(ctx: SimContext, request: web.Request) -> Any:
    now = ctx.now_ms()
    return {"height": str(now // 1000 - HEIGHT_ZERO_S), "time": iso(now // 1000 * 1000)}


def server_time(ctx: SimContext, request: web.Request) -> Any:
    return {"iso": iso(ctx.now_ms()), "epoch": ctx.now_ms() / 1000}


ROUTES: dict[str, Route] = {
    "/v4/perpetualMarkets": perpetual_markets,
    "/v4/candles/perpetualMarkets/{ticker}": candles,
    "/v4/historicalFunding/{ticker}": historical_funding,
    "/v4/trades/perpetualMarket/{ticker}": perpetual_trades,
    "/v4/height": block_height,
    "/v4/time": server_time,
}


def setup(app: web.Application, ctx: SimContext) -> None:
    for path, fn in ROUTES.items():
        app.router.add_get(path, _handler(fn))
