"""The SQL backends' columnar read path: a `MarketSeries` filled straight from the cursors.

No row objects or dataframes in between: each query's values go into one numpy array. The
queries are written once, with `?` marks, in the SQL that SQLite and PostgreSQL share; a
backend hands in an `Sql` that runs them (store.sql).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from oiradar.records import MarketSeries
from oiradar.store.series import UNBOUNDED, Columns, assemble, premium_sizes, week_offset
from oiradar.units import interval_ms, interval_name


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Sql(Protocol):
    """What runs a query written with `?` marks: a sqlite3 connection, or an adapter."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...


def columns(conn: Sql, sql: str, params: Sequence[Any], ncols: int) -> NDArray[np.float64]:
    """Run a numeric query into an (n, ncols) float array without per-row Python objects."""
    cur = conn.execute(sql, params)
    flat = np.fromiter(
        (np.nan if v is None else v for v in itertools.chain.from_iterable(cur)),
        dtype=np.float64,
    )
    return flat.reshape(-1, ncols)


def read_series(
    conn: Sql,
    venue: str,
    symbol: str,
    interval: str,
    start_ms: int | None,
    end_ms: int | None,
) -> MarketSeries:
    """The bars opening in [start_ms, end_ms], with the OI snapshots, positioning samples and
    liquidation orders up to the last bar's close (end_ms + one bar) and premium-index bars
    inside those bars (see `_premium`)."""
    lo = start_ms if start_ms is not None else -UNBOUNDED
    hi = end_ms if end_ms is not None else UNBOUNDED
    c = columns(
        conn,
        "SELECT ts_ms, open, high, low, close, volume_base, taker_buy_base FROM candles "
        "WHERE venue = ? AND symbol = ? AND interval = ? AND ts_ms BETWEEN ? AND ? "
        "ORDER BY ts_ms",
        (venue, symbol, interval, lo, hi),
        7,
    )
    bar_ms = interval_ms(interval)
    # The last bar's OI snapshot is taken at its close, one bar after its open.
    last_close = hi + bar_ms if hi < UNBOUNDED else hi
    o = columns(
        conn,
        "SELECT ts_ms, oi_base FROM open_interest WHERE venue = ? AND symbol = ? AND "
        "ts_ms BETWEEN ? AND ? ORDER BY ts_ms",
        (venue, symbol, lo, last_close),
        2,
    )
    # Funding in force at the start needs the last rate before it.
    f = columns(
        conn,
        "SELECT ts_ms, funding_rate, COALESCE(interval_h, 8.0) FROM funding WHERE venue = ? "
        "AND symbol = ? AND ts_ms BETWEEN "
        "COALESCE((SELECT MAX(ts_ms) FROM funding WHERE venue = ? AND symbol = ? "
        "AND ts_ms < ?),"
        " ?) AND ? ORDER BY ts_ms",
        (venue, symbol, venue, symbol, lo, lo, hi),
        3,
    )
    bars, orders = _liquidations(conn, venue, symbol, interval, lo, hi)
    spans = np.array(
        conn.execute(
            "SELECT start_ms, end_ms FROM liquidation_coverage WHERE venue = ? AND "
            "symbol = ? AND start_ms <= ? AND end_ms >= ? ORDER BY start_ms",
            (venue, symbol, last_close, lo),
        ).fetchall(),
        dtype=np.int64,
    ).reshape(-1, 2)
    # A live feed's series stays span-ruled even where no span reaches the range read.
    tracked = len(spans) > 0 or (
        conn.execute(
            "SELECT 1 FROM liquidation_coverage WHERE venue = ? AND symbol = ? LIMIT 1",
            (venue, symbol),
        ).fetchone()
        is not None
    )
    pos = columns(
        conn,
        "SELECT ts_ms, top_account_ls_ratio, top_position_ls_ratio, account_ls_ratio, "
        "taker_buy_sell_ratio FROM positioning WHERE venue = ? AND symbol = ? AND "
        "ts_ms BETWEEN ? AND ? ORDER BY ts_ms",
        # Like OI: the sample at the last bar's close (its taker ratio covers that bar).
        (venue, symbol, lo, last_close),
        5,
    )
    prem = _premium(conn, venue, symbol, bar_ms, lo, hi)
    cols = Columns(c, o, f, bars, orders, spans, tracked, pos, prem)
    return assemble(venue, symbol, bar_ms, cols)


def _liquidations(
    conn: Sql, venue: str, symbol: str, interval: str, lo: int, hi: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(per-bar totals, single orders) as (ts, long USD, short USD) rows. Totals count only
    at the bar size or finer (they sum into grid bars); USD falls back to base x the close
    of the grid bar they fall in. Orders during the last bar belong to it: up to (not
    including) its close."""
    bar_ms = interval_ms(interval)
    stored = conn.execute(
        "SELECT DISTINCT interval FROM liquidations WHERE venue = ? AND symbol = ?",
        (venue, symbol),
    ).fetchall()
    usable = [str(r[0]) for r in stored if bar_ms % interval_ms(str(r[0])) == 0]
    marks = ", ".join("?" for _ in usable) or "NULL"
    bars = columns(
        conn,
        "SELECT l.ts_ms, COALESCE(l.long_liq_usd, l.long_liq_base * c.close), "
        "COALESCE(l.short_liq_usd, l.short_liq_base * c.close) FROM liquidations l "
        "LEFT JOIN candles c ON c.venue = l.venue AND c.symbol = l.symbol AND "
        "c.interval = ? AND c.ts_ms = l.ts_ms - (l.ts_ms % ?) "
        f"WHERE l.venue = ? AND l.symbol = ? AND l.interval IN ({marks}) "
        "AND l.ts_ms BETWEEN ? AND ? ORDER BY l.ts_ms",
        (interval, bar_ms, venue, symbol, *usable, lo, hi),
        3,
    )
    orders = columns(
        conn,
        "SELECT ts_ms, CASE position_side WHEN 'LONG' THEN usd ELSE 0 END, "
        "CASE position_side WHEN 'SHORT' THEN usd ELSE 0 END FROM liquidation_orders "
        "WHERE venue = ? AND symbol = ? AND ts_ms >= ? AND ts_ms < ?",
        (venue, symbol, lo, hi + bar_ms if hi < UNBOUNDED else hi),
        3,
    )
    return bars, orders


def _premium(
    conn: Sql, venue: str, symbol: str, bar_ms: int, lo: int, hi: int
) -> NDArray[np.float64]:
    """(open, close) rows of premium-index bars of ONE size: the coarsest stored size that
    divides the bar (the bar's own first) with a bar in range. Bars opening at or after
    `lo` that lie in a grid bar opening at or before `hi` (finer bars fill the last one)."""
    offset = week_offset(bar_ms)
    end = hi + bar_ms
    for size in premium_sizes(bar_ms):
        name = interval_name(size)
        # One index seek per size: no scan of a long series to list its sizes.
        if conn.execute(
            "SELECT 1 FROM premium_index WHERE venue = ? AND symbol = ? AND interval = ? "
            "AND ts_ms >= ? AND ts_ms < ? LIMIT 1",
            (venue, symbol, name, lo, end),
        ).fetchone():
            return columns(
                conn,
                "SELECT ts_ms, close FROM premium_index WHERE venue = ? AND symbol = ? AND "
                "interval = ? AND ts_ms >= ? AND ts_ms < ? AND ts_ms - ((ts_ms - ?) % ?) <= ? "
                "ORDER BY ts_ms",
                (venue, symbol, name, lo, end, offset, bar_ms, hi),
                2,
            )
    return np.empty((0, 2))
