"""`oiradar watch` as a user runs it: a real process, SIGTERM, `oiradar status`, bad input."""

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
from pathlib import Path
from typing import Any

import pytest

from oiradar.errors import OiradarError
from oiradar.kinds import Kind
from oiradar.store import open_store
from tests.conftest import run_cli
from tests.simkit import threaded

EXE = Path(sys.executable).parent / "oiradar"


def _status(db: Path) -> dict[str, Any] | None:
    """What the daemon last published in the store (None before it did)."""
    try:
        with open_store(db, readonly=True) as store:
            state = store.watch_state()
    except OiradarError:  # not created (or not migrated) yet
        return None
    return None if state is None else state.status


def test_watch_runs_reports_status_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    db, cfg = tmp_path / "w.sqlite", tmp_path / "config.toml"
    out = tmp_path / "alerts.jsonl"
    cfg.write_text(f'[[sinks]]\ntype = "jsonl"\nname = "file"\npath = "{out}"\n')
    with socket.socket() as free:  # a free port for the dashboard the daemon serves
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with threaded(symbols=3, speed=120.0) as sim:
        proc = subprocess.Popen(
            [str(EXE), "--db", str(db), "watch", "--venues", "bybit,okx,binance",
             "--symbols", "BTCUSDT,ETHUSDT", "--endpoint", sim.url, "--config", str(cfg),
             "--min-history", "30m", "--settle", "30s", "--serve", "--port", str(port),
             "--log-format", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "OIRADAR_ENDPOINT": ""},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                st = _status(db)
                if st and st["venues"] and all(v["bars_stepped"] >= 4 for v in st["venues"]):
                    break
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.2)
            else:
                pytest.fail(f"no bars stepped in time: {_status(db)}")
            table = run_cli("--db", str(db), "status")
            assert table.code == 0, table.err
            for venue in ("binance", "bybit", "okx"):
                assert venue in table.out
            assert "poll every" in table.out and "stream" in table.out
            as_json = json.loads(run_cli("--db", str(db), "status", "--format", "json").out)
            assert as_json["state"] == "running"
            assert {v["venue"] for v in as_json["venues"]} == {"binance", "bybit", "okx"}
            assert all(v["stream"] == "live" for v in as_json["venues"])
            # `--serve`: the dashboard runs inside the daemon, on loopback.
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/markets") as r:
                board = json.load(r)
            assert {row["venue"] for row in board["rows"]} == {"binance", "bybit", "okx"}
            # Prometheus scrapes the same dashboard: the daemon's published status as metrics.
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:
                assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                scraped = samples(r.read().decode())
            assert scraped[("oiradar_watch_up", ())] == 1.0
            for venue in ("binance", "bybit", "okx"):
                assert scraped[("oiradar_stream_live", (("venue", venue),))] == 1.0
                assert scraped[("oiradar_stream_messages_total", (("venue", venue),))] > 0
            assert scraped[("oiradar_store_rows_written_total", ())] > 0
            assert scraped[("oiradar_process_resident_memory_bytes", ())] > 10e6
            assert ("oiradar_store_pending_rows", ()) in scraped
            assert 0 <= scraped[("oiradar_loop_lag_seconds", ())] < 5
            assert ("oiradar_loop_stalls_total", ()) in scraped
            assert scraped[("oiradar_store_write_seconds_total", ())] > 0
            assert ("oiradar_store_last_write_seconds", ()) in scraped
            # Binance polls OI over REST; the simulator's limits are kept, so no 429.
            assert scraped[("oiradar_rest_requests_total", (("venue", "binance"),))] > 0
            assert scraped[("oiradar_rest_rate_limited_total", (("venue", "binance"),))] == 0
            # A second process reads the store while the daemon writes it.
            reader = run_cli("--db", str(db), "regimes", "ETHUSDT", "--venue", "okx")
            assert reader.code == 0, reader.err
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    logged = [json.loads(line) for line in stderr.splitlines() if line.strip()]  # all JSON
    assert {"ts", "level", "logger", "message"} <= set(logged[0])
    [stopped_line] = [d for d in logged if d.get("event") == "stopped"]
    assert stopped_line["logger"] == "oiradar.services.watch.daemon"
    assert isinstance(stopped_line["flushed_rows"], int)
    final = _status(db)
    assert final is not None and final["state"] == "stopped" and final["store"]["pending"] == 0
    with open_store(db, readonly=True) as s:
        assert s.last_ts(Kind.CANDLES, "okx", "ETHUSDT", None, None) is not None
        assert s.last_ts(Kind.OPEN_INTEREST, "binance", "BTCUSDT", None, None) is not None
    stopped = run_cli("--db", str(db), "status")
    assert "watch stopped" in stopped.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--venues", "kraken"], "unknown venue(s) kraken"),
        (["--top", "0"], "--top must be a positive number"),
        (["--top", "5", "--all"], "use one of --symbols"),
        (["--window", "7m"], "not a multiple of the 5m bars"),
        (["--settle", "soon"], "invalid --settle"),
        (["--log-level", "loud"], "unknown --log-level"),
        (["--log-format", "xml"], "unknown --log-format"),
        (["--serve", "--metrics-port", "9100"], "--serve already serves /metrics"),
        (["--min-history", "x"], "invalid interval"),
    ],
)
def test_bad_watch_input_is_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    res = run_cli("--db", str(tmp_path / "w.sqlite"), "watch", *args)
    assert res.code == 2
    assert message in res.err and res.err.count("\n") == 1 and "Traceback" not in res.err


