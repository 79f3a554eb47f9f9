"""Run `oiradar watch` (the daemon object) against an in-process simulator, with alerts
POSTed to a local HTTP receiver on loopback, until the simulated clock reaches a time."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from oiradar.config import Secret, SinkConfig, SinkType
from oiradar.services.alerts import Gate, build_sink
from oiradar.services.watch import Watch, WatchRequest
from oiradar.sim.server import SimServer
from oiradar.store import open_store
from oiradar.venues.registry import client, stream
from tests.simkit import NOW, configured


@dataclass
class Received:
    body: dict[str, Any]
    sim_ms: int  # the simulator's clock when the alert reached the receiver


@dataclass
class Run:
    sim: SimServer
    db: Path | str  # a SQLite file, or a store URL (postgresql://...)
    hook: str
    received: list[Received] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)

    def alerts(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return [r.body for r in self.received if symbol is None or r.body["symbol"] == symbol]


@asynccontextmanager
async def simulated(db: Path | str, **sim_kw: Any) -> AsyncIterator[Run]:
    """A simulator and an alert receiver on loopback, for one or more daemon runs."""
    got: list[Received] = []
    holder: list[SimServer] = []

    async def handle(request: web.Request) -> web.Response:
        got.append(Received(await request.json(), holder[0].ctx.now_ms()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        with configured(**{"symbols": 7, "seed": 7, **sim_kw}) as cfg:
            async with SimServer(cfg, wall_now_ms=NOW) as sim:
                holder.append(sim)
                yield Run(sim, db, f"http://127.0.0.1:{runner.addresses[0][1]}/hook", got)
    finally:
        await runner.cleanup()


async def run_daemon(
    run: Run,
    req: WatchRequest,
    until_ms: int,
    *,
    wall_limit_s: float = 120.0,
    probe: Callable[[Watch], None] | None = None,
    kind: type[Watch] = Watch,
) -> None:
    """One daemon on `run`'s simulator and store until the sim clock passes `until_ms`, then
    stopped the way SIGTERM stops it (`kind`: a `Collector` too). Its limiters are scaled
    like the simulator's (`watch --limit-scale`, as the README's replay recipe gives both)."""
    sim = run.sim
    hook = SinkConfig(SinkType.WEBHOOK, "hook", url=Secret(run.hook))
    clients = [client(v, sim.url, limit_scale=sim.ctx.limits.scale) for v in req.venues]
    streams = [stream(v, sim.url) for v in req.venues]
    with open_store(run.db) as store:
        daemon = kind(req, store, clients, streams, [build_sink(hook)], Gate(cooldown_s=900))
        if probe is not None:
            probe(daemon)
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        started = time.monotonic()
        try:
            while sim.ctx.now_ms() < until_ms and not task.done():
                assert time.monotonic() - started < wall_limit_s, "watch run took too long"
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await _stopped(task)
            for c in clients:
                await c.close()
        run.status = daemon.status()


STOP_LIMIT_S = 60.0  # wall seconds a stopped daemon may take to wind down


async def _stopped(task: asyncio.Task[None]) -> None:
    """Wait for the daemon to end; a hung shutdown fails with every task's stack (a hang
    would otherwise hold the whole suite until CI's timeout, saying nothing)."""
    done, _ = await asyncio.wait([task], timeout=STOP_LIMIT_S)
    if not done:
        stacks = io.StringIO()
        for t in asyncio.all_tasks():
            if t is not asyncio.current_task():
                t.print_stack(limit=12, file=stacks)
        task.cancel()
        raise AssertionError(
            f"watch did not stop within {STOP_LIMIT_S:.0f} s:\n{stacks.getvalue()}"
        )
    await task


async def watch_until(
    tmp: Path,
    req: WatchRequest,
    until_ms: int,
    *,
    probe: Callable[[Watch], None] | None = None,
    **sim_kw: Any,
) -> Run:
    async with simulated(tmp / "watch.sqlite", **sim_kw) as run:
        await run_daemon(run, req, until_ms, probe=probe)
    return run
