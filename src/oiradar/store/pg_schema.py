"""PostgreSQL's schema: SQLite's tables and versions (store.schema) in PostgreSQL's types.

Version N names the same tables on both backends, so `oiradar info` reads alike. PostgreSQL
has no `user_version`: the version is the one row of `schema_info`, and the migrations run
in one transaction (PostgreSQL's DDL is transactional) under an advisory lock, so two hosts
starting at once cannot both migrate. Tables are plain heaps keyed by the layout's key (a
B-tree that serves every `read_series` range); `candles_by_symbol` serves `venues_for`.

Bulk writes go through a per-connection temporary staging table per kind (`stage_<kind>`,
the kind's columns plus a sequence): COPY fills it, and one INSERT … SELECT … ON CONFLICT
moves it into the table, keeping per key the last row given (or, for a merging layout, the
last non-empty value of each column), as SQLite's row-by-row upserts would.
"""

from __future__ import annotations

from oiradar.kinds import LAYOUTS, Kind
from oiradar.store.rows import on_conflict
from oiradar.store.schema import (
    ADD_WORKERS_VERSION,
    LEASES_TABLE,
    LISTINGS_TABLE,
    SCHEMA_VERSION,
    V1_KINDS,
    WORKERS_TABLE,
    create_table,
)

# Text compares byte-wise (COLLATE "C"), as in SQLite: the same key order on any server locale.
PG_TYPES = {"int": "BIGINT", "float": "DOUBLE PRECISION", "str": 'TEXT COLLATE "C"'}
_BINARY = {"int": "int8", "float": "float8", "str": "text"}
MIGRATION_LOCK = 0x6F69_7261_6461_72  # "oiradar": one advisory lock id for every host
CHANNEL = "oiradar_changes"  # NOTIFY'd by every commit that changed market data or a heartbeat


def _table(kind: Kind) -> str:
    return create_table(kind, PG_TYPES, "")


MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        *(_table(k) for k in V1_KINDS),
        """CREATE TABLE instruments (
  venue TEXT COLLATE "C" NOT NULL, symbol TEXT COLLATE "C" NOT NULL, venue_symbol TEXT NOT NULL,
  base TEXT NOT NULL, quote TEXT NOT NULL, contract_size DOUBLE PRECISION NOT NULL,
  kind TEXT NOT NULL, funding_interval_h DOUBLE PRECISION,
  PRIMARY KEY (venue, symbol)
)""",
        "CREATE INDEX candles_by_symbol ON candles (symbol, venue)",
    ),
    (
        """CREATE TABLE liquidation_coverage (
  venue TEXT COLLATE "C" NOT NULL, symbol TEXT COLLATE "C" NOT NULL,
  start_ms BIGINT NOT NULL, end_ms BIGINT NOT NULL,
  PRIMARY KEY (venue, symbol, start_ms)
)""",
    ),
    (_table(Kind.POSITIONING), _table(Kind.PREMIUM_INDEX)),
    (
        """CREATE TABLE watch_state (
  id INTEGER PRIMARY KEY CHECK (id = 1), status TEXT NOT NULL, engine TEXT NOT NULL
)""",
        """CREATE TABLE open_episodes (
  symbol TEXT NOT NULL PRIMARY KEY, phase TEXT NOT NULL, started_ms BIGINT NOT NULL
)""",
        "CREATE TABLE alert_log (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "alert TEXT NOT NULL)",
        "CREATE TABLE meta (key TEXT NOT NULL PRIMARY KEY, value BIGINT NOT NULL)",
        "INSERT INTO meta VALUES ('market_version', 0)",
    ),
    (WORKERS_TABLE.format(int="BIGINT"), LEASES_TABLE.format(int="BIGINT"), ADD_WORKERS_VERSION),
    (LISTINGS_TABLE.replace("TEXT", 'TEXT COLLATE "C"').format(int="BIGINT"),),
)
assert len(MIGRATIONS) == SCHEMA_VERSION, "a SQLite migration lacks its PostgreSQL twin"

COVERAGE_UPSERT = (
    "INSERT INTO liquidation_coverage (venue, symbol, start_ms, end_ms) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (venue, symbol, start_ms) DO UPDATE "
    "SET end_ms = GREATEST(liquidation_coverage.end_ms, excluded.end_ms)"
)


def stage_table(kind: Kind) -> str:
    """The connection's staging table of a kind (NOT NULLs kept: a bad row fails the COPY)."""
    return (
        f"CREATE TEMP TABLE IF NOT EXISTS stage_{kind.value} (LIKE {kind.value}, "
        "stage_seq BIGINT GENERATED ALWAYS AS IDENTITY)"
    )


def copy_sql(kind: Kind, *, binary: bool) -> str:
    """Binary COPY: a third of text COPY's cost on both ends (no number formatting/parsing)."""
    sql = f"COPY stage_{kind.value} ({', '.join(LAYOUTS[kind].names)}) FROM STDIN"
    return sql + " (FORMAT BINARY)" if binary else sql


COPY_TYPES = {k: [_BINARY[c.dtype] for c in LAYOUTS[k].columns] for k in Kind}
"""The binary COPY's column types of each kind, in layout order."""


def upsert_from_stage(kind: Kind, *, dedupe: bool) -> str:
    """Staged rows into the table, updated only where a value really differs, so the row
    count is the real changes. `dedupe`: one row per key first (the last; merged for a
    merging layout, always), which costs a sort that a batch without repeated keys need
    not pay. A NaN float becomes NULL here, as SQLite stores it (PostgreSQL keeps NaN)."""
    layout = LAYOUTS[kind]
    key = ", ".join(layout.key)
    names = ", ".join(layout.names)
    value = {c.name: f"NULLIF({c.name}, 'NaN')" if c.dtype == "float" else c.name
             for c in layout.columns}  # fmt: skip
    if layout.merge:
        picks = ", ".join(
            n
            if n in layout.key
            else f"(array_agg({value[n]} ORDER BY stage_seq DESC) "
            f"FILTER (WHERE {value[n]} IS NOT NULL))[1]"
            for n in layout.names
        )
        source = f"SELECT {picks} FROM stage_{kind.value} GROUP BY {key}"
    elif dedupe:
        source = (
            f"SELECT DISTINCT ON ({key}) {', '.join(value[n] for n in layout.names)} "
            f"FROM stage_{kind.value} ORDER BY {key}, stage_seq DESC"
        )
    else:
        source = f"SELECT {', '.join(value[n] for n in layout.names)} FROM stage_{kind.value}"
    return f"INSERT INTO {kind.value} ({names}) {source} " + on_conflict(kind, "IS DISTINCT FROM")
