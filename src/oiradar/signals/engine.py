"""The regime engine: a MarketSeries in, a bar timeline and merged events out. Pure.

Every bar is read over several horizons at once (docs/concepts.md#horizons); the rules that
pick one regime from them and decide a squeeze live in `signals.rules`, shared with the live
engine (`signals.live`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from oiradar.records import MarketSeries
from oiradar.signals import rules
from oiradar.signals.context import breakout, confidence, session_of
from oiradar.signals.horizons import (
    REFERENCE_BAR_MS,
    Horizons,
    bands,
    horizons,
    liq_window_bars,
    lookbacks,
    window_bars,
)
from oiradar.signals.params import EngineParams, Evidence
from oiradar.signals.reading import MarketReading, reading_at
from oiradar.signals.regimes import COVERING, REFERENCE_BARS, Regime
from oiradar.signals.timeline import Timeline
from oiradar.signals.windows import (
    Grid,
    build_grid,
    gap_in_window,
    pct_change,
    rolling_sum,
    trailing_median,
)
from oiradar.units import DAY_MS, interval_name

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
_EVENT_REGIMES = tuple(
    r
    for r in Regime
    if r not in (Regime.NO_DATA, Regime.NEUTRAL, Regime.NONE, Regime.SHORT_SQUEEZE)
)

__all__ = ["Event", "Timeline", "event_spans", "events", "grid_timeline", "timeline", "window_bars"]


@dataclass(frozen=True, slots=True)
class Event:
    """Bars of one regime, one episode. Times in ms UTC; `start` is the first bar's open.

    `first` is the reading at the first bar: when it fired (`signal_ms`, its close), over
    which horizon, with which funding; `horizons_ms` every horizon that read the regime
    during the event. The context (None = unknown) is the first bar's too: price above the
    prior 24 h's highest close before the move, all accounts' long/short ratio, the premium
    index (a fraction)."""

    regime: Regime
    first: MarketReading
    end_ms: int
    bars: int
    oi_change_pct: float
    price_change_pct: float
    largest_oi_drop_pct: float
    peak_price_gain_pct: float
    tier: str | None
    confidence: int
    short_liq_usd: float | None
    long_liq_usd: float | None
    squeeze: bool | None
    volume_ratio: float | None
    session: str
    weekend: bool
    data_gap: bool
    horizons_ms: tuple[int, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    first_index: int = 0
    breakout: bool | None = None
    ls_account: float | None = None
    premium: float | None = None

    @property
    def start_ms(self) -> int:
        return self.first.ts_ms

    @property
    def signal_ms(self) -> int:
        return self.first.ts_ms + self.first.bar_ms

    @property
    def horizon_ms(self) -> int:
        return self.first.horizon_ms

    @property
    def funding_rate(self) -> float | None:
        return self.first.funding_rate

    @property
    def funding_interval_h(self) -> float | None:
        return self.first.funding_interval_h

    @property
    def funding_rate_8h(self) -> float | None:
        return self.first.funding_8h

    @property
    def more_to_come(self) -> bool | None:
        return self.first.more_to_come


class _Changes:
    """% changes of OI and price by window length, computed once per timeline."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self._cache: dict[int, tuple[FloatArray, FloatArray]] = {}

    def __call__(self, bars: int) -> tuple[FloatArray, FloatArray]:
        if bars not in self._cache:
            self._cache[bars] = (pct_change(self.grid.oi, bars), pct_change(self.grid.close, bars))
        return self._cache[bars]


def _bands(change: FloatArray, fixed: float, params: EngineParams, bar_ms: int) -> FloatArray:
    """The band at every bar; the trailing spread is only computed when bands adapt."""
    if not rules.adapts(params):
        return rules.band(np.full(change.shape, np.nan), fixed, params)
    lb = lookbacks(params, bar_ms)
    return rules.band(trailing_median(np.abs(change), lb.adaptive, lb.min_history), fixed, params)


def timeline(series: MarketSeries, params: EngineParams) -> Timeline:
    return grid_timeline(build_grid(series), params)


