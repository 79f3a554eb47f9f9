"""SQLite store in WAL mode: idempotent upserts, one transaction per batch, columnar reads.

WAL lets `analyze` read while `import` (or the daemon) writes. Every write call is one
transaction, so a killed writer loses at most the batch in flight and never leaves a
half-written one behind. A SQLite connection belongs to one thread, so the store opens one
per thread that uses it (on first use) and closes them all in `close`: callers share one
`Store` across threads and never open a second one for a worker.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import platformdirs
from numpy.typing import NDArray

from oiradar.errors import NoDataError, StoreError, UserError
from oiradar.kinds import LAYOUTS, Kind
from oiradar.records import Candle, MarketSeries
from oiradar.store import sqlite_state
from oiradar.store.base import ENV_DB, LoggedAlert, RowWrites, Span, WatchState
from oiradar.store.rows import upsert_sql
from oiradar.store.schema import MIGRATIONS, SCHEMA_VERSION, STATE_VERSION
from oiradar.store.series import UNBOUNDED
from oiradar.store.sqlite_series import read_series
from oiradar.units import interval_ms

BUSY_TIMEOUT_MS = 30_000
_K = TypeVar("_K")
# The daemon re-sends its open span with a later end every flush: keep the longest end.
_COVERAGE_UPSERT = (
    "INSERT INTO liquidation_coverage (venue, symbol, start_ms, end_ms) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (venue, symbol, start_ms) DO UPDATE SET end_ms = MAX(end_ms, excluded.end_ms)"
)
_BUMP_VERSION = "UPDATE meta SET value = value + 1 WHERE key = 'market_version'"


def default_db_path() -> Path:
    """`$OIRADAR_DB`, else `oiradar.sqlite` in the platform's user-data directory."""
    env = os.environ.get(ENV_DB)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("oiradar", appauthor=False)) / "oiradar.sqlite"


