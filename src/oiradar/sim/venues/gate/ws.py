"""Gate futures WebSocket `/v4/ws/usdt` as the simulator serves it (exchange-apis.md §10.3,
§10.5): `futures.tickers`, `futures.public_liquidates`, `futures.candlesticks` and
`futures.ping`.

Requests are `{"time", "channel", "event", "payload"}`; acks `{"time", "time_ms", "channel",
"event", "error": null, "result": {"status": "success"}}`; a bad request answers `error`
`{"code", "message"}` (1 invalid argument struct, 2 invalid argument) with status "failed".
Assumptions where the doc is silent:
- `futures.tickers` pushes, every second of simulated time, the rows (REST tickers fields)
  of the subscribed contracts that changed, all in one `result` array; an unknown contract
  is error 2 and the others are still subscribed;
- `futures.public_liquidates` (payload `["!all"]` or contracts) follows the 2026-08-20 rule:
  every order of a contract in each completed simulated second, in one push (a new push
  after 20 rows); rows `{price, size, time (ms), contract}`, `size` the order's signed
  contracts; pushes start at the subscription and skip, never replay, more than 10
  simulated minutes after a clock jump;
- `futures.candlesticks` (payload `[interval, contract]`, one pair a request; an unknown
  contract or interval is error 2): every second of simulated time, the subscribed bar's
  running row if it changed, `{t (s), v (contracts), c, h, l, o, n: "<interval>_<contract>",
  a}` (`a` the base amount, unverified), one push per subscription; the first push after a
  close carries the closed bar's final row before the running one, so a row pushed at or
  after its bar's close (`time_ms`) is final. `--ws-lose-close` drops that final row;
- the server pings every 15 s of wall time and drops a client that does not answer (aiohttp
  heartbeat); no idle rule, lifetime or connection cap is documented, so none is simulated.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from oiradar.sim.context import SimContext, ctx_of, dec
from oiradar.sim.market import bars, liquidation_orders
from oiradar.sim.venues.gate.data import (
    CANDLE_INTERVALS,
    VENUE,
    Contract,
    candle_row,
    contracts,
    liquidation_row,
    ticker_row,
)
from oiradar.sim.ws import Sender, drop_later, run_until_closed

TICKER_MS = 1000
LIQ_BATCH = 20
LIQ_CATCHUP_MS = 10 * 60_000
HEARTBEAT_S = 15.0
PING, PONG = "futures.ping", "futures.pong"
TICKERS, LIQUIDATIONS = "futures.tickers", "futures.public_liquidates"
CANDLES = "futures.candlesticks"


@dataclass(slots=True)
class Conn:
    ctx: SimContext
    sender: Sender
    tickers: dict[str, Contract] = field(default_factory=dict)
    ticker_due: int = 0  # next tickers push, simulated ms
    last_rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    liq_all: bool = False
    liq_names: set[str] = field(default_factory=set)
    liq_edge: int | None = None  # liquidations pushed up to here (simulated ms)
    candles: dict[tuple[str, str], Contract] = field(default_factory=dict)  # (interval, name)
    candle_open: dict[tuple[str, str], int] = field(default_factory=dict)  # its running bar
    candle_last: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    candle_due: int = 0

    async def reply(self, channel: str, event: str, error: tuple[int, str] | None = None) -> None:
        now = self.ctx.now_ms()
        status = {"status": "failed" if error else "success"}
        err = None if error is None else {"code": error[0], "message": error[1]}
        await self.sender.send({"time": now // 1000, "time_ms": now, "channel": channel,
                                "event": event, "error": err, "result": status})  # fmt: skip


async def _tickers(conn: Conn, event: str, payload: list[str]) -> None:
    listed = contracts(conn.ctx)
    unknown = [n for n in payload if n not in listed]
    for name in payload:
        if event == "unsubscribe":
            conn.tickers.pop(name, None)
        elif name in listed:
            conn.tickers[name] = listed[name]
    conn.last_rows.clear()
    conn.ticker_due = 0  # the current rows go out next tick
    await conn.reply(TICKERS, event, (2, f"unknown contract {unknown[0]}") if unknown else None)


async def _liquidates(conn: Conn, event: str, payload: list[str]) -> None:
    if event == "unsubscribe":
        conn.liq_all, conn.liq_names = False, set()
    elif payload == ["!all"]:
        conn.liq_all = True
    else:
        conn.liq_names |= set(payload)
    await conn.reply(LIQUIDATIONS, event)


async def _candlesticks(conn: Conn, event: str, payload: list[str]) -> None:
    listed = contracts(conn.ctx)
    interval, name = (payload[0], payload[1]) if len(payload) == 2 else ("", "")
    c = listed.get(name)
    step = CANDLE_INTERVALS.get(interval)
    if c is None or step is None or (step * 1000) % c.sd.bar_ms:
        await conn.reply(CANDLES, event, (2, f"invalid argument {payload}"))
        return
    key = (interval, name)
    if event == "unsubscribe":
        conn.candles.pop(key, None)
        conn.candle_open.pop(key, None)
        conn.candle_last.pop(key, None)
    else:
        conn.candles[key] = c
        conn.candle_due = 0
    await conn.reply(CANDLES, event)


CHANNELS = {TICKERS: _tickers, LIQUIDATIONS: _liquidates, CANDLES: _candlesticks}


async def _command(conn: Conn, text: str) -> None:
    try:
        req = json.loads(text)
        channel, event, payload = req["channel"], req.get("event", ""), req.get("payload", [])
    except (ValueError, KeyError, TypeError):
        await conn.reply("", "", (1, "invalid argument struct"))
        return
    if channel == PING:
        now = conn.ctx.now_ms()
        pong = {"time": now // 1000, "time_ms": now, "channel": PONG, "event": "", "result": None}
        await conn.sender.send(pong)
        return
    valid = isinstance(payload, list) and all(isinstance(p, str) for p in payload)
    if channel not in CHANNELS or event not in ("subscribe", "unsubscribe") or not valid:
        await conn.reply(str(channel), str(event), (2, "invalid argument"))
        return
    await CHANNELS[channel](conn, event, payload)


async def _push_tickers(conn: Conn, now: int) -> None:
    if now < conn.ticker_due or not conn.tickers:
        return
    conn.ticker_due = now + TICKER_MS
    rows = [ticker_row(conn.ctx, c, now) for c in conn.tickers.values()]
    changed = [r for r in rows if conn.last_rows.get(r["contract"]) != r]
    conn.last_rows.update((r["contract"], r) for r in changed)
    if changed:
        await conn.sender.send({"time": now // 1000, "time_ms": now, "channel": TICKERS,
                                "event": "update", "result": changed})  # fmt: skip


async def _push_liquidations(conn: Conn, now: int) -> None:
    """Every order of each completed simulated second since the last push, per contract."""
    edge = now // 1000 * 1000
    if conn.liq_edge is None or not (conn.liq_all or conn.liq_names):
        conn.liq_edge = edge
        return
    if edge <= conn.liq_edge:
        return
    t0, seed = max(conn.liq_edge, edge - LIQ_CATCHUP_MS), conn.ctx.venue_seed(VENUE)
    conn.liq_edge = edge
    pushes: list[tuple[int, str, list[dict[str, Any]]]] = []
    for name, c in contracts(conn.ctx).items():
        if not (conn.liq_all or name in conn.liq_names):
            continue
        by_second: dict[int, list[dict[str, Any]]] = {}
        for o in liquidation_orders(c.sd, t0, edge, seed):
            by_second.setdefault(-(-o.ts_ms // 1000) * 1000, []).append(
                liquidation_row(conn.ctx, c, o)
            )
        for second, rows in by_second.items():
            pushes += [
                (second, name, rows[i : i + LIQ_BATCH]) for i in range(0, len(rows), LIQ_BATCH)
            ]
    for second, _, rows in sorted(pushes, key=lambda p: (p[0], p[1])):
        head = {"time": second // 1000, "time_ms": second, "channel": LIQUIDATIONS}
        await conn.sender.send(head | {"event": "update", "result": rows})


async def _push_candles(conn: Conn, now: int) -> None:
    """Per subscription: a closed bar's final row (the first push after its close), then the
    running bar's row, each only if it changed."""
    if now < conn.candle_due or not conn.candles:
        return
    conn.candle_due = now + TICKER_MS
    for key, c in list(conn.candles.items()):
        interval = key[0]
        step = CANDLE_INTERVALS[interval] * 1000
        opened, before = now // step * step, conn.candle_open.get(key)
        rows = []
        if before is not None and before < opened and not conn.ctx.faults.lose_close():
            rows += _ws_rows(c, interval, bars(c.sd, step, before, before, now))
        running = _ws_rows(c, interval, bars(c.sd, step, opened, opened, now))
        if running and running[0] != conn.candle_last.get(key):
            rows += running
            conn.candle_last[key] = running[0]
        conn.candle_open[key] = opened
        if rows:
            await conn.sender.send({"time": now // 1000, "time_ms": now, "channel": CANDLES,
                                    "event": "update", "result": rows})  # fmt: skip