def grid_timeline(grid: Grid, params: EngineParams) -> Timeline:
    """The timeline of an aligned grid (what `live.step` reproduces one bar at a time)."""
    bar = grid.bar_ms
    hz = horizons(params, bar)
    n, n_h = len(grid.ts), len(hz.bars)
    changes_of = _Changes(grid)
    oi_h, px_h = np.empty((n_h, n)), np.empty((n_h, n))
    oi_band, px_band = np.empty((n_h, n)), np.empty((n_h, n))
    gap_h = np.empty((n_h, n), dtype=np.bool_)
    valid = grid.valid
    for k, w in enumerate(hz.bars):
        oi_h[k], px_h[k] = changes_of(w)
        gap_h[k] = gap_in_window(valid, w)
        fixed_oi, fixed_px = bands(params, w * bar)
        oi_band[k] = _bands(oi_h[k], fixed_oi, params, bar)
        px_band[k] = _bands(px_h[k], fixed_px, params, bar)
    regime_h, regime, reading, fired = rules.read(oi_h, px_h, oi_band, px_band, params.reference)
    cols = np.arange(n)

    def pick(rows: NDArray[np.generic]) -> NDArray[np.generic]:
        return rows[reading, cols]

    oi_pct, price_pct = pick(oi_h).astype(np.float64), pick(px_h).astype(np.float64)
    lag = np.asarray(hz.bars, dtype=np.intp)[reading]
    back = cols - lag
    has = back >= 0
    oi_then = np.where(has, grid.oi[np.clip(back, 0, None)], np.nan)
    price_then = np.where(has, grid.close[np.clip(back, 0, None)], np.nan)
    covering = regime == Regime.SHORT_COVERING
    strong = np.asarray(rules.strong(changes_of, params, bar), dtype=np.bool_) & covering

    short_w, long_w, squeeze, evidence = _squeeze(grid, params, hz, reading, oi_then)
    regime = rules.upgrade(regime, squeeze)

    changes = {}
    if bar == REFERENCE_BAR_MS:
        changes["ref10"] = changes_of(REFERENCE_BARS - 1)
    for wms in params.report_windows_ms:
        if wms % bar == 0:
            changes[interval_name(wms)] = changes_of(wms // bar)
    return Timeline(
        grid=grid,
        horizons=hz,
        oi_h=oi_h,
        price_h=px_h,
        oi_band_h=oi_band,
        price_band_h=px_band,
        regime_h=regime_h,
        regime=regime.astype(np.int8),
        reading=reading,
        fired=fired,
        oi_pct=oi_pct,
        price_pct=price_pct,
        oi_threshold=pick(oi_band).astype(np.float64),
        price_threshold=pick(px_band).astype(np.float64),
        oi_then=oi_then,
        price_then=price_then,
        strong=strong,
        squeeze=squeeze,
        evidence=evidence,
        gap=pick(gap_h).astype(np.bool_),
        short_liq_usd=short_w,
        long_liq_usd=long_w,
        changes=changes,
    )


def _squeeze(
    grid: Grid,
    params: EngineParams,
    hz: Horizons,
    reading: NDArray[np.intp],
    oi_then: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray, NDArray[np.int64]]:
    """(short and long liquidations over the burst window, squeeze 1/0/NaN, evidence bits)."""
    bar, n = grid.bar_ms, len(grid.ts)
    wl = liq_window_bars(params, bar)
    short_w = rolling_sum(grid.liq_short_usd, wl)
    long_w = rolling_sum(grid.liq_long_usd, wl)
    terms = rules.evidence_terms(params)
    base = np.full(n, np.nan)
    if Evidence.LIQUIDATIONS in terms and not np.all(np.isnan(short_w)):
        lb = lookbacks(params, bar)
        base = trailing_median(short_w, lb.context, lb.min_history)
    net = np.full(n, np.nan)
    if Evidence.TAKER in terms and grid.taker_buy is not None:
        net_bar = 2.0 * grid.taker_buy - grid.volume
        for k, w in enumerate(hz.bars):  # over the horizon each bar was read over
            sel = reading == k
            net[sel] = rolling_sum(net_bar, w)[sel]
    inputs = rules.SqueezeInputs(
        short_liq_usd=short_w,
        long_liq_usd=long_w,
        short_liq_base=base,
        oi_usd=grid.oi * grid.close,
        net_taker_buy=net,
        oi_drop=oi_then - grid.oi,
        premium=grid.row("premium"),
        funding_rate=grid.funding_rate,
        ls_account=grid.row("ls_account"),
    )
    squeeze, bits = rules.squeeze(inputs, params)
    return short_w, long_w, squeeze, bits


def _runs(mask: BoolArray, merge_gap: int) -> list[tuple[int, int]]:
    """Start and end (inclusive) indices of runs of True, joining runs separated by fewer than
    `merge_gap` bars (one episode seen through horizons that flicker on and off)."""
    d = np.diff(mask.astype(np.int8), prepend=0, append=0)
    out: list[tuple[int, int]] = []
    for s, e in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1, strict=True):
        if out and s - out[-1][1] - 1 < merge_gap:
            out[-1] = (out[-1][0], int(e))
        else:
            out.append((int(s), int(e)))
    return out


