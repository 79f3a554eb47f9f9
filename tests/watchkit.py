"""Run `oiradar watch` (the daemon object) against an in-process simulator, with alerts
POSTed to a local HTTP receiver on loopback, until the simulated clock reaches a time."""

from __future__ import annotations

import asyncio
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
from oiradar.sim.server import SimConfig, SimServer
from oiradar.store import Store
from oiradar.venues.registry import client, stream
from tests.simkit import NOW


@dataclass
class Received:
    body: dict[str, Any]
    sim_ms: int  # the simulator's clock when the alert reached the receiver


@dataclass
class Run:
    sim: SimServer
    db: Path
    received: list[Received] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)

    def alerts(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return [r.body for r in self.received if symbol is None or r.body["symbol"] == symbol]


@asynccontextmanager
async def receiver(run_sim: list[SimServer | None]) -> AsyncIterator[tuple[str, list[Received]]]:
    got: list[Received] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        sim = run_sim[0]
        got.append(Received(body, sim.ctx.now_ms() if sim else 0))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", got
    finally:
        await runner.cleanup()


async def watch_until(
    tmp: Path,
    req: WatchRequest,
    until_ms: int,
    *,
    wall_limit_s: float = 120.0,
    db: Path | None = None,
    probe: Callable[[Watch], None] | None = None,
    **sim_kw: Any,
) -> Run:
    """Start the simulator and the daemon, run until the sim clock passes `until_ms`, stop
    the daemon the way SIGTERM does, and return what arrived."""
    cfg = SimConfig(**{"symbols": 7, "seed": 7, **sim_kw})
    holder: list[SimServer | None] = [None]
    db = db or tmp / "watch.sqlite"
    async with SimServer(cfg, wall_now_ms=NOW) as sim, receiver(holder) as (url, got):
        holder[0] = sim
        hook = SinkConfig(SinkType.WEBHOOK, "hook", url=Secret(url))
        clients = [client(v, sim.url, limit_scale=1.0) for v in req.venues]
        streams = [stream(v, sim.url) for v in req.venues]
        with Store(db) as store:
            daemon = Watch(req, store, clients, streams, [build_sink(hook)], Gate(cooldown_s=900))
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
                await task
                for c in clients:
                    await c.close()
            run = Run(sim, db, got, daemon.status())
    return run
