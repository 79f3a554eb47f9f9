"""Binance USD-M market streams on `/market/*` (the 2026 routing; raw `/market/ws/<stream>`,
combined `/market/stream?streams=a/b`, or `SUBSCRIBE` on `/market/ws`): liquidations, mark
price, klines.

`!forceOrder@arr` pushes at most the latest forced order per symbol per 1000 ms (the
*latest* order in each window, as documented); mark price every 3 s (or 1 s with `@1s`);
klines push the running bar when it changed ("every 250 ms (if existing)", read as: when
there is an update; the simulated market moves once per base bar) and, once more, each bar
as it closes with `x=true` (lost with `Faults.ws_lose_close`). A connection lives 24 h of simulated
time; more than 10 incoming messages a second closes it. Assumed where the doc is silent:
the lifetime and the cadences run on simulated time, and pushes are throttled to ~10 per wall
second so fast clocks do not flood clients.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from oiradar.sim.context import VENUE_SHARE, SimContext, ctx_of, num, price_decimals, qty_decimals
from oiradar.sim.market import SymbolData, bars, liquidation_orders
from oiradar.sim.venues.binance.data import INTERVALS, VENUE, WEEK_OFFSET_MS, premium_row
from oiradar.sim.ws import Sender, drop_later, run_until_closed, texts

LIFETIME_MS = 24 * 3_600_000
MAX_INCOMING_PER_S = 10
MAX_STREAMS = 1024


@dataclass(slots=True)
class Conn:
    ctx: SimContext
    sender: Sender
    combined: bool
    streams: list[str] = field(default_factory=list)
    last_ms: int = 0
    last_mark: dict[str, int] = field(default_factory=dict)
    last_kline: dict[str, int] = field(default_factory=dict)
    last_k: dict[str, Any] = field(default_factory=dict)  # the running bar last pushed


def _valid(ctx: SimContext, stream: str) -> bool:
    if stream in ("!forceOrder@arr", "!markPrice@arr", "!markPrice@arr@1s"):
        return True
    sym, _, kind = stream.partition("@")
    if not ctx.market.has(sym.upper()) or sym != sym.lower():
        return False
    if kind in ("forceOrder", "markPrice", "markPrice@1s"):
        return True
    return kind.startswith("kline_") and kind[6:] in INTERVALS


async def handle_ws(request: web.Request) -> web.WebSocketResponse:
    ctx = ctx_of(request)
    ws = web.WebSocketResponse(heartbeat=180.0)
    await ws.prepare(request)
    ctx.limits.stats[VENUE].ws_connections += 1
    combined = request.path.startswith("/market/stream")
    raw = request.match_info.get("streams") or request.query.get("streams", "")
    conn = Conn(ctx, Sender(ctx, ws, VENUE), combined, last_ms=ctx.now_ms())
    for stream in filter(None, raw.split("/")):
        if not _valid(ctx, stream):
            await ws.close(code=1008, message=b"Invalid stream name")
            return ws
        conn.streams.append(stream)
    tasks = [
        asyncio.create_task(_reader(conn, ws)),
        asyncio.create_task(_pusher(conn, ws)),
        asyncio.create_task(drop_later(ctx, ws, LIFETIME_MS)),
    ]
    await run_until_closed(ws, *tasks)
    return ws


async def _reader(conn: Conn, ws: web.WebSocketResponse) -> None:
    async for text in texts(ws, MAX_INCOMING_PER_S, b"Too many requests"):
        await _command(conn, text)


async def _command(conn: Conn, text: str) -> None:
    try:
        req = json.loads(text)
        method, rid = req.get("method"), req.get("id")
        params = req.get("params", [])
    except (ValueError, AttributeError):
        await conn.sender.send({"error": {"code": 3, "msg": "Invalid JSON"}})
        return
    if method == "LIST_SUBSCRIPTIONS":
        await conn.sender.send({"result": list(conn.streams), "id": rid})
        return
    if method not in ("SUBSCRIBE", "UNSUBSCRIBE") or not isinstance(params, list):
        await conn.sender.send(
            {"error": {"code": 2, "msg": f"Invalid request: {method}"}, "id": rid}
        )
        return
    bad = [p for p in params if not isinstance(p, str) or not _valid(conn.ctx, p)]
    if bad:
        await conn.sender.send(
            {"error": {"code": 2, "msg": f"Invalid request: unknown stream {bad[0]!r}"}, "id": rid}
        )
        return
    if method == "SUBSCRIBE":
        conn.streams.extend(p for p in params if p not in conn.streams)
        del conn.streams[MAX_STREAMS:]
    else:
        conn.streams[:] = [s for s in conn.streams if s not in params]
    await conn.sender.send({"result": None, "id": rid})


async def _pusher(conn: Conn, ws: web.WebSocketResponse) -> None:
    def liqs() -> bool:
        return any("forceOrder" in s for s in conn.streams)

    async for now in conn.ctx.pushes(ws, liqs, at_once=False):  # each tick, none at once
        if now <= conn.last_ms:
            continue
        for stream in list(conn.streams):
            for payload in _events(conn, stream, conn.last_ms, now):
                await conn.sender.send(
                    {"stream": stream, "data": payload} if conn.combined else payload
                )
        conn.last_ms = now


def _events(conn: Conn, stream: str, t0: int, t1: int) -> list[Any]:
    ctx = conn.ctx
    if stream == "!forceOrder@arr":
        out: list[Any] = []
        for s in ctx.market.symbols:
            out.extend(force_orders(ctx, ctx.market.get(s), t0, t1))
        return sorted(out, key=lambda m: m["o"]["T"])
    if stream.startswith("!markPrice@arr"):
        step = 1000 if stream.endswith("@1s") else 3000
        if not _due(conn.last_mark, stream, t1, step):
            return []
        return [[_mark(ctx, ctx.market.get(s), t1) for s in ctx.market.symbols]]
    sym, _, kind = stream.partition("@")
    sd = ctx.market.get(sym.upper())
    if kind == "forceOrder":
        return force_orders(ctx, sd, t0, t1)
    if kind.startswith("markPrice"):
        step = 1000 if kind.endswith("@1s") else 3000
        return [_mark(ctx, sd, t1)] if _due(conn.last_mark, stream, t1, step) else []
    return _klines(conn, stream, sd, kind[6:], t0, t1)


def _due(last: dict[str, int], key: str, now: int, step: int) -> bool:
    slot = now // step
    if last.get(key) == slot:
        return False
    last[key] = slot
    return True


def force_orders(ctx: SimContext, sd: SymbolData, t0: int, t1: int) -> list[dict[str, Any]]:
    """At most the latest order per symbol in each 1000 ms window (the doc's sampling)."""
    share = ctx.share(VENUE)
    latest: dict[int, Any] = {}
    for order in liquidation_orders(sd, t0, t1, ctx.venue_seed(VENUE)):
        latest[order.ts_ms // 1000] = order
    pd, qd = price_decimals(sd), qty_decimals(sd)
    out = []
    for order in latest.values():
        qty = num(order.qty_base * share, qd)
        if float(qty) == 0:
            continue
        out.append(
            {
                "e": "forceOrder",
                "E": order.ts_ms + 2,
                "o": {
                    "s": sd.symbol,
                    "S": "SELL" if order.long else "BUY",
                    "o": "LIMIT",
                    "f": "IOC",
                    "q": qty,
                    "p": num(order.price, pd),
                    "ap": num(order.price, pd),
                    "X": "FILLED",
                    "l": qty,
                    "z": qty,
                    "T": order.ts_ms,
                },
            }
        )
    return out


def _mark(ctx: SimContext, sd: SymbolData, now: int) -> dict[str, Any]:
    """premiumIndex's figures as a `markPriceUpdate`."""
    row = premium_row(sd, now)
    keys = {"p": "markPrice", "i": "indexPrice", "P": "estimatedSettlePrice"}
    prices = {k: row[v] for k, v in keys.items()}
    head = {"e": "markPriceUpdate", "E": now, "s": sd.symbol}
    return head | prices | {"r": row["lastFundingRate"], "T": row["nextFundingTime"]}


def _klines(conn: Conn, stream: str, sd: SymbolData, interval: str, t0: int, now: int) -> list[Any]:
    """The running bar on every push; first the closing update of a bar that just ended."""
    step = INTERVALS[interval]
    if step % sd.bar_ms:
        return []
    out = []
    off = WEEK_OFFSET_MS if interval == "1w" else 0
    current = now - (now - off) % step
    previous = conn.last_kline.get(stream, t0 - (t0 - off) % step)
    if previous < current and not conn.ctx.faults.lose_close():
        out.append(_kline_msg(sd, interval, step, previous, now, closed=True))
    conn.last_kline[stream] = current
    running = _kline_msg(sd, interval, step, current, now, closed=False)
    if running is not None and running["k"] != conn.last_k.get(stream):
        conn.last_k[stream] = running["k"]
        out.append(running)
    return [m for m in out if m is not None]


def _kline_msg(
    sd: SymbolData, interval: str, step: int, open_ms: int, now: int, closed: bool
) -> dict[str, Any] | None:
    b = bars(sd, step, open_ms, open_ms, now, WEEK_OFFSET_MS if interval == "1w" else 0).share(
        VENUE_SHARE[VENUE]
    )
    if not len(b.ts):
        return None
    pd, qd = price_decimals(sd), qty_decimals(sd)
    return {
        "e": "kline",
        "E": now,
        "s": sd.symbol,
        "k": {
            "t": open_ms,
            "T": open_ms + step - 1,
            "s": sd.symbol,
            "i": interval,
            "f": 1,
            "L": int(b.trades[0]) + 1,
            "o": num(b.open[0], pd),
            "c": num(b.close[0], pd),
            "h": num(b.high[0], pd),
            "l": num(b.low[0], pd),
            "v": num(b.volume[0], qd),
            "n": int(b.trades[0]),
            "x": bool(closed and b.closed[0]),
            "q": num(b.quote_volume[0], 4),
            "V": num(b.taker_buy[0], qd),
            "Q": num(b.quote_volume[0] * (b.taker_buy[0] / b.volume[0] if b.volume[0] else 0.5), 4),
            "B": "0",
        },
    }


def setup(app: web.Application) -> None:
    app.router.add_get("/market/ws", handle_ws)
    app.router.add_get("/market/ws/{streams:.+}", handle_ws)
    app.router.add_get("/market/stream", handle_ws)
