"""The bar-close step of one venue inside `oiradar watch` (the base of `VenueWatch`).

When a bar has closed (venue time past the close plus `settle_ms`; for Binance also its
post-close OI sweep, `poll`), each symbol whose bar the streams delivered whole is stepped
from memory in a worker thread (`bars`); the others get from REST exactly what the store
lacks for the bars since the last one they stepped (klines: a close message that never
came, a drop, a restart; OI history where no sample fell inside a bar) and are stepped from
the store, the same rows `oiradar analyze` reads. A bar whose candle REST filled is counted
and logged per cause (`status.filled`, `event=bar_filled`), never skipped. Each close logs
`event=bar_closed` with its wall times (entered, computing from, done) for `bench/watch.py`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from oiradar.errors import Banned
from oiradar.records import FundingSample, Liquidation, LiquidationFeed
from oiradar.services.watch.bars import BarBook, MinuteOI, step_streamed
from oiradar.services.watch.decide import Decider
from oiradar.services.watch.gaps import GapFill
from oiradar.services.watch.ingest import Ingest
from oiradar.services.watch.poll import OIPoller
from oiradar.services.watch.venue_status import FeedSpans, VenueStatus
from oiradar.signals.live import Bar, LiveState, grid_bars, step
from oiradar.signals.windows import Grid, build_grid
from oiradar.store import Store
from oiradar.store.aio import AsyncStore
from oiradar.units import iso
from oiradar.venues.stream import VenueStream

log = logging.getLogger(__name__)
YIELD_EVERY = 10  # symbols read per trip to the reader thread, stepped between two turns
# Streamed bars go to a worker thread in few trips: the likeliest alerts first (the biggest
# price moves), then the rest, at most STEP_MAX a trip. Each trip waits for the loop, which
# runs thousands of messages a second: ten trips of 50 took 0.4-0.7 s of a close's 500
# symbols in bench/watch.py, for ~60 ms of stepping; one trip of 450 held ~35 MB more at
# once (peak RSS 273 vs 239 MB).
FIRST_STEP = 50
STEP_MAX = 250
SWEEP_WAIT_S = 10.0  # wall seconds a close waits at most for its OI sweep
CLOSE_GRACE_S = 1.0  # wall seconds close messages still missing at the settle time may take
GRACE_TICK_S = 0.02
STALL_BASE_S, STALL_MAX_S = 0.5, 30.0  # wall s before a close that left a symbol behind is retried


@dataclass(slots=True)
class Running:
    """Liquidation sums per bar open not stepped yet. Duplicated messages were already
    dropped by the stream; keeping every order's key here cost ~10 MB per venue at 500
    symbols, for no better burst check (the stored rows are deduplicated by the store)."""

    bars: dict[int, list[float]] = field(default_factory=dict)  # open -> [long, short]


class BarClose(ABC):
    """What the close step reads and writes of its venue (set by `VenueWatch.__init__`)."""

    venue: str
    interval: str
    symbols: list[str]
    stream: VenueStream
    reads: AsyncStore
    ingest: Ingest
    decider: Decider
    status: VenueStatus
    gaps: GapFill
    book: BarBook
    minute_oi: MinuteOI
    poller: OIPoller | None
    states: dict[str, LiveState]
    running: dict[str, Running]
    funding: dict[str, tuple[float | None, float | None]]
    bar_ms: int
    settle_ms: int
    _feed_spans: FeedSpans
    _seeded_ms: int | None
    _busy: set[str]
    _deferred: dict[str, Liquidation]

    @property
    @abstractmethod
    def feed(self) -> LiquidationFeed: ...

    @abstractmethod
    def now_ms(self) -> int: ...

    @abstractmethod
    def _error(self, exc: Exception) -> None: ...

    @abstractmethod
    async def _each(
        self, fn: Callable[[str], Awaitable[None]], symbols: Sequence[str] | None = None
    ) -> None: ...

    @abstractmethod
    def _burst_check(
        self, liq: Liquidation, run: Running, state: LiveState, bar_open: int
    ) -> None: ...

    def _laggard(self) -> int | None:
        """The oldest last stepped bar of any symbol (None: none stepped yet)."""
        return min((s.last_ts for s in self.states.values() if s.last_ts is not None),
                   default=None)  # fmt: skip

    async def _bar_loop(self) -> None:
        stalled = 0  # closes in a row that left some symbol where it was
        while True:
            last = self._laggard()
            if last is None:
                return
            close = last + 2 * self.bar_ms  # the close of the next unstepped bar
            while self.now_ms() < close + self.settle_ms:
                await asyncio.sleep(0.02)
            now = self.now_ms()
            upto = now - now % self.bar_ms - self.bar_ms  # the newest closed bar's open
            try:
                await self.close_bars(upto)
            except Banned as exc:
                self._error(exc)
                await asyncio.sleep(min(exc.seconds, 60.0))
                continue
            if self._laggard() == last:
                stalled += 1
                await self._stalled(last, upto, stalled)
            else:
                stalled = 0

    async def _stalled(self, last: int, upto: int, times: int) -> None:
        """A close that left a symbol at `last`: REST answered without the bar it lacks (a
        venue's REST behind its stream, a market gone quiet). The close is tried again after
        a backoff or at the next bar's close, whichever comes first, not at once: it was
        tried again at once, thousands of times a bar, each a round of REST calls."""
        if times == 1:
            behind = sorted(s for s, st in self.states.items() if st.last_ts == last)
            log.warning("venue=%s event=bar_stalled bar=%s symbols=%d first=%s", self.venue,
                        iso(last + self.bar_ms), len(behind), ",".join(behind[:5]))  # fmt: skip
        deadline = time.monotonic() + min(STALL_MAX_S, STALL_BASE_S * 2 ** (times - 1))
        next_close = upto + 2 * self.bar_ms + self.settle_ms
        while time.monotonic() < deadline and self.now_ms() < next_close:
            await asyncio.sleep(GRACE_TICK_S)

    # -- a bar closed ----------------------------------------------------------------------

    async def close_bars(self, upto: int) -> None:
        """Step every symbol up to the bar opening at `upto`: from memory where the streams
        delivered the bar whole, else from the store once REST filled what it lacks."""
        started = time.time()
        self._record_coverage()
        self.ingest.extend(self.minute_oi.take(upto + self.bar_ms))  # the bar's close OI
        n_streamed = 0
        if self.poller is not None:  # its close sweep is the bar-close OI, as it comes
            n_streamed = await self._step_as_swept(upto)
        computing = time.time()
        self.ingest.extend(list(self.book.take_unstored(upto)))
        streamed, rest = self._partition(upto, self.symbols)
        await self._step_streamed(streamed)
        n_streamed += len(streamed)
        # Close messages still on their way (a loaded link or machine): a little longer for
        # them, stepping each as it comes, before REST fills the rest.
        deadline = time.monotonic() + CLOSE_GRACE_S
        while (
            any(self.stream.streams_candles(s) for s in rest)
            and self.status.candles == "stream"
            and time.monotonic() < deadline
        ):
            if self._covered_since() is None:
                break
            await asyncio.sleep(GRACE_TICK_S)
            streamed, rest = self._partition(upto, rest)
            await self._step_streamed(streamed)
            n_streamed += len(streamed)
        self.ingest.extend(list(self.book.take_unstored(upto)))  # those the grace brought
        if rest:
            await self.ingest.flush_async()
            firsts = {s: last + self.bar_ms for s in rest if (last := self.states[s].last_ts)}
            await self.gaps.fill(firsts, upto, self._each)
            self._mark_filled()
            await self.ingest.flush_async()
            # Each trip to the reader lets liquidations in: a burst must not wait for 500.
            async for sym, grid in self._grids(firsts, upto):
                self._step_symbol(sym, grid, firsts[sym], upto)
        self.status.last_bar_ms = upto
        log.info(
            "venue=%s event=bar_closed bar=%s close_wall=%.3f step_wall=%.3f done_wall=%.3f "
            "streamed=%d rest=%d",
            self.venue, iso(upto), started, computing, time.time(), n_streamed, len(rest),
        )  # fmt: skip

    async def _step_as_swept(self, upto: int) -> int:
        """Step each symbol as its part of the close sweep brings its OI (the sweep asks the
        likeliest alerts first, `poll`), until the sweep is done or `SWEEP_WAIT_S` passed.
        Returns how many were stepped."""
        assert self.poller is not None
        close, stepped = upto + self.bar_ms, 0
        deadline = time.monotonic() + SWEEP_WAIT_S
        while True:
            done = self.poller.swept >= close or time.monotonic() >= deadline
            streamed, _ = self._partition(upto, self.symbols)
            if streamed:
                self.ingest.extend(list(self.book.take_unstored(upto)))
                await self._step_streamed(streamed)
                stepped += len(streamed)
            if done:
                return stepped
            await asyncio.sleep(GRACE_TICK_S)

    def _partition(self, upto: int, symbols: list[str]) -> tuple[list[tuple[str, Bar]], list[str]]:
        """(those of `symbols` whose one unstepped bar the streams delivered whole, with it;
        those with anything else to step)."""
        since = self._covered_since()
        streamed, rest = [], []
        for sym in symbols:
            last = self.states[sym].last_ts
            if last is None or upto <= last:
                continue
            bar = None
            if last == upto - self.bar_ms and since is not None:
                liq = None
                if self.feed is not LiquidationFeed.NONE:
                    liq = list(self.running[sym].bars.get(upto, [0.0, 0.0]))
                bar = self.book.bar(sym, upto, liq, since)
            if bar is None:
                rest.append(sym)
            else:
                streamed.append((sym, bar))
        return streamed, rest

    def _covered_since(self) -> int | None:
        """Venue time since which the liquidation feed has been connected as the store records
        it (the span `_record_coverage` just wrote) and the engines seeded; None while the
        stream is down."""
        if self.stream.stats.state != "live" or self._seeded_ms is None:
            return None
        if self.feed is LiquidationFeed.NONE:
            return self._seeded_ms
        start = self._feed_spans.start
        return None if start is None else max(start, self._seeded_ms)

    async def _step_streamed(self, bars: list[tuple[str, Bar]]) -> None:
        if not bars:
            return
        if len(bars) > FIRST_STEP:
            by_symbol = dict(bars)
            order = self.book.by_move(list(by_symbol), bars[0][1].ts_ms + self.bar_ms)
            bars = [(sym, by_symbol[sym]) for sym in order]
        await self._step_chunk(bars[:FIRST_STEP])
        for k in range(FIRST_STEP, len(bars), STEP_MAX):
            await self._step_chunk(bars[k : k + STEP_MAX])

    async def _step_chunk(self, chunk: list[tuple[str, Bar]]) -> None:
        """Step `chunk` in a worker thread; its symbols' burst checks wait for it."""
        work = [(sym, self.states[sym], bar) for sym, bar in chunk]
        self._busy.update(sym for sym, _ in chunk)
        try:
            results = await asyncio.to_thread(step_streamed, work)
        finally:
            self._busy.difference_update(sym for sym, _ in chunk)
        for sym, result in results:
            self.status.bars_stepped += 1
            self.status.streamed_bars += 1
            self.decider.on_bar(self.venue, sym, result, self.funding.get(sym, (None, None)))
            self._stepped(sym)

    def _stepped(self, sym: str) -> None:
        """After a symbol stepped: forget its stepped bars; run a burst check it deferred."""
        state, run = self.states[sym], self.running[sym]
        last = state.last_ts
        if last is None:
            return
        for b in [b for b in run.bars if b <= last]:
            del run.bars[b]
        self.book.prune(sym, last)
        liq = self._deferred.pop(sym, None)
        if liq is not None:
            self._burst_check(liq, run, state, liq.ts_ms - liq.ts_ms % self.bar_ms)

    def _mark_filled(self) -> None:
        """Bars whose candle REST filled: counted and logged by cause, never skipped. A venue
        without a candle channel (Gate, dYdX), or a symbol its subscription cap leaves out
        (Hyperliquid past 1,000), takes its candles from REST at the close: that is its way,
        not a fill (it logged 500 `close_lost` lines a close)."""
        filled = self.gaps.take_filled()
        if self.status.candles != "stream":
            return
        gaps = self.stream.stats.gaps
        for sym, bar_open in filled:
            if not self.stream.streams_candles(sym):
                continue
            close = bar_open + self.bar_ms
            if self._seeded_ms is None or bar_open < self._seeded_ms - self.bar_ms:
                cause = "restart"
            elif self.stream.stats.state != "live" or any(
                down < close + self.settle_ms and back > bar_open for down, back in gaps
            ):
                cause = "reconnect"
            else:
                cause = "close_lost"
            self.status.filled[cause] = self.status.filled.get(cause, 0) + 1
            self.status.last_filled = [*self.status.last_filled[-9:], f"{sym}@{iso(bar_open)}"
                                       f" ({cause})"]  # fmt: skip
            log.info("venue=%s event=bar_filled symbol=%s bar=%s cause=%s", self.venue, sym,
                     iso(bar_open), cause)  # fmt: skip

    async def _grids(self, first: dict[str, int], upto: int) -> AsyncIterator[tuple[str, Grid]]:
        """Each symbol's grid of the stored bars opening in [first[symbol], upto], read and
        built on the reader thread, YIELD_EVERY symbols a trip."""
        items = list(first.items())
        for k in range(0, len(items), YIELD_EVERY):
            batch = items[k : k + YIELD_EVERY]
            read = functools.partial(self._read_grids, batch=batch, upto=upto)
            for (sym, _), (grid, funding) in zip(batch, await self.reads.run(read), strict=True):
                if funding is not None:
                    self.book.add_funding(funding)
                yield sym, grid

    def _read_grids(
        self, store: Store, batch: list[tuple[str, int]], upto: int
    ) -> list[tuple[Grid, FundingSample | None]]:
        """Grids, with each symbol's newest settled funding read (for the streamed bars)."""
        out = []
        for sym, lo in batch:
            s = store.read_series(self.venue, sym, self.interval, lo, upto)
            funding = None
            if len(s.funding_ts):
                rate, ivl = float(s.funding_rate[-1]), float(s.funding_interval_h[-1])
                funding = FundingSample(self.venue, sym, int(s.funding_ts[-1]), rate, ivl)
            out.append((build_grid(s), funding))
        return out

    def _step_symbol(self, sym: str, grid: Grid, lo: int, upto: int) -> None:
        """Step the bars of `grid` (read up to `upto`) from the bar opening at `lo`."""
        state = self.states[sym]
        bars = [bar for bar in grid_bars(grid) if bar.ts_ms >= lo]
        for bar in bars:
            result = step(state, bar)
            self.status.bars_stepped += 1
            self.decider.on_bar(self.venue, sym, result, self.funding.get(sym, (None, None)))
        self._mark_missing(sym, missing_opens(bars, lo, self.bar_ms))
        self._stepped(sym)

    def _mark_missing(self, sym: str, opens: list[int]) -> None:
        """Bars stepped past with no candle (neither the stream nor REST had one: a venue's
        own hole): unknown to the engine, as to `oiradar analyze`, and said so."""
        if not opens:
            return
        self.status.missing += len(opens)
        log.warning("venue=%s event=bar_missing symbol=%s bars=%d first=%s", self.venue, sym,
                    len(opens), iso(opens[0]))  # fmt: skip

    def store_pending(self) -> None:
        """At a stop: the streamed candles not stepped yet, the newest OI, and the feed's
        coverage."""
        self.ingest.extend(list(self.book.take_unstored()))
        self.ingest.extend(self.minute_oi.take())
        self._record_coverage()

    def _record_coverage(self) -> None:
        """The liquidation feed's connected spans, per symbol, for the store."""
        if self.feed is not LiquidationFeed.NONE:
            spans = self._feed_spans.spans(self.stream.stats)
            self.ingest.cover([(self.venue, s, a, b) for a, b in spans for s in self.symbols])


def missing_opens(bars: Sequence[Bar], lo: int, bar_ms: int) -> list[int]:
    """The opens from `lo` up to the last of `bars` that came without a candle: a row of the
    store's grid with no close, or no row at all (before the grid's first)."""
    if not bars:
        return []
    have = {b.ts_ms for b in bars if not math.isnan(b.close)}
    return [t for t in range(lo, bars[-1].ts_ms, bar_ms) if t not in have]
