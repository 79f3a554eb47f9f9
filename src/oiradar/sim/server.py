"""The simulator's aiohttp app: seven venues on one port plus `/_sim/*` control endpoints.

Every response's `Date` header is the simulated clock (a venue's own clock, which clients
of venues whose payloads carry no time read), faults and WebSocket upgrades included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from aiohttp import web

from oiradar.clock import SimClock
from oiradar.errors import UserError
from oiradar.lifecycle import stop_on_signals
from oiradar.sim.context import (
    EMPTY,
    HEADERS,
    SIM,
    SimContext,
    ctx_of,
    http_date,
    is_empty_fault,
    json_response,
)
from oiradar.sim.faults import MAINTENANCE_HTML, Fault, Faults
from oiradar.sim.limits import Limits
from oiradar.sim.market import Market
from oiradar.sim.synth import WEIGHTS
from oiradar.store import Store
from oiradar.units import DAY_MS, MINUTE_MS

__all__ = ["SimConfig", "SimServer", "build_app", "is_empty_fault"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SIM_VENUES = ("binance", "bybit", "okx", "bitget", "gate", "hyperliquid", "dydx")


@dataclass(slots=True)
class SimConfig:
    symbols: int = 50
    data: Path | None = None  # where the recorded history came from (/_sim/info shows it)
    history: Store | None = None  # that history, opened (services.importer.history_store)
    start_ms: int | None = None
    speed: float = 1.0
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    fault_rate: float = 0.0
    seed: int = 7
    limit_scale: float = 1.0
    history_days: float = 8.0
    future_days: float = 1.0
    ws_drop_s: float = 0.0
    ws_duplicate: float = 0.0
    ws_reorder: float = 0.0
    ws_lose_close: float = 0.0
    fault_kinds: tuple[Fault, ...] = tuple(Fault)
    venues: tuple[str, ...] = SIM_VENUES
    regime_weights: dict[str, float] | None = None  # synthetic mix (None: the default)
    cascade_delay: float = 0.0  # share of a synthetic squeeze before its cascade
    history_lag_ms: dict[str, int] = field(default_factory=dict)  # venue -> OI history lag
    renamed_fields: dict[str, str] = field(default_factory=dict)  # REST drift: old -> new key
    extra: dict[str, Any] = field(default_factory=dict)


def parse_history_lag(text: str, venues: tuple[str, ...]) -> dict[str, int]:
    """`--history-lag`: `5m` (every venue) or `binance=5m,okx=1m` -> venue -> lag in ms."""
    from oiradar.errors import UserError
    from oiradar.units import interval_ms

    out: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        venue, sep, lag = part.rpartition("=")
        names = (venue.strip().lower(),) if sep else venues
        if sep and names[0] not in venues:
            raise UserError(f"--history-lag: {venue!r} is not a served venue ({', '.join(venues)})")
        ms = interval_ms(lag)
        out.update(dict.fromkeys(names, ms))
    return out


VENUES = web.AppKey("sim_venues", list)
CONFIG = web.AppKey("sim_config", SimConfig)


def _venue_modules(names: tuple[str, ...]) -> list[ModuleType]:
    import importlib

    return [importlib.import_module(f"oiradar.sim.venues.{n}") for n in names]


def build_market(cfg: SimConfig, wall_now_ms: int) -> tuple[Market, int]:
    """The market and the clock's start (default: now for synthetic data, day 2 of history)."""
    if cfg.data is not None:
        from oiradar.sim.history import history_market

        if cfg.history is None:
            raise ValueError("SimConfig.data needs its store in SimConfig.history")
        market = history_market(cfg.history, cfg.seed)
        first = min(market.get(s).first_ms for s in market.symbols)
        return market, cfg.start_ms if cfg.start_ms is not None else first + DAY_MS
    from oiradar.sim.synth import synthetic_market

    start = cfg.start_ms if cfg.start_ms is not None else wall_now_ms // MINUTE_MS * MINUTE_MS
    lo = (start - int(cfg.history_days * DAY_MS)) // DAY_MS * DAY_MS
    hi = start + int(cfg.future_days * DAY_MS)
    market = synthetic_market(cfg.symbols, lo, hi, cfg.seed, cfg.regime_weights, cfg.cascade_delay)
    return market, start


def build_app(cfg: SimConfig, wall_now_ms: int) -> web.Application:
    market, start = build_market(cfg, wall_now_ms)
    ctx = SimContext(
        market=market,
        clock=SimClock(start, cfg.speed),
        limits=Limits(scale=cfg.limit_scale),
        faults=Faults(
            rate=cfg.fault_rate,
            latency_ms=cfg.latency_ms,
            jitter_ms=cfg.jitter_ms,
            seed=cfg.seed,
            kinds=cfg.fault_kinds,
            ws_drop_s=cfg.ws_drop_s,
            ws_duplicate=cfg.ws_duplicate,
            ws_reorder=cfg.ws_reorder,
            ws_lose_close=cfg.ws_lose_close,
        ),
        seed=cfg.seed,
        history_lag_ms=dict(cfg.history_lag_ms),
        renamed_fields=dict(cfg.renamed_fields),
    )
    modules = _venue_modules(cfg.venues)
    app = web.Application(middlewares=[_middleware])
    app.on_response_prepare.append(_date_header)
    app[SIM] = ctx
    app[VENUES] = [(m.VENUE, m.PREFIXES, m.check_limits) for m in modules]
    app[CONFIG] = cfg
    for m in modules:
        m.setup(app, ctx)
    app.router.add_get("/_sim/clock", _get_clock)
    app.router.add_post("/_sim/clock", _set_clock)
    app.router.add_get("/_sim/stats", _get_stats)
    app.router.add_post("/_sim/stats/reset", _reset_stats)
    app.router.add_get("/_sim/info", _get_info)
    return app


