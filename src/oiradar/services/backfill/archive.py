"""The Binance archive as one venue run reads it: each file fetched, verified and parsed once
per run (absent files remembered), however many chunks want it, its rows as records."""

from __future__ import annotations

import asyncio

import polars as pl

from oiradar.datafiles import parse_file
from oiradar.datafiles.archive import (
    ArchiveError,
    ArchiveFile,
    ArchiveSource,
    ArchiveUnavailable,
)
from oiradar.errors import DataError
from oiradar.kinds import DEFAULT_FUNDING_INTERVAL_H, LAYOUTS, Kind
from oiradar.records import (
    Candle,
    FundingSample,
    Liquidation,
    OISample,
    Positioning,
    PremiumBar,
    Side,
)
from oiradar.services.backfill.plan import Chunk, Rec
from oiradar.services.backfill.report import BackfillResult, VenueReport
from oiradar.units import interval_ms

PARSED_KEEP = 32  # parsed archive files kept per venue run (8 symbols in flight, 2 days each)


class ArchiveReads:
    """A venue run's archive: `read` one file's records (None, with the reason noted, when
    there are none); `once` shares one read among the chunks that want the same file."""

    def __init__(self, source: ArchiveSource, report: VenueReport, result: BackfillResult) -> None:
        self.archive, self.report, self.result = source, report, result
        self.archive_down: str | None = None
        # Archive files already looked up in this run (None: the archive lacks it): a
        # metrics day is read for its own chunk and, for its first row, by the chunk before.
        self._parsed: dict[str, list[Rec] | None] = {}
        # Reads in flight or done, per file and quietness: OI and positioning share a day's
        # metrics file (one download, one count, one note), and so do a day and the one before
        # it that needs its first row.
        self._reads: dict[tuple[str, bool], asyncio.Future[list[Rec] | None]] = {}

    async def read(
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
        if file is None:
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
        records = None if parsed is None else records_of(parsed.frames)
        if len(self._parsed) >= PARSED_KEEP:
            self._parsed.pop(next(iter(self._parsed)))
        self._parsed[file.path] = records  # absent files too: asked once per run
        if records is not None:
            self.report.archive_files += 1
        return records

    async def once(
        self, file: ArchiveFile, symbol: str, chunk: Chunk, now_ms: int, *, quiet: bool = False
    ) -> list[Rec] | None:
        """`read` once per file (and quietness) however many readers want it."""
        key = (file.path, quiet)
        read = self._reads.get(key)
        if read is None:
            if len(self._reads) >= PARSED_KEEP:
                self._reads.pop(next(iter(self._reads)))
            read = self._reads[key] = asyncio.ensure_future(
                self.read(file, symbol, chunk, now_ms, quiet=quiet)
            )
        return await read


def records_of(frames: dict[Kind, pl.DataFrame]) -> list[Rec]:
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
        elif kind is Kind.LIQUIDATION_ORDERS:
            out.extend(Liquidation(v, s, t, Side(side), q, p, usd)
                       for t, v, s, side, q, p, usd in rows)  # fmt: skip
    return out
