"""Hyperliquid WebSocket `/ws` as the simulator serves it (exchange-apis.md §9.1, §11.4): the
`activeAssetCtx` (OI, funding, mark per coin), `trades` and `candle` subscriptions and
`{"method":"ping"}` -> `{"channel":"pong"}`. No liquidation channel exists, as on
Hyperliquid.

`{"method":"subscribe","subscription":{...}}` is acknowledged with `subscriptionResponse`;
a request that does not parse, or names a subscription type not simulated, answers
`{"channel":"error","data":"Error parsing JSON into valid websocket request: ..."}` (the
measured wording). Per IP: 10 open connections (HTTP 429 before the upgrade beyond), 1,000
subscriptions (an error beyond), 2,000 client messages a minute (beyond: the connection is
closed). Assumptions where the docs are silent:
- a context is pushed on subscribe, then whenever it changed, checked every second of
  simulated time (throttled to one tick per 100 ms of wall time); pushes carry no time, as
  the real ones do not;
- an unknown coin answers an error ("Invalid subscription") and subscribes nothing;
- `trades`: one trade per coin per simulated second at the last price (the market has no
  trade tape), rows `{coin, side, px, sz, time, hash, tid, users}`, batched per push; after
  a clock jump only the last minute is sent;
- `candle` (`{"type":"candle","coin":C,"interval":I}`, I as `candleSnapshot` takes it):
  `{"channel":"candle","data":{T,c,h,i,l,n,o,s,t,v}}`, one row a message as `candleSnapshot`
  serves it, the running bar whenever it changed (checked with the contexts), without a
  closed flag or a push time, as the SDKs' schemas show the native channel. Native pushes
  follow trades, so a bar's last push holds its last trade; here a running bar grows a base
  bar at a time, so the first check after a close first pushes the closed bar's final row
  (as the doc of a mirror of the feed describes: "when a candle closes and a new one opens,
  both events are sent"), then the new bar's. `--ws-lose-close` does not apply: there is
  no closing message to lose (a dropped connection is what leaves a bar without its end);
- the 60 s idle rule runs on wall time, counting what the server sent (pongs included);
  `SimConfig.extra["hyperliquid_idle_s"]` shortens it for tests.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from oiradar.sim.context import SimContext, client_ip, ctx_of
from oiradar.sim.market import bars
from oiradar.sim.server import CONFIG
from oiradar.sim.venues.hyperliquid.data import (
    INTERVALS,
    VENUE,
    Coin,
    candle_row,
    coins,
    ctx_row,
    trade_row,
)
from oiradar.sim.ws import Sender, drop_later, run_until_closed

PUSH_MS = 1000
TRADES_CATCHUP_MS = 60_000
IDLE_S = 60.0
MAX_CONNECTIONS, MAX_SUBSCRIPTIONS, MAX_MESSAGES_PER_MIN = 10, 1000, 2000
PARSE_ERROR = "Error parsing JSON into valid websocket request: "
_PER_IP = web.AppKey("hyperliquid_per_ip", defaultdict)


@dataclass(slots=True)
class IpState:
    connections: int = 0
    subscriptions: int = 0
    sent: list[float] = field(default_factory=list)  # wall times of client messages, 60 s


@dataclass(slots=True)
class Conn:
    ctx: SimContext
    ws: web.WebSocketResponse
    sender: Sender
    ip: IpState
    subs: dict[str, Coin] = field(default_factory=dict)
    trades: dict[str, Coin] = field(default_factory=dict)
    candles: dict[tuple[str, str], Coin] = field(default_factory=dict)  # (coin, interval)
    candle_open: dict[tuple[str, str], int] = field(default_factory=dict)  # its running bar
    candle_last: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    traded_to: int = 0  # trades pushed up to this simulated second (ms)
    last: dict[str, dict[str, Any]] = field(default_factory=dict)
    due: int = 0
    heard_from_us: float = field(default_factory=time.monotonic)

    async def send(self, payload: Any) -> None:
        await self.sender.send(payload)
        self.heard_from_us = time.monotonic()


async def _subscription(conn: Conn, method: str, sub: Any, text: str) -> None:
    kind = sub.get("type") if isinstance(sub, dict) else None
    interval = sub.get("interval") if kind == "candle" else None
    if kind not in ("activeAssetCtx", "trades", "candle") or (
        kind == "candle" and interval not in INTERVALS
    ):
        await conn.send({"channel": "error", "data": PARSE_ERROR + text})
        return
    coin = next((c for c in coins(conn.ctx) if c.name == sub.get("coin")), None)
    if coin is None or (interval is not None and INTERVALS[interval] % coin.sd.bar_ms):
        await conn.send({"channel": "error", "data": f"Invalid subscription {text}"})
        return
    table: dict[Any, Coin] = (
        conn.subs if kind == "activeAssetCtx" else conn.trades if kind == "trades" else conn.candles
    )
    key: Any = coin.name if interval is None else (coin.name, str(interval))
    if method == "subscribe" and key not in table:
        if conn.ip.subscriptions >= MAX_SUBSCRIPTIONS:
            await conn.send({"channel": "error", "data": "Too many subscriptions"})
            return
        conn.ip.subscriptions += 1
        table[key] = coin
        conn.due = 0
    elif method == "unsubscribe" and table.pop(key, None) is not None:
        conn.ip.subscriptions -= 1
        if interval is None:
            conn.last.pop(coin.name, None)
        else:
            conn.candle_open.pop(key, None)
            conn.candle_last.pop(key, None)
    response = {"method": method, "subscription": sub}
    await conn.send({"channel": "subscriptionResponse", "data": response})


async def _command(conn: Conn, text: str) -> bool:
    """Handle one client message; False once the connection must close (message flood)."""
    now = time.monotonic()
    conn.ip.sent = [t for t in conn.ip.sent if now - t < 60.0] + [now]
    if len(conn.ip.sent) > MAX_MESSAGES_PER_MIN:
        return False
    try:
        req = json.loads(text)
        method = req["method"]
    except (ValueError, KeyError, TypeError):
        await conn.send({"channel": "error", "data": PARSE_ERROR + text})
        return True
    if method == "ping":
        await conn.send({"channel": "pong"})
    elif method in ("subscribe", "unsubscribe"):
        await _subscription(conn, str(method), req.get("subscription"), text)
    else:
        await conn.send({"channel": "error", "data": PARSE_ERROR + text})
    return True


async def _reader(conn: Conn) -> None:
    async for msg in conn.ws:
        if msg.type is WSMsgType.TEXT and not await _command(conn, str(msg.data)):
            await conn.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"rate limited")
            return


async def _pusher(conn: Conn, idle_s: float) -> None:
    async for now in conn.ctx.pushes(conn.ws):
        if time.monotonic() - conn.heard_from_us > idle_s:
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"idle")
            return
        await _push_trades(conn, now)
        if now >= conn.due:
            conn.due = now + PUSH_MS
            for name, coin in list(conn.subs.items()):
                row = ctx_row(conn.ctx, coin, now)
                if conn.last.get(name) != row:
                    conn.last[name] = row
                    await conn.send({"channel": "activeAssetCtx",
                                     "data": {"coin": name, "ctx": row}})  # fmt: skip
            for key, coin in list(conn.candles.items()):
                for row in _candle_pushes(conn, key, coin, now):
                    await conn.send({"channel": "candle", "data": row})


def _candle_pushes(conn: Conn, key: tuple[str, str], coin: Coin, now: int) -> list[Any]:
    """The rows to push for one candle subscription: a closed bar's final row first (at the
    first check after its close), then the running bar's, each only if it changed."""
    interval = key[1]
    step = INTERVALS[interval]
    opened, before = now // step * step, conn.candle_open.get(key)
    out = []
    if before is not None and before < opened:
        b = bars(coin.sd, step, before, before, now)
        final = candle_row(coin, interval, step, 0, b) if len(b.ts) else None
        if final is not None and final != conn.candle_last.get(key):
            out.append(final)
    b = bars(coin.sd, step, opened, opened, now)
    if len(b.ts):
        row = candle_row(coin, interval, step, 0, b)
        if row != conn.candle_last.get(key):
            out.append(row)
            conn.candle_last[key] = row
    conn.candle_open[key] = opened
    return out