async def _date_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Date"] = http_date(ctx_of(request).now_ms())


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if path.startswith("/_sim/"):
        return await handler(request)
    ctx = ctx_of(request)
    venue = next(
        ((v, check) for v, prefixes, check in request.app[VENUES] if path.startswith(prefixes)),
        None,
    )
    if venue is None or request.headers.get("Upgrade", "").lower() == "websocket":
        return await handler(request)
    name, check = venue
    stats = ctx.limits.stats[name]
    stats.requests += 1
    stats.paths[path] = stats.paths.get(path, 0) + 1
    await ctx.faults.delay()
    refused: web.StreamResponse | None = check(ctx, request)
    if refused is not None:
        return refused
    fault = ctx.faults.pick()
    if fault is not None:
        ctx.limits.stats[name].faults += 1
        return await _fault(fault, ctx, request, handler)
    response = await handler(request)
    if ctx.renamed_fields and isinstance(response, web.Response):
        response.body = _renamed(response.body, ctx.renamed_fields)
    for key, value in request.get(HEADERS, {}).items():
        response.headers[key] = value
    return response


def _renamed(body: Any, names: dict[str, str]) -> Any:
    """A JSON body with every object key in `names` renamed (`sim --rename-field`): a venue
    that changed a field, for `oiradar doctor` to find."""
    if not isinstance(body, bytes):
        return body

    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            return {names.get(k, k): walk(v) for k, v in x.items()}
        return [walk(v) for v in x] if isinstance(x, list) else x

    try:
        return json.dumps(walk(json.loads(body)), separators=(",", ":")).encode()
    except ValueError:
        return body


async def _fault(
    fault: Fault, ctx: SimContext, request: web.Request, handler: Handler
) -> web.StreamResponse:
    if fault is Fault.ERROR_5XX:
        return web.Response(status=502, text="Bad Gateway")
    if fault is Fault.SLOW_504:
        await asyncio.sleep(ctx.faults.slow_s)
        return web.Response(status=504, text="Gateway Time-out")
    if fault is Fault.MAINTENANCE:
        return web.Response(status=503, text=MAINTENANCE_HTML, content_type="text/html")
    if fault is Fault.RESET:
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("simulated connection reset")
    if fault is Fault.EMPTY:
        request[EMPTY] = True
        return await handler(request)
    full = await handler(request)
    body = full.body if isinstance(full, web.Response) and isinstance(full.body, bytes) else b"{}"
    return web.Response(
        body=body[: max(1, len(body) // 2)], status=200, content_type="application/json"
    )


async def _get_clock(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    return json_response({"now_ms": ctx.now_ms(), "speed": ctx.clock.speed})


async def _set_clock(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return json_response({"error": "expected a JSON object {now_ms?, speed?}"}, status=400)
    now, speed = body.get("now_ms"), body.get("speed")
    if now is not None and not isinstance(now, int):
        return json_response({"error": "now_ms must be an integer (ms UTC)"}, status=400)
    if speed is not None and (not isinstance(speed, int | float) or speed < 0):
        return json_response({"error": "speed must be a number >= 0"}, status=400)
    ctx.clock.set(now, float(speed) if speed is not None else None)
    return await _get_clock(request)


async def _get_stats(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    return json_response(ctx.limits.report())


async def _reset_stats(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    ctx.limits.reset()
    return json_response(ctx.limits.report())


async def _get_info(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    cfg = request.app[CONFIG]
    return json_response(
        {
            "venues": list(cfg.venues),
            "symbols": ctx.market.symbols,
            "seed": cfg.seed,
            "now_ms": ctx.now_ms(),
            "source": str(cfg.data) if cfg.data else "synthetic",
            "regime_weights": None if cfg.data else (cfg.regime_weights or dict(WEIGHTS)),
            "cascade_delay": None if cfg.data else cfg.cascade_delay,
        }
    )


class SimServer:
    """Run the simulator in-process (tests, benches): `async with SimServer(cfg) as sim:`."""

    def __init__(
        self, cfg: SimConfig, host: str = "127.0.0.1", port: int = 0, wall_now_ms: int | None = None
    ) -> None:
        from oiradar.clock import WallClock

        self.cfg, self.host, self.port = cfg, host, port
        self.app = build_app(cfg, wall_now_ms if wall_now_ms is not None else WallClock().now_ms())
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        self.url = ""

    @property
    def ctx(self) -> SimContext:
        return self.app[SIM]

    async def __aenter__(self) -> SimServer:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None
        sock = server.sockets[0]  # type: ignore[attr-defined]
        self.port = int(sock.getsockname()[1])
        self.url = f"http://{self.host}:{self.port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self._runner.cleanup()


async def serve_until_stopped(cfg: SimConfig, host: str, port: int) -> None:
    """`oiradar sim`: listen until SIGINT/SIGTERM, printing the URL once it is listening
    (scripts wait for that line)."""
    try:
        server = SimServer(cfg, host=host, port=port)
    except OSError as exc:
        raise UserError(f"cannot start the simulator: {exc}") from None
    try:
        async with stop_on_signals() as stop, server as running:
            sys.stdout.write(f"listening on {running.url}\n")
            sys.stdout.flush()
            await stop.wait()
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
