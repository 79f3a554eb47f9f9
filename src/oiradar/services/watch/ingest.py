"""Batched store writes for the daemon: records pile up in memory and go to the store in one
transaction every `flush_s` (or sooner when `max_rows` are waiting, or when a bar closes).

One transaction per flush keeps SQLite's write cost per row tiny and lets a second process
read the store meanwhile (WAL). The daemon's flushes run on a writer thread (`store.aio`): a
batch of thousands of rows takes tens of milliseconds, and the event loop is where
liquidation bursts wait to be checked. The daemon's other writes (its state, the alert log)
go through the same thread, one at a time with the flushes, each ahead of the flushes
still waiting. A failed write keeps the batch for the next attempt, so a locked or full
disk (or a database restarting) delays data but does not drop it, up to `max_pending`
rows: past that the oldest rows a venue serves again are dropped (counted, logged) and
liquidation orders kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from oiradar.errors import StoreError
from oiradar.kinds import Kind
from oiradar.records import Candle, FundingSample, Liquidation, OISample
from oiradar.store import Store
from oiradar.store.aio import AsyncStore

log = logging.getLogger(__name__)
Record = OISample | Candle | FundingSample | Liquidation
Span = tuple[str, str, int, int]  # venue, symbol, start ms, end ms
T = TypeVar("T")
MAX_PENDING = 2_000_000  # rows kept in memory while the store is down (~0.5 GB)
# Rows per transaction of a flush: in bench/watch.py an alert's log write waited p95 0.5-0.65
# s behind a bar close's flush of ~10,000 rows on a loaded machine, and still p99 ~170 ms
# behind one chunk of 2,000 (WAL, synchronous=NORMAL: a commit is no fsync, so smaller
# transactions cost little).
CHUNK_ROWS = 500


@dataclass(slots=True)
class IngestStats:
    rows: int = 0  # rows handed to the store (duplicates included)
    flushes: int = 0
    failures: int = 0
    dropped: int = 0  # rows over `max_pending` while the store was down (REST serves them)
    dropped_from_ms: int | None = None  # the oldest of them
    last_flush_s: float = 0.0  # wall seconds the last flush took
    flush_s: float = 0.0  # wall seconds all flushes took (/ flushes: the mean write latency)
    pending: int = 0


class Ingest:
    """The daemon's single writer. `add` never blocks; `flush` writes what is waiting."""

    def __init__(
        self,
        store: Store,
        flush_s: float = 1.0,
        max_rows: int = 20_000,
        max_pending: int = MAX_PENDING,
        chunk_rows: int = CHUNK_ROWS,
    ) -> None:
        self.store, self.flush_s, self.max_rows = store, flush_s, max_rows
        self.max_pending, self.chunk_rows = max_pending, chunk_rows
        self._records: list[Record] = []
        self._spans: list[Span] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._inflight: asyncio.Future[dict[Kind, int]] | None = None
        self._writer: AsyncStore | None = None
        self.stats = IngestStats()

    def add(self, record: Record) -> None:
        self._records.append(record)
        if len(self._records) >= self.max_rows:
            self._wake.set()

    def extend(self, records: Iterable[Record]) -> None:
        self._records.extend(records)
        if len(self._records) >= self.max_rows:
            self._wake.set()

    def cover(self, spans: list[Span]) -> None:
        """Liquidation-feed coverage to record with the next flush."""
        self._spans.extend(spans)

    def flush(self) -> int:
        """Write everything waiting in one transaction, here and now (start-up, shutdown,
        tests); returns the rows written."""
        records, spans = self._take()
        if not records and not spans:
            return 0
        started = time.perf_counter()
        try:
            self.store.write_records(records, coverage=spans)
        except StoreError as exc:
            self._failed(records, spans, exc)
            return 0
        self._written(len(records), started)
        return len(records)

    async def flush_async(self) -> int:
        """`flush` on the writer thread; the loop runs on meanwhile. Flushes keep their order
        (one at a time), each in transactions of at most `chunk_rows` rows in order (the
        coverage spans with the last, after the orders they cover), so that another write
        (`write`: an alert's) waits for one of them, not for a whole bar close's batch. A
        write a cancelled caller left running still completes and is accounted for (see
        `close`); the chunks it had not started go back to the queue, as a failed one does
        with those after it."""
        async with self._lock:
            if self._inflight is not None:
                await asyncio.wait([self._inflight])
            records, spans = self._take()
            if not records and not spans:
                return 0
            done = 0
            for k in range(0, len(records) or 1, self.chunk_rows):
                chunk, tail = records[k : k + self.chunk_rows], records[k + self.chunk_rows :]
                try:
                    ok = await self._write_chunk(chunk, [] if tail else spans)
                except asyncio.CancelledError:
                    self._requeue(tail, spans if tail else [], after=0)
                    raise
                if not ok:  # the chunk is back at the front (`_failed`): the rest after it
                    self._requeue(tail, spans if tail else [], after=len(chunk))
                    return done
                done += len(chunk)
            return done

    async def _write_chunk(self, records: list[Record], spans: list[Span]) -> bool:
        started = time.perf_counter()
        fut = self._thread().submit(lambda s: s.write_records(records, coverage=spans))
        self._inflight = fut

        def settle(f: asyncio.Future[dict[Kind, int]]) -> None:
            exc = f.exception() if not f.cancelled() else StoreError("write cancelled")
            if isinstance(exc, StoreError):
                self._failed(records, spans, exc)
            elif exc is None:
                self._written(len(records), started)
            else:
                log.error("event=store_write_failed rows=%d error=%r", len(records), exc)

        fut.add_done_callback(settle)
        try:
            await asyncio.shield(fut)
        except StoreError:
            return False  # kept for the next flush (settle)
        return True

    def _requeue(self, records: list[Record], spans: list[Span], after: int) -> None:
        """Unwritten `records` and `spans` back in the queue, after its first `after` rows
        (a failed chunk put back there) and ahead of anything newer."""
        self._records[after:after] = records
        self._spans = spans + self._spans

    async def write(self, fn: Callable[[Store], T]) -> T:
        """Another write (the daemon's state, an alert) on the writer thread, after the
        flush in flight but ahead of flushes still waiting for their turn: at a bar close
        several venues' batches queue up, and an alert is logged before it is sent."""
        return await self._thread().run(fn)

    async def close(self) -> None:
        """Wait for a write in flight and stop the writer thread (its batch, if it failed, is
        back in the queue for a last `flush`)."""
        if self._inflight is not None:
            await asyncio.wait([self._inflight])
            await asyncio.sleep(0)  # its done-callback runs
            self._inflight = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _take(self) -> tuple[list[Record], list[Span]]:
        records, spans = self._records, self._spans
        self._records, self._spans = [], []
        return records, spans

    def _thread(self) -> AsyncStore:
        if self._writer is None:
            self._writer = AsyncStore(self.store, name="oiradar-writer")
        return self._writer

    def _failed(self, records: list[Record], spans: list[Span], exc: Exception) -> None:
        # Keep the batch (ahead of anything newer) and try again on the next flush.
        self._records = records + self._records
        self._spans = spans + self._spans
        self.stats.failures += 1
        self._bound()
        log.error("event=store_write_failed rows=%d error=%s", len(records), exc)

    def _bound(self) -> None:
        """Past `max_pending` rows kept for a store that is down, the oldest rows a venue
        serves again (candles, OI, funding: `collect` fills them back from REST) go; the
        liquidation orders, which no venue serves twice, stay."""
        over = len(self._records) - self.max_pending
        if over <= 0:
            return
        kept: list[Record] = []
        for rec in self._records:
            if over > 0 and not isinstance(rec, Liquidation):
                over -= 1
                self.stats.dropped += 1
                oldest = self.stats.dropped_from_ms
                self.stats.dropped_from_ms = min(rec.ts_ms, oldest or rec.ts_ms)
            else:
                kept.append(rec)
        self._records = kept
        log.error("event=ingest_over_bound kept=%d dropped_total=%d", len(kept),
                  self.stats.dropped)  # fmt: skip

    def _written(self, rows: int, started: float) -> None:
        self.stats.rows += rows
        self.stats.flushes += 1
        self.stats.last_flush_s = time.perf_counter() - started
        self.stats.flush_s += self.stats.last_flush_s

    @property
    def pending(self) -> int:
        return len(self._records)

    async def run(self) -> None:
        """Flush every `flush_s`, or at once when a large batch is waiting."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_s)
            self._wake.clear()
            await self.flush_async()
