"""The data `bench/engine.py` times the engine on and the pandas baselines it compares against:
seeded random walks of price and OI with injected short-covering episodes and NaN gaps, and
two plain pandas scripts of the same fixed-threshold rules."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
from numpy.typing import NDArray

from oiradar.records import MarketSeries
from oiradar.signals.regimes import Regime
from oiradar.units import MINUTE_MS, parse_time

FloatArray = NDArray[np.float64]
Int8Array = NDArray[np.int8]

BAR_MS = 5 * MINUTE_MS
BARS_PER_DAY = 288
WINDOW_BARS = 3  # 15m on 5m bars, the engine's default window
OI_PCT = 1.5
PRICE_PCT = 1.0
START_MS = parse_time("2024-01-01")
VENUE = "binance"


# -- data -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Data:
    """oi[i] and close[i] are symbol i's bars (NaN in gaps), all on one 5m grid."""

    symbols: list[str]
    ts: NDArray[np.int64]
    oi: FloatArray  # (symbols, bars), OI in base units
    close: FloatArray  # (symbols, bars)

    @property
    def bars(self) -> int:
        return len(self.ts)


def _gaps(rng: np.random.Generator, x: FloatArray, count: int) -> None:
    """Blank `count` runs of 1-30 bars (never the first or last 40 bars) with NaN."""
    n = len(x)
    if n <= 100:
        return
    for start in rng.integers(40, n - 70, size=count):
        x[start : start + int(rng.integers(1, 31))] = np.nan


def generate(symbols: int, days: int, seed: int = 7) -> Data:
    """Seeded random walks; OI drops while price rises in injected covering episodes."""
    rng = np.random.default_rng(seed)
    n = days * BARS_PER_DAY
    oi = np.empty((symbols, n))
    close = np.empty((symbols, n))
    for i in range(symbols):
        px_sigma = rng.uniform(0.0015, 0.005)  # per 5m bar (log)
        oi_sigma = rng.uniform(0.002, 0.006)
        px_step = rng.normal(0.0, px_sigma, n)
        oi_step = rng.normal(0.0, oi_sigma, n)
        # Short covering: ~1 episode every 5 days, 3-12 bars of OI -0.4..-1.2 %/bar, price up.
        for start in rng.integers(1, n, size=max(1, days // 5)):
            length = int(rng.integers(3, 13))
            oi_step[start : start + length] -= rng.uniform(0.004, 0.012)
            px_step[start : start + length] += rng.uniform(0.002, 0.006)
        close[i] = rng.uniform(0.05, 60_000.0) * np.exp(np.cumsum(px_step))
        oi[i] = rng.uniform(1e3, 1e9) * np.exp(np.cumsum(oi_step))
        _gaps(rng, close[i], 3)
        _gaps(rng, oi[i], 5)
    ts = START_MS + BAR_MS * np.arange(n, dtype=np.int64)
    return Data([f"SYM{i:03d}USDT" for i in range(symbols)], ts, oi, close)


def market_series(data: Data, i: int) -> MarketSeries:
    """Symbol i as the store would hand it over: gap bars are absent rows, not NaN rows."""
    c_ok = ~np.isnan(data.close[i])
    o_ok = ~np.isnan(data.oi[i])
    close = data.close[i][c_ok]
    opened = np.r_[close[:1], close[:-1]]
    empty_ts = np.empty(0, np.int64)
    empty = np.empty(0)
    return MarketSeries(
        venue=VENUE,
        symbol=data.symbols[i],
        interval_ms=BAR_MS,
        candle_ts=data.ts[c_ok],
        open=opened,
        high=np.maximum(opened, close) * 1.001,
        low=np.minimum(opened, close) * 0.999,
        close=close,
        volume=np.full(len(close), 1000.0),
        oi_ts=data.ts[o_ok] + BAR_MS,  # the snapshot at the bar's close
        oi_base=data.oi[i][o_ok],
        funding_ts=empty_ts,
        funding_rate=empty,
        funding_interval_h=empty,
        liq_ts=empty_ts,
        liq_long_usd=empty,
        liq_short_usd=empty,
        liq_coverage=False,
        liq_bar_ts=empty_ts,
    )


# -- the pandas baselines -------------------------------------------------------------------


def classify_row(row: pd.Series) -> str:
    """The blog script's classifier, one row at a time (flat bands are inclusive)."""
    oi, px = row["oi_pct"], row["price_pct"]
    if math.isnan(oi) or math.isnan(px):
        return "NO_DATA"
    if -PRICE_PCT <= px <= PRICE_PCT:
        return "NEUTRAL"
    if oi > OI_PCT:
        return "NEW_LONGS" if px > 0 else "NEW_SHORTS"
    if oi < -OI_PCT:
        return "SHORT_COVERING" if px > 0 else "LONG_LIQUIDATION"
    return "LOW_CONVICTION_RALLY" if px > 0 else "LOW_CONVICTION_SELLOFF"


def pandas_apply(df: pd.DataFrame) -> pd.Series:
    """Per-symbol pandas: pct_change(3) * 100 of both columns, then a row-wise apply."""
    df["oi_pct"] = df["oi"].pct_change(WINDOW_BARS) * 100
    df["price_pct"] = df["close"].pct_change(WINDOW_BARS) * 100
    return df.apply(classify_row, axis=1)


def pandas_vectorized(df: pd.DataFrame) -> Int8Array:
    """Per-symbol pandas with np.select over the same rules (regime codes, not names)."""
    oi = df["oi"].pct_change(WINDOW_BARS) * 100
    px = df["close"].pct_change(WINDOW_BARS) * 100
    oi_up, oi_down = oi > OI_PCT, oi < -OI_PCT
    px_up, px_down = px > PRICE_PCT, px < -PRICE_PCT
    oi_flat = ~oi_up & ~oi_down
    conditions = [
        oi.isna() | px.isna(),
        oi_up & px_up,
        oi_up & px_down,
        oi_down & px_up,
        oi_down & px_down,
        oi_flat & px_up,
        oi_flat & px_down,
    ]
    choices = [
        Regime.NO_DATA,
        Regime.NEW_LONGS,
        Regime.NEW_SHORTS,
        Regime.SHORT_COVERING,
        Regime.LONG_LIQUIDATION,
        Regime.LOW_CONVICTION_RALLY,
        Regime.LOW_CONVICTION_SELLOFF,
    ]
    out: Int8Array = np.select(conditions, choices, default=Regime.NEUTRAL).astype(np.int8)
    return out


def frame(data: Data, i: int) -> pd.DataFrame:
    return pd.DataFrame({"oi": data.oi[i], "close": data.close[i]})
