"""Positioning and premium-index records in the store: schema v3 (a real v2 file migrated in
place), merging upserts, what `read_series` hands the signal core, export/import, `info`."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from oiradar.errors import StoreError
from oiradar.kinds import LAYOUTS, Kind
from oiradar.records import Candle, Positioning, PremiumBar
from oiradar.services.exporter import export_store
from oiradar.services.importer import import_paths
from oiradar.store import Store, open_store
from oiradar.store.schema import SCHEMA_VERSION
from tests.conftest import run_cli

V2_FILE = Path(__file__).parent / "data" / "store-v2.sqlite"
T0 = 1_700_000_100_000 // 3_600_000 * 3_600_000  # an hour boundary
MIN, FIVE = 60_000, 300_000
NAN = float("nan")


def _tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    out = {n: sorted(conn.execute(f"SELECT * FROM {n}").fetchall()) for n in names}
    conn.close()
    return out


def test_a_v2_store_file_is_migrated_in_place_without_losing_rows(tmp_path: Path) -> None:
    """tests/data/store-v2.sqlite was written by oiradar at schema v2 (one row or more in
    every table); opening it for writing upgrades it (to v3 and on) and keeps every row."""
    db = tmp_path / "old.sqlite"
    shutil.copy(V2_FILE, db)
    before = _tables(db)
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == 2
    assert all(before.values()) and "positioning" not in before
    with pytest.raises(StoreError, match="needs a migration"):
        open_store(db, readonly=True)
    with open_store(db) as s:
        assert s.schema_version == SCHEMA_VERSION
        counts = s.write_records([Positioning("binance", "BTCUSDT", T0, 0.9, 1.1, 0.8, 1.2)])
        assert counts == {Kind.POSITIONING: 1}
    after = _tables(db)
    assert {k: v for k, v in after.items() if k in before} == before
    assert after["positioning"] == [(T0, "binance", "BTCUSDT", 0.9, 1.1, 0.8, 1.2)]
    assert after["premium_index"] == []
    with open_store(db, readonly=True) as r:
        assert r.schema_version == SCHEMA_VERSION
        assert len(r.read_series("binance", "BTCUSDT", "5m").candle_ts) == 3


def test_positioning_upserts_merge_sources_and_count_only_real_changes(store: Store) -> None:
    taker_only = Positioning("binance", "BTCUSDT", T0, taker_buy_sell_ratio=1.25)
    ratios = Positioning("binance", "BTCUSDT", T0, 0.9, 1.1, 0.8)
    assert store.write_records([taker_only]) == {Kind.POSITIONING: 1}
    assert store.write_records([ratios]) == {Kind.POSITIONING: 1}  # fills the empty ones
    assert list(store.rows(Kind.POSITIONING)) == [(T0, "binance", "BTCUSDT", 0.9, 1.1, 0.8, 1.25)]
    assert store.write_records([taker_only, ratios]) == {Kind.POSITIONING: 0}
    assert store.write_records([Positioning("binance", "BTCUSDT", T0)]) == {Kind.POSITIONING: 0}
    changed = Positioning("binance", "BTCUSDT", T0, account_ratio=0.7)
    assert store.write_records([changed]) == {Kind.POSITIONING: 1}
    assert list(store.rows(Kind.POSITIONING)) == [(T0, "binance", "BTCUSDT", 0.9, 1.1, 0.7, 1.25)]


def test_premium_upserts_replace_and_count_like_other_bars(store: Store) -> None:
    bar = PremiumBar("okx", "BTCUSDT", FIVE, T0, -1e-4, 2e-4, -3e-4, 1e-4)
    assert store.write_records([bar]) == {Kind.PREMIUM_INDEX: 1}
    assert store.write_records([bar]) == {Kind.PREMIUM_INDEX: 0}
    moved = PremiumBar("okx", "BTCUSDT", FIVE, T0, -1e-4, 2e-4, -3e-4, 1.5e-4)
    assert store.write_records([moved]) == {Kind.PREMIUM_INDEX: 1}
    assert list(store.rows(Kind.PREMIUM_INDEX)) == [
        (T0, "okx", "BTCUSDT", "5m", -1e-4, 2e-4, -3e-4, 1.5e-4)
    ]


def _fill(store: Store) -> None:
    """5m candles opening T0 .. T0+55m; positioning every 5 minutes from T0-5m to T0+65m
    (none on the T0+20m close); premium at 1m, 5m and 1h from T0-1h to T0+2h."""
    candles = [
        Candle("bybit", "BTCUSDT", FIVE, T0 + i * FIVE, 1, 2, 0.5, 1.5, 10, 15, 4.0 + i, 3)
        for i in range(12)
    ]
    pos = [
        Positioning("bybit", "BTCUSDT", t, 0.5 + i / 100, None, 1.0, 1.0 + i / 10)
        for i, t in enumerate(range(T0 - FIVE, T0 + 14 * FIVE, FIVE))
        if t != T0 + 4 * FIVE
    ]
    prem = [
        PremiumBar("bybit", "BTCUSDT", step, t, 0, 1e-3, -1e-3, t / 1e16)
        for step in (MIN, FIVE, 3_600_000)
        for t in range(T0 - 3_600_000, T0 + 7_200_000, step)
    ]
    store.write_records([*candles, *pos, *prem])


def test_read_series_positioning_up_to_the_last_bar_close(store: Store) -> None:
    _fill(store)
    s = store.read_series("bybit", "BTCUSDT", "5m", T0, T0 + 4 * FIVE)
    assert s.candle_ts.tolist() == [T0 + i * FIVE for i in range(5)]
    assert s.taker_buy.tolist() == [4.0, 5.0, 6.0, 7.0, 8.0]
    # Samples in [T0, last open + 5m]: T0 .. T0+25m, without the missing T0+20m one.
    want = [T0 + i * FIVE for i in (0, 1, 2, 3, 5)]
    assert s.pos_ts.tolist() == want
    assert s.pos_top_account.tolist() == pytest.approx([0.51, 0.52, 0.53, 0.54, 0.56])
    assert np.isnan(s.pos_top_position).all()  # absent, not zero
    assert s.pos_account.tolist() == [1.0] * 5
    assert s.pos_taker_ratio.tolist() == pytest.approx([1.1, 1.2, 1.3, 1.4, 1.6])
    everything = store.read_series("bybit", "BTCUSDT", "5m")
    assert len(everything.pos_ts) == 14 and everything.pos_ts[0] == T0 - FIVE


def test_read_series_premium_at_the_bar_size_or_the_coarsest_finer_one(store: Store) -> None:
    _fill(store)
    s = store.read_series("bybit", "BTCUSDT", "15m", T0, T0 + 3 * 900_000)
    # 15m: no 15m premium stored; 5m divides it (1h does not): 5m bars inside the 4 bars.
    assert s.premium_ts.tolist() == list(range(T0, T0 + 4 * 900_000, FIVE))
    assert s.premium_close.tolist() == pytest.approx([t / 1e16 for t in s.premium_ts])
    five = store.read_series("bybit", "BTCUSDT", "5m", T0 + 1, T0 + 2 * FIVE + 7)
    assert five.premium_ts.tolist() == [T0 + FIVE, T0 + 2 * FIVE]  # opens in [start, end]
    hour = store.read_series("bybit", "BTCUSDT", "1h", T0, T0)
    assert hour.premium_ts.tolist() == [T0]
    minute = store.read_series("bybit", "BTCUSDT", "1m", T0, T0 + 2 * MIN)
    assert minute.premium_ts.tolist() == [T0, T0 + MIN, T0 + 2 * MIN]
    assert len(store.read_series("okx", "BTCUSDT", "5m").premium_ts) == 0
    # Where only 1m premium exists in range, 1m it is (5m elsewhere does not count).
    later = T0 + 3 * 3_600_000
    store.write_records(
        PremiumBar("bybit", "BTCUSDT", MIN, t, 0, 0, 0, 0)
        for t in range(later, later + 900_000, MIN)
    )
    assert store.read_series("bybit", "BTCUSDT", "15m", later, later).premium_ts.tolist() == list(
        range(later, later + 900_000, MIN)
    )


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_export_then_import_round_trips_the_new_kinds(
    store: Store, tmp_path: Path, file_format: str
) -> None:
    _fill(store)
    store.write_records([Positioning("okx", "ETHUSDT", T0, None, None, None, 0.0)])
    written = {p.name: n for p, n in export_store(store, tmp_path / "x", file_format)}
    assert written[f"positioning.{file_format}"] == 15
    assert written[f"premium_index.{file_format}"] == 180 + 36 + 3
    with open_store(tmp_path / "copy.sqlite") as copy:
        report = import_paths(copy, [tmp_path / "x"])
        assert report.ok, report.rejected
        assert report.read[("positioning", "bybit", "BTCUSDT")] == 14
        for kind in Kind:
            assert list(copy.rows(kind)) == list(store.rows(kind)), kind
        again = import_paths(copy, [tmp_path / "x"])
        assert sum(again.changed.values()) == 0


def test_interchange_files_are_checked(tmp_path: Path, store: Store) -> None:
    header = ",".join(LAYOUTS[Kind.POSITIONING].names)
    bad_pos = tmp_path / "a" / "positioning.csv"
    bad_pos.parent.mkdir()
    bad_pos.write_text(
        f"{header}\n{T0},binance,BTCUSDT,1.1,,0.9,1\n{T0 + FIVE},binance,BTCUSDT,,-1,,\n"
    )
    bad_prem = tmp_path / "b" / "premium_index.csv"
    bad_prem.parent.mkdir()
    bad_prem.write_text(
        "ts_ms,venue,symbol,interval,open,high,low,close\n"
        f"{T0 + 7},binance,BTCUSDT,5m,0,0.001,-0.001,0\n"
    )
    report = import_paths(store, [bad_pos.parent, bad_prem.parent])
    assert report.rejected == [
        f"{bad_pos}:3: negative ratio",
        f"{bad_prem}:2: ts_ms is not a bar open (not aligned to the row's interval)",
    ]


def test_info_lists_positioning_and_premium(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    with open_store(db) as s:
        _fill(s)
    res = run_cli("--db", str(db), "info", "--format", "json")
    assert res.code == 0, res.err
    rows = {r["kind"]: r for r in json.loads(res.out)["series"]}
    assert rows["positioning"]["rows"] == 14
    assert rows["premium_index"]["rows"] == 180 + 36 + 3
    assert rows["positioning"]["first"] == "2023-11-14T21:55:00Z"  # T0 - 5 min
