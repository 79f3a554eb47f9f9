"""The regime engine one bar at a time, for `oiradar watch`. Pure, no I/O.

`seed(grid, params)` turns a history grid into a `LiveState` (vectorized, with the batch
functions); `step(state, bar)` adds one closed bar and returns what `engine.timeline()`
computes for that bar over the whole history, in O(lookback) instead of O(history), with
the same rules (`signals.rules`). A property test holds the two equal bar for bar and
horizon for horizon. Bars must come in order; a skipped bar is stepped as missing (NaN),
exactly as the batch grid holds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from oiradar.signals import rules
from oiradar.signals.engine import EVIDENCE_ORDER, liq_window_bars
from oiradar.signals.params import EngineParams, Evidence
from oiradar.signals.regimes import Regime
from oiradar.signals.rules import Horizons, horizons
from oiradar.signals.windows import Grid, pct_change, rolling_sum

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


@dataclass(frozen=True, slots=True)
class BarResult:
    """The engine's reading of one bar (percentages in %; `squeeze` NaN = unknown).

    `horizon_ms` is the horizon the regime was read over and the OI/price figures are its;
    `changes` holds (OI %, price %) for every horizon, shortest first."""

    ts_ms: int
    regime: Regime
    oi_pct: float
    price_pct: float
    oi_threshold: float
    price_threshold: float
    strong: bool
    squeeze: float
    gap: bool
    short_liq_usd: float  # over the burst window ending at this bar
    long_liq_usd: float
    oi_then: float  # OI (base) and close one reading window ago, and now
    oi_now: float
    price_then: float
    price_now: float
    volume_window: float  # volume over the reading window and the trailing per-bar median
    volume_base: float
    funding_rate: float
    funding_interval_h: float
    horizon_ms: int = 0
    reading: int = 0  # the index of `horizon_ms` among the horizons (shortest first)
    fired_ms: tuple[int, ...] = ()
    evidence: tuple[str, ...] = ()
    changes: tuple[tuple[float, float], ...] = ()
    oi_then_h: tuple[float, ...] = ()  # OI (base) one window ago, per horizon
    oi_falling: bool = False  # OI below its band over the shortest horizon (still closing)


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

    def last(self, k: int) -> FloatArray:
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
        `trailing_median`, whose window is this ring before the current bar is pushed)."""
        known = self.buf[~np.isnan(self.buf)]
        return float(np.median(known)) if len(known) >= min_periods else NAN


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
    last: BarResult | None = None

    @property
    def window(self) -> int:
        """The longest horizon in bars (the span a reading can look back)."""
        return self.horizons.longest