def _opt(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _at(row: FloatArray | None, i: int) -> float | None:
    """Bar `i` of an optional grid row (None when the series has no such row)."""
    return None if row is None else _opt(float(row[i]))


def _event_masks(tl: Timeline, regimes: tuple[Regime, ...] | None) -> dict[Regime, BoolArray]:
    """The bars of each wanted regime (covering counts its squeeze bars too)."""
    wanted = tuple(dict.fromkeys(regimes or (Regime.SHORT_COVERING,)))
    return {
        Regime(r): np.isin(tl.regime, COVERING) if r == Regime.SHORT_COVERING else tl.regime == r
        for r in wanted
        if r in _EVENT_REGIMES
    }


def event_spans(
    tl: Timeline, regimes: tuple[Regime, ...] | None = None
) -> list[tuple[Regime, int, int]]:
    """(regime, first bar, last bar) of every event `events` would build, by first bar: what
    a sweep needs to enter trades, without building the events' readings."""
    return _spans(_event_masks(tl, regimes), tl.horizons.longest)


def _spans(masks: dict[Regime, BoolArray], merge_gap: int) -> list[tuple[Regime, int, int]]:
    out = [(regime, s, e) for regime, mask in masks.items() for s, e in _runs(mask, merge_gap)]
    out.sort(key=lambda span: span[1])
    return out


def events(
    tl: Timeline, params: EngineParams, regimes: tuple[Regime, ...] | None = None
) -> list[Event]:
    """Merge the bars of each regime into events (covering and squeeze bars together); runs
    closer than the longest horizon are one episode."""
    grid = tl.grid
    masks = _event_masks(tl, regimes)
    lb = lookbacks(params, grid.bar_ms)
    vol_base = trailing_median(grid.volume, lb.context, lb.min_history)
    return [
        _event(tl, params, regime, s, e, masks[regime], vol_base)
        for regime, s, e in _spans(masks, tl.horizons.longest)
    ]


def _event(
    tl: Timeline,
    params: EngineParams,
    regime: Regime,
    s: int,
    e: int,
    mask: BoolArray,
    vol_base: FloatArray,
) -> Event:
    grid = tl.grid
    first = reading_at(tl, s, params, vol_base=float(vol_base[s]))
    w = tl.reading_bars(s)
    b = max(0, s - w)
    seg = slice(s, e + 1)
    in_event = mask[seg]
    covering = regime == Regime.SHORT_COVERING
    oi_seg, px_seg = tl.oi_pct[seg][in_event], tl.price_pct[seg][in_event]
    largest_drop = float(np.nanmin(oi_seg)) if covering else float(np.nanmax(np.abs(oi_seg)))
    peak_gain = float(np.nanmax(px_seg)) if covering else float(np.nanmax(np.abs(px_seg)))
    span = slice(max(0, s - w + 1), e + 1)  # the first bar's horizon through the last bar
    short = float(np.sum(grid.liq_short_usd[span]))
    long_ = float(np.sum(grid.liq_long_usd[span]))
    sq_vals = tl.squeeze[seg][in_event]
    squeeze = None if np.all(np.isnan(sq_vals)) else bool(np.nanmax(sq_vals) == 1.0)
    upgraded = in_event & (tl.regime[seg] == Regime.SHORT_SQUEEZE)
    ev_bits = int(np.bitwise_or.reduce(tl.evidence[seg][upgraded])) if upgraded.any() else 0
    fired = int(np.bitwise_or.reduce(tl.fired[seg][in_event]))
    volume = float(np.nansum(grid.volume[span]))
    volume_ratio = rules.volume_ratio(volume, float(vol_base[s]), span.stop - span.start)
    session, weekend = session_of(first.ts_ms)
    data_gap = bool(np.any(tl.gap[seg][in_event]))
    conf = confidence(
        oi_drop_pct=largest_drop,
        oi_threshold_pct=first.oi_threshold,
        price_gain_pct=peak_gain,
        price_threshold_pct=first.price_threshold,
        funding_8h=first.funding_8h,
        more_to_come=rules.more_to_come(first.funding_8h, params),
        volume_ratio=volume_ratio,
        session=session,
        weekend=weekend,
        data_gap=data_gap,
        use_funding=covering,
    )
    return Event(
        regime=Regime.SHORT_SQUEEZE if covering and squeeze else regime,
        first=first,
        end_ms=int(grid.ts[e]) + grid.bar_ms,
        bars=e - s + 1,
        oi_change_pct=float(rules.pct(grid.oi[e], grid.oi[b])),
        price_change_pct=float(rules.pct(grid.close[e], grid.close[b])),
        largest_oi_drop_pct=largest_drop,
        peak_price_gain_pct=peak_gain,
        tier=("strong" if bool(np.any(tl.strong[seg])) else "normal") if covering else None,
        confidence=conf,
        short_liq_usd=short if np.isfinite(short) else None,
        long_liq_usd=long_ if np.isfinite(long_) else None,
        squeeze=squeeze if covering else None,
        volume_ratio=volume_ratio,
        session=session,
        weekend=weekend,
        data_gap=data_gap,
        horizons_ms=tuple(m for k, m in enumerate(tl.horizons.ms) if fired >> k & 1),
        evidence=rules.evidence_names(ev_bits),
        first_index=s,
        breakout=breakout(grid.close, s, w, max(1, DAY_MS // grid.bar_ms)),
        ls_account=_at(grid.ls_account, s),
        premium=_at(grid.premium, s),
    )
