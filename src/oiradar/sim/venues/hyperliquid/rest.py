"""Hyperliquid `POST /info` as the simulator serves it (exchange-apis.md §9.1, §11.2-11.4):
`meta`, `metaAndAssetCtxs`, `candleSnapshot` and `fundingHistory`, within 1,200 weight per
minute per IP — 20 per request, plus one per 60 candles or 20 funding rows returned,
counted after the reply (so it is the next request that finds the budget spent).

Over the budget: HTTP 429 with the JSON body `null` and no Retry-After. A body that is not
JSON, or not a known request, is HTTP 422 `text/plain` "Failed to deserialize the JSON body
into the target type". Assumptions where nothing is recorded:
- a coin the universe lacks gets `[]` from `candleSnapshot` and `fundingHistory`;
- `candleSnapshot` serves bars opening in [startTime, endTime] (endTime defaults to now),
  only the latest 5,000 per coin and interval, ascending, the running bar included;
- `fundingHistory` serves the first 500 settlements at or after `startTime` (up to
  `endTime`), ascending;
- the surcharge rounds up (60 candles or fewer cost one more).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from oiradar.sim.context import SimContext, client_ip, ctx_of, is_empty_fault, json_response
from oiradar.sim.limits import Rule
from oiradar.sim.market import bars
from oiradar.sim.venues.hyperliquid.data import (
    INTERVALS,
    VENUE,
    Coin,
    candle_row,
    coins,
    ctx_row,
    funding_rows,
    universe_row,
)

WEIGHT = Rule("weight", 1200, 60.0)
BASE_WEIGHT = 20
CANDLE_DEPTH, FUNDING_PAGE = 5000, 500
BAD_BODY = "Failed to deserialize the JSON body into the target type"


class BadRequest(Exception):
    """HTTP 422: the body is not one of the known requests."""


def check_limits(ctx: SimContext, request: web.Request) -> web.Response | None:
    """20 weight per request (the row surcharge is charged by the handler), else 429."""
    stats = ctx.limits.stats[VENUE]
    stats.weight += BASE_WEIGHT
    if ctx.limits.charge(VENUE, client_ip(request), [(WEIGHT, "", BASE_WEIGHT)]).allowed:
        return None
    stats.rejected_429 += 1
    return web.Response(status=429, body=b"null", content_type="application/json")


def _surcharge(ctx: SimContext, request: web.Request, rows: int, per: int) -> None:
    """The weight of the rows just served: counted now, felt by the next request."""
    extra = -(-rows // per)
    if extra:
        ctx.limits.stats[VENUE].weight += extra
        ctx.limits.charge(VENUE, client_ip(request), [(WEIGHT, "", extra)])


def _coin(ctx: SimContext, name: Any) -> Coin | None:
    return next((c for c in coins(ctx) if c.name == name), None)


def _int(body: dict[str, Any], key: str, default: int | None = None) -> int:
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(key)
    return value


def meta(ctx: SimContext, request: web.Request, body: dict[str, Any]) -> Any:
    universe = [] if is_empty_fault(request) else coins(ctx)
    return {"universe": [universe_row(c) for c in universe]}


def meta_and_ctxs(ctx: SimContext, request: web.Request, body: dict[str, Any]) -> Any:
    universe, now = ([] if is_empty_fault(request) else coins(ctx)), ctx.now_ms()
    return [{"universe": [universe_row(c) for c in universe]},
            [ctx_row(ctx, c, now) for c in universe]]  # fmt: skip


def candle_snapshot(ctx: SimContext, request: web.Request, body: dict[str, Any]) -> Any:
    req = body.get("req")
    if not isinstance(req, dict) or req.get("interval") not in INTERVALS:
        raise BadRequest("req")
    now, interval = ctx.now_ms(), str(req["interval"])
    step = INTERVALS[interval]
    start, end = _int(req, "startTime"), _int(req, "endTime", now)
    c = _coin(ctx, req.get("coin"))
    if c is None or step % c.sd.bar_ms or is_empty_fault(request):
        return []
    oldest = (now // step - (CANDLE_DEPTH - 1)) * step
    b = bars(c.sd, step, max(start, oldest), end, now)
    _surcharge(ctx, request, len(b.ts), 60)
    return [candle_row(c, interval, step, k, b) for k in range(len(b.ts))]


def funding_history(ctx: SimContext, request: web.Request, body: dict[str, Any]) -> Any:
    now = ctx.now_ms()
    start, end = _int(body, "startTime"), _int(body, "endTime", now)
    c = _coin(ctx, body.get("coin"))
    if c is None or is_empty_fault(request):
        return []
    rows = funding_rows(c, start, end, now)[:FUNDING_PAGE]
    _surcharge(ctx, request, len(rows), 20)
    return rows


REQUESTS: dict[str, Callable[[SimContext, web.Request, dict[str, Any]], Any]] = {
    "meta": meta,
    "metaAndAssetCtxs": meta_and_ctxs,
    "candleSnapshot": candle_snapshot,
    "fundingHistory": funding_history,
}


def _answer(ctx: SimContext, request: web.Request, raw: bytes) -> Any:
    body = json.loads(raw)
    if not isinstance(body, dict) or body.get("type") not in REQUESTS:
        raise BadRequest("type")
    return REQUESTS[str(body["type"])](ctx, request, body)


async def info(request: web.Request) -> web.Response:
    try:
        return json_response(_answer(ctx_of(request), request, await request.read()))
    except (ValueError, BadRequest):
        return web.Response(status=422, text=BAD_BODY, content_type="text/plain")


def setup(app: web.Application, ctx: SimContext) -> None:
    app.router.add_post("/info", info)
