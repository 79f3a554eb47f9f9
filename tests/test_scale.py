"""Collectors on many hosts, one decider with a stand-by (`watch --collect-only/--decide-only`),
as users run them: real processes on one PostgreSQL server and `oiradar sim` over sockets,
compared with one `oiradar watch` process on the same simulated market.

The market is the README's replay (ADAUSDT covers at 14:10, is squeezed at 14:42:04). The
collectors flush every 20 ms and the lease lives 4 s: at 300x a collector's default 1 s
flush is 5 minutes of market time, which would reorder two venues' bursts that are 29 s
apart, and a 15 s lease would outlast the run (docs/scaling.md has the real-time figures).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from oiradar.errors import OiradarError
from oiradar.kinds import Kind
from oiradar.sim.server import SimServer
from oiradar.store import open_store
from oiradar.units import MINUTE_MS, parse_time
from oiradar.venues.registry import client
from tests.pgkit import PgServer
from tests.simkit import threaded

EXE = Path(sys.executable).parent / "oiradar"
SPEED = "300"
START = parse_time("2026-05-28T13:45Z")
END = START + 150 * MINUTE_MS  # the single run's; the split one stops once its bybit is back
FIVE = 5 * MINUTE_MS
SYMBOLS = "ADAUSDT,BTCUSDT"
WALL_LIMIT_S = 90.0


def _alerts(path: Path) -> list[tuple[str, str, str]]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(a["ts"], a["symbol"], a["kind"]) for a in rows]


class Fleet:
    """`oiradar watch` processes on one store and simulator; each one's stderr in a file."""

    def __init__(self, tmp: Path, db: str, sim: SimServer) -> None:
        self.tmp, self.db, self.sim = tmp, db, sim
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def start(self, name: str, *args: str) -> None:
        cfg = self.tmp / f"{name}.toml"
        cfg.write_text(
            f'[[sinks]]\ntype = "jsonl"\nname = "file"\npath = "{self.tmp / name}.jsonl"\n'
        )
        with (self.tmp / f"{name}.err").open("a") as err:  # the child keeps its own copy
            self.procs[name] = self._popen(cfg, err, *args)

    def _popen(self, cfg: Path, err: Any, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(EXE), "--db", self.db, "watch", "--symbols", SYMBOLS, "--min-history", "30m",
             "--settle", "60s", "--limit-scale", SPEED, "--endpoint", self.sim.url,
             "--config", str(cfg), *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
            env={**os.environ, "OIRADAR_ENDPOINT": ""},
        )  # fmt: skip

    def collector(self, venue: str) -> None:
        self.start(f"collect-{venue}", "--collect-only", "--venues", venue, "--flush", "20ms")

    def decider(self, name: str) -> str:
        """Started with the dashboard (`--serve`) on a free port: its URL."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.start(name, "--decide-only", "--venues", "binance,bybit", "--lease-ttl", "4s",
                   "--serve", "--port", str(port))  # fmt: skip
        return f"http://127.0.0.1:{port}"

    def alerts(self, name: str) -> list[tuple[str, str, str]]:
        return _alerts(self.tmp / f"{name}.jsonl")

    def until(self, done: Callable[[], bool], what: str) -> None:
        """Wait for `done`, failing with the processes' last words if one died meanwhile."""
        deadline = time.monotonic() + WALL_LIMIT_S
        while not done():
            for name, p in self.procs.items():
                if p.poll() not in (None, -signal.SIGKILL):
                    err = (self.tmp / f"{name}.err").read_text()[-2000:]
                    pytest.fail(f"{name} exited {p.returncode} waiting for {what}: {err}")
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    def go(self, ready: Callable[[Any], bool]) -> None:
        """Once `ready(store)` (every process started and listed its venues), the market runs
        at SPEED: starting processes on two busy cores must not cost market time."""

        def started() -> bool:
            try:
                with open_store(self.db, readonly=True) as s:
                    return ready(s)
            except OiradarError:  # not created or migrated yet
                return False

        self.until(started, "the processes to start")
        self.sim.ctx.clock.set(speed=float(SPEED))

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in self.procs.items():
            code = p.wait(30)
            assert code in (0, -signal.SIGKILL), (self.tmp / f"{name}.err").read_text()[-2000:]


