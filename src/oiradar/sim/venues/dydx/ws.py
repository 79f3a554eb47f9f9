"""dYdX v4 indexer WebSocket `/v4/ws` as the simulator serves it (exchange-apis.md §13.3-13.4,
v4-chain `websocket-documentation.md`): `v4_markets` and `v4_trades`.

On connect: `{"type":"connected","connection_id","message_id":0}`. `{"type":"subscribe",
"channel","id"}` answers `subscribed` with the REST reply as `contents` (all markets; the
market's latest trades page), then `channel_data` messages; every message carries the
`connection_id` and a growing `message_id`. `{"type":"ping"}` answers `pong`. Limits of the
socks source: 32 `v4_trades` subscriptions per connection (an error beyond); 2 subscribe
attempts per second per channel and id (beyond: an error, then close 1008 "Rate limited");
the server pings every 30 s of wall time and drops a client that does not answer.
Assumptions where the docs are silent:
- one block per simulated second: each pushes the market's new trades (LIQUIDATED fills
  among them), `trading` deltas with the market fields that changed, and `oraclePrices`
  for markets whose price moved; after a clock jump at most 10 simulated minutes of trades
  are sent, never more;
- errors: `{"type":"error","message",...}` with "Invalid subscribe request" wording.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from oiradar.sim.context import SimContext, ctx_of
from oiradar.sim.server import CONFIG
from oiradar.sim.venues.dydx.data import VENUE, Market, height, iso, market_row, markets, trades
from oiradar.sim.venues.dydx.rest import API_LIMIT, trade_page
from oiradar.sim.ws import Sender, drop_later, run_until_closed

BLOCK_MS = 1000
MAX_TRADES_SUBS, SUBSCRIBES_PER_S = 32, 2
CATCHUP_MS = 10 * 60_000
HEARTBEAT_S = 30.0
_conn_ids = itertools.count(1)


@dataclass(slots=True)
class Conn:
    ctx: SimContext
    ws: web.WebSocketResponse
    sender: Sender
    connection_id: str
    page: int
    message_id: int = 0
    markets: bool = False
    market_rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    trades: dict[str, Market] = field(default_factory=dict)
    block: int = 0  # blocks pushed up to here (simulated ms)
    attempts: dict[str, list[float]] = field(default_factory=dict)

    async def send(self, kind: str, **body: Any) -> None:
        head = {"type": kind, "connection_id": self.connection_id, "message_id": self.message_id}
        self.message_id += 1
        await self.sender.send(head | body)


async def _subscribe(conn: Conn, req: dict[str, Any]) -> bool:
    """Handle a subscribe; False when the connection must close (subscribe flood)."""
    channel, ticker = req.get("channel"), req.get("id")
    key, now = f"{channel}-{ticker}", time.monotonic()
    recent = [t for t in conn.attempts.get(key, []) if now - t < 1.0] + [now]
    conn.attempts[key] = recent
    if len(recent) > SUBSCRIBES_PER_S:
        msg = f"Too many subscribe attempts for channel {key}. Please reconnect and try again."
        await conn.send("error", message=msg)
        return False
    listed, sim_now = markets(conn.ctx), conn.ctx.now_ms()
    if channel == "v4_markets":
        conn.markets = True
        conn.market_rows = {t: market_row(conn.ctx, m, sim_now) for t, m in listed.items()}
        await conn.send("subscribed", channel=channel, contents={"markets": conn.market_rows})
    elif channel == "v4_trades" and isinstance(ticker, str) and ticker in listed:
        if ticker not in conn.trades and len(conn.trades) >= MAX_TRADES_SUBS:
            await conn.send("error", message=f"Invalid subscribe request: max {MAX_TRADES_SUBS}"
                                             " v4_trades subscriptions per connection")  # fmt: skip
            return True
        conn.trades[ticker] = listed[ticker]
        page = trade_page(conn.ctx, listed[ticker], sim_now, conn.page)
        await conn.send("subscribed", channel=channel, id=ticker, contents={"trades": page})
    else:
        await conn.send("error", message=f"Invalid subscribe request: {json.dumps(req)}")
    return True


async def _reader(conn: Conn) -> None:
    async for msg in conn.ws:
        if msg.type is not WSMsgType.TEXT:
            continue
        try:
            req = json.loads(msg.data)
            kind = req["type"]
        except (ValueError, KeyError, TypeError):
            await conn.send("error", message=f"Invalid message: {msg.data}")
            continue
        if kind == "ping":
            await conn.send("pong")
        elif kind == "subscribe":
            if not await _subscribe(conn, req):
                await conn.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"Rate limited")
                return
        elif kind == "unsubscribe":
            conn.trades.pop(str(req.get("id")), None)
            conn.markets = conn.markets and req.get("channel") != "v4_markets"
            await conn.send("unsubscribed", channel=req.get("channel"), id=req.get("id"))
        else:
            await conn.send("error", message=f"Invalid message type: {kind}")


async def _push_blocks(conn: Conn, now: int) -> None:
    """The blocks since the last push: new trades per market, then market deltas."""
    edge = now // BLOCK_MS * BLOCK_MS
    if conn.block == 0:
        conn.block = edge
    if edge <= conn.block:
        return
    t0, conn.block = max(conn.block, edge - CATCHUP_MS), edge
    for ticker, m in list(conn.trades.items()):
        tape = trades(conn.ctx, m, t0, edge)
        if tape:
            await conn.send("channel_data", id=ticker, channel="v4_trades", version="2.1.0",
                            contents={"trades": tape[::-1]})  # fmt: skip
    if conn.markets:
        await _push_markets(conn, edge)


async def _push_markets(conn: Conn, now: int) -> None:
    rows = {t: market_row(conn.ctx, m, now) for t, m in markets(conn.ctx).items()}
    trading, oracle = {}, {}
    for ticker, row in rows.items():
        old = conn.market_rows.get(ticker, {})
        changed = {k: v for k, v in row.items() if old.get(k) != v and k != "oraclePrice"}
        if changed:
            trading[ticker] = changed
        if old.get("oraclePrice") != row["oraclePrice"]:
            oracle[ticker] = {"price": row["oraclePrice"], "effectiveAt": iso(now),
                              "effectiveAtHeight": height(now),
                              "marketId": int(row["clobPairId"])}  # fmt: skip
    conn.market_rows = rows
    common = {"channel": "v4_markets", "version": "1.0.0"}
    if trading:
        await conn.send("channel_data", **common, contents={"trading": trading})
    if oracle:
        await conn.send("channel_data", **common, contents={"oraclePrices": oracle})


async def _pusher(conn: Conn) -> None:
    # the first block edge at once (from the connect); trades carry the LIQUIDATED fills
    async for now in conn.ctx.pushes(conn.ws, lambda: bool(conn.trades)):
        await _push_blocks(conn, now)


async def handle_ws(request: web.Request) -> web.StreamResponse:
    ctx = ctx_of(request)
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
    await ws.prepare(request)
    ctx.limits.stats[VENUE].ws_connections += 1
    page = int(request.app[CONFIG].extra.get("dydx_api_limit", API_LIMIT))
    conn_id = f"{ctx.seed:08x}-{next(_conn_ids):04x}-4000-8000-000000000000"
    conn = Conn(ctx, ws, Sender(ctx, ws, VENUE), conn_id, page)
    await conn.send("connected")
    jobs = (_reader(conn), _pusher(conn), drop_later(ctx, ws, None))
    await run_until_closed(ws, *(asyncio.create_task(j) for j in jobs))
    return ws


def setup(app: web.Application) -> None:
    app.router.add_get("/v4/ws", handle_ws)
