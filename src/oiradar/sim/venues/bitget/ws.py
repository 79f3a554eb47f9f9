"""Bitget v2 public WebSocket `/v2/ws/public`, USDT-FUTURES, as the simulator serves it: the
`ticker` and `candle<granularity>` channels (liquidations are on the v3 socket: `uta`).
Assumptions where the doc is silent (unverified): `ticker` pushes a snapshot every 300 ms
simulated (the v2 doc says 300-400 ms on change); `candle<g>` pushes a snapshot of the last
100 bars on subscribe,
then every 1 s simulated an `update` with every bar changed since the previous push (the
just-closed bar, final, then the running one), none when nothing changed (the doc says every
500 ms; the simulated market moves once per base bar); rows carry 8 fields (+ USDT volume).
With `Faults.ws_lose_close` the just-closed bar's final row is left out of its update. Pushes
are throttled to one per channel per 100 ms wall. The 2-min no-`ping` close runs on wall
time, the 24 h forced close on simulated time; more than 10 incoming messages in a wall
second closes the connection; over 300 connection requests per 5 min or 100 open
connections per IP answer HTTP 429 before the upgrade; error events: 30001 unknown channel,
30002 illegal request (code unverified); the 240 subscribe requests/h and 1000 channels per
connection are not enforced.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import WSCloseCode, web

from oiradar.sim.context import SimContext, client_ip, ctx_of
from oiradar.sim.limits import Rule
from oiradar.sim.market import SymbolData, funding_now
from oiradar.sim.venues.bitget.data import (
    GRANULARITY,
    HOUR_MS,
    PRODUCT,
    VENUE,
    bars_of,
    candle_rows,
    envelope,
    listed,
    ticker_row,
)
from oiradar.sim.ws import Sender, drop_later, run_until_closed, texts

WS_CONNECT = Rule("ws-connect", 300, 300.0)
MAX_WS_PER_IP = 100
LIFETIME_MS = 24 * HOUR_MS
IDLE_S = 120.0  # wall seconds without a "ping" before the server hangs up
MAX_INCOMING_PER_S = 10
TICKER_MS, CANDLE_MS, SNAPSHOT_BARS = 300, 1000, 100
_OPEN_WS = web.AppKey("bitget_open_ws", defaultdict)

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
    candle_last: dict[Key, list[Any]] = field(default_factory=dict)  # its last pushed row
    last_ping: float = field(default_factory=time.monotonic)


async def handle_ws(request: web.Request) -> web.StreamResponse:
    ctx = ctx_of(request)
    ip, open_ws = client_ip(request), request.app[_OPEN_WS]
    verdict = ctx.limits.charge(VENUE, ip, [(WS_CONNECT, "", 1)])
    if not verdict.allowed or open_ws[ip] >= MAX_WS_PER_IP:
        ctx.limits.stats[VENUE].rejected_429 += 1
        return envelope(ctx, None, "429", "Too many requests", 429)
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


class Pinged(Protocol):
    """A connection that answers `ping` and remembers when it last heard one."""

    sender: Sender
    last_ping: float


async def read(conn: Pinged, ws: web.WebSocketResponse, command: Callable[[str], Any]) -> None:
    """The client's text frames: `ping` is answered `pong` (and keeps the link from the idle
    cut), the rest go to `command`; the 11th frame in a wall second closes the connection.
    Both Bitget sockets (v2, UTA v3) follow these rules."""
    async for text in texts(ws, MAX_INCOMING_PER_S, b"Too many messages"):
        if text == "ping":
            conn.last_ping = time.monotonic()
            await conn.sender.send("pong")
        else:
            await command(text)


async def _reader(conn: _Conn, ws: web.WebSocketResponse) -> None:
    await read(conn, ws, lambda text: _command(conn, text))


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
    sd = listed(ctx, arg["instId"])
    if arg["instType"] != PRODUCT or sd is None:
        return None
    channel, gran = arg["channel"], arg["channel"].removeprefix("candle")
    if channel == "ticker" or (
        channel.startswith("candle") and gran in GRANULARITY
        and GRANULARITY[gran][0] % sd.bar_ms == 0
    ):  # fmt: skip
        return channel, arg["instId"]
    return None


async def closed_for_silence(last_ping: float, ws: web.WebSocketResponse) -> bool:
    """Bitget closes a connection that sent no `ping` for 2 minutes (wall time): True if so."""
    if time.monotonic() - last_ping <= IDLE_S:
        return False
    await ws.close(code=WSCloseCode.GOING_AWAY, message=b"No ping for 2 minutes")
    return True


async def _pusher(conn: _Conn, ws: web.WebSocketResponse) -> None:
    async for now in conn.ctx.pushes(ws):  # a fresh connection's first push at once
        if await closed_for_silence(conn.last_ping, ws):
            return
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


def _ws_ticker(ctx: SimContext, sd: SymbolData, now: int) -> dict[str, Any]:
    """The REST ticker re-keyed as the `ticker` channel's push (doc example order)."""
    _, next_ms = funding_now(sd, now)
    extra = {"instId": sd.symbol, "nextFundingTime": str(next_ms), "symbolType": 1,
             "deliveryPrice": "0"}  # fmt: skip
    full = ticker_row(ctx, sd, now) | extra
    return {k: full[k] for k in _WS_TICKER}


def _ws_candles(conn: _Conn, key: Key, sd: SymbolData, now: int) -> tuple[str, list[Any]]:
    """Snapshot of the last bars first, then every bar changed since the previous push."""
    since = conn.candle_open.get(key)
    b = bars_of(sd, key[0].removeprefix("candle"), since or 0, now, now, SNAPSHOT_BARS)
    conn.candle_open[key] = int(b.ts[-1]) if len(b.ts) else since or 0
    rows = candle_rows(sd, b, usdt=True)
    if since is None:
        conn.candle_last[key] = rows[-1] if rows else []
        return "snapshot", rows
    running = rows[-1:] if rows and int(rows[-1][0]) == conn.candle_open[key] else []
    closed = [r for r in rows if r not in running and not conn.ctx.faults.lose_close()]
    if running and running[0] == conn.candle_last.get(key) and not closed:
        return "update", []
    conn.candle_last[key] = running[0] if running else []
    return "update", closed + running


def setup(app: web.Application) -> None:
    app[_OPEN_WS] = defaultdict(int)
    app.router.add_get("/v2/ws/public", handle_ws)
