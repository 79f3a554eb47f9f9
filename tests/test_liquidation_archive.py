"""Binance's archive liquidation snapshots: `oiradar import` reads them (sides, repeated rows,
the day covered whole) and `oiradar backtest` runs on them, squeezes called on the imported
liquidations. The day files are written here from the simulator's own forced orders, sampled
as Binance samples them (the last order per symbol per second)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from oiradar.kinds import Kind
from oiradar.services.backfill import BackfillRequest, run
from oiradar.signals.engine import timeline
from oiradar.signals.params import EngineParams
from oiradar.sim.market import liquidation_orders
from oiradar.store import open_store
from oiradar.units import DAY_MS, MINUTE_MS, parse_time
from tests.conftest import run_cli
from tests.simkit import running

HEADER = (
    "time,side,order_type,time_in_force,original_quantity,price,average_price,order_status,"
    "last_fill_quantity,accumulated_fill_quantity"
)
SYMBOL = "ADAUSDT"
DAYS = ("2026-05-24", "2026-05-25", "2026-05-26", "2026-05-27")  # whole days, published


def snapshot_zip(folder: Path, day: str, rows: list[str], symbol: str = SYMBOL) -> Path:
    """A day file as the archive names and zips it (the rows written twice, as the real
    files repeat them, binance-public-data#259)."""
    path = folder / f"{symbol}-liquidationSnapshot-{day}.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(path.with_suffix(".csv").name, "\n".join([HEADER, *rows, *rows]) + "\n")
    path.write_bytes(buf.getvalue())
    return path


def sim_day_rows(sim: Any, day_ms: int, symbol: str) -> list[str]:
    """The simulator's Binance forced orders of the day (Binance's share of the market), the
    last per second kept, as its stream samples them."""
    ctx = sim.ctx
    last: dict[int, str] = {}
    orders = liquidation_orders(ctx.market.get(symbol), day_ms, day_ms + DAY_MS - 1,
                                ctx.venue_seed("binance"))  # fmt: skip
    for o in orders:
        side = "SELL" if o.long else "BUY"
        qty, px = f"{o.qty_base * ctx.share('binance'):.6f}", f"{o.price:.6f}"
        last[o.ts_ms // 1000] = f"{o.ts_ms},{side},LIMIT,IOC,{qty},{px},{px},FILLED,{qty},{qty}"
    return list(last.values())


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


async def test_backtest_calls_squeezes_on_imported_snapshots(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    start = parse_time(DAYS[0])
    async with running(symbols=7) as (sim, _):
        symbols = tuple(sim.ctx.market.symbols)
        end = sim.ctx.now_ms() // (5 * MINUTE_MS) * (5 * MINUTE_MS)
        req = BackfillRequest(("binance",), start, end, symbols, archive=False,
                              endpoint=sim.url)  # fmt: skip
        with open_store(db) as store:
            await run(req, store)
        files = [
            snapshot_zip(tmp_path, d, sim_day_rows(sim, parse_time(d), s), s)
            for d in DAYS
            for s in symbols
        ]
    res = run_cli("--db", str(db), "import", *map(str, files), "--format", "json")
    assert res.code == 0, res.err
    with open_store(db, readonly=True) as store:
        series = store.read_series("binance", SYMBOL, "5m", start, parse_time(DAYS[-1]) + DAY_MS)
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
