"""Helpers for simulator tests: a frozen-clock server and JSON fetches over real sockets."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any

import aiohttp

from oiradar.services.importer import history_store
from oiradar.sim.server import SimConfig, SimServer

NOW = 1_780_000_000_000  # 2026-05-28T20:26:40Z; the clock starts on the minute before it
MINUTE = 60_000


@contextmanager
def configured(**kw: Any) -> Iterator[SimConfig]:
    """A SimConfig; `data=PATH` is opened as `oiradar sim --data` opens it (and closed)."""
    cfg = SimConfig(**kw)
    if cfg.data is None:
        yield cfg
        return
    with history_store(cfg.data) as store:
        cfg.history = store
        yield cfg


@asynccontextmanager
async def running(**kw: Any) -> AsyncIterator[tuple[SimServer, aiohttp.ClientSession]]:
    with configured(**{"symbols": 5, "seed": 7, "speed": 0.0, **kw}) as cfg:
        async with SimServer(cfg, wall_now_ms=NOW) as sim, aiohttp.ClientSession() as http:
            yield sim, http


async def get(http: aiohttp.ClientSession, sim: SimServer, path: str) -> tuple[int, Any]:
    async with http.get(sim.url + path) as r:
        return r.status, await r.json(content_type=None)


@contextmanager
def threaded(**kw: Any) -> Iterator[SimServer]:
    """The simulator on its own event loop in a thread, for sync tests that run the CLI."""
    with configured(**{"symbols": 5, "seed": 7, "speed": 0.0, **kw}) as cfg:
        loop = asyncio.new_event_loop()
        server = SimServer(cfg, wall_now_ms=NOW)
        ready = threading.Event()
        stop: asyncio.Event | None = None

        async def main() -> None:
            nonlocal stop
            stop = asyncio.Event()
            async with server:
                ready.set()
                await stop.wait()

        thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
        thread.start()
        ready.wait(10)
        try:
            yield server
        finally:
            assert stop is not None
            loop.call_soon_threadsafe(stop.set)
            thread.join(10)
            loop.close()


Connect = Callable[..., AbstractAsyncContextManager[tuple[SimServer, aiohttp.ClientSession, Any]]]


async def faults_change_nothing(
    connect: Connect,
    everything: Callable[[SimServer, Any], Awaitable[Any]],
    venue: str,
    kinds: tuple[Any, ...],
    *,
    fault_rate: float,
    at_least: int,
    **kw: Any,
) -> None:
    """`everything(sim, client)` on a simulator with faults equals the fault-free run, and
    the faults really happened (at least `at_least`, each retried or asked again)."""
    async with connect(**kw) as (sim, _, client):
        clean = await everything(sim, client)
    async with connect(**kw, fault_rate=fault_rate, fault_kinds=kinds) as (sim, http, client):
        sim.ctx.faults.slow_s = 0.05
        client.http.backoff_s, client.http.max_attempts = 0.005, 10
        assert await everything(sim, client) == clean
        _, stats = await get(http, sim, "/_sim/stats")
        assert stats["venues"][venue]["faults"] >= at_least
        assert client.http.stats.retries + client.empty_retries >= at_least
