"""`oiradar scan`: the whole market now, across venues, from the cheapest endpoints.

Per venue, concurrently: the instrument list and ONE bulk snapshot call where the venue has
one (price, OI, funding for every symbol), then only the recent history the store does not
already hold (klines and OI history for the window), all within the venue's limits; where
the snapshot costs a call per symbol (Binance's OI) each symbol's history is asked as soon
as its snapshot is in. What was fetched is stored, and each (venue, symbol) is classified
by the Core engine on the store's series — the same path as `oiradar analyze`, so both
agree on the same data. Store reads and writes run on a worker thread (`store.aio`), in
batches of whatever arrived meanwhile: the loop keeps the venues' requests moving.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from oiradar.errors import Banned, UnknownSymbol, VenueError
from oiradar.kinds import Kind
from oiradar.lifecycle import cancel_and_wait
from oiradar.records import Candle, MarketSeries, MarketSnapshot, OISample
from oiradar.services.clients import venue_clients
from oiradar.services.history import Track, track_record
from oiradar.services.markets import CoinRow, MarketRow, aggregate, market_row, num, ranked
from oiradar.signals.engine import timeline
from oiradar.signals.horizons import REFERENCE_BAR_MS, REFERENCE_SPAN_MS
from oiradar.signals.params import EngineParams
from oiradar.signals.reading import reading_at
from oiradar.signals.regimes import REFERENCE_BARS
from oiradar.store import Store
from oiradar.store.aio import AsyncStore, Batches
from oiradar.units import DAY_MS, interval_name
from oiradar.venues.base import VenueClient

BAR_MS = REFERENCE_BAR_MS  # scans read 5m bars, the reference mode's too


# The symbol's 30-day record for covering and squeeze rows (services.history), None on the
# others: the short text, the days it covers, events with a known +1h outcome, hit rate, median.
HISTORY_KEYS = (
    "history",
    "history_days",
    "history_events",
    "history_hit_pct",
    "history_median_1h_pct",
)


@dataclass(frozen=True, slots=True)
class ScanRequest:
    venues: tuple[str, ...]
    symbols: tuple[str, ...] | None = None  # None: --top or --all
    top: int | None = 30
    params: EngineParams = field(default_factory=EngineParams)
    endpoint: str | None = None  # every venue's requests go here (a simulator); None: the venues


@dataclass(slots=True)
class ScanResult:
    """Typed rows per (venue, symbol) and per coin; `rows` and `aggregates` are them as
    output (ranked, names and rounding applied, the track record's columns on venue rows)."""

    markets: list[MarketRow] = field(default_factory=list)
    coins: list[CoinRow] = field(default_factory=list)
    tracks: dict[tuple[str, str], Track | None] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        return bool(self.failed)

    @property
    def rows(self) -> list[dict[str, Any]]:
        out = ranked(self.markets)
        for row in out:  # every venue row has the columns (CSV, scripts)
            row.update(history_columns(self.tracks.get((row["venue"], row["symbol"]))))
        return out

    @property
    def aggregates(self) -> list[dict[str, Any]]:
        return ranked(self.coins)


def history_columns(track: Track | None) -> dict[str, Any]:
    """The track record's columns of a row; None where there is none (not covering)."""
    if track is None:
        return dict.fromkeys(HISTORY_KEYS)
    enough = track.enough
    return {
        "history": track.short(),
        "history_days": track.days if enough else None,
        "history_events": track.events if enough else None,
        "history_hit_pct": num(track.hit_pct, 1),
        "history_median_1h_pct": track.median_1h_pct,
    }


@dataclass(slots=True)
class _VenueData:
    """A venue's rows in the order asked (the listing, the symbols given, the top ranks),
    whatever order its snapshots and fetches came back in."""

    venue: str
    order: list[str]
    rows: dict[str, MarketRow] = field(default_factory=dict)
    tracks: dict[str, Track | None] = field(default_factory=dict)

    def markets(self) -> list[MarketRow]:
        return [self.rows[s] for s in self.order if s in self.rows]


@dataclass(frozen=True, slots=True)
class _Asked:
    """A symbol's snapshot and the venue's time when it came (the newest time the venue's
    snapshots had shown by then): the end of the window its history is fetched and read to."""

    snap: MarketSnapshot
    now_ms: int

    def window(self, params: EngineParams) -> tuple[int, int, int]:
        """(start of the history to fetch, the running bar's open, now)."""
        running = self.now_ms - self.now_ms % BAR_MS
        return running - lookback_ms(params), running, self.now_ms


def window_name(params: EngineParams) -> str:
    """What the rows read: the horizons, or the reference classifier's ten candles."""
    if params.reference:
        span = interval_name((REFERENCE_BARS - 1) * BAR_MS)
        return f"{span} reference window (last {REFERENCE_BARS} 5m candles)"
    names = [interval_name(w) for w in params.windows_ms]
    return f"{names[0]} window" if len(names) == 1 else f"horizons {', '.join(names)}"


def lookback_ms(params: EngineParams) -> int:
    """History a cold scan must fetch: the longest horizon (or the reference 45 min) plus two
    bars."""
    return max(*params.windows_ms, REFERENCE_SPAN_MS) + 2 * BAR_MS


async def _collect(
    client: VenueClient,
    store: AsyncStore,
    req: ScanRequest,
    result: ScanResult,
    progress: Callable[[str, int], None],
) -> _VenueData:
    venue = client.name
    listed = [i.symbol for i in await client.instruments()]
    wanted: list[str] | None = None
    if req.symbols is not None:
        known = set(listed)
        wanted = [s for s in req.symbols if s in known]
        result.warnings.extend(
            f"{s} is not listed on {venue}; skipped" for s in req.symbols if s not in known
        )
    if wanted is None and req.top is not None:  # the whole market's snapshot, to rank it
        ranked = sorted(await client.snapshot(None), key=lambda s: -(s.quote_volume_24h or 0.0))
        data = _VenueData(venue, [s.symbol for s in ranked[: req.top]])
        batches: AsyncGenerator[list[MarketSnapshot], None] = _as_batch(ranked[: req.top])
    else:  # each symbol's history asked for as soon as its snapshot is in
        data = _VenueData(venue, listed if wanted is None else wanted)
        batches = client.snapshots(wanted)
    if data.order:
        progress(venue, len(data.order))

    # The store's reads and writes go in batches of whatever arrived while the last batch
    # ran (a transaction each, not one per symbol), the engine's time hidden behind the
    # network's instead of following it.
    held = Batches(store.run, functools.partial(_held, venue=venue, params=req.params))
    evaluate = Batches(
        store.run, functools.partial(_store_and_evaluate, venue=venue, params=req.params)
    )

    async def one(asked: _Asked) -> None:
        symbol = asked.snap.symbol
        start, _, now = asked.window(req.params)
        c_span, bar, last_oi = await held(asked)

        async def candles() -> list[Candle]:
            if bar is not None:
                # Every closed bar is stored: the running bar comes from the snapshot's price.
                return [bar]
            k_from = start if c_span is None else c_span[1]  # re-read the last stored bar
            return await client.klines(symbol, BAR_MS, k_from, now)

        async def oi() -> list[OISample]:
            o_from = start if last_oi is None else last_oi + 1
            return (
                await client.oi_history(symbol, BAR_MS, o_from, now)
                if o_from < now - BAR_MS
                else []
            )

        # Together: where they have budgets of their own, neither waits on the other's; both
        # end before an error of either is raised (no request left running unobserved).
        got_candles, got_oi = await asyncio.gather(candles(), oi(), return_exceptions=True)
        if isinstance(got_candles, BaseException) or isinstance(got_oi, BaseException):
            first = next(g for g in (got_candles, got_oi) if isinstance(g, BaseException))
            if not isinstance(first, UnknownSymbol):
                raise first
            result.warnings.append(f"{symbol} is not listed on {venue}; skipped")
        else:
            row, track = await evaluate((asked, [*got_candles, *got_oi]))
            if row is not None:
                data.rows[symbol] = row
                if row.reading.covering:  # its track record, or None: none yet
                    data.tracks[symbol] = track
        progress(venue, -1)

    await _each_symbol(batches, one)
    return data


async def _each_symbol(
    batches: AsyncGenerator[list[MarketSnapshot], None],
    one: Callable[[_Asked], Coroutine[Any, Any, None]],
) -> None:
    """`one(symbol)` for every symbol as its snapshot arrives, until all are done; a failure
    (a ban, a venue gone) leaves none of them running."""
    tasks: list[asyncio.Task[None]] = []
    newest = 0
    try:
        async with contextlib.aclosing(batches) as arriving:
            async for batch in arriving:
                newest = max(newest, *(s.ts_ms for s in batch)) if batch else newest
                tasks.extend(asyncio.create_task(one(_Asked(s, newest))) for s in batch)
        await asyncio.gather(*tasks)
    finally:
        await cancel_and_wait(tasks)  # those still running when one failed


async def _as_batch(snaps: list[MarketSnapshot]) -> AsyncGenerator[list[MarketSnapshot], None]:
    yield snaps


def _stored(
    store: Store, venue: str, asked: _Asked, params: EngineParams
) -> tuple[tuple[int, int] | None, Candle | None, int | None]:
    """What the store holds of one symbol's window: the span of its candles, the running
    bar at the snapshot's price when every closed bar is stored, the newest OI."""
    start, running, now = asked.window(params)
    snap = asked.snap
    symbol = snap.symbol
    price = snap.last_price if snap.last_price is not None else snap.mark_price
    c_span = store.candle_span(venue, symbol, interval_name(BAR_MS), start, now)
    bar = None
    if c_span is not None and c_span[1] >= running - BAR_MS and price is not None:
        bar = _running_bar(store, venue, symbol, running, price)
    return c_span, bar, store.last_ts(Kind.OPEN_INTEREST, venue, symbol, start, now)


def _held(
    store: Store, asked: Sequence[_Asked], venue: str, params: EngineParams
) -> list[tuple[tuple[int, int] | None, Candle | None, int | None]]:
    return [_stored(store, venue, a, params) for a in asked]


def _running_bar(store: Store, venue: str, symbol: str, open_ms: int, price: float) -> Candle:
    """The running bar extended to `price` (or opened at the last close if not stored yet)."""
    stored = store.candle_at(venue, symbol, interval_name(BAR_MS), open_ms)
    if stored is not None:
        return replace(
            stored, high=max(stored.high, price), low=min(stored.low, price), close=price
        )
    prev = store.candle_at(venue, symbol, interval_name(BAR_MS), open_ms - BAR_MS)
    first = prev.close if prev is not None else price
    return Candle(
        venue, symbol, BAR_MS, open_ms, first, max(first, price), min(first, price), price, 0.0
    )


def _store_and_evaluate(
    store: Store,
    fetched: Sequence[tuple[_Asked, Sequence[Candle | OISample]]],
    venue: str,
    params: EngineParams,
) -> list[tuple[MarketRow | None, Track | None]]:
    """Store the symbols' fetched bars and snapshot OI, then read each one's row (and,
    covering, its track record) from the store, as `analyze` would."""
    rows: list[Candle | OISample] = []
    for asked, records in fetched:
        snap = asked.snap
        rows.extend(records)
        if snap.oi_base is not None:
            rows.append(OISample(venue, snap.symbol, snap.ts_ms, snap.oi_base, None, snap.oi_usd))
    store.write_records(rows)
    out: list[tuple[MarketRow | None, Track | None]] = []
    for asked, _ in fetched:
        row = scan_row(store, venue, asked.snap, asked.now_ms, params)
        track = None
        if row is not None and row.reading.covering:
            track = track_record(store, venue, row.symbol, row.regime, asked.now_ms, params)
        out.append((row, track))
    return out


def scan_row(
    store: Store, venue: str, snap: MarketSnapshot, now_ms: int, params: EngineParams
) -> MarketRow | None:
    """A symbol's row from the store's series up to `now_ms` (the venue's time): its newest
    bar's reading with the snapshot's funding, read at the snapshot's time (None: no
    candles)."""
    warm = 8 * DAY_MS if params.adaptive else lookback_ms(params) + BAR_MS
    series = store.read_series(venue, snap.symbol, interval_name(BAR_MS), now_ms - warm, now_ms)
    if len(series.candle_ts) == 0:
        return None
    series, source = with_lagging_history(series, snap)
    reading = reading_at(timeline(series, params), -1, params)
    funding = (snap.funding_rate, snap.funding_interval_h)
    row = market_row(venue, snap.symbol, reading, snap.ts_ms, params, funding, snap.oi_usd)
    return replace(row, oi_source=source)


def with_lagging_history(series: MarketSeries, snap: MarketSnapshot) -> tuple[MarketSeries, str]:
    """The series with the snapshot's OI as the newest closed bar's when the venue's history
    has no row for it yet but the snapshot was taken within a bar after its close: a venue
    whose OI history lags its present by a bar reads on, flagged ("snapshot"), instead of
    leaving that bar without OI."""
    bar = series.interval_ms
    close = snap.ts_ms - snap.ts_ms % bar  # the newest closed bar's close
    has_row = bool(np.any((series.oi_ts > close - bar) & (series.oi_ts <= close)))
    if has_row or snap.oi_base is None or not close < snap.ts_ms <= close + bar:
        return series, "history"
    at = int(np.searchsorted(series.oi_ts, close))
    return replace(
        series,
        oi_ts=np.insert(series.oi_ts, at, close),
        oi_base=np.insert(series.oi_base, at, snap.oi_base),
    ), "snapshot"


async def scan(
    req: ScanRequest,
    store: Store,
    progress: Callable[[str, int], None] = lambda venue, n: None,
) -> ScanResult:
    """`oiradar scan` as a Python call: every venue of `req` scanned concurrently (from
    `req.endpoint` if given), what was fetched stored. `progress(venue, n)`: n > 0 is the
    venue's symbol count, -1 one symbol done."""
    async with venue_clients(req.venues, req.endpoint) as clients:
        return await scan_venues(clients, store, req, progress)


async def scan_venues(
    clients: Sequence[VenueClient],
    store: Store,
    req: ScanRequest,
    progress: Callable[[str, int], None] = lambda venue, n: None,
) -> ScanResult:
    """Scan with the caller's clients (left open); a venue that fails is reported, the
    others still are."""
    result = ScanResult()
    worker = AsyncStore(store, threads=2, name="oiradar-scan")
    try:
        await _scan(clients, worker, req, result, progress)
    finally:
        worker.close()
    return result


async def _scan(
    clients: Sequence[VenueClient],
    store: AsyncStore,
    req: ScanRequest,
    result: ScanResult,
    progress: Callable[[str, int], None],
) -> None:
    async def guarded(client: VenueClient) -> _VenueData | None:
        try:
            return await _collect(client, store, req, result, progress)
        except Banned as exc:
            result.failed.append(client.name)
            result.warnings.append(
                f"{client.name} has banned this IP for {exc.seconds:.0f} s; skipped"
            )
        except VenueError as exc:
            result.failed.append(client.name)
            result.warnings.append(f"{client.name} unreachable: {exc}; skipped")
        return None

    gathered = await asyncio.gather(*(guarded(c) for c in clients))
    for data in gathered:
        if data is None:
            continue
        result.markets.extend(data.markets())
        result.tracks.update(((data.venue, s), t) for s, t in data.tracks.items())
    result.coins = aggregate(result.markets, req.params)
