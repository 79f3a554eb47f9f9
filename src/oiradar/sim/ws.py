"""WebSocket plumbing shared by the venues: fault-aware sending and forced drops."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from oiradar.sim.context import SimContext


class Sender:
    """Sends JSON to one client, applying the configured duplicate/reorder faults."""

    def __init__(self, ctx: SimContext, ws: web.WebSocketResponse, venue: str) -> None:
        self.ctx, self.ws, self.venue = ctx, ws, venue
        self._held: str | None = None

    async def send(self, payload: Any) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
        faults = self.ctx.faults
        if self._held is None and faults.chance(faults.ws_reorder):
            self._held = text  # goes out after the next message
            return
        await self._raw(text)
        if faults.chance(faults.ws_duplicate):
            await self._raw(text)
        if self._held is not None:
            held, self._held = self._held, None
            await self._raw(held)

    async def _raw(self, text: str) -> None:
        if self.ws.closed:
            return
        await self.ws.send_str(text)
        self.ctx.limits.stats[self.venue].ws_messages += 1


async def drop_later(
    ctx: SimContext, ws: web.WebSocketResponse, lifetime_sim_ms: int | None
) -> None:
    """Close the connection on a fault timer (wall s) or at the venue's lifetime (sim ms)."""
    wall = ctx.faults.drop_after()
    start = ctx.now_ms()
    while not ws.closed:
        await asyncio.sleep(0.05)
        if wall is not None:
            wall -= 0.05
            if wall <= 0:
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"simulated drop")
                return
        if lifetime_sim_ms is not None and ctx.now_ms() - start >= lifetime_sim_ms:
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"connection lifetime reached")
            return


async def run_until_closed(ws: web.WebSocketResponse, *tasks: asyncio.Task[Any]) -> None:
    """Cancel a connection's helper tasks once it closes."""
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if not ws.closed:
            await ws.close()


class IncomingRate:
    """At most `limit` client messages per wall second (Binance and Bitget close a connection
    that sends more)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._window_start, self._count = time.monotonic(), 0

    def exceeded(self) -> bool:
        """Count one incoming message; True once this second's budget is spent."""
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._window_start, self._count = now, 0
        self._count += 1
        return self._count > self.limit


async def texts(ws: web.WebSocketResponse, per_s: int, reason: bytes) -> AsyncIterator[str]:
    """The client's text frames in order; the one beyond `per_s` in a wall second closes the
    connection instead (policy violation, `reason`), as Binance and Bitget do."""
    rate = IncomingRate(per_s)
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue
        if rate.exceeded():
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=reason)
            return
        yield str(msg.data)
