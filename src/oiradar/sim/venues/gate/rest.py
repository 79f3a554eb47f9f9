"""Gate APIv4 futures REST, settle `usdt`, as the simulator serves it (exchange-apis.md §10):
`/api/v4/futures/usdt/*`, 200 requests per 10 s per endpoint per IP (HTTP 429 label
`TOO_MANY_REQUESTS`, `X-Gate-RateLimit-*` headers on every answer). Errors are non-2xx with
`{"label", "message"}`. Assumptions where the doc is silent:
- unknown contract: HTTP 400 `CONTRACT_NOT_FOUND` (most recordings; one mock says 404);
  missing parameter 400 `MISSING_REQUIRED_PARAM`; a bad value 400 `INVALID_PARAM_VALUE`;
  only `settle=usdt` is simulated (`btc` lists nothing);
- candlesticks: `from`/`to` are both inclusive; without `from` it is `to - 100 x interval`;
  `limit` (the newest points up to now) conflicts with `from`/`to` (rejected, as the doc
  says); more than 2,000 points, or a `from` older than 10,000 points before now, is a 400
  ("Candlestick too long ago. Maximum 10000 points ago are allowed"); ascending; the running
  bar is served; `mark_`/`index_` prefixes serve the market bars without `v`;
- funding_rate: the newest `limit` (default 100, at most 1,000) settlements in [`from`,
  `to`], **newest first** (the doc does not say; the client must not care);
- contract_stats: with `from`, the first `limit` rows at or after it, else the newest
  `limit`; ascending; default 30, at most 100 (the SDK's client check); every row since the
  data began is kept (the real depth is undocumented);
- `limit`/`offset` out of range are errors, not clamped; liq_orders is not simulated.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from oiradar.sim.context import (
    SimContext,
    add_headers,
    client_ip,
    ctx_of,
    dec,
    is_empty_fault,
    json_response,
)
from oiradar.sim.limits import Rule
from oiradar.sim.market import bars, funding_history
from oiradar.sim.venues.gate.data import (
    CANDLE_INTERVALS,
    STATS_INTERVALS,
    VENUE,
    Contract,
    candle_row,
    contract_row,
    contracts,
    stat_times,
    stats_row,
    ticker_row,
)

PER_ENDPOINT = Rule("endpoint", 200, 10.0)
BASE = "/api/v4/futures/{settle}/"
MAX_POINTS, DEPTH_POINTS = 2000, 10_000
TOO_LONG_AGO = "Candlestick too long ago. Maximum 10000 points ago are allowed"


class GateError(Exception):
    def __init__(self, label: str, message: str = "", status: int = 400) -> None:
        super().__init__(message)
        self.label, self.message, self.status = label, message, status


def check_limits(ctx: SimContext, request: web.Request) -> web.Response | None:
    """200 requests per 10 s per endpoint and IP, else HTTP 429; usage headers either way."""
    verdict = ctx.limits.charge(VENUE, client_ip(request), [(PER_ENDPOINT, request.path, 1)])
    used = verdict.used.get(PER_ENDPOINT.name, 0)
    headers = {"X-Gate-RateLimit-Limit": str(PER_ENDPOINT.limit),
               "X-Gate-RateLimit-Requests-Remain": str(max(0, PER_ENDPOINT.limit - used)),
               "X-Gate-RateLimit-Reset-Timestamp": str(ctx.now_ms() // 1000)}  # fmt: skip
    if verdict.allowed:
        add_headers(request, headers)
        return None
    ctx.limits.stats[VENUE].rejected_429 += 1
    body = {"label": "TOO_MANY_REQUESTS", "message": "Request Rate Limit Exceeded"}
    return json_response(body, status=429, headers=headers)


# -- parameters ------------------------------------------------------------------------------


def _settled(ctx: SimContext, request: web.Request) -> dict[str, Contract]:
    settle = request.match_info["settle"]
    if settle not in ("usdt", "btc"):
        raise GateError("INVALID_PARAM_VALUE", f"invalid settle {settle}")
    return contracts(ctx) if settle == "usdt" else {}


def _contract(ctx: SimContext, request: web.Request) -> Contract:
    name = request.query.get("contract", "")
    if not name:
        raise GateError("MISSING_REQUIRED_PARAM", "contract is required")
    found = _settled(ctx, request).get(name.removeprefix("mark_").removeprefix("index_"))
    if found is None:
        raise GateError("CONTRACT_NOT_FOUND")
    return found


def _int(request: web.Request, name: str, default: int | None = None,
         lo: int | None = None, hi: int | None = None) -> int | None:  # fmt: skip
    raw = request.query.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise GateError("INVALID_PARAM_VALUE", f"invalid {name}: {raw}") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise GateError("INVALID_PARAM_VALUE", f"{name} out of range: {value}")
    return value


# -- endpoints -------------------------------------------------------------------------------

Endpoint = Callable[[SimContext, web.Request], Any]


def _handler(fn: Endpoint) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        ctx = ctx_of(request)
        try:
            return json_response(fn(ctx, request))
        except GateError as exc:
            body = {"label": exc.label, "message": exc.message}
            return json_response(body, status=exc.status)

    return handle


def list_contracts(ctx: SimContext, request: web.Request) -> list[dict[str, Any]]:
    limit = _int(request, "limit", 100, 1, 1000) or 100
    offset = _int(request, "offset", 0, 0) or 0
    rows = [] if is_empty_fault(request) else list(_settled(ctx, request).values())
    now = ctx.now_ms()
    return [contract_row(ctx, c, now) for c in rows[offset : offset + limit]]


def one_contract(ctx: SimContext, request: web.Request) -> dict[str, Any]:
    found = _settled(ctx, request).get(request.match_info["contract"])
    if found is None:
        raise GateError("CONTRACT_NOT_FOUND")
    return contract_row(ctx, found, ctx.now_ms())


def tickers(ctx: SimContext, request: web.Request) -> list[dict[str, Any]]:
    chosen = ([_contract(ctx, request)] if request.query.get("contract")
              else list(_settled(ctx, request).values()))  # fmt: skip
    now = ctx.now_ms()
    return [] if is_empty_fault(request) else [ticker_row(ctx, c, now) for c in chosen]


def candlesticks(ctx: SimContext, request: web.Request) -> list[dict[str, Any]]:
    c, now = _contract(ctx, request), ctx.now_ms()
    name = request.query.get("interval", "5m")
    step = CANDLE_INTERVALS.get(name)
    if step is None or (step * 1000) % c.sd.bar_ms:
        raise GateError("INVALID_PARAM_VALUE", f"invalid interval {name}")
    start, end = _int(request, "from"), _int(request, "to")
    limit = _int(request, "limit", None, 1, MAX_POINTS)
    if limit is not None and (start is not None or end is not None):
        raise GateError("INVALID_PARAM_VALUE", "limit conflicts with from and to")
    hi = end if end is not None else now // 1000
    lo = start if start is not None else hi - (limit or 100) * step
    points = (hi - lo) // step + 1
    if points > MAX_POINTS and limit is None:
        raise GateError("INVALID_PARAM_VALUE", f"Too many points requested: {points}")
    if lo < now // 1000 - DEPTH_POINTS * step:
        raise GateError("INVALID_PARAM_VALUE", TOO_LONG_AGO)
    if is_empty_fault(request):
        return []
    b = bars(c.sd, step * 1000, lo * 1000, hi * 1000, now)
    keep = range(max(0, len(b.ts) - limit), len(b.ts)) if limit else range(len(b.ts))
    market = request.query["contract"] == c.name  # not a mark_/index_ series: with volume
    return [candle_row(c, b, k, market) for k in keep]


def funding_rate(ctx: SimContext, request: web.Request) -> list[dict[str, Any]]:
    c, now = _contract(ctx, request), ctx.now_ms()
    limit = _int(request, "limit", 100, 1, 1000) or 100
    lo, hi = _int(request, "from", 0) or 0, _int(request, "to", now // 1000) or 0
    if is_empty_fault(request):
        return []
    settled = funding_history(c.sd, lo * 1000, hi * 1000 + 999, now)[-limit:]
    return [{"t": t // 1000, "r": dec(r, 8)} for t, r in reversed(settled)]


def contract_stats(ctx: SimContext, request: web.Request) -> list[dict[str, Any]]:
    c, now = _contract(ctx, request), ctx.now_ms()
    name = request.query.get("interval", "5m")
    step = STATS_INTERVALS.get(name)
    if step is None:
        raise GateError("INVALID_PARAM_VALUE", f"invalid interval {name}")
    limit = _int(request, "limit", 30, 1, 100) or 30
    start = _int(request, "from")
    times = stat_times(c.sd, step, now)
    times = times[times >= start][:limit] if start is not None else times[-limit:]
    if is_empty_fault(request):
        return []
    return [stats_row(ctx, c, int(t), step, now) for t in times]


def _not_found(ctx: SimContext, request: web.Request) -> Any:
    raise GateError("NOT_FOUND", "Not found", 404)


ROUTES: dict[str, Endpoint] = {
    "contracts": list_contracts, "contracts/{contract}": one_contract, "tickers": tickers,
    "candlesticks": candlesticks, "funding_rate": funding_rate,
    "contract_stats": contract_stats,
}  # fmt: skip


def setup(app: web.Application, ctx: SimContext) -> None:
    for name, fn in ROUTES.items():
        app.router.add_get(BASE + name, _handler(fn))
    app.router.add_get("/api/v4/futures/{tail:.*}", _handler(_not_found))
