"""PostgreSQL store (`--db postgresql://user@host:port/dbname`): many hosts, one database.

psycopg 3 with its connection pool: a store is shared across threads like SQLite's (each
call borrows a pooled connection), and a connection the server dropped is replaced on the
next borrow. Bulk writes COPY into a staging table and move it with one upsert per kind
(store.pg_schema), so a batch of 100k rows is one round trip of data, and re-imports count
only real changes, as SQLite does. Reads are SQLite's queries (store.sql), run with `%s`
marks. A password comes from the URL, PGPASSWORD or ~/.pgpass (libpq reads those) and is
never shown: `location` is the URL without it.

Assumptions (psycopg 3.2+ docs): `Cursor.copy` streams rows in text format (a None is
NULL); `ConnectionPool(open=False)` then `open()`; a pooled connection commits on leaving
`pool.connection()` and rolls back on an exception. NaN floats are stored as NULL, as
SQLite stores them (PostgreSQL would keep NaN as a value): the upsert maps them.
`Connection.notifies(timeout=, stop_after=)` (3.2+) yields the NOTIFYs of a LISTEN
connection in autocommit mode; a NOTIFY is delivered when its transaction commits.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from oiradar.errors import NoDataError, StoreError, UserError
from oiradar.kinds import Kind
from oiradar.store import pg_schema
from oiradar.store.base import Span, redacted
from oiradar.store.schema import SCHEMA_VERSION
from oiradar.store.sql import SqlStore, dump_json
from oiradar.store.sql_series import Cursor, Sql

_K = TypeVar("_K")
POOL_MAX = 8  # the daemon's store threads plus the dashboard's, with room to spare
CONNECT_TIMEOUT_S = 10
LISTEN_CHECK_S = 0.1  # a LISTEN wait re-reads the count at least this often (a lost NOTIFY)


@functools.lru_cache(maxsize=256)
def _pg(sql: str) -> str:
    """A query written with `?` marks (store.sql) in psycopg's `%s` style."""
    return sql.replace("%", "%%").replace("?", "%s")


