"""`oiradar watch` as a Python call: the daemon wired from a request, a store and a config.

Clients and streams for the venues asked (at `req.endpoint`), the sinks of the config (the
console when it names none), the gate and the retries of its `[alerts]`, and SIGINT/SIGTERM
to stop unless the caller brings its own `stop` event. `req.role` picks the daemon: all in
one (`Watch`), a collector (`collect.Collector`) or a decider (`deciding.DecideOnly`, no
venue clients). `beside` runs for the daemon's lifetime (the dashboard of `watch --serve`):
entered before the venues start, left after they stop; what it yields (a URL) is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

from oiradar.config import Config, SinkConfig, SinkType
from oiradar.lifecycle import stop_on_signals
from oiradar.services.alerts import Gate, build_sink
from oiradar.services.clients import venue_clients
from oiradar.services.watch.collect import Collector
from oiradar.services.watch.daemon import Watch, WatchRequest
from oiradar.services.watch.deciding import DecideOnly
from oiradar.services.watch.workers import Role
from oiradar.signals.windows import load_medians
from oiradar.store import Store
from oiradar.venues.registry import stream

log = logging.getLogger(__name__)
CONSOLE = SinkConfig(SinkType.CONSOLE, "console")


async def run(
    req: WatchRequest,
    store: Store,
    *,
    config: Config | None = None,
    beside: AbstractAsyncContextManager[str] | None = None,
    stop: asyncio.Event | None = None,
) -> Watch:
    """Watch until `stop` is set (None: until SIGINT or SIGTERM); everything in memory is
    stored before it returns the stopped daemon (its `status()` says what it did)."""
    cfg = config or Config()
    alerts = cfg.alerts
    sinks = [build_sink(s) for s in cfg.sinks or (CONSOLE,)]
    gate = Gate(alerts.cooldown_s, alerts.min_confidence, alerts.regimes)
    retry = {"max_attempts": alerts.max_attempts, "backoff_s": alerts.backoff_s}
    deciding = req.role is Role.DECIDE  # reads the store: no venue clients
    if req.role is not Role.COLLECT:
        load_medians()  # the track record's, a day from now: its memory from the start
    async with (
        _stopping(stop) as until,
        venue_clients(
            () if deciding else req.venues, req.endpoint, limit_scale=req.limit_scale
        ) as clients,
    ):
        daemon: Watch
        if deciding:
            daemon = DecideOnly(req, store, sinks, gate, dispatcher_kw=retry)
        else:
            kind = Collector if req.role is Role.COLLECT else Watch
            # each stream's start-up REST (its listing) goes through the venue's client: one
            # limiter per venue, also while the start-up backfill spends its budget
            streams = [
                stream(v, req.endpoint, rest=c) for v, c in zip(req.venues, clients, strict=True)
            ]
            daemon = kind(req, store, clients, streams, sinks, gate, dispatcher_kw=retry)
        if beside is None:
            await daemon.run(until)
        else:
            async with beside as url:
                log.info("event=serving url=%s", url)
                await daemon.run(until)
    return daemon


@contextlib.asynccontextmanager
async def _stopping(stop: asyncio.Event | None) -> AsyncIterator[asyncio.Event]:
    """`stop`, or an event SIGINT and SIGTERM set (handlers removed afterwards)."""
    if stop is not None:
        yield stop
        return
    async with stop_on_signals() as event:
        yield event
