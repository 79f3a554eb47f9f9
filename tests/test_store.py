"""The SQLite store: WAL, schema versions, concurrent reading, killed writers, upserts."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from oiradar.errors import NoDataError, StoreError
from oiradar.kinds import Kind
from oiradar.records import ContractKind, Instrument
from oiradar.store import Store, default_db_path
from oiradar.store.schema import SCHEMA_VERSION


def oi_rows(
    n: int, symbol: str = "BTCUSDT", start: int = 1_700_000_000_000
) -> list[tuple[object, ...]]:
    return [(start + i * 300_000, "binance", symbol, 1000.0 + i, None, None) for i in range(n)]


def test_wal_mode_and_schema_version(db_path: Path) -> None:
    with Store(db_path) as s:
        assert s.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_newer_schema_is_refused_not_clobbered(db_path: Path) -> None:
    Store(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this oiradar"):
        Store(db_path)


def test_not_a_database_gives_a_store_error(tmp_path: Path) -> None:
    bad = tmp_path / "junk.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open store"):
        Store(bad)


def test_readonly_needs_an_existing_store(tmp_path: Path) -> None:
    with pytest.raises(NoDataError, match="import data first"):
        Store(tmp_path / "missing.sqlite", readonly=True)


def test_default_path_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OIRADAR_DB", str(tmp_path / "x.sqlite"))
    assert default_db_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("OIRADAR_DB")
    assert default_db_path().name == "oiradar.sqlite"


def test_upsert_is_idempotent_and_counts_real_changes(store: Store) -> None:
    rows = oi_rows(100)
    assert store.write([(Kind.OPEN_INTEREST, rows)]) == {Kind.OPEN_INTEREST: 100}
    assert store.write([(Kind.OPEN_INTEREST, rows)]) == {Kind.OPEN_INTEREST: 0}
    changed = [(*r[:3], 5.0, None, None) if i % 10 == 0 else r for i, r in enumerate(rows)]
    assert store.write([(Kind.OPEN_INTEREST, changed)]) == {Kind.OPEN_INTEREST: 10}
    assert len(list(store.rows(Kind.OPEN_INTEREST))) == 100


def test_failed_batch_leaves_nothing_behind(store: Store) -> None:
    bad = [*oi_rows(10), (1, "binance", "BTCUSDT", None, None, None)]  # NOT NULL oi_base
    with pytest.raises(StoreError, match="write to"):
        store.write([(Kind.OPEN_INTEREST, bad)])
    assert list(store.rows(Kind.OPEN_INTEREST)) == []


def test_instruments_roundtrip(store: Store) -> None:
    inst = Instrument(
        "okx", "BTCUSDT", "BTC-USDT-SWAP", "BTC", "USDT", 0.01, ContractKind.LINEAR, 8.0
    )
    assert store.upsert_instruments([inst]) == 1


def test_columnar_read_path(store: Store) -> None:
    store.write(
        [
            (
                Kind.CANDLES,
                [
                    (
                        1_700_000_000_000 + i * 300_000,
                        "binance",
                        "BTCUSDT",
                        "5m",
                        1.0,
                        2.0,
                        0.5,
                        1.5 + i,
                        10.0,
                        None,
                        None,
                        None,
                    )
                    for i in range(5)
                ],
            ),
            (Kind.OPEN_INTEREST, oi_rows(5)),
            (
                Kind.LIQUIDATION_ORDERS,
                [(1_700_000_000_000 + 1000, "binance", "BTCUSDT", "SHORT", 1.0, 2.0, 2.0)],
            ),
        ]
    )
    s = store.read_series("binance", "BTCUSDT", "5m")
    assert s.candle_ts.dtype == np.int64 and s.close.tolist() == [1.5, 2.5, 3.5, 4.5, 5.5]
    assert s.oi_base.tolist() == [1000.0, 1001.0, 1002.0, 1003.0, 1004.0]
    assert s.liq_short_usd.tolist() == [2.0] and s.liq_long_usd.tolist() == [0.0]
    assert s.liq_coverage


WRITER = textwrap.dedent("""
    import sys, time
    from oiradar.kinds import Kind
    from oiradar.store import Store
    s = Store(sys.argv[1])
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
    Store(db_path).close()
    proc = _spawn_writer(db_path, 2000)
    try:
        with Store(db_path, readonly=True) as reader:
            seen = [len(list(reader.rows(Kind.OPEN_INTEREST))) for _ in range(5)]
        # Every read saw whole batches only, and the writer kept going meanwhile.
        assert all(n % 2000 == 0 and n > 0 for n in seen)
    finally:
        _stop(proc)


def test_killed_writer_loses_at_most_the_batch_in_flight(db_path: Path) -> None:
    Store(db_path).close()
    proc = _spawn_writer(db_path, 5000)
    time.sleep(0.2)  # let it get into the middle of later batches
    os.kill(proc.pid, signal.SIGKILL)
    _stop(proc)
    with Store(db_path) as s:
        assert s._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n = len(list(s.rows(Kind.OPEN_INTEREST)))
    assert n >= 3 * 5000 and n % 5000 == 0


def test_write_records_of_every_kind(store: Store) -> None:
    from oiradar.records import (
        Candle,
        FundingSample,
        Liquidation,
        LiquidationBar,
        OISample,
        Positioning,
        PremiumBar,
        Side,
    )

    t = 1_700_000_100_000
    recs = [
        OISample("okx", "BTCUSDT", t, 21254.19, 2125419.0, 2.36e9),
        Candle("okx", "BTCUSDT", 300_000, t, 1.0, 2.0, 0.5, 1.5, 10.0, 15.0, 4.0, 7),
        FundingSample("okx", "BTCUSDT", t, -0.0001, 4.0),
        Liquidation("bybit", "BTCUSDT", t, Side.LONG, 0.5, 60000.0, 30000.0),
        LiquidationBar("binance", "BTCUSDT", 3_600_000, t, 1.0, 2.0, None, None),
        Positioning("binance", "BTCUSDT", t, 1.2, None, 0.8, 1.1),
        PremiumBar("bybit", "BTCUSDT", 300_000, t, -1e-4, 2e-4, -3e-4, 1e-4),
    ]
    assert store.write_records(recs) == dict.fromkeys(
        [
            Kind.OPEN_INTEREST,
            Kind.CANDLES,
            Kind.FUNDING,
            Kind.LIQUIDATION_ORDERS,
            Kind.LIQUIDATIONS,
            Kind.POSITIONING,
            Kind.PREMIUM_INDEX,
        ],
        1,
    )
    assert FundingSample("okx", "BTCUSDT", t, -0.0001, 4.0).rate_8h == pytest.approx(-0.0002)
    assert next(iter(store.rows(Kind.CANDLES)))[3] == "5m"
    assert next(iter(store.rows(Kind.LIQUIDATION_ORDERS)))[3] == "LONG"
    assert store.write_records(recs) == dict.fromkeys(
        [
            Kind.OPEN_INTEREST,
            Kind.CANDLES,
            Kind.FUNDING,
            Kind.LIQUIDATION_ORDERS,
            Kind.LIQUIDATIONS,
            Kind.POSITIONING,
            Kind.PREMIUM_INDEX,
        ],
        0,
    )
