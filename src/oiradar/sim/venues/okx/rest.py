"""OKX v5 REST as the simulator serves it: `/api/v5/*` in the `{"code":"0","msg":"","data":
[...]}` envelope, each path's rate-limit rule keyed by IP (and by instId/instType where the
doc says so). Assumptions where the doc is silent:
- `after`/`before` (`end`/`begin`) are exclusive; with `before` alone the newest rows come
  back (the doc: "the latest data"), so page backwards with `after`. A `limit` above the
  maximum is capped; a non-numeric or zero one answers 51000, a missing required param 50014.
  `history-candles` takes up to 300 rows (the 2025 doc; older docs said 100) and includes the
  running bar too; a bar finer than the data's own is a 51000. OI-history `ts` is the
  snapshot time (OI as of `ts`, USD at that bar's close).
- The funding history keeps 90 days.
- Premium history: one sample at each base bar's close (1 minute for the synthetic market;
  OKX does not state its cadence), newest first, `after`/`before` exclusive, the latest
  6 months, 20 requests per 2 s per IP (the doc's rule "IP").
- Extras a client may call: `/api/v5/public/time` (the simulated clock) and
  `/api/v5/system/status` (nothing planned: empty list).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from aiohttp import web

from oiradar.sim.context import SimContext, client_ip, dec, is_empty_fault, json_response
from oiradar.sim.limits import Rule
from oiradar.sim.market import completed, funding_history, oi_at
from oiradar.sim.venues.okx.data import (
    CANDLE_BARS,
    DAY,
    OI_PERIODS,
    OKX,
    VENUE,
    Bar,
    Inst,
    Okx,
    candle_row,
    funding_row,
    instrument_row,
    mark_row,
    oi_row,
    parse_bar,
    ticker_row,
    too_many,
)

DEPTH = 1_440  # "can retrieve the latest 1,440 data entries"
FUNDING_KEEP_MS = 90 * DAY
PREMIUM_KEEP_MS = 183 * DAY  # premium-history: "premium data in the past 6 months"
UNKNOWN = "Instrument ID, Instrument ID code or Spread ID doesn't exist."
INST_TYPES = ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION")


class OkxError(Exception):
    def __init__(self, code: str, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


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


def instruments(v: Okx, request: web.Request) -> list[Any]:
    return [instrument_row(i) for i in _select(v, request)]


def open_interest(v: Okx, request: web.Request) -> list[Any]:
    now = v.ctx.now_ms()
    return [oi_row(v, i, now) for i in _select(v, request)]


def open_interest_history(v: Okx, request: web.Request) -> list[Any]:
    """Rows [ts, oi, oiCcy, oiUsd], newest first; OI as of ts, USD at that bar's close."""
    i, sd = (inst := _inst(v, request)), inst.sd
    bar = _bar(request, "period", OI_PERIODS, "5m")
    limit, end, begin = _limit(request, 100, 100), _ts(request, "end"), _ts(request, "begin")
    share = v.ctx.share(VENUE)
    low = bar.ceil(sd.first_ms + sd.bar_ms)  # a snapshot needs one closed bar
    rows = []
    newest = min(v.ctx.history_now_ms(VENUE), sd.end_ms)
    for t in _grid(bar, newest, low, end, begin, limit, DEPTH):
        lots = i.lots(oi_at(sd, t) * share)
        close = float(sd.close[max(completed(sd, t) - 1, 0)])
        rows.append([str(t), i.contracts(lots), i.coin_str(lots), dec(i.coin(lots) * close, 2)])
    return rows


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
        {**head, "fundingRate": dec(r, 8), "fundingTime": str(t), "realizedRate": dec(r, 8)}
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
            "premium": dec(float(closes[k - 1]), 8),
            "ts": str(sd.first_ms + k * sd.bar_ms),
        }
        for k in ks[:limit].tolist()
    ]


def tickers(v: Okx, request: web.Request) -> list[Any]:
    now = v.ctx.now_ms()
    return [ticker_row(i, now) for i in _select(v, request)]


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
