"""The regime engine one bar at a time, for `oiradar watch`. Pure, no I/O.

`seed(grid, params)` turns a history grid into a `LiveState` (vectorized, with the batch
functions); `step(state, bar)` adds one closed bar and returns what `engine.timeline()`
computes for that bar over the whole history, in O(lookback) instead of O(history). A
property test holds the two equal bar for bar. Bars must come in order; a skipped bar is
stepped as missing (NaN), exactly as the batch grid holds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from oiradar.errors import UserError
from oiradar.signals.engine import ROBUST_SIGMA, squeeze_spike, window_bars
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import (
    REFERENCE_BARS,
    REFERENCE_OI_PCT,
    REFERENCE_PRICE_PCT,
    Regime,
    classify,
    classify_reference,
)
from oiradar.signals.windows import Grid, pct_change, rolling_sum
from oiradar.units import MINUTE_MS, interval_name

FloatArray = NDArray[np.float64]
NAN = float("nan")


@dataclass(frozen=True, slots=True)
class Bar:
    """One closed bar's inputs, as `windows.build_grid` aligns them (NaN = unknown)."""

    ts_ms: int
    close: float
    volume: float
    oi: float
    liq_long_usd: float
    liq_short_usd: float
    funding_rate: float = NAN
    funding_interval_h: float = NAN


@dataclass(frozen=True, slots=True)
class BarResult:
    """The engine's reading of one bar (percentages in %; `squeeze` NaN = unknown)."""

    ts_ms: int
    regime: Regime
    oi_pct: float
    price_pct: float
    oi_threshold: float
    price_threshold: float
    strong: bool
    squeeze: float
    gap: bool
    short_liq_usd: float  # over the window ending at this bar
    long_liq_usd: float
    oi_then: float  # OI (base) and close one window ago, and now
    oi_now: float
    price_then: float
    price_now: float
    volume_window: float  # volume over the window and the trailing per-bar median
    volume_base: float
    funding_rate: float
    funding_interval_h: float


class Ring:
    """The last `size` values of a series, NaN before they exist; `ago(0)` is the newest."""

    __slots__ = ("buf", "pos", "size")

    def __init__(self, size: int, tail: FloatArray | None = None) -> None:
        self.size = max(1, size)
        self.buf = np.full(self.size, np.nan)
        self.pos = 0  # the next write goes here (it holds the oldest value)
        if tail is not None and len(tail):
            part = np.asarray(tail[-self.size :], dtype=np.float64)
            self.buf[self.size - len(part) :] = part

    def push(self, x: float) -> None:
        self.buf[self.pos] = x
        self.pos = (self.pos + 1) % self.size

    def ago(self, k: int) -> float:
        """The value pushed `k` pushes before the newest (NaN beyond the ring)."""
        if k >= self.size:
            return NAN
        return float(self.buf[(self.pos - 1 - k) % self.size])

    def window_sum(self) -> float:
        """Sum of the whole ring; NaN if any value is missing (as `rolling_sum`)."""
        return float(np.sum(self.buf))

    def median(self, min_periods: int) -> float:
        """Median of the known values if there are at least `min_periods` (as
        `trailing_median`, whose window is this ring before the current bar is pushed)."""
        known = self.buf[~np.isnan(self.buf)]
        return float(np.median(known)) if len(known) >= min_periods else NAN


@dataclass(slots=True)
class LiveState:
    """Everything `step` needs about the past of one (venue, symbol) series."""

    params: EngineParams
    bar_ms: int
    window: int
    t: int  # bars stepped so far (the next bar's index in the batch grid)
    last_ts: int | None
    close: Ring
    oi: Ring
    volume: Ring
    valid: Ring
    liq_long: Ring
    liq_short: Ring
    short_w_hist: Ring  # short liquidations per window, for the squeeze baseline
    volume_hist: Ring
    abs_oi_hist: Ring  # |OI %| and |price %| per bar, for adaptive thresholds
    abs_px_hist: Ring
    last: BarResult | None = None


