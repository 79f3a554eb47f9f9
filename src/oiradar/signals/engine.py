"""The regime engine: a MarketSeries in, a bar timeline and merged events out. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from oiradar.errors import UserError
from oiradar.records import MarketSeries
from oiradar.signals.context import confidence, session_of
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import REFERENCE_BARS, Regime, classify, classify_reference
from oiradar.signals.windows import (
    Grid,
    build_grid,
    gap_in_window,
    pct_change,
    rolling_sum,
    trailing_median,
)
from oiradar.units import MINUTE_MS, funding_8h, interval_name

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
ROBUST_SIGMA = 1.4826  # MAD -> sigma for normal data
_EVENT_REGIMES = tuple(
    r
    for r in Regime
    if r not in (Regime.NO_DATA, Regime.NEUTRAL, Regime.NONE, Regime.SHORT_SQUEEZE)
)


@dataclass(frozen=True, slots=True)
class Timeline:
    """Per-bar output. Percentages in %; `squeeze` is NaN where liquidations are unknown."""

    grid: Grid
    window_bars: int
    oi_pct: FloatArray
    price_pct: FloatArray
    oi_threshold: FloatArray
    price_threshold: FloatArray
    regime: NDArray[np.int8]
    strong: BoolArray
    squeeze: FloatArray
    gap: BoolArray
    short_liq_usd: FloatArray
    long_liq_usd: FloatArray
    changes: dict[str, tuple[FloatArray, FloatArray]]


@dataclass(frozen=True, slots=True)
class Event:
    """Consecutive bars of one regime. Times in ms UTC; `start` is the first bar's open."""

    regime: Regime
    start_ms: int
    end_ms: int
    signal_ms: int
    bars: int
    oi_change_pct: float
    price_change_pct: float
    largest_oi_drop_pct: float
    peak_price_gain_pct: float
    tier: str | None
    confidence: int
    funding_rate: float | None
    funding_interval_h: float | None
    funding_rate_8h: float | None
    more_to_come: bool | None
    short_liq_usd: float | None
    long_liq_usd: float | None
    squeeze: bool | None
    volume_ratio: float | None
    session: str
    weekend: bool
    data_gap: bool


def window_bars(window_ms: int, bar_ms: int) -> int:
    """A window as a whole number of bars; anything else is a user error."""
    if window_ms <= 0 or window_ms % bar_ms:
        raise UserError(
            f"window {interval_name(window_ms)} is not a multiple of the data's bar size "
            f"{interval_name(bar_ms)}"
        )
    return window_ms // bar_ms


