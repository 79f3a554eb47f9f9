"""Batched store writes for the daemon: records pile up in memory and go to the store in one
transaction every `flush_s` (or sooner when `max_rows` are waiting, or when a bar closes).

One transaction per flush keeps SQLite's write cost per row tiny and lets a second process
read the store meanwhile (WAL). A failed write keeps the batch for the next attempt, so a
locked or full disk delays data but does not drop it while memory lasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from oiradar.errors import StoreError
from oiradar.records import Candle, FundingSample, Liquidation, OISample
from oiradar.store import Store

log = logging.getLogger(__name__)
Record = OISample | Candle | FundingSample | Liquidation
Span = tuple[str, str, int, int]  # venue, symbol, start ms, end ms


@dataclass(slots=True)
class IngestStats:
    rows: int = 0  # rows handed to the store (duplicates included)
    flushes: int = 0
    failures: int = 0
    last_flush_s: float = 0.0  # wall seconds the last flush took
    pending: int = 0


class Ingest:
    """The daemon's single writer. `add` never blocks; `flush` writes what is waiting."""

    def __init__(self, store: Store, flush_s: float = 1.0, max_rows: int = 20_000) -> None:
        self.store, self.flush_s, self.max_rows = store, flush_s, max_rows
        self._records: list[Record] = []
        self._spans: list[Span] = []
        self._wake = asyncio.Event()
        self.stats = IngestStats()

    def add(self, record: Record) -> None:
        self._records.append(record)
        if len(self._records) >= self.max_rows:
            self._wake.set()

    def extend(self, records: list[Record]) -> None:
        self._records.extend(records)
        if len(self._records) >= self.max_rows:
            self._wake.set()

    def cover(self, spans: list[Span]) -> None:
        """Liquidation-feed coverage to record with the next flush."""
        self._spans.extend(spans)

    def flush(self) -> int:
        """Write everything waiting in one transaction; returns the rows written."""
        records, spans = self._records, self._spans
        if not records and not spans:
            return 0
        self._records, self._spans = [], []
        started = time.perf_counter()
        try:
            self.store.write_records(records, coverage=spans)
        except StoreError as exc:
            # Keep the batch (ahead of anything newer) and try again on the next flush.
            self._records = records + self._records
            self._spans = spans + self._spans
            self.stats.failures += 1
            log.error(  # noqa: TRY400 (the store error says it all)
                "event=store_write_failed rows=%d error=%s", len(records), exc
            )
            return 0
        self.stats.rows += len(records)
        self.stats.flushes += 1
        self.stats.last_flush_s = time.perf_counter() - started
        return len(records)

    @property
    def pending(self) -> int:
        return len(self._records)

    async def run(self) -> None:
        """Flush every `flush_s`, or at once when a large batch is waiting."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_s)
            self._wake.clear()
            self.flush()
