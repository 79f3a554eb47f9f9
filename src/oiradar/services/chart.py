"""What `oiradar chart` shows, gathered from the store on one bar axis: a service (it reads
the store and runs the engine); the renderers in `charts/` only draw a `ChartData`.

Every series is aligned on the bar opens of the price venue's candles within the range;
missing values stay NaN (drawn as gaps), never 0, so an unknown bar cannot pass for a quiet
one. Regimes and events come from the same engine run as `oiradar analyze` on the price
venue (with its warm-up history), so the chart and the event table always agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

from oiradar.errors import NoDataError, UserError
from oiradar.records import MarketSeries
from oiradar.services.analyze import Query, load
from oiradar.signals.engine import Event, events, timeline
from oiradar.signals.horizons import describe
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import Regime
from oiradar.signals.windows import Grid, build_grid
from oiradar.store import Store
from oiradar.units import DAY_MS, interval_ms, interval_name, iso
from oiradar.venues.registry import ALL_VENUES

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

DEFAULT_SPAN_MS = 3 * DAY_MS
"""Without --from, a chart shows this much before --to: months of bars are unreadable."""
# Liquidation bars beyond 3 x the 95th percentile of all bars are clipped there, but only
# when the largest is a real outlier (over twice that): one crash bar must not flatten the
# rest. Both renderers print or hover the clipped values.
LIQ_CLIP_FACTOR = 3.0
LIQ_OUTLIER = 2.0
_QUOTES = ("USDT", "USDC", "BUSD", "FDUSD", "USD")


def base_asset(symbol: str) -> str:
    """'BTCUSDT' -> 'BTC': the unit of OI in base units, for axis labels."""
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)]
    return symbol


@dataclass(frozen=True, slots=True)
class Selection:
    """What to chart, resolved against the store: venues with candles in range, bar size and
    the range itself (inclusive bar opens, ms UTC)."""

    symbol: str
    venues: tuple[str, ...]
    interval: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class VenueLines:
    """One venue's OI (base units and USD at each bar's close) and funding, on the axis."""

    venue: str
    oi_base: FloatArray
    oi_usd: FloatArray
    funding_8h_pct: FloatArray
    """The funding rate in force at the bar's close as an 8-hour equivalent, in %."""


@dataclass(frozen=True, slots=True)
class EventMark:
    """A short-covering / squeeze event as drawn: a marker at its signal time (the close of
    its first bar, when `oiradar watch` would have alerted) above that bar's high."""

    signal_ms: int
    start_ms: int
    end_ms: int
    regime: Regime
    oi_pct: float
    price_pct: float
    y: float
    label: str


@dataclass(frozen=True, slots=True)
class ChartData:
    """Everything one chart shows; arrays share the axis `ts` (bar opens, ms UTC)."""

    symbol: str
    base: str
    interval: str
    bar_ms: int
    window: str
    price_venue: str
    venues: tuple[str, ...]
    ts: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    oi: tuple[VenueLines, ...]
    oi_total_usd: FloatArray
    """Sum of every venue's OI in USD; NaN at bars where any venue's OI is missing."""
    liq_venues: tuple[str, ...]
    """Venues with liquidation data in range: the liquidation sums cover exactly these."""
    liq_long_usd: FloatArray
    liq_short_usd: FloatArray
    """Liquidated longs / shorts per bar in USD; NaN where any of `liq_venues` is unknown."""
    regime: NDArray[np.int8]
    events: tuple[EventMark, ...]
    bands: str

    @property
    def start_ms(self) -> int:
        return int(self.ts[0])

    @property
    def end_ms(self) -> int:
        """The close of the last bar."""
        return int(self.ts[-1]) + self.bar_ms

    @property
    def has_funding(self) -> bool:
        return any(bool(np.isfinite(v.funding_8h_pct).any()) for v in self.oi)

    @property
    def has_liquidations(self) -> bool:
        return bool(self.liq_venues)

    def liq_scale(self) -> tuple[float, bool]:
        """The liquidation panel's half-range (USD) and whether taller bars are clipped."""
        both = np.concatenate([self.liq_short_usd, self.liq_long_usd])
        pos = both[np.isfinite(both) & (both > 0)]
        if len(pos) == 0:
            return 1.0, False
        peak = float(pos.max())
        if len(pos) >= 20:
            robust = LIQ_CLIP_FACTOR * float(np.percentile(pos, 95))
            if peak > LIQ_OUTLIER * robust:
                return robust, True
        return peak, False

    def regime_runs(self) -> list[tuple[int, int, Regime]]:
        """(start ms, end ms, regime) of each run of bars in one regime, for shading."""
        out: list[tuple[int, int, Regime]] = []
        if len(self.ts) == 0:
            return out
        cut = np.flatnonzero(np.diff(self.regime)) + 1
        for s, e in zip(np.r_[0, cut], np.r_[cut, len(self.ts)], strict=True):
            out.append((int(self.ts[s]), int(self.ts[e - 1]) + self.bar_ms, Regime(self.regime[s])))
        return out

    def unknown_liq_runs(self) -> list[tuple[int, int]]:
        """(start ms, end ms) of runs of bars whose liquidations are unknown (not zero)."""
        unknown = np.isnan(self.liq_long_usd) | np.isnan(self.liq_short_usd)
        d = np.diff(unknown.astype(np.int8), prepend=0, append=0)
        starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
        return [
            (int(self.ts[s]), int(self.ts[e - 1]) + self.bar_ms)
            for s, e in zip(starts, ends, strict=True)
        ]


