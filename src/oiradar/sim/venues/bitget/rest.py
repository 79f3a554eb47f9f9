"""Bitget v2 mix REST as the simulator serves it (exchange-apis.md §4): `/api/v2/mix/market/*`,
20 requests/s per IP and endpoint plus 6000/min per IP overall. Bitget has no OI history: OI
now is `holdingAmount` (tickers) or `size` (open-interest), in base coin, this venue's share
of the market OI. Assumptions where the doc is silent (unverified):
- errors answer HTTP 400: unknown symbol `40034` "Parameter symbol does not exist" (not
  40102), missing parameter 40019, bad productType 40020, bad value 40017, a range over 90
  days 40705, startTime > endTime 40707, unknown path 40404 (HTTP 404); `limit` or
  `pageSize` above its maximum is an error rather than silently clamped;
- candles anchor at the end: the newest `limit` bars opening in [startTime, endTime] (both
  inclusive, endTime defaults to now), oldest first, so clients page backwards with endTime;
  `candles` includes the running bar, `history-candles` only closed ones; "one month" of
  1m/3m/5m is 30 days; `kLineType` MARK and INDEX serve the market bars.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from oiradar.sim.context import SimContext, client_ip, ctx_of, dec, is_empty_fault, qty_decimals
from oiradar.sim.limits import Rule
from oiradar.sim.market import SymbolData, funding_history, funding_now, oi_at
from oiradar.sim.venues.bitget.data import (
    DAY_MS,
    GRANULARITY,
    PRODUCT,
    VENUE,
    bars_of,
    candle_rows,
    contract_row,
    envelope,
    listed,
    ticker_row,
)

PRODUCTS = frozenset(
    f"{s}{c}-FUTURES" for s in ("", "S") for c in ("USDT", "COIN", "USDC")
)  # the others are valid names this simulator has no contracts for
PER_ENDPOINT = Rule("endpoint", 20, 1.0)  # counted independently per endpoint
OVERALL = Rule("overall", 6000, 60.0)
MAX_RANGE_MS = 90 * DAY_MS
LOOKBACK_DAYS = {"1m": 30, "3m": 30, "5m": 30, "15m": 52, "30m": 62, "1H": 83, "4H": 240,
                 "6H": 360}  # fmt: skip


class BitgetError(Exception):
    def __init__(self, code: str, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def check_limits(ctx: SimContext, request: web.Request) -> web.Response | None:
    """20 req/s per IP and endpoint plus 6000 req/min per IP overall, else HTTP 429."""
    charges = [(PER_ENDPOINT, request.path, 1), (OVERALL, "", 1)]
    if ctx.limits.charge(VENUE, client_ip(request), charges).allowed:
        return None
    ctx.limits.stats[VENUE].rejected_429 += 1
    return envelope(ctx, None, "429", "Too many requests", 429)


# -- parameters ------------------------------------------------------------------------------


def _product(request: web.Request) -> bool:
    """Validate `productType` (case-insensitive, as in the doc's curl examples); USDT-M?"""
    raw = request.query.get("productType", "").upper()
    if not raw:
        raise BitgetError("40019", "Parameter productType cannot be empty")
    if raw not in PRODUCTS:
        raise BitgetError("40020", "Parameter productType error")
    return raw == PRODUCT


def _symbol(ctx: SimContext, request: web.Request) -> SymbolData:
    usdt = _product(request)
    name = request.query.get("symbol", "")
    if not name:
        raise BitgetError("40019", "Parameter symbol cannot be empty")
    sd = listed(ctx, name) if usdt else None
    if sd is None:
        raise BitgetError("40034", "Parameter symbol does not exist")
    return sd


def _symbols(ctx: SimContext, request: web.Request) -> list[SymbolData]:
    """`symbol` if given, else every listed contract of the product type."""
    if request.query.get("symbol"):
        return [_symbol(ctx, request)]
    if not _product(request):
        return []
    return [sd for s in ctx.market.symbols if (sd := listed(ctx, s)) is not None]


def _int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name, "")
    if raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise BitgetError("40017", f"Parameter verification failed {name}: {raw!r}") from None


def _bounded(request: web.Request, name: str, default: int, maximum: int | None) -> int:
    value = _int(request, name)
    if value is None:
        return default
    if value < 1 or (maximum is not None and value > maximum):
        top = "" if maximum is None else f" and <= {maximum}"
        raise BitgetError("40017", f"Parameter verification failed {name} must be >= 1{top}")
    return value


# -- REST --------------------------------------------------------------------------------------

Endpoint = Callable[[SimContext, web.Request], Any]


def _handler(fn: Endpoint) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        ctx = ctx_of(request)
        try:
            return envelope(ctx, fn(ctx, request))
        except BitgetError as exc:
            return envelope(ctx, None, exc.code, exc.msg, exc.status)

    return handle


def contracts(ctx: SimContext, request: web.Request) -> list[dict[str, Any]]:
    return [contract_row(sd) for sd in _symbols(ctx, request)]


