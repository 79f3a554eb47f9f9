"""Bybit v5, category `linear`, as the simulator serves it (exchange-apis.md §2).

REST under `/v5/market/*` in the `{"retCode","retMsg","result","retExtInfo","time"}` envelope
(errors: HTTP 200, retCode 10001); WebSocket on `/v5/public/linear`. OI is served as Bybit
does: `openInterest` both sides (2 x this venue's share of the market OI, base units),
`singleOpenInterest` one side; values in USDT = base x mark. Assumptions where the doc is silent:
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
- instruments: sorted by symbol, cursor `first%3D<sym>%26last%3D<sym>`;
- WS: an unknown topic answers "error:handler not found,topic:<t>", an unknown symbol
  "Invalid symbol :[<t>]" (valid args of the same request are still subscribed); the idle
  cut (no client message for 10 min) runs on wall time, as clients ping on wall time (not
  divided by `limit_scale`, which is for rate limits); `SimConfig.extra["bybit_idle_s"]`
  shortens it for tests;
- WS pushes tick every 100 ms simulated but at most 10 times per wall second; at fast clocks
  one `allLiquidation` message carries every order since the last push (not replaying more
  than 10 simulated minutes after a clock jump), and `v` is rounded to the lot step (at
  least one lot); a kline push repeats only when the candle changed, and after a clock jump
  at most the last 20 candles are pushed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote

from aiohttp import WSCloseCode, WSMsgType, web

from oiradar.sim.context import SimContext, client_ip, ctx_of, is_empty_fault, json_response, num
from oiradar.sim.context import price_decimals as price_dec
from oiradar.sim.context import qty_decimals as qty_dec
from oiradar.sim.limits import Rule
from oiradar.sim.market import (
    Bars,
    LiqOrder,
    SymbolData,
    bars,
    completed,
    funding_history,
    funding_now,
    last_price,
    liquidation_orders,
    oi_at,
    oi_snapshots,
    premium_bars,
)
from oiradar.sim.server import CONFIG
from oiradar.sim.ws import Sender, drop_later, run_until_closed

VENUE = "bybit"
PREFIXES = ("/v5/market/",)
MIN_MS, HOUR_MS, DAY_MS = 60_000, 3_600_000, 86_400_000
IP_RULE = Rule("ip", 600, 5.0)  # requests per 5 s per IP, all REST traffic
BAN_S = IDLE_S = 600.0
ARGS_CAP = 21_000  # characters of subscribed args per public connection
MINUTES = (1, 3, 5, 15, 30, 60, 120, 240, 360, 720)
# M is a calendar month; 31 days only bounds how far back a page may reach.
INTERVALS = {
    **{str(m): m * MIN_MS for m in MINUTES},
    "D": DAY_MS,
    "W": 7 * DAY_MS,
    "M": 31 * DAY_MS,
}
OI_PERIODS = {
    "5min": 5 * MIN_MS,
    "15min": 15 * MIN_MS,
    "30min": 30 * MIN_MS,
    "1h": HOUR_MS,
    "4h": 4 * HOUR_MS,
    "1d": DAY_MS,
}
NO_DELIVERY = dict.fromkeys(
    ("predictedDeliveryPrice", "basisRate", "deliveryFeeRate", "basis", "preOpenPrice", "preQty"),
    "",
)
_conn_ids = itertools.count(1)


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


def _rate(x: float) -> str:
    """Funding rate as Bybit prints it: up to 8 decimals, no trailing zeros."""
    text = f"{x:.8f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _instrument(sd: SymbolData) -> dict[str, Any]:
    pd, qd, p0 = price_dec(sd), qty_dec(sd), float(sd.close[0])
    tick, step, most = num(10.0**-pd, pd), num(10.0**-qd, qd), num(round(5e6 / p0, qd), qd)
    return {
        "symbol": sd.symbol,
        "contractType": "LinearPerpetual",
        "status": "Trading",
        "baseCoin": sd.base,
        "quoteCoin": "USDT",
        "settleCoin": "USDT",
        "launchTime": str(sd.first_ms),
        "deliveryTime": "0",
        "priceScale": str(pd),
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "50.00", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": tick, "maxPrice": num(p0 * 100, pd), "tickSize": tick},
        "lotSizeFilter": {
            "maxOrderQty": most,
            "maxMktOrderQty": most,
            "minOrderQty": step,
            "qtyStep": step,
            "postOnlyMaxOrderQty": most,
            "minNotionalValue": "5",
        },
        "fundingInterval": int(sd.funding_interval_h * 60),  # minutes
        "upperFundingRate": "0.005",
        "lowerFundingRate": "-0.005",
        "copyTrading": "both",
        "isPreListing": False,
        "preListingInfo": None,
    }


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
    return {"category": "linear", "list": [_instrument(s) for s in page], "nextPageCursor": cursor}


def _ticker(ctx: SimContext, sd: SymbolData, now: int) -> dict[str, str]:
    """All linear ticker fields, as strings; OI both sides = 2 x single side exactly."""
    pd, qd = price_dec(sd), qty_dec(sd)
    last = last_price(sd, now)
    day = slice(completed(sd, now - DAY_MS), completed(sd, now))
    prev24 = last_price(sd, now - DAY_MS)
    rate, next_ms = funding_now(sd, now)
    single = round(oi_at(sd, now) * ctx.share(VENUE), qd)
    single_usd = round(single * round(last, pd), 2)  # value = size x the mark as printed
    depth = num(float(sd.volume[max(day.stop - 1, 0)]) * 0.02, qd)  # best bid/ask size
    return {
        "symbol": sd.symbol,
        "lastPrice": num(last, pd),
        "indexPrice": num(last * 0.9999, pd),
        "markPrice": num(last, pd),
        "prevPrice24h": num(prev24, pd),
        "price24hPcnt": f"{last / prev24 - 1:.6f}",
        "highPrice24h": num(float(sd.high[day].max(initial=last)), pd),
        "lowPrice24h": num(float(sd.low[day].min(initial=last)), pd),
        "prevPrice1h": num(last_price(sd, now - HOUR_MS), pd),
        "openInterest": num(2 * single, qd),
        "openInterestValue": num(2 * single_usd, 2),
        "singleOpenInterest": num(single, qd),
        "singleOpenInterestValue": num(single_usd, 2),
        "turnover24h": num(float((sd.volume[day] * sd.close[day]).sum()), 4),
        "volume24h": num(float(sd.volume[day].sum()), qd),
        "fundingRate": _rate(rate),
        "nextFundingTime": str(next_ms),
        "fundingIntervalHour": str(int(sd.funding_interval_h)),
        "fundingCap": "0.005",
        "bid1Price": num(last - 10.0**-pd, pd),
        "bid1Size": depth,
        "ask1Price": num(last, pd),
        "ask1Size": depth,
    }


def tickers(ctx: SimContext, request: web.Request) -> dict[str, Any]:
    _category(request)
    one, now = _maybe_symbol(ctx, request), ctx.now_ms()
    chosen = [one] if one else [ctx.market.get(s) for s in ctx.market.symbols]
    rows = [_ticker(ctx, sd, now) | NO_DELIVERY for sd in chosen if sd.first_ms <= now]
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
    times, oi, _ = oi_snapshots(sd, period, lo or 0, hi, now)
    qd, share = qty_dec(sd), ctx.share(VENUE)
    newest = zip(times[-limit:][::-1].tolist(), oi[-limit:][::-1].tolist(), strict=True)
    rows = [_oi_row(t, round(o * share, qd), qd) for t, o in newest]
    cursor = f"lastid%3D{rows[-1]['timestamp']}" if rows and len(times) > limit else ""
    return {"symbol": sd.symbol, "category": "linear", "list": rows, "nextPageCursor": cursor}


def _oi_row(ts_ms: int, single: float, qd: int) -> dict[str, str]:
    """Both sides = 2 x the one side exactly, in base units; timestamp as a string."""
    return {
        "openInterest": num(2 * single, qd),
        "singleOpenInterest": num(single, qd),
        "timestamp": str(ts_ms),
    }


BarSource = Callable[[SymbolData, int, int, int, int], Bars]


@dataclass(frozen=True, slots=True)
class Candle:
    start: int
    end: int  # last ms of the candle
    closed: bool
    ohlcvt: tuple[float, ...]  # open, high, low, close, volume (coin), turnover (USDT)

    def fields(self, sd: SymbolData) -> list[str]:
        """open, high, low, close, volume (coin), turnover (USDT) as Bybit strings."""
        pd, (o, h, lo, c, v, t) = price_dec(sd), self.ohlcvt
        return [*(num(x, pd) for x in (o, h, lo, c)), num(v, qty_dec(sd)), num(t, 4)]


def _floor(interval: str, t: int) -> int:
    """Open time of the candle holding `t`: epoch multiples, Mondays (W), the 1st (M), UTC."""
    if interval == "M":
        d = datetime.fromtimestamp(t / 1000, tz=UTC)
        return int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp() * 1000)
    offset = 4 * DAY_MS if interval == "W" else 0  # 1970-01-05 was a Monday
    step = INTERVALS[interval]
    return (t - offset) // step * step + offset


def _next(interval: str, t: int) -> int:
    return _floor(interval, t + 32 * DAY_MS) if interval == "M" else t + INTERVALS[interval]


def _candles(
    sd: SymbolData, interval: str, lo: int, hi: int, now: int, source: BarSource = bars
) -> list[Candle]:
    """Candles opening in [lo, hi], ascending, the last maybe forming; none before the data.
    `source` aggregates base bars: trades (`bars`) or the premium index (`premium_bars`)."""
    if interval not in ("W", "M"):
        step = INTERVALS[interval]
        b = source(sd, step, lo, hi, now)
        cols = zip(b.open, b.high, b.low, b.close, b.volume, b.quote_volume, strict=True)
        return [
            Candle(int(t), int(t) + step - 1, bool(x), tuple(map(float, row)))
            for t, x, row in zip(b.ts, b.closed, cols, strict=True)
        ]
    out, first = [], max(lo, sd.first_ms)
    t = _floor(interval, first)
    t = t if t >= first else _next(interval, t)
    while t <= min(hi, now):
        u = _next(interval, t)
        d = source(sd, DAY_MS, t, u - 1, now)  # weeks and months are built from days
        if len(d.ts):
            ohlc = (d.open[0], d.high.max(), d.low.min(), d.close[-1])
            sums = (d.volume.sum(), d.quote_volume.sum())
            closed = bool(d.closed.all()) and u <= now
            out.append(Candle(t, u - 1, closed, tuple(float(x) for x in (*ohlc, *sums))))
        t = u
    return out


def _serves(sd: SymbolData, interval: str) -> bool:
    """Intervals the symbol's base bar can build (weeks and months are built from days)."""
    step = DAY_MS if interval in ("W", "M") else INTERVALS.get(interval, 1)
    return interval in INTERVALS and step % sd.bar_ms == 0