def select(
    store: Store,
    symbol: str,
    venue: str | None,
    start_ms: int | None,
    end_ms: int | None,
    interval: str | None,
) -> Selection:
    """Resolve venues, bar size and range; unknown symbol or empty range is a one-line error.

    The bar size is the finest stored with candles in range (as `analyze`), the range ends at
    the last stored bar and starts `DEFAULT_SPAN_MS` before its end unless given.
    """
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise UserError(f"empty range: --from {iso(start_ms)} is after --to {iso(end_ms)}")
    stored = store.venues_for(symbol)
    if not stored:
        raise NoDataError(f"no candles for {symbol} in {store.location}")
    if venue is not None and venue not in stored:
        raise NoDataError(
            f"no candles for {symbol} on {venue}; it is stored for {', '.join(stored)}"
        )
    pool = [venue] if venue is not None else stored
    intervals = sorted({i for v in pool for i in store.intervals(v, symbol)}, key=interval_ms)
    if interval is None:
        in_range = [
            i
            for i in intervals
            if any(store.candle_span(v, symbol, i, start_ms, end_ms) for v in pool)
        ]
        interval = (in_range or intervals)[0]
    elif interval not in intervals:
        interval_ms(interval)  # a malformed name gets the parser's message first
        raise NoDataError(
            f"no {interval} candles for {symbol} on {', '.join(pool)}; stored: "
            f"{', '.join(intervals)}"
        )
    spans = {v: store.candle_span(v, symbol, interval) for v in pool}
    known = [s for s in spans.values() if s is not None]
    if end_ms is None:
        end_ms = max(hi for _, hi in known)
    if start_ms is None:
        start_ms = end_ms - DEFAULT_SPAN_MS
    if start_ms > end_ms:
        raise UserError(f"empty range: --from {iso(start_ms)} is after {iso(end_ms)}")
    venues = tuple(v for v in pool if store.candle_span(v, symbol, interval, start_ms, end_ms))
    if not venues:
        lo, hi = min(s[0] for s in known), max(s[1] for s in known)
        raise NoDataError(
            f"no {interval} candles for {symbol} between {iso(start_ms)} and {iso(end_ms)}; "
            f"stored: {iso(lo)} .. {iso(hi)}"
        )
    return Selection(symbol, venues, interval, start_ms, end_ms)


VENUE_ORDER = ALL_VENUES  # the majors first, then Gate, Hyperliquid, dYdX
FULL_SHARE = 0.9  # a venue with this share of the best one's complete bars counts as full


def pick_price_venue(series: dict[str, MarketSeries]) -> str:
    """The venue whose candles, regimes and events are drawn: one that can show squeezes (it
    has liquidation data in range; Hyperliquid publishes none), Binance first, then Bybit,
    OKX, Bitget, Gate, Hyperliquid, dYdX (`registry.ALL_VENUES`), passing over a venue with
    under 90 % of the best one's complete bars (a close and an OI snapshot). Raw row counts
    favoured whichever venue streamed OI most often."""
    liq = [v for v, s in series.items() if s.liq_coverage]
    pool = liq or list(series)
    complete = {v: int(build_grid(series[v]).valid.sum()) for v in pool}
    best = max(complete.values())

    def rank(v: str) -> tuple[int, str]:
        return (VENUE_ORDER.index(v) if v in VENUE_ORDER else len(VENUE_ORDER), v)

    return min((v for v in pool if complete[v] >= FULL_SHARE * best), key=rank)


def _on_axis(axis: IntArray, bar_ms: int, ts: IntArray, values: FloatArray) -> FloatArray:
    """`values` stamped at bar opens `ts`, placed on `axis`; NaN where a bar has no value."""
    out = np.full(len(axis), np.nan)
    if len(axis) == 0 or len(ts) == 0:
        return out
    idx = (ts - axis[0]) // bar_ms
    ok = (idx >= 0) & (idx < len(axis)) & ((ts - axis[0]) % bar_ms == 0)
    out[idx[ok]] = values[ok]
    return out


