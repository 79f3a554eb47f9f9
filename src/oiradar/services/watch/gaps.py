"""What one venue's store lacks, fetched from REST for `oiradar watch`: klines where a bar is
missing, OI history where no snapshot fell inside a bar (always, without an OI stream). The
store is asked once for every symbol (on the reader thread), then the venue for each."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from oiradar.kinds import Kind
from oiradar.services.watch.ingest import Ingest
from oiradar.services.watch.venue_status import VenueStatus
from oiradar.store import Store
from oiradar.store.aio import AsyncStore
from oiradar.units import interval_name
from oiradar.venues.base import VenueClient

Each = Callable[[Callable[[str], Awaitable[None]], Sequence[str]], Awaitable[None]]


class GapFill:
    def __init__(
        self,
        client: VenueClient,
        streams_oi: bool,
        reads: AsyncStore,
        ingest: Ingest,
        status: VenueStatus,
        bar_ms: int,
    ) -> None:
        self.client, self.streams_oi, self.reads, self.ingest = client, streams_oi, reads, ingest
        self.status, self.bar_ms, self.interval = status, bar_ms, interval_name(bar_ms)

    async def fill(self, firsts: dict[str, int], upto: int, whole: bool, each: Each) -> None:
        """Bars opening in [firsts[symbol], upto]; `whole`: every one of them must be stored
        (the warm-up), not only those after the newest stored. `each` runs the calls per
        symbol, keeping one symbol's venue error from the others."""
        lacking = functools.partial(self._lacking, firsts=firsts, upto=upto, whole=whole)
        todo = await self.reads.run(lacking)
        close = upto + self.bar_ms

        async def fetch(sym: str) -> None:
            first, k_from, oi = todo[sym]
            if k_from is not None:
                candles = await self.client.klines(sym, self.bar_ms, k_from, upto)
                self.got("candles", [c for c in candles if c.ts_ms <= upto])
            if oi:
                found = await self.client.oi_history(sym, self.bar_ms, first + self.bar_ms, close)
                self.got("oi", found)

        await each(fetch, list(todo))

    def got(self, kind: str, rows: Sequence[Any]) -> None:
        """Rows fetched by REST: to the store with the next flush, counted for the status."""
        if rows:
            self.ingest.extend(list(rows))
            self.status.backfilled[kind] = self.status.backfilled.get(kind, 0) + len(rows)

    def _lacking(
        self, store: Store, firsts: dict[str, int], upto: int, whole: bool
    ) -> dict[str, tuple[int, int | None, bool]]:
        """Per symbol: (first bar open, where to fetch klines from (None: every bar is
        stored), whether to fetch OI history)."""
        out: dict[str, tuple[int, int | None, bool]] = {}
        for sym, first in firsts.items():
            span = store.candle_span(self.client.name, sym, self.interval, first, upto)
            k_from = None
            if span is None or span[1] < upto or (whole and span[0] > first):
                k_from = first if span is None or whole else span[1]
            # Without an OI stream the polls land anywhere in a bar: take the venue's own
            # bar-close values; with one, only bars no snapshot reached (a drop, a restart).
            oi = not self.streams_oi or self._oi_missing(store, sym, first, upto)
            out[sym] = (first, k_from, oi)
        return out

    def _oi_missing(self, store: Store, sym: str, first_open: int, upto: int) -> bool:
        """True if some bar opening in [first_open, upto] has no OI snapshot at or before its
        close."""
        close = upto + self.bar_ms
        venue = self.client.name
        stamps = store.timestamps(Kind.OPEN_INTEREST, venue, sym, first_open + 1, close)
        bars = {int(t - 1) // self.bar_ms for t in stamps}
        need = range(first_open // self.bar_ms, close // self.bar_ms)
        return any(b not in bars for b in need)
