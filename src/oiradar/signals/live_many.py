"""`live.step` for many series at one bar close, the rules read once over all of them.

A bar close of `oiradar watch` steps every watched symbol of a venue (2,000 series on four
venues). Stepping them one by one costs ~2 ms each, nearly all numpy's per-call overhead
on one-element arrays (the horizons' classification, the squeeze terms, the trailing
medians): seconds of CPU per close. Here the per-series state updates stay scalar, and the
array work runs once with the series as columns, through the same `rules` functions
(`rules.read`, `rules.squeeze`, `rules.upgrade`) the batch engine runs with bars as columns.
The result equals `step` field for field (a property test holds them equal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from oiradar.signals import rules
from oiradar.signals.horizons import bands, lookbacks
from oiradar.signals.live import (
    NAN,
    Bar,
    FloatArray,
    LiveState,
    Ring,
    _step,
    make_reading,
    missing,
    push_bar,
)
from oiradar.signals.reading import MarketReading
from oiradar.signals.regimes import Regime
from oiradar.signals.windows import baseline


def step_many(states: Sequence[LiveState], bars: Sequence[Bar]) -> list[MarketReading]:
    """`[step(s, b) for s, b in zip(states, bars)]`, the array work done once per group of
    states that share their settings."""
    if len(states) != len(bars):
        raise ValueError("one bar per state")
    out: list[MarketReading | None] = [None] * len(states)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (state, bar) in enumerate(zip(states, bars, strict=True)):
        if state.last_ts is not None:
            if bar.ts_ms <= state.last_ts:
                raise ValueError(
                    f"bar {bar.ts_ms} is not after the last stepped bar {state.last_ts}"
                )
            for ts in range(state.last_ts + state.bar_ms, bar.ts_ms, state.bar_ms):
                _step(state, missing(ts))
        groups.setdefault((id(state.params), state.bar_ms), []).append(i)
    for idx in groups.values():
        stepped = _step_group([states[i] for i in idx], [bars[i] for i in idx])
        for i, reading in zip(idx, stepped, strict=True):
            out[i] = reading
    return [r for r in out if r is not None]


def row_medians(rings: Sequence[Ring], min_periods: int) -> FloatArray:
    """Each ring's `Ring.median(min_periods)`: NaN-last sort of all rings at once, then the
    middle value, or the mean of the two middle ones as `np.median` computes it."""
    n = len(rings)
    out = np.full(n, np.nan)
    if n == 0:
        return out
    sizes = {r.size for r in rings}
    if len(sizes) > 1:
        return np.array([r.median(min_periods) for r in rings])
    s = np.sort(np.stack([r.buf for r in rings]), axis=1)  # NaN sorts last
    count = np.sum(~np.isnan(s), axis=1)
    ok = (count >= min_periods) & (count > 0)
    rows = np.nonzero(ok)[0]
    c = count[rows]
    hi = baseline(s[rows, c // 2])  # the mean of two in float64, as `np.median` over them
    lo = baseline(s[rows, np.maximum(c - 1, 0) // 2])
    out[rows] = np.where(c % 2 == 1, hi, (lo + hi) / 2.0)
    return out


def _step_group(states: list[LiveState], bars: list[Bar]) -> list[MarketReading]:
    """`_step` for states sharing params and bar size, in the same order of operations."""
    first = states[0]
    p, hz = first.params, first.horizons
    min_hist = lookbacks(p, first.bar_ms).min_history
    for state, bar in zip(states, bars, strict=True):
        push_bar(state, bar)
    h = _horizons(states, bars, min_hist)
    _, codes, picks, masks = rules.read(h.oi, h.px, h.oi_band, h.px_band, p.reference)
    x = _squeeze_inputs(states, bars, [hz.bars[int(k)] for k in picks], min_hist)
    squeeze, bits = rules.squeeze(x, p)
    squeeze_a = np.broadcast_to(np.asarray(squeeze, dtype=np.float64), (len(states),))
    regimes = rules.upgrade(np.asarray(codes, dtype=np.int8), squeeze_a)
    vol_base = row_medians([s.volume_hist for s in states], min_hist)
    bits_a = np.broadcast_to(np.asarray(bits, dtype=np.int64), (len(states),))
    out = []
    for j, (state, bar) in enumerate(zip(states, bars, strict=True)):
        covering = Regime(int(codes[j])) is Regime.SHORT_COVERING
        strong = covering and _strong(state, bar)
        state.volume_hist.push(bar.volume)
        state.t += 1
        state.last_ts = bar.ts_ms
        k = int(picks[j])
        reading = make_reading(
            state, bar, k, Regime(int(regimes[j])), (int(masks[j]), strong),
            (float(squeeze_a[j]), int(bits_a[j])),
            (h.oi[:, j], h.px[:, j], h.oi_band[:, j], h.px_band[:, j]), bool(h.gaps[k, j]),
            (float(x.short_liq_usd[j]), float(x.long_liq_usd[j]), float(vol_base[j])),
        )  # fmt: skip
        state.last = reading
        out.append(reading)
    return out


@dataclass(frozen=True, slots=True)
class _Horizons:
    """Per horizon (rows) and series (columns): changes, bands, gaps (`live._readings`)."""

    oi: FloatArray
    px: FloatArray
    oi_band: FloatArray
    px_band: FloatArray
    gaps: NDArray[np.bool_]


def _horizons(states: list[LiveState], bars: list[Bar], min_hist: int) -> _Horizons:
    first = states[0]
    p, hz, bar_ms = first.params, first.horizons, first.bar_ms
    n, n_h = len(states), len(hz.bars)
    adapts = rules.adapts(p)
    oi_h, px_h = np.empty((n_h, n)), np.empty((n_h, n))
    oi_band, px_band = np.empty((n_h, n)), np.empty((n_h, n))
    gaps = np.zeros((n_h, n), dtype=np.bool_)
    for k, w in enumerate(hz.bars):
        fixed_oi, fixed_px = bands(p, w * bar_ms)
        for j, (state, bar) in enumerate(zip(states, bars, strict=True)):
            oi_h[k, j] = rules.pct(bar.oi, state.oi.ago(w))
            px_h[k, j] = rules.pct(bar.close, state.close.ago(w))
            seen = state.valid.buf if w + 1 >= state.valid.size else state.valid.last(w + 1)
            gaps[k, j] = state.t < w or bool(np.any(seen == 0.0))
        if adapts:  # the trailing |change| medians before this bar's are pushed
            oi_spread = row_medians([s.abs_oi_hist[k] for s in states], min_hist)
            px_spread = row_medians([s.abs_px_hist[k] for s in states], min_hist)
            oi_band[k] = rules.band(oi_spread, fixed_oi, p)
            px_band[k] = rules.band(px_spread, fixed_px, p)
        else:
            oi_band[k], px_band[k] = fixed_oi, fixed_px
    if adapts:
        for j, state in enumerate(states):
            for k in range(n_h):
                state.abs_oi_hist[k].push(abs(float(oi_h[k, j])))
                state.abs_px_hist[k].push(abs(float(px_h[k, j])))
    return _Horizons(oi_h, px_h, oi_band, px_band, gaps)


def _squeeze_inputs(
    states: list[LiveState], bars: list[Bar], spans: list[int], min_hist: int
) -> rules.SqueezeInputs[FloatArray]:
    """Each series' squeeze inputs over its read horizon `spans[j]` (bars); pushes this
    bar's burst-window total to the short-liquidation history after its median is read."""
    n = len(states)
    short_w, long_w = np.full(n, np.nan), np.full(n, np.nan)
    net_taker, oi_then = np.full(n, np.nan), np.empty(n)
    for j, (state, w) in enumerate(zip(states, spans, strict=True)):
        if state.t >= state.liq_window - 1:
            short_w[j] = state.liq_short.window_sum()
            long_w[j] = state.liq_long.window_sum()
        if state.t >= w - 1:
            net_taker[j] = state.net_taker.window_sum(w)
        oi_then[j] = state.oi.ago(w)
    base = row_medians([s.short_w_hist for s in states], min_hist)
    for j, state in enumerate(states):
        state.short_w_hist.push(float(short_w[j]))
    oi_now = np.array([b.oi for b in bars])
    return rules.SqueezeInputs(
        short_liq_usd=short_w,
        long_liq_usd=long_w,
        short_liq_base=base,
        oi_usd=oi_now * np.array([b.close for b in bars]),
        net_taker_buy=net_taker,
        oi_drop=oi_then - oi_now,
        premium=np.array([b.premium for b in bars]),
        funding_rate=np.array([b.funding_rate for b in bars]),
        ls_account=np.array([b.ls_account for b in bars]),
    )


def _strong(state: LiveState, bar: Bar) -> bool:
    def changes(v: int) -> tuple[float, float]:
        return rules.pct(bar.oi, state.oi.ago(v)), rules.pct(bar.close, state.close.ago(v))

    return bool(rules.strong(changes, state.params, state.bar_ms))


__all__ = ["NAN", "row_medians", "step_many"]
