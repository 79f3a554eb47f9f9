"""The parts of a split deployment (docs/scaling.md) one at a time: the ingest's bound while
the store is down, how heartbeats make a venue stale, the CLI's refusals, a collector and a
decider on one SQLite file (the decider polls), and a PostgreSQL restart under a collector."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from oiradar.clock import WallClock
from oiradar.kinds import Kind
from oiradar.records import Candle, Liquidation, Side
from oiradar.services.alerts import Gate
from oiradar.services.watch import WatchRequest
from oiradar.services.watch.collect import Collector
from oiradar.services.watch.deciding import DecideOnly
from oiradar.services.watch.ingest import Ingest
from oiradar.services.watch.workers import STALE_AFTER_MS, venue_views, with_workers
from oiradar.signals.params import EngineParams
from oiradar.store import Heartbeat, open_store
from oiradar.units import MINUTE_MS, parse_time
from oiradar.venues.registry import client
from tests.pgkit import PgServer
from tests.watchkit import Run, run_daemon, simulated

EXE = Path(sys.executable).parent / "oiradar"
T0 = 1_780_000_200_000
FIVE = 5 * MINUTE_MS
SPEED = 300.0


def test_the_ingest_keeps_liquidations_and_drops_the_oldest_servable_rows_past_its_bound(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path / "s.sqlite")
    store.close()  # every write now fails, as against a database that is down
    ingest = Ingest(store, max_pending=4)
    liqs = [Liquidation("okx", "BTCUSDT", T0 + i, Side.SHORT, 1.0, 100.0, 100.0) for i in range(3)]
    bars = [Candle("okx", "BTCUSDT", FIVE, T0 + i * FIVE, 1, 1, 1, 1, 1, 1) for i in range(4)]
    ingest.extend([bars[0], liqs[0], bars[1], liqs[1], bars[2], liqs[2], bars[3]])
    assert ingest.flush() == 0
    assert ingest.stats.dropped == 3 and ingest.stats.dropped_from_ms == T0
    assert ingest._records == [*liqs, bars[3]]  # every order kept; the newest bar too


def _beat(worker: str, age_ms: int, venues: dict[str, object], now: int) -> Heartbeat:
    return Heartbeat(worker, "collector", "h", 1, now - age_ms, {"state": "running",
                     "venues": venues})  # fmt: skip


def test_a_venue_whose_collectors_stopped_beating_is_stale_never_stepped() -> None:
    now = T0 + 3_600_000
    okx = {"okx": {"symbols": ["BTCUSDT"], "last_bar_ms": T0, "feed": "complete"}}
    bybit = {"bybit": {"symbols": ["BTCUSDT", "ETHUSDT"], "last_bar_ms": T0 - FIVE}}
    beats = [_beat("a:1", 1_000, okx, now), _beat("b:2", STALE_AFTER_MS + 1, bybit, now)]
    views = venue_views(beats, now)
    assert views["okx"].marks == {"BTCUSDT": T0} and not views["okx"].stale
    assert views["bybit"].marks == {} and views["bybit"].stale == {"BTCUSDT", "ETHUSDT"}
    # A second collector takes ETHUSDT over: only BTCUSDT stays unknown.
    beats.append(_beat("c:3", 0, {"bybit": {"symbols": ["ETHUSDT"], "last_bar_ms": T0}}, now))
    assert venue_views(beats, now)["bybit"].stale == {"BTCUSDT"}
    status = with_workers({"state": "running", "venues": [{"venue": "okx"}]}, beats[:2], now)
    lines = {v["venue"]: v for v in status["venues"]}
    assert lines["bybit"]["stream"] == "stale" and "stale" not in lines["okx"]
    assert [w["stale"] for w in status["workers"]] == [False, True]


def test_the_split_flags_refuse_each_other_and_a_long_lease(tmp_path: Path) -> None:
    """As a process: importing `watch` in the test process would reorder the lazy command
    table that tests/test_docs.py renders."""
    db = str(tmp_path / "s.sqlite")
    for args, said in (
        (["--collect-only", "--decide-only"], "exclude each other"),
        (["--decide-only", "--lease-ttl", "30s"], "at most 20s"),
    ):
        res = subprocess.run(
            [str(EXE), "--db", db, "watch", *args], capture_output=True, text=True, check=False
        )
        assert res.returncode == 2 and said in res.stderr and "Traceback" not in res.stderr


def test_a_collector_and_a_decider_on_sqlite_alert_as_one_process(tmp_path: Path) -> None:
    """The README's replay: one process, then a collector and a decider on another file (the
    decider polls SQLite's change count); the same alerts, the NEW at the same bar close."""
    params = EngineParams(min_history_ms=30 * MINUTE_MS)
    venues = ("binance", "bybit")
    req = WatchRequest(venues, ("ADAUSDT",), None, params, settle_ms=60_000, flush_s=0.02)
    start, end = parse_time("2026-05-28T13:50Z"), parse_time("2026-05-28T14:50Z")

    async def one() -> Run:
        async with simulated(tmp_path / "one.sqlite", speed=SPEED, limit_scale=SPEED,
                             start_ms=start) as run:  # fmt: skip
            await run_daemon(run, req, end)
        return run

    async def split() -> tuple[Run, DecideOnly]:
        db = tmp_path / "split.sqlite"
        async with simulated(db, speed=SPEED, limit_scale=SPEED, start_ms=start) as run:
            with open_store(db) as store:
                from oiradar.config import Secret, SinkConfig, SinkType
                from oiradar.services.alerts import build_sink

                hook = build_sink(SinkConfig(SinkType.WEBHOOK, "hook", url=Secret(run.hook)))
                decider = DecideOnly(req, store, [hook], Gate(cooldown_s=900))
                stop = asyncio.Event()
                deciding = asyncio.create_task(decider.run(stop))
                await run_daemon(run, req, end + 2 * FIVE, kind=Collector)
                stop.set()
                await deciding
        return run, decider

    single = asyncio.run(one())
    run, decider = asyncio.run(split())
    want = [(a["kind"], a["ts_ms"]) for a in single.alerts()]
    got = [(a["kind"], a["ts_ms"]) for a in run.alerts() if a["ts_ms"] <= end]
    assert [k for k, _ in want] == ["new", "escalation"]
    assert [k for k, _ in got] == [k for k, _ in want]
    # A burst's time is the order that tipped it: two venues' orders 29 s apart may arrive
    # in the other order on a loaded machine at 300x (20 ms of flush = 6 s of market).
    assert got[0] == want[0] and abs(got[1][1] - want[1][1]) <= FIVE
    assert decider.leading and [v["venue"] for v in decider.status()["venues"]] == list(venues)


