"""`oiradar backfill` against `oiradar sim`: completeness, resume after a kill, the Binance
archive from a folder and over HTTP (checksums, cache), and bad input."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from oiradar.datafiles.archive import ArchiveFile, funding_file, klines_file, metrics_file
from oiradar.kinds import Kind
from oiradar.services.backfill import BackfillRequest, BackfillResult, backfill
from oiradar.store import open_store
from oiradar.units import DAY_MS, MINUTE_MS, parse_time
from oiradar.venues.base import VenueClient
from oiradar.venues.registry import client
from tests.conftest import run_cli
from tests.simkit import NOW, get, running, threaded

FIVE = 5 * MINUTE_MS
SYMBOLS = ("BTCUSDT", "ETHUSDT")
OLD_DAY = "2026-04-10"  # 48 days before the simulator's clock: beyond Binance's 30 days of OI
METRICS_HEADER = (
    "create_time,symbol,sum_open_interest,sum_open_interest_value,"
    "count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,"
    "count_long_short_ratio,sum_taker_long_short_vol_ratio"
)
KLINES_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore"
)


@pytest.fixture(autouse=True)
def _never_the_real_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Downloads go to a closed loopback port and the cache to tmp unless a test says else."""
    monkeypatch.setenv("OIRADAR_ARCHIVE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("OIRADAR_CACHE_DIR", str(tmp_path / "no-cache"))


def _clients(url: str, venues: tuple[str, ...]) -> list[VenueClient]:
    return [client(v, url) for v in venues]


async def _run(url: str, db: Path, req: BackfillRequest, **kw: Any) -> BackfillResult:
    clients = _clients(url, req.venues)
    try:
        with open_store(db) as store:
            return await backfill(clients, store, req, **kw)
    finally:
        for c in clients:
            await c.close()


def _rows(db: Path, kind: Kind) -> list[tuple[Any, ...]]:
    with open_store(db, readonly=True) as store:
        return list(store.rows(kind))


async def _requests(sim: Any, http: Any) -> int:
    _, stats = await get(http, sim, "/_sim/stats")
    return sum(v["requests"] for v in stats["venues"].values())


async def _reset(sim: Any, http: Any) -> None:
    async with http.post(sim.url + "/_sim/stats/reset"):
        pass


async def test_backfill_fills_what_the_connectors_serve_without_holes(tmp_path: Path) -> None:
    start = parse_time("2026-05-25")
    end = start + 3 * DAY_MS
    venues = ("binance", "bybit")
    db = tmp_path / "s.sqlite"
    async with running() as (sim, _):
        req = BackfillRequest(venues, start, end, SYMBOLS, premium=True)
        result = await _run(sim.url, db, req)
        assert [(v.venue, v.fetched, v.skipped, v.failed) for v in result.venues] == [
            ("binance", 6, 0, None),
            ("bybit", 6, 0, None),
        ]
        want: dict[Kind, list[tuple[Any, ...]]] = {k: [] for k in Kind}
        for c in _clients(sim.url, venues):
            for s in SYMBOLS:
                for k in await c.klines(s, FIVE, start, end - FIVE):
                    want[Kind.CANDLES].append(
                        (
                            k.ts_ms,
                            k.venue,
                            k.symbol,
                            "5m",
                            k.open,
                            k.high,
                            k.low,
                            k.close,
                            k.volume_base,
                            k.volume_quote,
                            k.taker_buy_base,
                            k.trades,
                        )
                    )
                for o in await c.oi_history(s, FIVE, start + 1, end):
                    want[Kind.OPEN_INTEREST].append(
                        (o.ts_ms, o.venue, o.symbol, o.oi_base, o.oi_contracts, o.oi_usd)
                    )
                for f in await c.funding_history(s, start, end - 1):
                    want[Kind.FUNDING].append((f.ts_ms, f.venue, f.symbol, f.rate, f.interval_h))
                for b in await c.premium_history(s, FIVE, start, end - FIVE):
                    prem = (b.ts_ms, b.venue, b.symbol, "5m", b.open, b.high, b.low, b.close)
                    want[Kind.PREMIUM_INDEX].append(prem)
                for p in await c.positioning_history(s, FIVE, start + 1, end):
                    ratios = (p.top_account_ratio, p.top_position_ratio, p.account_ratio)
                    pos = (p.ts_ms, p.venue, p.symbol, *ratios, p.taker_buy_sell_ratio)
                    want[Kind.POSITIONING].append(pos)
            await c.close()
    assert len(want[Kind.POSITIONING]) == 2 * 3 * 288  # Binance only
    for kind in Kind:
        assert _rows(db, kind) == sorted(want[kind], key=lambda r: (r[1], r[2], r[0])), kind
    with open_store(db, readonly=True) as store:
        for venue in venues:
            for s in SYMBOLS:  # every bar and every 5m OI snapshot, once
                bars = store.timestamps(Kind.CANDLES, venue, s, start, end)
                assert bars.tolist() == list(range(start, end, FIVE))
                oi = store.timestamps(Kind.OPEN_INTEREST, venue, s, start, end)
                assert oi.tolist() == list(range(start + FIVE, end + 1, FIVE))
    assert result.venues[0].rows["candles"] == 2 * 3 * 288


def _complete_days(db: Path, venues: tuple[str, ...], days: list[int]) -> tuple[int, int]:
    """(days whose chunk is stored whole, days with nothing): a chunk is all or nothing."""
    whole = empty = 0
    with open_store(db, readonly=True) as store:
        for venue in venues:
            for s in SYMBOLS:
                for day in days:
                    n_bars = store.timestamps(Kind.CANDLES, venue, s, day, day + DAY_MS - 1).size
                    n_oi = store.timestamps(Kind.OPEN_INTEREST, venue, s, day + 1, day + DAY_MS)
                    prem = store.timestamps(Kind.PREMIUM_INDEX, venue, s, day, day + DAY_MS - 1)
                    got = (n_bars, n_oi.size, prem.size)
                    assert got in ((0, 0, 0), (288, 288, 288)), (venue, s, day)
                    whole += n_bars == 288
                    empty += n_bars == 0
    return whole, empty


async def test_a_killed_run_resumes_without_duplicates_or_holes(tmp_path: Path) -> None:
    start = parse_time("2026-05-21")
    days = [start + i * DAY_MS for i in range(6)]
    venues = ("binance", "bybit")
    req = BackfillRequest(venues, start, start + 6 * DAY_MS, SYMBOLS, concurrency=2, premium=True)
    total = len(venues) * len(SYMBOLS) * len(days)
    async with running() as (sim, http):
        clean = await _run(sim.url, tmp_path / "clean.sqlite", req)
        clean_requests = await _requests(sim, http)
        assert sum(v.fetched for v in clean.venues) == total

        await _reset(sim, http)
        written = 0
        enough = asyncio.Event()

        def progress(venue: str, n: int) -> None:
            nonlocal written
            written += n < 0
            if written >= 7:
                enough.set()

        killed = tmp_path / "killed.sqlite"
        task = asyncio.create_task(_run(sim.url, killed, req, progress=progress))
        await enough.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        whole, empty = _complete_days(killed, venues, days)
        assert 7 <= whole < total and whole + empty == total

        await _reset(sim, http)
        resumed = await _run(sim.url, killed, req)
        resume_requests = await _requests(sim, http)
        assert sum(v.fetched for v in resumed.venues) == empty
        assert sum(v.skipped for v in resumed.venues) == whole
        assert resume_requests < clean_requests

        await _reset(sim, http)
        again = await _run(sim.url, killed, req)
        assert sum(v.fetched for v in again.venues) == 0
        assert await _requests(sim, http) <= 2 * len(venues) + 2  # instruments + one snapshot
    for kind in Kind:  # positioning and premium too
        assert _rows(killed, kind) == _rows(tmp_path / "clean.sqlite", kind), kind


async def test_a_rerun_fetches_nothing_the_venue_can_never_serve(tmp_path: Path) -> None:
    """The days before a listing and OKX's OI beyond its latest 1,440 rows come back empty
    every time: a second run asks for none of them (it used to fetch those chunks again on
    every run). Binance, Bybit and OKX say when they listed a contract; for the others the
    first run learns it (two empty days, then candles) and the store remembers it. The
    simulator's history starts 2026-05-20, its clock is 2026-05-28T20:26Z."""
    venues = ("binance", "bybit", "okx", "bitget", "gate", "hyperliquid", "dydx")
    req = BackfillRequest(venues, parse_time("2026-05-18"), NOW, ("BTCUSDT",))
    db = tmp_path / "s.sqlite"
    async with running() as (sim, http):
        first = await _run(sim.url, db, req)
        assert [v.failed for v in first.venues] == [None] * len(venues)
        await _reset(sim, http)
        again = await _run(sim.url, db, req)
        assert [(v.venue, v.fetched) for v in again.venues] == [(v, 0) for v in venues]
        # Only the instrument lists and one snapshot per venue: 4 Binance, 2 Bybit, 4 OKX,
        # and two each for the others.
        assert await _requests(sim, http) <= 4 + 2 + 4 + 4 * 2
    with open_store(db, readonly=True) as store:
        learned = {v: store.listings(v) for v in venues}
    listed = parse_time("2026-05-20")
    assert learned == {v: {} for v in venues[:3]} | {v: {"BTCUSDT": listed} for v in venues[3:]}
    notes = [m for v in first.venues for m in v.missing]
    assert any(
        "lists it from 2026-05-20T00:00:00Z: its REST API has nothing before" in m for m in notes
    ), notes
    with open_store(db, readonly=True) as store:
        okx_oi = store.timestamps(Kind.OPEN_INTEREST, "okx", "BTCUSDT", 0, NOW)
    assert len(okx_oi) == 1_440  # all it keeps, and nothing was skipped at its old end


def _count(db: Path, table: str) -> int:
    """Rows of a table, read-only (never creates the file the CLI is about to open)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:  # no file or no table yet
        return 0


def test_sigkill_mid_run_then_rerun_equals_one_clean_run(tmp_path: Path) -> None:
    """The real thing: the CLI process is SIGKILLed while it writes, then run again."""
    exe = Path(sys.executable).parent / "oiradar"
    args = "backfill --venues binance,okx --symbols BTCUSDT,ETHUSDT --from 2026-05-21 "
    args += "--to 2026-05-26 --format json"
    with threaded(latency_ms=40.0) as sim:
        env = {**os.environ, "OIRADAR_ENDPOINT": sim.url}
        killed = tmp_path / "killed.sqlite"
        proc = subprocess.Popen(
            [str(exe), "--db", str(killed), *args.split()],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while _count(killed, "candles") == 0 and proc.poll() is None:
            assert time.monotonic() < deadline, "no chunk written in 30 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
        partial = _count(killed, "candles")
        assert 0 < partial < 2 * 2 * 6 * 288 and partial % 288 == 0
        resumed = run_cli("--db", str(killed), *args.split(), "--endpoint", sim.url)
        clean = run_cli(
            "--db", str(tmp_path / "clean.sqlite"), *args.split(), "--endpoint", sim.url
        )
    assert resumed.code == 0 and clean.code == 0, resumed.err + clean.err
    for kind in Kind:  # positioning and premium too
        assert _rows(killed, kind) == _rows(tmp_path / "clean.sqlite", kind), kind


# -- the Binance archive -----------------------------------------------------------------


def _stamp(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _zip(name: str, lines: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name.removesuffix(".zip") + ".csv", "\n".join(lines) + "\n")
    return buf.getvalue()


def metrics_zip(symbol: str, day: str) -> bytes:
    """A day of Binance `metrics` rows in the archive's format: labels 00:00 .. 23:55, as in
    the real files (../shared/data/real/binance-vision-metrics-*). Before 2026-06-25 a label
    is the end of its 5 minutes, so a file holds the instants 00:00 .. 23:55; since, the
    start, so the instants 00:05 .. 24:00. Values count up from 80,000.5 by instant."""
    base = parse_time(day)
    rows = [
        f"{_stamp(base + i * FIVE)},{symbol},{80_000 + i}.5,{(80_000 + i) * 60_000}.0,"
        "1.1,1.2,1.3,1.4"
        for i in range(288)
    ]
    return _zip(metrics_file(symbol, base).name, [METRICS_HEADER, *rows])


def klines_zip(symbol: str, day: str) -> bytes:
    base = parse_time(day)
    rows = []
    for i in range(288):
        t, o = base + i * FIVE, 60_000 + i
        rows.append(
            f"{t},{o}.0,{o + 5}.5,{o - 5}.5,{o + 1}.0,{100 + i}.5,{t + FIVE - 1},"
            f"{(100 + i) * o}.0,{1000 + i},{50 + i}.25,{(50 + i) * o}.0,0"
        )
    return _zip(klines_file(symbol, "5m", base).name, [KLINES_HEADER, *rows])


def funding_zip(symbol: str, month: str) -> bytes:
    first = parse_time(f"{month}-01")
    rows = [f"{first + i * 8 * 3_600_000},8,0.000{i % 9 + 1}" for i in range(90)]
    name = funding_file(symbol, first).name
    return _zip(name, ["calc_time,funding_interval_hours,last_funding_rate", *rows])


def checksum(name: str, data: bytes) -> bytes:
    return f"{hashlib.sha256(data).hexdigest()}  {name}\n".encode()


def archive_files(symbol: str, days: list[str]) -> dict[ArchiveFile, bytes]:
    return {metrics_file(symbol, parse_time(d)): metrics_zip(symbol, d) for d in days}


def write_archive(root: Path, files: dict[ArchiveFile, bytes], bare: bool = False) -> None:
    """The archive's layout under `root` (or bare names in it), each with its .CHECKSUM."""
    for f, data in files.items():
        path = root / (f.name if bare else f.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.with_name(f.name + ".CHECKSUM").write_bytes(checksum(f.name, data))


def _backfill(db: Path, url: str, first: str, last: str, *extra: str) -> Any:
    """`oiradar backfill` of BTCUSDT on Binance from the simulator at `url`, JSON summary."""
    args = f"backfill --endpoint {url} --venues binance --symbols BTCUSDT --format json"
    return run_cli("--db", str(db), *args.split(), "--from", first, "--to", last, *extra)


LABEL_SWITCH = parse_time("2026-06-25")


def _oi_days(db: Path) -> dict[str, int]:
    """OI snapshots per archive file they come from: a file dated before 2026-06-25 holds
    the instants [day, day + 1d), a later one (day, day + 1d] (see metrics_zip)."""
    out: dict[str, int] = {}
    for ts, *_ in _rows(db, Kind.OPEN_INTEREST):
        t = ts - 1 if ts > LABEL_SWITCH else ts
        day = datetime.fromtimestamp(t / 1000, tz=UTC).strftime("%Y-%m-%d")
        out[day] = out.get(day, 0) + 1
    return out


def test_archive_dir_fills_oi_beyond_binance_rest(tmp_path: Path) -> None:
    days = [OLD_DAY, "2026-04-11"]
    src = tmp_path / "archive"
    files = archive_files("BTCUSDT", days)
    write_archive(src, dict(list(files.items())[:1]))
    write_archive(src, dict(list(files.items())[1:]), bare=True)
    with threaded() as sim:
        res = _backfill(tmp_path / "a.sqlite", sim.url, *days, "--archive-dir", str(src))
    assert res.code == 0, res.err
    assert _oi_days(tmp_path / "a.sqlite") == {OLD_DAY: 288, "2026-04-11": 288}
    first = _rows(tmp_path / "a.sqlite", Kind.OPEN_INTEREST)[0]
    assert first == (parse_time(OLD_DAY), "binance", "BTCUSDT", 80_000.5, 80_000.5, 4.8e9)
    report = json.loads(res.out)[0]
    # Each day's metrics file gave OI and positioning: read once, counted once.
    assert report["archive_files"] == 2 and report["open_interest"] == 576
    assert report["positioning"] == 576


def test_corrupt_or_unverifiable_archive_file_is_rejected_by_name(tmp_path: Path) -> None:
    days = [OLD_DAY, "2026-04-11"]
    good = tmp_path / "good"
    write_archive(good, archive_files("BTCUSDT", days))
    corrupt, unsigned = tmp_path / "corrupt", tmp_path / "unsigned"
    shutil.copytree(good, corrupt)
    shutil.copytree(good, unsigned)
    bad = corrupt / metrics_file("BTCUSDT", parse_time(days[1])).path
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0x01
    bad.write_bytes(bytes(data))
    no_sum = unsigned / metrics_file("BTCUSDT", parse_time(days[0])).path
    no_sum.with_name(no_sum.name + ".CHECKSUM").unlink()
    with threaded() as sim:
        broken = _backfill(tmp_path / "c.sqlite", sim.url, *days, "--archive-dir", str(corrupt))
        missing = _backfill(tmp_path / "u.sqlite", sim.url, *days, "--archive-dir", str(unsigned))
    errors = [line for line in broken.err.splitlines() if line.startswith("oiradar: error:")]
    assert broken.code == 2 and len(errors) == 1, broken.err
    assert errors[0].startswith(f"oiradar: error: checksum mismatch for {bad}: expected ")
    assert errors[0].endswith("the file is corrupt (delete it and retry)")
    assert _oi_days(tmp_path / "c.sqlite") == {OLD_DAY: 288}  # nothing from the corrupt file
    errors = [line for line in missing.err.splitlines() if line.startswith("oiradar: error:")]
    assert missing.code == 2 and errors == [
        f"oiradar: error: no checksum for {no_sum}: {no_sum.name}.CHECKSUM must sit beside it "
        "(the archive publishes one per file); not importing an unverified file"
    ]
    assert _oi_days(tmp_path / "u.sqlite") == {"2026-04-11": 288}


@pytest.mark.parametrize("day", [OLD_DAY, "2026-07-01"])  # before and after the label switch
def test_archive_only_reads_klines_metrics_and_funding(tmp_path: Path, day: str) -> None:
    src, db, t0 = tmp_path / "archive", tmp_path / "a.sqlite", parse_time(day)
    files = archive_files("BTCUSDT", [day])
    files[klines_file("BTCUSDT", "5m", t0)] = klines_zip("BTCUSDT", day)
    files[funding_file("BTCUSDT", t0)] = funding_zip("BTCUSDT", day[:7])
    write_archive(src, files)
    # No venue at all: the default endpoint is a closed port (conftest).
    args = ["--archive-only", "--symbols", "BTCUSDT", "--from", day, "--to", day]
    res = run_cli("--db", str(db), "backfill", *args, "--archive-dir", str(src))
    assert res.code == 0, res.err
    candles = _rows(db, Kind.CANDLES)
    assert [r[0] for r in candles] == list(range(t0, t0 + DAY_MS, FIVE))
    assert candles[0][4:] == (60_000.0, 60_005.5, 59_995.5, 60_001.0, 100.5, 6e6, 50.25, 1000)
    assert _oi_days(db) == {day: 288}
    funding = _rows(db, Kind.FUNDING)
    assert [r[0] for r in funding] == [t0 + h * 3_600_000 for h in (0, 8, 16)]
    assert "archive files" in res.out and "binance" in res.out


# -- downloads ---------------------------------------------------------------------------


@contextlib.contextmanager
def file_server(files: dict[str, bytes]) -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server with the archive's paths; yields (base URL, paths requested)."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.path)
        body = files.get(request.path.lstrip("/"))
        return web.Response(body=body) if body is not None else web.Response(status=404)

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def test_download_verifies_caches_and_reuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    days = [OLD_DAY, "2026-04-11"]  # 2026-04-12 is not in the archive: a 404, reported
    served: dict[str, bytes] = {}
    for f, data in archive_files("BTCUSDT", days).items():
        served[f.path], served[f.path + ".CHECKSUM"] = data, checksum(f.name, data)
    cache = tmp_path / "cache"
    monkeypatch.setenv("OIRADAR_CACHE_DIR", str(cache))
    with file_server(served) as (url, seen), threaded() as sim:
        monkeypatch.setenv("OIRADAR_ARCHIVE_URL", url)
        first = _backfill(tmp_path / "1.sqlite", sim.url, days[0], "2026-04-12")
        assert first.code == 0, first.err
        assert sorted(seen) == sorted(
            ["/" + p for p in served]
            + ["/" + metrics_file("BTCUSDT", parse_time("2026-04-12")).path]
        )
        assert "the archive has no metrics file [BTCUSDT; 1 day(s), 2026-04-12]" in first.err
        for path, body in served.items():
            assert (cache / "archive" / path).read_bytes() == body

        seen.clear()
        second = _backfill(tmp_path / "2.sqlite", sim.url, *days)
        # Verified from the cache; the one request asks again for the next day's file,
        # which holds 2026-04-11's last OI slot (the archive lacks it: a 404).
        assert second.code == 0 and seen == [
            "/" + metrics_file("BTCUSDT", parse_time("2026-04-12")).path
        ]
        assert _rows(tmp_path / "2.sqlite", Kind.OPEN_INTEREST) == _rows(
            tmp_path / "1.sqlite", Kind.OPEN_INTEREST
        )

        seen.clear()
        cached = cache / "archive" / metrics_file("BTCUSDT", parse_time(days[0])).path
        cached.write_bytes(cached.read_bytes()[:-7])  # a damaged cache copy is fetched again
        third = _backfill(tmp_path / "3.sqlite", sim.url, days[0], days[0])
        assert third.code == 0 and len(seen) == 2, (third.err, seen)
        assert cached.read_bytes() == served[metrics_file("BTCUSDT", parse_time(days[0])).path]

        day = metrics_file("BTCUSDT", parse_time(days[1]))
        body = bytearray(served[day.path])
        body[len(body) // 2] ^= 0xFF
        served[day.path] = bytes(body)  # the server's copy is corrupt
        shutil.rmtree(cache)
        fourth = _backfill(tmp_path / "4.sqlite", sim.url, days[1], days[1])
    assert fourth.code == 2, fourth.err
    assert f"oiradar: error: checksum mismatch for {day.name}: expected " in fourth.err
    assert not (cache / "archive" / day.path).exists()
    assert _rows(tmp_path / "4.sqlite", Kind.OPEN_INTEREST) == []


def test_unreachable_archive_is_named_and_the_rest_is_stored(tmp_path: Path) -> None:
    """The autouse fixture points the archive at a closed port: retried, then given up."""
    with threaded() as sim:
        res = _backfill(tmp_path / "s.sqlite", sim.url, OLD_DAY, "2026-05-27")
    lost = metrics_file("BTCUSDT", parse_time(OLD_DAY)).path
    assert res.code == 5, res.err
    assert f"oiradar: error: archive unreachable: http://127.0.0.1:9/{lost}: " in res.err
    assert len(_rows(tmp_path / "s.sqlite", Kind.CANDLES)) == 8 * 288  # what REST holds


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-13-01"], "--from '2026-13-01' is not a date"),
        (["--from", "2026-05-20", "--to", "yesterday"], "--to 'yesterday' is not a date"),
        (["--from", "2026-05-20", "--to", "2026-05-10"], "--from 2026-05-20 is not before"),
        (["--from", "2026-05-20", "--venues", "kraken"], "unknown venue(s) kraken"),
        (["--from", "2026-05-20", "--interval", "8h"], "bybit has no 8h klines"),
        (["--from", "2026-05-20", "--interval", "1w"], "backfill walks whole days"),
        (["--from", "2026-05-20", "--archive-only"], "--archive-only needs --symbols"),
        (["--from", "2026-05-20", "--archive-only", "--venues", "okx"], "is for binance"),
        (["--from", "2026-05-20", "--no-archive", "--archive-only"], "--no-archive contradicts"),
        (["--from", "2026-05-20", "--archive-dir", "/nonexistent"], "no such directory"),
        (["--to", "2026-05-20"], "Missing option '--from'"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    res = run_cli("--db", str(tmp_path / "s.sqlite"), "backfill", *args)
    assert res.code == 2 and message in res.err and res.err.count("\n") == 1, res.err


def test_unlisted_symbol_warns_and_unreachable_venue_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OIRADAR_OKX_REST", "http://127.0.0.1:9")  # nothing listens there
    with threaded() as sim:
        monkeypatch.setenv("OIRADAR_ENDPOINT", sim.url)
        res = run_cli(
            "--db",
            str(tmp_path / "s.sqlite"),
            "backfill",
            "--venues",
            "bybit,okx",
            "--symbols",
            "BTCUSDT,FOOUSDT",
            "--from",
            "2026-05-27",
            "--to",
            "2026-05-27",
            "--format",
            "json",
        )
    assert res.code == 5, res.err
    assert "warning: FOOUSDT is not listed on bybit; skipped" in res.err
    assert "oiradar: error: okx unreachable: okx:" in res.err
    assert len(_rows(tmp_path / "s.sqlite", Kind.CANDLES)) == 288


def test_real_archive_metrics_files_are_stored_whole_and_not_read_again(
    derived: Path, tmp_path: Path
) -> None:
    """The real 2023 `metrics` files (labels 00:00 .. 23:55, each the end of its 5 minutes):
    all 288 rows of a day are stored, as `import` stores them, the day's last slot comes from
    the next day's file, and a rerun reads no file again (issue #12, item 7)."""
    real = derived.parent / "binance-vision-metrics-btc-2023-11-12"
    src = tmp_path / "archive"
    days = ["2023-11-15", "2023-11-16", "2023-11-17", "2023-11-18"]
    files = {}
    for day in days:
        name = f"BTCUSDT-metrics-{day}"
        files[metrics_file("BTCUSDT", parse_time(day))] = _zip(
            name + ".zip", (real / f"{name}.csv").read_text().splitlines()
        )
    write_archive(src, files, bare=True)
    db, imported = tmp_path / "b.sqlite", tmp_path / "i.sqlite"
    args = ["backfill", "--archive-only", "--symbols", "BTCUSDT", "--from", days[0], "--to",
            days[2], "--archive-dir", str(src), "--format", "json"]  # fmt: skip
    first = run_cli("--db", str(db), *args)
    assert first.code == 0, first.err
    report = json.loads(first.out)[0]
    assert (report["archive_files"], report["open_interest"]) == (4, 3 * 288 + 1)
    assert "lack OI" not in first.err
    run_cli(
        "--db", str(imported), "import", *(str(real / f"BTCUSDT-metrics-{d}.csv") for d in days)
    )
    end = parse_time(days[3])
    assert _rows(db, Kind.OPEN_INTEREST) == [
        r for r in _rows(imported, Kind.OPEN_INTEREST) if r[0] <= end
    ]
    again = json.loads(run_cli("--db", str(db), *args).out)[0]
    assert (again["archive_files"], again["open_interest"]) == (0, 0)
