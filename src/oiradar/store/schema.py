"""Versioned schema: migration N brings a database from version N-1 to N (PRAGMA user_version)."""

from __future__ import annotations

from oiradar.kinds import LAYOUTS, Kind

_SQL_TYPES = {"int": "INTEGER", "float": "REAL", "str": "TEXT"}


def create_table(
    kind: Kind, types: dict[str, str] = _SQL_TYPES, suffix: str = " WITHOUT ROWID"
) -> str:
    """A kind's table: its layout's columns (required ones NOT NULL), keyed on its key."""
    layout = LAYOUTS[kind]
    cols = ",\n  ".join(
        f"{c.name} {types[c.dtype]}{' NOT NULL' if c.required else ''}" for c in layout.columns
    )
    return (
        f"CREATE TABLE {kind.value} (\n  {cols},\n  PRIMARY KEY ({', '.join(layout.key)})\n)"
        + suffix
    )


# The kinds v1 created; later kinds get their tables in the migration that added them.
V1_KINDS = (
    Kind.CANDLES,
    Kind.OPEN_INTEREST,
    Kind.FUNDING,
    Kind.LIQUIDATIONS,
    Kind.LIQUIDATION_ORDERS,
)

WORKERS_TABLE = """CREATE TABLE workers (
  worker TEXT NOT NULL PRIMARY KEY, role TEXT NOT NULL, host TEXT NOT NULL, pid {int} NOT NULL,
  beat_ms {int} NOT NULL, detail TEXT NOT NULL
)"""
LEASES_TABLE = """CREATE TABLE leases (
  name TEXT NOT NULL PRIMARY KEY, holder TEXT NOT NULL, expires_ms {int} NOT NULL
)"""

# Where a venue that publishes no listing time starts serving a symbol's history, as a
# backfill found it: later runs ask nothing before it (it used to re-fetch that every run).
LISTINGS_TABLE = """CREATE TABLE listings (
  venue TEXT NOT NULL, symbol TEXT NOT NULL, listed_ms {int} NOT NULL,
  PRIMARY KEY (venue, symbol)
)"""

# Grows with every heartbeat, as market_version with every market-data change: a decider
# waits on their sum (`Store.changes`), the dashboard's caches only on the market's.
ADD_WORKERS_VERSION = "INSERT INTO meta VALUES ('workers_version', 0)"

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # v1: one table per record kind, clustered on its natural key; instruments by venue id.
    (
        *(create_table(k) for k in V1_KINDS),
        """CREATE TABLE instruments (
  venue TEXT NOT NULL, symbol TEXT NOT NULL, venue_symbol TEXT NOT NULL,
  base TEXT NOT NULL, quote TEXT NOT NULL, contract_size REAL NOT NULL,
  kind TEXT NOT NULL, funding_interval_h REAL,
  PRIMARY KEY (venue, symbol)
) WITHOUT ROWID""",
    ),
    # v2: spans during which a live liquidation feed of (venue, symbol) was connected.
    (
        """CREATE TABLE liquidation_coverage (
  venue TEXT NOT NULL, symbol TEXT NOT NULL,
  start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL,
  PRIMARY KEY (venue, symbol, start_ms)
) WITHOUT ROWID""",
    ),
    # v3: positioning samples (long/short and taker ratios) and premium-index bars.
    (create_table(Kind.POSITIONING), create_table(Kind.PREMIUM_INDEX)),
    # v4: the state a running `oiradar watch` publishes (was <store>.watch.json and
    # <store>.alerts.jsonl beside the file), and a counter of market-data changes.
    (
        """CREATE TABLE watch_state (
  id INTEGER PRIMARY KEY CHECK (id = 1), status TEXT NOT NULL, engine TEXT NOT NULL
)""",
        """CREATE TABLE open_episodes (
  symbol TEXT NOT NULL PRIMARY KEY, phase TEXT NOT NULL, started_ms INTEGER NOT NULL
) WITHOUT ROWID""",
        "CREATE TABLE alert_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, alert TEXT NOT NULL)",
        "CREATE TABLE meta (key TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        "INSERT INTO meta VALUES ('market_version', 0)",
    ),
    # v5: collectors and deciders on many hosts (`watch --collect-only/--decide-only`): a
    # heartbeat row per process, and the lease that lets one decider alert at a time.
    (WORKERS_TABLE.format(int="INTEGER"), LEASES_TABLE.format(int="INTEGER"), ADD_WORKERS_VERSION),
    # v6: the listing times a backfill learned for venues that publish none.
    (LISTINGS_TABLE.format(int="INTEGER") + " WITHOUT ROWID",),
)
STATE_VERSION = 4  # the migration that moved the daemon's state into the store

SCHEMA_VERSION = len(MIGRATIONS)
