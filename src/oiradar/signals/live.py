"""The regime engine one bar at a time, for `oiradar watch`. Pure, no I/O.

`seed(grid, params)` turns a history grid into a `LiveState` (vectorized, with the batch
functions); `step(state, bar)` adds one closed bar and returns its `MarketReading`, the one
`reading.reading_at` takes from `engine.timeline()` over the whole history, in O(lookback)
instead of O(history), with the same rules (`signals.rules`). A property test holds the two
equal bar for bar, field for field. Bars must come in order; a skipped bar is stepped as
missing (NaN), exactly as the batch grid holds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from oiradar.signals import rules
from oiradar.signals.horizons import (
    Horizons,
    bands,
    horizons,
    liq_window_bars,
    lookbacks,
    strong_bars,
)
from oiradar.signals.params import EngineParams, Evidence
from oiradar.signals.reading import MarketReading
from oiradar.signals.regimes import COVERING, Regime
from oiradar.signals.windows import (
    BASELINE_DTYPE,
    Grid,
    median_known,
    pct_change,
    rolling_sum,
)
from oiradar.units import funding_8h

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
    taker_buy: float = NAN
    premium: float = NAN
    ls_account: float = NAN


class Ring:
    """The last `size` values of a series, NaN before they exist; `ago(0)` is the newest."""

    __slots__ = ("buf", "pos", "size")

    def __init__(
        self, size: int, tail: FloatArray | None = None, dtype: type[np.floating[Any]] = np.float64
    ) -> None:
        self.size = max(1, size)
        self.buf: NDArray[np.floating[Any]] = np.full(self.size, np.nan, dtype=dtype)
        self.pos = 0  # the next write goes here (it holds the oldest value)
        if tail is not None and len(tail):
            part = np.asarray(tail[-self.size :], dtype=dtype)
            self.buf[self.size - len(part) :] = part

    def push(self, x: float) -> None:
        self.buf[self.pos] = x
        self.pos = (self.pos + 1) % self.size

    def ago(self, k: int) -> float:
        """The value pushed `k` pushes before the newest (NaN beyond the ring)."""
        if k >= self.size:
            return NAN
        return float(self.buf[(self.pos - 1 - k) % self.size])

    def last(self, k: int) -> NDArray[np.floating[Any]]:
        """The newest `k` values (any order); NaN where the ring holds fewer."""
        if k >= self.size:
            return self.buf
        idx = (self.pos - 1 - np.arange(k)) % self.size
        return self.buf[idx]

    def window_sum(self, k: int | None = None) -> float:
        """Sum of the newest `k` values (all by default); NaN if any is missing, as
        `rolling_sum`."""
        return float(np.sum(self.buf if k is None else self.last(k)))

    def median(self, min_periods: int) -> float:
        """Median of the known values if there are at least `min_periods` (as
        `trailing_median`, whose window is this ring before the current bar is pushed; a
        ring that only feeds medians holds `BASELINE_DTYPE` values, as that reads them)."""
        return median_known(self.buf, min_periods)


@dataclass(slots=True)
class LiveState:
    """Everything `step` needs about the past of one (venue, symbol) series."""

    params: EngineParams
    bar_ms: int
    horizons: Horizons
    liq_window: int
    t: int  # bars stepped so far (the next bar's index in the batch grid)
    last_ts: int | None
    close: Ring
    oi: Ring
    volume: Ring
    net_taker: Ring  # 2 x taker buy - volume per bar (base)
    valid: Ring
    liq_long: Ring
    liq_short: Ring
    short_w_hist: Ring  # short liquidations per burst window, for the squeeze baseline
    volume_hist: Ring
    abs_oi_hist: list[Ring]  # |OI %| and |price %| per horizon, for adaptive thresholds
    abs_px_hist: list[Ring]
    last: MarketReading | None = None

    @property
    def window(self) -> int:
        """The longest horizon in bars (the span a reading can look back)."""
        return self.horizons.longest


def new_state(params: EngineParams, bar_ms: int) -> LiveState:
    """A state with no history (the first stepped bar is the grid's first)."""
    return seed(Grid(bar_ms, np.empty(0, np.int64), *([np.empty(0)] * 7)), params)


def seed(grid: Grid, params: EngineParams) -> LiveState:
    """The state after every bar of `grid`, built with the batch functions."""
    bar = grid.bar_ms
    hz = horizons(params, bar)
    wl = liq_window_bars(params, bar)
    lb = lookbacks(params, bar)
    hist = max(hz.longest, strong_bars(params, bar)) + 1
    short_w = rolling_sum(grid.liq_short_usd, wl)
    valid = grid.valid.astype(np.float64)

    def abs_hist(i: int) -> list[Ring]:
        # Fixed thresholds never read these: one slot instead of a week of bars (memory).
        if not rules.adapts(params):
            return [Ring(1, dtype=BASELINE_DTYPE) for _ in hz.bars]
        x = grid.oi if i == 0 else grid.close
        return [Ring(lb.adaptive, np.abs(pct_change(x, w)), BASELINE_DTYPE) for w in hz.bars]

    return LiveState(
        params=params,
        bar_ms=bar,
        horizons=hz,
        liq_window=wl,
        t=len(grid.ts),
        last_ts=int(grid.ts[-1]) if len(grid.ts) else None,
        close=Ring(hist, grid.close),
        oi=Ring(hist, grid.oi),
        volume=Ring(hz.longest, grid.volume),
        net_taker=Ring(hz.longest, 2.0 * grid.row("taker_buy") - grid.volume),
        valid=Ring(hz.longest + 1, valid),
        liq_long=Ring(wl, grid.liq_long_usd),
        liq_short=Ring(wl, grid.liq_short_usd),
        short_w_hist=Ring(lb.context, short_w, BASELINE_DTYPE),
        volume_hist=Ring(lb.context, grid.volume, BASELINE_DTYPE),
        abs_oi_hist=abs_hist(0),
        abs_px_hist=abs_hist(1),
    )


def missing(ts_ms: int) -> Bar:
    """A bar with no data (a hole in the grid)."""
    return Bar(ts_ms, NAN, NAN, NAN, NAN, NAN)


def step(state: LiveState, bar: Bar) -> MarketReading:
    """Add the next closed bar (skipped bars before it are stepped as missing)."""
    if state.last_ts is not None:
        if bar.ts_ms <= state.last_ts:
            raise ValueError(f"bar {bar.ts_ms} is not after the last stepped bar {state.last_ts}")
        for ts in range(state.last_ts + state.bar_ms, bar.ts_ms, state.bar_ms):
            _step(state, missing(ts))
    return _step(state, bar)


def _readings(
    state: LiveState, bar: Bar
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, list[bool]]:
    """Per horizon: OI %, price %, their bands and the gap flag."""
    p, hz, t = state.params, state.horizons, state.t
    min_hist = lookbacks(p, state.bar_ms).min_history
    n_h = len(hz.bars)
    oi_h, px_h = np.empty(n_h), np.empty(n_h)
    oi_band, px_band = np.empty(n_h), np.empty(n_h)
    gaps = []
    valid_recent = state.valid.buf
    for k, w in enumerate(hz.bars):
        oi_h[k] = rules.pct(bar.oi, state.oi.ago(w))
        px_h[k] = rules.pct(bar.close, state.close.ago(w))
        fixed_oi, fixed_px = bands(p, w * state.bar_ms)
        oi_band[k] = rules.band(state.abs_oi_hist[k].median(min_hist), fixed_oi, p)
        px_band[k] = rules.band(state.abs_px_hist[k].median(min_hist), fixed_px, p)
        seen = valid_recent if w + 1 >= state.valid.size else state.valid.last(w + 1)
        gaps.append(t < w or bool(np.any(seen == 0.0)))
    if rules.adapts(p):
        for k in range(n_h):
            state.abs_oi_hist[k].push(abs(oi_h[k]))
            state.abs_px_hist[k].push(abs(px_h[k]))
    return oi_h, px_h, oi_band, px_band, gaps


def push_bar(state: LiveState, bar: Bar) -> None:
    """The bar's own values into the rings, first thing of a step."""
    state.close.push(bar.close)
    state.oi.push(bar.oi)
    state.volume.push(bar.volume)
    state.net_taker.push(2.0 * bar.taker_buy - bar.volume)
    state.liq_long.push(bar.liq_long_usd)
    state.liq_short.push(bar.liq_short_usd)
    valid = not (math.isnan(bar.close) or math.isnan(bar.oi))
    state.valid.push(1.0 if valid else 0.0)


def _step(state: LiveState, bar: Bar) -> MarketReading:
    p, hz, t = state.params, state.horizons, state.t
    min_hist = lookbacks(p, state.bar_ms).min_history
    push_bar(state, bar)
    oi_h, px_h, oi_band, px_band, gaps = _readings(state, bar)
    _, codes, picks, masks = rules.read(
        oi_h[:, None], px_h[:, None], oi_band[:, None], px_band[:, None], p.reference
    )
    regime, k, fired = Regime(int(codes[0])), int(picks[0]), int(masks[0])
    w = hz.bars[k]

    strong = regime is Regime.SHORT_COVERING and bool(
        rules.strong(
            lambda v: (
                rules.pct(bar.oi, state.oi.ago(v)),
                rules.pct(bar.close, state.close.ago(v)),
            ),
            p,
            state.bar_ms,
        )
    )

    full = t >= state.liq_window - 1
    short_w = state.liq_short.window_sum() if full else NAN
    long_w = state.liq_long.window_sum() if full else NAN
    base = state.short_w_hist.median(min_hist)
    state.short_w_hist.push(short_w)
    oi_then = state.oi.ago(w)
    inputs = rules.SqueezeInputs(
        short_liq_usd=short_w,
        long_liq_usd=long_w,
        short_liq_base=base,
        oi_usd=bar.oi * bar.close,
        net_taker_buy=state.net_taker.window_sum(w) if t >= w - 1 else NAN,
        oi_drop=oi_then - bar.oi,
        premium=bar.premium,
        funding_rate=bar.funding_rate,
        ls_account=bar.ls_account,
    )
    squeeze, bits = rules.squeeze(inputs, p)
    regime = rules.upgrade(regime, squeeze)

    vol_base = state.volume_hist.median(min_hist)
    state.volume_hist.push(bar.volume)
    state.t += 1
    state.last_ts = bar.ts_ms
    reading = make_reading(
        state, bar, k, regime, (fired, strong), (squeeze, int(bits)),
        (oi_h, px_h, oi_band, px_band), gaps[k], (short_w, long_w, vol_base),
    )  # fmt: skip
    state.last = reading
    return reading


def make_reading(
    state: LiveState,
    bar: Bar,
    k: int,
    regime: Regime,
    fired_strong: tuple[int, bool],
    squeeze: tuple[float, int],
    per_horizon: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    gap: bool,
    sums: tuple[float, float, float],
) -> MarketReading:
    """The reading of `bar` at horizon `k`, once `state` has stepped past it: `per_horizon`
    holds OI %, price % and their bands per horizon, `squeeze` the flag and evidence bits,
    `sums` the burst-window short and long liquidations and the volume baseline."""
    p, hz = state.params, state.horizons
    w = hz.bars[k]
    fired, strong = fired_strong
    oi_h, px_h, oi_band, px_band = per_horizon
    short_w, long_w, vol_base = sums
    rate, ivl = _opt(bar.funding_rate), _opt(bar.funding_interval_h)
    return MarketReading(
        ts_ms=bar.ts_ms,
        bar_ms=state.bar_ms,
        regime=regime,
        horizons_ms=hz.ms,
        reading=k,
        fired_ms=tuple(m for j, m in enumerate(hz.ms) if fired >> j & 1),
        oi_pct=float(oi_h[k]),
        price_pct=float(px_h[k]),
        oi_threshold=float(oi_band[k]),
        price_threshold=float(px_band[k]),
        strong=strong,
        squeeze=squeeze[0],
        evidence=rules.evidence_names(squeeze[1]),
        gap=gap,
        short_liq_usd=short_w,
        long_liq_usd=long_w,
        oi_then=state.oi.ago(w),
        oi_now=bar.oi,
        price_then=state.close.ago(w),
        price_now=bar.close,
        volume_ratio=rules.volume_ratio(float(np.nansum(state.volume.last(w))), vol_base, w),
        funding_rate=rate,
        funding_interval_h=ivl,
        more_to_come=rules.more_to_come(funding_8h(rate, ivl), p) if regime in COVERING else None,
        changes=tuple((float(o), float(x)) for o, x in zip(oi_h, px_h, strict=True)),
        bands=tuple((float(o), float(x)) for o, x in zip(oi_band, px_band, strict=True)),
        oi_then_h=tuple(state.oi.ago(b) for b in hz.bars),
        oi_falling=bool(oi_h[0] < -oi_band[0]),
    )


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else x


def bar_at(grid: Grid, i: int) -> Bar:
    """Row `i` of a grid as a bar."""
    return _bars(grid, range(i, i + 1))[0]


def grid_bars(grid: Grid) -> list[Bar]:
    """The grid's rows as bars (to step a stored range)."""
    return _bars(grid, range(len(grid.ts)))


def _bars(grid: Grid, rows: range) -> list[Bar]:
    taker, premium, ratio = grid.row("taker_buy"), grid.row("premium"), grid.row("ls_account")
    return [
        Bar(
            int(grid.ts[i]),
            float(grid.close[i]),
            float(grid.volume[i]),
            float(grid.oi[i]),
            float(grid.liq_long_usd[i]),
            float(grid.liq_short_usd[i]),
            float(grid.funding_rate[i]),
            float(grid.funding_interval_h[i]),
            float(taker[i]),
            float(premium[i]),
            float(ratio[i]),
        )
        for i in rows
    ]


def provisional_squeeze(state: LiveState, pending: list[list[float]]) -> tuple[float, float] | None:
    """The liquidation rule on a burst window that ends in bars not stepped yet, as their
    liquidations stream in: `pending` holds [long USD, short USD] so far for each bar after
    the last stepped one, the running bar last. Returns the window's (short, long) totals
    when the rule holds, else None (also when anything it needs is unknown or liquidations
    are not squeeze evidence under these settings)."""
    p, wl = state.params, state.liq_window
    if Evidence.LIQUIDATIONS not in rules.evidence_terms(p) or not pending or state.t < wl:
        return None
    recent = pending[-wl:]
    closed = wl - len(recent)
    short_w = sum(b[1] for b in recent) + sum(state.liq_short.ago(k) for k in range(closed))
    long_w = sum(b[0] for b in recent) + sum(state.liq_long.ago(k) for k in range(closed))
    base = state.short_w_hist.median(lookbacks(p, state.bar_ms).min_history)
    oi_usd = state.oi.ago(0) * state.close.ago(0)
    if math.isnan(short_w) or math.isnan(long_w) or math.isnan(base) or math.isnan(oi_usd):
        return None
    return (short_w, long_w) if rules.squeeze_spike(short_w, long_w, base, oi_usd, p) else None
