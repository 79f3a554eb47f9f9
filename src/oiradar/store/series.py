"""What every backend's `read_series` shares: the bounds, the premium sizes it tries and how
the column arrays it read become one `MarketSeries` (so two backends cannot drift apart)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from oiradar.records import MarketSeries
from oiradar.units import DAY_MS, interval_ms

UNBOUNDED = 2**62  # an open end of a range, as a timestamp no data reaches
# Premium bar sizes read_series looks for (every interval the venues' premium klines have).
PREMIUM_SIZES = tuple(
    interval_ms(n)
    for n in ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w")
)
F64 = NDArray[np.float64]


def premium_sizes(bar_ms: int) -> list[int]:
    """The premium sizes that divide the bar, coarsest (the bar's own) first: the first with
    a bar in range is the one read."""
    return sorted((ms for ms in PREMIUM_SIZES if bar_ms % ms == 0), reverse=True)


def week_offset(bar_ms: int) -> int:
    """Where a grid of `bar_ms` bars starts from the epoch: weekly bars open on Mondays."""
    return 4 * DAY_MS if bar_ms == 7 * DAY_MS else 0


@dataclass(frozen=True, slots=True)
class Columns:
    """A backend's reads for one series, each an (n, k) float array sorted by its first
    column (a timestamp); `spans` (n, 2) int64. docs/store.md (Reading) says which rows."""

    candles: F64  # ts, open, high, low, close, volume_base, taker_buy_base
    oi: F64  # ts, oi_base
    funding: F64  # ts, rate, interval_h (8 where unknown)
    liq_bars: F64  # ts, long USD, short USD of per-bar totals
    liq_orders: F64  # ts, long USD, short USD of single orders (0 on the other side)
    spans: NDArray[np.int64]
    tracked: bool  # the series has any feed span at all
    positioning: F64  # ts, top account, top position, account, taker ratio
    premium: F64  # ts, close


def assemble(venue: str, symbol: str, bar_ms: int, col: Columns) -> MarketSeries:
    """Per-bar totals and orders merged in time order (totals first at a tie)."""
    c = col.candles
    liq = np.concatenate([col.liq_bars, col.liq_orders])
    liq = liq[np.argsort(liq[:, 0], kind="stable")]
    return MarketSeries(
        venue=venue,
        symbol=symbol,
        interval_ms=bar_ms,
        candle_ts=c[:, 0].astype(np.int64),
        open=c[:, 1],
        high=c[:, 2],
        low=c[:, 3],
        close=c[:, 4],
        volume=c[:, 5],
        oi_ts=col.oi[:, 0].astype(np.int64),
        oi_base=col.oi[:, 1],
        funding_ts=col.funding[:, 0].astype(np.int64),
        funding_rate=col.funding[:, 1],
        funding_interval_h=col.funding[:, 2],
        liq_ts=liq[:, 0].astype(np.int64),
        liq_long_usd=liq[:, 1],
        liq_short_usd=liq[:, 2],
        liq_coverage=len(liq) > 0 or col.tracked,
        liq_bar_ts=col.liq_bars[:, 0].astype(np.int64),
        liq_spans=col.spans,
        liq_tracked=col.tracked,
        taker_buy=c[:, 6],
        pos_ts=col.positioning[:, 0].astype(np.int64),
        pos_top_account=col.positioning[:, 1],
        pos_top_position=col.positioning[:, 2],
        pos_account=col.positioning[:, 3],
        pos_taker_ratio=col.positioning[:, 4],
        premium_ts=col.premium[:, 0].astype(np.int64),
        premium_close=col.premium[:, 1],
    )
