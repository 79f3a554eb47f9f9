"""One venue inside `oiradar watch`: its stream, its OI poller, its bar clock and engines
(the bar-close step is `close.BarClose`).

Time is the venue's own (the newest timestamp any message or response carried), so the
daemon runs the same against the live venue and a simulator at 100x. Closed candles and OI
come from the streams (Binance's OI from the sweep that starts at each close, `poll`), kept
in memory (`bars`) and in the store. Liquidations update a running window per symbol and are
checked against the squeeze rule as they arrive, so an escalation does not wait for the bar
to close; while a worker steps a symbol, its check waits for the step.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from oiradar.errors import Banned, UnknownSymbol, VenueError
from oiradar.kinds import Kind
from oiradar.records import (
    Candle,
    Liquidation,
    LiquidationFeed,
    MarketSnapshot,
    OISample,
    Side,
)
from oiradar.services.watch.bars import BarBook, MinuteOI
from oiradar.services.watch.close import BarClose, Running
from oiradar.services.watch.decide import Burst, Decider, Phase
from oiradar.services.watch.gaps import GapFill
from oiradar.services.watch.ingest import Ingest
from oiradar.services.watch.poll import OIPoller
from oiradar.services.watch.venue_status import FeedSpans, VenueStatus
from oiradar.signals.live import LiveState, bar_at, provisional_squeeze, seed, step
from oiradar.signals.params import EngineParams
from oiradar.store import Store
from oiradar.store.aio import AsyncStore
from oiradar.units import DAY_MS, interval_name, iso
from oiradar.venues.base import VenueClient
from oiradar.venues.stream import StreamRecord, VenueStream

log = logging.getLogger(__name__)
CLOCK_IDLE_S = 5.0  # no venue time for this long (stream down): ask REST for it
FUNDING_PASS_S = 30.0  # how often settled funding is checked for
YIELD_EVERY = 10  # symbols read per trip to the reader thread, stepped between two turns
FUNDING_RETRY_S = 300.0  # after a fetch, the symbol's next try


class VenueWatch(BarClose):
    def __init__(
        self,
        client: VenueClient,
        stream: VenueStream,
        symbols: Sequence[str],
        reads: AsyncStore,
        ingest: Ingest,
        decider: Decider,
        params: EngineParams,
        *,
        bar_ms: int,
        settle_ms: int,
    ) -> None:
        self.venue = client.name
        self.client, self.stream, self.reads, self.ingest = client, stream, reads, ingest
        self.symbols = list(symbols)
        self.decider, self.params = decider, params
        self.bar_ms, self.settle_ms = bar_ms, settle_ms
        self.interval = interval_name(bar_ms)
        self.states: dict[str, LiveState] = {}
        self.running: dict[str, Running] = {}
        self.funding: dict[str, tuple[float | None, float | None]] = {}
        self.status = VenueStatus()
        self._rest_ms = 0
        self._clock_mono = -CLOCK_IDLE_S  # when the stream's time last moved (monotonic s)
        self._clock_seen = 0
        self._feed_spans = FeedSpans()
        # Without an OI stream only a close sweep's reading is a bar's close OI (`poll`).
        polled = not stream.streams_oi
        self.gaps = GapFill(client, reads, ingest, self.status, bar_ms, close_oi_only=polled)
        self.book = BarBook(bar_ms, close_oi_only=polled)
        self.minute_oi = MinuteOI()  # streamed OI to the store, a sample a minute
        self.status.candles = "stream" if stream.want_candles(bar_ms) else "rest"
        self.poller = None if stream.streams_oi else OIPoller(
            client, self.status, self.now_ms, self._take_polled, bar_ms=bar_ms,
            settle_ms=settle_ms, urgency=self.book.by_move,
        )  # fmt: skip
        self._seeded_ms: int | None = None  # venue time the engines were seeded at
        self._busy: set[str] = set()  # symbols a worker is stepping
        self._deferred: dict[str, Liquidation] = {}  # their burst checks, for after

    @property
    def feed(self) -> LiquidationFeed:
        return self.stream.liquidations

    def now_ms(self) -> int:
        """The venue's time. The stream's own while it flows: a bar closes on the stream
        only once the stream passed it, so every liquidation before the close is in (a REST
        reply can run ahead of a stream push). REST time only while the stream is silent."""
        streamed = self.stream.stats.last_message_ms or 0
        if self._stream_fresh:
            return streamed
        return max(streamed, self._rest_ms)

    @property
    def _stream_fresh(self) -> bool:
        return (
            self.stream.stats.last_message_ms is not None
            and time.monotonic() - self._clock_mono < CLOCK_IDLE_S
        )

    # -- start-up --------------------------------------------------------------------------

    async def listing(self) -> None:
        """Which of the wanted symbols the venue lists (one snapshot; OI is stored)."""
        snaps = await self._snapshot(self.symbols)
        listed = {s.symbol for s in snaps}
        for sym in self.symbols:
            if sym not in listed:
                log.warning("venue=%s event=not_listed symbol=%s", self.venue, sym)
        self.symbols = [s for s in self.symbols if s in listed]
        self.running = {s: Running() for s in self.symbols}

    async def warm_up(self, warm_ms: int, seed_ms: int) -> None:
        """Fetch the candles and OI the store lacks of the last `warm_ms`, then seed each
        engine from the store's last `seed_ms` of bars (the ones closed by now). Streams are
        already running meanwhile; funding comes in the background (`_funding_loop`)."""
        now = self.now_ms()
        last_closed = now - now % self.bar_ms - self.bar_ms
        await self._backfill(now - warm_ms, last_closed)
        self.gaps.take_filled()  # the warm-up, not gaps in what was streamed
        await self.ingest.flush_async()
        async for sym, grid in self._grids(
            dict.fromkeys(self.symbols, last_closed - seed_ms), last_closed
        ):
            n = len(grid.ts)
            self.states[sym] = state = seed(grid.head(max(0, n - 1)), self.params)
            if n:  # the newest bar is stepped live: an episode already running is news
                result = step(state, bar_at(grid, n - 1))
                self.decider.on_bar(self.venue, sym, result, self.funding.get(sym, (None, None)))
            if state.last_ts is None:
                state.last_ts = last_closed  # nothing stored: start stepping from now
        self._seeded_ms = self.now_ms()
        # The feed's coverage starts now, not at the first close: the bar running now can be
        # stepped from the streams at its close (`close._covered_since`).
        self._record_coverage()
        log.info(
            "venue=%s event=started symbols=%d last_bar=%s",
            self.venue,
            len(self.symbols),
            iso(last_closed),
        )

    async def _snapshot(self, symbols: Sequence[str]) -> list[MarketSnapshot]:
        snaps = await self.client.snapshot(list(symbols))
        if snaps:
            self._rest_ms = max(self._rest_ms, *(s.ts_ms for s in snaps))
        for s in snaps:
            self._take_snapshot(s, store_oi=True)
        return snaps

    # -- the running loops -----------------------------------------------------------------

    async def run(self, warm_ms: int, seed_ms: int) -> None:
        """Stream at once; warm up and seed the engines meanwhile, then step every bar."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.stream.run(self.symbols, self.on_record))
            tg.create_task(self._clock_keeper())
            tg.create_task(self._funding_loop(warm_ms))
            if self.poller is not None:
                tg.create_task(self.poller.run(self.symbols))
            await self.warm_up(warm_ms, seed_ms)
            tg.create_task(self._bar_loop())

    async def _funding_loop(self, warm_ms: int) -> None:
        """Settled funding, fetched when a settlement is due, never holding up bars or
        streams (Binance allows 500 funding calls per 5 minutes: a cold start of 500 symbols
        takes that long, in the background)."""
        retry: dict[str, float] = {}  # symbol -> monotonic time before which not to ask

        async def fetch(sym: str) -> None:
            now = self.now_ms()
            last = await self.reads.run(
                lambda s: s.last_ts(Kind.FUNDING, self.venue, sym, None, None)
            )
            since = last + 1 if last is not None else now - max(warm_ms, DAY_MS)
            settled = await self.client.funding_history(sym, since, now)
            self.gaps.got("funding", settled)
            for sample in settled:
                self.book.add_funding(sample)
            # Published late, or nothing new: ask again in a few minutes, not every pass.
            retry[sym] = time.monotonic() + FUNDING_RETRY_S

        while True:
            now = self.now_ms()
            asked = [s for s in self.symbols if retry.get(s, 0.0) <= time.monotonic()]
            lasts = await self.reads.run(functools.partial(self._last_funding, symbols=asked))
            due = [
                s for s, last in zip(asked, lasts, strict=True) if self._funding_due(s, last, now)
            ]
            await self._each(fetch, due)
            await asyncio.sleep(FUNDING_PASS_S)

    def _last_funding(self, store: Store, symbols: Sequence[str]) -> list[int | None]:
        return [store.last_ts(Kind.FUNDING, self.venue, sym, None, None) for sym in symbols]

    def _funding_due(self, sym: str, last: int | None, now_ms: int) -> bool:
        interval_h = (self.funding.get(sym) or (None, None))[1] or 8.0
        return last is None or now_ms >= last + interval_h * 3_600_000

    def on_record(self, rec: StreamRecord) -> None:
        if isinstance(rec, Liquidation):
            self.ingest.add(rec)
            self._on_liquidation(rec)
        elif isinstance(rec, Candle):
            if rec.symbol in self.running:
                self.book.add_candle(rec)  # stored at its close's step (`BarBook`)
        else:
            self._take_snapshot(rec, store_oi=True)

    def _take_snapshot(self, snap: MarketSnapshot, store_oi: bool) -> None:
        if snap.funding_rate is not None:
            self.funding[snap.symbol] = (snap.funding_rate, snap.funding_interval_h)
        if store_oi and snap.oi_base is not None and snap.symbol in self.running:
            self._take_oi(snap, snap.ts_ms, streamed=True)

    def _take_oi(self, snap: MarketSnapshot, ts_ms: int, streamed: bool = False) -> None:
        assert snap.oi_base is not None
        sample = OISample(self.venue, snap.symbol, ts_ms, snap.oi_base, None, snap.oi_usd)
        if not streamed:
            self.ingest.add(sample)
        elif (due := self.minute_oi.add(sample)) is not None:
            self.ingest.add(due)
        self.book.add_oi(snap.symbol, ts_ms, snap.oi_base)

    def _take_polled(self, snaps: list[MarketSnapshot], close: int | None) -> None:
        """A poll sweep's readings; those of a close's sweep within the settle time are that
        bar's close OI, stamped at the close (`poll`)."""
        if snaps:
            self._rest_ms = max(self._rest_ms, *(s.ts_ms for s in snaps))
        for s in snaps:
            self._take_snapshot(s, store_oi=False)
            if s.oi_base is None or s.symbol not in self.running:
                continue
            poller = self.poller
            at_close = close is not None and poller is not None and poller.at_close(s.ts_ms, close)
            self._take_oi(s, close if at_close and close is not None else s.ts_ms)

    def _on_liquidation(self, liq: Liquidation) -> None:
        run, state = self.running.get(liq.symbol), self.states.get(liq.symbol)
        if run is None or state is None or state.last_ts is None:
            return
        bar_open = liq.ts_ms - liq.ts_ms % self.bar_ms
        if bar_open <= state.last_ts:
            return  # a late order for a stepped bar: stored, not counted twice
        sums = run.bars.setdefault(bar_open, [0.0, 0.0])
        sums[0 if liq.position_side is Side.LONG else 1] += liq.usd
        if liq.position_side is Side.SHORT and self.decider.phase(liq.symbol) is Phase.COVERING:
            if liq.symbol in self._busy:  # a worker is stepping it: checked right after
                self._deferred[liq.symbol] = liq
                return
            self._burst_check(liq, run, state, bar_open)

    def _burst_check(self, liq: Liquidation, run: Running, state: LiveState, bar_open: int) -> None:
        if state.last_ts is not None and bar_open > state.last_ts:
            pending = [run.bars.get(b, [0.0, 0.0]) for b in self._open_bars(state, bar_open)]
            hit = provisional_squeeze(state, pending)
            if hit is not None:
                short, long_ = hit
                self.decider.on_burst(liq.symbol, Burst(self.venue, liq.ts_ms, short, long_))

    def _open_bars(self, state: LiveState, upto: int) -> list[int]:
        assert state.last_ts is not None
        return list(range(state.last_ts + self.bar_ms, upto + 1, self.bar_ms))

    async def _clock_keeper(self) -> None:
        """While the stream is silent, venue time comes from a cheap REST snapshot."""
        while True:
            await asyncio.sleep(1.0)
            streamed = self.stream.stats.last_message_ms or 0
            if streamed != self._clock_seen:
                self._clock_seen, self._clock_mono = streamed, time.monotonic()
            elif not self._stream_fresh and self.symbols:
                with contextlib.suppress(VenueError):
                    await self._snapshot(self.symbols[:1])

    async def _each(self, fn: Callable[[str], Any], symbols: Sequence[str] | None = None) -> None:
        async def guarded(sym: str) -> None:
            try:
                await fn(sym)
            except UnknownSymbol:
                log.warning("venue=%s event=delisted symbol=%s", self.venue, sym)
            except Banned:
                raise
            except VenueError as exc:
                self._error(exc)

        await asyncio.gather(
            *(guarded(s) for s in list(self.symbols if symbols is None else symbols))
        )

    def _error(self, exc: Exception) -> None:
        self.status.errors += 1
        self.status.last_error = str(exc)
        log.warning("venue=%s event=rest_error error=%s", self.venue, exc)

    async def _backfill(self, start_ms: int | None, upto: int) -> None:
        """What the venue has and the store lacks, for bars opening up to `upto` (from
        `start_ms`, else from each symbol's first unstepped bar)."""
        firsts = {}
        for sym in self.symbols:
            state = self.states.get(sym)
            stepped = state.last_ts if state is not None and state.last_ts is not None else upto
            first = start_ms if start_ms is not None else stepped + self.bar_ms
            if first <= upto:
                firsts[sym] = first
        await self.gaps.fill(firsts, upto, self._each)

    def describe(self) -> dict[str, Any]:
        """The venue's line in `oiradar status`."""
        return self.status.line(self.client, self.stream, len(self.symbols), self.feed)
