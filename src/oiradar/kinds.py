"""The record kinds and their columnar layout.

One layout serves the store's tables and the CSV/Parquet interchange files that
`oiradar import` reads and `oiradar export` writes, so a round trip cannot drift.
Column names carry units (docs/interchange.md describes each column).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    CANDLES = "candles"
    OPEN_INTEREST = "open_interest"
    FUNDING = "funding"
    LIQUIDATIONS = "liquidations"
    LIQUIDATION_ORDERS = "liquidation_orders"
    POSITIONING = "positioning"
    PREMIUM_INDEX = "premium_index"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    dtype: str  # "int", "float" or "str"
    required: bool = True


@dataclass(frozen=True, slots=True)
class Layout:
    """`merge`: an empty (null) value never replaces a stored one, since each source of the
    kind may carry only some of its columns (a positioning sample from one ratio endpoint)."""

    kind: Kind
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    merge: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)


def _c(name: str, dtype: str, required: bool = True) -> Column:
    return Column(name, dtype, required)


LAYOUTS: dict[Kind, Layout] = {
    Kind.CANDLES: Layout(
        Kind.CANDLES,
        (
            _c("ts_ms", "int"),
            _c("venue", "str"),
            _c("symbol", "str"),
            _c("interval", "str"),
            _c("open", "float"),
            _c("high", "float"),
            _c("low", "float"),
            _c("close", "float"),
            _c("volume_base", "float"),
            _c("volume_quote", "float", False),
            _c("taker_buy_base", "float", False),
            _c("trades", "int", False),
        ),
        ("venue", "symbol", "interval", "ts_ms"),
    ),
    Kind.OPEN_INTEREST: Layout(
        Kind.OPEN_INTEREST,
        (
            _c("ts_ms", "int"),
            _c("venue", "str"),
            _c("symbol", "str"),
            _c("oi_base", "float"),
            _c("oi_contracts", "float", False),
            _c("oi_usd", "float", False),
        ),
        ("venue", "symbol", "ts_ms"),
    ),
    Kind.FUNDING: Layout(
        Kind.FUNDING,
        (
            _c("ts_ms", "int"),
            _c("venue", "str"),
            _c("symbol", "str"),
            _c("funding_rate", "float"),
            _c("interval_h", "float", False),
        ),
        ("venue", "symbol", "ts_ms"),
    ),
    Kind.LIQUIDATIONS: Layout(
        Kind.LIQUIDATIONS,
        (
            _c("ts_ms", "int"),
            _c("venue", "str"),
            _c("symbol", "str"),
            _c("interval", "str"),
            _c("long_liq_base", "float"),
            _c("short_liq_base", "float"),
            _c("long_liq_usd", "float", False),
            _c("short_liq_usd", "float", False),
        ),
        ("venue", "symbol", "interval", "ts_ms"),
    ),
    Kind.LIQUIDATION_ORDERS: Layout(
        Kind.LIQUIDATION_ORDERS,
        (
            _c("ts_ms", "int"),
            _c("venue", "str"),
            _c("symbol", "str"),
            _c("position_side", "str"),
            _c("qty_base", "float"),
            _c("price", "float"),
            _c("usd", "float"),
        ),
        ("venue", "symbol", "ts_ms", "position_side", "price", "qty_base"),
    ),
    Kind.POSITIONING: Layout(
        Kind.POSITIONING,
        (
            _c("ts_ms", "int"),
            _c("venue", "str"),
            _c("symbol", "str"),
            _c("top_account_ls_ratio", "float", False),
            _c("top_position_ls_ratio", "float", False),
            _c("account_ls_ratio", "float", False),
            _c("taker_buy_sell_ratio", "float", False),
        ),
        ("venue", "symbol", "ts_ms"),
        merge=True,
    ),
    Kind.PREMIUM_INDEX: Layout(
        Kind.PREMIUM_INDEX,
        (
            _c("ts_ms", "int"),
            _c("venue", "str"),
            _c("symbol", "str"),
            _c("interval", "str"),
            _c("open", "float"),
            _c("high", "float"),
            _c("low", "float"),
            _c("close", "float"),
        ),
        ("venue", "symbol", "interval", "ts_ms"),
    ),
}

DEFAULT_FUNDING_INTERVAL_H = 8.0
