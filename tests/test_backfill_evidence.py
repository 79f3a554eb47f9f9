"""`oiradar backfill` of premium-index bars and positioning against `oiradar sim`: a store
without them gets only them, the Binance archive's metrics files give positioning beyond the
30 days of REST (one read per file), premiumIndexKlines files, and faults change nothing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from oiradar.datafiles.archive import (
    ArchiveFile,
    funding_file,
    klines_file,
    premium_file,
)
from oiradar.kinds import Kind
from oiradar.services.backfill import BackfillRequest, backfill
from oiradar.store import open_store
from oiradar.units import DAY_MS, parse_time
from oiradar.venues.registry import client
from tests.conftest import run_cli
from tests.simkit import running, threaded
from tests.test_backfill import (
    FIVE,
    KLINES_HEADER,
    OLD_DAY,
    _backfill,
    _reset,
    _rows,
    _run,
    _zip,
    archive_files,
    funding_zip,
    klines_zip,
    write_archive,
)

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def _drop(db: Path, *tables: str) -> None:
    """What a store written before premium and positioning existed looks like."""
    with sqlite3.connect(db) as conn:
        for table in tables:
            conn.execute(f"DELETE FROM {table}")


async def test_a_store_without_the_new_kinds_gets_only_them(tmp_path: Path) -> None:
    start = parse_time("2026-05-25")
    venues = ("binance", "bybit", "okx", "bitget")
    req = BackfillRequest(venues, start, start + 2 * DAY_MS, SYMBOLS, premium=True)
    db = tmp_path / "s.sqlite"
    async with running() as (sim, http):
        first = await _run(sim.url, db, req)
        assert [v.rows["premium_index"] for v in first.venues] == [4 * 288] * 3 + [0]
        assert [v.rows["positioning"] for v in first.venues] == [4 * 288, 0, 0, 0]
        premium, positioning = _rows(db, Kind.PREMIUM_INDEX), _rows(db, Kind.POSITIONING)
        _drop(db, "premium_index", "positioning")
        await _reset(sim, http)
        again = await _run(sim.url, db, req)
    rows = {v.venue: v.row() for v in again.venues}
    for venue in ("binance", "bybit", "okx"):
        assert rows[venue]["fetched"] == 4 and rows[venue]["skipped"] == 0
        assert (rows[venue]["candles"], rows[venue]["open_interest"], rows[venue]["funding"]) == (
            0,
            0,
            0,
        )
    assert rows["binance"]["positioning"] == 4 * 288
    assert rows["bitget"]["skipped"] == 4 and rows["bitget"]["premium_index"] == 0
    assert "bitget publishes no premium-index history [BTCUSDT, ETHUSDT; 2 day(s), " in str(
        rows["bitget"]["missing"]
    )
    assert _rows(db, Kind.PREMIUM_INDEX) == premium
    assert _rows(db, Kind.POSITIONING) == positioning
    # Every 5-minute positioning slot of the two days, once (each merges four endpoints).
    with open_store(db, readonly=True) as store:
        ts = store.timestamps(Kind.POSITIONING, "binance", "BTCUSDT", start, start + 2 * DAY_MS)
        assert ts.tolist() == list(range(start + FIVE, start + 2 * DAY_MS + 1, FIVE))
        series = store.read_series("binance", "BTCUSDT", "5m", start, start + DAY_MS - FIVE)
        assert len(series.premium_ts) == 288 and len(series.pos_ts) == 288
        assert not np.isnan(series.pos_top_position).any()


async def test_faults_change_nothing_in_the_new_kinds(tmp_path: Path) -> None:
    start = parse_time("2026-05-26")
    req = BackfillRequest(("binance", "okx"), start, start + 2 * DAY_MS, ("SOLUSDT",), premium=True)

    async def run(db: Path, **sim_kw: Any) -> int:
        """Faults injected during the run."""
        async with running(seed=5, **sim_kw) as (sim, _):
            sim.ctx.faults.slow_s = 0.05
            clients = [client(v, sim.url, backoff_s=0.005, max_attempts=12) for v in req.venues]
            try:
                with open_store(db) as store:
                    result = await backfill(clients, store, req)
                assert result.failed == [] and not result.errors
            finally:
                for c in clients:
                    await c.close()
            return sum(s.faults for s in sim.ctx.limits.stats.values())

    assert await run(tmp_path / "clean.sqlite") == 0
    assert await run(tmp_path / "faulty.sqlite", fault_rate=0.25) > 10
    for kind in Kind:
        assert _rows(tmp_path / "faulty.sqlite", kind) == _rows(tmp_path / "clean.sqlite", kind)
    assert len(_rows(tmp_path / "clean.sqlite", Kind.PREMIUM_INDEX)) == 2 * 2 * 288


def premium_zip(symbol: str, day: str) -> bytes:
    base = parse_time(day)
    rows = []
    for i in range(288):
        t, p = base + i * FIVE, (i - 144) / 1e6
        rows.append(
            f"{t},{p:.8f},{p + 3e-6:.8f},{p - 2e-6:.8f},{p + 1e-6:.8f},0,{t + FIVE - 1},0,60,0,0,0"
        )
    return _zip(premium_file(symbol, "5m", base).name, [KLINES_HEADER, *rows])


def test_archive_metrics_give_positioning_beyond_rest_read_once(tmp_path: Path) -> None:
    src, db = tmp_path / "archive", tmp_path / "a.sqlite"
    write_archive(src, archive_files("BTCUSDT", [OLD_DAY]))
    with threaded() as sim:
        first = _backfill(db, sim.url, OLD_DAY, OLD_DAY, "--archive-dir", str(src))
        assert first.code == 0, first.err
        report = json.loads(first.out)[0]
        assert (report["open_interest"], report["positioning"], report["archive_files"]) == (
            288,
            288,
            1,
        )
        pos = _rows(db, Kind.POSITIONING)
        # Files dated before 2026-06-25 label snapshots 00:00 .. 23:55: the first is midnight.
        assert pos[0] == (parse_time(OLD_DAY), "binance", "BTCUSDT", 1.1, 1.2, 1.3, 1.4)
        _drop(db, "positioning")  # OI is there: the file is read for positioning alone
        again = _backfill(db, sim.url, OLD_DAY, OLD_DAY, "--archive-dir", str(src))
    report = json.loads(again.out)[0]
    assert (report["open_interest"], report["positioning"], report["archive_files"]) == (0, 288, 1)
    assert _rows(db, Kind.POSITIONING) == pos


def test_archive_only_reads_premium_index_klines_in_their_folder(tmp_path: Path) -> None:
    src, db, t0 = tmp_path / "archive", tmp_path / "a.sqlite", parse_time(OLD_DAY)
    files: dict[ArchiveFile, bytes] = archive_files("BTCUSDT", [OLD_DAY])
    files[klines_file("BTCUSDT", "5m", t0)] = klines_zip("BTCUSDT", OLD_DAY)
    files[funding_file("BTCUSDT", t0)] = funding_zip("BTCUSDT", OLD_DAY[:7])
    files[premium_file("BTCUSDT", "5m", t0)] = premium_zip("BTCUSDT", OLD_DAY)
    write_archive(src, files)
    args = ["--archive-only", "--premium", "--symbols", "BTCUSDT", "--from", OLD_DAY, "--to",
            OLD_DAY]  # fmt: skip
    res = run_cli("--db", str(db), "backfill", *args, "--archive-dir", str(src), "--format", "json")
    assert res.code == 0, res.err
    report = json.loads(res.out)[0]
    assert report["premium_index"] == 288 and report["archive_files"] == 4
    first = _rows(db, Kind.PREMIUM_INDEX)[0]
    assert first == (t0, "binance", "BTCUSDT", "5m", -0.000144, -0.000141, -0.000146, -0.000143)
    assert len(_rows(db, Kind.POSITIONING)) == 288


def test_a_bare_premium_file_name_is_not_taken_for_one(tmp_path: Path) -> None:
    """Premium files are named like klines: only the archive's folder layout tells them apart,
    so a bare name in --archive-dir is read as klines and never as premium."""
    src, db, t0 = tmp_path / "archive", tmp_path / "a.sqlite", parse_time(OLD_DAY)
    write_archive(
        src, {klines_file("BTCUSDT", "5m", t0): klines_zip("BTCUSDT", OLD_DAY)}, bare=True
    )
    args = ["--archive-only", "--premium", "--symbols", "BTCUSDT", "--from", OLD_DAY, "--to",
            OLD_DAY]  # fmt: skip
    res = run_cli("--db", str(db), "backfill", *args, "--archive-dir", str(src))
    assert res.code == 0, res.err
    assert len(_rows(db, Kind.CANDLES)) == 288 and _rows(db, Kind.PREMIUM_INDEX) == []
    assert "the archive has no premiumIndexKlines file [BTCUSDT; 1 day(s)" in res.err