def _ws_rows(c: Contract, interval: str, b: Any) -> list[dict[str, Any]]:
    """REST's candle rows as the channel sends them: `n` names the series, `a` the base
    amount in place of `sum`."""
    out = []
    for k in range(len(b.ts)):
        row = candle_row(c, b, k, True)
        del row["sum"]
        out.append(row | {"n": f"{interval}_{c.name}", "a": dec(float(b.volume[k]), 8)})
    return out


async def _pusher(conn: Conn, ws: web.WebSocketResponse) -> None:
    async for now in conn.ctx.pushes(ws, lambda: conn.liq_all or bool(conn.liq_names)):
        await _push_tickers(conn, now)
        await _push_liquidations(conn, now)
        await _push_candles(conn, now)


async def _reader(conn: Conn, ws: web.WebSocketResponse) -> None:
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            await _command(conn, str(msg.data))


async def handle_ws(request: web.Request) -> web.StreamResponse:
    ctx = ctx_of(request)
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
    await ws.prepare(request)
    ctx.limits.stats[VENUE].ws_connections += 1
    conn = Conn(ctx, Sender(ctx, ws, VENUE))
    jobs = (_reader(conn, ws), _pusher(conn, ws), drop_later(ctx, ws, None))
    await run_until_closed(ws, *(asyncio.create_task(j) for j in jobs))
    return ws


def setup(app: web.Application) -> None:
    app.router.add_get("/v4/ws/usdt", handle_ws)
