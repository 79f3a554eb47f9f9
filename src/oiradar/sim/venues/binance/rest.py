"""Binance USD-M Futures REST as the simulator serves it (exchange-apis.md §1): `/fapi/*` and
`/futures/data/*`, the weight, `/futures/data` and funding buckets, 429 then 418 bans.

Assumptions where the doc is silent:
- `openInterestHist.timestamp` is sent as a string, as on the official doc page;
- a `startTime` older than 30 days on `openInterestHist` answers -1130 (as ccxt observed).
Premium-index klines and the long/short and taker ratios are served by `evidence`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from oiradar.sim.context import (
    SimContext,
    add_headers,
    client_ip,
    ctx_of,
    is_empty_fault,
    json_response,
    num,
    price_decimals,
    qty_decimals,
)
from oiradar.sim.limits import Rule
from oiradar.sim.market import SymbolData, bars, funding_history, last_price, oi_at, oi_snapshots
from oiradar.sim.venues.binance.data import (
    DAY_MS,
    INTERVALS,
    OI_PERIODS,
    VENUE,
    WEEK_OFFSET_MS,
    kline_row,
    premium_row,
    symbol_info,
    ticker24_row,
)

WEIGHT = Rule("REQUEST_WEIGHT", 2400, 60.0)
DATA = Rule("futures_data", 1000, 300.0)
FUNDING = Rule("funding", 500, 300.0)
BAN_BASE_S, BAN_MAX_S = 120.0, 3 * 86_400.0
Endpoint = Callable[[SimContext, web.Request], Any]


class BinanceError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def _err(code: int, msg: str, status: int = 400) -> web.Response:
    return json_response({"code": code, "msg": msg}, status=status)


def _kline_weight(limit: int) -> int:
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


def _weights(request: web.Request) -> list[tuple[Rule, str, int]]:
    path, q = request.path, request.query
    if path.startswith("/futures/data/"):
        return [(DATA, "", 1)]
    if path in ("/fapi/v1/fundingRate", "/fapi/v1/fundingInfo"):
        return [(FUNDING, "", 1)]
    if path in ("/fapi/v1/klines", "/fapi/v1/premiumIndexKlines"):
        try:
            limit = int(q.get("limit", "500"))
        except ValueError:
            limit = 500
        return [(WEIGHT, "", _kline_weight(limit))]
    no_symbol = "symbol" not in q
    weight = {"/fapi/v1/premiumIndex": 10, "/fapi/v1/ticker/24hr": 40, "/fapi/v2/ticker/price": 2}
    return [(WEIGHT, "", weight.get(path, 1) if no_symbol else 1)]


def check_limits(ctx: SimContext, request: web.Request) -> web.Response | None:
    """Weights per minute, the /futures/data and funding buckets, 429 then 418 bans."""
    ip = client_ip(request)
    stats = ctx.limits.stats[VENUE]
    banned = ctx.limits.banned_for(VENUE, ip)
    if banned:
        stats.while_banned += 1
        return _banned(ctx, banned, request)
    if ctx.limits.over_limit(VENUE, ip):
        # Kept hammering after a 429: the IP is banned (2 min, doubling for repeat offenders).
        seconds = ctx.limits.ban(VENUE, ip, BAN_BASE_S, BAN_MAX_S)
        return _banned(ctx, seconds, request)
    charges = _weights(request)
    verdict = ctx.limits.charge(VENUE, ip, charges)
    stats.weight += sum(c for r, _, c in charges if r is WEIGHT)
    used = {"X-MBX-USED-WEIGHT-1M": str(verdict.used.get(WEIGHT.name, 0))}
    add_headers(request, used)
    if verdict.allowed:
        return None
    stats.rejected_429 += 1
    rule = verdict.broken
    assert rule is not None
    retry = max(1, round(verdict.retry_after_s))
    return json_response(
        {
            "code": -1003,
            "msg": f"Too many requests; current limit of IP({ip}) is {rule.limit} "
            "requests per minute. Please use the websocket for live updates to avoid "
            "polling the API.",
        },
        status=429,
        headers={"Retry-After": str(retry), **used},
    )


def _banned(ctx: SimContext, seconds: float, request: web.Request) -> web.Response:
    until = ctx.now_ms() + int(seconds * 1000)
    ip = client_ip(request)
    return json_response(
        {
            "code": -1003,
            "msg": f"Way too many requests; IP({ip}) banned until {until}. Please "
            "use the websocket for live updates to avoid bans.",
        },
        status=418,
        headers={"Retry-After": str(max(1, round(seconds)))},
    )


# -- REST ------------------------------------------------------------------------------------


def _symbol(ctx: SimContext, request: web.Request, required: bool = True) -> SymbolData | None:
    sym = request.query.get("symbol")
    if not sym:
        if required:
            raise BinanceError(
                -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        return None
    if not ctx.market.has(sym):
        raise BinanceError(-1121, "Invalid symbol.")
    return ctx.market.get(sym)


def _int(request: web.Request, name: str, default: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BinanceError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        ) from None


def _limit(request: web.Request, default: int, maximum: int) -> int:
    value = _int(request, "limit", default)
    assert value is not None
    if value <= 0:
        value = default
    return min(value, maximum)


def _window(request: web.Request, now: int, step: int, limit: int) -> tuple[int, int, bool]:
    """(start, end, from_start): Binance pages forward from startTime, else back from end."""
    start = _int(request, "startTime")
    end = _int(request, "endTime")
    if start is not None and end is not None and start > end:
        raise BinanceError(-1130, "Data sent for parameter 'startTime' is not valid.")
    if start is not None:
        return start, min(end if end is not None else now, start + step * limit - 1), True
    hi = end if end is not None else now
    return hi - step * limit, hi, False


def _handler(fn: Endpoint) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.Response:
        ctx = ctx_of(request)
        try:
            return json_response(fn(ctx, request))
        except BinanceError as exc:
            return _err(exc.code, exc.msg, exc.status)

    return handle


def exchange_info(ctx: SimContext, request: web.Request) -> dict[str, Any]:
    symbols = [ctx.market.get(s) for s in ctx.market.symbols]
    return {
        "timezone": "UTC",
        "serverTime": ctx.now_ms(),
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": WEIGHT.limit,
            },
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
        ],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [symbol_info(sd, sd.first_ms) for sd in symbols if sd.first_ms <= ctx.now_ms()],
    }


def open_interest(ctx: SimContext, request: web.Request) -> dict[str, Any]:
    sd = _symbol(ctx, request)
    assert sd is not None
    now = ctx.now_ms()
    oi = oi_at(sd, now) * ctx.share(VENUE)
    return {"openInterest": num(oi, qty_decimals(sd)), "symbol": sd.symbol, "time": now}


@dataclass(frozen=True, slots=True)
class Window:
    """What a paged request asks for: the symbol, the step, the span [lo, hi], its direction
    (forward from `startTime`, else back from the end) and limit, at `now`; weekly bars open
    `offset_ms` after the epoch grid."""

    sd: SymbolData
    step: int
    lo: int
    hi: int
    forward: bool
    limit: int
    now: int
    offset_ms: int = 0

    def keep(self, rows: int) -> slice:
        """The rows served of the span's `rows`: the first `limit` paging forward, else the last."""
        return slice(0, self.limit) if self.forward else slice(max(0, rows - self.limit), None)