def _lookbacks(params: EngineParams, bar_ms: int) -> tuple[int, int, int]:
    """(context lookback, adaptive lookback, min history) in bars."""
    return (
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
    hz = horizons(params, bar)
    wl = liq_window_bars(params, bar)
    ctx, adaptive, _ = _lookbacks(params, bar)
    strong = max(1, params.strong_within_ms // bar)
    hist = max(hz.longest, strong) + 1
    short_w = rolling_sum(grid.liq_short_usd, wl)
    valid = grid.valid.astype(np.float64)

    def abs_hist(i: int) -> list[Ring]:
        # Fixed thresholds never read these: one slot instead of a week of bars (memory).
        if not params.adaptive:
            return [Ring(1) for _ in hz.bars]
        x = grid.oi if i == 0 else grid.close
        return [Ring(adaptive, np.abs(pct_change(x, w))) for w in hz.bars]

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
        short_w_hist=Ring(ctx, short_w),
        volume_hist=Ring(ctx, grid.volume),
        abs_oi_hist=abs_hist(0),
        abs_px_hist=abs_hist(1),
    )


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


def _threshold(hist: Ring, fixed: float, params: EngineParams, min_hist: int) -> float:
    if not params.adaptive or params.reference:
        return fixed
    return float(rules.adaptive_threshold(hist.median(min_hist), fixed, params))


def _readings(
    state: LiveState, bar: Bar
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, list[bool]]:
    """Per horizon: OI %, price %, their bands and the gap flag."""
    p, hz, t = state.params, state.horizons, state.t
    _, _, min_hist = _lookbacks(p, state.bar_ms)
    n_h = len(hz.bars)
    oi_h, px_h = np.empty(n_h), np.empty(n_h)
    oi_band, px_band = np.empty(n_h), np.empty(n_h)
    gaps = []
    valid_recent = state.valid.buf
    for k, w in enumerate(hz.bars):
        oi_h[k] = rules.pct(bar.oi, state.oi.ago(w))
        px_h[k] = rules.pct(bar.close, state.close.ago(w))
        fixed_oi, fixed_px = rules.bands(p, w * state.bar_ms)
        oi_band[k] = _threshold(state.abs_oi_hist[k], fixed_oi, p, min_hist)
        px_band[k] = _threshold(state.abs_px_hist[k], fixed_px, p, min_hist)
        seen = valid_recent if w + 1 >= state.valid.size else state.valid.last(w + 1)
        gaps.append(t < w or bool(np.any(seen == 0.0)))
    if p.adaptive:
        for k in range(n_h):
            state.abs_oi_hist[k].push(abs(oi_h[k]))
            state.abs_px_hist[k].push(abs(px_h[k]))
    return oi_h, px_h, oi_band, px_band, gaps


def _step(state: LiveState, bar: Bar) -> BarResult:
    p, hz, t = state.params, state.horizons, state.t
    _, _, min_hist = _lookbacks(p, state.bar_ms)
    state.close.push(bar.close)
    state.oi.push(bar.oi)
    state.volume.push(bar.volume)
    state.net_taker.push(2.0 * bar.taker_buy - bar.volume)
    state.liq_long.push(bar.liq_long_usd)
    state.liq_short.push(bar.liq_short_usd)
    valid = not (math.isnan(bar.close) or math.isnan(bar.oi))
    state.valid.push(1.0 if valid else 0.0)

    oi_h, px_h, oi_band, px_band, gaps = _readings(state, bar)
    _, codes, picks, masks = rules.read(
        oi_h[:, None], px_h[:, None], oi_band[:, None], px_band[:, None], p.reference
    )
    regime, k, fired = Regime(int(codes[0])), int(picks[0]), int(masks[0])
    w = hz.bars[k]

    strong = False
    if regime is Regime.SHORT_COVERING:
        for v in range(1, max(1, p.strong_within_ms // state.bar_ms) + 1):
            o_v = rules.pct(bar.oi, state.oi.ago(v))
            x_v = rules.pct(bar.close, state.close.ago(v))
            strong |= bool(rules.strong_covering(o_v, x_v, p))

    wl = state.liq_window
    full = t >= wl - 1
    short_w = state.liq_short.window_sum() if full else NAN
    long_w = state.liq_long.window_sum() if full else NAN
    base = state.short_w_hist.median(min_hist)
    state.short_w_hist.push(short_w)
    oi_then = state.oi.ago(w)
    squeeze, evidence = _squeeze(state, bar, short_w, long_w, base, oi_then, w)
    if regime is Regime.SHORT_COVERING and squeeze == 1.0:
        regime = Regime.SHORT_SQUEEZE

    vol_base = state.volume_hist.median(min_hist)
    state.volume_hist.push(bar.volume)
    state.t += 1
    state.last_ts = bar.ts_ms
    result = BarResult(
        ts_ms=bar.ts_ms,
        regime=regime,
        oi_pct=float(oi_h[k]),
        price_pct=float(px_h[k]),
        oi_threshold=float(oi_band[k]),
        price_threshold=float(px_band[k]),
        strong=strong,
        squeeze=squeeze,
        gap=gaps[k],
        short_liq_usd=short_w,
        long_liq_usd=long_w,
        oi_then=oi_then,
        oi_now=bar.oi,
        price_then=state.close.ago(w),
        price_now=bar.close,
        volume_window=float(np.nansum(state.volume.last(w))),
        volume_base=vol_base,
        funding_rate=bar.funding_rate,
        funding_interval_h=bar.funding_interval_h,
        horizon_ms=w * state.bar_ms,
        reading=k,
        fired_ms=tuple(m for j, m in enumerate(hz.ms) if fired >> j & 1),
        evidence=evidence,
        changes=tuple((float(o), float(x)) for o, x in zip(oi_h, px_h, strict=True)),
        oi_then_h=tuple(state.oi.ago(b) for b in hz.bars),
        oi_falling=bool(oi_h[0] < -oi_band[0]),
    )
    state.last = result
    return result


def _squeeze(
    state: LiveState,
    bar: Bar,
    short_w: float,
    long_w: float,
    base: float,
    oi_then: float,
    w: int,
) -> tuple[float, tuple[str, ...]]:
    """The squeeze flag (1/0/NaN) and the evidence that fired, as `engine._squeeze`."""
    p = state.params
    if p.reference:
        return NAN, ()
    terms: list[tuple[float, float]] = []
    fired: list[str] = []
    for ev in p.evidence:
        if ev is Evidence.LIQUIDATIONS:
            value = bool(rules.squeeze_spike(short_w, long_w, base, bar.oi * bar.close, p))
            known = not (math.isnan(short_w) or math.isnan(base))
        elif ev is Evidence.TAKER:
            net = state.net_taker.window_sum(w) if state.t >= w - 1 else NAN
            drop = oi_then - bar.oi
            value = bool(rules.taker_outruns(net, drop, p))
            known = not (math.isnan(net) or math.isnan(drop))
        elif ev is Evidence.PREMIUM:
            value = bool(rules.premium_flip(bar.premium, bar.funding_rate, p))
            known = not (math.isnan(bar.premium) or math.isnan(bar.funding_rate))
        else:
            value = bool(rules.crowded_shorts(bar.ls_account, p))
            known = not math.isnan(bar.ls_account)
        if value and known:
            fired.append(ev.value)
        terms.append((float(value), float(known)))
    if not terms:
        return NAN, ()
    order = [e.value for e in EVIDENCE_ORDER]
    return float(rules.any_known(terms)), tuple(sorted(fired, key=order.index))


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
    if p.reference or Evidence.LIQUIDATIONS not in p.evidence or not pending or state.t < wl:
        return None
    recent = pending[-wl:]
    closed = wl - len(recent)
    short_w = sum(b[1] for b in recent) + sum(state.liq_short.ago(k) for k in range(closed))
    long_w = sum(b[0] for b in recent) + sum(state.liq_long.ago(k) for k in range(closed))
    base = state.short_w_hist.median(_lookbacks(p, state.bar_ms)[2])
    oi_usd = state.oi.ago(0) * state.close.ago(0)
    if math.isnan(short_w) or math.isnan(long_w) or math.isnan(base) or math.isnan(oi_usd):
        return None
    return (short_w, long_w) if rules.squeeze_spike(short_w, long_w, base, oi_usd, p) else None