def test_a_database_restart_under_a_collector_loses_no_bar(
    pg_server: PgServer, pg_url: str
) -> None:
    """The server restarts (every connection cut) under a collector: its writes wait for the
    pool to reconnect (up to 30 s; longer, they fail and the ingest keeps them up to its
    bound, above), every bar the venue serves is stored, nothing is left pending, and its
    heartbeat row is back."""
    symbols = ("BTCUSDT", "ETHUSDT")
    req = WatchRequest(("okx",), symbols, None, EngineParams(), settle_ms=60_000)
    start = parse_time("2026-05-28T16:00Z")

    async def go() -> tuple[Run, dict[str, list[int]], int]:
        async with simulated(pg_url, speed=300.0, limit_scale=300.0, start_ms=start) as run:
            task = asyncio.create_task(run_daemon(run, req, start + 50 * MINUTE_MS, kind=Collector))
            while run.sim.ctx.now_ms() < start + 20 * MINUTE_MS:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(pg_server.restart)
            await task
            last = int(parse_time(str(run.status["venues"][0]["last_bar"])))
            async with client("okx", run.sim.url) as c:
                truth = {s: [k.ts_ms for k in await c.klines(s, FIVE, start, last)
                             if k.ts_ms <= last] for s in symbols}  # fmt: skip
        return run, truth, last

    run, truth, last = asyncio.run(go())
    assert run.status["store"]["pending"] == 0
    with open_store(pg_url, readonly=True) as s, psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM workers").fetchone() == (1,)
        for sym, want in truth.items():
            got = s.timestamps(Kind.CANDLES, "okx", sym, start, last).tolist()
            assert got == want and len(want) >= 9, sym


def _two_collectors(db: Path) -> Path:
    """A store where okx's collector beats and bybit's stopped a minute ago."""
    now = WallClock().now_ms()
    with open_store(db) as store:
        store.beat(_beat("a:1", 1_000, {"okx": {"symbols": ["BTCUSDT"], "last_bar_ms": T0}}, now))
        store.beat(_beat("b:2", 60_000, {"bybit": {"symbols": ["BTCUSDT"]}}, now))
    return db


def test_the_dashboard_shows_a_venue_whose_collector_stopped_as_stale(tmp_path: Path) -> None:
    import aiohttp

    from oiradar.web.app import ServeConfig
    from oiradar.web.server import serving

    db = _two_collectors(tmp_path / "s.sqlite")

    async def status() -> dict[str, object]:
        async with (
            serving(ServeConfig(str(db), port=0, refresh_s=0.2)) as url,
            aiohttp.ClientSession() as http,
            http.get(url + "/api/status") as r,
        ):
            assert r.status == 200
            doc: dict[str, object] = await r.json()
            return doc

    doc = asyncio.run(status())
    venues = {v["venue"]: v for v in doc["venues"]}  # type: ignore[attr-defined]
    assert venues["bybit"]["stream"] == "stale" and venues["bybit"]["stale"] is True
    assert venues["okx"]["stale"] is None and doc["state"] == "not running"


