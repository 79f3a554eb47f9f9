"""`oiradar backfill`: history from the venues' REST APIs and, for Binance, the public archive.

Resumable because the store is the progress record. Per (venue, symbol) the range is walked
in UTC-day chunks; a chunk is compared with the store first (every bar, every OI and
positioning slot, every premium bar, every funding settlement there: skipped) and what it
lacks is fetched and written in ONE transaction, so a killed run loses at most the chunks in
flight and a rerun fetches only those. Symbols run a few at a time per venue; the
connectors' limiters keep every request inside the venue's budget, so nothing here waits on
its own.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from numpy.typing import NDArray

from oiradar.clock import Clock, WallClock
from oiradar.datafiles import parse_file
from oiradar.datafiles.archive import (
    DAILY_KLINE_INTERVALS,
    ArchiveError,
    ArchiveFile,
    ArchiveSource,
    ArchiveUnavailable,
    funding_file,
    klines_file,
    metrics_file,
    premium_file,
)
from oiradar.errors import DataError, UnknownSymbol, UserError, VenueError
from oiradar.kinds import DEFAULT_FUNDING_INTERVAL_H, LAYOUTS, Kind
from oiradar.records import (
    Candle,
    FundingSample,
    MarketSeries,
    OISample,
    Positioning,
    PremiumBar,
)
from oiradar.store import Store
from oiradar.units import DAY_MS, HOUR_MS, MINUTE_MS, interval_ms, interval_name, iso
from oiradar.venues.base import VenueClient
from oiradar.venues.binance import OI_RETENTION_MS, RETENTION_MARGIN_MS
from oiradar.venues.http import RestClient

BINANCE = "binance"
CONCURRENCY = 8  # symbols in flight per venue: keeps per-instrument budgets (OKX) busy
Rec = Candle | OISample | FundingSample | PremiumBar | Positioning
I64 = NDArray[np.int64]
Progress = Callable[[str, int], None]  # (venue, n): n > 0 sets the total, -1 advances one chunk
log = logging.getLogger(__name__)

# Interval tables of each connector (attribute of oiradar.venues.<venue>): ms keys or names.
KLINE_TABLES = {
    "binance": "KLINE_INTERVALS",
    "bybit": "KLINE_INTERVALS",
    "okx": "BARS",
    "bitget": "GRANULARITY",
}
OI_TABLES = {"binance": "OI_PERIODS", "bybit": "OI_PERIODS", "okx": "OI_PERIODS"}
PREMIUM_TABLES = dict.fromkeys(("binance", "bybit", "okx"), "PREMIUM_INTERVALS")
POSITIONING_TABLES = {"binance": "POSITIONING_PERIODS"}  # the ratio endpoints' periods
# What each venue's REST API keeps of OI history (exchange-apis.md): Binance the latest 30
# days (its connector stays a minute clear of the edge), OKX the latest 1,440 rows per
# period, Bybit everything since listing, Bitget nothing.
BINANCE_OI_KEEP_MS = OI_RETENTION_MS - RETENTION_MARGIN_MS
OKX_OI_ROWS = 1_440
NO_DATA_HINTS = {
    ("okx", "funding"): "OKX keeps about three months of funding",
    ("okx", "OI"): "OKX keeps the latest 1,440 rows per period",
    ("bitget", "candles"): "Bitget keeps one month of 1m-5m bars",
    ("okx", "premium index"): "OKX keeps six months of premium samples",
}


def _lengths(venue: str, tables: dict[str, str]) -> frozenset[int]:
    """A connector's supported bar or period lengths in ms (empty: none)."""
    if venue not in tables:
        return frozenset()
    values = getattr(importlib.import_module(f"oiradar.venues.{venue}"), tables[venue])
    return frozenset(v if isinstance(v, int) else interval_ms(v) for v in values)


def check_interval(venues: Sequence[str], bar_ms: int) -> None:
    """Bad input before any request: the interval must fit a day and exist on every venue."""
    name = interval_name(bar_ms)
    if bar_ms > DAY_MS or DAY_MS % bar_ms:
        raise UserError(f"--interval {name}: backfill walks whole days; use 1m .. 1d")
    for venue in venues:
        allowed = _lengths(venue, KLINE_TABLES)
        if bar_ms not in allowed:
            names = ", ".join(interval_name(x) for x in sorted(allowed) if x <= DAY_MS)
            raise UserError(f"{venue} has no {name} klines: use one of {names}, or leave it out")


