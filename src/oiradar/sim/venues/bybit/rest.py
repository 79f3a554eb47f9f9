"""Bybit v5 linear REST as the simulator serves it (exchange-apis.md §2): `/v5/market/*` in the
`{"retCode","retMsg","result","retExtInfo","time"}` envelope (errors: HTTP 200, retCode
10001). Assumptions where the doc is silent:
- the IP ban (600 req / 5 s, then 10 min) answers HTTP 403 with text/plain
  "access too frequent": it comes from the edge, not the API, so no JSON envelope;
- out-of-range `limit` is an error (10001), not clamped; only `category=linear` is simulated;
- kline and premium-index-price-kline (the premium, a fraction, 8 decimals): `start` is
  floored to its candle and pages forward (`limit` candles from it), else the newest
  `limit` up to `end`/now; candles open on UTC boundaries (W on Monday, M on the
  1st) and one straddling the symbol's first data is not served; a bad interval answers
  10001 "Invalid period!" (recalled wording, unverified);
- open-interest: a lone `startTime` bounds the walk back from now; `nextPageCursor` is
  `lastid%3D<oldest ts served>` and pages strictly older rows;
- instruments: sorted by symbol, cursor `first%3D<sym>%26last%3D<sym>`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, unquote

from aiohttp import web

from oiradar.sim.context import SimContext, client_ip, ctx_of, is_empty_fault, json_response
from oiradar.sim.context import qty_decimals as qty_dec
from oiradar.sim.limits import Rule
from oiradar.sim.market import SymbolData, bars, funding_history, oi_snapshots, premium_bars
from oiradar.sim.venues.bybit.data import (
    INTERVALS,
    NO_DELIVERY,
    OI_PERIODS,
    VENUE,
    BarSource,
    Candle,
    candles,
    floor_open,
    instrument_row,
    oi_row,
    rate_str,
    serves,
    ticker_fields,
)

IP_RULE = Rule("ip", 600, 5.0)  # requests per 5 s per IP, all REST traffic
BAN_S = 600.0


class BybitError(Exception):
    def __init__(self, msg: str, code: int = 10001) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


def check_limits(ctx: SimContext, request: web.Request) -> web.Response | None:
    """Charge 1 request (also counted as weight); a breach bans the IP for 10 minutes."""
    ip = client_ip(request)
    stats = ctx.limits.stats[VENUE]
    if ctx.limits.banned_for(VENUE, ip) > 0:
        stats.while_banned += 1
        return _forbidden()
    stats.weight += 1
    if ctx.limits.charge(VENUE, ip, [(IP_RULE, "", 1)]).allowed:
        return None
    ctx.limits.ban(VENUE, ip, BAN_S, BAN_S)
    return _forbidden()


def _forbidden() -> web.Response:
    return web.Response(status=403, text="access too frequent", content_type="text/plain")


# -- REST parameters -------------------------------------------------------------------------


def _category(request: web.Request) -> None:
    category = request.query.get("category", "")
    if category != "linear":
        raise BybitError(f"params error: category {category!r} invalid (linear only)")


def _maybe_symbol(ctx: SimContext, request: web.Request) -> SymbolData | None:
    name = request.query.get("symbol", "")
    if not name:
        return None
    if not ctx.market.has(name) or ctx.market.get(name).first_ms > ctx.now_ms():
        raise BybitError("params error: symbol invalid")
    return ctx.market.get(name)


def _symbol(ctx: SimContext, request: web.Request) -> SymbolData:
    sd = _maybe_symbol(ctx, request)
    if sd is None:
        raise BybitError("params error: symbol is required")
    return sd


def _int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name, "")
    try:
        return int(raw) if raw else None
    except ValueError:
        raise BybitError(f"params error: {name} must be an integer (ms or count)") from None


def _limit(request: web.Request, default: int, maximum: int) -> int:
    value = _int(request, "limit")
    if value is not None and not 1 <= value <= maximum:
        raise BybitError(f"params error: limit must be in [1, {maximum}]")
    return default if value is None else value


def _times(request: web.Request, start: str, end: str) -> tuple[int | None, int | None]:
    lo, hi = _int(request, start), _int(request, end)
    if lo is not None and hi is not None and lo > hi:
        raise BybitError(f"params error: {start} must not be after {end}")
    return lo, hi


def _cursor(request: web.Request, key: str) -> str | None:
    """A cursor value, whether the client sent it still %-encoded or decoded."""
    raw = request.query.get("cursor", "")
    values = parse_qs(unquote(raw)).get(key) if raw else [""]
    if not values:
        raise BybitError("params error: cursor invalid")
    return values[0] or None


Endpoint = Callable[[SimContext, web.Request], dict[str, Any]]


def _handler(fn: Endpoint) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The v5 envelope around an endpoint; the empty-list fault blanks its list."""

    async def handle(request: web.Request) -> web.Response:
        ctx = ctx_of(request)
        try:
            result, code, msg = fn(ctx, request), 0, "OK"
        except BybitError as exc:
            result, code, msg = {}, exc.code, exc.msg
        if code == 0 and is_empty_fault(request):
            result["list"] = []
            if "nextPageCursor" in result:
                result["nextPageCursor"] = ""
        body = {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}}
        return json_response({**body, "time": ctx.now_ms()})

    return handle


# -- REST endpoints --------------------------------------------------------------------------


