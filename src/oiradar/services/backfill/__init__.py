"""`oiradar backfill`: history from the venues' REST APIs and, for Binance, the public archive.

Resumable because the store is the progress record. Per (venue, symbol) the range is walked
in UTC-day chunks; a chunk is compared with the store first (every bar, every OI and
positioning slot, every premium bar, every funding settlement there: skipped) and what it
lacks is fetched and written in ONE transaction, so a killed run loses at most the chunks in
flight and a rerun fetches only those. Symbols run a few at a time per venue; the
connectors' limiters keep every request inside the venue's budget, so nothing here waits on
its own. `plan` says what a chunk lacks, `venue` fetches it, `archive` reads the archive,
`report` tells what was done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from oiradar.clock import Clock, WallClock
from oiradar.datafiles.archive import ArchiveSource, open_archive
from oiradar.services.backfill.plan import (
    BINANCE,
    BackfillRequest,
    Chunk,
    Progress,
    check_interval,
    chunks,
    oi_period,
    uncovered,
)
from oiradar.services.backfill.report import BackfillResult, Missing, VenueReport
from oiradar.services.backfill.venue import VenueRun
from oiradar.services.clients import venue_clients
from oiradar.store import Store
from oiradar.store.aio import AsyncStore
from oiradar.venues.base import VenueClient

__all__ = [
    "BackfillRequest",
    "BackfillResult",
    "Chunk",
    "Missing",
    "VenueReport",
    "backfill",
    "check_interval",
    "chunks",
    "oi_period",
    "run",
    "uncovered",
]


async def run(
    req: BackfillRequest,
    store: Store,
    *,
    progress: Progress = lambda venue, n: None,
    clock: Clock | None = None,
) -> BackfillResult:
    """`oiradar backfill` as a Python call: clients for `req.venues` (at `req.endpoint`) and,
    for Binance unless `req.archive` is False, the archive (files in `req.archive_dir`, else
    downloads), all closed at the end. `progress(venue, n)`: n > 0 is the venue's chunk
    count, -1 one chunk done."""
    archive = open_archive(req.archive_dir) if req.archive and BINANCE in req.venues else None
    try:
        async with venue_clients(req.venues, req.endpoint) as clients:
            return await backfill(
                clients, store, req, archive=archive, progress=progress, clock=clock
            )
    finally:
        if archive is not None:
            await archive.close()


async def backfill(
    clients: Sequence[VenueClient],
    store: Store,
    req: BackfillRequest,
    *,
    archive: ArchiveSource | None = None,
    progress: Progress = lambda venue, n: None,
    clock: Clock | None = None,
) -> BackfillResult:
    """Backfill with the caller's clients (left open), every venue concurrently; a venue
    that fails is reported, the others go on. `archive` serves Binance only (None: REST
    only)."""
    result = BackfillResult()
    wall = clock or WallClock()
    writer = AsyncStore(store, name="oiradar-backfill")
    try:
        runs = [VenueRun(c, writer, req, archive, result, progress, wall) for c in clients]
        result.venues = list(await asyncio.gather(*(r.run() for r in runs)))
    finally:
        writer.close()
    return result
