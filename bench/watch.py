"""By-hand benchmark of `oiradar watch` against `oiradar sim` (the watch issue's targets).

Runs `oiradar sim --symbols N --speed S` and `oiradar watch --all --venues V` on it (N
symbols x the venues: by default the four majors, all seven with `--venues`), with one
webhook sink pointing at a receiver in this process, for --minutes of wall time once the
daemon reports `running` (its start-up backfill is timed separately), and reports:

- peak RSS of the watch process (max VmHWM of /proc/PID/status). Target < 300 MB (four
  venues), < 400 MB (seven).
- CPU share of the watch and, separately, of the simulator: CPU seconds / wall seconds in %
  of one core, once running and over the whole run.
- latency from a liquidation message leaving the simulator to the alert reaching the sink,
  for the escalations a liquidation burst triggers. A bare WebSocket client in a process of
  its own (`_watchprobe.py`) reads every venue's liquidation feed as the daemon does (all but
  Hyperliquid, which has none) and times each short liquidation's arrival: within loopback,
  when its message left the simulator. An escalation's `ts` is the venue time of the order
  that tipped the squeeze rule (`ts_ms`), which finds that arrival. Target p99 < 250 ms over
  >= 100 escalations. Timed from the order's venue time instead (the simulator's clock is
  linear, GET /_sim/clock), the figure adds the simulator's own part (it pushes every 0.1 s
  of wall time, later when its loop runs late), reported apart.
  The simulator serves a squeeze-heavy market whose squeezes start as covering
  (--regime-weights, --cascade-delay) so that a run has escalations enough for a p99
  (about two a minute at 500 symbols x 4 venues).
- bar close -> sink latency of the alerts a 5m bar close raises, separately (it includes
  the --settle wait), per venue and cause, after the two warm-up closes after the start
  (whose bars the streams saw only in part, so they go via REST) and for those apart.
- bars stepped, messages per venue, rows written and alerts sent (its published status), 429/418
  from the simulator's counters (target 0), and the graceful stop (SIGTERM -> exit).

The venues are served by `--sims` simulator processes (default 2, the venues dealt by their
load), each serving only its venues of the same market (seed, start) on clocks started
together (their offset is printed); the daemon finds each venue through
`OIRADAR_<VENUE>_REST`/`_WS`. They run at `--sim-nice` (default 10): they stand for the
venues' own machines, so the daemon gets the CPU first. A simulator that stops answering
ends the measurement early, with the figures so far.

The simulator runs at --speed S so that 10 minutes cover S x 10 simulated minutes (20 bars
at the default 10) and produce alerts; both the simulator and the daemon get
`--limit-scale S`, so per simulated bar the daemon has the REST budget it has live.
Everything runs on this machine: the simulator's CPU competes with the daemon's. A
5m-boundary escalation is counted as a bar alert (a burst in a bar's first second would be
miscounted: rare).

    python bench/watch.py                            # 500 symbols, 10 minutes
    python bench/watch.py --symbols 50 --minutes 2   # a quick check
    python bench/watch.py --db postgresql://me@db:5432/bench   # the store on PostgreSQL

Beside it: `_watchkit.py` (processes, the sink, the simulator's clock, `Run`),
`_watchprobe.py` (the bare-client probe), `_watchreport.py` (the figures and the verdict),
`_watchcauses.py` (bar close -> sink per venue and cause, from the daemon's log lines).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp

from _memtrace import add_memtrace_args, daemon_exe
from _watchkit import (
    WARM_CLOSES,
    Receiver,
    Run,
    Sims,
    SimTime,
    Usage,
    Usages,
    published,
    read_clock,
    reap,
    shut,
    sim_json,
    start_sims,
)
from _watchprobe import probe_main, start_probe, stop_probe
from _watchreport import log_summary, report
from oiradar.store.base import redacted
from oiradar.venues.registry import DEFAULT_VENUES, parse_venues

MAJORS = "binance,bybit,okx,bitget"

# Squeezes drawn 12x as often as by default, shorts building up 11x (so OI and price stay
# balanced over the history), calm spells half as often; each squeeze's cascade starts half
# way in, so it reads as covering first and is upgraded as the cascade streams in. About 4
# squeezes per symbol-day instead of 0.3, most of them escalations (tests/test_sim_core.py).
SQUEEZE_HEAVY = "NEW_SHORTS=1,SHORT_SQUEEZE=1,NEUTRAL=0.2"
CASCADE_DELAY = 0.5
# The simulator's CPU per venue at 500 symbols (py-spy of a one-process run, relative): how
# `--sims` deals the venues.
SIM_LOAD = {"bybit": 3.0, "okx": 2.2, "bitget": 2.2, "binance": 2.0}


def sim_groups(venues: list[str], n: int) -> list[list[str]]:
    """`venues` dealt over `n` simulators in `SIM_LOAD` order (heaviest first), each to the
    least loaded so far."""
    groups: list[list[str]] = [[] for _ in range(max(1, min(n, len(venues))))]
    load = [0.0] * len(groups)
    for v in sorted(venues, key=lambda v: -SIM_LOAD.get(v, 1.0)):
        k = load.index(min(load))
        groups[k].append(v)
        load[k] += SIM_LOAD.get(v, 1.0)
    return groups


async def measure(
    args: argparse.Namespace, tmp: Path, db: Path | str, watch_log: Path
) -> Run | None:
    speed: float = args.speed
    settle_s = max(1.0, 0.3 * speed)
    venues = list(parse_venues(args.venues))
    sims = start_sims(
        sim_groups(venues, args.sims), args.symbols, speed, args.regime_weights,
        args.cascade_delay, tmp, args.sim_nice,
    )  # fmt: skip
    receiver = Receiver()
    watch: subprocess.Popen[bytes] | None = None
    try:
        cfg = await receiver.config(tmp / "config.toml", "bench")
        async with aiohttp.ClientSession() as http:
            await sims.start_clocks(http, speed)
            base = sims.first
            reads = [await read_clock(http, base) for _ in range(5)]
            best = min(reads, key=lambda c: c.rtt_s)
            clock = SimTime(best.wall, best.sim_ms, speed)
            info = await sim_json(http, base + "/_sim/info")
            groups = " | ".join(
                f"{b} {','.join(v for v, x in sims.bases.items() if x == b)}" for b in sims.unique()
            )
            print(
                f"simulators: {groups}; {len(info['symbols'])} symbols per venue, speed "
                f"{speed:g} (simulated s per wall s), rate limits scaled by {speed:g}, clocks "
                f"{await sims.offsets_ms(http, speed):.1f} ms apart; regime mix "
                + ", ".join(f"{k} {v:g}" for k, v in info["regime_weights"].items())
                + f"; cascade delay {info['cascade_delay']:g}",
                flush=True,
            )
            cmd = [
                *daemon_exe(args), "watch", "--all", "--venues", ",".join(venues), "--db", str(db),
                "--config", str(cfg), "--min-history", args.min_history,
                "--log-level", args.log_level, "--settle", f"{settle_s:g}s",
                "--limit-scale", str(args.speed),
            ]  # fmt: skip
            shown = [Path(cmd[0]).name]  # oiradar, or python3 with --memtrace
            shown += [redacted(a) if a == str(db) and "://" in a else a for a in cmd[1:]]
            print(f"$ {' '.join(shown)}  (each venue's OIRADAR_<VENUE>_REST/_WS set)",
                  flush=True)  # fmt: skip  # no password of a --db URL
            t_start = time.time()
            env = {k: v for k, v in os.environ.items() if k != "OIRADAR_ENDPOINT"}
            with watch_log.open("wb") as err:
                watch = subprocess.Popen(
                    cmd, stdout=subprocess.DEVNULL, stderr=err, env=env | sims.env()
                )
            sim_usage = Usages([p.pid for p in sims.procs])
            run = Run(clock, Usage(watch.pid), sim_usage, settle_s, t_start, reads)
            run.venues = venues
            probe_out = tmp / "probe.json"
            probe = await follow(args, run, watch, db, receiver, http, sims, probe_out)
            if probe is None:
                print(f"watch exited early with code {watch.returncode}")
                for line in log_summary(watch_log):
                    print(line)
                return None
            await stop_watch(watch, run)
            if isinstance(probe, subprocess.Popen):
                run.probe = stop_probe(probe, probe_out)
            await asyncio.sleep(0.5)  # deliveries the daemon made while stopping are in
            try:
                run.sim_stats = await sims.stats(http)
                reads.append(await read_clock(http, base))
            except (aiohttp.ClientError, TimeoutError) as exc:
                run.sim_error = run.sim_error or f"{type(exc).__name__}: {exc}"
    finally:
        await shut(watch, sims.procs, receiver)
    run.status = published(db)
    run.received, run.malformed = receiver.received, receiver.bad
    return run


async def follow(
    args: argparse.Namespace,
    run: Run,
    watch: subprocess.Popen[bytes],
    db: Path | str,
    receiver: Receiver,
    http: aiohttp.ClientSession,
    sims: Sims,
    probe_out: Path,
) -> subprocess.Popen[bytes] | bool | None:
    """Samples once a second until --minutes after the daemon is running; returns the probe's
    process (False: never running; None: the daemon exited)."""
    task: subprocess.Popen[bytes] | bool = False
    next_report = run.t_start + 60
    bar_wall_s = 300.0 / args.speed  # one 5-minute bar in wall seconds
    try:
        while True:
            now = time.time()
            if run.t_running is not None and now >= run.t_running + args.minutes * 60:
                return task
            if run.t_running is None and now >= run.t_start + args.startup_minutes * 60:
                print(f"  not running after {args.startup_minutes:g} minutes: stopping")
                return task
            run.watch.sample()
            run.sim.sample()
            if watch.poll() is not None:
                if isinstance(task, subprocess.Popen):
                    task.kill()
                    task.wait()
                return None
            if run.t_running is None and published(db).get("state") == "running":
                run.t_running = time.time()
                print(
                    f"  daemon running after {run.t_running - run.t_start:.1f} s; "
                    f"measuring for {args.minutes:g} minutes",
                    flush=True,
                )
                task = start_probe(sims.bases, probe_out)
                run.sim_stats_running = await sims.stats(http)
            warm_at = None if run.t_running is None else run.t_running + WARM_CLOSES * bar_wall_s
            if run.t_warm is None and warm_at is not None and now >= warm_at:
                run.t_warm = now  # the closes of the warm-up went via REST: counted apart
                run.sim_stats_warm = await sims.stats(http)
            if now >= next_report:
                next_report += 60
                run.reads.append(await read_clock(http, sims.first))
                rss = run.watch.samples[-1][1] / 1024 if run.watch.samples else float("nan")
                print(
                    f"  t+{now - run.t_start:4.0f} s: watch RSS {rss:.0f} MB (peak "
                    f"{run.watch.peak_kb / 1024:.0f}), CPU "
                    f"{100 * run.watch.share(now - 60):.0f} %, sim CPU "
                    f"{100 * run.sim.share(now - 60):.0f} %, alerts received "
                    f"{len(receiver.received)}",
                    flush=True,
                )
            await asyncio.sleep(1.0 - (time.time() - now) % 1.0)
    except (aiohttp.ClientError, TimeoutError) as exc:
        # A simulator that stops answering (its loop saturated) ends the measurement; the
        # figures so far are still reported.
        run.sim_error = f"{type(exc).__name__}: {exc}"
        print(f"  a simulator stopped answering ({run.sim_error}): stopping", flush=True)
        return task


async def stop_watch(watch: subprocess.Popen[bytes], run: Run) -> None:
    """SIGTERM, then time the exit (wait4 also gives the lifetime's peak RSS)."""
    run.watch.sample()
    run.sim.sample()
    run.t_stop = time.time()
    watch.send_signal(signal.SIGTERM)
    while time.time() - run.t_stop < 60:
        run.watch.sample()
        await asyncio.sleep(0.05)
        reaped = reap(watch)
        if reaped is not None:
            run.stop_s = time.time() - run.t_stop
            run.exit_code, rusage = reaped
            run.ru_maxrss_kb = int(rusage.ru_maxrss)
            return
    watch.kill()
    watch.wait()
    run.exit_code = watch.returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--symbols", type=int, default=500, help="symbols per venue (default 500)")
    ap.add_argument(
        "--minutes",
        type=float,
        default=10.0,
        help="wall minutes to measure once the daemon is running (default 10)",
    )
    ap.add_argument("--speed", type=float, default=10.0, help="simulated s per wall s (default 10)")
    ap.add_argument(
        "--startup-minutes",
        type=float,
        default=20.0,
        help="give up if the daemon is not running after this long (default 20)",
    )
    ap.add_argument(
        "--min-history",
        default="10m",
        help="passed to oiradar watch (default 10m: squeezes are called after a wall minute)",
    )
    ap.add_argument(
        "--regime-weights",
        default=SQUEEZE_HEAVY,
        help=f"the simulator's --regime-weights (default {SQUEEZE_HEAVY!r}: squeeze-heavy, so "
        "a 10-minute run has enough burst escalations for a p99; '' = the default market)",
    )
    ap.add_argument(
        "--cascade-delay",
        type=float,
        default=CASCADE_DELAY,
        help=f"the simulator's --cascade-delay (default {CASCADE_DELAY:g}; 0 = the default market)",
    )
    ap.add_argument(
        "--venues",
        default=MAJORS,
        help=f"oiradar watch --venues (default {MAJORS}, the venues the watch targets are "
        f"stated on; `oiradar watch` itself defaults to {','.join(DEFAULT_VENUES)}; the "
        "simulator serves all seven)",
    )
    ap.add_argument(
        "--sims",
        type=int,
        default=2,
        help="simulator processes, the venues dealt over them by load (default 2: one "
        "process saturates its core at 500 symbols x 4 venues; this machine has "
        f"{os.cpu_count()} CPUs for them, the daemon and this process)",
    )
    ap.add_argument(
        "--sim-nice",
        type=int,
        default=10,
        help="the simulators' niceness (default 10): they stand for the venues' own machines, "
        "so the daemon under test gets the CPU first; their lag is measured apart (the probe)",
    )
    ap.add_argument(
        "--log-level",
        default="info",
        help="oiradar watch --log-level (info: its event=bar_closed lines give the causes)",
    )
    ap.add_argument("--db", help="the daemon's store: a URL such as postgresql://... (an empty "
                    "database); default: a SQLite file in a temp dir")  # fmt: skip
    ap.add_argument(
        "--log", type=Path, help="keep the daemon's stderr here (default: printed summary only)"
    )
    ap.add_argument("--probe", nargs=2, metavar=("BASE", "OUT"), help=argparse.SUPPRESS)
    add_memtrace_args(ap)
    args = ap.parse_args(argv)
    if args.probe:
        return probe_main(args.probe[0], Path(args.probe[1]))
    if args.speed <= 0 or args.symbols <= 0 or args.minutes <= 0 or args.sims <= 0:
        ap.error("--speed, --symbols, --minutes and --sims must be positive")
    tmp = Path(tempfile.mkdtemp(prefix="oiradar-bench-watch-"))
    watch_log = args.log or tmp / "watch.stderr.log"
    db = args.db or tmp / "watch.sqlite"
    try:
        run = asyncio.run(measure(args, tmp, db, watch_log))
        return 1 if run is None else report(args, run, watch_log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