def test_a_stand_by_sends_on_takeover_only_what_the_alert_log_lacks(tmp_path: Path) -> None:
    """Computed while standing by: one alert the dead leader logged, one it did not (it died
    first). Taking the lease over sends the second only, once; the log then holds both."""
    from dataclasses import replace

    from oiradar.services.alerts.model import sample_alert

    class Stamp:
        name = "stamp"

        def __init__(self) -> None:
            self.sent: list[str] = []

        async def send(self, alert: object) -> None:
            self.sent.append(f"{alert.symbol}:{alert.kind.value}")  # type: ignore[attr-defined]

        async def close(self) -> None:
            return None

    logged, lost = sample_alert(T0), replace(sample_alert(T0 + FIVE), symbol="ADAUSDT")
    sink = Stamp()

    async def go() -> list[str]:
        with open_store(tmp_path / "s.sqlite") as store:
            store.append_alert(logged.to_dict())  # the leader sent this one before it died
            req = WatchRequest(("bybit",), None, None, EngineParams())
            decider = DecideOnly(req, store, [sink], Gate(cooldown_s=900))
            decider.dispatcher.start()
            decider._emit(logged)
            decider._emit(lost)
            assert sink.sent == [] and len(decider.held) == 2  # standing by: nothing sent
            await decider._take_over()
            await decider._take_over()  # a second takeover sends nothing again
            await decider._drain_alerts()
            await decider.dispatcher.close(timeout_s=5.0)
            await decider.ingest.close()
            return [f"{a.alert['symbol']}:{a.alert['kind']}" for a in store.alerts()]

    in_log = asyncio.run(go())
    assert sink.sent == ["ADAUSDT:escalation"]
    assert in_log == ["SOLUSDT:escalation", "ADAUSDT:escalation"]


def test_status_lists_the_workers_and_a_stopped_collectors_venue_as_stale(tmp_path: Path) -> None:
    db = _two_collectors(tmp_path / "s.sqlite")
    res = subprocess.run([str(EXE), "--db", str(db), "status"], capture_output=True, text=True,
                         check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr
    bybit = next(line for line in res.stdout.splitlines() if "bybit" in line and "│" in line)
    assert "stale" in bybit
    assert "collector a:1: live" in res.stdout and "collector b:2: stale" in res.stdout


def test_status_check_judges_this_hosts_own_collector_or_decider(tmp_path: Path) -> None:
    """A container's health check runs on the host of its process: a collector or a
    stand-by decider beating here is healthy although no decider publishes a status; one
    whose beats stopped is not; a host running none is judged by the published status."""
    import socket

    now, here = WallClock().now_ms(), socket.gethostname()
    venues = {"okx": {"symbols": ["BTCUSDT"]}}

    def check(*beats: Heartbeat) -> tuple[int, str]:
        db = tmp_path / f"{len(list(tmp_path.iterdir()))}.sqlite"
        with open_store(db) as store:
            for hb in beats:
                store.beat(hb)
        res = subprocess.run([str(EXE), "--db", str(db), "status", "--check"],
                             capture_output=True, text=True, check=False)  # fmt: skip
        assert res.stdout == ""
        return res.returncode, res.stderr.strip()

    def beat(role: str, pid: int, age_ms: int, host: str = here) -> Heartbeat:
        detail = {"state": "running", "venues": venues, "leading": False}
        return Heartbeat(f"{host}:{pid}", role, host, pid, now - age_ms, detail)

    assert check(beat("collector", os.getpid(), 1_000)) == (0, "")
    assert check(beat("decider", os.getpid(), 1_000)) == (0, "")  # standing by: alive
    code, why = check(beat("collector", os.getpid(), 60_000))
    age = why.removeprefix(f"collector {here}:{os.getpid()} stale: last heartbeat ")
    assert code == 1 and age.endswith(" s ago") and 60 <= int(age.split()[0]) < 120, why
    # beating here, but the process is gone (a pid is only believed on its own host)
    assert check(beat("collector", 2**22 + 7, 1_000))[0] == 1
    # nothing of this host's: a collector elsewhere does not make this host healthy
    code, why = check(beat("collector", 1, 1_000, host="elsewhere"))
    assert (
        code == 1
        and why == f"no collector or decider beats on {here}, and no watch publishes a status"
    )