def _sizes(params: EngineParams, bar_ms: int) -> tuple[int, int, int, int, int]:
    """(window, history ring, context lookback, adaptive lookback, min history) in bars."""
    w = REFERENCE_BARS - 1 if params.reference else window_bars(params.window_ms, bar_ms)
    strong = max(1, params.strong_within_ms // bar_ms)
    return (
        w,
        max(w, strong) + 1,
        max(2, params.context_lookback_ms // bar_ms),
        max(2, params.adaptive_lookback_ms // bar_ms),
        max(2, params.min_history_ms // bar_ms),
    )


def new_state(params: EngineParams, bar_ms: int) -> LiveState:
    """A state with no history (the first stepped bar is the grid's first)."""
    return seed(Grid(bar_ms, np.empty(0, np.int64), *([np.empty(0)] * 7)), params)


def seed(grid: Grid, params: EngineParams) -> LiveState:
    """The state after every bar of `grid`, built with the batch functions."""
    bar = grid.bar_ms
    if params.reference and bar != 5 * MINUTE_MS:
        raise UserError(f"reference mode needs 5m data; this series has {interval_name(bar)} bars")
    w, hist, ctx, adaptive, _ = _sizes(params, bar)
    short_w = rolling_sum(grid.liq_short_usd, w)
    valid = grid.valid.astype(np.float64)
    return LiveState(
        params=params,
        bar_ms=bar,
        window=w,
        t=len(grid.ts),
        last_ts=int(grid.ts[-1]) if len(grid.ts) else None,
        close=Ring(hist, grid.close),
        oi=Ring(hist, grid.oi),
        volume=Ring(w, grid.volume),
        valid=Ring(w + 1, valid),
        liq_long=Ring(w, grid.liq_long_usd),
        liq_short=Ring(w, grid.liq_short_usd),
        short_w_hist=Ring(ctx, short_w),
        volume_hist=Ring(ctx, grid.volume),
        # Fixed thresholds never read these: one slot instead of a week of bars (memory).
        abs_oi_hist=Ring(
            adaptive if params.adaptive else 1,
            np.abs(pct_change(grid.oi, w)) if params.adaptive else None,
        ),
        abs_px_hist=Ring(
            adaptive if params.adaptive else 1,
            np.abs(pct_change(grid.close, w)) if params.adaptive else None,
        ),
    )


def _pct(now: float, then: float) -> float:
    if not (then > 0) or math.isnan(now):
        return NAN
    return (now / then - 1.0) * 100.0


def _threshold(hist: Ring, fixed: float, params: EngineParams, min_hist: int) -> float:
    if not params.adaptive:
        return fixed
    spread = ROBUST_SIGMA * hist.median(min_hist)
    thr = max(params.adaptive_k * spread, params.adaptive_floor_frac * fixed)
    return fixed if math.isnan(spread) else thr


def missing(ts_ms: int) -> Bar:
    """A bar with no data (a hole in the grid)."""
    return Bar(ts_ms, NAN, NAN, NAN, NAN, NAN)


def step(state: LiveState, bar: Bar) -> BarResult:
    """Add the next closed bar (skipped bars before it are stepped as missing)."""
    if state.last_ts is not None:
        if bar.ts_ms <= state.last_ts:
            raise ValueError(f"bar {bar.ts_ms} is not after the last stepped bar {state.last_ts}")
        for ts in range(state.last_ts + state.bar_ms, bar.ts_ms, state.bar_ms):
            _step(state, missing(ts))
    return _step(state, bar)


def _step(state: LiveState, bar: Bar) -> BarResult:
    p, w, t = state.params, state.window, state.t
    _, _, _, _, min_hist = _sizes(p, state.bar_ms)
    state.close.push(bar.close)
    state.oi.push(bar.oi)
    state.volume.push(bar.volume)
    state.liq_long.push(bar.liq_long_usd)
    state.liq_short.push(bar.liq_short_usd)
    valid = not (math.isnan(bar.close) or math.isnan(bar.oi))
    state.valid.push(1.0 if valid else 0.0)

    oi_then, px_then = state.oi.ago(w), state.close.ago(w)
    oi_pct, px_pct = _pct(bar.oi, oi_then), _pct(bar.close, px_then)
    gap = t < w or bool(np.any(state.valid.buf == 0.0))
    if p.reference:
        oi_thr, px_thr = REFERENCE_OI_PCT, REFERENCE_PRICE_PCT
        regime = Regime(int(classify_reference(np.array([oi_pct]), np.array([px_pct]))[0]))
    else:
        oi_thr = _threshold(state.abs_oi_hist, p.oi_threshold_pct, p, min_hist)
        px_thr = _threshold(state.abs_px_hist, p.price_threshold_pct, p, min_hist)
        code = classify(np.array([oi_pct]), np.array([px_pct]), oi_thr, px_thr)[0]
        regime = Regime(int(code))
    if p.adaptive:
        state.abs_oi_hist.push(abs(oi_pct))
        state.abs_px_hist.push(abs(px_pct))

    strong = False
    if regime is Regime.SHORT_COVERING:
        for v in range(1, max(1, p.strong_within_ms // state.bar_ms) + 1):
            o_v = _pct(bar.oi, state.oi.ago(v))
            x_v = _pct(bar.close, state.close.ago(v))
            strong |= o_v <= -p.strong_oi_drop_pct and x_v > 0

    full = t >= w - 1
    short_w = state.liq_short.window_sum() if full else NAN
    long_w = state.liq_long.window_sum() if full else NAN
    base = state.short_w_hist.median(min_hist)
    state.short_w_hist.push(short_w)
    oi_usd = bar.oi * bar.close
    spike = bool(squeeze_spike(short_w, long_w, base, oi_usd, p))
    unknown = math.isnan(short_w) or math.isnan(base) or p.reference
    squeeze = NAN if unknown else float(spike)
    if regime is Regime.SHORT_COVERING and squeeze == 1.0:
        regime = Regime.SHORT_SQUEEZE

    vol_base = state.volume_hist.median(min_hist)
    state.volume_hist.push(bar.volume)
    state.t += 1
    state.last_ts = bar.ts_ms
    result = BarResult(
        ts_ms=bar.ts_ms,
        regime=regime,
        oi_pct=oi_pct,
        price_pct=px_pct,
        oi_threshold=oi_thr,
        price_threshold=px_thr,
        strong=strong,
        squeeze=squeeze,
        gap=gap,
        short_liq_usd=short_w,
        long_liq_usd=long_w,
        oi_then=oi_then,
        oi_now=bar.oi,
        price_then=px_then,
        price_now=bar.close,
        volume_window=float(np.nansum(state.volume.buf)),
        volume_base=vol_base,
        funding_rate=bar.funding_rate,
        funding_interval_h=bar.funding_interval_h,
    )
    state.last = result
    return result


def bar_at(grid: Grid, i: int) -> Bar:
    """Row `i` of a grid as a bar."""
    return Bar(
        int(grid.ts[i]),
        float(grid.close[i]),
        float(grid.volume[i]),
        float(grid.oi[i]),
        float(grid.liq_long_usd[i]),
        float(grid.liq_short_usd[i]),
        float(grid.funding_rate[i]),
        float(grid.funding_interval_h[i]),
    )


def grid_bars(grid: Grid) -> list[Bar]:
    """The grid's rows as bars (to step a stored range)."""
    return [bar_at(grid, i) for i in range(len(grid.ts))]


def provisional_squeeze(state: LiveState, pending: list[list[float]]) -> tuple[float, float] | None:
    """The squeeze rule on a window that ends in bars not stepped yet, as their liquidations
    stream in: `pending` holds [long USD, short USD] so far for each bar after the last
    stepped one, the running bar last. Returns the window's (short, long) totals when the
    rule holds, else None (also when anything it needs is unknown)."""
    p, w = state.params, state.window
    if p.reference or not pending or state.t < w:
        return None
    recent = pending[-w:]
    closed = w - len(recent)
    short_w = sum(b[1] for b in recent) + sum(state.liq_short.ago(k) for k in range(closed))
    long_w = sum(b[0] for b in recent) + sum(state.liq_long.ago(k) for k in range(closed))
    base = state.short_w_hist.median(_sizes(p, state.bar_ms)[4])
    oi_usd = state.oi.ago(0) * state.close.ago(0)
    if math.isnan(short_w) or math.isnan(long_w) or math.isnan(base) or math.isnan(oi_usd):
        return None
    return (short_w, long_w) if squeeze_spike(short_w, long_w, base, oi_usd, p) else None