def tickers(ctx: SimContext, request: web.Request) -> list[dict[str, Any]]:
    syms = [] if is_empty_fault(request) else _symbols(ctx, request)
    return [ticker_row(ctx, sd, ctx.now_ms()) for sd in syms]


def ticker(ctx: SimContext, request: web.Request) -> list[dict[str, Any]]:
    return [ticker_row(ctx, _symbol(ctx, request), ctx.now_ms())]


def open_interest(ctx: SimContext, request: web.Request) -> dict[str, Any]:
    sd, now = _symbol(ctx, request), ctx.now_ms()
    size = dec(ctx.share(VENUE) * oi_at(sd, now), qty_decimals(sd))
    rows = [] if is_empty_fault(request) else [{"symbol": sd.symbol, "size": size}]
    return {"openInterestList": rows, "ts": str(now)}


def _candles(ctx: SimContext, request: web.Request, max_limit: int, history: bool) -> Any:
    sd = _symbol(ctx, request)
    gran = request.query.get("granularity", "")
    if not gran:
        raise BitgetError("40019", "Parameter granularity cannot be empty")
    if gran not in GRANULARITY or GRANULARITY[gran][0] % sd.bar_ms:
        raise BitgetError("40017", f"Parameter verification failed granularity {gran!r}")
    if request.query.get("kLineType", "MARKET").upper() not in ("MARKET", "MARK", "INDEX"):
        raise BitgetError("40017", "Parameter verification failed kLineType")
    limit = _bounded(request, "limit", 100, max_limit)
    now = ctx.now_ms()
    start, end = _int(request, "startTime"), _int(request, "endTime")
    hi = now if end is None else min(end, now)
    if start is not None and end is not None and start > end:
        raise BitgetError("40707", "Start time is greater than end time")
    if start is not None and (end if end is not None else now) - start > MAX_RANGE_MS:
        raise BitgetError("40705", "The start and end time cannot exceed 90 days")
    lo = start if start is not None else 0
    if history:  # closed bars only
        hi = min(hi, now - GRANULARITY[gran][0])
    elif gran in LOOKBACK_DAYS:
        lo = max(lo, now - LOOKBACK_DAYS[gran] * DAY_MS)
    if is_empty_fault(request):
        return []
    return candle_rows(sd, bars_of(sd, gran, lo, hi, now, limit), closed_only=history)


def candles(ctx: SimContext, request: web.Request) -> Any:
    return _candles(ctx, request, 1000, history=False)


def history_candles(ctx: SimContext, request: web.Request) -> Any:
    return _candles(ctx, request, 200, history=True)


def current_fund_rate(ctx: SimContext, request: web.Request) -> list[dict[str, Any]]:
    now, out = ctx.now_ms(), []
    for sd in [] if is_empty_fault(request) else _symbols(ctx, request):
        rate, next_ms = funding_now(sd, now)
        out.append({
            "symbol": sd.symbol, "fundingRate": dec(rate, 6),
            "fundingRateInterval": str(int(sd.funding_interval_h)), "nextUpdate": str(next_ms),
            "minFundingRate": "-0.003", "maxFundingRate": "0.003",
        })  # fmt: skip
    return out


def funding_time(ctx: SimContext, request: web.Request) -> list[dict[str, Any]]:
    sd = _symbol(ctx, request)
    _, next_ms = funding_now(sd, ctx.now_ms())
    hours = str(int(sd.funding_interval_h))
    return [{"symbol": sd.symbol, "nextFundingTime": str(next_ms), "ratePeriod": hours}]


def history_fund_rate(ctx: SimContext, request: web.Request) -> list[dict[str, Any]]:
    """Settled rates, newest first, pages numbered from 1."""
    sd = _symbol(ctx, request)
    size = _bounded(request, "pageSize", 20, 100)
    page = _bounded(request, "pageNo", 1, None)
    if is_empty_fault(request):
        return []
    now = ctx.now_ms()
    settled = funding_history(sd, sd.first_ms, now, now)[::-1][(page - 1) * size : page * size]
    return [{"symbol": sd.symbol, "fundingRate": dec(r, 6), "fundingTime": str(t)}
            for t, r in settled]  # fmt: skip


def _not_found(ctx: SimContext, request: web.Request) -> Any:
    raise BitgetError("40404", "Request URL NOT FOUND", 404)


ROUTES: dict[str, Endpoint] = {
    "contracts": contracts, "tickers": tickers, "ticker": ticker,
    "open-interest": open_interest, "candles": candles, "history-candles": history_candles,
    "current-fund-rate": current_fund_rate, "funding-time": funding_time,
    "history-fund-rate": history_fund_rate,
}  # fmt: skip


def setup(app: web.Application, ctx: SimContext) -> None:
    for name, fn in ROUTES.items():
        app.router.add_get(f"/api/v2/mix/market/{name}", _handler(fn))
    app.router.add_get("/api/v2/mix/{tail:.*}", _handler(_not_found))