def _kline_page(
    ctx: SimContext, request: web.Request, source: BarSource
) -> tuple[SymbolData, list[Candle]]:
    """Candles newest first; from `start` forward when given, else back from `end` (or now)."""
    _category(request)
    sd = _symbol(ctx, request)
    interval = request.query.get("interval", "")
    if not _serves(sd, interval):
        raise BybitError("Invalid period!")
    start, end = _times(request, "start", "end")
    limit, now = _limit(request, 200, 1000), ctx.now_ms()
    hi, span = min(now, now if end is None else end), INTERVALS[interval] * limit
    if start is None:
        candles = _candles(sd, interval, hi - span, hi, now, source)[-limit:]
    else:
        lo = _floor(interval, start)
        candles = _candles(sd, interval, lo, min(hi, lo + span - 1), now, source)[:limit]
    return sd, candles[::-1]


def kline(ctx: SimContext, request: web.Request) -> dict[str, Any]:
    sd, candles = _kline_page(ctx, request, bars)
    rows = [[str(c.start), *c.fields(sd)] for c in candles]
    return {"symbol": sd.symbol, "category": "linear", "list": rows}


def premium_index_kline(ctx: SimContext, request: web.Request) -> dict[str, Any]:
    """Rows [start, open, high, low, close] of the premium index (a fraction, 8 decimals)."""
    sd, candles = _kline_page(ctx, request, premium_bars)
    rows = [[str(c.start), *(f"{x:.8f}" for x in c.ohlcvt[:4])] for c in candles]
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
        {"symbol": sd.symbol, "fundingRate": _rate(r), "fundingRateTimestamp": str(t)}
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


