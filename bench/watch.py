"""By-hand benchmark of `oiradar watch` against `oiradar sim` (the watch issue's targets).

Runs `oiradar sim --symbols N --speed S` and `oiradar watch --all` on it (N symbols x 4
venues), with one webhook sink pointing at a receiver in this process, for --minutes of wall
time once the daemon reports `running` (its start-up backfill is timed separately), and
reports:

- peak RSS of the watch process (max VmHWM of /proc/PID/status). Target < 300 MB.
- CPU share of the watch and, separately, of the simulator: CPU seconds / wall seconds in %
  of one core, once running and over the whole run.
- latency from a liquidation message leaving the simulator to the alert reaching the sink,
  for the escalations a liquidation burst triggers (their `ts` is the venue time of the
  order that tipped the squeeze rule). Target p99 < 250 ms. The simulator's clock is linear
  (GET /_sim/clock), so an order's venue time maps to the wall time it happened; the sim
  sends it at its next WebSocket push tick (every 0.1 s of wall time), so the figure is an
  upper bound by up to 100 ms. Alerts carry `ts` to the second only: the order's exact time
  is looked up afterwards in the store the daemon wrote (the short liquidations of that
  symbol within that second). A bare WebSocket client in this process (the Binance
  forceOrder streams of a few symbols) measures the simulator's own part the same way.
- bar close -> sink latency of the alerts a 5m bar close raises, separately (it includes
  the --settle wait and the REST fetches of every symbol at each close).
- bars stepped, messages per venue, rows written and alerts sent (the status file), 429/418
  from the simulator's counters (target 0), and the graceful stop (SIGTERM -> exit).

The simulator runs at --speed S so that 10 minutes cover S x 10 simulated minutes (20 bars
at the default 10) and produce alerts; both the simulator and the daemon get
`--limit-scale S`, so per simulated bar the daemon has the REST budget it has live.
Everything runs on this machine: the simulator's CPU competes with the daemon's. A
5m-boundary escalation is counted as a bar alert (a burst in a bar's first second would be
miscounted: rare).

    python bench/watch.py                            # 500 symbols, 10 minutes
    python bench/watch.py --symbols 50 --minutes 2   # a quick check
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

EXE = Path(sys.executable).parent / "oiradar"
BAR_MS = 300_000
PUSH_WALL_S = 0.1  # the simulator's WebSocket push cadence (wall time)
TARGET_RSS_MB = 300.0
TARGET_P99_MS = 250.0
MIN_BURSTS = 20
PROBE_SYMBOLS = 20
SIM_SATURATED = 0.9  # CPU share of one core
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- processes ------------------------------------------------------------------------------


def mem_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB; (0, 0) once the process is gone."""
    rss = hwm = 0
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return rss, hwm


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of the process; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # fields 3.. of proc(5); comm may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass
class Usage:
    """Once-a-second samples of one process: (wall, VmRSS kB, CPU s)."""

    pid: int
    samples: list[tuple[float, int, float]] = field(default_factory=list)
    peak_kb: int = 0

    def sample(self) -> None:
        rss, hwm = mem_kb(self.pid)
        cpu = cpu_s(self.pid)
        if cpu is None:
            return
        self.peak_kb = max(self.peak_kb, hwm)
        self.samples.append((time.time(), rss, cpu))

    def share(self, since: float = 0.0) -> float:
        """CPU seconds per wall second (1.0 = one core) over the samples after `since`."""
        pts = [s for s in self.samples if s[0] >= since]
        if len(pts) < 2 or pts[-1][0] <= pts[0][0]:
            return float("nan")
        return (pts[-1][2] - pts[0][2]) / (pts[-1][0] - pts[0][0])

    def cpu_total(self) -> float:
        return self.samples[-1][2] if self.samples else float("nan")


def scaled(speed: float) -> list[str]:
    """The simulator's speed, with its rate-limit windows scaled to match."""
    return ["--speed", str(speed), "--limit-scale", str(speed)]


