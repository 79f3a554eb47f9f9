"""Records as table rows, and the upsert that stores them (one statement per kind)."""

from __future__ import annotations

from typing import Any

from oiradar.kinds import LAYOUTS, Kind
from oiradar.records import (
    Candle,
    FundingSample,
    Liquidation,
    LiquidationBar,
    OISample,
    Positioning,
    PremiumBar,
)
from oiradar.units import interval_name

Record = OISample | Candle | FundingSample | Liquidation | LiquidationBar | Positioning | PremiumBar


def upsert_sql(kind: Kind) -> str:
    """INSERT one row, or UPDATE only where values really differ: re-importing counts no change."""
    layout = LAYOUTS[kind]
    marks = ", ".join("?" for _ in layout.names)
    return f"INSERT INTO {kind.value} ({', '.join(layout.names)}) VALUES ({marks}) " + on_conflict(
        kind, "IS NOT"
    )


def on_conflict(kind: Kind, differs: str) -> str:
    """The upsert's ON CONFLICT clause; `differs` is the null-safe inequality of the dialect
    (SQLite's `IS NOT`, PostgreSQL's `IS DISTINCT FROM`).

    For a merging layout an empty value keeps the stored one (a source that lacks a column
    does not erase what another source gave) and only a new non-empty value is a change.
    """
    layout = LAYOUTS[kind]
    values = [n for n in layout.names if n not in layout.key]
    sql = f"ON CONFLICT ({', '.join(layout.key)})"
    if not values:
        return sql + " DO NOTHING"
    if layout.merge:
        sets = ", ".join(f"{n} = COALESCE(excluded.{n}, {kind.value}.{n})" for n in values)
        changes = " OR ".join(
            f"(excluded.{n} IS NOT NULL AND excluded.{n} {differs} {kind.value}.{n})"
            for n in values
        )
    else:
        sets = ", ".join(f"{n} = excluded.{n}" for n in values)
        changes = " OR ".join(f"{kind.value}.{n} {differs} excluded.{n}" for n in values)
    return f"{sql} DO UPDATE SET {sets} WHERE {changes}"


def record_row(rec: Record) -> tuple[Kind, tuple[Any, ...]]:
    """A record as a row in its kind's layout order (kinds.LAYOUTS)."""
    if isinstance(rec, OISample):
        return Kind.OPEN_INTEREST, (
            rec.ts_ms,
            rec.venue,
            rec.symbol,
            rec.oi_base,
            rec.oi_contracts,
            rec.oi_usd,
        )
    if isinstance(rec, Candle):
        return Kind.CANDLES, (
            rec.ts_ms,
            rec.venue,
            rec.symbol,
            interval_name(rec.interval_ms),
            rec.open,
            rec.high,
            rec.low,
            rec.close,
            rec.volume_base,
            rec.volume_quote,
            rec.taker_buy_base,
            rec.trades,
        )
    if isinstance(rec, FundingSample):
        return Kind.FUNDING, (rec.ts_ms, rec.venue, rec.symbol, rec.rate, rec.interval_h)
    if isinstance(rec, Liquidation):
        return Kind.LIQUIDATION_ORDERS, (
            rec.ts_ms,
            rec.venue,
            rec.symbol,
            rec.position_side.value,
            rec.qty_base,
            rec.price,
            rec.usd,
        )
    if isinstance(rec, Positioning):
        return Kind.POSITIONING, (
            rec.ts_ms,
            rec.venue,
            rec.symbol,
            rec.top_account_ratio,
            rec.top_position_ratio,
            rec.account_ratio,
            rec.taker_buy_sell_ratio,
        )
    if isinstance(rec, PremiumBar):
        return Kind.PREMIUM_INDEX, (
            rec.ts_ms,
            rec.venue,
            rec.symbol,
            interval_name(rec.interval_ms),
            rec.open,
            rec.high,
            rec.low,
            rec.close,
        )
    return Kind.LIQUIDATIONS, (
        rec.ts_ms,
        rec.venue,
        rec.symbol,
        interval_name(rec.interval_ms),
        rec.long_base,
        rec.short_base,
        rec.long_usd,
        rec.short_usd,
    )