def _thresholds(change: FloatArray, fixed: float, params: EngineParams, bar_ms: int) -> FloatArray:
    if not params.adaptive:
        return np.full(change.shape, fixed)
    lookback = max(2, params.adaptive_lookback_ms // bar_ms)
    min_hist = max(2, params.min_history_ms // bar_ms)
    spread = ROBUST_SIGMA * trailing_median(np.abs(change), lookback, min_hist)
    thr = np.maximum(params.adaptive_k * spread, params.adaptive_floor_frac * fixed)
    return np.where(np.isnan(thr), fixed, thr)


class _Changes:
    """% changes of OI and price by window length, computed once per timeline."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self._cache: dict[int, tuple[FloatArray, FloatArray]] = {}

    def __call__(self, bars: int) -> tuple[FloatArray, FloatArray]:
        if bars not in self._cache:
            self._cache[bars] = (pct_change(self.grid.oi, bars), pct_change(self.grid.close, bars))
        return self._cache[bars]


def _strong(
    grid: Grid, regime: NDArray[np.int8], params: EngineParams, changes: _Changes
) -> BoolArray:
    """OI down >= strong % within <= 30 min (at least one bar) while price rises."""
    strong = np.zeros(len(regime), dtype=np.bool_)
    max_bars = max(1, params.strong_within_ms // grid.bar_ms)
    for v in range(1, max_bars + 1):
        oi_v, px_v = changes(v)
        strong |= (oi_v <= -params.strong_oi_drop_pct) & (px_v > 0)
    return np.asarray(strong & (regime == Regime.SHORT_COVERING), dtype=np.bool_)


Num = TypeVar("Num", FloatArray, float)


def squeeze_spike(
    short_w: Num, long_w: Num, base: Num, oi_usd: Num, params: EngineParams
) -> BoolArray | bool:
    """The squeeze rule on window totals (arrays or scalars): short liquidations at least
    `squeeze_k` x their trailing median, a floor share of OI, and dominant over longs."""
    return (
        (short_w >= params.squeeze_k * base)
        & (short_w >= params.squeeze_min_oi_share_pct / 100 * oi_usd)
        & (short_w >= params.squeeze_short_long_ratio * long_w)
        & (short_w > 0)
    )


def timeline(series: MarketSeries, params: EngineParams) -> Timeline:
    return grid_timeline(build_grid(series), params)


def grid_timeline(grid: Grid, params: EngineParams) -> Timeline:
    """The timeline of an aligned grid (what `live.step` reproduces one bar at a time)."""
    bar = grid.bar_ms
    if params.reference:
        if bar != 5 * MINUTE_MS:
            raise UserError(
                f"reference mode needs 5m data; this series has {interval_name(bar)} bars"
            )
        w = REFERENCE_BARS - 1
    else:
        w = window_bars(params.window_ms, bar)
    changes_of = _Changes(grid)
    oi_pct, price_pct = changes_of(w)
    gap = gap_in_window(grid.valid, w)
    if params.reference:
        oi_thr = np.full(oi_pct.shape, 1.5)
        px_thr = np.full(oi_pct.shape, 1.0)
        regime = classify_reference(oi_pct, price_pct)
    else:
        oi_thr = _thresholds(oi_pct, params.oi_threshold_pct, params, bar)
        px_thr = _thresholds(price_pct, params.price_threshold_pct, params, bar)
        regime = classify(oi_pct, price_pct, oi_thr, px_thr)
    strong = _strong(grid, regime, params, changes_of)

    short_w = rolling_sum(grid.liq_short_usd, w)
    long_w = rolling_sum(grid.liq_long_usd, w)
    lookback = max(2, params.context_lookback_ms // bar)
    base = trailing_median(short_w, lookback, max(2, params.min_history_ms // bar))
    oi_usd = grid.oi * grid.close
    spike = np.asarray(squeeze_spike(short_w, long_w, base, oi_usd, params), dtype=np.bool_)
    # Unknown (NaN) without liquidation data or before a baseline exists; never upgraded in
    # reference mode, which reproduces the blog-post labels only.
    unknown = np.isnan(short_w) | np.isnan(base) | params.reference
    squeeze = np.where(unknown, np.nan, spike.astype(np.float64))
    covering = regime == Regime.SHORT_COVERING
    regime = np.where(covering & (squeeze == 1.0), np.int8(Regime.SHORT_SQUEEZE), regime)

    changes = {}
    if bar == 5 * MINUTE_MS:
        ref = REFERENCE_BARS - 1
        changes["ref10"] = changes_of(ref)
    for wms in params.report_windows_ms:
        if wms % bar == 0:
            changes[interval_name(wms)] = changes_of(wms // bar)
    return Timeline(
        grid,
        w,
        oi_pct,
        price_pct,
        oi_thr,
        px_thr,
        regime.astype(np.int8),
        strong,
        squeeze,
        gap,
        short_w,
        long_w,
        changes,
    )


def _runs(mask: BoolArray) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Start and end (inclusive) indices of runs of True."""
    d = np.diff(mask.astype(np.int8), prepend=0, append=0)
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1


def _opt(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def events(
    tl: Timeline, params: EngineParams, regimes: tuple[Regime, ...] | None = None
) -> list[Event]:
    """Merge consecutive bars of each regime into events (covering and squeeze bars together)."""
    wanted = regimes or (Regime.SHORT_COVERING,)
    grid, w = tl.grid, tl.window_bars
    covering_like = (tl.regime == Regime.SHORT_COVERING) | (tl.regime == Regime.SHORT_SQUEEZE)
    vol_base = trailing_median(
        grid.volume,
        max(2, params.context_lookback_ms // grid.bar_ms),
        max(2, params.min_history_ms // grid.bar_ms),
    )
    out: list[Event] = []
    for regime in wanted:
        if regime not in _EVENT_REGIMES:
            continue
        mask = covering_like if regime == Regime.SHORT_COVERING else tl.regime == regime
        for s, e in zip(*_runs(mask), strict=True):
            out.append(_event(tl, params, Regime(regime), int(s), int(e), w, vol_base))
    out.sort(key=lambda ev: ev.start_ms)
    return out


def _event(
    tl: Timeline, params: EngineParams, regime: Regime, s: int, e: int, w: int, vol_base: FloatArray
) -> Event:
    grid = tl.grid
    b = max(0, s - w)
    oi_change = _pct(grid.oi[b], grid.oi[e])
    px_change = _pct(grid.close[b], grid.close[e])
    seg = slice(s, e + 1)
    covering = regime == Regime.SHORT_COVERING
    largest_drop = (
        float(np.nanmin(tl.oi_pct[seg])) if covering else float(np.nanmax(np.abs(tl.oi_pct[seg])))
    )
    peak_gain = (
        float(np.nanmax(tl.price_pct[seg]))
        if covering
        else float(np.nanmax(np.abs(tl.price_pct[seg])))
    )
    span = slice(max(0, s - w + 1), e + 1)
    short = float(np.sum(grid.liq_short_usd[span]))
    long_ = float(np.sum(grid.liq_long_usd[span]))
    sq_vals = tl.squeeze[seg]
    squeeze = None if np.all(np.isnan(sq_vals)) else bool(np.nanmax(sq_vals) == 1.0)
    rate = _opt(grid.funding_rate[s])
    ivl = _opt(grid.funding_interval_h[s])
    rate_8h = funding_8h(rate, ivl)
    vol = float(np.nansum(grid.volume[span]))
    normal = vol_base[s] * (span.stop - span.start)
    volume_ratio = vol / normal if np.isfinite(normal) and normal > 0 else None
    session, weekend = session_of(int(grid.ts[s]))
    data_gap = bool(np.any(tl.gap[seg]))
    conf = confidence(
        oi_drop_pct=largest_drop,
        oi_threshold_pct=float(tl.oi_threshold[s]),
        price_gain_pct=peak_gain,
        price_threshold_pct=float(tl.price_threshold[s]),
        funding_8h=rate_8h,
        clearly_negative_8h=params.more_to_come_funding_8h,
        volume_ratio=volume_ratio,
        session=session,
        weekend=weekend,
        data_gap=data_gap,
        use_funding=covering,
    )
    return Event(
        regime=Regime.SHORT_SQUEEZE if covering and squeeze else regime,
        start_ms=int(grid.ts[s]),
        end_ms=int(grid.ts[e]) + grid.bar_ms,
        signal_ms=int(grid.ts[s]) + grid.bar_ms,
        bars=e - s + 1,
        oi_change_pct=oi_change,
        price_change_pct=px_change,
        largest_oi_drop_pct=largest_drop,
        peak_price_gain_pct=peak_gain,
        tier=("strong" if bool(np.any(tl.strong[seg])) else "normal") if covering else None,
        confidence=conf,
        funding_rate=rate,
        funding_interval_h=ivl,
        funding_rate_8h=rate_8h,
        more_to_come=(rate_8h <= params.more_to_come_funding_8h)
        if covering and rate_8h is not None
        else None,
        short_liq_usd=short if np.isfinite(short) else None,
        long_liq_usd=long_ if np.isfinite(long_) else None,
        squeeze=squeeze if covering else None,
        volume_ratio=volume_ratio,
        session=session,
        weekend=weekend,
        data_gap=data_gap,
    )


def _pct(a: float, b: float) -> float:
    return (
        float((b / a - 1.0) * 100.0)
        if a > 0 and np.isfinite(a) and np.isfinite(b)
        else float("nan")
    )
