"""One venue's backfill: its universe, then each symbol's chunks walked in order, what each
lacks fetched (REST, or the Binance archive where REST cannot reach or the venue failed) and
written in one transaction per chunk, off the event loop."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from oiradar.clock import Clock
from oiradar.datafiles.archive import (
    DAILY_KLINE_INTERVALS,
    ArchiveFile,
    ArchiveSource,
    funding_file,
    klines_file,
    liquidation_file,
    metrics_file,
    premium_file,
)
from oiradar.errors import UnknownSymbol, VenueError
from oiradar.kinds import DEFAULT_FUNDING_INTERVAL_H, Kind
from oiradar.records import OISample, Positioning
from oiradar.services.backfill.archive import ArchiveReads
from oiradar.services.backfill.listing import ListingFinder, remember
from oiradar.services.backfill.plan import (
    BINANCE,
    I64,
    BackfillRequest,
    Chunk,
    Lack,
    Progress,
    Rec,
    VenuePlan,
    chunks,
    lacks,
    plan_for,
    runs,
    uncovered,
)
from oiradar.services.backfill.report import BackfillResult, VenueReport, shortfall_reason
from oiradar.store import Span, Store
from oiradar.store.aio import AsyncStore
from oiradar.units import HOUR_MS, interval_name, iso
from oiradar.venues.base import VenueClient
from oiradar.venues.http import RestClient

log = logging.getLogger(__name__)


class VenueRun:
    """One venue's backfill. The first venue failure stops its REST calls for the run (each
    further call would only wait through the retries); the Binance archive may still serve."""

    def __init__(
        self,
        client: VenueClient,
        store: AsyncStore,
        req: BackfillRequest,
        archive: ArchiveSource | None,
        result: BackfillResult,
        progress: Progress,
        clock: Clock,
    ) -> None:
        self.client, self.store, self.req, self.result = client, store, req, result
        self.venue = client.name
        self.progress, self.clock = progress, clock
        self.report = VenueReport(self.venue)
        self.archive = (
            ArchiveReads(archive, self.report, result)
            if archive is not None and self.venue == BINANCE
            else None
        )
        self.rest_down: str | None = None
        self.funding_h: dict[str, float] = {}
        self.listed_ms: dict[str, int | None] = {}  # the venue's listing times, where it says
        self.listings = ListingFinder()  # or where a backfill found them (`listing`)

    async def run(self) -> VenueReport:
        try:
            now, symbols = await self._universe()
        except VenueError as exc:
            self.report.failed = f"{self.venue} unreachable: {exc}"
            return self.report
        plan = plan_for(self.venue, self.req, now, self.archive is not None)
        end = min(self.req.end_ms, now // plan.bar_ms * plan.bar_ms)  # closed bars only
        cks = chunks(self.req.start_ms, end, plan.bar_ms)
        if not cks:
            self.report.warnings.append(
                f"nothing to fetch on {self.venue}: its clock is at {iso(now)}, "
                f"not after --from {iso(self.req.start_ms)}"
            )
        self.report.symbols, self.report.chunks = len(symbols), len(symbols) * len(cks)
        self.progress(self.venue, max(1, self.report.chunks))
        sem = asyncio.Semaphore(self.req.concurrency)

        async def one(symbol: str) -> None:
            async with sem:
                await self._symbol(plan, symbol, cks)

        if cks:
            await asyncio.gather(*(one(s) for s in symbols))
        if isinstance(self.client, RestClient):
            self.report.requests = self.client.limiter.requests
        return self.report

    async def _universe(self) -> tuple[int, list[str]]:
        """The venue's time (from one snapshot) and the symbols it lists among those asked."""
        if self.req.archive_only:
            return self.clock.now_ms(), list(self.req.symbols or ())
        listed = {i.symbol: i for i in await self.client.instruments()}
        self.funding_h = {s: i.funding_interval_h or 8.0 for s, i in listed.items()}
        learned = await self.store.run(lambda s: s.listings(self.venue))
        self.listed_ms = {s: i.listed_ms or learned.get(s) for s, i in listed.items()}
        self.listings.learnable = {s for s, ms in self.listed_ms.items() if ms is None}
        if self.req.symbols is not None:
            wanted = [s for s in self.req.symbols if s in listed]
            self.report.warnings.extend(
                f"{s} is not listed on {self.venue}; skipped"
                for s in self.req.symbols
                if s not in listed
            )
            snaps = await self.client.snapshot(wanted[:1]) if wanted else []
        elif self.req.top is not None:
            snaps = await self.client.snapshot(None)
            ranked = sorted(snaps, key=lambda s: -(s.quote_volume_24h or 0.0))
            wanted = [s.symbol for s in ranked if s.symbol in listed][: self.req.top]
        else:
            wanted = sorted(listed)
            snaps = await self.client.snapshot(wanted[:1])
        return max((s.ts_ms for s in snaps), default=self.clock.now_ms()), wanted

    async def _symbol(self, plan: VenuePlan, symbol: str, cks: list[Chunk]) -> None:
        first, last, interval = cks[0].start_ms, cks[-1].end_ms - 1, interval_name(plan.bar_ms)
        have = await self.store.run(
            lambda s: s.read_series(self.venue, symbol, interval, first, last)
        )
        funding_ms = int(self.funding_h.get(symbol, DEFAULT_FUNDING_INTERVAL_H) * HOUR_MS)
        todo = lacks(plan, cks, have, funding_ms, self.listed_ms.get(symbol))
        done = 0
        try:
            funding = await self._funding(plan, symbol, cks, todo)
            for i, (chunk, lack) in enumerate(zip(cks, todo, strict=True)):
                for reason in lack.notes:
                    self.report.note(reason, symbol, chunk)
                if lack.nothing:
                    self.report.skipped += 1
                    self.listings.skipped(symbol)
                else:
                    got = await self._chunk(plan, symbol, chunk, lack, funding.get(i, []))
                    records, covered = got
                    self.report.fetched += 1
                    if records or covered:  # the chunk's one transaction
                        write = functools.partial(_write, records=records, coverage=covered)
                        counts = await self.store.run(write)
                        for kind, n in counts.items():
                            self.report.rows[kind.value] += n
                done += 1
                self.progress(self.venue, -1)
        except UnknownSymbol:
            self.report.warnings.append(f"{symbol} is not listed on {self.venue}; skipped")
            for _ in range(len(cks) - done):
                self.progress(self.venue, -1)

    async def _archive(
        self, file: ArchiveFile, symbol: str, chunk: Chunk, now_ms: int, *, quiet: bool = False
    ) -> list[Rec] | None:
        """The file's records, read once per run; None without an archive."""
        if self.archive is None:
            return None
        return await self.archive.once(file, symbol, chunk, now_ms, quiet=quiet)

    async def _rest(self, call: Callable[[], Awaitable[Sequence[Rec]]]) -> list[Rec] | None:
        """A connector call; None when not asked (archive only, or the venue failed)."""
        if self.rest_down is not None or self.req.archive_only:
            return None
        try:
            return list(await call())
        except UnknownSymbol:
            raise
        except VenueError as exc:
            if self.rest_down is None:
                self.rest_down = str(exc)
                self.report.failed = f"{self.venue} unreachable: {exc}"
                log.warning("venue=%s event=backfill_rest_down error=%s", self.venue, exc)
            return None

    async def _chunk(
        self, plan: VenuePlan, symbol: str, chunk: Chunk, lack: Lack, funding: list[Rec]
    ) -> tuple[list[Rec], list[Span]]:
        """What the chunk lacks, every kind concurrently (they use different budgets), and
        the liquidation feed's coverage an archive day brings."""
        async with asyncio.TaskGroup() as tg:
            bars = tg.create_task(self._candles(plan, symbol, chunk, lack))
            oi = tg.create_task(self._oi(plan, symbol, chunk, lack))
            pos = tg.create_task(self._positioning(plan, symbol, chunk, lack))
            premium = tg.create_task(self._premium(plan, symbol, chunk, lack))
            liq = tg.create_task(self._liquidations(plan, symbol, chunk, lack))
            day = tg.create_task(self._liquidation_day(symbol, chunk, lack, plan.now_ms))
        fetched = (bars, oi, pos, premium, liq)
        orders, covered = day.result()
        return [*(r for task in fetched for r in task.result()), *orders, *funding], covered

    async def _liquidation_day(
        self, symbol: str, chunk: Chunk, lack: Lack, now_ms: int
    ) -> tuple[list[Rec], list[Span]]:
        """Binance's archive liquidation snapshot of the day: its forced orders, and the day
        recorded as covered (a quiet bar reads 0 liquidated, as `oiradar import` stores it)."""
        if not lack.liq_day:
            return [], []
        got = await self._archive(liquidation_file(symbol, chunk.start_ms), symbol, chunk, now_ms)
        return (
            ([], []) if got is None else (got, [(self.venue, symbol, chunk.start_ms, chunk.end_ms)])
        )

    async def _candles(self, plan: VenuePlan, symbol: str, chunk: Chunk, lack: Lack) -> list[Rec]:
        if not lack.bars.size:
            return []
        lo, hi = int(lack.bars[0]), int(lack.bars[-1])
        fetch = functools.partial(self.client.klines, symbol, plan.bar_ms, lo, hi)
        file = klines_file(symbol, interval_name(plan.bar_ms), chunk.start_ms)
        got = await self._bars("candles", lack.bars, fetch, file, symbol, chunk, plan.now_ms)
        if self.rest_down is None and not self.req.archive_only:
            first = min((r.ts_ms for r in got), default=None)
            listed = self.listings.answered(symbol, lo, first)
            if listed is not None:
                await remember(self.store, self.venue, symbol, interval_name(plan.bar_ms), listed)
        return got

    async def _bars(
        self,
        name: str,
        opens: I64,
        fetch: Callable[[], Awaitable[Sequence[Rec]]],
        file: ArchiveFile,
        symbol: str,
        chunk: Chunk,
        now_ms: int,
    ) -> list[Rec]:
        """Klines or premium bars opening at `opens`: REST, or the archive's daily file of
        them when REST is not asked."""
        got = await self._rest(fetch)
        asked = got is not None
        if got is None and self.archive is not None:
            daily = file.interval in DAILY_KLINE_INTERVALS  # the archive has such files
            got = await self.archive.read(file if daily else None, symbol, chunk, now_ms)
        kept = [r for r in got or () if chunk.start_ms <= r.ts_ms < chunk.end_ms]
        if np.isin(opens, [r.ts_ms for r in kept], invert=True).any():
            self._shortfall(name, asked, got is not None, symbol, chunk)
        return kept

    async def _oi(self, plan: VenuePlan, symbol: str, chunk: Chunk, lack: Lack) -> list[Rec]:
        if (p := plan.oi_period_ms) is None:
            return []
        fetch = functools.partial(self.client.oi_history, symbol, p)
        slots = (OISample, p, lack.oi_rest, lack.oi_archive)
        return await self._snapshots("OI", slots, fetch, symbol, chunk, plan.now_ms)

    async def _positioning(
        self, plan: VenuePlan, symbol: str, chunk: Chunk, lack: Lack
    ) -> list[Rec]:
        if (p := plan.pos_period_ms) is None:
            return []
        fetch = functools.partial(self.client.positioning_history, symbol, p)
        slots = (Positioning, p, lack.pos_rest, lack.pos_archive)
        return await self._snapshots("positioning", slots, fetch, symbol, chunk, plan.now_ms)

    async def _snapshots(
        self,
        name: str,
        slots: tuple[type[OISample | Positioning], int, I64, I64],
        fetch: Callable[[int, int], Awaitable[Sequence[Rec]]],
        symbol: str,
        chunk: Chunk,
        now_ms: int,
    ) -> list[Rec]:
        """OI or positioning: the archive's metrics file where REST cannot reach (Binance
        beyond 30 days), REST for the rest (or the archive again if the venue failed); a
        slot (t - period, t] is filled by any snapshot in it."""
        kind, p, want_rest, want_archive = slots
        got: list[Rec] = []
        file = metrics_file(symbol, chunk.start_ms)
        read = False
        if want_archive.size:
            from_file = await self._archive(file, symbol, chunk, now_ms)
            read = from_file is not None
            got += [r for r in from_file or () if isinstance(r, kind)]
            if read and uncovered(want_archive[-1:], _ts(got), p).size:
                # Files dated before 2026-06-25 label each snapshot with the end of its 5
                # minutes: 00:00 .. 23:55, so the day's last slot (its 00:00 close) is the
                # next file's first row, and a file's own 00:00 row closes the day before.
                after = metrics_file(symbol, chunk.end_ms)
                nxt = await self._archive(after, symbol, chunk, now_ms, quiet=True)
                got += [
                    r
                    for r in nxt or ()
                    if isinstance(r, kind) and chunk.end_ms - p < r.ts_ms <= chunk.end_ms
                ]
        rest = uncovered(want_rest, _ts(got), p)
        asked = False
        if rest.size:
            lo, hi = max(chunk.start_ms + 1, int(rest[0]) - p + 1), int(rest[-1])
            fetched = await self._rest(lambda: fetch(lo, hi))
            asked = fetched is not None
            if fetched is None and self.archive is not None and not want_archive.size:
                fetched = await self._archive(file, symbol, chunk, now_ms)
                read = fetched is not None
            got += [r for r in fetched or () if isinstance(r, kind)]
        # A snapshot at the chunk's start closes the previous day's last bar: kept, so an
        # archive day's 288 rows are all stored (as `oiradar import` stores them).
        kept = [r for r in got if chunk.start_ms <= r.ts_ms <= chunk.end_ms]
        if uncovered(want_archive, _ts(kept), p).size:
            self._shortfall(name, False, read, symbol, chunk)
        if uncovered(want_rest, _ts(kept), p).size:
            self._shortfall(name, asked, read, symbol, chunk)
        return kept

    async def _liquidations(
        self, plan: VenuePlan, symbol: str, chunk: Chunk, lack: Lack
    ) -> list[Rec]:
        """Per-bar liquidation totals (Gate's contract_stats): REST only, no archive."""
        step = plan.liq_period_ms
        if step is None or not lack.liq.size:
            return []
        lo, hi = int(lack.liq[0]), int(lack.liq[-1])
        got = await self._rest(
            functools.partial(self.client.liquidation_history, symbol, step, lo, hi)
        )
        kept = [r for r in got or () if chunk.start_ms <= r.ts_ms < chunk.end_ms]
        if np.isin(lack.liq, [r.ts_ms for r in kept], invert=True).any():
            self._shortfall("liquidations", got is not None, False, symbol, chunk)
        return kept

    async def _premium(self, plan: VenuePlan, symbol: str, chunk: Chunk, lack: Lack) -> list[Rec]:
        """Like candles: REST, or the archive's premiumIndexKlines when REST is not asked."""
        step = plan.premium_ms
        if step is None or not lack.premium.size:
            return []
        lo, hi = int(lack.premium[0]), int(lack.premium[-1])
        fetch = functools.partial(self.client.premium_history, symbol, step, lo, hi)
        file = premium_file(symbol, interval_name(step), chunk.start_ms)
        return await self._bars(
            "premium index", lack.premium, fetch, file, symbol, chunk, plan.now_ms
        )

    async def _funding(
        self, plan: VenuePlan, symbol: str, cks: list[Chunk], todo: list[Lack]
    ) -> dict[int, list[Rec]]:
        """Funding settles 1-24 times a day, so it is fetched once per run of chunks that lack
        it (one call instead of one per day) and handed to each chunk's transaction."""
        out: dict[int, list[Rec]] = {}
        starts = np.array([c.start_ms for c in cks], dtype=np.int64)
        for run in runs([i for i, lack in enumerate(todo) if lack.funding]):
            lo, hi = cks[run[0]].start_ms, cks[run[-1]].end_ms - 1
            got = await self._rest(functools.partial(self.client.funding_history, symbol, lo, hi))
            asked = got is not None
            read = False
            if got is None and self.archive is not None:
                got = []
                for month in dict.fromkeys(cks[i].day[:7] for i in run):
                    first = next(cks[i] for i in run if cks[i].day.startswith(month))
                    file = funding_file(symbol, first.start_ms)
                    rows = await self.archive.read(file, symbol, first, plan.now_ms)
                    read = read or rows is not None
                    got += rows or []
            for r in got or ():
                i = int(np.searchsorted(starts, r.ts_ms, side="right")) - 1
                if i in run and r.ts_ms < cks[i].end_ms:
                    out.setdefault(i, []).append(r)
            for i in run:
                if i not in out:
                    self._shortfall("funding", asked, read, symbol, cks[i])
        return out

    def _shortfall(self, kind: str, asked: bool, read: bool, symbol: str, chunk: Chunk) -> None:
        reason = shortfall_reason(self.venue, kind, asked, read, self.rest_down)
        if reason is not None:
            self.report.note(reason, symbol, chunk)


def _ts(records: Sequence[Rec]) -> I64:
    return np.sort(np.array([r.ts_ms for r in records], dtype=np.int64))


def _write(store: Store, records: list[Rec], coverage: list[Span]) -> dict[Kind, int]:
    return store.write_records(records, coverage=coverage)
