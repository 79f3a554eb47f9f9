"""Bitget's UTA (v3) public WebSocket `/v3/ws/public` as the simulator serves it: the
`liquidation` topic (exchange-apis.md §12), sampled as the doc says.

Subscribe `{"op":"subscribe","args":[{"instType":"usdt-futures","topic":"liquidation"}]}`
(one subscription: every symbol of the instType) -> `{"event":"subscribe","arg",
"connId"}`. Once a second the previous second's liquidations are pushed, per symbol only
the largest long and the largest short by quantity: `{"data":[{symbol, side, price, amount,
ts}], "arg", "action":"update", "ts"}`. Assumptions, as the doc's push table is cut off:
`side` "buy" is a LONG position liquidated, `amount` the USDT notional (qty x price, qty this
venue's share at its lot precision, at least one lot), `price` the order's price, `ts` the
chosen order's time. Other rules (unverified for v3) are the v2 socket's: text `ping` /
`pong`, closed after 2 minutes without a `ping` (wall time) or 24 h (simulated), more than
10 incoming messages a second closes it; other instTypes are valid but list nothing here;
a bad request answers `{"event":"error","code","msg"}` (30001 unknown topic or instType,
30002 illegal request). Pushes cover every second since the connection opened (the real gap
before a subscribe is milliseconds); a lag beyond 2 simulated minutes (a clock jump) is
skipped.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from aiohttp import web

from oiradar.sim.context import SimContext, ctx_of, num, price_decimals, qty_decimals
from oiradar.sim.market import LiqOrder, SymbolData, liquidation_orders
from oiradar.sim.venues.bitget.data import VENUE, listed
from oiradar.sim.venues.bitget.ws import LIFETIME_MS, closed_for_silence, read
from oiradar.sim.ws import Sender, drop_later, run_until_closed

CATCHUP_MS = 120_000
INST_TYPES = ("usdt-futures", "coin-futures", "usdc-futures")


@dataclass(slots=True)
class _Conn:
    ctx: SimContext
    sender: Sender
    conn_id: str
    args: list[dict[str, str]] = field(default_factory=list)
    edge: int | None = None  # seconds pushed up to here (simulated ms)
    last_ping: float = field(default_factory=time.monotonic)


async def _command(conn: _Conn, text: str) -> None:
    try:
        req = json.loads(text)
        op, args = req["op"], req["args"]
    except (ValueError, KeyError, TypeError):
        op = args = None
    if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
        await conn.sender.send({"event": "error", "code": "30002", "msg": "Illegal request"})
        return
    for raw in args:
        arg = {k: str(raw.get(k, "")) for k in ("instType", "topic")} if isinstance(
            raw, dict) else {"instType": "", "topic": str(raw)}  # fmt: skip
        if arg["topic"] != "liquidation" or arg["instType"] not in INST_TYPES:
            what = ",".join(f"{k}:{v}" for k, v in arg.items())
            await conn.sender.send({"event": "error", "arg": arg, "code": "30001",
                                    "msg": f"{what} doesn't exist"})  # fmt: skip
            continue
        if op == "subscribe" and arg not in conn.args:
            conn.args.append(arg)
        elif op == "unsubscribe" and arg in conn.args:
            conn.args.remove(arg)
        await conn.sender.send({"event": op, "arg": arg, "connId": conn.conn_id})


def _row(ctx: SimContext, sd: SymbolData, o: LiqOrder) -> dict[str, str]:
    qd = qty_decimals(sd)
    qty = max(round(o.qty_base * ctx.share(VENUE), qd), 10.0**-qd)
    return {"symbol": sd.symbol, "side": "buy" if o.long else "sell",
            "price": num(o.price, price_decimals(sd)), "amount": num(qty * o.price, 6),
            "ts": str(o.ts_ms)}  # fmt: skip


def sampled(ctx: SimContext, t0: int, t1: int) -> dict[int, list[dict[str, str]]]:
    """second end (ms) -> the rows pushed for (end - 1 s, end]: per symbol the largest long
    and the largest short order by quantity, for the completed seconds in (t0, t1]."""
    out: dict[int, list[dict[str, str]]] = {}
    for symbol in ctx.market.symbols:
        sd = listed(ctx, symbol)
        if sd is None:
            continue
        largest: dict[tuple[int, bool], LiqOrder] = {}
        for o in liquidation_orders(sd, t0, t1, ctx.venue_seed(VENUE)):
            key = (-(-o.ts_ms // 1000) * 1000, o.long)
            if key not in largest or o.qty_base > largest[key].qty_base:
                largest[key] = o
        for (second, _), o in sorted(largest.items(), key=lambda kv: kv[0]):
            out.setdefault(second, []).append(_row(ctx, sd, o))
    return out


async def _pusher(conn: _Conn, ws: web.WebSocketResponse) -> None:
    async for now in conn.ctx.pushes(ws, lambda: True):  # the first edge at once
        if await closed_for_silence(conn.last_ping, ws):
            return
        edge = now // 1000 * 1000
        usdt = {"instType": "usdt-futures", "topic": "liquidation"}
        if conn.edge is None:
            conn.edge = edge
        elif usdt in conn.args and edge > conn.edge:
            t0, conn.edge = max(conn.edge, edge - CATCHUP_MS), edge
            for second, rows in sorted(sampled(conn.ctx, t0, edge).items()):
                await conn.sender.send({"data": rows, "arg": usdt, "action": "update",
                                        "ts": second})  # fmt: skip


async def _reader(conn: _Conn, ws: web.WebSocketResponse) -> None:
    await read(conn, ws, lambda text: _command(conn, text))


_CONN_IDS = web.AppKey("bitget_uta_conn_ids", list)


async def handle_ws(request: web.Request) -> web.StreamResponse:
    ctx = ctx_of(request)
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    ctx.limits.stats[VENUE].ws_connections += 1
    ids = request.app[_CONN_IDS]
    ids.append(len(ids) + 1)
    conn = _Conn(ctx, Sender(ctx, ws, VENUE), f"uta{ctx.seed}{ids[-1]:06d}")
    jobs = (_reader(conn, ws), _pusher(conn, ws), drop_later(ctx, ws, LIFETIME_MS))
    await run_until_closed(ws, *(asyncio.create_task(j) for j in jobs))
    return ws


def setup(app: web.Application) -> None:
    app[_CONN_IDS] = []
    app.router.add_get("/v3/ws/public", handle_ws)
