"""Small hand-made series for engine tests (the project's own generated test data)."""

from __future__ import annotations

import numpy as np

from oiradar.records import MarketSeries

T0 = 1_717_200_000_000  # 2024-06-01T00:00Z, a Saturday
FIVE_MIN = 300_000


def series(
    close: list[float] | np.ndarray,
    oi: list[float] | np.ndarray,
    *,
    bar_ms: int = FIVE_MIN,
    volume: list[float] | np.ndarray | None = None,
    funding: list[tuple[int, float, float]] | None = None,
    liq: list[tuple[int, float, float]] | None = None,
    drop_bars: tuple[int, ...] = (),
) -> MarketSeries:
    """Bars at T0 + i*bar; OI snapshot at each bar's close; NaN OI = no snapshot.

    `liq` holds (bar index, long USD, short USD); `funding` (bar index, rate, interval h).
    """
    close_a = np.asarray(close, dtype=np.float64)
    oi_a = np.asarray(oi, dtype=np.float64)
    n = len(close_a)
    keep = np.array([i not in drop_bars for i in range(n)])
    ts = T0 + bar_ms * np.arange(n, dtype=np.int64)
    vol = np.ones(n) * 100 if volume is None else np.asarray(volume, dtype=np.float64)
    has_oi = ~np.isnan(oi_a)
    f = funding or []
    lq = liq or []
    return MarketSeries(
        venue="testvenue",
        symbol="TESTUSDT",
        interval_ms=bar_ms,
        candle_ts=ts[keep],
        open=close_a[keep],
        high=close_a[keep],
        low=close_a[keep],
        close=close_a[keep],
        volume=vol[keep],
        oi_ts=(ts + bar_ms)[has_oi],
        oi_base=oi_a[has_oi],
        funding_ts=np.array([T0 + i * bar_ms + bar_ms for i, _, _ in f], dtype=np.int64),
        funding_rate=np.array([r for _, r, _ in f], dtype=np.float64),
        funding_interval_h=np.array([h for _, _, h in f], dtype=np.float64),
        liq_ts=np.array([T0 + i * bar_ms for i, _, _ in lq], dtype=np.int64),
        liq_long_usd=np.array([lo for _, lo, _ in lq], dtype=np.float64),
        liq_short_usd=np.array([sh for _, _, sh in lq], dtype=np.float64),
        liq_coverage=liq is not None,
        liq_bar_ts=np.empty(0, dtype=np.int64),
    )