def start_sim(symbols: int, speed: float, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(EXE), "sim", "--symbols", str(symbols), "--port", "0", *scaled(speed)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("listening on "):
                return proc, line.removeprefix("listening on ").strip()
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise SystemExit(f"simulator did not start:\n{log.read_text(errors='replace')[-2000:]}")


def reap(proc: subprocess.Popen[Any]) -> tuple[int, Any] | None:
    """Non-blocking wait4: (exit code, rusage) once `proc` has exited."""
    pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
    if pid == 0:
        return None
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, rusage


# -- the sink and the simulator's clock -----------------------------------------------------


class Receiver:
    """The webhook sink's other end: every POST with its wall arrival time."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.bad = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = int(self._runner.addresses[0][1])
        return f"http://127.0.0.1:{port}/hook"

    async def _hook(self, request: web.Request) -> web.Response:
        arrived = time.time()
        try:
            body = await request.json()
        except ValueError:
            self.bad += 1
            return web.Response(status=400)
        if isinstance(body, dict):
            self.received.append((arrived, body))
        else:
            self.bad += 1
        return web.Response(text="ok")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass(frozen=True)
class ClockRead:
    wall: float  # midpoint of the request, time.time()
    sim_ms: int
    rtt_s: float


async def read_clock(http: aiohttp.ClientSession, base: str) -> ClockRead:
    t0 = time.time()
    async with http.get(f"{base}/_sim/clock") as r:
        body = await r.json()
    t1 = time.time()
    return ClockRead((t0 + t1) / 2, int(body["now_ms"]), t1 - t0)


@dataclass(frozen=True)
class SimTime:
    """The simulator's linear clock: venue ms <-> wall seconds."""

    wall0: float
    sim0: int
    speed: float

    def wall_at(self, ts_ms: float) -> float:
        return self.wall0 + (ts_ms - self.sim0) / 1000 / self.speed

    def sim_at(self, wall: float) -> float:
        return self.sim0 + (wall - self.wall0) * 1000 * self.speed


async def sim_json(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(url) as r:
        data: dict[str, Any] = await r.json()
    return data


# -- figures --------------------------------------------------------------------------------


def ts_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def interval_s(text: str) -> float:
    """'30m' -> 1800.0 (the forms --min-history takes)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float("nan")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def dist(name: str, ms: list[float]) -> str:
    if not ms:
        return f"{name}: none"
    return (
        f"{name}: n={len(ms)} p50 {pct(ms, 0.5):.0f} ms, p95 {pct(ms, 0.95):.0f} ms, "
        f"p99 {pct(ms, 0.99):.0f} ms, max {max(ms):.0f} ms"
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def order_times(db: Path, alerts: list[tuple[float, dict[str, Any]]]) -> list[list[int]]:
    """Per burst alert, the times of the short liquidations of its symbol stored within the
    second of its `ts` (the tipping order is one of them)."""
    out: list[list[int]] = []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        for _, a in alerts:
            second = ts_ms(a["ts"])
            rows = conn.execute(
                "SELECT ts_ms FROM liquidation_orders WHERE symbol = ? AND position_side = "
                "'SHORT' AND ts_ms >= ? AND ts_ms < ? ORDER BY ts_ms",
                (a["symbol"], second, second + 1000),
            ).fetchall()
            out.append([int(r[0]) for r in rows])
    return out


def log_summary(path: Path) -> list[str]:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    levels: Counter[str] = Counter()
    events: Counter[str] = Counter()
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and parts[2] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            levels[parts[2]] += 1
            ev = next((p for p in parts if p.startswith("event=")), None)
            venue = next((p for p in parts if p.startswith("venue=")), "")
            if ev:
                events[f"{parts[2]} {venue} {ev}".replace("  ", " ")] += 1
    out = [
        f"watch stderr: {len(lines)} lines"
        + (f" ({', '.join(f'{k} {v}' for k, v in sorted(levels.items()))})" if levels else "")
    ]
    out += [f"  {n:6d} x {e}" for e, n in events.most_common(8)]
    if lines:
        out.append("  last lines:")
        out += [f"    {line[:200]}" for line in lines[-5:]]
    return out


# -- the run --------------------------------------------------------------------------------


class Probe:
    """A bare WebSocket client of the simulator (the Binance `<symbol>@forceOrder` streams of
    a few symbols): how late an order reaches a client that does nothing else, i.e. the
    simulator's own part of the end-to-end figure (push batching, its loop running late)."""

    def __init__(self, clock: SimTime, symbols: list[str]) -> None:
        self.clock, self.symbols = clock, symbols
        self.delays_ms: list[float] = []

    async def run(self, http: aiohttp.ClientSession, base: str) -> None:
        streams = "/".join(f"{s.lower()}@forceOrder" for s in self.symbols)
        async with http.ws_connect(f"{base}/market/ws/{streams}") as ws:
            async for msg in ws:
                arrived = time.time()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                order = data.get("o") if isinstance(data, dict) else None
                if isinstance(order, dict) and isinstance(order.get("T"), int):
                    self.delays_ms.append((arrived - self.clock.wall_at(order["T"])) * 1000)


@dataclass
class Run:
    """What one run measured."""

    clock: SimTime
    watch: Usage
    sim: Usage
    settle: str
    t_start: float
    reads: list[ClockRead]
    t_running: float | None = None
    t_stop: float = 0.0
    exit_code: int | None = None
    stop_s: float | None = None  # SIGTERM -> exit; None: killed after 60 s
    ru_maxrss_kb: int = 0
    sim_stats: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    malformed: int = 0
    probe_ms: list[float] = field(default_factory=list)

    @property
    def steady(self) -> float:
        return self.t_running if self.t_running is not None else self.t_stop

    def sim_ms_at_stop(self) -> float:
        return self.clock.sim_at(self.t_stop)


async def measure(args: argparse.Namespace, tmp: Path, db: Path, watch_log: Path) -> Run | None:
    speed: float = args.speed
    settle = f"{max(2.0, 0.3 * speed):g}s"
    sim, base = start_sim(args.symbols, speed, tmp / "sim.log")
    receiver = Receiver()
    watch: subprocess.Popen[bytes] | None = None
    try:
        hook = await receiver.start()
        cfg = tmp / "config.toml"
        cfg.write_text(f'[[sinks]]\ntype = "webhook"\nname = "bench"\nurl = "{hook}"\n')
        async with aiohttp.ClientSession() as http:
            reads = [await read_clock(http, base) for _ in range(5)]
            best = min(reads, key=lambda c: c.rtt_s)
            speed = float((await sim_json(http, base + "/_sim/clock"))["speed"])
            clock = SimTime(best.wall, best.sim_ms, speed)
            info = await sim_json(http, base + "/_sim/info")
            print(
                f"simulator {base}: {len(info['symbols'])} symbols x {len(info['venues'])} "
                f"venues, speed {speed:g} (simulated s per wall s), "
                f"rate limits scaled by {speed:g}",
                flush=True,
            )
            cmd = [
                str(EXE), "watch", "--all", "--endpoint", base, "--db", str(db),
                "--config", str(cfg), "--min-history", args.min_history,
                "--log-level", args.log_level, "--settle", settle,
                "--limit-scale", str(args.speed),
            ]  # fmt: skip
            print(f"$ oiradar {' '.join(cmd[1:])}", flush=True)
            t_start = time.time()
            with watch_log.open("wb") as err:
                watch = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
            run = Run(clock, Usage(watch.pid), Usage(sim.pid), settle, t_start, reads)
            probe = Probe(clock, info["symbols"][:PROBE_SYMBOLS])
            status_file = db.with_name(db.name + ".watch.json")
            probe_task = await follow(args, run, watch, status_file, receiver, probe, http, base)
            if probe_task is None:
                print(f"watch exited early with code {watch.returncode}")
                for line in log_summary(watch_log):
                    print(line)
                return None
            await stop_watch(watch, run)
            if isinstance(probe_task, asyncio.Task):
                probe_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError, ValueError):
                    await probe_task
            await asyncio.sleep(0.5)  # deliveries the daemon made while stopping are in
            run.sim_stats = await sim_json(http, base + "/_sim/stats")
            reads.append(await read_clock(http, base))
    finally:
        if watch is not None and watch.poll() is None:
            watch.kill()
            watch.wait()
        stop_sim(sim)
        await receiver.stop()
    with contextlib.suppress(OSError, ValueError):
        run.status = json.loads(status_file.read_text())
    run.received, run.malformed, run.probe_ms = receiver.received, receiver.bad, probe.delays_ms
    return run


async def follow(
    args: argparse.Namespace,
    run: Run,
    watch: subprocess.Popen[bytes],
    status_file: Path,
    receiver: Receiver,
    probe: Probe,
    http: aiohttp.ClientSession,
    base: str,
) -> asyncio.Task[None] | bool | None:
    """Samples once a second until --minutes after the daemon is running; returns the probe's
    task (False: never running; None: the daemon exited)."""
    task: asyncio.Task[None] | bool = False
    next_report = run.t_start + 60
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
            return None
        if run.t_running is None:
            with contextlib.suppress(OSError, ValueError):
                if json.loads(status_file.read_text()).get("state") == "running":
                    run.t_running = time.time()
                    print(
                        f"  daemon running after {run.t_running - run.t_start:.1f} s; "
                        f"measuring for {args.minutes:g} minutes",
                        flush=True,
                    )
                    task = asyncio.create_task(probe.run(http, base))
        if now >= next_report:
            next_report += 60
            run.reads.append(await read_clock(http, base))
            rss = run.watch.samples[-1][1] / 1024 if run.watch.samples else float("nan")
            print(
                f"  t+{now - run.t_start:4.0f} s: watch RSS {rss:.0f} MB (peak "
                f"{run.watch.peak_kb / 1024:.0f}), CPU {100 * run.watch.share(now - 60):.0f} %, "
                f"sim CPU {100 * run.sim.share(now - 60):.0f} %, alerts received "
                f"{len(receiver.received)}",
                flush=True,
            )
        await asyncio.sleep(1.0 - (time.time() - now) % 1.0)


def stop_sim(sim: subprocess.Popen[bytes]) -> None:
    sim.terminate()
    try:
        sim.wait(timeout=15)
    except subprocess.TimeoutExpired:
        sim.kill()
        sim.wait()


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


# -- the report -----------------------------------------------------------------------------


def report_resources(args: argparse.Namespace, run: Run) -> float:
    """Prints the run, CPU and memory lines; returns the peak RSS in MB."""
    clock, wall = run.clock, run.t_stop - run.t_start
    streamed = run.t_stop - run.steady
    print(
        f"{args.symbols} symbols x 4 venues, sim speed {clock.speed:g}, settle {run.settle}; "
        f"daemon running for {streamed:.0f} s wall (~{streamed * clock.speed / 60:.0f} simulated "
        f"minutes, {streamed * clock.speed * 1000 / BAR_MS:.1f} bars) after a start-up of "
        + (f"{run.t_running - run.t_start:.1f} s" if run.t_running else "(never running)")
    )
    print(
        f"the simulator, the daemon and this receiver share {os.cpu_count()} CPUs; the "
        "simulator is one asyncio loop (at most one core)"
    )
    watch, sim = run.watch, run.sim
    print(
        f"watch CPU: {100 * watch.share(run.steady):.0f} % of one core once running, "
        f"{100 * watch.cpu_total() / wall:.0f} % over the whole {wall:.0f} s "
        f"({watch.cpu_total():.0f} CPU s, start-up included)"
    )
    print(
        f"simulator CPU (not the daemon's): {100 * sim.share(run.steady):.0f} % of one core "
        f"while the daemon was running, {100 * sim.cpu_total() / wall:.0f} % over the whole run"
    )
    if sim.share(run.steady) >= SIM_SATURATED:
        print(
            "  the simulator saturates its core: its push ticks run late and its REST replies "
            "queue, which inflates every latency below (see the bare-client probe)"
        )
    marks = [run.t_start + 60 * k for k in range(1, int(wall // 60) + 1)]
    per_min = [
        next((s for s in watch.samples if s[0] >= m), watch.samples[-1])[1] / 1024 for m in marks
    ]
    print(
        f"watch RSS at each wall minute from launch (MB): {', '.join(f'{x:.0f}' for x in per_min)}"
    )
    stop = f"{run.stop_s:.2f} s" if run.stop_s is not None else "did not exit in 60 s: killed"
    print(f"graceful stop (SIGTERM -> exit): {stop}, exit code {run.exit_code}")
    drift = max(
        max(0.0, abs(clock.wall_at(c.sim_ms) - c.wall) - c.rtt_s / 2) * 1000 for c in run.reads
    )
    print(
        f"sim clock: {len(run.reads)} reads, max deviation from the linear mapping beyond each "
        f"request's own round trip {drift:.1f} ms"
    )
    return max(watch.peak_kb, run.ru_maxrss_kb) / 1024


def report_status(run: Run) -> int:
    """Prints the status file's figures and the simulator's counters; returns 429s + bans."""
    streamed = max(1.0, run.t_stop - run.steady)
    settle_ms = interval_s(run.settle) * 1000
    newest = int(run.sim_ms_at_stop() - settle_ms) // BAR_MS * BAR_MS - BAR_MS  # its open
    print(
        f"{'venue':8} {'messages':>9} {'msg/s':>7} {'drops':>6} {'bars':>5} {'behind':>6} "
        f"{'REST err':>8}  last bar / limiter at the stop"
    )
    for v in run.status.get("venues", []):
        n = max(1, int(v.get("symbols") or 0))
        last = v.get("last_bar")
        behind = str((newest - ts_ms(last)) // BAR_MS) if last else "-"
        limiter = ", ".join(f"{k} {u}" for k, u in (v.get("limiter") or {}).items() if u[0] != "0")
        print(
            f"{v['venue']:8} {v.get('messages', 0):9d} {v.get('messages', 0) / streamed:7.0f} "
            f"{v.get('disconnects', 0):6d} {v.get('bars_stepped', 0) / n:5.1f} {behind:>6} "
            f"{v.get('rest_errors', 0):8d}  {last} / {limiter or '-'}"
        )
    print(
        "  (bars: bars stepped per symbol; behind: bars closed and settled before the stop but "
        "not stepped yet)"
    )
    store, alerts = run.status.get("store", {}), run.status.get("alerts", {})
    print(
        f"store: {store.get('rows_written', 0)} rows written in {store.get('flushes', 0)} "
        f"batches, {store.get('write_failures', 0)} write failures"
    )
    kinds = Counter(str(a.get("kind")) for _, a in run.received)
    print(
        f"alerts: {alerts.get('produced', 0)} produced, {alerts.get('sent', 0)} sent, delivered "
        f"{alerts.get('delivered') or {}}, failed {alerts.get('failed') or {}}; received "
        f"{len(run.received)} ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})"
        + (f", {run.malformed} malformed" if run.malformed else "")
    )
    venues = run.sim_stats.get("venues", {})
    for name, v in sorted(venues.items()):
        print(
            f"simulator {name:8} {v.get('requests', 0):6d} requests, 429 {v.get('rejected_429', 0)}"
            f", 418/403 {v.get('bans', 0)}, {v.get('ws_messages', 0)} WebSocket messages"
        )
    return sum(int(v.get("rejected_429", 0)) + int(v.get("bans", 0)) for v in venues.values())


def report_latency(args: argparse.Namespace, run: Run, db: Path) -> list[float]:
    """Prints the latency distributions; returns liquidation -> sink (upper bound), ms."""
    clock = run.clock
    bursts = [
        (t, a) for t, a in run.received if a.get("kind") == "escalation" and ts_ms(a["ts"]) % BAR_MS
    ]
    candidates = order_times(db, bursts) if bursts and db.exists() else []
    upper, lower, whole_s = [], [], []
    ambiguous = 0
    for (t, a), cands in zip(bursts, candidates, strict=True):
        whole_s.append((t - clock.wall_at(ts_ms(a["ts"]))) * 1000)
        if cands:
            ambiguous += len(cands) > 1
            upper.append((t - clock.wall_at(cands[0])) * 1000)
            lower.append((t - clock.wall_at(cands[-1])) * 1000)
    print(
        f"liquidation -> sink, burst escalations: {len(bursts)} (the alert's ts is whole "
        f"seconds: the order is looked up in the store; found for {len(upper)}, {ambiguous} "
        "with several short liquidations of the symbol in that second)"
    )
    print("  " + dist("from the earliest candidate order (upper bound)", upper))
    if ambiguous:
        print("  " + dist("from the latest candidate order (lower bound)", lower))
    print("  " + dist("from the alert's whole-second ts (coarser)", whole_s))
    print(
        f"  includes the simulator's push batching: an order at sim time T leaves the sim at "
        f"its next {PUSH_WALL_S * 1000:.0f} ms push tick, so the figure is an upper bound by up "
        f"to {PUSH_WALL_S * 1000:.0f} ms (more when the simulator runs late)"
    )
    print(
        "  "
        + dist(
            f"bare-client probe, order -> {PROBE_SYMBOLS} Binance forceOrder streams here "
            "(the simulator's own part)",
            run.probe_ms,
        )
    )
    if len(bursts) < MIN_BURSTS:
        print(
            f"  only {len(bursts)} burst escalations (< {MIN_BURSTS}): the p99 means little; "
            "run longer (--minutes) or faster (--speed). Squeezes are called only after "
            f"--min-history {args.min_history} of streaming "
            f"({interval_s(args.min_history) / clock.speed:.0f} s wall at this speed)"
        )
    bar_alerts = [(t, a) for t, a in run.received if ts_ms(a["ts"]) % BAR_MS == 0]
    bar_ms = [
        (t - clock.wall_at(ts_ms(a["ts"]))) * 1000
        for t, a in bar_alerts
        if clock.wall_at(ts_ms(a["ts"])) >= run.steady
    ]
    settle_wall = interval_s(run.settle) / clock.speed * 1000
    print(
        dist(
            f"bar close -> sink ({len(bar_alerts) - len(bar_ms)} alerts of bars closed before "
            f"the daemon was running left out; includes the {run.settle} settle = "
            f"{settle_wall:.0f} ms wall and the REST fetches of every symbol)",
            bar_ms,
        )
    )
    return upper


def report(args: argparse.Namespace, run: Run, db: Path, watch_log: Path) -> int:
    print()
    print("=" * 94)
    peak = report_resources(args, run)
    print()
    limited = report_status(run)
    print()
    upper = report_latency(args, run, db)
    print()
    for line in log_summary(watch_log):
        print(line)
    print()
    print("=" * 94)
    print(
        f"peak RSS: {peak:.1f} MB "
        f"(target < {TARGET_RSS_MB:.0f} MB: {verdict(peak < TARGET_RSS_MB)})"
    )
    if upper:
        p99 = pct(upper, 0.99)
        print(
            f"liquidation -> sink p99: {p99:.0f} ms over {len(upper)} burst escalations "
            f"(target < {TARGET_P99_MS:.0f} ms: {verdict(p99 < TARGET_P99_MS)})"
        )
    else:
        print("liquidation -> sink p99: no burst escalation measured (target: NOT MEASURED)")
    print(f"429/418 from the simulator: {limited} (target 0: {verdict(limited == 0)})")
    print(
        f"graceful stop: exit code {run.exit_code}"
        + (f" after {run.stop_s:.2f} s" if run.stop_s is not None else ", killed")
        + f" ({verdict(run.exit_code == 0)})"
    )
    print("=" * 94)
    return 0


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
    ap.add_argument("--min-history", default="30m", help="passed to oiradar watch (default 30m)")
    ap.add_argument("--log-level", default="warning", help="oiradar watch --log-level")
    ap.add_argument(
        "--log", type=Path, help="keep the daemon's stderr here (default: printed summary only)"
    )
    args = ap.parse_args(argv)
    if args.speed <= 0 or args.symbols <= 0 or args.minutes <= 0:
        ap.error("--speed, --symbols and --minutes must be positive")
    tmp = Path(tempfile.mkdtemp(prefix="oiradar-bench-watch-"))
    watch_log = args.log or tmp / "watch.stderr.log"
    db = tmp / "watch.sqlite"
    try:
        run = asyncio.run(measure(args, tmp, db, watch_log))
        return 1 if run is None else report(args, run, db, watch_log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
