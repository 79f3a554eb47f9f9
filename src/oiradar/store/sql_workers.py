"""What the SQL backends share for many processes on one store: heartbeats, the lease, and
the running bars' liquidation orders a decider reads, each query spelled once with `?` marks.

The lease is one conditional upsert (SQLite 3.24+ and PostgreSQL 9.5+ both run `INSERT …
ON CONFLICT … DO UPDATE … WHERE`): the row changes only if it is free, expired or already the
caller's, and the changed-row count says whether the caller holds it. Expiry compares wall
clocks of the hosts (assumed NTP-synced to well under the lease's ttl, docs/scaling.md).
"""

from __future__ import annotations

import json

from oiradar.store.base import Heartbeat
from oiradar.store.sql_series import Sql

BEAT = (
    "INSERT INTO workers (worker, role, host, pid, beat_ms, detail) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (worker) DO UPDATE SET role = excluded.role, host = excluded.host, "
    "pid = excluded.pid, beat_ms = excluded.beat_ms, detail = excluded.detail"
)
TAKE_LEASE = (
    "INSERT INTO leases (name, holder, expires_ms) VALUES (?, ?, ?) ON CONFLICT (name) DO "
    "UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms "
    "WHERE leases.holder = excluded.holder OR leases.expires_ms < ?"
)
ORDERS_SINCE = (
    "SELECT symbol, ts_ms, position_side, usd FROM liquidation_orders "
    "WHERE venue = ? AND ts_ms >= ? ORDER BY ts_ms, symbol"
)


BUMP_WORKERS = "UPDATE meta SET value = value + 1 WHERE key = 'workers_version'"
CHANGES = "SELECT SUM(value) FROM meta WHERE key IN ('market_version', 'workers_version')"


def beat(db: Sql, hb: Heartbeat) -> None:
    detail = json.dumps(hb.detail, separators=(",", ":"))
    db.execute(BEAT, (hb.worker, hb.role, hb.host, hb.pid, hb.beat_ms, detail))
    db.execute(BUMP_WORKERS)


def changes(db: Sql) -> int:
    return int(db.execute(CHANGES).fetchone()[0])


def workers(db: Sql) -> list[Heartbeat]:
    rows = db.execute(
        "SELECT worker, role, host, pid, beat_ms, detail FROM workers ORDER BY worker"
    ).fetchall()
    return [
        Heartbeat(str(w), str(r), str(h), int(p), int(b), json.loads(d))
        for w, r, h, p, b, d in rows
    ]


def take_lease(db: Sql, name: str, holder: str, now_ms: int, ttl_ms: int) -> bool:
    return db.execute(TAKE_LEASE, (name, holder, now_ms + ttl_ms, now_ms)).rowcount > 0


def release_lease(db: Sql, name: str, holder: str) -> None:
    db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))


def lease(db: Sql, name: str) -> tuple[str, int] | None:
    row = db.execute("SELECT holder, expires_ms FROM leases WHERE name = ?", (name,)).fetchone()
    return None if row is None else (str(row[0]), int(row[1]))


def liquidation_orders_since(
    db: Sql, venue: str, since_ms: int
) -> list[tuple[str, int, str, float]]:
    rows = db.execute(ORDERS_SINCE, (venue, since_ms)).fetchall()
    return [(str(s), int(t), str(side), float(usd or 0.0)) for s, t, side, usd in rows]