def test_watch_with_no_reachable_venue_says_so(tmp_path: Path) -> None:
    res = run_cli("--db", str(tmp_path / "w.sqlite"), "watch", "--venues", "bybit")
    assert res.code == 4
    assert "no venue could be started" in res.err.splitlines()[-1]


def test_status_without_a_daemon_is_a_clear_error(tmp_path: Path) -> None:
    res = run_cli("--db", str(tmp_path / "none.sqlite"), "status")
    assert res.code == 2 and "is `oiradar watch` running on this store?" in res.err


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A Prometheus exposition parsed by prometheus_client's own parser (so the format is
    checked too): (name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_watch_metrics_port_serves_the_published_status(tmp_path: Path) -> None:
    """`watch --metrics-port` without a dashboard: only /metrics, on loopback."""
    from oiradar.services.watch import WatchRequest, run
    from oiradar.web.server import serving_metrics

    db = tmp_path / "m.sqlite"
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    url = f"http://127.0.0.1:{port}/metrics"

    async def main(sim_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        stop = asyncio.Event()
        req = WatchRequest(("bybit",), ("BTCUSDT",), endpoint=sim_url)
        with open_store(db) as store:
            task = asyncio.create_task(run(req, store, beside=serving_metrics(db, port), stop=stop))
            try:
                for _ in range(150):
                    await asyncio.sleep(0.2)
                    try:
                        text = await asyncio.to_thread(
                            lambda: urllib.request.urlopen(url, timeout=5).read().decode()
                        )
                    except OSError:
                        continue
                    got = samples(text)
                    if got.get(("oiradar_stream_live", (("venue", "bybit"),))) == 1.0:
                        return got
                pytest.fail("the metrics never showed a live stream")
            finally:
                stop.set()
                await task

    with threaded(symbols=3, speed=60.0) as sim:
        got = asyncio.run(main(sim.url))
    assert got[("oiradar_watch_up", ())] == 1.0
    assert ("oiradar_alerts_produced_total", ()) in got
    with pytest.raises(OSError):  # the metrics server stopped with the daemon
        urllib.request.urlopen(url, timeout=2)


def test_a_crashed_watch_reads_stale_not_running(tmp_path: Path) -> None:
    """`kill -9` leaves "running" in the store: `oiradar status` and `/api/status` check the
    pid (same host) and the age of the last write (any host) before they believe it."""
    from oiradar.clock import WallClock
    from oiradar.store import WatchState
    from oiradar.units import iso
    from oiradar.web.app import ServeConfig
    from oiradar.web.server import serving

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    now = WallClock().now_ms()
    host = socket.gethostname()
    cases = [  # (pid, host, updated) -> state shown
        ((os.getpid(), host, iso(now)), "running"),
        ((int(dead.stdout), host, iso(now)), "stale"),  # its process is gone
        ((os.getpid(), "elsewhere", iso(now - 10 * 60_000)), "stale"),  # silent for 10 min
    ]
    for (pid, where, updated), shown in cases:
        db = tmp_path / f"{shown}-{pid}-{where}.sqlite"
        status = {"state": "running", "pid": pid, "host": where, "updated": updated}
        with open_store(db) as store:
            store.put_watch_state(WatchState(status, {}))
        res = run_cli("--db", str(db), "status", "--format", "json")
        assert res.code == 0 and json.loads(res.out)["state"] == shown, (pid, where, res.out)
        health = run_cli("--db", str(db), "status", "--check")  # the Dockerfile's HEALTHCHECK
        assert (health.code, health.out) == (0 if shown == "running" else 1, ""), health
        assert shown == "running" or health.err.strip() == f"watch stale (updated {updated})"

        async def api(db: Path = db) -> Any:
            async with serving(ServeConfig(db, port=0)) as url:
                return await asyncio.to_thread(
                    lambda: json.load(urllib.request.urlopen(f"{url}/api/status", timeout=5))
                )

        assert asyncio.run(api())["state"] == shown