@contextmanager
def fleet(tmp: Path, db: str) -> Iterator[Fleet]:
    with threaded(symbols=7, speed=1.0, limit_scale=float(SPEED), start_ms=START) as sim:
        f = Fleet(tmp, db, sim)
        try:
            yield f
        finally:
            for p in f.procs.values():
                if p.poll() is None:
                    p.kill()
                    p.wait()


async def _oi_history(url: str, venue: str, upto: int) -> dict[str, dict[int, float]]:
    """Per symbol, each bar's OI as the venue's 5m history serves it, by bar open."""
    async with client(venue, url) as c:
        out = {}
        for sym in SYMBOLS.split(","):
            rows = await c.oi_history(sym, FIVE, START, upto)
            out[sym] = {x.ts_ms - FIVE: round(x.oi_base, 6) for x in rows}  # stamped at the close
        return out


def _bar_oi(db: str, upto: int) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """Each bar's OI as the engine reads it (the last sample at or before its close)."""
    from oiradar.signals.windows import build_grid

    out = {}
    with open_store(db, readonly=True) as s:
        for venue, symbol in sorted({(r[1], r[2]) for r in s.rows(Kind.CANDLES)}):
            grid = build_grid(s.read_series(venue, symbol, "5m", START, upto))
            bars = zip(grid.ts, grid.oi, strict=True)
            out[(venue, symbol)] = [(int(t), round(float(x), 6)) for t, x in bars]
    return out


def _candles(db: str, upto: int) -> dict[tuple[str, str], list[tuple[Any, ...]]]:
    """Every stored bar from the first one both runs' warm-ups hold up to `upto`."""
    with open_store(db, readonly=True) as s:
        rows = [r for r in s.rows(Kind.CANDLES) if START <= r[0] <= upto]
    out: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for r in rows:
        out.setdefault((r[1], r[2]), []).append(r)
    return out


