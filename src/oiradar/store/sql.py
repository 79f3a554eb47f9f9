"""What the SQL backends read alike: every query of the `Store` read side, written once.

SQLite and PostgreSQL share the SQL these reads need (row comparisons, recursive CTEs,
COALESCE), so each query is spelled once with `?` marks and a backend only says how it runs
one (`_reading`: a connection, or a pooled one behind an adapter). The write side differs
(SQLite's executemany vs PostgreSQL's COPY) and stays in each backend.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
from numpy.typing import NDArray

from oiradar.kinds import LAYOUTS, Kind
from oiradar.records import Candle, MarketSeries
from oiradar.store import sql_workers
from oiradar.store.base import Episode, Heartbeat, LoggedAlert, RowWrites, WatchState
from oiradar.store.series import UNBOUNDED
from oiradar.store.sql_series import Sql, read_series
from oiradar.units import interval_ms, interval_name

# Removes OI snapshots older than a cutoff that a later snapshot of the same bar supersedes:
# the engine takes a bar's last snapshot in (open, close] (signals.windows), so the read is
# unchanged. Parameters: cutoff, bar, bar.
PRUNE_OI = (
    "DELETE FROM open_interest WHERE ts_ms <= ? AND EXISTS (SELECT 1 FROM open_interest n "
    "WHERE n.venue = open_interest.venue AND n.symbol = open_interest.symbol AND "
    "n.ts_ms > open_interest.ts_ms AND n.ts_ms <= ((open_interest.ts_ms - 1) / ? + 1) * ?)"
)
# Orders of a live feed's series (one with coverage spans) older than a cutoff: those in a
# bar one span holds whole become a per-bar total at the bar open, added to a total already
# stored there (its USD from base x close where it had none, as read); the rest read as
# unknown anyway (signals.windows) and go. A series without spans (imported orders, where an
# empty bar reads as zero) is left alone. Parameters: bar, name, cutoff, bar, bar, bar.
_COVERED = (
    "EXISTS (SELECT 1 FROM liquidation_coverage c WHERE c.venue = o.venue AND "
    "c.symbol = o.symbol AND c.start_ms <= o.ts_ms - o.ts_ms % ? AND "
    "c.end_ms >= o.ts_ms - o.ts_ms % ? + ?)"
)
ROLL_UP_ORDERS = f"""INSERT INTO liquidations (ts_ms, venue, symbol, interval, long_liq_base,
    short_liq_base, long_liq_usd, short_liq_usd)
  SELECT o.ts_ms - o.ts_ms % ? AS bar_ts, o.venue, o.symbol, ?,
    SUM(CASE o.position_side WHEN 'LONG' THEN o.qty_base ELSE 0 END),
    SUM(CASE o.position_side WHEN 'SHORT' THEN o.qty_base ELSE 0 END),
    SUM(CASE o.position_side WHEN 'LONG' THEN o.usd ELSE 0 END),
    SUM(CASE o.position_side WHEN 'SHORT' THEN o.usd ELSE 0 END)
  FROM liquidation_orders o WHERE o.ts_ms < ? AND {_COVERED}
  GROUP BY o.venue, o.symbol, bar_ts
  ON CONFLICT (venue, symbol, interval, ts_ms) DO UPDATE SET
    long_liq_base = liquidations.long_liq_base + excluded.long_liq_base,
    short_liq_base = liquidations.short_liq_base + excluded.short_liq_base,
    long_liq_usd = COALESCE(liquidations.long_liq_usd, liquidations.long_liq_base * (
      SELECT c.close FROM candles c WHERE c.venue = liquidations.venue AND
      c.symbol = liquidations.symbol AND c.interval = excluded.interval AND
      c.ts_ms = liquidations.ts_ms), 0) + excluded.long_liq_usd,
    short_liq_usd = COALESCE(liquidations.short_liq_usd, liquidations.short_liq_base * (
      SELECT c.close FROM candles c WHERE c.venue = liquidations.venue AND
      c.symbol = liquidations.symbol AND c.interval = excluded.interval AND
      c.ts_ms = liquidations.ts_ms), 0) + excluded.short_liq_usd"""
DROP_ORDERS = (
    "DELETE FROM liquidation_orders WHERE ts_ms < ? AND EXISTS (SELECT 1 FROM "
    "liquidation_coverage c WHERE c.venue = liquidation_orders.venue AND "
    "c.symbol = liquidation_orders.symbol)"
)
BUMP_VERSION = "UPDATE meta SET value = value + 1 WHERE key = 'market_version'"
POLL_S = 0.01  # how often `wait_changed` asks the version where nothing wakes it (SQLite)


LEARN_LISTING = (
    "INSERT INTO listings (venue, symbol, listed_ms) VALUES (?, ?, ?) ON CONFLICT (venue, symbol) "
    "DO UPDATE SET listed_ms = excluded.listed_ms WHERE excluded.listed_ms < listings.listed_ms"
)


class SqlStore(RowWrites):
    """`Store` over `_reading()`, which yields an `Sql` for the calls inside, and (for the
    few writes the dialects share) `_writing()`, which yields one inside a transaction."""

    def _reading(self) -> AbstractContextManager[Sql]:
        raise NotImplementedError

    def _writing(self) -> AbstractContextManager[Sql]:
        raise NotImplementedError

    def _bump(self, db: Sql) -> None:
        """Market data changed in this transaction: the version grows (wakes `wait_changed`)."""
        db.execute(BUMP_VERSION)
        self._notify(db)

    def learn_listing(self, venue: str, symbol: str, listed_ms: int) -> None:
        with self._writing() as db:
            db.execute(LEARN_LISTING, (venue, symbol, listed_ms))

    def listings(self, venue: str) -> dict[str, int]:
        with self._reading() as db:
            rows = db.execute(
                "SELECT symbol, listed_ms FROM listings WHERE venue = ? ORDER BY symbol", (venue,)
            ).fetchall()
        return {str(sym): int(ms) for sym, ms in rows}

    def prune(self, before_ms: int, bar_ms: int) -> dict[Kind, int]:
        """Raw rows before the last whole bar of `before_ms` to per-bar values (base.Store)."""
        cutoff = before_ms // bar_ms * bar_ms
        with self._writing() as db:
            oi = db.execute(PRUNE_OI, (cutoff, bar_ms, bar_ms)).rowcount
            db.execute(ROLL_UP_ORDERS, (bar_ms, interval_name(bar_ms), cutoff, *(bar_ms,) * 3))
            orders = db.execute(DROP_ORDERS, (cutoff,)).rowcount
            if oi or orders:
                self._bump(db)
        return {Kind.OPEN_INTEREST: max(oi, 0), Kind.LIQUIDATION_ORDERS: max(orders, 0)}

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._reading() as db:
            return db.execute(sql, params).fetchall()

    def symbols(self) -> list[tuple[str, str]]:
        """(venue, symbol) pairs that have candles or OI."""
        rows = self._all(
            "SELECT DISTINCT venue, symbol FROM candles UNION "
            "SELECT DISTINCT venue, symbol FROM open_interest ORDER BY 1, 2"
        )
        return [(str(v), str(s)) for v, s in rows]

    def summary(self) -> list[tuple[str, str, str, int, int, int]]:
        """(kind, venue, symbol, rows, first ts, last ts) for every stored series."""
        out: list[tuple[str, str, str, int, int, int]] = []
        for kind in Kind:
            for venue, symbol, n, lo, hi in self._all(
                f"SELECT venue, symbol, COUNT(*), MIN(ts_ms), MAX(ts_ms) FROM {kind.value} "
                "GROUP BY venue, symbol ORDER BY venue, symbol"
            ):
                out.append((kind.value, venue, symbol, int(n), int(lo), int(hi)))
        return out

    def candle_intervals(self) -> list[tuple[str, str, str, int, int, int]]:
        """(venue, symbol, interval, rows, first ts, last ts) per stored bar size."""
        return [
            (str(v), str(s), str(i), int(n), int(lo), int(hi))
            for v, s, i, n, lo, hi in self._all(
                "SELECT venue, symbol, interval, COUNT(*), MIN(ts_ms), MAX(ts_ms) FROM candles "
                "GROUP BY venue, symbol, interval ORDER BY venue, symbol"
            )
        ]

    def intervals(self, venue: str, symbol: str) -> list[str]:
        rows = self._all(
            "SELECT DISTINCT interval FROM candles WHERE venue = ? AND symbol = ?", (venue, symbol)
        )
        return [str(r[0]) for r in rows]

    def candle_span(
        self,
        venue: str,
        symbol: str,
        interval: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> tuple[int, int] | None:
        """(first, last) bar open of stored candles within the range, or None."""
        ((lo, hi),) = self._all(
            "SELECT MIN(ts_ms), MAX(ts_ms) FROM candles WHERE venue = ? AND symbol = ? AND "
            "interval = ? AND ts_ms BETWEEN ? AND ?",
            (venue, symbol, interval, *_bounds(start_ms, end_ms)),
        )
        return None if lo is None else (int(lo), int(hi))

    def candle_at(self, venue: str, symbol: str, interval: str, ts_ms: int) -> Candle | None:
        """The stored bar opening at `ts_ms`, or None."""
        rows = self._all(
            "SELECT open, high, low, close, volume_base, volume_quote, taker_buy_base, trades "
            "FROM candles WHERE venue = ? AND symbol = ? AND interval = ? AND ts_ms = ?",
            (venue, symbol, interval, ts_ms),
        )
        return Candle(venue, symbol, interval_ms(interval), ts_ms, *rows[0]) if rows else None

    def last_ts(
        self, kind: Kind, venue: str, symbol: str, start_ms: int | None, end_ms: int | None
    ) -> int | None:
        """The newest timestamp of a series within [start, end] (None: unbounded), or None."""
        ((newest,),) = self._all(
            f"SELECT MAX(ts_ms) FROM {kind.value} WHERE venue = ? AND symbol = ? AND "
            "ts_ms BETWEEN ? AND ?",
            (venue, symbol, *_bounds(start_ms, end_ms)),
        )
        return None if newest is None else int(newest)

    def latest_candles(self, interval: str) -> list[tuple[str, str, int]]:
        """(venue, symbol, newest bar open) of every series stored at `interval`."""
        # A skip-scan over the primary key: one index seek per series, never a table scan
        # (the dashboard asks every few seconds of a store with millions of bars).
        rows = self._all(
            """WITH RECURSIVE series(venue, symbol) AS (
                 SELECT * FROM (SELECT venue, symbol FROM candles ORDER BY venue, symbol
                                LIMIT 1) AS first_series
                 UNION ALL
                 SELECT (SELECT c.venue FROM candles c WHERE (c.venue, c.symbol) >
                           (series.venue, series.symbol) ORDER BY c.venue, c.symbol LIMIT 1),
                        (SELECT c.symbol FROM candles c WHERE (c.venue, c.symbol) >
                           (series.venue, series.symbol) ORDER BY c.venue, c.symbol LIMIT 1)
                 FROM series WHERE series.venue IS NOT NULL)
               SELECT venue, symbol, (SELECT MAX(ts_ms) FROM candles c WHERE c.venue =
                 series.venue AND c.symbol = series.symbol AND c.interval = ?)
               FROM series WHERE venue IS NOT NULL""",
            (interval,),
        )
        return [(str(v), str(s), int(t)) for v, s, t in rows if t is not None]

    def version(self) -> int:
        """The count of writes that changed market data (one row: cheap)."""
        ((value,),) = self._all("SELECT value FROM meta WHERE key = 'market_version'")
        return int(value)

    def changes(self) -> int:
        with self._reading() as db:
            return sql_workers.changes(db)

    def wait_changed(self, seen: int, timeout_s: float) -> int:
        """Polls the two-row count every POLL_S (a SQLite read of microseconds: no server to
        push a change; PostgreSQL overrides this with LISTEN)."""
        deadline = time.monotonic() + timeout_s
        while (now := self.changes()) == seen and time.monotonic() < deadline:
            time.sleep(POLL_S)
        return now

    def liquidation_orders_since(
        self, venue: str, since_ms: int
    ) -> list[tuple[str, int, str, float]]:
        with self._reading() as db:
            return sql_workers.liquidation_orders_since(db, venue, since_ms)

    def beat(self, heartbeat: Heartbeat) -> None:
        with self._writing() as db:
            sql_workers.beat(db, heartbeat)
            self._notify(db)

    def _notify(self, db: Sql) -> None:
        """Waiters on another host are woken (PostgreSQL's NOTIFY; SQLite's poll needs none)."""

    def workers(self) -> list[Heartbeat]:
        with self._reading() as db:
            return sql_workers.workers(db)

    def take_lease(self, name: str, holder: str, now_ms: int, ttl_ms: int) -> bool:
        with self._writing() as db:
            return sql_workers.take_lease(db, name, holder, now_ms, ttl_ms)

    def release_lease(self, name: str, holder: str) -> None:
        with self._writing() as db:
            sql_workers.release_lease(db, name, holder)

    def lease(self, name: str) -> tuple[str, int] | None:
        with self._reading() as db:
            return sql_workers.lease(db, name)

    def timestamps(
        self, kind: Kind, venue: str, symbol: str, start_ms: int, end_ms: int
    ) -> NDArray[np.int64]:
        """Every timestamp of a series within [start, end], sorted (to find holes)."""
        rows = self._all(
            f"SELECT DISTINCT ts_ms FROM {kind.value} WHERE venue = ? AND symbol = ? AND "
            "ts_ms BETWEEN ? AND ? ORDER BY ts_ms",
            (venue, symbol, start_ms, end_ms),
        )
        return np.array([r[0] for r in rows], dtype=np.int64)

    def venues_for(self, symbol: str) -> list[str]:
        rows = self._all(
            "SELECT DISTINCT venue FROM candles WHERE symbol = ? ORDER BY venue", (symbol,)
        )
        return [str(r[0]) for r in rows]

    def rows(
        self, kind: Kind, venue: str | None = None, symbol: str | None = None
    ) -> Iterator[tuple[Any, ...]]:
        """Every row of a kind in layout order (for export), sorted by key."""
        layout = LAYOUTS[kind]
        given = [(name, v) for name, v in (("venue", venue), ("symbol", symbol)) if v is not None]
        conds = [f"{name} = ?" for name, _ in given]
        where = " WHERE " + " AND ".join(conds) if conds else ""
        yield from self._stream(
            f"SELECT {', '.join(layout.names)} FROM {kind.value}{where} "
            f"ORDER BY {', '.join(layout.key)}",
            tuple(v for _, v in given),
        )

    def _stream(self, sql: str, params: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        """A query's rows as they come (a backend may fetch them in chunks: exports)."""
        with self._reading() as db:
            yield from (tuple(r) for r in db.execute(sql, params))

    def read_series(
        self,
        venue: str,
        symbol: str,
        interval: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> MarketSeries:
        """Columnar history for the engine (store.sql_series)."""
        with self._reading() as db:
            return read_series(db, venue, symbol, interval, start_ms, end_ms)

    # -- what a running daemon publishes ---------------------------------------------------

    def put_watch_state(self, state: WatchState) -> None:
        with self._writing() as db:
            put_state(db, state)

    def watch_state(self) -> WatchState | None:
        with self._reading() as db:
            row = db.execute("SELECT status, engine FROM watch_state WHERE id = 1").fetchone()
            if row is None:
                return None
            episodes = tuple(
                Episode(str(s), str(p), int(t))
                for s, p, t in db.execute(
                    "SELECT symbol, phase, started_ms FROM open_episodes ORDER BY symbol"
                )
            )
        return WatchState(json.loads(row[0]), json.loads(row[1]), episodes)

    def alerts(self, after: int = 0, limit: int | None = None) -> list[LoggedAlert]:
        if limit is None:
            rows = self._all(
                "SELECT seq, alert FROM alert_log WHERE seq > ? ORDER BY seq", (after,)
            )
        else:
            rows = self._all(
                "SELECT seq, alert FROM alert_log WHERE seq > ? ORDER BY seq DESC LIMIT ?",
                (after, limit),
            )[::-1]
        return [LoggedAlert(int(seq), json.loads(text)) for seq, text in rows]


def put_state(db: Sql, state: WatchState) -> None:
    """Replace the published state whole, inside the caller's transaction."""
    db.execute(
        "INSERT INTO watch_state (id, status, engine) VALUES (1, ?, ?) ON CONFLICT (id) "
        "DO UPDATE SET status = excluded.status, engine = excluded.engine",
        (dump_json(state.status), dump_json(state.engine)),
    )
    db.execute("DELETE FROM open_episodes")
    for e in state.episodes:
        db.execute(
            "INSERT INTO open_episodes (symbol, phase, started_ms) VALUES (?, ?, ?)",
            (e.symbol, e.phase, e.started_ms),
        )


def dump_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"))


def _bounds(start_ms: int | None, end_ms: int | None) -> tuple[int, int]:
    return (
        -UNBOUNDED if start_ms is None else start_ms,
        UNBOUNDED if end_ms is None else end_ms,
    )