async def _push_trades(conn: Conn, now: int) -> None:
    """One trade per subscribed coin per completed simulated second since the last push."""
    edge = now // 1000 * 1000
    start = max(conn.traded_to, edge - TRADES_CATCHUP_MS) + 1000
    conn.traded_to = edge
    for coin in conn.trades.values():
        rows = [trade_row(coin, t) for t in range(start, edge + 1, 1000)]
        if rows:
            await conn.send({"channel": "trades", "data": rows})


async def handle_ws(request: web.Request) -> web.StreamResponse:
    ctx = ctx_of(request)
    ip = request.app[_PER_IP][client_ip(request)]
    if ip.connections >= MAX_CONNECTIONS:
        ctx.limits.stats[VENUE].rejected_429 += 1
        return web.Response(status=429, text="Too many connections")
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    ctx.limits.stats[VENUE].ws_connections += 1
    ip.connections += 1
    conn = Conn(ctx, ws, Sender(ctx, ws, VENUE), ip)
    idle_s = float(request.app[CONFIG].extra.get("hyperliquid_idle_s", IDLE_S))
    try:
        jobs = (_reader(conn), _pusher(conn, idle_s), drop_later(ctx, ws, None))
        await run_until_closed(ws, *(asyncio.create_task(j) for j in jobs))
    finally:
        ip.connections -= 1
        ip.subscriptions -= len(conn.subs) + len(conn.trades) + len(conn.candles)
    return ws


def setup(app: web.Application) -> None:
    app[_PER_IP] = defaultdict(IpState)
    app.router.add_get("/ws", handle_ws)
