"""What the SQL backends share for many processes on one store: heartbeats, the lease, and
the running bars' liquidation sums a decider reads, each query spelled once with `?` marks.

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
SUMS = (
    "SELECT symbol, ts_ms - ts_ms % ? AS bar_ts, "
    "SUM(CASE position_side WHEN 'LONG' THEN usd ELSE 0 END), "
    "SUM(CASE position_side WHEN 'SHORT' THEN usd ELSE 0 END) "
    "FROM liquidation_orders WHERE venue = ? AND ts_ms >= ? GROUP BY symbol, bar_ts "
    "ORDER BY symbol, bar_ts"
)


def beat(db: Sql, hb: Heartbeat) -> None:
    detail = json.dumps(hb.detail, separators=(",", ":"))
    db.execute(BEAT, (hb.worker, hb.role, hb.host, hb.pid, hb.beat_ms, detail))


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


def liquidation_sums(
    db: Sql, venue: str, bar_ms: int, since_ms: int
) -> list[tuple[str, int, float, float]]:
    rows = db.execute(SUMS, (bar_ms, venue, since_ms)).fetchall()
    return [(str(s), int(b), float(lo or 0.0), float(sh or 0.0)) for s, b, lo, sh in rows]