def oi_period(venue: str, bar_ms: int, tables: dict[str, str] = OI_TABLES) -> int | None:
    """The bar itself where the venue has that OI period, else the largest 5m..1h period that
    divides it (the smallest for bars under 5m); None where the venue keeps no OI history.
    Positioning periods follow the same rule (`tables=POSITIONING_TABLES`)."""
    periods = _lengths(venue, tables)
    if not periods or bar_ms in periods:
        return bar_ms if periods else None
    fits = [p for p in periods if p <= min(bar_ms, HOUR_MS) and bar_ms % p == 0]
    return max(fits) if fits else min(periods)


@dataclass(frozen=True, slots=True)
class BackfillRequest:
    """Bars opening in [start_ms, end_ms) on `venues`; symbols by name, top N or all."""

    venues: tuple[str, ...]
    start_ms: int
    end_ms: int
    symbols: tuple[str, ...] | None = None
    top: int | None = None
    interval_ms: int = 5 * MINUTE_MS
    archive_only: bool = False
    concurrency: int = CONCURRENCY
    # Premium-index bars feed only the opt-in `premium` squeeze evidence, and OKX serves them
    # 100 one-minute samples a request (15 per symbol-day): asked for, not by default.
    premium: bool = False


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bars opening in [start_ms, end_ms); their OI slots close in (start_ms, end_ms]."""

    start_ms: int
    end_ms: int

    @property
    def day(self) -> str:
        return iso(self.start_ms)[:10]


def chunks(start_ms: int, end_ms: int, bar_ms: int) -> list[Chunk]:
    """[start, end) cut at UTC midnights: one chunk per day, so an archive day is one file."""
    lo = -(-start_ms // bar_ms) * bar_ms
    out = []
    while lo < end_ms:
        hi = min(end_ms, (lo // DAY_MS + 1) * DAY_MS)
        out.append(Chunk(lo, hi))
        lo = hi
    return out


@dataclass(frozen=True, slots=True)
class VenuePlan:
    venue: str
    bar_ms: int
    now_ms: int
    oi_period_ms: int | None  # None: the venue publishes no OI history
    oi_rest_from_ms: int | None  # the oldest OI slot REST still serves; None: no REST
    oi_archive: bool  # slots REST cannot serve come from the Binance archive
    oi_keep: str  # what the venue keeps, for the report
    premium_ms: int | None = None  # premium bars at the bar size; None: the venue has none
    pos_period_ms: int | None = None  # positioning (Binance); None: the venue has none
    pos_rest_from_ms: int | None = None  # the oldest slot the ratio endpoints serve
    premium_asked: bool = False  # --premium: say so where the venue has none


def plan_for(venue: str, req: BackfillRequest, now_ms: int, archive: bool) -> VenuePlan:
    period = oi_period(venue, req.interval_ms)
    keep, rest_from = "everything since listing", -(2**62)
    if venue == BINANCE:
        keep, rest_from = "30 days", now_ms - BINANCE_OI_KEEP_MS
    elif venue == "okx" and period is not None:
        rows_days = OKX_OI_ROWS * period / DAY_MS
        keep = f"the latest 1,440 rows: {rows_days:g} days at {interval_name(period)}"
        rest_from = now_ms - OKX_OI_ROWS * period
    rest = None if req.archive_only or period is None else rest_from
    oi_archive = archive and venue == BINANCE
    with_premium = req.premium and req.interval_ms in _lengths(venue, PREMIUM_TABLES)
    premium = req.interval_ms if with_premium else None
    pos = oi_period(venue, req.interval_ms, POSITIONING_TABLES)
    pos_rest = None if req.archive_only or pos is None else now_ms - BINANCE_OI_KEEP_MS
    return VenuePlan(
        venue,
        req.interval_ms,
        now_ms,
        period,
        rest,
        oi_archive,
        keep,
        premium,
        pos,
        pos_rest,
        req.premium,
    )


@dataclass(frozen=True, slots=True)
class Lack:
    """What one chunk misses in the store, by source; `notes` say what no source can give."""

    bars: I64
    oi_rest: I64  # OI slot closes to ask the venue for
    oi_archive: I64  # OI slot closes to read from the archive
    funding: bool
    notes: tuple[str, ...] = ()
    premium: I64 = field(default_factory=lambda: np.empty(0, np.int64))  # bar opens
    pos_rest: I64 = field(default_factory=lambda: np.empty(0, np.int64))  # slot closes
    pos_archive: I64 = field(default_factory=lambda: np.empty(0, np.int64))

    @property
    def nothing(self) -> bool:
        slots = (self.oi_rest, self.oi_archive, self.premium, self.pos_rest, self.pos_archive)
        return not (self.bars.size or any(x.size for x in slots) or self.funding)


def uncovered(slots: I64, ts: I64, period: int | None) -> I64:
    """The slot closes t among `slots` with no snapshot (sorted `ts`) in (t - period, t]."""
    if not slots.size or not ts.size or not period:
        return slots
    i = np.searchsorted(ts, slots - period, side="right")
    covered = (i < ts.size) & (ts[np.minimum(i, ts.size - 1)] <= slots)
    return slots[~covered]


def _slots(
    plan: VenuePlan,
    c: Chunk,
    what: tuple[str, int, int | None, str],
    have_ts: I64,
    notes: list[str],
) -> tuple[I64, I64]:
    """(slot closes to ask REST for, slot closes to read from the archive) of one kind of
    snapshot; `what` = (name, period, the oldest slot REST serves, what the venue keeps)."""
    name, p, oldest, keep = what
    empty = np.empty(0, np.int64)
    slots = np.arange((c.start_ms // p + 1) * p, c.end_ms + 1, p, dtype=np.int64)
    missing = uncovered(slots, have_ts, p)
    by_rest = missing >= (oldest if oldest is not None else 2**62)
    if oldest is not None and not plan.oi_archive and not by_rest.all():
        tip = "; the Binance archive has it (drop --no-archive)" * (plan.venue == BINANCE)
        notes.append(f"{name} before {iso(oldest)} is beyond what {plan.venue} keeps ({keep}){tip}")
    return missing[by_rest], (missing[~by_rest] if plan.oi_archive else empty)


def lacks(plan: VenuePlan, cks: Sequence[Chunk], have: MarketSeries, funding_ms: int) -> list[Lack]:
    """Compare each chunk with what the store holds (one read per symbol, done beforehand)."""
    out = []
    empty = np.empty(0, np.int64)
    for c in cks:
        opens = np.arange(c.start_ms, c.end_ms, plan.bar_ms, dtype=np.int64)
        bars = opens[~np.isin(opens, have.candle_ts)]
        notes: list[str] = []
        rest, archive = empty, empty
        if plan.oi_period_ms is None:
            notes.append(f"{plan.venue} publishes no OI history; record it live with oiradar watch")
        else:
            oi = ("OI", plan.oi_period_ms, plan.oi_rest_from_ms, plan.oi_keep)
            rest, archive = _slots(plan, c, oi, have.oi_ts, notes)
        premium = opens[~np.isin(opens, have.premium_ts)] if plan.premium_ms else empty
        if plan.premium_ms is None and plan.premium_asked:
            notes.append(f"{plan.venue} publishes no premium-index history")
        pos_rest, pos_archive = empty, empty
        if plan.pos_period_ms is not None:
            pos = ("positioning", plan.pos_period_ms, plan.pos_rest_from_ms, plan.oi_keep)
            pos_rest, pos_archive = _slots(plan, c, pos, have.pos_ts, notes)
        due = np.arange(-(-c.start_ms // funding_ms) * funding_ms, c.end_ms, funding_ms).size
        held = int(((have.funding_ts >= c.start_ms) & (have.funding_ts < c.end_ms)).sum())
        lack = Lack(bars, rest, archive, held < due, tuple(notes), premium, pos_rest, pos_archive)
        out.append(lack)
    return out


@dataclass(slots=True)
class Missing:
    """Where one reason left data out: which days and symbols."""

    days: set[str] = field(default_factory=set)
    symbols: set[str] = field(default_factory=set)

    def text(self, reason: str) -> str:
        days, names = sorted(self.days), sorted(self.symbols)
        span = days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"
        who = ", ".join(names) if len(names) <= 3 else f"{len(names)} symbols"
        return f"{reason} [{who}; {len(days)} day(s), {span}]"


@dataclass(slots=True)
class VenueReport:
    venue: str
    symbols: int = 0
    chunks: int = 0
    fetched: int = 0
    skipped: int = 0
    rows: Counter[str] = field(default_factory=Counter)
    archive_files: int = 0
    requests: int = 0
    missing: dict[str, Missing] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    failed: str | None = None

    def note(self, reason: str, symbol: str, chunk: Chunk) -> None:
        where = self.missing.setdefault(reason, Missing())
        where.days.add(chunk.day)
        where.symbols.add(symbol)

    def row(self) -> dict[str, object]:
        return {
            "venue": self.venue,
            "symbols": self.symbols,
            "chunks": self.chunks,
            "fetched": self.fetched,
            "skipped": self.skipped,
            "candles": self.rows[Kind.CANDLES.value],
            "open_interest": self.rows[Kind.OPEN_INTEREST.value],
            "funding": self.rows[Kind.FUNDING.value],
            "premium_index": self.rows[Kind.PREMIUM_INDEX.value],
            "positioning": self.rows[Kind.POSITIONING.value],
            "archive_files": self.archive_files,
            "requests": self.requests,
            "missing": [m.text(reason) for reason, m in self.missing.items()],
            "failed": self.failed,
        }


@dataclass(slots=True)
class BackfillResult:
    venues: list[VenueReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # archive files rejected, one line each
    archive_down: str | None = None  # the archive did not answer; the run went on without it

    @property
    def failed(self) -> list[str]:
        return [v.venue for v in self.venues if v.failed]


def _records(frames: dict[Kind, pl.DataFrame]) -> list[Rec]:
    """The importer's validated frames as records, so archive rows join a chunk's transaction."""
    out: list[Rec] = []
    for kind, frame in frames.items():
        rows = frame.select(LAYOUTS[kind].names).rows()
        if kind is Kind.OPEN_INTEREST:
            out.extend(OISample(v, s, t, base, n, usd) for t, v, s, base, n, usd in rows)
        elif kind is Kind.CANDLES:
            out.extend(Candle(r[1], r[2], interval_ms(r[3]), r[0], *r[4:]) for r in rows)
        elif kind is Kind.FUNDING:
            out.extend(
                FundingSample(v, s, t, rate, h or DEFAULT_FUNDING_INTERVAL_H)
                for t, v, s, rate, h in rows
            )
        elif kind is Kind.POSITIONING:
            out.extend(Positioning(r[1], r[2], r[0], *r[3:]) for r in rows)
        elif kind is Kind.PREMIUM_INDEX:
            out.extend(PremiumBar(r[1], r[2], interval_ms(r[3]), r[0], *r[4:]) for r in rows)
    return out


def _runs(indices: list[int]) -> list[list[int]]:
    """[1, 2, 3, 7, 8] -> [[1, 2, 3], [7, 8]]."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


