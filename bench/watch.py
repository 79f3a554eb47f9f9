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
  order that tipped the squeeze rule, `ts_ms`). Target p99 < 250 ms. The simulator's clock is
  linear (GET /_sim/clock), so an order's venue time maps to the wall time it happened; the
  sim sends it at its next WebSocket push tick (every 0.1 s of wall time), so the figure is
  an upper bound by up to 100 ms. A bare WebSocket client in this process (the Binance
  forceOrder streams of a few symbols) measures the simulator's own part the same way.
  The simulator serves a squeeze-heavy market whose squeezes start as covering
  (--regime-weights, --cascade-delay) so that a 10-minute run has enough escalations for a
  p99.
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
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from oiradar.units import interval_ms, parse_time

EXE = Path(sys.executable).parent / "oiradar"
BAR_MS = 300_000
PUSH_WALL_S = 0.1  # the simulator's WebSocket push cadence (wall time)
TARGET_RSS_MB = 300.0
TARGET_P99_MS = 250.0
MIN_BURSTS = 100  # fewer and a p99 is mostly the maximum
# Squeezes drawn 12x as often as by default, shorts building up 11x (so OI and price stay
# balanced over the history), calm spells half as often; each squeeze's cascade starts half
# way in, so it reads as covering first and is upgraded as the cascade streams in. About 4
# squeezes per symbol-day instead of 0.3, most of them escalations (tests/test_sim_core.py).
SQUEEZE_HEAVY = "NEW_SHORTS=1,SHORT_SQUEEZE=1,NEUTRAL=0.2"
CASCADE_DELAY = 0.5
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


def start_sim(
    symbols: int, speed: float, weights: str, cascade_delay: float, log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    mix = ["--regime-weights", weights] if weights else []
    mix += ["--cascade-delay", str(cascade_delay)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(EXE), "sim", "--symbols", str(symbols), "--port", "0", *scaled(speed), *mix],
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
    """A bare WebSocket client of every liquidation feed the daemon reads (Binance
    `!forceOrder@arr`, Bybit `allLiquidation.*`, OKX `liquidation-orders`), doing nothing else.

    It runs in a process of its own (`--probe`), so that neither its parsing nor this
    process's webhook receiver delays the other's clock readings. Where it saw an order
    first is, to within loopback, when that order's message left the simulator: the daemon's
    own latency for an escalation is the sink's arrival minus the probe's arrival of the
    tipping order. Order time -> probe arrival is the simulator's own part (its push
    batching and its loop running late)."""

    def __init__(self, symbols: list[str]) -> None:
        self.symbols = symbols
        self.seen: dict[tuple[str, int], float] = {}  # (symbol, order ms) -> first arrival
        self.errors: list[str] = []

    def _saw(self, symbol: str, ts_ms: int, arrived: float) -> None:
        self.seen.setdefault((symbol, ts_ms), arrived)

    async def run(self, http: aiohttp.ClientSession, base: str) -> None:
        feeds = (self._binance(http, base), self._bybit(http, base), self._okx(http, base))
        outcomes = await asyncio.gather(*feeds, return_exceptions=True)
        for name, outcome in zip(("binance", "bybit", "okx"), outcomes, strict=True):
            if isinstance(outcome, Exception):  # reported: an escalation it missed has no figure
                self.errors.append(f"{name}: {type(outcome).__name__}: {outcome}")

    async def _binance(self, http: aiohttp.ClientSession, base: str) -> None:
        async with http.ws_connect(f"{base}/market/ws/!forceOrder@arr") as ws:
            async for msg in ws:
                arrived = time.time()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    o = json.loads(msg.data).get("o") or {}
                    if o.get("S") == "BUY":  # a short position's forced buy
                        self._saw(o["s"], int(o["T"]), arrived)

    async def _bybit(self, http: aiohttp.ClientSession, base: str) -> None:
        async with http.ws_connect(f"{base}/v5/public/linear", heartbeat=None) as ws:
            topics = [f"allLiquidation.{s}" for s in self.symbols]
            for i in range(0, len(topics), 10):
                await ws.send_json({"op": "subscribe", "args": topics[i : i + 10]})
            pinger = asyncio.create_task(self._ping(ws, json.dumps({"op": "ping"})))
            try:
                async for msg in ws:
                    arrived = time.time()
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        for o in json.loads(msg.data).get("data") or []:
                            if isinstance(o, dict) and o.get("S") == "Sell":  # a short's
                                self._saw(o["s"], int(o["T"]), arrived)
            finally:
                pinger.cancel()

    async def _okx(self, http: aiohttp.ClientSession, base: str) -> None:
        async with http.ws_connect(f"{base}/ws/v5/public") as ws:
            arg = {"channel": "liquidation-orders", "instType": "SWAP"}
            await ws.send_json({"op": "subscribe", "args": [arg]})
            pinger = asyncio.create_task(self._ping(ws, "ping"))
            try:
                async for msg in ws:
                    arrived = time.time()
                    if msg.type is not aiohttp.WSMsgType.TEXT or msg.data == "pong":
                        continue
                    for row in json.loads(msg.data).get("data") or []:
                        symbol = "".join(str(row.get("instId", "")).split("-")[:2])
                        for d in row.get("details") or []:
                            if d.get("side") == "buy":  # a short's forced buy
                                self._saw(symbol, int(d["ts"]), arrived)
            finally:
                pinger.cancel()

    @staticmethod
    async def _ping(ws: aiohttp.ClientWebSocketResponse, text: str) -> None:
        while not ws.closed:
            await asyncio.sleep(5)
            await ws.send_str(text)


def probe_main(base: str, out: Path) -> int:
    """`bench/watch.py --probe BASE OUT`: the probe until SIGTERM, then what it saw to OUT."""

    async def go() -> Probe:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with aiohttp.ClientSession() as http:
            probe = Probe((await sim_json(http, base + "/_sim/info"))["symbols"])
            task = asyncio.create_task(probe.run(http, base))
            await stop.wait()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return probe

    probe = asyncio.run(go())
    rows = [[sym, ts, arrived] for (sym, ts), arrived in probe.seen.items()]
    out.write_text(json.dumps({"seen": rows, "errors": probe.errors}))
    return 0


@dataclass
class ProbeResult:
    seen: dict[tuple[str, int], float]
    errors: list[str]
    cpu_s: float | None


def start_probe(base: str, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "--probe", base, str(out)])


