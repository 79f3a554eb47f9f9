"""The SQLite backend itself: WAL, schema versions, URLs, threads, processes reading while
another writes, killed writers, and the daemon's old sidecar files adopted by the v4
upgrade. What every backend must do is tests/test_store_contract.py."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from oiradar.errors import NoDataError, StoreError, UserError
from oiradar.kinds import Kind
from oiradar.store import Episode, default_db_path, location_of, open_store
from oiradar.store.schema import MIGRATIONS, SCHEMA_VERSION
from oiradar.store.sqlite import SqliteStore


def oi_rows(
    n: int, symbol: str = "BTCUSDT", start: int = 1_700_000_000_000
) -> list[tuple[object, ...]]:
    return [(start + i * 300_000, "binance", symbol, 1000.0 + i, None, None) for i in range(n)]


def test_wal_mode_and_schema_version(db_path: Path) -> None:
    with open_store(db_path) as s:
        assert s.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_newer_schema_is_refused_not_clobbered(db_path: Path) -> None:
    open_store(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this oiradar"):
        open_store(db_path)


def test_not_a_database_gives_a_store_error(tmp_path: Path) -> None:
    bad = tmp_path / "junk.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open store"):
        open_store(bad)


def test_readonly_needs_an_existing_store(tmp_path: Path) -> None:
    with pytest.raises(NoDataError, match="import data first"):
        open_store(tmp_path / "missing.sqlite", readonly=True)


def test_default_path_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OIRADAR_DB", str(tmp_path / "x.sqlite"))
    assert default_db_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("OIRADAR_DB")
    assert default_db_path().name == "oiradar.sqlite"


WRITER = textwrap.dedent("""
    import sys, time
    from oiradar.kinds import Kind
    from oiradar.store import open_store
    s = open_store(sys.argv[1])
    batch, i = int(sys.argv[2]), 0
    print("ready", flush=True)
    while True:
        rows = [(1_700_000_000_000 + (i * batch + j) * 300_000, "binance", "BTCUSDT",
                 float(i), None, None) for j in range(batch)]
        s.write([(Kind.OPEN_INTEREST, rows)])
        i += 1
        if i == 3:
            print("written", flush=True)
""")


def _spawn_writer(db_path: Path, batch: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db_path), str(batch)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    assert proc.stdout.readline().strip() == "written"
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def test_reader_reads_while_another_process_writes(db_path: Path) -> None:
    open_store(db_path).close()
    proc = _spawn_writer(db_path, 2000)
    try:
        with open_store(db_path, readonly=True) as reader:
            seen = [len(list(reader.rows(Kind.OPEN_INTEREST))) for _ in range(5)]
        # Every read saw whole batches only, and the writer kept going meanwhile.
        assert all(n % 2000 == 0 and n > 0 for n in seen)
    finally:
        _stop(proc)


def test_killed_writer_loses_at_most_the_batch_in_flight(db_path: Path) -> None:
    open_store(db_path).close()
    proc = _spawn_writer(db_path, 5000)
    time.sleep(0.2)  # let it get into the middle of later batches
    os.kill(proc.pid, signal.SIGKILL)
    _stop(proc)
    with open_store(db_path) as s:
        assert s._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n = len(list(s.rows(Kind.OPEN_INTEREST)))
    assert n >= 3 * 5000 and n % 5000 == 0


def test_urls_and_paths_name_the_same_file(tmp_path: Path) -> None:
    db = tmp_path / "u.sqlite"
    with open_store(f"sqlite:///{db}") as s:  # sqlite:////abs/path, as SQLAlchemy writes it
        assert s.location == str(db)
        s.write([(Kind.OPEN_INTEREST, oi_rows(3))])
    with open_store(db, readonly=True) as r:
        assert len(list(r.rows(Kind.OPEN_INTEREST))) == 3
    assert location_of(f"sqlite:///{db}") == location_of(str(db)) == str(db)
    with pytest.raises(UserError, match="has no file"):
        open_store("sqlite://")


def test_the_environment_may_name_a_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OIRADAR_DB", f"sqlite:///{tmp_path / 'env.sqlite'}")
    with open_store() as s:
        assert s.location == str(tmp_path / "env.sqlite")


def test_each_thread_gets_its_own_connection_and_close_ends_them_all(db_path: Path) -> None:
    s = open_store(db_path)
    assert isinstance(s, SqliteStore)
    mine = s._conn
    theirs: list[sqlite3.Connection] = []
    worker = threading.Thread(target=lambda: theirs.append(s._conn))
    worker.start()
    worker.join()
    assert theirs[0] is not mine and s._conn is mine
    s.close()
    for conn in (mine, theirs[0]):
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")
    with pytest.raises(StoreError, match="is closed"):
        threading_result(s.version)


def threading_result(fn: Callable[[], object]) -> object:
    """`fn()` on a new thread; its exception raised here."""
    out: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if errors:
        raise errors[0]
    return out[0]


def test_a_v3_store_adopts_the_daemons_old_files(tmp_path: Path) -> None:
    """Before v4 `oiradar watch` wrote <store>.watch.json and <store>.alerts.jsonl beside the
    file: the upgrade reads them in, so a restarted daemon resumes its episodes and the
    dashboard keeps its alert feed."""
    db = tmp_path / "old.sqlite"
    conn = sqlite3.connect(db)
    for version in MIGRATIONS[:3]:
        for stmt in version:
            conn.execute(stmt)
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    status = {
        "state": "stopped",
        "engine": {"windows_ms": [900000], "adaptive": False},
        "alerts": {"episodes": {"ADAUSDT": {"phase": "squeeze", "started_ms": 17}}},
    }
    (tmp_path / "old.sqlite.watch.json").write_text(json.dumps(status))
    lines = [json.dumps({"symbol": "ADAUSDT", "kind": "new"}), "{cut short", "[]",
             json.dumps({"symbol": "ADAUSDT", "kind": "escalation"})]  # fmt: skip
    (tmp_path / "old.sqlite.alerts.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(StoreError, match="needs a migration"):
        open_store(db, readonly=True)
    with open_store(db) as s:
        assert s.schema_version == SCHEMA_VERSION
    with open_store(db, readonly=True) as r:
        state = r.watch_state()
        assert state is not None and state.status == status
        assert state.engine == status["engine"]
        assert state.episodes == (Episode("ADAUSDT", "squeeze", 17),)
        assert [a.alert["kind"] for a in r.alerts()] == ["new", "escalation"]
    assert (tmp_path / "old.sqlite.watch.json").exists()  # left alone: the user may delete it


def test_a_big_transaction_leaves_no_big_wal_behind(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The WAL file is cut back to the limit once a checkpoint has emptied it: a daemon's
    hourly prune must not leave its size on the disk for good."""
    monkeypatch.setattr("oiradar.store.sqlite.WAL_LIMIT_BYTES", 256 << 10)
    wal = Path(f"{db_path}-wal")
    with open_store(db_path) as s:
        s.write([(Kind.OPEN_INTEREST, oi_rows(150_000))])  # one transaction past the autocheckpoint
        peak = wal.stat().st_size
        for i in range(3):  # the next writes after the checkpoint start the WAL over
            s.write([(Kind.OPEN_INTEREST, oi_rows(1, start=1_800_000_000_000 + i))])
        assert peak > 4 << 20
        assert wal.stat().st_size <= 256 << 10
