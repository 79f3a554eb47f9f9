"""OKX v5 WebSockets: `/ws/v5/public` (OI, funding, mark price, liquidations), `/ws/v5/business`.

`{"op":"subscribe","args":[...]}` answers one ack per arg (60012 for a malformed request,
60018 for an unknown channel/instrument or a channel on the wrong endpoint); text `ping`
answers `pong`. Assumptions where the doc is silent:
- 3 connections/s per IP (HTTP 429 beyond); the 480 subscribe/hour cap is not simulated;
- every subscription pushes its current state at once, then on the documented cadence in
  simulated time; emissions run every 100 ms of wall time, so fast clocks send the latest
  state (<= ~10 messages/s per channel) instead of flooding;
- the 30 s idle close (code 4004, "No data received in 30s.") runs on wall time;
  `SimConfig.extra["okx_idle_s"]` shortens it for tests. OI only changes once per base bar,
  so a client subscribed to `open-interest` alone must send `ping`, as the doc asks;
- candles push the running bar on change, and the closed bar's final row (`confirm` "1")
  when the next one opens (lost with `Faults.ws_lose_close`);
- `liquidation-orders` covers completed simulated seconds only, keeps the latest order per
  instrument per second (`posSide` "net", `bkLoss` "0"), and sends one message per tick
  listing every instrument with orders; a lag beyond 120 s of simulated time (a clock jump)
  is skipped, never replayed.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from oiradar.sim.context import client_ip, ctx_of
from oiradar.sim.limits import Rule
from oiradar.sim.market import liquidation_orders
from oiradar.sim.server import CONFIG
from oiradar.sim.venues.okx.data import (
    CANDLE_BARS,
    OKX,
    VENUE,
    Bar,
    Inst,
    Okx,
    candle_row,
    funding_row,
    mark_row,
    oi_row,
    parse_bar,
    too_many,
)
from oiradar.sim.ws import Sender, drop_later, run_until_closed

IDLE_S = 30.0
LIQ_CATCHUP_MS = 120_000
WS_CONNECT = Rule("ws-connect", 3, 1.0)


@dataclass(slots=True)
class Sub:
    """One subscribed arg; `poll` returns the `data` of each message due at simulated `now`."""

    arg: dict[str, Any]
    poll: Callable[[Okx, Sub, int], list[Any]]
    inst_: Inst | None = None  # None for liquidation-orders (all swaps)
    bar: Bar | None = None
    due: int = 0
    last: Any = None
    pushed: int = 0

    @property
    def inst(self) -> Inst:
        assert self.inst_ is not None
        return self.inst_


def _poll_oi(v: Okx, s: Sub, now: int) -> list[Any]:
    """Every 3 s of simulated time, when the value changed."""
    if now < s.due:
        return []
    s.due = now + 3_000
    row = oi_row(v, s.inst, now)
    if row["oi"] == s.last:
        return []
    s.last = row["oi"]
    return [[row]]


def _poll_funding(v: Okx, s: Sub, now: int) -> list[Any]:
    """Every 30-90 s of simulated time."""
    if now < s.due:
        return []
    s.due = now + random.Random(now).randint(30_000, 90_000)
    return [[funding_row(v, s.inst, now)]]


def _poll_mark(v: Okx, s: Sub, now: int) -> list[Any]:
    """Every 200 ms on change, else every 10 s (simulated)."""
    if now < s.due:
        return []
    s.due = now + 200
    row = mark_row(s.inst, now)
    if row["markPx"] == s.last and now - s.pushed < 10_000:
        return []
    s.last, s.pushed = row["markPx"], now
    return [[row]]


def _poll_candle(v: Okx, s: Sub, now: int) -> list[Any]:
    """The running bar on change; first the closed bar's final row when a new one opens."""
    assert s.bar is not None
    sd = s.inst.sd
    if now < sd.first_ms:
        return []
    t = s.bar.floor(min(now, sd.end_ms - 1))
    row = candle_row(s.inst, s.bar, t, now)
    out = []
    if s.last is not None and s.last[0] != row[0] and not v.ctx.faults.lose_close():
        out.append([candle_row(s.inst, s.bar, int(s.last[0]), now)])
    if row != s.last:
        out.append([row])
    s.last = row
    return out


