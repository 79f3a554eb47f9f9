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

import platformdirs

from oiradar.errors import NoDataError, StoreError, UserError
from oiradar.kinds import Kind
from oiradar.store import sqlite_state
from oiradar.store.base import ENV_DB, Span
from oiradar.store.rows import upsert_sql
from oiradar.store.schema import MIGRATIONS, SCHEMA_VERSION, STATE_VERSION
from oiradar.store.sql import BUMP_VERSION, SqlStore

BUSY_TIMEOUT_MS = 30_000
# What a checkpoint leaves of the WAL file. Without a limit SQLite reuses the file but never
# shrinks it: a daemon's hourly prune (one transaction over an hour of raw rows) and a
# checkpoint held back by a reader left ~190 MB of WAL behind in a 72-hour soak.
WAL_LIMIT_BYTES = 64 << 20
_K = TypeVar("_K")
# The daemon re-sends its open span with a later end every flush: keep the longest end.
_COVERAGE_UPSERT = (
    "INSERT INTO liquidation_coverage (venue, symbol, start_ms, end_ms) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (venue, symbol, start_ms) DO UPDATE SET end_ms = MAX(end_ms, excluded.end_ms)"
)


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


class SqliteStore(SqlStore):
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
            conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
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
                    conn.execute(BUMP_VERSION)
        except sqlite3.Error as exc:
            raise StoreError(f"write to {self.path} failed: {exc}") from None
        return changed

    # -- reading (store.sql) ---------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        yield self._conn

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        try:
            with self._transaction() as conn:
                yield conn
        except sqlite3.Error as exc:
            raise StoreError(f"write to {self.path} failed: {exc}") from None

    # -- what a running daemon publishes ---------------------------------------------------

    def append_alert(self, alert: dict[str, Any]) -> int:
        with self._writing() as conn:
            return sqlite_state.append_alert(conn, alert)