def stats_window(ctx: SimContext, request: web.Request) -> Window:
    """The `/futures/data` rules (openInterestHist and the ratio endpoints): `period` 5m..1d,
    `limit` 30 by default and at most 500, a `startTime` older than 30 days answers -1130."""
    sd = _symbol(ctx, request)
    assert sd is not None
    period = request.query.get("period", "")
    if period not in OI_PERIODS:
        raise BinanceError(-1130, "Data sent for parameter 'period' is not valid.")
    step = OI_PERIODS[period]
    limit = _limit(request, 30, 500)
    now = ctx.now_ms()
    start = _int(request, "startTime")
    if start is not None and start < now - 30 * DAY_MS:
        raise BinanceError(-1130, "Data sent for parameter 'startTime' is not valid.")
    lo, hi, forward = _window(request, now, step, limit)
    return Window(sd, step, max(lo, now - 30 * DAY_MS), hi, forward, limit, now)


def kline_window(ctx: SimContext, request: web.Request) -> Window:
    """The klines rules (klines and premiumIndexKlines): an `interval` the symbol's bars build
    (else -1120), `limit` 500 by default and at most 1500; without `startTime`, the `limit`
    bars up to `endTime` (or now)."""
    sd = _symbol(ctx, request)
    assert sd is not None
    interval = request.query.get("interval", "")
    if interval not in INTERVALS or INTERVALS[interval] % sd.bar_ms:
        raise BinanceError(-1120, "Invalid interval.")
    step = INTERVALS[interval]
    limit = _limit(request, 500, 1500)
    now = ctx.now_ms()
    lo, hi, forward = _window(request, now, step, limit)
    if not forward:
        lo = hi - (hi % step) - step * (limit - 1)
    offset = WEEK_OFFSET_MS if interval == "1w" else 0
    return Window(sd, step, lo, hi, forward, limit, now, offset)