def _liq_details(v: Okx, i: Inst, t0: int, t1: int) -> list[dict[str, str]]:
    """Orders in (t0, t1], the latest per second; `side` is the order side (buy = short liq.)."""
    latest = {o.ts_ms // 1000: o for o in liquidation_orders(i.sd, t0, t1, v.ctx.venue_seed(VENUE))}
    share = v.ctx.share(VENUE)
    return [
        {
            "side": "sell" if o.long else "buy",
            "posSide": "net",
            "sz": i.contracts(max(1, i.lots(o.qty_base * share))),
            "bkPx": i.px(o.price),
            "bkLoss": "0",
            "ts": str(o.ts_ms),
        }
        for o in latest.values()
    ]


def _poll_liq(v: Okx, s: Sub, now: int) -> list[Any]:
    """All swaps, completed simulated seconds only, starting at the subscription."""
    end = now // 1000 * 1000 - 1
    if s.last is None:
        s.last = end
    start = max(int(s.last), end - LIQ_CATCHUP_MS)
    if end <= start:
        return []
    s.last = end
    found = ((i, _liq_details(v, i, start, end)) for i in v.insts())
    data = [
        {"instId": i.inst_id, "instFamily": i.family, "uly": i.family, "details": details}
        for i, details in found
        if details
    ]
    return [data] if data else []


PUBLIC = {"open-interest": _poll_oi, "funding-rate": _poll_funding, "mark-price": _poll_mark}


def _subscription(v: Okx, arg: dict[str, Any], business: bool) -> Sub | None:
    """The Sub for a valid arg on this endpoint (candles only on /business), else None."""
    channel = str(arg["channel"])
    if not business and channel == "liquidation-orders" and arg.get("instType") == "SWAP":
        return Sub(arg, _poll_liq)
    inst = v.inst(str(arg.get("instId", "")))
    if inst is None:
        return None
    if not business:
        poll = PUBLIC.get(channel)
        return Sub(arg, poll, inst) if poll else None
    bar = (
        parse_bar(channel.removeprefix("candle"), CANDLE_BARS) if channel[:6] == "candle" else None
    )
    if bar is None or bar.step_ms % inst.sd.bar_ms or bar.offset_ms % inst.sd.bar_ms:
        return None
    return Sub(arg, _poll_candle, inst, bar)


def _parse_op(text: str) -> tuple[str, list[dict[str, Any]]] | None:
    """(op, args) of a well-formed subscribe/unsubscribe request, else None (60012)."""
    try:
        req = json.loads(text)
    except ValueError:
        return None
    if not isinstance(req, dict) or req.get("op") not in ("subscribe", "unsubscribe"):
        return None
    args = req.get("args")
    if not isinstance(args, list) or not args:
        return None
    if not all(isinstance(a, dict) and isinstance(a.get("channel"), str) for a in args):
        return None
    return str(req["op"]), args


class Conn:
    """One client connection: reads ops, pushes due data at each shared tick, closes when idle."""

    def __init__(self, v: Okx, ws: web.WebSocketResponse, business: bool, idle_s: float) -> None:
        self.v, self.ws, self.business, self.idle_s = v, ws, business, idle_s
        self.sender = Sender(v.ctx, ws, VENUE)
        self.conn_id = f"{next(v.conn_seq) * 2_654_435_761 % 2**32:08x}"
        self.subs: dict[str, Sub] = {}
        self.last_sent = time.monotonic()

    async def send(self, payload: Any) -> None:
        await self.sender.send(payload)
        self.last_sent = time.monotonic()

    async def read(self) -> None:
        async for msg in self.ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            if msg.data == "ping":
                await self.send("pong")
            else:
                await self.command(msg.data)

    async def command(self, text: str) -> None:
        parsed = _parse_op(text)
        if parsed is None:
            await self.send({"event": "error", "code": "60012", "msg": f"Invalid request: {text}",
                             "connId": self.conn_id})  # fmt: skip
            return
        op, args = parsed
        for arg in args:
            sub = _subscription(self.v, arg, self.business)
            if sub is None:
                msg = (f"Wrong URL or channel:{arg['channel']},instId:{arg.get('instId', '')} "
                       "doesn't exist. Please use the correct URL, channel and parameters "
                       "referring to API document.")  # fmt: skip
                await self.send({"event": "error", "code": "60018", "msg": msg,
                                 "connId": self.conn_id})  # fmt: skip
                continue
            key = json.dumps(arg, sort_keys=True)
            if op == "subscribe":
                self.subs[key] = sub
            else:
                self.subs.pop(key, None)
            await self.send({"event": op, "arg": arg, "connId": self.conn_id})
            if op == "subscribe":
                await self.emit(sub, self.v.ctx.now_ms())

    async def emit(self, sub: Sub, now: int) -> None:
        for data in sub.poll(self.v, sub, now):
            await self.send({"arg": sub.arg, "data": data})

    async def push(self) -> None:
        def liqs() -> bool:
            return any(s.arg.get("channel") == "liquidation-orders" for s in self.subs.values())

        async for now in self.v.ctx.pushes(self.ws, liqs, at_once=False):
            if time.monotonic() - self.last_sent > self.idle_s:
                await self.ws.close(code=4004, message=b"No data received in 30s.")
                return
            for sub in list(self.subs.values()):
                await self.emit(sub, now)


async def _ws(request: web.Request, business: bool) -> web.StreamResponse:
    ctx, v = ctx_of(request), request.app[OKX]
    if not ctx.limits.charge(VENUE, client_ip(request), [(WS_CONNECT, "", 1)]).allowed:
        ctx.limits.stats[VENUE].rejected_429 += 1
        return too_many()
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    ctx.limits.stats[VENUE].ws_connections += 1
    conn = Conn(v, ws, business, float(request.app[CONFIG].extra.get("okx_idle_s", IDLE_S)))
    tasks = (conn.read(), conn.push(), drop_later(ctx, ws, None))
    await run_until_closed(ws, *map(asyncio.create_task, tasks))
    return ws


async def ws_public(request: web.Request) -> web.StreamResponse:
    return await _ws(request, business=False)


async def ws_business(request: web.Request) -> web.StreamResponse:
    return await _ws(request, business=True)


def setup(app: web.Application) -> None:
    app.router.add_get("/ws/v5/public", ws_public)
    app.router.add_get("/ws/v5/business", ws_business)
