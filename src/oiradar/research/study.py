"""Event-study arithmetic: forward returns, excursions, random controls, bootstrap intervals.

Pure functions over arrays. An entry is a bar index `i`: the signal is knowable at that bar's
close, so the entry price is `close[i]` and a horizon of `h` bars exits at `close[i + h]`.
Returns are in %, signed by the trade's direction (+1 long, -1 short) and net of a round-trip
cost in basis points. Anything that needs a bar the data does not have is NaN, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from oiradar.units import DAY_MS

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def rounded(x: float, digits: int = 4) -> float | None:
    """For tables: `digits` decimals, None (not NaN) where the number is unknown."""
    return round(x, digits) if math.isfinite(x) else None


def forward_returns(
    close: FloatArray, entries: IntArray, horizon: int, direction: FloatArray, cost_bps: float
) -> FloatArray:
    """% return from close[i] to close[i + horizon] per entry (direction-signed, net)."""
    out = np.full(len(entries), np.nan)
    if len(entries) == 0 or horizon <= 0:
        return out
    exit_ = entries + horizon
    ok = exit_ < len(close)
    a, b = close[entries[ok]], close[exit_[ok]]
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = (b / a - 1.0) * 100.0
    out[ok] = raw * direction[ok] - cost_bps / 100.0
    return out


def excursions(
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    entries: IntArray,
    horizon: int,
    direction: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Max favourable and max adverse excursion (%) over bars (i, i + horizon], per entry.

    Favourable is the best the trade saw (>= 0 unless it only went against it), adverse the
    worst (<= 0), both in the trade's direction. NaN when the window runs past the data."""
    n = len(entries)
    mfe, mae = np.full(n, np.nan), np.full(n, np.nan)
    if n == 0 or horizon <= 0:
        return mfe, mae
    ok = entries + horizon < len(close)
    idx = entries[ok][:, None] + np.arange(1, horizon + 1)[None, :]
    entry = close[entries[ok]][:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        up = np.nanmax(high[idx], axis=1) / entry[:, 0] - 1.0
        down = np.nanmin(low[idx], axis=1) / entry[:, 0] - 1.0
    long_ = direction[ok] > 0
    mfe[ok] = np.where(long_, up, -down) * 100.0
    mae[ok] = np.where(long_, down, -up) * 100.0
    return mfe, mae


def control_entries(
    ts: IntArray,
    valid: NDArray[np.bool_],
    entries: IntArray,
    per_event: int,
    rng: np.random.Generator,
) -> tuple[IntArray, IntArray]:
    """`per_event` random bars on the same UTC day as each entry (valid bars only): the
    baseline a signal has to beat on the same symbol and the same market days. Returns the
    bar indices and, for each, the index of the event it stands in for."""
    empty = np.empty(0, np.int64)
    if len(entries) == 0 or per_event <= 0:
        return empty, empty
    day = ts // DAY_MS
    order = np.flatnonzero(valid)
    vday = day[order]
    lo = np.searchsorted(vday, day[entries], side="left")
    hi = np.searchsorted(vday, day[entries], side="right")
    span = np.maximum(hi - lo, 1)
    draws = lo[:, None] + (rng.random((len(entries), per_event)) * span[:, None]).astype(np.int64)
    owner = np.repeat(np.arange(len(entries), dtype=np.int64), per_event)
    keep = (hi - lo > 0)[owner]
    return np.asarray(order[draws.ravel()[keep]], dtype=np.int64), owner[keep]


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float


def resample(
    x: FloatArray,
    stats: Sequence[Callable[[FloatArray], FloatArray]],
    rng: np.random.Generator,
    n: int,
) -> list[FloatArray]:
    """Each of `stats` over the same `n` resamples of `x`, in batches that stay under ~8M
    values each. The draws are most of an event study's time, so one set serves every
    statistic of a group (the mean's and the hit rate's intervals and the one-sided p)."""
    batch = max(1, min(n, 8_000_000 // max(1, len(x))))
    out: list[list[FloatArray]] = [[] for _ in stats]
    for i in range(0, n, batch):
        # 32-bit draws: half the random bits of the default int64 (a sample is far below
        # 2**32 rows), the same uniform resampling.
        drawn = x[rng.integers(0, len(x), size=(min(batch, n - i), len(x)), dtype=np.uint32)]
        for acc, stat in zip(out, stats, strict=True):
            acc.append(stat(drawn))
    return [np.concatenate(acc) for acc in out]


def interval(stats: FloatArray, level: float = 0.95) -> Interval:
    """The percentile interval of bootstrap statistics."""
    if len(stats) == 0:
        return Interval(float("nan"), float("nan"))
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(stats, [tail, 100 - tail])
    return Interval(float(lo), float(hi))


def bootstrap(
    values: FloatArray,
    stat: Callable[[FloatArray], FloatArray],
    rng: np.random.Generator,
    n: int = 2000,
    level: float = 0.95,
) -> Interval:
    """Percentile bootstrap interval of `stat` (vectorized over resamples, axis=1)."""
    x = values[~np.isnan(values)]
    if len(x) < 2:
        return Interval(float("nan"), float("nan"))
    return interval(resample(x, [stat], rng, n)[0], level)


def mean_rows(a: FloatArray) -> FloatArray:
    return np.asarray(a.mean(axis=1), dtype=np.float64)


def hit_rows(a: FloatArray) -> FloatArray:
    return np.asarray((a > 0).mean(axis=1) * 100.0, dtype=np.float64)


def p_better(
    signal: FloatArray,
    control: FloatArray,
    rng: np.random.Generator,
    n: int = 2000,
    means: FloatArray | None = None,
) -> float:
    """Share of bootstrap resamples where the signal's mean is NOT above the control's: a
    one-sided p-value for "the signal beats random entries on the same days". The control
    (20 entries per event: hundreds of thousands) enters through its mean's normal
    sampling distribution instead of being resampled value by value. `means`: the signal's
    resampled means when the caller has drawn them already."""
    s, c = signal[~np.isnan(signal)], control[~np.isnan(control)]
    if len(s) < 2 or len(c) < 2:
        return float("nan")
    ms = resample(s, [mean_rows], rng, n)[0] if means is None else means
    mc = rng.normal(float(np.mean(c)), float(np.std(c, ddof=1)) / np.sqrt(len(c)), len(ms))
    return float(np.mean(ms - mc <= 0))
