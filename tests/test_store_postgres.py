"""The PostgreSQL backend as a user meets it, against a real server (tests/pgkit.py): the CLI
on a postgresql:// URL, the password never shown, schema versions, bulk-write semantics,
and scan and watch end to end. The contract suite runs on it too (test_store_contract.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from oiradar.errors import NoDataError, StoreError
from oiradar.kinds import Kind
from oiradar.records import Positioning
from oiradar.services.analyze import Query, run_events
from oiradar.services.watch import WatchRequest
from oiradar.signals.params import EngineParams
from oiradar.store import open_store
from oiradar.store.schema import SCHEMA_VERSION
from oiradar.units import MINUTE_MS, parse_time
from oiradar.venues.registry import client
from oiradar.web.app import ServeConfig
from oiradar.web.server import serving
from tests.conftest import run_cli
from tests.pgkit import PASSWORD, PgServer
from tests.simkit import threaded
from tests.watchkit import Run, run_daemon, simulated

T0 = 1_700_000_100_000 // 3_600_000 * 3_600_000
FIVE = 5 * MINUTE_MS


def test_import_analyze_round_trip_equals_sqlite(
    pg_url: str, derived: Path, tmp_path: Path
) -> None:
    sqlite = str(tmp_path / "s.sqlite")
    outputs = []
    for db in (sqlite, pg_url):
        first = run_cli("--db", db, "import", str(derived), "--format", "json")
        again = run_cli("--db", db, "import", str(derived), "--format", "json")
        assert first.code == again.code == 0, first.err + again.err
        assert sum(r["new_or_changed"] for r in json.loads(first.out)) > 10_000
        assert all(r["new_or_changed"] == 0 for r in json.loads(again.out))  # no real change
        res = run_cli("--db", db, "analyze", "BTCUSDT", "--from", "2024-08-01", "--to",
                      "2024-08-20", "--format", "json")  # fmt: skip
        assert res.code == 0, res.err
        outputs.append(json.loads(res.out))
        out = tmp_path / f"export-{len(outputs)}"
        assert run_cli("--db", db, "export", "--out", str(out)).code == 0
    assert outputs[0] == outputs[1] and len(outputs[0]) >= 5
    exported = [
        sorted(p.read_bytes() for p in (tmp_path / f"export-{n}").rglob("*.*")) for n in (1, 2)
    ]
    assert exported[0] == exported[1] and exported[0]  # the same files, byte for byte


def test_info_names_the_backend_and_never_the_password(pg_url: str) -> None:
    run_cli("--db", pg_url, "import", "--help")  # nothing stored yet: info must say so
    empty = run_cli("--db", pg_url, "info")
    assert empty.code == 2 and "no store at postgresql://oiradar@127.0.0.1:" in empty.err
    with open_store(pg_url) as s:
        s.write_records([Positioning("binance", "BTCUSDT", T0, taker_buy_sell_ratio=1.1)])
        assert s.location == pg_url.replace(f":{PASSWORD}", "")
    res = run_cli("--db", pg_url, "info", "--format", "json")
    doc = json.loads(res.out)
    assert doc["path"] == pg_url.replace(f":{PASSWORD}", "")
    assert doc["schema_version"] == SCHEMA_VERSION and doc["series"][0]["kind"] == "positioning"
    wrong = run_cli("--db", pg_url.replace(PASSWORD, "not-it"), "info")
    assert wrong.code == 3 and "password authentication failed" in wrong.err
    assert len(wrong.err.strip().splitlines()) == 1 and "not-it" not in wrong.err
    for r in (empty, res, wrong):
        assert PASSWORD not in r.out + r.err


def test_the_password_may_come_from_pgpassword(
    pg_server: PgServer, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = pg_url.replace(f":{PASSWORD}", "")
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    with open_store(bare) as s:
        assert s.version() == 0
    monkeypatch.setenv("PGPASSWORD", "wrong")
    with pytest.raises(StoreError, match="password authentication failed") as exc:
        open_store(bare)
    assert PASSWORD not in str(exc.value)


def test_a_malformed_url_is_one_line_that_never_echoes_the_password() -> None:
    bad = run_cli("--db", "postgresql://me:hunter2@db/x?nosuch=1", "info")
    assert bad.code == 2 and "invalid store URL postgresql://me@db/x:" in bad.err
    port = run_cli("--db", "postgresql://me:hunter2@db:notaport/x", "info")
    assert port.code == 3 and "cannot open store postgresql://me@db:notaport/x" in port.err
    for res in (bad, port):
        assert "hunter2" not in res.err and len(res.err.strip().splitlines()) == 1


def test_schema_versions_are_checked(pg_url: str) -> None:
    with pytest.raises(NoDataError, match="import data first"):
        open_store(pg_url, readonly=True)
    with open_store(pg_url) as s:
        assert s.schema_version == SCHEMA_VERSION
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_info SET version = 99")
    with pytest.raises(StoreError, match="schema v99, newer than this oiradar"):
        open_store(pg_url)


def test_a_batch_with_repeated_keys_keeps_the_last_row_and_merges(pg_url: str) -> None:
    """COPY stages a whole batch at once; SQLite applies it row by row: same result."""
    oi = [(T0, "okx", "BTCUSDT", 1.0, None, None), (T0, "okx", "BTCUSDT", 2.0, float("nan"), 3.0)]
    pos = [(T0, "binance", "BTCUSDT", 0.9, None, None, None),
           (T0, "binance", "BTCUSDT", None, None, 0.8, 1.2)]  # fmt: skip
    with open_store(pg_url) as s:
        assert s.write([(Kind.OPEN_INTEREST, oi), (Kind.POSITIONING, pos)]) == {
            Kind.OPEN_INTEREST: 1,
            Kind.POSITIONING: 1,
        }
        assert list(s.rows(Kind.OPEN_INTEREST)) == [(T0, "okx", "BTCUSDT", 2.0, None, 3.0)]
        assert list(s.rows(Kind.POSITIONING)) == [(T0, "binance", "BTCUSDT", 0.9, None, 0.8, 1.2)]


def test_scan_on_postgresql_reads_as_on_sqlite(pg_url: str, tmp_path: Path) -> None:
    with threaded() as sim:
        outs = []
        for db in (str(tmp_path / "s.sqlite"), pg_url):
            res = run_cli("--db", db, "scan", "--endpoint", sim.url, "--format", "json",
                          "--symbols", "BTCUSDT,ETHUSDT")  # fmt: skip
            assert res.code == 0, res.err
            outs.append(json.loads(res.out))
    assert outs[0] == outs[1] and len(outs[0]) >= 8


def test_watch_end_to_end_on_postgresql(pg_url: str) -> None:
    """The README's replay (ADAUSDT covers, then is squeezed) with the store on the server:
    alerts arrive once each, the alert log and status are in the database, and the batch
    engine on what the daemon stored dates the squeeze the daemon alerted."""
    params = EngineParams(min_history_ms=30 * MINUTE_MS)
    req = WatchRequest(("binance", "bybit"), ("ADAUSDT",), None, params, settle_ms=60_000)
    start, end = parse_time("2026-05-28T13:00Z"), parse_time("2026-05-28T15:00Z")

    async def go() -> tuple[Run, dict[str, Any]]:
        async with simulated(pg_url, speed=300.0, limit_scale=300.0, start_ms=start) as run:
            await run_daemon(run, req, end)
        async with (  # the dashboard, from the same database
            serving(ServeConfig(pg_url, port=0, refresh_s=0.2)) as url,
            aiohttp.ClientSession() as http,
        ):
            got = {}
            for path in ("/api/alerts", "/api/status", "/api/markets"):
                async with http.get(url + path) as r:
                    assert r.status == 200, path
                    got[path] = await r.json()
        return run, got

    run, api = asyncio.run(go())
    kinds = [(a["kind"], a["ts"]) for a in run.alerts("ADAUSDT")]
    assert kinds and len(kinds) == len(set(kinds))
    with open_store(pg_url, readonly=True) as s:
        logged = [a.alert for a in s.alerts()]
        state = s.watch_state()
        evs, _ = run_events(s, Query("ADAUSDT", venue="bybit", interval="5m"), params, None)
    assert [(a["kind"], a["ts"]) for a in logged] == kinds
    assert state is not None
    assert state.status["store"]["path"] == pg_url.replace(f":{PASSWORD}", "")
    assert any(e.squeeze for e in evs), "the batch engine sees the squeeze in the stored data"
    assert sorted((a["kind"], a["ts"]) for a in api["/api/alerts"]["alerts"]) == sorted(kinds)
    assert any(r["symbol"] == "ADAUSDT" for r in api["/api/markets"]["rows"])
    assert PASSWORD not in json.dumps(api)


def test_a_value_of_the_wrong_type_is_a_store_error_and_writes_nothing(pg_url: str) -> None:
    good = (T0, "okx", "BTCUSDT", 1.0, None, None)
    with open_store(pg_url) as s:
        with pytest.raises(StoreError, match="bigint"):
            s.write([(Kind.OPEN_INTEREST, [good, (T0 + 1.5, "okx", "BTCUSDT", 1.0, None, None)])])
        assert list(s.rows(Kind.OPEN_INTEREST)) == []
        assert s.write([(Kind.OPEN_INTEREST, [good])]) == {Kind.OPEN_INTEREST: 1}


def test_a_database_restart_under_a_running_daemon_loses_no_bar(
    pg_server: PgServer, pg_url: str
) -> None:
    """The server restarts (a fast shutdown cuts every connection) while `watch` runs: the
    daemon keeps what it could not write, reconnects, and the store ends with every bar the
    venues served."""
    symbols = ("BTCUSDT", "ETHUSDT")
    req = WatchRequest(("binance", "okx"), symbols, None, EngineParams(), settle_ms=60_000)
    start = parse_time("2026-05-28T16:00Z")

    def started_at() -> object:
        with psycopg.connect(pg_url) as conn:
            row = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
        return row[0] if row else None

    async def go() -> tuple[Run, dict[tuple[str, str], list[int]], int]:
        async with simulated(pg_url, speed=300.0, limit_scale=300.0, start_ms=start) as run:
            daemon = asyncio.create_task(run_daemon(run, req, start + 50 * MINUTE_MS))
            while run.sim.ctx.now_ms() < start + 20 * MINUTE_MS:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(pg_server.restart)
            await daemon
            last = min(int(parse_time(str(v["last_bar"]))) for v in run.status["venues"])
            truth = {}
            for v in req.venues:
                async with client(v, run.sim.url) as c:
                    for sym in symbols:
                        bars = await c.klines(sym, FIVE, start, last)
                        truth[(v, sym)] = [k.ts_ms for k in bars if k.ts_ms <= last]
        return run, truth, last

    before = started_at()
    run, truth, last = asyncio.run(go())
    assert started_at() != before  # the server really restarted under the daemon
    assert run.status["store"]["pending"] == 0  # nothing left unwritten
    assert last >= start + 40 * MINUTE_MS
    with open_store(pg_url, readonly=True) as s:
        for (venue, sym), want in truth.items():
            got = s.timestamps(Kind.CANDLES, venue, sym, start, last).tolist()
            assert got == want and len(want) >= 9, (venue, sym)


def test_backfill_backtest_and_serve_on_postgresql_read_as_on_sqlite(
    pg_url: str, tmp_path: Path
) -> None:
    """The research path on a postgresql:// store: `backfill` from the simulator, then
    `backtest`, `regimes` and the dashboard's table read what they read on SQLite."""
    sqlite = str(tmp_path / "s.sqlite")
    span = ["--from", "2026-05-20", "--to", "2026-05-28"]
    outs: list[tuple[Any, ...]] = []
    with threaded() as sim:
        for db in (sqlite, pg_url):
            fill = run_cli("--db", db, "backfill", "--endpoint", sim.url, "--venues", "bybit",
                           "--symbols", "BTCUSDT,ETHUSDT", *span, "--format", "json")  # fmt: skip
            assert fill.code == 0, fill.err
            test = run_cli("--db", db, "backtest", "--venue", "bybit", "--regime", "all",
                           "--format", "json")  # fmt: skip
            assert test.code == 0, test.err
            regimes = run_cli("--db", db, "regimes", "ETHUSDT", "--venue", "bybit", *span,
                              "--format", "json")  # fmt: skip
            assert regimes.code == 0, regimes.err

            async def table(db: str = db) -> Any:
                async with (
                    serving(ServeConfig(db, port=0)) as url,
                    aiohttp.ClientSession() as http,
                    http.get(f"{url}/api/markets") as r,
                ):
                    assert r.status == 200
                    return await r.json()

            outs.append((json.loads(test.out), json.loads(regimes.out), asyncio.run(table())))
    (bt, reg, board), pg = outs
    assert pg == outs[0]
    assert reg and {r["venue"] for r in board["rows"]} == {"bybit"} and len(board["rows"]) == 2
    assert bt["groups"][0]["events"] > 100  # an event study over a week of two symbols
