"""OKX v5 public market data, instType SWAP (USDT-margined linear), as the simulator serves it.

REST under `/api/v5/*` in the `{"code":"0","msg":"","data":[...]}` envelope (this module) and
WebSockets on `/ws/v5/public` and `/ws/v5/business` (`okx_ws`), per exchange-apis.md §3.
Assumptions where the doc is silent:
- `ctVal` = 10^floor(log10(1000 / first price)), so a contract is worth 100-1000 USDT at
  listing (BTC 0.01, ETH 0.1, a 0.1 USDT coin 10000); `lotSz` = `minSz` = 0.01 contract.
  Contract counts round to the lot, so `oiCcy` = `oi` x `ctVal` and `volCcy` = `vol` x `ctVal`
  exactly. Numbers drop trailing zeros, as OKX's do; `listTime` is the data's first bar.
- OKX carries its VENUE_SHARE of OI and liquidations; candle and ticker volumes are the whole
  market's (as the Binance venue does).
- Candle and OI-history grids align to the UTC epoch; 6H and longer without the `utc` suffix
  open at UTC+8 midnight, weeks on Monday, months on the 1st; the first bar may start before
  the data (partial, like a listing day); a bar finer than the data's own is a 51000.
  A running candle aggregates the closed base bars and the running one's open (`confirm`
  "0"); `history-candles` includes it too. OI-history `ts` is the snapshot time (OI as of
  `ts`, USD at that bar's close).
- `after`/`before` (`end`/`begin`) are exclusive; with `before` alone the newest rows come
  back (the doc: "the latest data"), so page backwards with `after`. A `limit` above the
  maximum is capped; a non-numeric or zero one answers 51000, a missing required param 50014.
  `history-candles` takes up to 300 rows (the 2025 doc; older docs said 100).
- Funding: `realizedRate` = `fundingRate`; `premium` = rate minus the interest part
  (0.01 % per 8 h); `settState` is always "settled"; the history keeps 90 days.
- Premium history: one sample at each base bar's close (1 minute for the synthetic market;
  OKX does not state its cadence), newest first, `after`/`before` exclusive, the latest
  6 months, 20 requests per 2 s per IP (the doc's rule "IP").
- Extras a client may call: `/api/v5/public/time` (the simulated clock) and
  `/api/v5/system/status` (nothing planned: empty list).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from aiohttp import web

from oiradar.sim.context import (
    SimContext,
    client_ip,
    is_empty_fault,
    json_response,
    price_decimals,
)
from oiradar.sim.limits import Rule
from oiradar.sim.market import (
    SymbolData,
    completed,
    funding_history,
    funding_now,
    last_price,
    oi_at,
)

VENUE = "okx"
PREFIXES = ("/api/v5/",)
HOUR, DAY = 3_600_000, 86_400_000
LOT_DP = 2  # lotSz 0.01 contract
DEPTH = 1_440  # "can retrieve the latest 1,440 data entries"
FUNDING_KEEP_MS = 90 * DAY
PREMIUM_KEEP_MS = 183 * DAY  # premium-history: "premium data in the past 6 months"
RATE_CAP = 0.00375
UNKNOWN = "Instrument ID, Instrument ID code or Spread ID doesn't exist."
INST_TYPES = ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION")
_LONG = ("6H", "12H", "1D", "2D", "3D", "1W", "1M", "3M")
CANDLE_BARS = frozenset(
    ("1m", "3m", "5m", "15m", "30m", "1H", "2H", "4H", *_LONG, *(b + "utc" for b in _LONG))
)
_LONG_OI = (*_LONG, "5D")
OI_PERIODS = frozenset(
    ("5m", "15m", "30m", "1H", "2H", "4H", *_LONG_OI, *(b + "utc" for b in _LONG_OI))
)
_UNIT_MS = {"m": 60_000, "H": HOUR, "D": DAY, "W": 7 * DAY}


class OkxError(Exception):
    def __init__(self, code: str, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


def _dec(x: float, dp: int) -> str:
    """OKX-style decimal string: `dp` decimals at most, no trailing zeros."""
    s = f"{x:.{dp}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _pow10(exp: int) -> str:
    return str(10**exp) if exp >= 0 else f"{10.0**exp:.{-exp}f}"


def _month_ms(index: int) -> int:
    return int(datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC).timestamp() * 1000)


def _month_index(t: int) -> int:
    d = datetime.fromtimestamp(t / 1000, UTC)
    return d.year * 12 + d.month - 1


@dataclass(frozen=True, slots=True)
class Bar:
    """A bar or period: `step_ms` (or calendar `months`), its grid shifted by `offset_ms`."""

    step_ms: int
    months: int = 0
    offset_ms: int = 0

    def floor(self, t: int) -> int:
        """Open of the bar holding `t`."""
        if self.months:
            m = _month_index(t - self.offset_ms) // self.months * self.months
            return _month_ms(m) + self.offset_ms
        return (t - self.offset_ms) // self.step_ms * self.step_ms + self.offset_ms

    def next(self, t: int) -> int:
        if self.months:
            return _month_ms(_month_index(t - self.offset_ms) + self.months) + self.offset_ms
        return t + self.step_ms

    def prev(self, t: int) -> int:
        return self.floor(t - 1)

    def ceil(self, t: int) -> int:
        return self.next(self.floor(t - 1))


def parse_bar(text: str, allowed: frozenset[str]) -> Bar | None:
    """'5m' / '1H' / '1D' (UTC+8) / '1Dutc' -> Bar; None when the venue does not know it."""
    if text not in allowed:
        return None
    body = text.removesuffix("utc")
    n, unit = int(body[:-1]), body[-1]
    shift = 0 if text.endswith("utc") or unit == "m" or (unit == "H" and n < 6) else 8 * HOUR
    if unit == "M":
        return Bar(0, n, -shift)
    return Bar(n * _UNIT_MS[unit], 0, (4 * DAY if unit == "W" else 0) - shift)


def _grid(
    bar: Bar, top: int, low: int, older: int | None, newer: int | None, limit: int, depth: int
) -> list[int]:
    """Bar opens newest first in [low, top], the latest `depth` only, strictly between cursors."""
    t = bar.floor(top)
    if depth and bar.step_ms:
        low = max(low, t - (depth - 1) * bar.step_ms)
    if older is not None:
        t = min(t, bar.floor(older - 1))
    if newer is not None:
        low = max(low, bar.ceil(newer + 1))
    out: list[int] = []
    while t >= low and len(out) < limit:
        out.append(t)
        t = bar.prev(t)
    return out


@dataclass(frozen=True, slots=True)
class Inst:
    """One swap: `ctVal` = 10**ct_exp coin per contract; sizes travel as integer lots."""

    inst_id: str
    sd: SymbolData
    ct_exp: int
    px_dp: int

    @property
    def family(self) -> str:
        return self.inst_id.removesuffix("-SWAP")

    def lots(self, base: float) -> int:
        return max(0, round(base * 10.0 ** (LOT_DP - self.ct_exp)))

    def contracts(self, lots: int) -> str:
        return _dec(lots / 10**LOT_DP, LOT_DP)

    def coin(self, lots: int) -> float:
        return lots * 10.0 ** (self.ct_exp - LOT_DP)

    def coin_str(self, lots: int) -> str:
        return _dec(self.coin(lots), max(0, LOT_DP - self.ct_exp))

    def px(self, price: float) -> str:
        return _dec(price, self.px_dp)


class Okx:
    """The venue's state: instrument ids over the market's symbols, connection ids."""

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.ids = {f"{s.removesuffix('USDT')}-USDT-SWAP": s for s in ctx.market.symbols}
        self._insts: dict[str, Inst] = {}
        self.conn_seq = itertools.count(1)

    def inst(self, inst_id: str) -> Inst | None:
        """The live instrument, or None (unknown, or not listed yet at simulated now)."""
        symbol = self.ids.get(inst_id)
        if symbol is None:
            return None
        inst = self._insts.get(inst_id)
        if inst is None:
            sd = self.ctx.market.get(symbol)
            exp = math.floor(math.log10(1000 / max(float(sd.close[0]), 1e-9)))
            inst = self._insts[inst_id] = Inst(inst_id, sd, exp, price_decimals(sd))
        return inst if inst.sd.first_ms <= self.ctx.now_ms() else None

    def insts(self) -> list[Inst]:
        return [i for i in map(self.inst, self.ids) if i is not None]


OKX = web.AppKey("okx", Okx)


def _need(request: web.Request, name: str) -> str:
    raw = request.query.get(name, "")
    if not raw:
        raise OkxError("50014", f"Parameter {name} can not be empty.")
    return raw


def _ts(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name, "")
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise OkxError("51000", f"Parameter {name} error")
    return int(raw)


def _limit(request: web.Request, default: int, maximum: int) -> int:
    raw = request.query.get("limit", "")
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) == 0:
        raise OkxError("51000", "Parameter limit error")
    return min(int(raw), maximum)


def _bar(request: web.Request, name: str, allowed: frozenset[str], default: str) -> Bar:
    bar = parse_bar(request.query.get(name) or default, allowed)
    if bar is None:
        raise OkxError("51000", f"Parameter {name} error")
    return bar


def _inst(v: Okx, request: web.Request) -> Inst:
    inst = v.inst(_need(request, "instId"))
    if inst is None:
        raise OkxError("51001", UNKNOWN)
    return inst


def _select(v: Okx, request: web.Request) -> list[Inst]:
    """instType (required; only SWAP has instruments here), optional instFamily and instId."""
    inst_type = _need(request, "instType")
    if inst_type not in INST_TYPES:
        raise OkxError("51000", "Parameter instType error")
    if inst_type != "SWAP":
        return []
    chosen = [_inst(v, request)] if request.query.get("instId") else v.insts()
    family = request.query.get("instFamily") or request.query.get("uly")
    return [i for i in chosen if i.family == family] if family else chosen


# Fields that are the same for every USDT swap here (sizes in contracts).
_SWAP_STATIC = {
    **dict.fromkeys(("alias", "baseCcy", "expTime", "optType", "quoteCcy", "stk"), ""),
    **dict.fromkeys(("maxIcebergSz", "maxLmtSz", "maxTriggerSz", "maxTwapSz"), "100000000"),
    **dict.fromkeys(("maxMktSz", "maxStopSz"), "10000"),
    **dict.fromkeys(("lotSz", "minSz"), _pow10(-LOT_DP)),
    "category": "1", "ctMult": "1", "ctType": "linear", "groupId": "2", "instType": "SWAP",
    "ruleType": "normal", "settleCcy": "USDT", "state": "live",
}  # fmt: skip


def instrument_row(i: Inst) -> dict[str, Any]:
    lever = "100" if i.sd.base in ("BTC", "ETH") else "50"
    return {**_SWAP_STATIC, "ctVal": _pow10(i.ct_exp), "ctValCcy": i.sd.base, "lever": lever,
            "instFamily": i.family, "instId": i.inst_id, "listTime": str(i.sd.first_ms),
            "tickSz": _pow10(-i.px_dp), "uly": i.family}  # fmt: skip


def instruments(v: Okx, request: web.Request) -> list[Any]:
    return [instrument_row(i) for i in _select(v, request)]


def oi_row(v: Okx, i: Inst, now: int) -> dict[str, Any]:
    lots = i.lots(oi_at(i.sd, now) * v.ctx.share(VENUE))
    usd = i.coin(lots) * last_price(i.sd, now)
    return {"instId": i.inst_id, "instType": "SWAP", "oi": i.contracts(lots),
            "oiCcy": i.coin_str(lots), "oiUsd": _dec(usd, 2), "ts": str(now)}  # fmt: skip


def open_interest(v: Okx, request: web.Request) -> list[Any]:
    now = v.ctx.now_ms()
    return [oi_row(v, i, now) for i in _select(v, request)]


def open_interest_history(v: Okx, request: web.Request) -> list[Any]:
    """Rows [ts, oi, oiCcy, oiUsd], newest first; OI as of ts, USD at that bar's close."""
    i, sd = (inst := _inst(v, request)), inst.sd
    bar = _bar(request, "period", OI_PERIODS, "5m")
    limit, end, begin = _limit(request, 100, 100), _ts(request, "end"), _ts(request, "begin")
    now, share = v.ctx.now_ms(), v.ctx.share(VENUE)
    low = bar.ceil(sd.first_ms + sd.bar_ms)  # a snapshot needs one closed bar
    rows = []
    for t in _grid(bar, min(now, sd.end_ms), low, end, begin, limit, DEPTH):
        lots = i.lots(oi_at(sd, t) * share)
        close = float(sd.close[max(completed(sd, t) - 1, 0)])
        rows.append([str(t), i.contracts(lots), i.coin_str(lots), _dec(i.coin(lots) * close, 2)])
    return rows


