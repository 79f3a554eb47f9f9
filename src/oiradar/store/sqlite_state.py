"""The daemon's published state in SQLite (schema v4), and adopting the files it used to be.

Until v4 a running `oiradar watch` kept its status, open episodes and engine settings in
`<store>.watch.json` and its alerts in `<store>.alerts.jsonl`, beside the store file. The
migration to v4 reads them into the new tables in its own transaction, so an upgraded
daemon resumes its episodes and the dashboard keeps its alert feed; the files are left
alone (CHANGELOG: they may be deleted).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

from oiradar.store.base import Episode, WatchState
from oiradar.store.sql import dump_json, put_state

log = logging.getLogger(__name__)


def append_alert(conn: sqlite3.Connection, alert: dict[str, Any]) -> int:
    cur = conn.execute("INSERT INTO alert_log (alert) VALUES (?)", (dump_json(alert),))
    return int(cur.lastrowid or 0)


def adopt_sidecars(conn: sqlite3.Connection, path: Path) -> None:
    """The pre-v4 files beside `path`, read into the v4 tables (inside the migration)."""
    status_file = path.with_name(path.name + ".watch.json")
    alerts_file = path.with_name(path.name + ".alerts.jsonl")
    try:
        status = json.loads(status_file.read_text())
        episodes = tuple(
            Episode(str(symbol), str(e["phase"]), int(e["started_ms"]))
            for symbol, e in status["alerts"]["episodes"].items()
        )
        put_state(conn, WatchState(status, dict(status.get("engine") or {}), episodes))
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("event=sidecar_skipped file=%s error=%s", status_file, exc)
    try:
        lines = alerts_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return
    except OSError as exc:
        log.warning("event=sidecar_skipped file=%s error=%s", alerts_file, exc)
        return
    for line in lines:
        try:
            alert = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash, as the dashboard used to skip it
        if isinstance(alert, dict):
            append_alert(conn, alert)