def _make_folder(folder: Path) -> None:
    """The store's folder, created if missing; a file in the way is the user's to move."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the store's folder {folder}: {exc.strerror}") from None


class SqliteStore(RowWrites):
    """The embedded store (`open_store(path)`); use as a context manager to close."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.location = str(path)
        self.readonly = readonly
        if self.path.is_dir():  # SQLite would say "disk I/O error"
            raise UserError(f"store {self.path} is a folder: give a file, e.g. DIR/oiradar.sqlite")
        if readonly and not self.path.exists():
            raise NoDataError(f"no store at {self.path}: import data first (oiradar import PATH)")
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        try:
            if not readonly:
                _make_folder(self.path.parent)
            conn = self._conn
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")  # persistent: once per file
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(f"cannot open store {self.path}: {exc}") from None
        self._upserts = {k: upsert_sql(k) for k in Kind}

    @property
    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on its first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def _connect(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise StoreError(f"store {self.path} is closed")
            uri = f"file:{self.path}{'?mode=ro' if self.readonly else ''}"
            conn = sqlite3.connect(
                uri,
                uri=True,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,  # only so that `close` may close it from any thread
            )
            self._conns.append(conn)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not self.readonly:
            conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path} has schema v{current}, newer than this oiradar "
                f"(v{SCHEMA_VERSION});"
                " upgrade oiradar"
            )
        if current == SCHEMA_VERSION:
            return
        if self.readonly:
            raise StoreError(f"store {self.path} needs a migration; run any writing command first")
        with self._transaction():
            for version in range(current, SCHEMA_VERSION):
                for stmt in MIGRATIONS[version]:
                    self._conn.execute(stmt)
            if current < STATE_VERSION <= SCHEMA_VERSION:
                sqlite_state.adopt_sidecars(self._conn, self.path)
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- writing ---------------------------------------------------------------------------

    def write_grouped(
        self,
        batches: Sequence[tuple[_K, Kind, Sequence[Sequence[Any]]]],
        *,
        coverage: Iterable[Span] = (),
    ) -> dict[_K, int]:
        """Every batch and the `coverage` spans in ONE transaction (base.Store says what)."""
        changed: dict[_K, int] = {}
        try:
            with self._transaction() as conn:
                start = conn.total_changes
                for group, kind, rows in batches:
                    before = conn.total_changes
                    conn.executemany(self._upserts[kind], rows)
                    changed[group] = changed.get(group, 0) + conn.total_changes - before
                conn.executemany(_COVERAGE_UPSERT, coverage)
                if conn.total_changes > start:
                    conn.execute(_BUMP_VERSION)
        except sqlite3.Error as exc:
            raise StoreError(f"write to {self.path} failed: {exc}") from None
        return changed

    # -- reading ---------------------------------------------------------------------------

    def symbols(self) -> list[tuple[str, str]]:
        """(venue, symbol) pairs that have candles or OI."""
        rows = self._conn.execute(
            "SELECT DISTINCT venue, symbol FROM candles UNION "
            "SELECT DISTINCT venue, symbol FROM open_interest ORDER BY 1, 2"
        ).fetchall()
        return [(str(v), str(s)) for v, s in rows]

    def summary(self) -> list[tuple[str, str, str, int, int, int]]:
        """(kind, venue, symbol, rows, first ts, last ts) for every stored series."""
        out: list[tuple[str, str, str, int, int, int]] = []
        for kind in Kind:
            for venue, symbol, n, lo, hi in self._conn.execute(
                f"SELECT venue, symbol, COUNT(*), MIN(ts_ms), MAX(ts_ms) FROM {kind.value} "
                "GROUP BY venue, symbol ORDER BY venue, symbol"
            ):
                out.append((kind.value, venue, symbol, n, lo, hi))
        return out

    def candle_intervals(self) -> list[tuple[str, str, str, int, int, int]]:
        """(venue, symbol, interval, rows, first ts, last ts) per stored bar size."""
        return [
            (str(v), str(s), str(i), int(n), int(lo), int(hi))
            for v, s, i, n, lo, hi in self._conn.execute(
                "SELECT venue, symbol, interval, COUNT(*), MIN(ts_ms), MAX(ts_ms) FROM candles "
                "GROUP BY venue, symbol, interval ORDER BY venue, symbol"
            )
        ]

    def intervals(self, venue: str, symbol: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT DISTINCT interval FROM candles WHERE venue = ? AND symbol = ?", (venue, symbol)
        ).fetchall()
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
        lo, hi = self._conn.execute(
            "SELECT MIN(ts_ms), MAX(ts_ms) FROM candles WHERE venue = ? AND symbol = ? AND "
            "interval = ? AND ts_ms BETWEEN ? AND ?",
            (
                venue,
                symbol,
                interval,
                -UNBOUNDED if start_ms is None else start_ms,
                UNBOUNDED if end_ms is None else end_ms,
            ),
        ).fetchone()
        return None if lo is None else (int(lo), int(hi))

    def candle_at(self, venue: str, symbol: str, interval: str, ts_ms: int) -> Candle | None:
        """The stored bar opening at `ts_ms`, or None."""
        row = self._conn.execute(
            "SELECT open, high, low, close, volume_base, volume_quote, taker_buy_base, trades "
            "FROM candles WHERE venue = ? AND symbol = ? AND interval = ? AND ts_ms = ?",
            (venue, symbol, interval, ts_ms),
        ).fetchone()
        if row is None:
            return None
        return Candle(venue, symbol, interval_ms(interval), ts_ms, *row)

    def last_ts(
        self, kind: Kind, venue: str, symbol: str, start_ms: int | None, end_ms: int | None
    ) -> int | None:
        """The newest timestamp of a series within [start, end] (None: unbounded), or None."""
        lo = -UNBOUNDED if start_ms is None else start_ms
        hi = UNBOUNDED if end_ms is None else end_ms
        row = self._conn.execute(
            f"SELECT MAX(ts_ms) FROM {kind.value} WHERE venue = ? AND symbol = ? AND "
            "ts_ms BETWEEN ? AND ?",
            (venue, symbol, lo, hi),
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def latest_candles(self, interval: str) -> list[tuple[str, str, int]]:
        """(venue, symbol, newest bar open) of every series stored at `interval`."""
        # A skip-scan over the primary key: one index seek per series, never a table scan
        # (the dashboard asks every few seconds of a store with millions of bars).
        rows = self._conn.execute(
            """WITH RECURSIVE series(venue, symbol) AS (
                 SELECT * FROM (SELECT venue, symbol FROM candles ORDER BY venue, symbol LIMIT 1)
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
        ).fetchall()
        return [(str(v), str(s), int(t)) for v, s, t in rows if t is not None]

    def version(self) -> int:
        """The count of writes that changed market data (one row: cheap)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'market_version'")
        return int(row.fetchone()[0])

    def timestamps(
        self, kind: Kind, venue: str, symbol: str, start_ms: int, end_ms: int
    ) -> NDArray[np.int64]:
        """Every timestamp of a series within [start, end], sorted (to find holes)."""
        rows = self._conn.execute(
            f"SELECT DISTINCT ts_ms FROM {kind.value} WHERE venue = ? AND symbol = ? AND "
            "ts_ms BETWEEN ? AND ? ORDER BY ts_ms",
            (venue, symbol, start_ms, end_ms),
        ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def venues_for(self, symbol: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT DISTINCT venue FROM candles WHERE symbol = ? ORDER BY venue", (symbol,)
        ).fetchall()
        return [str(r[0]) for r in rows]

    def rows(
        self, kind: Kind, venue: str | None = None, symbol: str | None = None
    ) -> Iterator[tuple[Any, ...]]:
        """Every row of a kind in layout order (for export), sorted by key."""
        layout = LAYOUTS[kind]
        where, params = self._filter(venue, symbol)
        yield from self._conn.execute(
            f"SELECT {', '.join(layout.names)} FROM {kind.value}{where} "
            f"ORDER BY {', '.join(layout.key)}",
            params,
        )

    @staticmethod
    def _filter(venue: str | None, symbol: str | None) -> tuple[str, list[str]]:
        conds, params = [], []
        if venue is not None:
            conds.append("venue = ?")
            params.append(venue)
        if symbol is not None:
            conds.append("symbol = ?")
            params.append(symbol)
        return (" WHERE " + " AND ".join(conds) if conds else ""), params

    def read_series(
        self,
        venue: str,
        symbol: str,
        interval: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> MarketSeries:
        """Columnar history for the engine (store.sqlite_series)."""
        return read_series(self._conn, venue, symbol, interval, start_ms, end_ms)

    # -- what a running daemon publishes ---------------------------------------------------

    def put_watch_state(self, state: WatchState) -> None:
        try:
            with self._transaction() as conn:
                sqlite_state.put_watch_state(conn, state)
        except sqlite3.Error as exc:
            raise StoreError(f"write to {self.path} failed: {exc}") from None

    def watch_state(self) -> WatchState | None:
        return sqlite_state.watch_state(self._conn)

    def append_alert(self, alert: dict[str, Any]) -> int:
        try:
            with self._transaction() as conn:
                return sqlite_state.append_alert(conn, alert)
        except sqlite3.Error as exc:
            raise StoreError(f"write to {self.path} failed: {exc}") from None

    def alerts(self, after: int = 0, limit: int | None = None) -> list[LoggedAlert]:
        return sqlite_state.alerts(self._conn, after, limit)