# -- WebSocket -------------------------------------------------------------------------------


@dataclass(slots=True)
class Topic:
    """One subscription and what was last pushed on it."""

    kind: str
    sd: SymbolData
    interval: str = ""
    since_ms: int = 0  # liquidations: pushed up to here; kline: open of the last candle sent
    last: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Conn:
    ctx: SimContext
    ws: web.WebSocketResponse
    sender: Sender
    conn_id: str
    topics: dict[str, Topic] = field(default_factory=dict)
    seq: int = 0
    heard: float = 0.0  # wall time of the last client message (idle cut)

    def reply(self, op: str, req_id: str, ok: bool, msg: str) -> Awaitable[None]:
        body = {"success": ok, "ret_msg": msg, "conn_id": self.conn_id, "req_id": req_id}
        return self.sender.send({**body, "op": op})


def _topic(ctx: SimContext, arg: str) -> Topic | str:
    """The parsed topic, or the venue's refusal message."""
    kind, *rest = arg.split(".")
    interval = rest[0] if kind == "kline" and len(rest) == 2 else ""
    arity = 2 if kind == "kline" else 1
    if kind not in PUSHERS or len(rest) != arity or (arity == 2 and interval not in INTERVALS):
        return f"error:handler not found,topic:{arg}"
    if not ctx.market.has(rest[-1]) or ctx.market.get(rest[-1]).first_ms > ctx.now_ms():
        return f"Invalid symbol :[{arg}]"
    sd = ctx.market.get(rest[-1])
    if interval and not _serves(sd, interval):
        return f"error:handler not found,topic:{arg}"
    return Topic(kind, sd, interval, ctx.now_ms() // 500 * 500)


async def _subscribe(conn: Conn, req: dict[str, Any], req_id: str) -> None:
    args = [str(a) for a in req.get("args") or []]
    size = sum(len(a) for a in [*conn.topics, *args])
    if size > ARGS_CAP:
        await conn.reply("subscribe", req_id, False, f"args length {size} > {ARGS_CAP}")
        return
    parsed = {a: _topic(conn.ctx, a) for a in args}
    refused = [t for t in parsed.values() if isinstance(t, str)]
    await conn.reply("subscribe", req_id, not refused, refused[0] if refused else "")
    conn.topics.update({a: t for a, t in parsed.items() if isinstance(t, Topic)})


async def _unsubscribe(conn: Conn, req: dict[str, Any], req_id: str) -> None:
    for arg in req.get("args") or []:
        conn.topics.pop(str(arg), None)
    await conn.reply("unsubscribe", req_id, True, "")


async def _ping(conn: Conn, req: dict[str, Any], req_id: str) -> None:
    await conn.reply("ping", req_id, True, "pong")


OPS = {"subscribe": _subscribe, "unsubscribe": _unsubscribe, "ping": _ping}


async def _read(conn: Conn) -> None:
    async for msg in conn.ws:
        if msg.type is not WSMsgType.TEXT:
            continue
        conn.heard = conn.ctx.limits.now()
        try:
            req = json.loads(msg.data)
            op, req_id = str(req.get("op", "")), str(req.get("req_id", ""))
        except (ValueError, AttributeError):
            await conn.reply("", "", False, "error:request must be a JSON object")
            continue
        if op in OPS:
            await OPS[op](conn, req, req_id)
        else:
            await conn.reply(op, req_id, False, f"error:unknown op {op!r}")


async def _push_ticker(conn: Conn, name: str, topic: Topic, now: int) -> None:
    """A snapshot first, then deltas carrying only the fields that changed (plus symbol)."""
    sd = topic.sd
    fields = _ticker(conn.ctx, sd, now)
    up = last_price(sd, now) >= last_price(sd, now - sd.bar_ms)
    fields["tickDirection"] = "PlusTick" if up else "MinusTick"
    changed = {k: v for k, v in fields.items() if topic.last.get(k) != v}
    if not changed:
        return
    kind = "delta" if topic.last else "snapshot"
    data = fields if kind == "snapshot" else {"symbol": sd.symbol, **changed}
    topic.last, conn.seq = fields, conn.seq + 1
    msg = {"topic": name, "type": kind, "data": data, "cs": 10**10 + conn.seq}
    await conn.sender.send({**msg, "ts": now})


async def _push_liquidations(conn: Conn, name: str, topic: Topic, now: int) -> None:
    """Every forced order since the last push; `S` is the liquidated position's side."""
    edge, sd, ctx = now // 500 * 500, topic.sd, conn.ctx
    if edge <= topic.since_ms:
        return
    t0 = max(topic.since_ms, edge - 10 * MIN_MS)
    orders, topic.since_ms = liquidation_orders(sd, t0, edge, ctx.venue_seed(VENUE)), edge
    if orders:
        data = [_liquidation(o, sd, ctx.share(VENUE)) for o in orders]
        await conn.sender.send({"topic": name, "type": "snapshot", "ts": edge, "data": data})


def _liquidation(o: LiqOrder, sd: SymbolData, share: float) -> dict[str, Any]:
    """`S` Buy = a long was liquidated; `v` in coin (whole lots, at least one), `p` price."""
    qd = qty_dec(sd)
    size = num(max(round(o.qty_base * share, qd), 10.0**-qd), qd)
    side = "Buy" if o.long else "Sell"
    return {"T": o.ts_ms, "s": sd.symbol, "S": side, "v": size, "p": num(o.price, price_dec(sd))}


async def _push_kline(conn: Conn, name: str, topic: Topic, now: int) -> None:
    """The forming candle when it changed, and each candle once more as it closes."""
    sd, iv = topic.sd, topic.interval
    lo = topic.since_ms if topic.last else _floor(iv, now)
    keys = ("open", "high", "low", "close", "volume", "turnover")  # the order of c.fields()
    for c in _candles(sd, iv, lo, now, now)[-20:]:
        ohlcvt = dict(zip(keys, c.fields(sd), strict=True))
        data = {"start": c.start, "end": c.end, "interval": iv, **ohlcvt, "confirm": c.closed}
        if data == topic.last:
            continue
        topic.last, topic.since_ms = data, c.start
        row = {**data, "timestamp": c.end if c.closed else now}
        await conn.sender.send({"topic": name, "data": [row], "ts": now, "type": "snapshot"})


PUSHERS = {"tickers": _push_ticker, "allLiquidation": _push_liquidations, "kline": _push_kline}


async def _push(conn: Conn) -> None:
    """Every 100 ms simulated, but at most 10 ticks per wall second."""
    while not conn.ws.closed:
        now = conn.ctx.now_ms()
        for name, topic in list(conn.topics.items()):
            await PUSHERS[topic.kind](conn, name, topic, now)
        speed = conn.ctx.clock.speed
        await asyncio.sleep(max(0.1, 0.1 / speed) if speed > 0 else 0.1)


async def _idle_cut(conn: Conn, idle_s: float) -> None:
    """Close after `idle_s` (10 minutes) of wall time without a message from the client."""
    limits = conn.ctx.limits
    while not conn.ws.closed:
        left = conn.heard + idle_s - limits.now()
        if left <= 0:
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"idle timeout")
            return
        await asyncio.sleep(min(left, 1.0))


async def handle_ws(request: web.Request) -> web.WebSocketResponse:
    ctx = ctx_of(request)
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    ctx.limits.stats[VENUE].ws_connections += 1
    conn_id = f"sim{ctx.seed}-{next(_conn_ids)}"
    conn = Conn(ctx, ws, Sender(ctx, ws, VENUE), conn_id, heard=ctx.limits.now())
    idle_s = float(request.app[CONFIG].extra.get("bybit_idle_s", IDLE_S))
    jobs = (_read(conn), _push(conn), _idle_cut(conn, idle_s), drop_later(ctx, ws, None))
    await run_until_closed(ws, *(asyncio.create_task(j) for j in jobs))
    return ws


def setup(app: web.Application, ctx: SimContext) -> None:
    for path, fn in ROUTES.items():
        app.router.add_get(path, _handler(fn))
    app.router.add_get("/v5/public/linear", handle_ws)