def _funding_pct(grid: Grid) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = grid.funding_rate * 8.0 / grid.funding_interval_h * 100.0
    return np.asarray(np.where(np.isfinite(pct), pct, np.nan), dtype=np.float64)


def _sum_where_all(parts: list[FloatArray], n: int) -> FloatArray:
    """Element-wise sum, NaN wherever any part is NaN: a partial total would look like a drop."""
    if not parts:
        return np.full(n, np.nan)
    return np.asarray(np.sum(np.vstack(parts), axis=0), dtype=np.float64)


def _label(ev: Event) -> str:
    """Two short lines: what and when (signal time, UTC), then the OI and price moves."""
    name = "SQUEEZE" if ev.regime == Regime.SHORT_SQUEEZE else "COVERING"
    when = datetime.fromtimestamp(ev.signal_ms / 1000, tz=UTC).strftime("%d %b %H:%M")
    over = interval_name(ev.horizon_ms)
    return f"{name} {when}\nOI {ev.oi_change_pct:+.1f}%  px {ev.price_change_pct:+.1f}% /{over}"


def gather(store: Store, sel: Selection, params: EngineParams) -> ChartData:
    """Read every venue of the selection, run the engine on the price venue, align it all."""
    bar_ms = interval_ms(sel.interval)
    series: dict[str, MarketSeries] = {
        v: store.read_series(v, sel.symbol, sel.interval, sel.start_ms, sel.end_ms)
        for v in sel.venues
    }

    price_venue = pick_price_venue(series)
    venues = (price_venue, *sorted(v for v in sel.venues if v != price_venue))
    q = Query(sel.symbol, price_venue, sel.start_ms, sel.end_ms, sel.interval)
    warm, q = load(store, q)  # with the warm-up history the engine's baselines need
    tl = timeline(warm, params)
    g = tl.grid
    keep = (g.ts >= sel.start_ms) & (g.ts <= sel.end_ms)
    axis = g.ts[keep]
    if len(axis) == 0:
        raise NoDataError(f"no {sel.interval} candles for {sel.symbol} on {price_venue} in range")

    def place(ts: IntArray, values: FloatArray) -> FloatArray:
        return _on_axis(axis, bar_ms, ts, values)

    close = place(warm.candle_ts, warm.close)
    grids = {price_venue: g}
    grids.update({v: build_grid(series[v]) for v in venues[1:]})
    lines: list[VenueLines] = []
    longs: list[FloatArray] = []
    shorts: list[FloatArray] = []
    liq_venues: list[str] = []
    for v in venues:
        vg = grids[v]
        oi = place(vg.ts, vg.oi)
        own_close = place(vg.ts, vg.close)
        px = np.where(np.isfinite(own_close), own_close, close)
        lines.append(VenueLines(v, oi, oi * px, place(vg.ts, _funding_pct(vg))))
        long_, short = place(vg.ts, vg.liq_long_usd), place(vg.ts, vg.liq_short_usd)
        if np.isfinite(long_).any() or np.isfinite(short).any():
            liq_venues.append(v)
            longs.append(long_)
            shorts.append(short)

    marks: list[EventMark] = []
    high = place(warm.candle_ts, warm.high)
    for ev in events(tl, params, (Regime.SHORT_COVERING,)):
        if not sel.start_ms <= ev.start_ms <= sel.end_ms:
            continue
        i = int((ev.start_ms - int(axis[0])) // bar_ms)
        marks.append(
            EventMark(
                signal_ms=ev.signal_ms,
                start_ms=ev.start_ms,
                end_ms=ev.end_ms,
                regime=ev.regime,
                oi_pct=ev.oi_change_pct,
                price_pct=ev.price_change_pct,
                y=float(high[i]) if np.isfinite(high[i]) else float(np.nanmax(high)),
                label=_label(ev),
            )
        )
    n = len(axis)
    window, bands = describe(params, bar_ms)
    return ChartData(
        symbol=sel.symbol,
        base=base_asset(sel.symbol),
        interval=sel.interval,
        bar_ms=bar_ms,
        window=window,
        price_venue=price_venue,
        venues=venues,
        ts=axis.astype(np.int64),
        open=place(warm.candle_ts, warm.open),
        high=high,
        low=place(warm.candle_ts, warm.low),
        close=close,
        oi=tuple(lines),
        oi_total_usd=_sum_where_all([ln.oi_usd for ln in lines], n),
        liq_venues=tuple(liq_venues),
        liq_long_usd=_sum_where_all(longs, n),
        liq_short_usd=_sum_where_all(shorts, n),
        regime=tl.regime[keep].astype(np.int8),
        events=tuple(marks),
        bands=bands,
    )