class _VenueRun:
    """One venue's backfill. The first venue failure stops its REST calls for the run (each
    further call would only wait through the retries); the Binance archive may still serve."""

    def __init__(
        self,
        client: VenueClient,
        store: Store,
        req: BackfillRequest,
        archive: ArchiveSource | None,
        result: BackfillResult,
        progress: Progress,
        clock: Clock,
    ) -> None:
        self.client, self.store, self.req, self.result = client, store, req, result
        self.venue = client.name
        self.archive = archive if self.venue == BINANCE else None
        self.progress, self.clock = progress, clock
        self.report = VenueReport(self.venue)
        self.rest_down: str | None = None
        self.archive_down: str | None = None
        self.funding_h: dict[str, float] = {}
        # Archive files already looked up in this run (None: the archive lacks it): a
        # metrics day is read for its own chunk and, for its first row, by the chunk before.
        self._parsed: dict[str, list[Rec] | None] = {}
        # Reads in flight or done, per file and quietness: OI and positioning share a day's
        # metrics file (one download, one count, one note), and so do a day and the one before
        # it that needs its first row.
        self._reads: dict[tuple[str, bool], asyncio.Future[list[Rec] | None]] = {}

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
        have = self.store.read_series(
            self.venue, symbol, interval_name(plan.bar_ms), cks[0].start_ms, cks[-1].end_ms - 1
        )
        funding_ms = int(self.funding_h.get(symbol, DEFAULT_FUNDING_INTERVAL_H) * HOUR_MS)
        todo = lacks(plan, cks, have, funding_ms)
        done = 0
        try:
            funding = await self._funding(plan, symbol, cks, todo)
            for i, (chunk, lack) in enumerate(zip(cks, todo, strict=True)):
                for reason in lack.notes:
                    self.report.note(reason, symbol, chunk)
                if lack.nothing:
                    self.report.skipped += 1
                else:
                    records = await self._chunk(plan, symbol, chunk, lack, funding.get(i, []))
                    self.report.fetched += 1
                    if records:  # the chunk's one transaction
                        for kind, n in self.store.write_records(records).items():
                            self.report.rows[kind.value] += n
                done += 1
                self.progress(self.venue, -1)
        except UnknownSymbol:
            self.report.warnings.append(f"{symbol} is not listed on {self.venue}; skipped")
            for _ in range(len(cks) - done):
                self.progress(self.venue, -1)

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

    async def _from_archive(
        self,
        file: ArchiveFile | None,
        symbol: str,
        chunk: Chunk,
        now_ms: int,
        *,
        quiet: bool = False,
    ) -> list[Rec] | None:
        """A verified archive file's records; None, with the reason noted (unless `quiet`:
        a file read for another day's sake), when there is none. A corrupt or unverifiable
        file is a run error: nothing of it is used."""
        if file is None or self.archive is None:
            return None
        absent = f"the archive has no {file.dataset.value} file"
        why: str | None = None
        if file.path in self._parsed:
            records = self._parsed[file.path]
            why = absent if records is None else None
        elif not file.published(now_ms):
            records, why = None, "the archive publishes a day's files the next day"
        elif self.archive_down is not None:
            records, why = None, self.archive_down
        else:
            records = await self._fetch(file, symbol, chunk)
            why = absent if records is None and file.path in self._parsed else None
        if why is not None and not quiet:
            self.report.note(why, symbol, chunk)
        return records

    async def _fetch(self, file: ArchiveFile, symbol: str, chunk: Chunk) -> list[Rec] | None:
        """Download (or find) and verify one file; absent files are remembered for the run."""
        assert self.archive is not None
        try:
            path = await self.archive.fetch(file)
            parsed = None if path is None else await asyncio.to_thread(parse_file, path)
        except ArchiveUnavailable as exc:
            self.archive_down = self.result.archive_down = str(exc)
            self.report.note(self.archive_down, symbol, chunk)
            return None
        except (ArchiveError, DataError) as exc:
            if str(exc) not in self.result.errors:
                self.result.errors.append(str(exc))
            return None
        records = None if parsed is None else _records(parsed.frames)
        if len(self._parsed) >= PARSED_KEEP:
            self._parsed.pop(next(iter(self._parsed)))
        self._parsed[file.path] = records  # absent files too: asked once per run
        if records is not None:
            self.report.archive_files += 1
        return records

    async def _archive(
        self, file: ArchiveFile, symbol: str, chunk: Chunk, now_ms: int, *, quiet: bool = False
    ) -> list[Rec] | None:
        """`_from_archive` once per file (and quietness) however many readers want it."""
        key = (file.path, quiet)
        read = self._reads.get(key)
        if read is None:
            if len(self._reads) >= PARSED_KEEP:
                self._reads.pop(next(iter(self._reads)))
            read = self._reads[key] = asyncio.ensure_future(
                self._from_archive(file, symbol, chunk, now_ms, quiet=quiet)
            )
        return await read

    async def _chunk(
        self, plan: VenuePlan, symbol: str, chunk: Chunk, lack: Lack, funding: list[Rec]
    ) -> list[Rec]:
        """What the chunk lacks, every kind concurrently (they use different budgets)."""
        async with asyncio.TaskGroup() as tg:
            bars = tg.create_task(self._candles(plan, symbol, chunk, lack))
            oi = tg.create_task(self._oi(plan, symbol, chunk, lack))
            pos = tg.create_task(self._positioning(plan, symbol, chunk, lack))
            premium = tg.create_task(self._premium(plan, symbol, chunk, lack))
        return [*bars.result(), *oi.result(), *pos.result(), *premium.result(), *funding]

    async def _candles(self, plan: VenuePlan, symbol: str, chunk: Chunk, lack: Lack) -> list[Rec]:
        if not lack.bars.size:
            return []
        lo, hi = int(lack.bars[0]), int(lack.bars[-1])
        got = await self._rest(lambda: self.client.klines(symbol, plan.bar_ms, lo, hi))
        asked = got is not None
        if got is None and self.archive is not None:
            name = interval_name(plan.bar_ms)
            file = klines_file(symbol, name, chunk.start_ms)
            got = await self._from_archive(
                file if name in DAILY_KLINE_INTERVALS else None, symbol, chunk, plan.now_ms
            )
        kept = [r for r in got or () if chunk.start_ms <= r.ts_ms < chunk.end_ms]
        if np.isin(lack.bars, [r.ts_ms for r in kept], invert=True).any():
            self._shortfall("candles", asked, got is not None, symbol, chunk)
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

    async def _premium(self, plan: VenuePlan, symbol: str, chunk: Chunk, lack: Lack) -> list[Rec]:
        """Like candles: REST, or the archive's premiumIndexKlines when REST is not asked."""
        step = plan.premium_ms
        if step is None or not lack.premium.size:
            return []
        lo, hi = int(lack.premium[0]), int(lack.premium[-1])
        got = await self._rest(lambda: self.client.premium_history(symbol, step, lo, hi))
        asked = got is not None
        if got is None and self.archive is not None:
            name = interval_name(step)
            file = premium_file(symbol, name, chunk.start_ms)
            got = await self._from_archive(
                file if name in DAILY_KLINE_INTERVALS else None, symbol, chunk, plan.now_ms
            )
        kept = [r for r in got or () if chunk.start_ms <= r.ts_ms < chunk.end_ms]
        if np.isin(lack.premium, [r.ts_ms for r in kept], invert=True).any():
            self._shortfall("premium index", asked, got is not None, symbol, chunk)
        return kept

    async def _funding(
        self, plan: VenuePlan, symbol: str, cks: list[Chunk], todo: list[Lack]
    ) -> dict[int, list[Rec]]:
        """Funding settles 1-24 times a day, so it is fetched once per run of chunks that lack
        it (one call instead of one per day) and handed to each chunk's transaction."""
        out: dict[int, list[Rec]] = {}
        starts = np.array([c.start_ms for c in cks], dtype=np.int64)
        for run in _runs([i for i, lack in enumerate(todo) if lack.funding]):
            lo, hi = cks[run[0]].start_ms, cks[run[-1]].end_ms - 1
            got = await self._rest(functools.partial(self.client.funding_history, symbol, lo, hi))
            asked = got is not None
            read = False
            if got is None and self.archive is not None:
                got = []
                for month in dict.fromkeys(cks[i].day[:7] for i in run):
                    first = next(cks[i] for i in run if cks[i].day.startswith(month))
                    file = funding_file(symbol, first.start_ms)
                    rows = await self._from_archive(file, symbol, first, plan.now_ms)
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
        """Why part of a chunk stays missing; silent when the archive already said why."""
        if asked:
            hint = NO_DATA_HINTS.get((self.venue, kind), "before the listing, or a venue gap")
            reason = f"{self.venue} has no {kind} for all or part of these days ({hint})"
        elif self.rest_down is not None and not read:
            reason = f"{kind} not fetched: {self.venue} failed ({self.rest_down})"
        elif read:
            reason = f"the archive's files lack {kind} for all or part of these days"
        else:
            return
        self.report.note(reason, symbol, chunk)


PARSED_KEEP = 32  # parsed archive files kept per venue run (8 symbols in flight, 2 days each)


def _ts(records: Sequence[Rec]) -> I64:
    return np.sort(np.array([r.ts_ms for r in records], dtype=np.int64))


async def backfill(
    clients: Sequence[VenueClient],
    store: Store,
    req: BackfillRequest,
    *,
    archive: ArchiveSource | None = None,
    progress: Progress = lambda venue, n: None,
    clock: Clock | None = None,
) -> BackfillResult:
    """Backfill every venue concurrently; a venue that fails is reported, the others go on.
    `archive` serves Binance only (None: REST only)."""
    result = BackfillResult()
    wall = clock or WallClock()
    runs = [_VenueRun(c, store, req, archive, result, progress, wall) for c in clients]
    result.venues = list(await asyncio.gather(*(r.run() for r in runs)))
    return result
