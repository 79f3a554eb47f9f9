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
from oiradar.signals.context import confidence, session_of
from oiradar.signals.params import EngineParams, Evidence
from oiradar.signals.regimes import REFERENCE_BARS, Regime
from oiradar.signals.rules import Horizons, horizons, window_bars
from oiradar.signals.windows import (
    Grid,
    build_grid,
    gap_in_window,
    pct_change,
    rolling_sum,
    trailing_median,
)
from oiradar.units import DAY_MS, MINUTE_MS, funding_8h, interval_name

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
ROBUST_SIGMA = rules.ROBUST_SIGMA
EVIDENCE_ORDER = tuple(Evidence)
_EVENT_REGIMES = tuple(
    r
    for r in Regime
    if r not in (Regime.NO_DATA, Regime.NEUTRAL, Regime.NONE, Regime.SHORT_SQUEEZE)
)

__all__ = ["Event", "Timeline", "events", "grid_timeline", "timeline", "window_bars"]


@dataclass(frozen=True, slots=True)
class Timeline:
    """Per-bar output. Rows `*_h` hold one row per horizon (shortest first); the flat arrays
    are the reading the bar's regime came from. Percentages in %; `squeeze` NaN = unknown;
    `fired` and `evidence` are bitmasks over the horizons and over `EVIDENCE_ORDER`."""

    grid: Grid
    horizons: Horizons
    oi_h: FloatArray
    price_h: FloatArray
    oi_band_h: FloatArray
    price_band_h: FloatArray
    regime_h: NDArray[np.int8]
    regime: NDArray[np.int8]
    reading: NDArray[np.intp]
    fired: NDArray[np.int64]
    oi_pct: FloatArray
    price_pct: FloatArray
    oi_threshold: FloatArray
    price_threshold: FloatArray
    oi_then: FloatArray
    price_then: FloatArray
    strong: BoolArray
    squeeze: FloatArray
    evidence: NDArray[np.int64]
    gap: BoolArray
    short_liq_usd: FloatArray
    long_liq_usd: FloatArray
    changes: dict[str, tuple[FloatArray, FloatArray]]

    def reading_bars(self, i: int) -> int:
        """The length in bars of the horizon bar `i` was read over."""
        return self.horizons.bars[int(self.reading[i])]

    def horizon_names(self, mask: int) -> tuple[str, ...]:
        """The horizons of a `fired` bitmask, shortest first."""
        names = self.horizons.names()
        return tuple(names[k] for k in range(len(names)) if mask >> k & 1)


@dataclass(frozen=True, slots=True)
class Event:
    """Bars of one regime, one episode. Times in ms UTC; `start` is the first bar's open.

    `horizon_ms` is the horizon read at the first bar (the one that fired first);
    `horizons_ms` every horizon that read the regime during the event."""

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
    horizon_ms: int = 15 * MINUTE_MS
    horizons_ms: tuple[int, ...] = ()
    evidence: tuple[str, ...] = ()
    first_index: int = 0
    # Context at the first bar (None = unknown): price above the prior 24 h's highest close
    # before the move; all accounts' long/short ratio; the premium index (a fraction).
    breakout: bool | None = None
    ls_account: float | None = None
    premium: float | None = None


