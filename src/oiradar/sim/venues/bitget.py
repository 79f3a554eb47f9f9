"""Bitget v2 mix, productType USDT-FUTURES, as the simulator serves it (exchange-apis.md §4).

REST under `/api/v2/mix/market/*` in the `{"code":"00000","msg":"success","requestTime",
"data"}` envelope, every number and timestamp a string; WebSocket `/v2/ws/public` with the
`ticker` and `candle<granularity>` channels. Bitget has no public liquidation feed and no OI
history: OI now is `holdingAmount` (tickers, WS ticker) or `size` (open-interest), in base
coin, this venue's share of the market OI. Assumptions where the doc is silent (unverified):
- errors answer HTTP 400: unknown symbol `40034` "Parameter symbol does not exist" (not
  40102), missing parameter 40019, bad productType 40020, bad value 40017, a range over 90
  days 40705, startTime > endTime 40707, unknown path 40404 (HTTP 404); `limit` or
  `pageSize` above its maximum is an error rather than silently clamped;
- candles anchor at the end: the newest `limit` bars opening in [startTime, endTime] (both
  inclusive, endTime defaults to now), oldest first, so clients page backwards with endTime;
  `candles` includes the running bar, `history-candles` only closed ones; "one month" of
  1m/3m/5m is 30 days;
- non-`utc` 6H/12H/1D/3D/1W bars open at 00:00 UTC+8 (Bitget's home zone), `utc` ones at
  00:00 UTC, weeks on Mondays; 1M/1Mutc (calendar months) are not simulated; `kLineType`
  MARK and INDEX serve the market bars;
- mark = last trade price, index = mark x 0.9999, ask = last, bid = last - one tick;
  numbers are plain decimals with trailing zeros stripped, as in the doc examples;
- a symbol exists from its first bar; after the data ends it keeps its last values;
- WS: `ticker` pushes a snapshot every 300 ms simulated (the v2 doc says 300-400 ms on
  change); `candle<g>` pushes a snapshot of the last 100 bars on subscribe, then every 1 s
  simulated an `update` with every bar changed since the previous push (the just-closed bar,
  final, then the running one); rows carry 8 fields (+ USDT volume). Pushes are throttled to
  one per channel per 100 ms wall. The 2-min no-`ping` close runs on wall time, the 24 h
  forced close on simulated time; more than 10 incoming messages in a wall second closes
  the connection; over 300 connection requests per 5 min or 100 open connections per IP
  answer HTTP 429 before the upgrade; error events: 30001 unknown channel, 30002 illegal
  request (code unverified); the 240 subscribe requests/h and 1000 channels per connection
  are not enforced.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from oiradar.sim.context import (
    SimContext,
    client_ip,
    ctx_of,
    is_empty_fault,
    json_response,
    num,
    price_decimals,
    qty_decimals,
)
from oiradar.sim.limits import Rule
from oiradar.sim.market import (
    Bars,
    SymbolData,
    bars,
    completed,
    funding_history,
    funding_now,
    last_price,
    oi_at,
)
from oiradar.sim.ws import IncomingRate, Sender, drop_later, run_until_closed

VENUE = "bitget"
PREFIXES = ("/api/v2/mix/",)
PRODUCT = "USDT-FUTURES"
PRODUCTS = frozenset(
    f"{s}{c}-FUTURES" for s in ("", "S") for c in ("USDT", "COIN", "USDC")
)  # the others are valid names this simulator has no contracts for
MINUTE_MS, HOUR_MS, DAY_MS = 60_000, 3_600_000, 86_400_000
PER_ENDPOINT = Rule("endpoint", 20, 1.0)  # counted independently per endpoint
OVERALL = Rule("overall", 6000, 60.0)
WS_CONNECT = Rule("ws-connect", 300, 300.0)
MAX_WS_PER_IP = 100
MAX_RANGE_MS = 90 * DAY_MS
LIFETIME_MS = 24 * HOUR_MS
IDLE_S = 120.0  # wall seconds without a "ping" before the server hangs up
MAX_INCOMING_PER_S = 10
PUSH_WALL_S = 0.1
TICKER_MS, CANDLE_MS, SNAPSHOT_BARS = 300, 1000, 100

_STEPS = {
    "1m": MINUTE_MS, "3m": 3 * MINUTE_MS, "5m": 5 * MINUTE_MS, "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS, "1H": HOUR_MS, "4H": 4 * HOUR_MS, "6H": 6 * HOUR_MS,
    "12H": 12 * HOUR_MS, "1D": DAY_MS, "3D": 3 * DAY_MS, "1W": 7 * DAY_MS,
}  # fmt: skip
_MONDAY = 4 * DAY_MS  # 1970-01-05 00:00 UTC was a Monday
# granularity -> (bar length, open phase = bar open mod length); UTC+8 midnight = 16:00 UTC.
GRANULARITY = {g: (s, ((_MONDAY if g == "1W" else 0) - 8 * HOUR_MS) % s) for g, s in _STEPS.items()}
GRANULARITY |= {f"{g}utc": (GRANULARITY[g][0], 0) for g in ("6H", "12H", "1D", "3D")}
GRANULARITY["1Wutc"] = (7 * DAY_MS, _MONDAY)
LOOKBACK_DAYS = {"1m": 30, "3m": 30, "5m": 30, "15m": 52, "30m": 62, "1H": 83, "4H": 240,
                 "6H": 360}  # fmt: skip
_OPEN_WS = web.AppKey("bitget_open_ws", defaultdict)


class BitgetError(Exception):
    def __init__(self, code: str, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def _envelope(ctx: SimContext, data: Any, code: str = "00000", msg: str = "success",
              status: int = 200) -> web.Response:  # fmt: skip
    return json_response(
        {"code": code, "msg": msg, "requestTime": ctx.now_ms(), "data": data}, status=status
    )


def check_limits(ctx: SimContext, request: web.Request) -> web.Response | None:
    """20 req/s per IP and endpoint plus 6000 req/min per IP overall, else HTTP 429."""
    charges = [(PER_ENDPOINT, request.path, 1), (OVERALL, "", 1)]
    if ctx.limits.charge(VENUE, client_ip(request), charges).allowed:
        return None
    ctx.limits.stats[VENUE].rejected_429 += 1
    return _envelope(ctx, None, "429", "Too many requests", 429)


def _n(x: float, decimals: int) -> str:
    """A Bitget-style decimal string: fixed precision, trailing zeros stripped."""
    s = num(x, decimals)
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s == "-0" else s


# -- parameters ------------------------------------------------------------------------------


def _product(request: web.Request) -> bool:
    """Validate `productType` (case-insensitive, as in the doc's curl examples); USDT-M?"""
    raw = request.query.get("productType", "").upper()
    if not raw:
        raise BitgetError("40019", "Parameter productType cannot be empty")
    if raw not in PRODUCTS:
        raise BitgetError("40020", "Parameter productType error")
    return raw == PRODUCT


def _listed(ctx: SimContext, name: str) -> SymbolData | None:
    if not ctx.market.has(name):
        return None
    sd = ctx.market.get(name)
    return sd if sd.first_ms <= ctx.now_ms() else None


def _symbol(ctx: SimContext, request: web.Request) -> SymbolData:
    usdt = _product(request)
    name = request.query.get("symbol", "")
    if not name:
        raise BitgetError("40019", "Parameter symbol cannot be empty")
    sd = _listed(ctx, name) if usdt else None
    if sd is None:
        raise BitgetError("40034", "Parameter symbol does not exist")
    return sd


def _symbols(ctx: SimContext, request: web.Request) -> list[SymbolData]:
    """`symbol` if given, else every listed contract of the product type."""
    if request.query.get("symbol"):
        return [_symbol(ctx, request)]
    if not _product(request):
        return []
    return [sd for s in ctx.market.symbols if (sd := _listed(ctx, s)) is not None]


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
            return _envelope(ctx, fn(ctx, request))
        except BitgetError as exc:
            return _envelope(ctx, None, exc.code, exc.msg, exc.status)

    return handle


def _contract(sd: SymbolData) -> dict[str, Any]:
    pd, qd = price_decimals(sd), qty_decimals(sd)
    step, price = _n(10.0**-qd, qd), float(sd.close[0])
    return {
        "symbol": sd.symbol, "baseCoin": sd.base, "quoteCoin": "USDT",
        "buyLimitPriceRatio": "0.05", "sellLimitPriceRatio": "0.05", "feeRateUpRatio": "0.1",
        "makerFeeRate": "0.0002", "takerFeeRate": "0.0006", "openCostUpRatio": "0.1",
        "supportMarginCoins": ["USDT"], "minTradeNum": step, "priceEndStep": "1",
        "volumePlace": str(qd), "pricePlace": str(pd), "sizeMultiplier": step,
        "symbolType": "perpetual", "minTradeUSDT": "5", "maxSymbolOrderNum": "999999",
        "maxProductOrderNum": "999999", "maxPositionNum": "150", "symbolStatus": "normal",
        "offTime": "-1", "limitOpenTime": "-1", "deliveryTime": "", "deliveryStartTime": "",
        "launchTime": "", "fundInterval": str(int(sd.funding_interval_h)), "minLever": "1",
        "maxLever": "125" if price >= 1000 else "75", "posLimit": "0.05", "maintainTime": "",
        "maxMarketOrderQty": _n(1e7 / price, qd), "maxOrderQty": _n(5e7 / price, qd),
        "isRwa": "NO",
    }  # fmt: skip


def contracts(ctx: SimContext, request: web.Request) -> list[dict[str, Any]]:
    return [_contract(sd) for sd in _symbols(ctx, request)]


def _ticker(ctx: SimContext, sd: SymbolData, now: int) -> dict[str, Any]:
    """24 h stats over the closed base bars of the last day plus the running bar's open."""
    pd, qd, n = price_decimals(sd), qty_decimals(sd), len(sd.ts) - 1
    last = last_price(sd, now)
    i, j = completed(sd, now), completed(sd, now - DAY_MS)
    day = slice(j, i)
    high = max(float(sd.high[day].max()), last) if i > j else last
    low = min(float(sd.low[day].min()), last) if i > j else last
    base_vol = float(sd.volume[day].sum())
    quote_vol = float((sd.volume[day] * sd.close[day]).sum())
    open24 = float(sd.open[min(j, n)])
    open_utc = float(sd.open[min(completed(sd, now - now % DAY_MS), n)])
    rate, _ = funding_now(sd, now)
    oi = ctx.share(VENUE) * oi_at(sd, now)
    depth = _n(max(oi * 1e-4, 10.0**-qd), qd)
    return {
        "symbol": sd.symbol, "lastPr": _n(last, pd), "askPr": _n(last, pd),
        "bidPr": _n(last - 10.0**-pd, pd), "bidSz": depth, "askSz": depth,
        "high24h": _n(high, pd), "low24h": _n(low, pd), "ts": str(now),
        "change24h": _n(last / open24 - 1, 5), "baseVolume": _n(base_vol, qd),
        "quoteVolume": _n(quote_vol, 4), "usdtVolume": _n(quote_vol, 4),
        "openUtc": _n(open_utc, pd), "changeUtc24h": _n(last / open_utc - 1, 5),
        "indexPrice": _n(last * 0.9999, pd + 1), "fundingRate": _n(rate, 6),
        "holdingAmount": _n(oi, qd), "deliveryStartTime": None, "deliveryTime": None,
        "deliveryStatus": "delivery_normal", "open24h": _n(open24, pd),
        "markPrice": _n(last, pd),
    }  # fmt: skip


def tickers(ctx: SimContext, request: web.Request) -> list[dict[str, Any]]:
    syms = [] if is_empty_fault(request) else _symbols(ctx, request)
    return [_ticker(ctx, sd, ctx.now_ms()) for sd in syms]


def ticker(ctx: SimContext, request: web.Request) -> list[dict[str, Any]]:
    return [_ticker(ctx, _symbol(ctx, request), ctx.now_ms())]


def open_interest(ctx: SimContext, request: web.Request) -> dict[str, Any]:
    sd, now = _symbol(ctx, request), ctx.now_ms()
    size = _n(ctx.share(VENUE) * oi_at(sd, now), qty_decimals(sd))
    rows = [] if is_empty_fault(request) else [{"symbol": sd.symbol, "size": size}]
    return {"openInterestList": rows, "ts": str(now)}


def _bars(sd: SymbolData, gran: str, lo: int, hi: int, now: int, limit: int) -> Bars:
    """The newest `limit` bars of `gran` opening in [lo, hi] as of now, oldest first.

    `bars` opens bars on epoch multiples; a bar with a phase (UTC+8 days, Monday weeks) is
    served by shifting the time axis by the phase and back.
    """
    step, phase = GRANULARITY[gran]
    lo = max(lo, hi - (hi - phase) % step - step * (limit - 1))
    if not phase:
        return bars(sd, step, lo, hi, now)
    b = bars(replace(sd, ts=sd.ts - phase), step, lo - phase, hi - phase, now - phase)
    return replace(b, ts=b.ts + phase)


def _rows(sd: SymbolData, b: Bars, closed_only: bool = False, usdt: bool = False) -> list[Any]:
    """[ts, open, high, low, close, base volume, quote volume(, USDT volume)] strings."""
    pd, qd = price_decimals(sd), qty_decimals(sd)
    rows = []
    for k in range(len(b.ts)):
        if closed_only and not b.closed[k]:
            continue
        quote = _n(b.quote_volume[k], 4)
        prices = [_n(float(x[k]), pd) for x in (b.open, b.high, b.low, b.close)]
        row = [str(int(b.ts[k])), *prices, _n(b.volume[k], qd), quote]
        rows.append([*row, quote] if usdt else row)
    return rows


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
    return _rows(sd, _bars(sd, gran, lo, hi, now, limit), closed_only=history)


def candles(ctx: SimContext, request: web.Request) -> Any:
    return _candles(ctx, request, 1000, history=False)


def history_candles(ctx: SimContext, request: web.Request) -> Any:
    return _candles(ctx, request, 200, history=True)


def current_fund_rate(ctx: SimContext, request: web.Request) -> list[dict[str, Any]]:
    now, out = ctx.now_ms(), []
    for sd in [] if is_empty_fault(request) else _symbols(ctx, request):
        rate, next_ms = funding_now(sd, now)
        out.append({
            "symbol": sd.symbol, "fundingRate": _n(rate, 6),
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
    return [{"symbol": sd.symbol, "fundingRate": _n(r, 6), "fundingTime": str(t)}
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
    app[_OPEN_WS] = defaultdict(int)
    app.router.add_get("/v2/ws/public", handle_ws)


# -- WebSocket -------------------------------------------------------------------------------

Key = tuple[str, str]  # (channel, instId)
_WS_TICKER = (
    "instId", "lastPr", "bidPr", "askPr", "bidSz", "askSz", "open24h", "high24h", "low24h",
    "change24h", "fundingRate", "nextFundingTime", "markPrice", "indexPrice", "holdingAmount",
    "baseVolume", "quoteVolume", "openUtc", "symbolType", "symbol", "deliveryPrice", "ts",
)  # fmt: skip


@dataclass(slots=True)
class _Conn:
    ctx: SimContext
    sender: Sender
    subs: dict[Key, dict[str, str]] = field(default_factory=dict)
    due: dict[Key, int] = field(default_factory=dict)  # next push, simulated ms
    candle_open: dict[Key, int] = field(default_factory=dict)  # last pushed running bar
    last_ping: float = field(default_factory=time.monotonic)


async def handle_ws(request: web.Request) -> web.StreamResponse:
    ctx = ctx_of(request)
    ip, open_ws = client_ip(request), request.app[_OPEN_WS]
    verdict = ctx.limits.charge(VENUE, ip, [(WS_CONNECT, "", 1)])
    if not verdict.allowed or open_ws[ip] >= MAX_WS_PER_IP:
        ctx.limits.stats[VENUE].rejected_429 += 1
        return _envelope(ctx, None, "429", "Too many requests", 429)
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    ctx.limits.stats[VENUE].ws_connections += 1
    open_ws[ip] += 1
    conn = _Conn(ctx, Sender(ctx, ws, VENUE))
    try:
        await run_until_closed(
            ws,
            asyncio.create_task(_reader(conn, ws)),
            asyncio.create_task(_pusher(conn, ws)),
            asyncio.create_task(drop_later(ctx, ws, LIFETIME_MS)),
        )
    finally:
        open_ws[ip] -= 1
    return ws


async def _reader(conn: _Conn, ws: web.WebSocketResponse) -> None:
    rate = IncomingRate(MAX_INCOMING_PER_S)
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue
        if rate.exceeded():
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"Too many messages")
            return
        if msg.data == "ping":
            conn.last_ping = time.monotonic()
            await conn.sender.send("pong")
        else:
            await _command(conn, msg.data)


async def _command(conn: _Conn, text: str) -> None:
    try:
        req = json.loads(text)
        op, args = req["op"], req["args"]
    except (ValueError, KeyError, TypeError):
        op = args = None
    if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
        await conn.sender.send({"event": "error", "code": 30002, "msg": "Illegal request"})
        return
    for raw in args:
        src = raw if isinstance(raw, dict) else {"channel": raw}
        arg = {k: str(src.get(k, "")) for k in ("instType", "channel", "instId")}
        key = _channel(conn.ctx, arg)
        if key is None:
            what = ",".join(f"{k}:{v}" for k, v in arg.items())
            error = {"event": "error", "arg": arg, "code": 30001, "msg": f"{what} doesn't exist"}
            await conn.sender.send(error | {"op": op})
            continue
        conn.candle_open.pop(key, None)
        if op == "subscribe":
            conn.subs[key], conn.due[key] = arg, 0  # due now: the snapshot goes out next
        else:
            conn.subs.pop(key, None)
        await conn.sender.send({"event": op, "arg": arg})


def _channel(ctx: SimContext, arg: dict[str, str]) -> Key | None:
    sd = _listed(ctx, arg["instId"])
    if arg["instType"] != PRODUCT or sd is None:
        return None
    channel, gran = arg["channel"], arg["channel"].removeprefix("candle")
    if channel == "ticker" or (
        channel.startswith("candle") and gran in GRANULARITY
        and GRANULARITY[gran][0] % sd.bar_ms == 0
    ):  # fmt: skip
        return channel, arg["instId"]
    return None


async def _pusher(conn: _Conn, ws: web.WebSocketResponse) -> None:
    while not ws.closed:
        if time.monotonic() - conn.last_ping > IDLE_S:
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"No ping for 2 minutes")
            return
        now = conn.ctx.now_ms()
        for key, arg in list(conn.subs.items()):
            if now < conn.due.get(key, 0):
                continue
            sd = conn.ctx.market.get(key[1])
            if key[0] == "ticker":
                conn.due[key] = now + TICKER_MS
                action, data = "snapshot", [_ws_ticker(conn.ctx, sd, now)]
            else:
                conn.due[key] = now + CANDLE_MS
                action, data = _ws_candles(conn, key, sd, now)
                if not data and action == "update":
                    continue
            await conn.sender.send({"action": action, "arg": arg, "data": data, "ts": now})
        await asyncio.sleep(PUSH_WALL_S)


def _ws_ticker(ctx: SimContext, sd: SymbolData, now: int) -> dict[str, Any]:
    """The REST ticker re-keyed as the `ticker` channel's push (doc example order)."""
    _, next_ms = funding_now(sd, now)
    extra = {"instId": sd.symbol, "nextFundingTime": str(next_ms), "symbolType": 1,
             "deliveryPrice": "0"}  # fmt: skip
    full = _ticker(ctx, sd, now) | extra
    return {k: full[k] for k in _WS_TICKER}


def _ws_candles(conn: _Conn, key: Key, sd: SymbolData, now: int) -> tuple[str, list[Any]]:
    """Snapshot of the last bars first, then every bar changed since the previous push."""
    since = conn.candle_open.get(key)
    b = _bars(sd, key[0].removeprefix("candle"), since or 0, now, now, SNAPSHOT_BARS)
    conn.candle_open[key] = int(b.ts[-1]) if len(b.ts) else since or 0
    return ("snapshot" if since is None else "update"), _rows(sd, b, usdt=True)
