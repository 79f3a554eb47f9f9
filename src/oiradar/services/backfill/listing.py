"""Where a venue that publishes no listing time (Bitget, Gate, Hyperliquid, dYdX) starts
serving a symbol's candles, found by a backfill and remembered in the store, so that later
runs ask nothing before it: without it, every re-run fetched the days before the listing
again, and the partial listing day, and got nothing each time.

A listing is learned only from strong evidence, because a wrong one hides real history from
every later backfill: REST was asked, in this run, for at least a whole day of bars right
before the first candle it returned and returned none of them, and the store holds no candle
of the series before that one. A venue gap (maintenance) inside a series has candles before
it; a single empty answer (a fault) is asked again by the connectors before it is believed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from oiradar.store import Store
from oiradar.store.aio import AsyncStore
from oiradar.units import DAY_MS, iso

log = logging.getLogger(__name__)

MIN_EMPTY_MS = DAY_MS  # nothing for a day right before the first candle: that is a listing


@dataclass(slots=True)
class ListingFinder:
    """One venue's run: which symbols may learn a listing, and each one's stretch of bars
    asked and found empty (chunks come oldest first per symbol)."""

    learnable: set[str] = field(default_factory=set)  # the venue gives no listing time
    _empty_from: dict[str, int] = field(default_factory=dict)  # first bar of the stretch
    _done: set[str] = field(default_factory=set)  # rows seen, or a chunk not asked

    def skipped(self, symbol: str) -> None:
        """A chunk not asked (the store has it): what follows it is not right after it."""
        self._done.add(symbol)

    def answered(self, symbol: str, asked_from: int, first_row: int | None) -> int | None:
        """REST was asked for bars from `asked_from` and returned its first candle at
        `first_row` (None: none). Returns the listing to learn, if this settles one."""
        if symbol not in self.learnable or symbol in self._done:
            return None
        start = self._empty_from.setdefault(symbol, asked_from)
        if first_row is None:
            return None
        self._done.add(symbol)
        return first_row if first_row - start >= MIN_EMPTY_MS else None


async def remember(store: AsyncStore, venue: str, symbol: str, interval: str, listed: int) -> None:
    """Store `listed` as where `venue` starts serving `symbol`, unless the store holds a
    candle of the series before it (then the empty stretch was a gap inside the series)."""

    def learn(s: Store) -> bool:
        if s.candle_span(venue, symbol, interval, None, listed - 1) is not None:
            return False
        s.learn_listing(venue, symbol, listed)
        return True

    if await store.run(learn):
        log.info("venue=%s event=listing_learned symbol=%s listed=%s", venue, symbol, iso(listed))
