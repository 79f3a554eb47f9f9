"""Bar grid alignment and % changes over windows; gaps stay NaN and are flagged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from oiradar.records import MarketSeries

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Grid:
    """One (venue, symbol) on a regular bar grid. Missing bars hold NaN, never 0.

    `oi` is OI in base units at the bar's close; `liq_*_usd` are per-bar sums (NaN where no
    liquidation source covers the bar); funding is the rate in force at the bar's close.
    The optional rows (None = unknown for every bar): `taker_buy` is the bar's taker-buy
    volume (base); `premium` the premium index at the bar's close (a fraction);
    `ls_account` / `ls_top_position` the long/short ratios of all accounts and of top
    traders' positions at the bar's close.
    """

    bar_ms: int
    ts: NDArray[np.int64]
    close: FloatArray
    volume: FloatArray
    oi: FloatArray
    liq_long_usd: FloatArray
    liq_short_usd: FloatArray
    funding_rate: FloatArray
    funding_interval_h: FloatArray
    taker_buy: FloatArray | None = None
    premium: FloatArray | None = None
    ls_account: FloatArray | None = None
    ls_top_position: FloatArray | None = None

    @property
    def valid(self) -> BoolArray:
        return ~(np.isnan(self.close) | np.isnan(self.oi))

    def row(self, name: str) -> FloatArray:
        """An optional row, NaN for every bar when the series has none."""
        values: FloatArray | None = getattr(self, name)
        return np.full(len(self.ts), np.nan) if values is None else values

    def head(self, k: int) -> Grid:
        """The first `k` bars."""
        rows: list[FloatArray | None] = [
            None if (v := getattr(self, f)) is None else v[:k] for f in _ROWS
        ]
        return Grid(self.bar_ms, self.ts[:k], *rows)  # type: ignore[arg-type]


_ROWS = tuple(Grid.__dataclass_fields__)[2:]


def _last_per_bucket(idx: NDArray[np.int64], values: FloatArray, n: int) -> FloatArray:
    """out[i] = the last value whose bucket is i (inputs sorted by time), NaN if none."""
    out = np.full(n, np.nan)
    keep = (idx >= 0) & (idx < n)
    idx, values = idx[keep], values[keep]
    if len(idx):
        last = np.r_[idx[1:] != idx[:-1], True]
        out[idx[last]] = values[last]
    return out


def _span_covered(spans: NDArray[np.int64], ts: NDArray[np.int64], bar: int) -> BoolArray:
    """True where one feed span holds the whole bar: orders missing there were not lost."""
    spans = spans[np.argsort(spans[:, 0], kind="stable")]
    reach = np.maximum.accumulate(spans[:, 1])  # the latest end of any span started so far
    last = np.searchsorted(spans[:, 0], ts, side="right") - 1
    return (last >= 0) & (reach[np.clip(last, 0, None)] >= ts + bar)


def build_grid(series: MarketSeries, max_funding_age_h: float = 24.0) -> Grid:
    """Align candles, OI, funding and liquidations of one series on its bar grid."""
    bar = series.interval_ms
    if len(series.candle_ts) == 0:
        empty = np.empty(0)
        return Grid(bar, np.empty(0, np.int64), empty, empty, empty, empty, empty, empty, empty)
    t0 = int(series.candle_ts[0])
    n = int((series.candle_ts[-1] - t0) // bar) + 1
    ts = t0 + bar * np.arange(n, dtype=np.int64)
    cidx = (series.candle_ts - t0) // bar
    close = _last_per_bucket(cidx, series.close, n)
    volume = _last_per_bucket(cidx, series.volume, n)
    # A snapshot taken at (or just before) a bar's close belongs to that bar.
    oi = _last_per_bucket((series.oi_ts - t0 - 1) // bar, series.oi_base, n)

    bar_close = ts + bar
    if series.liq_coverage:
        lidx = (series.liq_ts - t0) // bar
        ok = (lidx >= 0) & (lidx < n)
        liq_long = np.bincount(
            lidx[ok], weights=np.nan_to_num(series.liq_long_usd[ok]), minlength=n
        ).astype(np.float64)
        liq_short = np.bincount(
            lidx[ok], weights=np.nan_to_num(series.liq_short_usd[ok]), minlength=n
        ).astype(np.float64)
        tracked = series.liq_tracked or len(series.liq_spans) > 0
        if tracked or len(series.liq_bar_ts):
            known = np.zeros(n, dtype=np.bool_)
            bidx = (series.liq_bar_ts - t0) // bar
            known[bidx[(bidx >= 0) & (bidx < n)]] = True
            if tracked:
                if len(series.liq_spans):
                    known |= _span_covered(series.liq_spans, ts, bar)
            else:  # per-bar history only: a bar with an order is covered too
                known[lidx[ok]] = True
            liq_long[~known] = np.nan
            liq_short[~known] = np.nan
    else:
        liq_long = np.full(n, np.nan)
        liq_short = np.full(n, np.nan)

    fpos = np.searchsorted(series.funding_ts, bar_close, side="right") - 1
    has = fpos >= 0
    fpos_c = np.clip(fpos, 0, None)
    rate = np.where(
        has, series.funding_rate[fpos_c] if len(series.funding_rate) else np.nan, np.nan
    )
    ivl = np.where(
        has, series.funding_interval_h[fpos_c] if len(series.funding_rate) else np.nan, np.nan
    )
    if len(series.funding_ts):
        age_h = (bar_close - series.funding_ts[fpos_c]) / 3_600_000
        stale = age_h > np.maximum(max_funding_age_h, 2 * np.nan_to_num(ivl, nan=8.0))
        rate = np.where(stale, np.nan, rate)
        ivl = np.where(stale, np.nan, ivl)
    taker = (
        _last_per_bucket(cidx, series.taker_buy, n)
        if len(series.taker_buy) == len(series.candle_ts) and not np.all(np.isnan(series.taker_buy))
        else None
    )
    return Grid(
        bar,
        ts,
        close,
        volume,
        oi,
        liq_long,
        liq_short,
        rate.astype(np.float64),
        ivl.astype(np.float64),
        taker,
        _at_close(series.premium_ts + _premium_bar(series), series.premium_close, bar_close, bar),
        _at_close(series.pos_ts, series.pos_account, bar_close, bar),
        _at_close(series.pos_ts, series.pos_top_position, bar_close, bar),
    )


def _premium_bar(series: MarketSeries) -> int:
    """Premium bars are stored by open time at the bar size or finer: their close counts."""
    if len(series.premium_ts) < 2:
        return series.interval_ms
    return int(min(series.interval_ms, np.min(np.diff(series.premium_ts))))


def _at_close(
    ts: NDArray[np.int64], values: FloatArray, bar_close: NDArray[np.int64], bar: int
) -> FloatArray | None:
    """The last sample at or before each bar's close if it is at most one bar old (a stale
    snapshot is unknown, not carried forward); None when the series has no samples."""
    if len(ts) == 0 or np.all(np.isnan(values)):
        return None
    pos = np.searchsorted(ts, bar_close, side="right") - 1
    pos_c = np.clip(pos, 0, None)
    fresh = (pos >= 0) & (bar_close - ts[pos_c] <= bar)
    return np.where(fresh, values[pos_c], np.nan)


def pct_change(x: FloatArray, bars: int) -> FloatArray:
    """100 * (x[t] / x[t - bars] - 1); NaN where either end is missing or the base is <= 0."""
    out = np.empty(x.shape)
    if bars <= 0 or bars >= len(x):
        out.fill(np.nan)
        return out
    out[:bars] = np.nan
    base = x[:-bars]
    tail = out[bars:]
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(x[bars:], base, out=tail)  # in place: this is the engine's hot loop
    tail -= 1.0
    tail *= 100.0
    tail[base <= 0] = np.nan
    return out


def gap_in_window(valid: BoolArray, bars: int) -> BoolArray:
    """True where any bar in [t - bars, t] is missing (the window touches a gap)."""
    missing = np.cumsum(~valid, dtype=np.int64)
    lagged = np.concatenate([np.zeros(bars + 1, np.int64), missing[: -bars - 1]])[: len(valid)]
    out = (missing - lagged) > 0
    out[: min(bars, len(out))] = True
    return np.asarray(out, dtype=np.bool_)


def rolling_sum(x: FloatArray, bars: int) -> FloatArray:
    """Sum of x over [t - bars + 1, t]; NaN until a full window exists or if it holds NaN."""
    out = np.full(x.shape, np.nan)
    if bars <= 0 or bars > len(x):
        return out
    nan = np.isnan(x)
    c = np.concatenate([[0.0], np.cumsum(np.where(nan, 0.0, x))])
    cn = np.concatenate([[0], np.cumsum(nan, dtype=np.int64)])
    sums = c[bars:] - c[:-bars]
    holes = (cn[bars:] - cn[:-bars]) > 0
    out[bars - 1 :] = np.where(holes, np.nan, sums)
    return out


# Trailing medians (the volume and short-liquidation baselines, the adaptive bands) take
# their values at single precision. Their windows are a week of bars: at 5 minutes two or
# more rings of 2,016 values per series that a daemon keeps for every series it watches
# (3,500 at 500 symbols x 7 venues: ~113 MB at double precision, the largest part of its
# memory). A baseline needs 7 significant digits, not 16, and batch and live round alike
# (`baseline`), so they still agree exactly.
BASELINE_DTYPE = np.float32


def baseline(x: NDArray[np.floating[Any]]) -> FloatArray:
    """`x` as a trailing median reads it: rounded to `BASELINE_DTYPE`, in float64."""
    return np.asarray(x, dtype=BASELINE_DTYPE).astype(np.float64)


def median_known(values: NDArray[np.floating[Any]], min_periods: int) -> float:
    """Median of the known values if there are at least `min_periods`, else NaN: one bar's
    `trailing_median` (given the window before it)."""
    known = baseline(values[~np.isnan(values)])
    return float(np.median(known)) if len(known) >= min_periods else float("nan")


def load_medians() -> None:
    """Load what `trailing_median` needs now, and run it once. A daemon's track record asks
    its first one after a day of history: imported then, its ~30 MB showed as a step in RSS
    that a memory alert (and the soak) reads as a leak; imported but not run, the first
    rolling median still paged in ~15 MB of polars' code (file-backed RSS: 14 MB of the
    library resident after the import, 29 MB after one median of ten values) hours later."""
    trailing_median(np.arange(8.0), 4, 1)


def trailing_median(x: FloatArray, bars: int, min_periods: int) -> FloatArray:
    """Median of x over the `bars` values BEFORE t (t itself excluded: no look-ahead)."""
    if len(x) == 0:
        return np.empty(0)
    import polars as pl  # ~0.1 s to import: only where a median is asked (not every scan)

    s = pl.Series(baseline(x), dtype=pl.Float64).fill_nan(None)
    med = s.rolling_median(window_size=bars, min_samples=min_periods).shift(1)
    return med.fill_null(np.nan).to_numpy().astype(np.float64)
