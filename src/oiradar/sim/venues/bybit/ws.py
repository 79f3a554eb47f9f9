"""Bybit v5 linear public WebSocket on `/v5/public/linear`, as the simulator serves it:
`tickers`, `allLiquidation` and `kline` topics. Assumptions where the doc is silent:
- an unknown topic answers "error:handler not found,topic:<t>", an unknown symbol
  "Invalid symbol :[<t>]" (valid args of the same request are still subscribed); the idle
  cut (no client message for 10 min) runs on wall time, as clients ping on wall time (not
  divided by `limit_scale`, which is for rate limits); `SimConfig.extra["bybit_idle_s"]`
  shortens it for tests;
- pushes tick every 100 ms simulated but at most 10 times per wall second; at fast clocks
  one `allLiquidation` message carries every order since the last push (not replaying more
  than 10 simulated minutes after a clock jump), and `v` is rounded to the lot step (at
  least one lot); a kline push repeats only when the candle changed, and after a clock jump
  at most the last 20 candles are pushed; a candle's closing push (`confirm` true) is lost
  with `Faults.ws_lose_close`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from oiradar.sim.context import SimContext, ctx_of, num
from oiradar.sim.context import price_decimals as price_dec
from oiradar.sim.context import qty_decimals as qty_dec
from oiradar.sim.market import LiqOrder, SymbolData, last_price, liquidation_orders
from oiradar.sim.server import CONFIG
from oiradar.sim.venues.bybit.data import (
    INTERVALS,
    MIN_MS,
    VENUE,
    candles,
    floor_open,
    serves,
    ticker_fields,
)
from oiradar.sim.ws import Sender, drop_later, run_until_closed

IDLE_S = 600.0  # no client message for 10 minutes: the venue hangs up
ARGS_CAP = 21_000  # characters of subscribed args per public connection
_conn_ids = itertools.count(1)


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
    if interval and not serves(sd, interval):
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
    fields = ticker_fields(conn.ctx, sd, now)
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
    lo = topic.since_ms if topic.last else floor_open(iv, now)
    keys = ("open", "high", "low", "close", "volume", "turnover")  # the order of c.fields()
    for c in candles(sd, iv, lo, now, now)[-20:]:
        ohlcvt = dict(zip(keys, c.fields(sd), strict=True))
        data = {"start": c.start, "end": c.end, "interval": iv, **ohlcvt, "confirm": c.closed}
        if data == topic.last:
            continue
        topic.last, topic.since_ms = data, c.start
        if c.closed and conn.ctx.faults.lose_close():
            continue
        row = {**data, "timestamp": c.end if c.closed else now}
        await conn.sender.send({"topic": name, "data": [row], "ts": now, "type": "snapshot"})


PUSHERS = {"tickers": _push_ticker, "allLiquidation": _push_liquidations, "kline": _push_kline}


async def _push(conn: Conn) -> None:
    """At each shared tick (100 ms of wall time: the doc's 100 ms at speed 1)."""

    def liqs() -> bool:
        return any(t.kind == "allLiquidation" for t in conn.topics.values())

    async for now in conn.ctx.pushes(conn.ws, liqs):
        for name, topic in list(conn.topics.items()):
            await PUSHERS[topic.kind](conn, name, topic, now)


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


def setup(app: web.Application) -> None:
    app.router.add_get("/v5/public/linear", handle_ws)