def candle_row(i: Inst, bar: Bar, t: int, now: int) -> list[str]:
    """[ts,o,h,l,c,vol(contracts),volCcy(coin),volCcyQuote(USDT),confirm] as of `now`."""
    sd = i.sd
    i0, end = max(0, (t - sd.first_ms) // sd.bar_ms), bar.next(t)
    i1 = min((end - sd.first_ms) // sd.bar_ms, completed(sd, now))
    o = h = lo = c = float(sd.open[i0])
    vol = quote = 0.0
    if i1 > i0:
        seg = slice(i0, i1)
        h, lo, c = float(sd.high[seg].max()), float(sd.low[seg].min()), float(sd.close[i1 - 1])
        vol, quote = float(sd.volume[seg].sum()), float((sd.volume[seg] * sd.close[seg]).sum())
    lots = i.lots(vol)
    confirm = "1" if end <= min(now, sd.end_ms) else "0"
    return [str(t), i.px(o), i.px(h), i.px(lo), i.px(c), i.contracts(lots), i.coin_str(lots),
            _dec(quote, 4), confirm]  # fmt: skip


def _candles(v: Okx, request: web.Request, maximum: int, depth: int) -> list[Any]:
    i = _inst(v, request)
    bar = _bar(request, "bar", CANDLE_BARS, "1m")
    limit, after, before = (
        _limit(request, 100, maximum),
        _ts(request, "after"),
        _ts(request, "before"),
    )
    sd, now = i.sd, v.ctx.now_ms()
    if bar.step_ms % sd.bar_ms or bar.offset_ms % sd.bar_ms:  # finer than the recorded bars
        raise OkxError("51000", "Parameter bar error")
    top = min(now, sd.end_ms - 1)
    opens = _grid(bar, top, bar.floor(sd.first_ms), after, before, limit, depth)
    return [candle_row(i, bar, t, now) for t in opens]


def candles(v: Okx, request: web.Request) -> list[Any]:
    return _candles(v, request, 300, DEPTH)


def history_candles(v: Okx, request: web.Request) -> list[Any]:
    return _candles(v, request, 300, 0)


def funding_row(v: Okx, i: Inst, now: int) -> dict[str, Any]:
    sd = i.sd
    rate, next_t = funding_now(sd, now)
    step = int(sd.funding_interval_h * HOUR)
    settled = funding_history(sd, next_t - step, next_t - step, now)
    interest = 0.0001 * sd.funding_interval_h / 8
    return {
        "instId": i.inst_id, "instType": "SWAP", "method": "current_period",
        "formulaType": "withRate", "fundingRate": _dec(rate, 8), "nextFundingRate": "",
        "fundingTime": str(next_t), "nextFundingTime": str(next_t + step),
        "minFundingRate": _dec(-RATE_CAP, 8), "maxFundingRate": _dec(RATE_CAP, 8),
        "interestRate": _dec(interest, 8), "impactValue": "20000", "settState": "settled",
        "settFundingRate": _dec(settled[-1][1] if settled else rate, 8),
        "premium": _dec(rate - interest, 8), "ts": str(now),
    }  # fmt: skip


def funding_rate(v: Okx, request: web.Request) -> list[Any]:
    now = v.ctx.now_ms()
    chosen = v.insts() if _need(request, "instId") == "ANY" else [_inst(v, request)]
    return [funding_row(v, i, now) for i in chosen]


def funding_rate_history(v: Okx, request: web.Request) -> list[Any]:
    i = _inst(v, request)
    limit, after, before = _limit(request, 400, 400), _ts(request, "after"), _ts(request, "before")
    now = v.ctx.now_ms()
    lo = max(now - FUNDING_KEEP_MS, before + 1 if before is not None else 0)
    hi = now if after is None else min(now, after - 1)
    settled = funding_history(i.sd, lo, hi, now)[::-1][:limit]
    head = {"formulaType": "withRate", "instId": i.inst_id, "instType": "SWAP",
            "method": "current_period"}  # fmt: skip
    return [
        {**head, "fundingRate": _dec(r, 8), "fundingTime": str(t), "realizedRate": _dec(r, 8)}
        for t, r in settled
    ]


def premium_history(v: Okx, request: web.Request) -> list[Any]:
    """Premium samples newest first, one at each base bar's close, the latest 6 months."""
    i = _inst(v, request)
    limit, after, before = _limit(request, 100, 100), _ts(request, "after"), _ts(request, "before")
    sd, now = i.sd, v.ctx.now_ms()
    lo = max(now - PREMIUM_KEEP_MS, sd.first_ms + sd.bar_ms, (before or 0) + 1)
    hi = min(now, sd.end_ms, now if after is None else after - 1)
    # Sample k is the close of base bar k - 1, at first_ms + k x bar.
    ks = np.arange((hi - sd.first_ms) // sd.bar_ms, -(-(lo - sd.first_ms) // sd.bar_ms) - 1, -1)
    closes = sd.premium_close
    return [
        {
            "instId": i.inst_id,
            "premium": _dec(float(closes[k - 1]), 8),
            "ts": str(sd.first_ms + k * sd.bar_ms),
        }
        for k in ks[:limit].tolist()
    ]


def _ticker(i: Inst, now: int) -> dict[str, Any]:
    """24 h rolling stats; volumes are contracts (vol24h) and coin (volCcy24h)."""
    sd, last = i.sd, last_price(i.sd, now)
    seg = slice(completed(sd, now - DAY), completed(sd, now))
    span = seg.stop > seg.start
    lots = i.lots(float(sd.volume[seg].sum()))
    size = max(1, i.lots(float(sd.volume[max(seg.stop - 1, 0)]) / 500))
    day8 = (now + 8 * HOUR) // DAY * DAY - 8 * HOUR
    return {
        "instType": "SWAP", "instId": i.inst_id, "last": i.px(last),
        "lastSz": i.contracts(size), "askPx": i.px(last + 10.0**-i.px_dp),
        "askSz": i.contracts(3 * size), "bidPx": i.px(last), "bidSz": i.contracts(2 * size),
        "open24h": i.px(last_price(sd, now - DAY)),
        "high24h": i.px(max(float(sd.high[seg].max()), last) if span else last),
        "low24h": i.px(min(float(sd.low[seg].min()), last) if span else last),
        "volCcy24h": i.coin_str(lots), "vol24h": i.contracts(lots), "ts": str(now),
        "sodUtc0": i.px(last_price(sd, now // DAY * DAY)), "sodUtc8": i.px(last_price(sd, day8)),
    }  # fmt: skip


def tickers(v: Okx, request: web.Request) -> list[Any]:
    now = v.ctx.now_ms()
    return [_ticker(i, now) for i in _select(v, request)]


def mark_row(i: Inst, now: int) -> dict[str, Any]:
    return {"instType": "SWAP", "instId": i.inst_id, "markPx": i.px(last_price(i.sd, now)),
            "ts": str(now)}  # fmt: skip


def mark_price(v: Okx, request: web.Request) -> list[Any]:
    now = v.ctx.now_ms()
    return [mark_row(i, now) for i in _select(v, request)]


def server_time(v: Okx, request: web.Request) -> list[Any]:
    return [{"ts": str(v.ctx.now_ms())}]


def system_status(v: Okx, request: web.Request) -> list[Any]:
    return []  # nothing planned


Endpoint = Callable[[Okx, web.Request], list[Any]]
# path -> (handler, rate-limit rule, query parameter that keys the rule besides the IP)
ENDPOINTS: dict[str, tuple[Endpoint, Rule, str]] = {
    "/api/v5/public/instruments": (instruments, Rule("instruments", 20, 2.0), "instType"),
    "/api/v5/public/open-interest": (open_interest, Rule("open-interest", 20, 2.0), "instId"),
    "/api/v5/rubik/stat/contracts/open-interest-history": (
        open_interest_history, Rule("oi-history", 10, 2.0), "instId"),
    "/api/v5/market/candles": (candles, Rule("candles", 40, 2.0), ""),
    "/api/v5/market/history-candles": (history_candles, Rule("history-candles", 20, 2.0), ""),
    "/api/v5/public/funding-rate": (funding_rate, Rule("funding-rate", 10, 2.0), "instId"),
    "/api/v5/public/funding-rate-history": (
        funding_rate_history, Rule("funding-history", 10, 2.0), "instId"),
    "/api/v5/public/premium-history": (premium_history, Rule("premium-history", 20, 2.0), ""),
    "/api/v5/market/tickers": (tickers, Rule("tickers", 20, 2.0), ""),
    "/api/v5/public/mark-price": (mark_price, Rule("mark-price", 10, 2.0), "instId"),
    "/api/v5/public/time": (server_time, Rule("time", 10, 2.0), ""),
    "/api/v5/system/status": (system_status, Rule("status", 1, 5.0), ""),
}  # fmt: skip


def too_many() -> web.Response:
    return json_response({"code": "50011", "msg": "Too Many Requests", "data": []}, status=429)


def check_limits(ctx: SimContext, request: web.Request) -> web.Response | None:
    """Per-endpoint windows keyed by IP (and by instId/instType where the doc says so)."""
    entry = ENDPOINTS.get(request.path)
    if entry is None:
        return None
    _, rule, key = entry
    charge = [(rule, request.query.get(key, "") if key else "", 1)]
    if ctx.limits.charge(VENUE, client_ip(request), charge).allowed:
        return None
    ctx.limits.stats[VENUE].rejected_429 += 1
    return too_many()


def _handler(v: Okx, fn: Endpoint) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            data = fn(v, request)
        except OkxError as exc:
            return json_response({"code": exc.code, "msg": exc.msg, "data": []})
        return json_response(
            {"code": "0", "msg": "", "data": [] if is_empty_fault(request) else data}
        )

    return handle


def setup(app: web.Application, ctx: SimContext) -> None:
    v = app[OKX] = Okx(ctx)
    for path, (fn, _, _) in ENDPOINTS.items():
        app.router.add_get(path, _handler(v, fn))
    from oiradar.sim.venues.okx_ws import ws_business, ws_public

    app.router.add_get("/ws/v5/public", ws_public)
    app.router.add_get("/ws/v5/business", ws_business)