def instruments_info(ctx: SimContext, request: web.Request) -> dict[str, Any]:
    _category(request)
    one = _maybe_symbol(ctx, request)
    limit = _limit(request, 500, 1000)
    after = _cursor(request, "last") or ""
    status, base = request.query.get("status", "Trading"), request.query.get("baseCoin", "")
    names = [one.symbol] if one else sorted(ctx.market.symbols)
    listed = [
        sd
        for sd in (ctx.market.get(n) for n in names if n > after)
        if sd.first_ms <= ctx.now_ms() and status == "Trading" and base in ("", sd.base)
    ]
    page = listed[:limit]
    cursor = f"first%3D{page[0].symbol}%26last%3D{page[-1].symbol}" if listed[limit:] else ""
    return {
        "category": "linear",
        "list": [instrument_row(s) for s in page],
        "nextPageCursor": cursor,
    }


def tickers(ctx: SimContext, request: web.Request) -> dict[str, Any]:
    _category(request)
    one, now = _maybe_symbol(ctx, request), ctx.now_ms()
    chosen = [one] if one else [ctx.market.get(s) for s in ctx.market.symbols]
    rows = [ticker_fields(ctx, sd, now) | NO_DELIVERY for sd in chosen if sd.first_ms <= now]
    return {"category": "linear", "list": [r | {"deliveryTime": "0"} for r in rows]}


def open_interest(ctx: SimContext, request: web.Request) -> dict[str, Any]:
    """Newest first, back to the symbol's first data; the cursor pages strictly older rows."""
    _category(request)
    sd = _symbol(ctx, request)
    period = OI_PERIODS.get(request.query.get("intervalTime", ""))
    if period is None:
        raise BybitError(f"params error: intervalTime must be one of {', '.join(OI_PERIODS)}")
    lo, hi = _times(request, "startTime", "endTime")
    limit, older, now = _limit(request, 50, 200), _cursor(request, "lastid"), ctx.now_ms()
    hi = now if hi is None else hi
    if older is not None:
        if not older.isdigit():
            raise BybitError("params error: cursor invalid")
        hi = min(hi, int(older) - 1)
    times, oi, _ = oi_snapshots(sd, period, lo or 0, hi, ctx.history_now_ms(VENUE))
    qd, share = qty_dec(sd), ctx.share(VENUE)
    newest = zip(times[-limit:][::-1].tolist(), oi[-limit:][::-1].tolist(), strict=True)
    rows = [oi_row(t, round(o * share, qd), qd) for t, o in newest]
    cursor = f"lastid%3D{rows[-1]['timestamp']}" if rows and len(times) > limit else ""
    return {"symbol": sd.symbol, "category": "linear", "list": rows, "nextPageCursor": cursor}


def _kline_page(
    ctx: SimContext, request: web.Request, source: BarSource
) -> tuple[SymbolData, list[Candle]]:
    """Candles newest first; from `start` forward when given, else back from `end` (or now)."""
    _category(request)
    sd = _symbol(ctx, request)
    interval = request.query.get("interval", "")
    if not serves(sd, interval):
        raise BybitError("Invalid period!")
    start, end = _times(request, "start", "end")
    limit, now = _limit(request, 200, 1000), ctx.now_ms()
    hi, span = min(now, now if end is None else end), INTERVALS[interval] * limit
    if start is None:
        page = candles(sd, interval, hi - span, hi, now, source)[-limit:]
    else:
        lo = floor_open(interval, start)
        page = candles(sd, interval, lo, min(hi, lo + span - 1), now, source)[:limit]
    return sd, page[::-1]


def kline(ctx: SimContext, request: web.Request) -> dict[str, Any]:
    sd, page = _kline_page(ctx, request, bars)
    rows = [[str(c.start), *c.fields(sd)] for c in page]
    return {"symbol": sd.symbol, "category": "linear", "list": rows}


def premium_index_kline(ctx: SimContext, request: web.Request) -> dict[str, Any]:
    """Rows [start, open, high, low, close] of the premium index (a fraction, 8 decimals)."""
    sd, page = _kline_page(ctx, request, premium_bars)
    rows = [[str(c.start), *(f"{x:.8f}" for x in c.ohlcvt[:4])] for c in page]
    return {"symbol": sd.symbol, "category": "linear", "list": rows}


def funding(ctx: SimContext, request: web.Request) -> dict[str, Any]:
    """Settled rates, newest first; `startTime` alone is an error, as documented."""
    _category(request)
    sd = _symbol(ctx, request)
    lo, hi = _times(request, "startTime", "endTime")
    if lo is not None and hi is None:
        raise BybitError("params error: startTime needs endTime (endTime alone is allowed)")
    limit, now = _limit(request, 200, 200), ctx.now_ms()
    settled = funding_history(sd, lo or 0, now if hi is None else hi, now)[-limit:]
    rows = [
        {"symbol": sd.symbol, "fundingRate": rate_str(r), "fundingRateTimestamp": str(t)}
        for t, r in reversed(settled)
    ]
    return {"category": "linear", "list": rows}


ROUTES: dict[str, Endpoint] = {
    "/v5/market/instruments-info": instruments_info,
    "/v5/market/tickers": tickers,
    "/v5/market/open-interest": open_interest,
    "/v5/market/kline": kline,
    "/v5/market/premium-index-price-kline": premium_index_kline,
    "/v5/market/funding/history": funding,
}


def setup(app: web.Application, ctx: SimContext) -> None:
    for path, fn in ROUTES.items():
        app.router.add_get(path, _handler(fn))