class _Changes:
    """% changes of OI and price by window length, computed once per timeline."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self._cache: dict[int, tuple[FloatArray, FloatArray]] = {}

    def __call__(self, bars: int) -> tuple[FloatArray, FloatArray]:
        if bars not in self._cache:
            self._cache[bars] = (pct_change(self.grid.oi, bars), pct_change(self.grid.close, bars))
        return self._cache[bars]


def _thresholds(change: FloatArray, fixed: float, params: EngineParams, bar_ms: int) -> FloatArray:
    if not params.adaptive or params.reference:
        return np.full(change.shape, fixed)
    lookback = max(2, params.adaptive_lookback_ms // bar_ms)
    min_hist = max(2, params.min_history_ms // bar_ms)
    spread = trailing_median(np.abs(change), lookback, min_hist)
    return rules.adaptive_threshold(spread, fixed, params)


def _strong(grid: Grid, params: EngineParams, changes: _Changes) -> BoolArray:
    """OI down >= strong % within <= 30 min (at least one bar) while price rises."""
    strong = np.zeros(len(grid.ts), dtype=np.bool_)
    for v in range(1, max(1, params.strong_within_ms // grid.bar_ms) + 1):
        strong |= np.asarray(rules.strong_covering(*changes(v), params), dtype=np.bool_)
    return strong


def liq_window_bars(params: EngineParams, bar_ms: int) -> int:
    """The burst window liquidations are summed over: 15 min, or one bar when bars are longer."""
    return window_bars(params.liq_window_ms, bar_ms) if params.liq_window_ms > bar_ms else 1


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
        fixed_oi, fixed_px = rules.bands(params, w * bar)
        oi_band[k] = _thresholds(oi_h[k], fixed_oi, params, bar)
        px_band[k] = _thresholds(px_h[k], fixed_px, params, bar)
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
    strong = _strong(grid, params, changes_of) & covering

    short_w, long_w, squeeze, evidence = _squeeze(grid, params, hz, reading, oi_then)
    regime = np.where(covering & (squeeze == 1.0), np.int8(Regime.SHORT_SQUEEZE), regime)

    changes = {}
    if bar == 5 * MINUTE_MS:
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
    bar = grid.bar_ms
    wl = liq_window_bars(params, bar)
    short_w = rolling_sum(grid.liq_short_usd, wl)
    long_w = rolling_sum(grid.liq_long_usd, wl)
    n = len(grid.ts)
    if params.reference:
        return short_w, long_w, np.full(n, np.nan), np.zeros(n, np.int64)
    terms: list[tuple[FloatArray, FloatArray]] = []
    bits = np.zeros(n, np.int64)
    for ev in params.evidence:
        term = _term(ev, grid, params, hz, reading, oi_then, short_w, long_w)
        if term is None:  # no data for this term anywhere: unknown on every bar
            terms.append((np.zeros(n), np.zeros(n)))
            continue
        value, known = term
        hit = np.asarray(value, dtype=np.bool_) & known
        bits |= hit.astype(np.int64) << EVIDENCE_ORDER.index(ev)
        terms.append((np.asarray(value, dtype=np.float64), known.astype(np.float64)))
    squeeze = rules.any_known(terms) if terms else np.full(n, np.nan)
    return short_w, long_w, np.asarray(squeeze, dtype=np.float64), bits


def _term(
    ev: Evidence,
    grid: Grid,
    params: EngineParams,
    hz: Horizons,
    reading: NDArray[np.intp],
    oi_then: FloatArray,
    short_w: FloatArray,
    long_w: FloatArray,
) -> tuple[BoolArray, BoolArray] | None:
    """(holds, known) per bar for one evidence term; None when the series has no data for it."""
    bar, n = grid.bar_ms, len(grid.ts)
    if ev is Evidence.LIQUIDATIONS:
        if np.all(np.isnan(short_w)):
            return None
        lookback = max(2, params.context_lookback_ms // bar)
        base = trailing_median(short_w, lookback, max(2, params.min_history_ms // bar))
        value = rules.squeeze_spike(short_w, long_w, base, grid.oi * grid.close, params)
        return np.asarray(value, dtype=np.bool_), ~(np.isnan(short_w) | np.isnan(base))
    if ev is Evidence.TAKER:
        if grid.taker_buy is None:
            return None
        net_bar = 2.0 * grid.taker_buy - grid.volume
        net = np.empty(n)
        for k, w in enumerate(hz.bars):
            sel = reading == k
            net[sel] = rolling_sum(net_bar, w)[sel]
        drop = oi_then - grid.oi
        value = rules.taker_outruns(net, drop, params)
        return np.asarray(value, dtype=np.bool_), ~(np.isnan(net) | np.isnan(drop))
    if ev is Evidence.PREMIUM:
        if grid.premium is None:
            return None
        value = rules.premium_flip(grid.premium, grid.funding_rate, params)
        return np.asarray(value, dtype=np.bool_), ~(
            np.isnan(grid.premium) | np.isnan(grid.funding_rate)
        )
    if grid.ls_account is None:
        return None
    value = rules.crowded_shorts(grid.ls_account, params)
    return np.asarray(value, dtype=np.bool_), ~np.isnan(grid.ls_account)


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


def events(
    tl: Timeline, params: EngineParams, regimes: tuple[Regime, ...] | None = None
) -> list[Event]:
    """Merge the bars of each regime into events (covering and squeeze bars together); runs
    closer than the longest horizon are one episode."""
    wanted = tuple(dict.fromkeys(regimes or (Regime.SHORT_COVERING,)))
    grid = tl.grid
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
        for s, e in _runs(mask, tl.horizons.longest):
            out.append(_event(tl, params, Regime(regime), s, e, mask, vol_base))
    out.sort(key=lambda ev: ev.start_ms)
    return out


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
    w = tl.reading_bars(s)
    b = max(0, s - w)
    oi_change = float(rules.pct(grid.oi[e], grid.oi[b]))
    px_change = float(rules.pct(grid.close[e], grid.close[b]))
    seg = slice(s, e + 1)
    in_event = mask[seg]
    covering = regime == Regime.SHORT_COVERING
    oi_seg, px_seg = tl.oi_pct[seg][in_event], tl.price_pct[seg][in_event]
    largest_drop = float(np.nanmin(oi_seg)) if covering else float(np.nanmax(np.abs(oi_seg)))
    peak_gain = float(np.nanmax(px_seg)) if covering else float(np.nanmax(np.abs(px_seg)))
    span = slice(max(0, s - w + 1), e + 1)
    short = float(np.sum(grid.liq_short_usd[span]))
    long_ = float(np.sum(grid.liq_long_usd[span]))
    sq_vals = tl.squeeze[seg][in_event]
    squeeze = None if np.all(np.isnan(sq_vals)) else bool(np.nanmax(sq_vals) == 1.0)
    upgraded = in_event & (tl.regime[seg] == Regime.SHORT_SQUEEZE)
    ev_bits = int(np.bitwise_or.reduce(tl.evidence[seg][upgraded])) if upgraded.any() else 0
    fired = int(np.bitwise_or.reduce(tl.fired[seg][in_event]))
    rate = _opt(grid.funding_rate[s])
    ivl = _opt(grid.funding_interval_h[s])
    rate_8h = funding_8h(rate, ivl)
    vol = float(np.nansum(grid.volume[span]))
    normal = vol_base[s] * (span.stop - span.start)
    volume_ratio = vol / normal if np.isfinite(normal) and normal > 0 else None
    session, weekend = session_of(int(grid.ts[s]))
    data_gap = bool(np.any(tl.gap[seg][in_event]))
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
        more_to_come=more_to_come(rate_8h, params) if covering else None,
        short_liq_usd=short if np.isfinite(short) else None,
        long_liq_usd=long_ if np.isfinite(long_) else None,
        squeeze=squeeze if covering else None,
        volume_ratio=volume_ratio,
        session=session,
        weekend=weekend,
        data_gap=data_gap,
        horizon_ms=w * grid.bar_ms,
        horizons_ms=tuple(m for k, m in enumerate(tl.horizons.ms) if fired >> k & 1),
        evidence=tuple(x.value for k, x in enumerate(EVIDENCE_ORDER) if ev_bits >> k & 1),
        first_index=s,
        breakout=breakout(grid.close, s, w, max(1, DAY_MS // grid.bar_ms)),
        ls_account=_opt(grid.row("ls_account")[s]),
        premium=_opt(grid.row("premium")[s]),
    )


def breakout(close: FloatArray, i: int, w: int, lookback: int) -> bool | None:
    """Close at bar `i` above the highest close of the `lookback` bars before its reading
    window began (a break of the recent range, not the move's own climb); None with less
    than half of that history."""
    lo, hi = max(0, i - w - lookback), i - w
    if hi <= lo or not np.isfinite(close[i]):
        return None
    prior = close[lo:hi]
    known = prior[np.isfinite(prior)]
    if len(known) < lookback // 2:
        return None
    return bool(close[i] > np.max(known))


def more_to_come(rate_8h: float | None, params: EngineParams) -> bool | None:
    """Shorts still paying clearly (8 h equivalent at or below the line): more covering is
    likely. Unknown funding says nothing."""
    return None if rate_8h is None else rate_8h <= params.more_to_come_funding_8h
