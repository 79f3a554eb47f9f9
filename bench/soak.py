"""By-hand soak of `oiradar watch` (issue #17, item 7): a simulated day under faults.

Runs `oiradar sim --symbols N --speed S` with REST faults (--fault-rate), WebSocket drops
(--ws-drop-s, wall seconds), duplicated WebSocket messages (--ws-duplicate) and lost candle
closes (--ws-lose-close), and `oiradar watch --all --retain R` on it with one webhook sink in
this process, for --hours of simulated time once the daemon reports `running`. Samples the
daemon every few wall seconds and, after a SIGTERM, checks:

- memory: a least-squares line through the watch's RSS against simulated hours after the
  warm-up (--warmup-hours). Target slope < 1 MB per simulated hour.
- store growth: a line through the store's file size against simulated hours after the
  warm-up, against the growth its writes predict: in a run no longer than --retain, rows
  written per simulated hour (the daemon's own counter) times the store's bytes per row; past
  it, once the hourly prune holds the raw rows to the window, the bar rows each table keeps
  an hour (counted before the horizon) times that table's bytes per row. And how much
  `--retain` should have pruned: raw rows older than the retention horizon at the end. Target:
  within 25 % of the prediction, no raw row past the horizon. The WAL beside the file is
  reported apart (peak, median): bounded, not growth.
- bars lost: a second simulator with the same seed, start and market but no faults, its clock
  set to the soak's end, is the truth: `oiradar backfill` of the watched span from it, then
  every 5m candle and every bar with an OI history row must be in the soak's store (candles
  with the same close and volume, OI rows at the same time with the same value). Target 0.
- duplicate alerts: the same (symbol, kind, ts_ms) twice in the store's alert log or at the
  sink. Target 0.

    python bench/soak.py               # 24 simulated hours, 100 symbols x watch's venues, speed 60
    python bench/soak.py --hours 1     # a smoke run (a few minutes)

Beside it: `_watchkit.py` (processes, the sink, the simulator's clock), `_soakcheck.py` (the
truth comparison, the fits and the verdict).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp

from _memtrace import add_memtrace_args, daemon_exe
from _soakcheck import Sample, Soak, report
from _watchkit import (
    EXE,
    Receiver,
    SimTime,
    Usage,
    published,
    read_clock,
    shut,
    sim_json,
    start_sim,
    stop_sim,
)
from oiradar.errors import OiradarError
from oiradar.units import DAY_MS, HOUR_MS, interval_ms, iso

SAMPLE_S = 5.0


def sim_options(args: argparse.Namespace, start_ms: int) -> list[str]:
    """What both simulators share: the same market (seed, start, span)."""
    days = args.hours / 24 + 0.5
    return ["--seed", str(args.seed), "--start", iso(start_ms), "--future-days", f"{days:g}"]


def file_bytes(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def run_watch(args: argparse.Namespace, tmp: Path, soak: Soak) -> bool:
    """The soak itself: simulator + daemon until --hours of simulated time; False if the
    daemon exited or never ran."""
    faults = [
        "--fault-rate", str(args.fault_rate), "--ws-drop-s", str(args.ws_drop_s),
        "--ws-duplicate", str(args.ws_duplicate), "--ws-lose-close", str(args.ws_lose_close),
    ]  # fmt: skip
    sim, base = start_sim(
        args.symbols,
        args.speed,
        "",
        0.0,
        tmp / "sim.log",
        sim_options(args, soak.start_ms) + faults,
    )
    receiver = Receiver()
    watch: subprocess.Popen[bytes] | None = None
    try:
        cfg = await receiver.config(tmp / "config.toml", "soak")
        async with aiohttp.ClientSession() as http:
            best = min([await read_clock(http, base) for _ in range(5)], key=lambda c: c.rtt_s)
            clock = SimTime(best.wall, best.sim_ms, args.speed)
            cmd = [
                *daemon_exe(args), "watch", "--all", "--endpoint", base, "--db", str(soak.db),
                "--config", str(cfg), "--min-history", args.min_history, "--retain", args.retain,
                "--log-level", "info", "--settle", f"{soak.settle_s:g}s",
                "--limit-scale", str(args.speed),
            ]  # fmt: skip
            print(f"simulator {base} ({' '.join(faults)})\n$ {' '.join(cmd)}")
            with soak.watch_log.open("wb") as err:
                watch = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
            if not await follow(args, soak, watch, clock):
                return False
            soak.stop_ms = int(clock.sim_at(time.time()))
            soak.exit_code = await stop(watch)
            await asyncio.sleep(0.5)  # deliveries made while stopping are in
            soak.sim_stats = await sim_json(http, base + "/_sim/stats")
    finally:
        await shut(watch, sim, receiver)
    soak.received = [body for _, body in receiver.received]
    soak.status = published(soak.db)
    return True


async def follow(
    args: argparse.Namespace, soak: Soak, watch: subprocess.Popen[bytes], clock: SimTime
) -> bool:
    """Samples every SAMPLE_S wall seconds until --hours of simulated time after `running`."""
    usage = Usage(watch.pid)
    t_start = time.time()
    next_print = 0.0
    while watch.poll() is None:
        now = time.time()
        sim_ms = clock.sim_at(now)
        status = published(soak.db)
        if soak.running_ms is None:
            if status.get("state") == "running":
                soak.running_ms = int(sim_ms)
                print(f"  running after {now - t_start:.0f} s wall", flush=True)
            elif now - t_start > args.startup_minutes * 60:
                print(f"  not running after {args.startup_minutes:g} minutes")
                return False
        else:
            usage.sample()
            hours = (sim_ms - soak.running_ms) / HOUR_MS
            rows = int((status.get("store") or {}).get("rows_written") or 0)
            rss_kb = usage.samples[-1][1] if usage.samples else 0
            wal = file_bytes(Path(f"{soak.db}-wal"))
            soak.samples.append(Sample(hours, rss_kb, file_bytes(soak.db), wal, rows))
            if hours >= next_print:
                next_print += max(1.0, args.hours / 12)
                print(
                    f"  sim +{hours:5.1f} h: RSS {rss_kb / 1024:.0f} MB, store "
                    f"{(file_bytes(soak.db) + wal) / 1e6:.0f} MB, rows written {rows}, alerts sent "
                    f"{(status.get('alerts') or {}).get('sent', 0)}",
                    flush=True,
                )
            if hours >= args.hours:
                return True
        await asyncio.sleep(SAMPLE_S - (time.time() - now) % SAMPLE_S)
    print(f"watch exited early with code {watch.returncode}")
    return False


async def stop(watch: subprocess.Popen[bytes]) -> int | None:
    watch.send_signal(signal.SIGTERM)
    for _ in range(1200):
        if watch.poll() is not None:
            return watch.returncode
        await asyncio.sleep(0.05)
    watch.kill()
    watch.wait()
    return None


async def truth(args: argparse.Namespace, tmp: Path, soak: Soak) -> int:
    """Backfills the soak's span from a fault-free twin simulator into `soak.truth_db`;
    backfill's exit code."""
    assert soak.running_ms is not None
    extra = [*sim_options(args, soak.start_ms), "--limit-scale", "1000"]
    twin, base = start_sim(args.symbols, 1.0, "", 0.0, tmp / "twin.log", extra)
    try:
        async with aiohttp.ClientSession() as http:
            body = {"now_ms": soak.stop_ms, "speed": 0}
            async with http.post(base + "/_sim/clock", json=body) as r:
                r.raise_for_status()
        cmd = [
            str(EXE), "backfill", "--all", "--endpoint", base, "--db", str(soak.truth_db),
            "--from", iso(soak.running_ms - HOUR_MS), "--to", iso(soak.stop_ms), "--no-archive",
            "--format", "json",
        ]  # fmt: skip
        t0 = time.time()
        done = subprocess.run(cmd, capture_output=True, check=False)
        print(f"truth: backfill from a fault-free twin simulator, {time.time() - t0:.0f} s wall")
        if done.returncode:
            print(done.stderr.decode(errors="replace")[-2000:])
        return done.returncode
    finally:
        stop_sim(twin)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    ap.add_argument("--speed", type=float, default=60.0, help="simulated s per wall s (default 60)")
    ap.add_argument("--symbols", type=int, default=100, help="symbols per venue (default 100)")
    ap.add_argument("--fault-rate", type=float, default=0.05, help="REST faults (default 0.05)")
    ap.add_argument("--ws-drop-s", type=float, default=60.0, help="drop every WebSocket after "
                    "~N wall s (default 60: about once a simulated hour at speed 60)")  # fmt: skip
    ap.add_argument(
        "--ws-duplicate", type=float, default=0.01, help="duplicated WS messages (default 0.01)"
    )
    ap.add_argument(
        "--ws-lose-close",
        type=float,
        default=0.01,
        help="candle closes lost on the streams (default 0.01): bars REST must fill",
    )
    ap.add_argument("--retain", default="1d", help="watch --retain (default 1d, the minimum)")
    ap.add_argument("--min-history", default="1h", help="watch --min-history (default 1h)")
    ap.add_argument(
        "--warmup-hours", type=float, help="left out of the fits (default: a quarter, at most 3)"
    )
    ap.add_argument("--seed", type=int, default=7, help="the simulators' seed (default 7)")
    ap.add_argument(
        "--startup-minutes", type=float, default=15.0, help="give up if not running by then"
    )
    ap.add_argument(
        "--keep", type=Path, help="keep the stores, logs and samples.csv in this folder"
    )
    add_memtrace_args(ap)
    args = ap.parse_args(argv)
    if min(args.hours, args.speed, args.symbols) <= 0 or not 0 <= args.fault_rate < 1:
        ap.error("--hours, --speed and --symbols must be positive, --fault-rate in [0, 1)")
    try:
        args.retain_ms = interval_ms(args.retain)
    except OiradarError as exc:
        ap.error(f"--retain: {exc}")
    if args.warmup_hours is None:
        args.warmup_hours = min(3.0, args.hours / 4)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="oiradar-soak-"))
    tmp.mkdir(parents=True, exist_ok=True)
    now_ms = int(time.time() * 1000)
    soak = Soak(
        start_ms=now_ms // HOUR_MS * HOUR_MS,
        db=tmp / "soak.sqlite",
        truth_db=tmp / "truth.sqlite",
        watch_log=tmp / "watch.stderr.log",
        settle_s=max(2.0, 0.3 * args.speed),
    )
    assert soak.start_ms > now_ms - DAY_MS
    t0 = time.time()
    try:
        if not asyncio.run(run_watch(args, tmp, soak)):
            print(soak.watch_log.read_text(errors="replace")[-3000:])
            return 1
        print(f"soak: {(time.time() - t0) / 60:.1f} min wall; exit code {soak.exit_code}")
        if args.keep is not None:  # the samples behind the fits, for a second look
            rows = [
                f"{s.sim_hours:.4f},{s.rss_kb},{s.db_bytes},{s.wal_bytes},{s.rows_written}"
                for s in soak.samples
            ]
            head = "sim_hours,rss_kb,db_bytes,wal_bytes,rows"
            (tmp / "samples.csv").write_text("\n".join([head, *rows]))
        if asyncio.run(truth(args, tmp, soak)) != 0:
            return 1
        return report(args, soak)
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
