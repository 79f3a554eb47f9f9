"""Binance USD-M premium-index klines and positioning statistics: paths and parsers.

Verified against Binance's own doc pages (developers.binance.com, usds-margined-futures
market data: "Premium index Kline Data", "Long/Short Ratio", "Top Trader Long/Short Ratio
(Accounts)", "Top Trader Long/Short Ratio (Positions)", "Taker Buy/Sell Volume"):
- `/fapi/v1/premiumIndexKlines`: `symbol, interval, startTime, endTime, limit` (default 500,
  max 1500), weight by `limit` like klines; rows like klines with the premium as OHLC (a
  fraction, may be negative) and "0" in the volume fields.
- The four `/futures/data/*` endpoints: `symbol, period` (5m..1d), `limit` (default 30, max
  500), `startTime, endTime`; weight 0, in the 1000 requests / 5 min bucket; the latest 30
  days only. Long/short rows `{symbol, longShortRatio, longAccount, shortAccount,
  timestamp}` (the positions endpoint reuses the `*Account` names); taker rows `{buySellRatio,
  buyVol, sellVol, timestamp}` without a symbol. `timestamp` is a string on the doc pages
  and a number in some clients' recordings: both are accepted.
Assumed (the pages do not say): a ratio row's `timestamp` is the end of its period, like
`openInterestHist`, so the taker ratio covers the period that ends there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from oiradar.records import Positioning, PremiumBar
from oiradar.venues.base import decimal

VENUE = "binance"
PREMIUM_KLINES = "/fapi/v1/premiumIndexKlines"
# Positioning field of each ratio endpoint.
RATIO_PATHS = {
    "/futures/data/topLongShortAccountRatio": "top_account_ratio",
    "/futures/data/topLongShortPositionRatio": "top_position_ratio",
    "/futures/data/globalLongShortAccountRatio": "account_ratio",
    "/futures/data/takerlongshortRatio": "taker_buy_sell_ratio",
}
RATIO_VALUE = {"/futures/data/takerlongshortRatio": "buySellRatio"}  # else longShortRatio


def ms(value: object) -> int:
    """A timestamp as int ms, sent as a number or a string of digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise ValueError(f"not a timestamp: {value!r}")


def parse_premium_klines(payload: Any, symbol: str, interval_ms: int) -> list[PremiumBar]:
    """Rows [open time, open, high, low, close, "0", close time, ...]: the premium index."""
    out = []
    for row in payload:
        o, h, lo, c = (decimal(row[i]) for i in (1, 2, 3, 4))
        out.append(PremiumBar(VENUE, symbol, interval_ms, ms(row[0]), o, h, lo, c))
    return out


def parse_ratios(payload: Any, symbol: str, path: str) -> list[Positioning]:
    """One ratio endpoint's rows as samples carrying only that endpoint's ratio."""
    field = RATIO_PATHS[path]
    key = RATIO_VALUE.get(path, "longShortRatio")
    return [
        Positioning(VENUE, symbol, ms(row["timestamp"]), **{field: decimal(row[key])})
        for row in payload
    ]


def merge_positioning(parts: Iterable[Iterable[Positioning]]) -> list[Positioning]:
    """Samples of the same time merged into one (each ratio from whichever part has it),
    oldest first: the four endpoints give one sample each per period."""
    merged: dict[tuple[str, int], dict[str, float]] = {}
    for part in parts:
        for sample in part:
            slot = merged.setdefault((sample.symbol, sample.ts_ms), {})
            for name in RATIO_PATHS.values():
                value = getattr(sample, name)
                if value is not None:
                    slot[name] = value
    return [
        Positioning(
            VENUE,
            symbol,
            ts,
            slot.get("top_account_ratio"),
            slot.get("top_position_ratio"),
            slot.get("account_ratio"),
            slot.get("taker_buy_sell_ratio"),
        )
        for (symbol, ts), slot in sorted(merged.items(), key=lambda kv: kv[0][1])
    ]
