"""`oiradar scan`: the whole market now, across venues, from the cheapest endpoints.

Per venue, concurrently: the instrument list and ONE bulk snapshot call where the venue has
one (price, OI, funding for every symbol), then only the recent history the store does not
already hold (klines and OI history for the window), all within the venue's limits. What
was fetched is stored, and each (venue, symbol) is classified by the Core engine on the
store's series — the same path as `oiradar analyze`, so both agree on the same data. Store
reads and writes run on a worker thread (`store.aio`): the loop keeps the venues' requests
moving meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from oiradar.errors import Banned, UnknownSymbol, VenueError
from oiradar.kinds import Kind
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
from oiradar.store.aio import AsyncStore
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
    """A venue's rows in snapshot order, whatever order its symbols' fetches ended in."""

    venue: str
    now_ms: int
    snaps: dict[str, MarketSnapshot]
    rows: dict[str, MarketRow] = field(default_factory=dict)
    tracks: dict[str, Track | None] = field(default_factory=dict)

    def markets(self) -> list[MarketRow]:
        return [self.rows[s] for s in self.snaps if s in self.rows]


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
    listed = {i.symbol for i in await client.instruments()}
    wanted: list[str] | None = None
    if req.symbols is not None:
        wanted = [s for s in req.symbols if s in listed]
        result.warnings.extend(
            f"{s} is not listed on {venue}; skipped" for s in req.symbols if s not in listed
        )
    snaps = {s.symbol: s for s in await client.snapshot(wanted)}
    if not snaps:
        return _VenueData(venue, 0, {})
    now = max(s.ts_ms for s in snaps.values())
    if wanted is None and req.top is not None:
        ranked = sorted(snaps.values(), key=lambda s: -(s.quote_volume_24h or 0.0))
        snaps = {s.symbol: s for s in ranked[: req.top]}
    data = _VenueData(venue, now, snaps)
    start = now - now % BAR_MS - lookback_ms(req.params)
    progress(venue, len(snaps))

    times = (start, now - now % BAR_MS, now)
    # What the store holds of every symbol, read in one trip to the worker, not one each.
    held = await store.run(
        lambda s: {sym: _stored(s, venue, snap, times) for sym, snap in snaps.items()}
    )

    async def one(symbol: str) -> None:
        c_span, bar, last_oi = held[symbol]

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
            data.snaps.pop(symbol, None)
        else:
            fetched.append((symbol, [*got_candles, *got_oi]))
            await evaluate()
        progress(venue, -1)

    # Stored and read while the other symbols' requests are still out (the engine's time
    # hides behind the network's instead of following it), in batches of whatever arrived
    # while the last batch ran: one transaction each, not one per symbol.
    fetched: list[tuple[str, list[Candle | OISample]]] = []
    one_batch = asyncio.Lock()

    async def evaluate() -> None:
        async with one_batch:
            batch = fetched[:]
            fetched.clear()
            if batch:
                await store.run(lambda s: _store_and_evaluate(s, data, batch, req.params))

    await asyncio.gather(*(one(s) for s in list(snaps)))
    return data


def _stored(
    store: Store, venue: str, snap: MarketSnapshot, times: tuple[int, int, int]
) -> tuple[tuple[int, int] | None, Candle | None, int | None]:
    """What the store holds of one symbol's window (start, running bar open, now): the span
    of its candles, the running bar at the snapshot's price when every closed bar is
    stored, the newest OI."""
    start, running, now = times
    symbol = snap.symbol
    price = snap.last_price if snap.last_price is not None else snap.mark_price
    c_span = store.candle_span(venue, symbol, interval_name(BAR_MS), start, now)
    bar = None
    if c_span is not None and c_span[1] >= running - BAR_MS and price is not None:
        bar = _running_bar(store, venue, symbol, running, price)
    return c_span, bar, store.last_ts(Kind.OPEN_INTEREST, venue, symbol, start, now)


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
    data: _VenueData,
    fetched: Sequence[tuple[str, Sequence[Candle | OISample]]],
    params: EngineParams,
) -> None:
    """Store the symbols' fetched bars and snapshot OI, then read each one's row (and,
    covering, its track record) from the store, as `analyze` would."""
    rows: list[Candle | OISample] = []
    for symbol, records in fetched:
        snap = data.snaps[symbol]
        rows.extend(records)
        if snap.oi_base is not None:
            rows.append(OISample(data.venue, symbol, snap.ts_ms, snap.oi_base, None, snap.oi_usd))
    store.write_records(rows)
    for symbol, _ in fetched:
        row = scan_row(store, data.venue, data.snaps[symbol], data.now_ms, params)
        if row is None:
            continue
        data.rows[symbol] = row
        if row.reading.covering:
            track = track_record(store, data.venue, symbol, row.regime, data.now_ms, params)
            data.tracks[symbol] = track


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