def stop_probe(proc: subprocess.Popen[bytes], out: Path) -> ProbeResult:
    cpu = cpu_s(proc.pid)
    proc.terminate()
    try:
        proc.wait(timeout=60)
        data = json.loads(out.read_text())
    except (subprocess.TimeoutExpired, OSError, ValueError) as exc:
        proc.kill()
        proc.wait()
        return ProbeResult({}, [f"probe process: {exc}"], cpu)
    seen = {(sym, int(ts)): float(arrived) for sym, ts, arrived in data["seen"]}
    return ProbeResult(seen, list(data["errors"]), cpu)


@dataclass
class Run:
    """What one run measured."""

    clock: SimTime
    watch: Usage
    sim: Usage
    settle_s: float  # simulated seconds after a close before the daemon evaluates it
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
    probe: ProbeResult | None = None

    @property
    def steady(self) -> float:
        return self.t_running if self.t_running is not None else self.t_stop

    def sim_ms_at_stop(self) -> float:
        return self.clock.sim_at(self.t_stop)


async def measure(args: argparse.Namespace, tmp: Path, db: Path, watch_log: Path) -> Run | None:
    speed: float = args.speed
    settle_s = max(2.0, 0.3 * speed)
    sim, base = start_sim(
        args.symbols, speed, args.regime_weights, args.cascade_delay, tmp / "sim.log"
    )
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
                f"rate limits scaled by {speed:g}; regime mix "
                + ", ".join(f"{k} {v:g}" for k, v in info["regime_weights"].items())
                + f"; cascade delay {info['cascade_delay']:g}",
                flush=True,
            )
            cmd = [
                str(EXE), "watch", "--all", "--endpoint", base, "--db", str(db),
                "--config", str(cfg), "--min-history", args.min_history,
                "--log-level", args.log_level, "--settle", f"{settle_s:g}s",
                "--limit-scale", str(args.speed),
            ]  # fmt: skip
            print(f"$ oiradar {' '.join(cmd[1:])}", flush=True)
            t_start = time.time()
            with watch_log.open("wb") as err:
                watch = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
            run = Run(clock, Usage(watch.pid), Usage(sim.pid), settle_s, t_start, reads)
            status_file = db.with_name(db.name + ".watch.json")
            probe_out = tmp / "probe.json"
            probe = await follow(args, run, watch, status_file, receiver, http, base, probe_out)
            if probe is None:
                print(f"watch exited early with code {watch.returncode}")
                for line in log_summary(watch_log):
                    print(line)
                return None
            await stop_watch(watch, run)
            if isinstance(probe, subprocess.Popen):
                run.probe = stop_probe(probe, probe_out)
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
    run.received, run.malformed = receiver.received, receiver.bad
    return run


