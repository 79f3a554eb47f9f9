"""One venue stepped from the store, for `oiradar watch --decide-only`.

The collectors store each closed bar and then say so in their heartbeat (`workers`); the
feed steps each symbol's engine over exactly the bars the store holds up to that mark,
read as `oiradar analyze` reads them (`read_series`, the same rows, coverage and NaN for
what is unknown), seeding a symbol first seen the way `VenueWatch.warm_up` does: the
history before the newest bar seeds the engine, the newest bar is stepped live (an
episode already running is news). Liquidations are checked against the squeeze rule on
every wake, from the orders stored since the last stepped bar
(`Store.liquidation_orders_since`), so a burst does not wait for the bar to close; the
orders of a bar the mark passed are checked between the bar steps, with the engine as it
stood when they arrived (a collector's flush may bring them with the next close's mark).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence

from oiradar.records import LiquidationFeed
from oiradar.services.watch.decide import Burst, Decider, Phase
from oiradar.signals.live import LiveState, bar_at, grid_bars, provisional_squeeze, seed, step
from oiradar.signals.params import EngineParams
from oiradar.signals.reading import MarketReading
from oiradar.signals.windows import Grid, build_grid
from oiradar.store import Store
from oiradar.store.aio import AsyncStore
from oiradar.units import interval_name, iso

log = logging.getLogger(__name__)
READ_EVERY = 10  # symbols read per trip to the reader thread
CATCH_UP_BARS = 12  # a decider started late replays at most this many bars of a collector


class StoreFeed:
    def __init__(
        self, venue: str, reads: AsyncStore, decider: Decider, params: EngineParams, bar_ms: int
    ) -> None:
        self.venue, self.reads, self.decider = venue, reads, decider
        self.params, self.bar_ms = params, bar_ms
        self.interval = interval_name(bar_ms)
        self.states: dict[str, LiveState] = {}
        self.funding: dict[str, tuple[float | None, float | None]] = {}
        self.feed = LiquidationFeed.NONE
        self.bars_stepped = 0
        self._orders: dict[str, list[tuple[int, str, float]]] = {}

    @property
    def symbols(self) -> list[str]:
        return sorted(self.states)

    @property
    def last_bar_ms(self) -> int | None:
        return max((s.last_ts for s in self.states.values() if s.last_ts is not None), default=None)

    async def read_orders(self, settle_ms: int) -> list[tuple[str, Burst]]:
        """Read the orders of the symbols in a covering episode; the bursts they make with
        the engines as they stand (the caller applies them, every venue's in time order)."""
        self._orders = await self._read_orders()
        return [
            (sym, b)
            for sym, mine in self._orders.items()
            for b in self._bursts(sym, mine, settle_ms)
        ]

    async def advance(
        self,
        marks: Mapping[str, int],
        firsts: Mapping[str, int],
        seed_ms: int,
        settle_ms: int,
    ) -> None:
        """Step every symbol up to its mark (the newest bar its collector stored), checking
        the orders `read_orders` read of a symbol in a covering episode after each bar. A
        symbol first seen is seeded where its collector's engine was (`firsts`: the bar its
        warm-up stepped), at most CATCH_UP_BARS back, and stepped on from there: a decider
        started with (or a little after) its collectors says what one process would."""
        orders, self._orders = self._orders, {}
        new = []
        for sym, upto in marks.items():
            if sym not in self.states:
                at = max(firsts.get(sym, upto), upto - CATCH_UP_BARS * self.bar_ms)
                new.append((sym, at - seed_ms, min(at, upto)))
        await self._run(new, orders, settle_ms)
        todo = []
        for sym, upto in marks.items():
            last = self.states[sym].last_ts
            if last is not None and last < upto:
                todo.append((sym, last + self.bar_ms, upto))
        await self._run(todo, orders, settle_ms)

    async def _run(
        self,
        todo: list[tuple[str, int, int]],
        orders: Mapping[str, list[tuple[int, str, float]]],
        settle_ms: int,
    ) -> None:
        """Seed or step each (symbol, from, to), READ_EVERY symbols a trip to the reader."""
        for k in range(0, len(todo), READ_EVERY):
            batch = todo[k : k + READ_EVERY]
            grids = await self.reads.run(functools.partial(self._read, batch=batch))
            for (sym, lo, upto), grid in zip(batch, grids, strict=True):
                if sym not in self.states:
                    self._seed(sym, grid, upto)
                    continue
                state = self.states[sym]
                for bar in grid_bars(grid):
                    if bar.ts_ms >= lo:
                        self._on_bar(sym, step(state, bar))
                        for burst in self._bursts(sym, orders.get(sym, ()), settle_ms):
                            self.decider.on_burst(sym, burst)

    def _read(self, store: Store, batch: list[tuple[str, int, int]]) -> list[Grid]:
        return [build_grid(store.read_series(self.venue, s, self.interval, lo, hi))
                for s, lo, hi in batch]  # fmt: skip

    def _seed(self, sym: str, grid: Grid, upto: int) -> None:
        n = len(grid.ts)
        log.debug("venue=%s event=seeded symbol=%s bar=%s bars=%d", self.venue, sym, iso(upto), n)
        self.states[sym] = state = seed(grid.head(max(0, n - 1)), self.params)
        if n:
            self._on_bar(sym, step(state, bar_at(grid, n - 1)))
        if state.last_ts is None:
            state.last_ts = upto

    def _on_bar(self, sym: str, reading: MarketReading) -> None:
        self.bars_stepped += 1
        log.debug("venue=%s event=stepped symbol=%s bar=%s regime=%s", self.venue, sym,
                  iso(reading.ts_ms), reading.regime.name)  # fmt: skip
        self.decider.on_bar(self.venue, sym, reading, self.funding.get(sym, (None, None)))

    async def _read_orders(self) -> dict[str, list[tuple[int, str, float]]]:
        """The stored orders since the last stepped bar of each symbol in a covering
        episode (one query per venue, only while some symbol is in one)."""
        covering = {
            sym: state.last_ts
            for sym, state in self.states.items()
            if state.last_ts is not None and self.decider.phase(sym) is Phase.COVERING
        }
        if not covering or self.feed is LiquidationFeed.NONE:
            return {}
        since = min(covering.values()) + self.bar_ms
        rows = await self.reads.run(lambda s: s.liquidation_orders_since(self.venue, since))
        orders: dict[str, list[tuple[int, str, float]]] = {}
        for sym, ts, side, usd in rows:
            if sym in covering:
                orders.setdefault(sym, []).append((ts, side, usd))
        return orders

    def _bursts(
        self, sym: str, orders: Sequence[tuple[int, str, float]], settle_ms: int
    ) -> list[Burst]:
        """`orders` replayed in time order against the squeeze rule, as `VenueWatch` checks
        each on arrival, with the engine where the single process had it then: an order is
        a check point only while the last stepped bar is the one settled by its time (the
        mark may come later: the order is read again at the next wake) and after the
        episode began. The decider escalates once per episode: re-reading is harmless."""
        state, episode = self.states[sym], self.decider.episodes.get(sym)
        stepped = state.last_ts
        found: list[Burst] = []
        if stepped is None or episode is None:
            return found
        bars: dict[int, list[float]] = {}
        for ts, side, usd in orders:
            bar_open = ts - ts % self.bar_ms
            if bar_open <= stepped:
                continue
            bars.setdefault(bar_open, [0.0, 0.0])[0 if side == "LONG" else 1] += usd
            if side != "SHORT" or episode.phase is not Phase.COVERING:
                continue
            settled = ts - settle_ms
            if ts <= episode.started_ms + settle_ms or (
                stepped != settled - settled % self.bar_ms - self.bar_ms
            ):
                continue
            open_bars = range(stepped + self.bar_ms, bar_open + 1, self.bar_ms)
            pending = [bars.get(b, [0.0, 0.0]) for b in open_bars]
            hit = provisional_squeeze(state, pending)
            log.debug("venue=%s event=burst_check symbol=%s ts=%d short_usd=%.0f hit=%s",
                      self.venue, sym, ts, pending[-1][1], hit is not None)  # fmt: skip
            if hit is not None:
                found.append(Burst(self.venue, ts, hit[0], hit[1]))
        return found