@pytest.mark.slow
def test_collectors_and_two_deciders_survive_kill_9_and_match_one_process(
    tmp_path: Path, pg_server: PgServer
) -> None:
    single_db, split_db = pg_server.new_database(), pg_server.new_database()
    with fleet(tmp_path, single_db) as one:
        one.start("single", "--venues", "binance,bybit")
        one.go(_single_ready)
        one.until(lambda: one.sim.ctx.now_ms() >= END, "the single run's end")
        one.stop()
    single = one.alerts("single")
    assert [(s, k) for _, s, k in single[:2]] == [("ADAUSDT", "new"), ("ADAUSDT", "escalation")]

    with fleet(tmp_path, split_db) as split:
        split.collector("binance")
        split.collector("bybit")
        boards = {"d1": split.decider("d1"), "d2": split.decider("d2")}
        split.go(_split_ready)
        # The leader sends the NEW alert and dies (kill -9: its lease stays in the store).
        split.until(lambda: bool(split.alerts("d1") or split.alerts("d2")), "the first alert")
        leader = "d1" if split.alerts("d1") else "d2"
        standby = "d2" if leader == "d1" else "d1"
        split.procs[leader].kill()
        killed = time.monotonic()
        with open_store(split_db, readonly=True) as s:
            old = s.lease("decider")

            def taken_over() -> bool:
                held = s.lease("decider")
                return held is not None and old is not None and held[0] != old[0]

            split.until(taken_over, "the stand-by to take the lease")
        takeover_s = time.monotonic() - killed
        # After the squeeze a collector dies too: stale once its heartbeat is 10 s old;
        # restarted, it backfills what it missed.
        split.until(lambda: len(split.alerts(standby)) >= 1, "the squeeze")
        split.procs["collect-bybit"].kill()
        dead = split.sim.ctx.now_ms()
        with open_store(split_db, readonly=True) as s:
            split.until(lambda: bool(_venue_line(s, "bybit").get("stale_symbols")), "stale")
            stale = _venue_line(s, "bybit")
            board = _get(boards[standby], "/api/status")  # the dashboard of the decider left
            shown = {v["venue"]: v for v in board["venues"]}
            board_alerts = _get(boards[standby], "/api/alerts")["alerts"]
            markets = _get(boards[standby], "/api/markets")["rows"]
            stepped = _venue_line(s, "binance")["decided_bars"]
            split.until(  # the decider goes on with binance meanwhile
                lambda: _venue_line(s, "binance")["decided_bars"] > stepped + 2, "binance bars"
            )
        split.collector("bybit")
        back = split.sim.ctx.now_ms()
        with open_store(split_db, readonly=True) as s:
            split.until(lambda: _bybit_mark(s) > back + 2 * FIVE, "bybit back")
            upto = _bybit_mark(s)
        split.stop()
        history = asyncio.run(_oi_history(split.sim.url, "bybit", upto + FIVE))

    assert takeover_s < 30.0
    expected = [a for a in single if parse_time(a[0]) <= upto + FIVE]  # known by the stop
    sent = sorted(split.alerts(leader) + split.alerts(standby))
    assert [a[1:] for a in sent] == [a[1:] for a in expected], "no alert lost, none twice"
    # The same times too; a burst's may differ by the order that tipped it when the two
    # collectors' flushes land far apart on a loaded machine (never by more than a bar).
    for (got_ts, _, _), (want_ts, _, kind) in zip(sent, expected, strict=True):
        late = parse_time(got_ts) - parse_time(want_ts)
        assert late == 0 if kind == "new" else abs(late) <= FIVE, (got_ts, want_ts)
    assert split.alerts(leader) == sent[:1]
    with open_store(split_db, readonly=True) as s:
        assert sorted(_alerts_logged(s)) == sent
    assert stale["stream"] == "stale" and stale["stale_symbols"] == SYMBOLS.split(",")
    assert board["state"] == "running" and shown["bybit"]["stale"] is True
    assert shown["bybit"]["stream"] == "stale" and not shown["binance"].get("stale")
    logged_then = [(a["ts"], a["symbol"], a["kind"]) for a in reversed(board_alerts)]
    assert len(logged_then) >= 2 and logged_then == sent[: len(logged_then)]  # new, escalation
    assert {(r["venue"], r["symbol"]) for r in markets} >= {("binance", "ADAUSDT")}
    assert upto < END - 2 * FIVE
    ref = _candles(single_db, upto)
    assert _candles(split_db, upto) == ref, "gaps backfilled: the store equals one process's"
    # Each bar's OI too: the one process's everywhere, but where bybit's collector was down
    # the backfill stored the venue's history (stamped at the close) and the one process
    # the last ticker push before the close (at 300x, up to a minute of market earlier).
    oi, ref_oi = _bar_oi(split_db, upto), _bar_oi(single_db, upto)
    assert oi.keys() == ref_oi.keys() and len(oi) == 4
    for key, bars in oi.items():
        assert [t for t, _ in bars] == [t for t, _ in ref_oi[key]]
        filled = [(t, x) for (t, x), (_, y) in zip(bars, ref_oi[key], strict=True) if x != y]
        if key[0] == "binance":  # polled: the bar-close history row in both runs
            assert not filled, (key, filled)
            continue
        assert filled == [(t, history[key[1]][t]) for t, _ in filled], key
        assert all(dead <= t + FIVE <= upto + FIVE for t, _ in filled), (key, filled, dead)
    assert all(len(bars) >= 20 for bars in ref.values()) and len(ref) == 4


def _get(url: str, path: str) -> Any:
    with urllib.request.urlopen(url + path, timeout=10) as r:
        return json.load(r)


def _venue_line(store: Any, venue: str) -> dict[str, Any]:
    from oiradar.services.watch import read_status

    status = read_status(store)
    return next((v for v in status["venues"] if v.get("venue") == venue), {})


def _single_ready(store: Any) -> bool:
    state = store.watch_state()
    return state is not None and len(state.status["venues"]) == 2


def _split_ready(store: Any) -> bool:
    beats = store.workers()
    running = [hb for hb in beats if hb.detail.get("state") == "running"]
    collecting = [hb for hb in running if hb.role == "collector" and hb.detail.get("venues")]
    return len(collecting) == 2 and len(running) == 4


def _bybit_mark(store: Any) -> int:
    """The newest bybit bar a living collector says it stored (0: none yet)."""
    marks = [
        v["last_bar_ms"]
        for hb in store.workers()
        if hb.detail.get("state") == "running"
        for name, v in (hb.detail.get("venues") or {}).items()
        if name == "bybit" and isinstance(v.get("last_bar_ms"), int)
    ]
    return max(marks, default=0)


def _alerts_logged(store: Any) -> list[tuple[str, str, str]]:
    return [(a.alert["ts"], a.alert["symbol"], a.alert["kind"]) for a in store.alerts()]