async def follow(
    args: argparse.Namespace,
    run: Run,
    watch: subprocess.Popen[bytes],
    status_file: Path,
    receiver: Receiver,
    http: aiohttp.ClientSession,
    base: str,
    probe_out: Path,
) -> subprocess.Popen[bytes] | bool | None:
    """Samples once a second until --minutes after the daemon is running; returns the probe's
    process (False: never running; None: the daemon exited)."""
    task: subprocess.Popen[bytes] | bool = False
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
            if isinstance(task, subprocess.Popen):
                task.kill()
                task.wait()
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
                    task = start_probe(base, probe_out)
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
        f"{args.symbols} symbols x 4 venues, sim speed {clock.speed:g}, settle {run.settle_s:g}s; "
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
    settle_ms = run.settle_s * 1000
    newest = int(run.sim_ms_at_stop() - settle_ms) // BAR_MS * BAR_MS - BAR_MS  # its open
    print(
        f"{'venue':8} {'messages':>9} {'msg/s':>7} {'drops':>6} {'bars':>5} {'behind':>6} "
        f"{'REST err':>8}  last bar / limiter at the stop"
    )
    for v in run.status.get("venues", []):
        n = max(1, int(v.get("symbols") or 0))
        last = v.get("last_bar")
        behind = str((newest - parse_time(last)) // BAR_MS) if last else "-"
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


def report_latency(args: argparse.Namespace, run: Run) -> tuple[list[float], int]:
    """Prints the latency distributions; returns (message left the simulator -> sink, ms, for
    the escalations the probe saw the tipping order of; the number of escalations)."""
    clock, probe = run.clock, run.probe
    # A burst escalation's ts_ms is the tipping order's venue time (to the ms); a bar close's
    # is the bar boundary.
    bursts = [
        (t, a) for t, a in run.received if a.get("kind") == "escalation" and a["ts_ms"] % BAR_MS
    ]
    from_order = [(t - clock.wall_at(a["ts_ms"])) * 1000 for t, a in bursts]
    seen = probe.seen if probe else {}
    sim_part = [(arrived - clock.wall_at(ts)) * 1000 for (_, ts), arrived in seen.items()]
    left = [
        (t - seen[(a["symbol"], a["ts_ms"])]) * 1000
        for t, a in bursts
        if (a["symbol"], a["ts_ms"]) in seen
    ]
    print(f"liquidation -> sink, burst escalations: {len(bursts)}")
    print(
        "  "
        + dist(
            f"from the tipping message leaving the simulator (its arrival at a bare client "
            f"here; found for {len(left)} of {len(bursts)})",
            left,
        )
    )
    print(
        "  " + dist("from the tipping order's venue time (adds the simulator's part)", from_order)
    )
    print(
        "  "
        + dist(
            "the simulator's part, order time -> bare client, every short liquidation of "
            f"Binance, Bybit and OKX (push batching every {PUSH_WALL_S * 1000:.0f} ms wall, "
            "its loop running late)",
            sim_part,
        )
    )
    if probe and probe.cpu_s is not None:
        print(f"  (the probe process used {probe.cpu_s:.0f} CPU s)")
    for err in probe.errors if probe else []:
        print(f"  probe feed failed: {err}")
    if len(bursts) < MIN_BURSTS:
        print(
            f"  only {len(bursts)} burst escalations (< {MIN_BURSTS}): the p99 means little; "
            "run longer (--minutes) or faster (--speed). Squeezes are called only after "
            f"--min-history {args.min_history} of streaming "
            f"({interval_ms(args.min_history) / 1000 / clock.speed:.0f} s wall at this speed)"
        )
    bar_alerts = [(t, a) for t, a in run.received if a["ts_ms"] % BAR_MS == 0]
    bar_ms = [
        (t - clock.wall_at(a["ts_ms"])) * 1000
        for t, a in bar_alerts
        if clock.wall_at(a["ts_ms"]) >= run.steady
    ]
    settle_wall = run.settle_s / clock.speed * 1000
    print(
        dist(
            f"bar close -> sink ({len(bar_alerts) - len(bar_ms)} alerts of bars closed before "
            f"the daemon was running left out; includes the {run.settle_s:g}s settle = "
            f"{settle_wall:.0f} ms wall and the REST fetches of every symbol)",
            bar_ms,
        )
    )
    return left, len(bursts)


def report(args: argparse.Namespace, run: Run, watch_log: Path) -> int:
    print()
    print("=" * 94)
    peak = report_resources(args, run)
    print()
    limited = report_status(run)
    print()
    left, escalations = report_latency(args, run)
    print()
    for line in log_summary(watch_log):
        print(line)
    print()
    print("=" * 94)
    print(
        f"peak RSS: {peak:.1f} MB "
        f"(target < {TARGET_RSS_MB:.0f} MB: {verdict(peak < TARGET_RSS_MB)})"
    )
    if left:
        p99 = pct(left, 0.99)
        enough = "" if len(left) >= MIN_BURSTS else f"; fewer than {MIN_BURSTS}: indicative"
        print(
            f"liquidation message -> sink p99: {p99:.0f} ms over {len(left)} burst escalations "
            f"of {escalations}{enough} (target < {TARGET_P99_MS:.0f} ms: "
            f"{verdict(p99 < TARGET_P99_MS)})"
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
    ap.add_argument("--log-level", default="warning", help="oiradar watch --log-level")
    ap.add_argument(
        "--log", type=Path, help="keep the daemon's stderr here (default: printed summary only)"
    )
    ap.add_argument("--probe", nargs=2, metavar=("BASE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.probe:
        return probe_main(args.probe[0], Path(args.probe[1]))
    if args.speed <= 0 or args.symbols <= 0 or args.minutes <= 0:
        ap.error("--speed, --symbols and --minutes must be positive")
    tmp = Path(tempfile.mkdtemp(prefix="oiradar-bench-watch-"))
    watch_log = args.log or tmp / "watch.stderr.log"
    db = tmp / "watch.sqlite"
    try:
        run = asyncio.run(measure(args, tmp, db, watch_log))
        return 1 if run is None else report(args, run, watch_log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
