"""What one venue's store lacks, fetched from REST for `oiradar watch`: klines where a bar is
missing (the streamed close never came, a drop, a restart), OI history where no sample fell
inside a bar. The store is asked once for every symbol (on the reader thread), then the
venue for each. The bars whose candle was filled are kept for the caller (`take_filled`)."""

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
        reads: AsyncStore,
        ingest: Ingest,
        status: VenueStatus,
        bar_ms: int,
        *,
        close_oi_only: bool = False,
    ) -> None:
        self.client, self.reads, self.ingest = client, reads, ingest
        self.close_oi_only = close_oi_only  # polled OI: only a sample at the close counts
        self.status, self.bar_ms, self.interval = status, bar_ms, interval_name(bar_ms)
        self._filled: list[tuple[str, int]] = []  # (symbol, bar open) of candles REST filled

    async def fill(self, firsts: dict[str, int], upto: int, each: Each) -> None:
        """Bars opening in [firsts[symbol], upto], each one looked for in the store. `each`
        runs the calls per symbol, keeping one symbol's venue error from the others."""
        lacking = functools.partial(self._lacking, firsts=firsts, upto=upto)
        todo, holes = await self.reads.run(lacking)
        close = upto + self.bar_ms

        async def fetch(sym: str) -> None:
            first, k_from, oi = todo[sym]
            if k_from is not None:
                candles = [
                    c
                    for c in await self.client.klines(sym, self.bar_ms, k_from, upto)
                    if c.ts_ms <= upto
                ]
                self.got("candles", candles)
                self._filled.extend((sym, c.ts_ms) for c in candles if c.ts_ms in holes[sym])
            if oi:
                found = await self.client.oi_history(sym, self.bar_ms, first + self.bar_ms, close)
                self.got("oi", found)

        await each(fetch, list(todo))

    def got(self, kind: str, rows: Sequence[Any]) -> None:
        """Rows fetched by REST: to the store with the next flush, counted for the status."""
        if rows:
            self.ingest.extend(list(rows))
            self.status.backfilled[kind] = self.status.backfilled.get(kind, 0) + len(rows)

    def take_filled(self) -> list[tuple[str, int]]:
        """(symbol, bar open) of the candles filled since the last call."""
        filled, self._filled = self._filled, []
        return filled

    def _lacking(
        self, store: Store, firsts: dict[str, int], upto: int
    ) -> tuple[dict[str, tuple[int, int | None, bool]], dict[str, set[int]]]:
        """Per symbol: (first bar open, where to fetch klines from (None: every bar is
        stored), whether to fetch OI history); and the bars missing of those asked. Streamed
        candles reach the store ahead of the step, so the newest bar stored says nothing of
        the bars before it: every bar is looked for."""
        out: dict[str, tuple[int, int | None, bool]] = {}
        holes: dict[str, set[int]] = {}
        venue = self.client.name
        for sym, first in firsts.items():
            stamps = set(store.timestamps(Kind.CANDLES, venue, sym, first, upto).tolist())
            missing = {b for b in range(first, upto + 1, self.bar_ms) if b not in stamps}
            holes[sym] = missing
            k_from = min(missing) if missing else None
            # Only bars no OI sample reached (a drop, a restart); polled: bars whose close
            # sweep failed or came late (a mid-bar poll is not the bar's close OI).
            oi = self._oi_missing(store, sym, first, upto)
            out[sym] = (first, k_from, oi)
        return out, holes

    def _oi_missing(self, store: Store, sym: str, first_open: int, upto: int) -> bool:
        """True if some bar opening in [first_open, upto] has no OI snapshot in it (with
        `close_oi_only`: none stamped at its close)."""
        close = upto + self.bar_ms
        venue = self.client.name
        stamps = store.timestamps(Kind.OPEN_INTEREST, venue, sym, first_open + 1, close)
        if self.close_oi_only:
            stamps = stamps[stamps % self.bar_ms == 0]
        bars = {int(t - 1) // self.bar_ms for t in stamps}
        need = range(first_open // self.bar_ms, close // self.bar_ms)
        return any(b not in bars for b in need)
