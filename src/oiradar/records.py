"""Normalized, typed records: the only shapes that cross module borders.

Venue payloads are parsed into these at the venue boundary and never travel further.
Units are in the field names: `ts_ms` is ms since epoch UTC, `*_base` is the base coin,
`*_usd` is USD (USDT treated as USD), `*_contracts` is the venue's contract count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from oiradar.units import funding_8h


class Side(StrEnum):
    """Side of the *position* that was liquidated (not the side of the forced order)."""

    LONG = "LONG"
    SHORT = "SHORT"


class LiquidationFeed(StrEnum):
    """How much of a venue's liquidations its public stream shows: said on every figure and
    alert built from them."""

    COMPLETE = "complete"  # Bybit allLiquidation, Gate public_liquidates, dYdX LIQUIDATED fills
    SAMPLED = "sampled"  # Binance, OKX: one order per symbol per second; Bitget: the largest
    NONE = "none"  # Hyperliquid: no public liquidation feed


class ContractKind(StrEnum):
    LINEAR = "linear"
    INVERSE = "inverse"


@dataclass(frozen=True, slots=True)
class Instrument:
    """A perpetual contract; `contract_size` is base units per contract (OKX ctVal, else 1).
    `listed_ms`: its listing time where the venue says (no history before it), else None."""

    venue: str
    symbol: str
    venue_symbol: str
    base: str
    quote: str
    contract_size: float
    kind: ContractKind = ContractKind.LINEAR
    funding_interval_h: float | None = None
    listed_ms: int | None = None


@dataclass(frozen=True, slots=True)
class OISample:
    """One open-interest snapshot; `oi_base` is what the engine classifies on."""

    venue: str
    symbol: str
    ts_ms: int
    oi_base: float
    oi_contracts: float | None = None
    oi_usd: float | None = None


@dataclass(frozen=True, slots=True)
class Candle:
    """One bar; `ts_ms` is the bar's open time and `interval_ms` its length."""

    venue: str
    symbol: str
    interval_ms: int
    ts_ms: int
    open: float
    high: float
    low: float
    close: float
    volume_base: float
    volume_quote: float | None = None
    taker_buy_base: float | None = None
    trades: int | None = None


@dataclass(frozen=True, slots=True)
class FundingSample:
    """A funding rate per interval (a fraction: 0.0001 = 0.01 %) and the interval in hours."""

    venue: str
    symbol: str
    ts_ms: int
    rate: float
    interval_h: float = 8.0

    @property
    def rate_8h(self) -> float:
        """The same rate scaled to an 8-hour interval, so symbols compare fairly."""
        value = funding_8h(self.rate, self.interval_h)
        return self.rate if value is None else value


@dataclass(frozen=True, slots=True)
class Liquidation:
    """One forced order as a venue published it, by the side of the liquidated position."""

    venue: str
    symbol: str
    ts_ms: int
    position_side: Side
    qty_base: float
    price: float
    usd: float


@dataclass(frozen=True, slots=True)
class LiquidationBar:
    """Liquidation totals of one bar by side of the liquidated position (history sources)."""

    venue: str
    symbol: str
    interval_ms: int
    ts_ms: int
    long_base: float
    short_base: float
    long_usd: float | None = None
    short_usd: float | None = None


@dataclass(frozen=True, slots=True)
class Positioning:
    """Positioning at one instant (Binance archive `metrics`, ratio endpoints); None = absent.

    Long/short ratios are longs ÷ shorts (by top-trader accounts, top-trader positions, all
    accounts); `taker_buy_sell_ratio` is taker buy ÷ taker sell volume over the period that
    ends at `ts_ms`.
    """

    venue: str
    symbol: str
    ts_ms: int
    top_account_ratio: float | None = None
    top_position_ratio: float | None = None
    account_ratio: float | None = None
    taker_buy_sell_ratio: float | None = None


@dataclass(frozen=True, slots=True)
class PremiumBar:
    """One premium-index bar: (mark or impact price - index) ÷ index as a fraction.

    `ts_ms` is the bar's open; the premium leads funding, which averages it over the interval.
    """

    venue: str
    symbol: str
    interval_ms: int
    ts_ms: int
    open: float
    high: float
    low: float
    close: float


def _empty_f() -> NDArray[np.float64]:
    return np.empty(0, np.float64)


def _empty_i() -> NDArray[np.int64]:
    return np.empty(0, np.int64)


@dataclass(frozen=True, slots=True)
class MarketSeries:
    """Columnar history of one (venue, symbol): what the store hands to the signal core.

    Arrays are numpy, sorted by time. Candle `candle_ts` is the bar open; OI `oi_ts` the
    snapshot time; liquidation `liq_ts` the order time or the bar open of a per-bar total.
    `liq_coverage` is False when no liquidation source covers the range (unknown, not zero);
    `liq_bar_ts` holds the bar opens of per-bar liquidation totals: where such history is the
    source, only those bars are covered. `liq_spans` holds (start_ms, end_ms) rows, sorted by
    start, of the spans a live order feed was connected. `liq_tracked` says the store
    records such spans for this series (even if none falls in the range read): then bars
    outside every span (and without a per-bar total) are unknown; untracked order streams
    (imported files) are taken as continuous. `taker_buy` is each candle's taker-buy volume
    in base units (NaN where the venue gives none). `pos_*` are `Positioning` samples and
    `premium_*` premium-index bars (open times, at the bar size or finer); empty = none.
    """

    venue: str
    symbol: str
    interval_ms: int
    candle_ts: NDArray[np.int64]
    open: NDArray[np.float64]
    high: NDArray[np.float64]
    low: NDArray[np.float64]
    close: NDArray[np.float64]
    volume: NDArray[np.float64]
    oi_ts: NDArray[np.int64]
    oi_base: NDArray[np.float64]
    funding_ts: NDArray[np.int64]
    funding_rate: NDArray[np.float64]
    funding_interval_h: NDArray[np.float64]
    liq_ts: NDArray[np.int64]
    liq_long_usd: NDArray[np.float64]
    liq_short_usd: NDArray[np.float64]
    liq_coverage: bool
    liq_bar_ts: NDArray[np.int64]
    liq_spans: NDArray[np.int64] = field(default_factory=lambda: np.empty((0, 2), np.int64))
    liq_tracked: bool = False
    taker_buy: NDArray[np.float64] = field(default_factory=_empty_f)
    pos_ts: NDArray[np.int64] = field(default_factory=_empty_i)
    pos_top_account: NDArray[np.float64] = field(default_factory=_empty_f)
    pos_top_position: NDArray[np.float64] = field(default_factory=_empty_f)
    pos_account: NDArray[np.float64] = field(default_factory=_empty_f)
    pos_taker_ratio: NDArray[np.float64] = field(default_factory=_empty_f)
    premium_ts: NDArray[np.int64] = field(default_factory=_empty_i)
    premium_close: NDArray[np.float64] = field(default_factory=_empty_f)


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """One symbol right now, from a venue's bulk endpoints; None where the venue omits it.

    `oi_base` is one-sided OI (Bybit's two-sided figure is halved at the boundary);
    `funding_rate` is the rate for the running interval, `funding_interval_h` its length.
    """

    venue: str
    symbol: str
    ts_ms: int
    last_price: float | None = None
    mark_price: float | None = None
    oi_base: float | None = None
    oi_usd: float | None = None
    funding_rate: float | None = None
    funding_interval_h: float | None = None
    next_funding_ms: int | None = None
    quote_volume_24h: float | None = None
