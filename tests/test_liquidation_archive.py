"""Binance's archive liquidation snapshots: `oiradar import` reads them (sides, repeated rows,
the day covered whole, the CHECKSUM beside a file verified) and `oiradar backtest` runs on
them, squeezes called on the imported liquidations; the simulator serves the day files
under the archive's paths, from its own forced orders sampled as Binance samples them."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from oiradar.datafiles.archive import liquidation_file
from oiradar.kinds import Kind
from oiradar.services.backfill import BackfillRequest, run
from oiradar.signals.engine import timeline
from oiradar.signals.params import EngineParams
from oiradar.sim.server import SimServer
from oiradar.sim.venues.binance.archive import HEADER
from oiradar.store import open_store
from oiradar.units import DAY_MS, MINUTE_MS, parse_time
from tests.conftest import run_cli
from tests.simkit import configured

SYMBOL = "ADAUSDT"
# The archive's last four USD-M liquidation days, published (the simulator's clock after them).
DAYS = ("2024-03-28", "2024-03-29", "2024-03-30", "2024-03-31")
WALL_NOW = parse_time("2024-04-02T12:00Z")


def snapshot_zip(folder: Path, day: str, rows: list[str], symbol: str = SYMBOL) -> Path:
    """A day file as the archive names and zips it (the rows written twice, as the real
    files repeat them, binance-public-data#259)."""
    path = folder / f"{symbol}-liquidationSnapshot-{day}.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(path.with_suffix(".csv").name, "\n".join([HEADER, *rows, *rows]) + "\n")
    path.write_bytes(buf.getvalue())
    return path


def test_import_maps_sides_drops_repeats_and_covers_the_day(tmp_path: Path) -> None:
    day = parse_time("2024-03-01")
    rows = [
        f"{day + 60_000},SELL,LIMIT,IOC,2,100,101,FILLED,2,2",  # a long liquidated
        f"{day + 120_000},BUY,LIMIT,IOC,3,100,99,FILLED,1,3",  # a short, filled 3
        f"{day + 180_000},BUY,LIMIT,IOC,3,100,99,EXPIRED,0,0",  # nothing filled: dropped
    ]
    path = snapshot_zip(tmp_path, "2024-03-01", rows)
    db = tmp_path / "s.sqlite"
    res = run_cli("--db", str(db), "import", str(path))
    assert res.code == 0, res.err
    with open_store(db, readonly=True) as store:
        stored = [r[:7] for r in store.rows(Kind.LIQUIDATION_ORDERS)]
        series = store.read_series("binance", SYMBOL, "5m", day, day + DAY_MS - 1)
    assert stored == [
        (day + 60_000, "binance", SYMBOL, "LONG", 2.0, 101.0, 202.0),
        (day + 120_000, "binance", SYMBOL, "SHORT", 3.0, 99.0, 297.0),
    ]
    # The file covers its day: a bar without forced orders holds 0 liquidated, not unknown.
    assert series.liq_tracked and series.liq_spans.tolist() == [[day, day + DAY_MS]]


def test_a_bad_side_rejects_the_file_by_line(tmp_path: Path) -> None:
    day = parse_time("2024-03-01")
    path = snapshot_zip(tmp_path, "2024-03-01", [f"{day},HOLD,LIMIT,IOC,1,1,1,FILLED,1,1"])
    res = run_cli("--db", str(tmp_path / "s.sqlite"), "import", str(path))
    assert res.code == 2 and "side must be BUY or SELL" in res.err and ":2" in res.err, res.err


async def test_backfill_reads_the_sims_archive_days_and_backtest_calls_squeezes_on_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulator's archive serves each day's file with its CHECKSUM (none past the
    archive's last day); `backfill` downloads, verifies and stores them with the days covered
    (asked once: a second run finds them covered), `backtest` calls squeezes on them, and a
    corrupted copy is refused by `import` with one line, nothing stored."""
    db, cache = tmp_path / "h.sqlite", tmp_path / "cache"
    monkeypatch.setenv("OIRADAR_CACHE_DIR", str(cache))
    start = parse_time(DAYS[0])
    with configured(symbols=5, seed=7, speed=0.0) as cfg:
        async with SimServer(cfg, wall_now_ms=WALL_NOW) as sim, aiohttp.ClientSession() as http:
            monkeypatch.setenv("OIRADAR_ARCHIVE_URL", sim.url)
            symbols = tuple(sim.ctx.market.symbols)
            end = sim.ctx.now_ms() // (5 * MINUTE_MS) * (5 * MINUTE_MS)
            req = BackfillRequest(("binance",), start, end, symbols, endpoint=sim.url)
            with open_store(db) as store:
                [first] = (await run(req, store)).venues
                [again] = (await run(req, store)).venues
            past = liquidation_file(symbols[0], parse_time("2024-04-01"))  # after the last day
            wanted = liquidation_file(symbols[0], start)
            statuses = []
            for path in (past.path, wanted.path.replace(symbols[0], "NOPEUSDT")):
                async with http.get(f"{sim.url}/{path}") as r:
                    statuses.append(r.status)
            async with http.get(f"{sim.url}/{wanted.path}.CHECKSUM") as r:
                digest = await r.text()
    assert statuses == [404, 404]
    assert first.archive_files == len(DAYS) * len(symbols) and first.rows["liquidation_orders"]
    assert again.archive_files == 0 and again.rows["liquidation_orders"] == 0
    paths = [cache / "archive" / liquidation_file(s, parse_time(d)).path
             for d in DAYS for s in symbols]  # fmt: skip
    assert digest == f"{hashlib.sha256(paths[0].read_bytes()).hexdigest()}  {wanted.name}\n"
    with zipfile.ZipFile(paths[0]) as zf:
        header, *rows = zf.read(zf.namelist()[0]).decode().splitlines()
    half = len(rows) // 2
    assert header == HEADER and rows[:half] == rows[half:] and half > 100  # each row twice
    assert {r.split(",")[1] for r in rows} == {"BUY", "SELL"}

    with open_store(db, readonly=True) as store:
        series = store.read_series(
            "binance", symbols[0], "5m", start, parse_time(DAYS[-1]) + DAY_MS
        )
    tl = timeline(series, EngineParams())
    known = ~np.isnan(tl.short_liq_usd)
    assert known.sum() > 3 * 288 and float(np.nansum(tl.short_liq_usd)) > 0
    runs = {}
    for evidence in ("liquidations", "none"):
        out = run_cli("--db", str(db), "backtest", "--to", DAYS[-1], "--events",
                      "--evidence", evidence, "--format", "json")  # fmt: skip
        assert out.code == 0, out.err
        runs[evidence] = json.loads(out.out)
    squeezes = {
        k: [e for e in v["events"] if e["regime"] == "SHORT_SQUEEZE"] for k, v in runs.items()
    }
    assert squeezes["liquidations"] and not squeezes["none"], squeezes

    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(paths[0].with_name(paths[0].name + ".CHECKSUM"), bad)
    body = bytearray(paths[0].read_bytes())
    body[len(body) // 2] ^= 0xFF
    (bad / paths[0].name).write_bytes(bytes(body))
    res = run_cli("--db", str(tmp_path / "bad.sqlite"), "import", str(bad))
    assert res.code == 2 and res.err.count("\n") == 1, res.err
    assert f"checksum mismatch for {bad / paths[0].name}: expected " in res.err
    with open_store(tmp_path / "bad.sqlite", readonly=True) as store:
        assert list(store.rows(Kind.LIQUIDATION_ORDERS)) == []
