"""Helpers for stream tests: a stream running as a task on the simulator, and waits."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from oiradar.records import Candle, Liquidation, MarketSnapshot, Side
from oiradar.sim.server import SimServer
from oiradar.venues.stream import State, StreamRecord
from oiradar.venues.wsstream import WsStream


def fast(cls: type[WsStream], sim: SimServer, http: aiohttp.ClientSession, **kw: Any) -> WsStream:
    """A stream on the simulator that reconnects within ~50 ms."""
    return cls(sim.url, session=http, reconnect_base_s=0.01, reconnect_max_s=0.05, **kw)


async def until(cond: Callable[[], bool], timeout: float = 4.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def streaming(
    stream: WsStream, symbols: list[str] | None = None
) -> AsyncIterator[list[StreamRecord]]:
    got: list[StreamRecord] = []
    task = asyncio.create_task(stream.run(symbols, got.append))
    try:
        yield got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert stream.stats.state is State.STOPPED


@asynccontextmanager
async def primed(stream: WsStream, sim: SimServer) -> AsyncIterator[list[StreamRecord]]:
    """`streaming(stream)` once every symbol of the market has had a snapshot."""
    async with streaming(stream) as got:
        names = set(sim.ctx.market.symbols)
        await until(lambda: {s.symbol for s in snaps(got)} == names)
        yield got


Key = tuple[str, int, Side]


def keyed(got: list[StreamRecord]) -> dict[Key, float]:
    """Liquidations by (symbol, time, liquidated side) -> quantity in base units."""
    return {(x.symbol, x.ts_ms, x.position_side): x.qty_base for x in liqs(got)}


def liqs(got: list[StreamRecord]) -> list[Liquidation]:
    return [r for r in got if isinstance(r, Liquidation)]


def snaps(got: list[StreamRecord]) -> list[MarketSnapshot]:
    return [r for r in got if isinstance(r, MarketSnapshot)]


def closed_all(got: list[StreamRecord], bar_open: int, names: set[str]) -> bool:
    """Every one of `names` has a closed candle opening at `bar_open` in `got`."""
    return {c.symbol for c in got if isinstance(c, Candle) and c.ts_ms == bar_open} == names