class _PgSql:
    """A psycopg connection as the `Sql` the shared reads run on."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Cursor:
        # Binary results: numbers arrive as IEEE doubles, not text to parse (read_series).
        return self.conn.execute(_pg(sql), params, binary=True)


def _reason(exc: BaseException) -> str:
    """The first line of a database error: the message, never the connection string."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class PostgresStore(SqlStore):
    """The server store (`open_store("postgresql://...")`); use as a context manager."""

    def __init__(self, url: str, *, readonly: bool = False) -> None:
        self.location = redacted(url)
        self.readonly = readonly
        try:
            options = conninfo_to_dict(url).get("options") or ""
            if readonly:  # the server refuses every write of this handle's sessions
                options = f"{options} -c default_transaction_read_only=on".strip()
            self._conninfo = make_conninfo(
                url,
                options=options or None,
                application_name="oiradar",
                connect_timeout=CONNECT_TIMEOUT_S,
            )
        except psycopg.Error as exc:  # libpq's words name the part, never echo the URL
            raise UserError(f"invalid store URL {self.location}: {_reason(exc)}") from None
        self._migrate()
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=POOL_MAX,
            open=False,
            check=ConnectionPool.check_connection,
            name="oiradar-store",
        )
        self._pool.open()
        self._closed = False
        self._listen: psycopg.Connection[Any] | None = None
        self._listen_lock = threading.Lock()

    def close(self) -> None:
        self._closed = True
        self._pool.close()
        self._drop_listener()

    # -- connections -----------------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if getattr(self, "_closed", True):
            raise StoreError(f"store {self.location} is closed")
        try:
            with self._pool.connection(timeout=30) as conn:
                yield conn
        except (PoolClosed, PoolTimeout) as exc:
            raise StoreError(f"store {self.location}: {_reason(exc)}") from None
        except psycopg.Error as exc:
            raise StoreError(f"store {self.location}: {_reason(exc)}") from None

    @contextmanager
    def _reading(self) -> Iterator[_PgSql]:
        with self._connection() as conn:
            yield _PgSql(conn)

    def _stream(self, sql: str, params: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        """Through a server-side cursor, 10 000 rows a round trip: an export of a table of
        millions of rows never holds it all in memory."""
        with self._connection() as conn, conn.cursor("oiradar_rows", binary=True) as cur:
            cur.itersize = 10_000
            cur.execute(_pg(sql), params)
            yield from cur

    @contextmanager
    def _writing(self) -> Iterator[_PgSql]:
        with self._connection() as conn, conn.transaction():
            yield _PgSql(conn)

    @property
    def schema_version(self) -> int:
        with self._reading() as db:
            return int(db.execute("SELECT version FROM schema_info").fetchone()[0])

    def _migrate(self) -> None:
        """Create or upgrade the schema in one transaction, one host at a time."""
        try:
            with psycopg.connect(self._conninfo) as conn:
                if self.readonly:
                    self._check_version(_current(conn))
                    return
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (pg_schema.MIGRATION_LOCK,))
                current = _current(conn)
                self._check_version(current)
                for version in range(current, SCHEMA_VERSION):
                    for stmt in pg_schema.MIGRATIONS[version]:
                        conn.execute(stmt)
                if current == 0:
                    conn.execute("CREATE TABLE schema_info (version INTEGER NOT NULL)")
                    conn.execute("INSERT INTO schema_info VALUES (%s)", (SCHEMA_VERSION,))
                elif current < SCHEMA_VERSION:
                    conn.execute("UPDATE schema_info SET version = %s", (SCHEMA_VERSION,))
        except psycopg.Error as exc:
            raise StoreError(f"cannot open store {self.location}: {_reason(exc)}") from None

    def _check_version(self, current: int) -> None:
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.location} has schema v{current}, newer than this oiradar "
                f"(v{SCHEMA_VERSION}); upgrade oiradar"
            )
        if self.readonly and current == 0:
            raise NoDataError(
                f"no store at {self.location}: import data first (oiradar import PATH)"
            )
        if self.readonly and current < SCHEMA_VERSION:
            raise StoreError(
                f"store {self.location} needs a migration; run any writing command first"
            )

    # -- writing ---------------------------------------------------------------------------

    def write_grouped(
        self,
        batches: Sequence[tuple[_K, Kind, Sequence[Sequence[Any]]]],
        *,
        coverage: Iterable[Span] = (),
    ) -> dict[_K, int]:
        """Every batch and the `coverage` spans in ONE transaction (base.Store says what)."""
        changed: dict[_K, int] = {}
        spans = list(coverage)
        with self._connection() as conn, conn.transaction():
            for group, kind, rows in batches:
                n = _upsert(conn, kind, rows) if rows else 0
                changed[group] = changed.get(group, 0) + n
            if spans:
                with conn.cursor() as cur:
                    cur.executemany(pg_schema.COVERAGE_UPSERT, spans)
            if spans or any(changed.values()):
                self._bump(_PgSql(conn))
        return changed

    def _notify(self, db: Sql) -> None:
        """Every listener is told at the commit (PostgreSQL delivers a NOTIFY only once its
        transaction commits, and folds repeats within one)."""
        db.execute(f"NOTIFY {pg_schema.CHANNEL}")

    def wait_changed(self, seen: int, timeout_s: float) -> int:
        """Sleeps on a LISTEN connection of its own until a commit NOTIFYs (or `timeout_s`),
        then reads the version. One waiter at a time per handle; a dropped listener is
        reconnected on the next call (a notification missed meanwhile costs one re-read:
        the count is compared, not the notifications counted)."""
        deadline = time.monotonic() + timeout_s
        with self._listen_lock:
            while (now := self.changes()) == seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    listener = self._listener()
                    for _ in listener.notifies(timeout=min(left, LISTEN_CHECK_S), stop_after=1):
                        pass
                except psycopg.Error as exc:
                    self._drop_listener()
                    raise StoreError(f"store {self.location}: {_reason(exc)}") from None
        return now

    def _listener(self) -> psycopg.Connection[Any]:
        if self._listen is None or self._listen.closed:
            conn = psycopg.connect(self._conninfo, autocommit=True)
            conn.execute(f"LISTEN {pg_schema.CHANNEL}")
            self._listen = conn
        return self._listen

    def _drop_listener(self) -> None:
        conn, self._listen = getattr(self, "_listen", None), None
        if conn is not None:
            conn.close()

    def append_alert(self, alert: dict[str, Any]) -> int:
        with self._connection() as conn, conn.transaction():
            row = conn.execute(
                "INSERT INTO alert_log (alert) VALUES (%s) RETURNING seq", (dump_json(alert),)
            ).fetchone()
        return int(row[0]) if row else 0


def _current(conn: psycopg.Connection[Any]) -> int:
    """The schema version stored (0: a database oiradar never wrote)."""
    row = conn.execute("SELECT to_regclass('schema_info') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    version = conn.execute("SELECT version FROM schema_info").fetchone()
    return int(version[0]) if version else 0


def _upsert(conn: psycopg.Connection[Any], kind: Kind, rows: Sequence[Sequence[Any]]) -> int:
    """COPY the rows into the kind's staging table and upsert them; rows changed."""
    with conn.cursor() as cur:
        cur.execute(pg_schema.stage_table(kind))
        try:
            with conn.transaction(), cur.copy(pg_schema.copy_sql(kind, binary=True)) as copy:
                copy.set_types(pg_schema.COPY_TYPES[kind])
                for row in rows:
                    copy.write_row(row)
        except (TypeError, ValueError, OverflowError):
            # A value binary COPY cannot take as its column's type (a float for an integer):
            # the server parses text instead, and refuses what its type cannot hold.
            with cur.copy(pg_schema.copy_sql(kind, binary=False)) as copy:
                for row in rows:
                    copy.write_row(row)
        try:
            with conn.transaction():
                cur.execute(pg_schema.upsert_from_stage(kind, dedupe=False))
        except psycopg.errors.CardinalityViolation:
            # The batch repeats a key (one upsert cannot touch a row twice): keep its last
            # row per key, as SQLite's row-by-row upserts end up with.
            cur.execute(pg_schema.upsert_from_stage(kind, dedupe=True))
        n = cur.rowcount
        cur.execute(f"TRUNCATE stage_{kind.value}")
    return max(n, 0)


def open_postgres(url: str, readonly: bool) -> PostgresStore:
    """The `BACKENDS` opener of postgresql:// (and postgres://) URLs."""
    return PostgresStore(url, readonly=readonly)
