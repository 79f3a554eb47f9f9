"""Helpers for simulator tests: a frozen-clock server and JSON fetches over real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from oiradar.sim.server import SimConfig, SimServer

NOW = 1_780_000_000_000  # 2026-05-28T20:26:40Z; the clock starts on the minute before it
MINUTE = 60_000


@asynccontextmanager
async def running(**kw: Any) -> AsyncIterator[tuple[SimServer, aiohttp.ClientSession]]:
    cfg = SimConfig(**{"symbols": 5, "seed": 7, "speed": 0.0, **kw})
    async with SimServer(cfg, wall_now_ms=NOW) as sim, aiohttp.ClientSession() as http:
        yield sim, http


async def get(http: aiohttp.ClientSession, sim: SimServer, path: str) -> tuple[int, Any]:
    async with http.get(sim.url + path) as r:
        return r.status, await r.json(content_type=None)