def open_interest_hist(ctx: SimContext, request: web.Request) -> list[dict[str, Any]]:
    w = stats_window(ctx, request)
    if is_empty_fault(request):
        return []
    times, oi, usd = oi_snapshots(w.sd, w.step, w.lo, w.hi, ctx.history_now_ms(VENUE))
    keep = w.keep(len(times))
    share = ctx.share(VENUE)
    supply = float(w.sd.oi[0]) * 10
    return [
        {
            "symbol": w.sd.symbol,
            "sumOpenInterest": f"{o * share:.8f}",
            "sumOpenInterestValue": f"{u * share:.8f}",
            "CMCCirculatingSupply": f"{supply:.3f}",
            "timestamp": str(int(t)),
        }
        for t, o, u in zip(times[keep], oi[keep], usd[keep], strict=True)
    ]


def klines(ctx: SimContext, request: web.Request) -> list[list[Any]]:
    w = kline_window(ctx, request)
    if is_empty_fault(request):
        return []
    # Binance trades its share of the market, in volume as in OI.
    b = bars(w.sd, w.step, w.lo, w.hi, w.now, w.offset_ms).share(ctx.share(VENUE))
    pd, qd = price_decimals(w.sd), qty_decimals(w.sd)
    return [kline_row(b, i, w.step, pd, qd) for i in range(len(b.ts))[w.keep(len(b.ts))]]


def premium_index(ctx: SimContext, request: web.Request) -> Any:
    sd = _symbol(ctx, request, required=False)
    now = ctx.now_ms()
    if sd is not None:
        return premium_row(sd, now)
    return [premium_row(ctx.market.get(s), now) for s in ctx.market.symbols]


def funding_rate(ctx: SimContext, request: web.Request) -> list[dict[str, Any]]:
    sd = _symbol(ctx, request, required=False)
    limit = _limit(request, 100, 1000)
    now = ctx.now_ms()
    start = _int(request, "startTime", 0)
    end = _int(request, "endTime", now)
    assert start is not None and end is not None
    if is_empty_fault(request):
        return []
    chosen = [sd] if sd is not None else [ctx.market.get(s) for s in ctx.market.symbols]
    rows = []
    for s in chosen:
        pd = price_decimals(s)
        for t, r in funding_history(s, start, end, now):
            mark = float(s.close[max(0, (t - s.first_ms) // s.bar_ms - 1)])
            rows.append(
                {
                    "symbol": s.symbol,
                    "fundingRate": f"{r:.8f}",
                    "fundingTime": t,
                    "markPrice": num(mark, pd + 1),
                }
            )
    rows.sort(key=lambda r: (r["fundingTime"], r["symbol"]))
    if "startTime" in request.query:
        return rows[:limit]
    return rows[-limit:] if sd is not None else rows[-min(limit, 200) :]


def funding_info(ctx: SimContext, request: web.Request) -> list[dict[str, Any]]:
    out = []
    for s in ctx.market.symbols:
        sd = ctx.market.get(s)
        if sd.funding_interval_h != 8.0:
            out.append(
                {
                    "symbol": s,
                    "adjustedFundingRateCap": "0.02000000",
                    "adjustedFundingRateFloor": "-0.02000000",
                    "fundingIntervalHours": int(sd.funding_interval_h),
                    "disclaimer": False,
                }
            )
    return out


def ticker_24hr(ctx: SimContext, request: web.Request) -> Any:
    sd = _symbol(ctx, request, required=False)
    now = ctx.now_ms()
    if sd is not None:
        return ticker24_row(ctx, sd, now)
    return [ticker24_row(ctx, ctx.market.get(s), now) for s in ctx.market.symbols]


def ticker_price(ctx: SimContext, request: web.Request) -> Any:
    sd = _symbol(ctx, request, required=False)
    now = ctx.now_ms()

    def one(s: SymbolData) -> dict[str, Any]:
        return {
            "symbol": s.symbol,
            "price": num(last_price(s, now), price_decimals(s)),
            "time": now,
        }

    return one(sd) if sd is not None else [one(ctx.market.get(s)) for s in ctx.market.symbols]


ROUTES: dict[str, Endpoint] = {
    "/fapi/v1/exchangeInfo": exchange_info,
    "/fapi/v1/openInterest": open_interest,
    "/futures/data/openInterestHist": open_interest_hist,
    "/fapi/v1/klines": klines,
    "/fapi/v1/premiumIndex": premium_index,
    "/fapi/v1/fundingRate": funding_rate,
    "/fapi/v1/fundingInfo": funding_info,
    "/fapi/v1/ticker/24hr": ticker_24hr,
    "/fapi/v2/ticker/price": ticker_price,
}


def add_routes(app: web.Application, routes: dict[str, Endpoint]) -> None:
    """Each path's endpoint behind the JSON/error handler."""
    for path, fn in routes.items():
        app.router.add_get(path, _handler(fn))
