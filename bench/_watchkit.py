"""What `bench/watch.py` measures with: the processes it starts and samples (/proc), the webhook
sink's other end, the simulator's linear clock, and the figures one run collects (`Run`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from oiradar.errors import OiradarError
from oiradar.store import open_store
from oiradar.venues.endpoints import ws_of

EXE = Path(sys.executable).parent / "oiradar"
BAR_MS = 300_000
WARM_CLOSES = 2  # closes after the start still stepped via REST (the warm-up)
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


class Usages:
    """Several processes sampled as one (the simulators): CPU summed, memory of the largest."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.parts = [Usage(pid) for pid in pids]

    def sample(self) -> None:
        for part in self.parts:
            part.sample()

    @property
    def peak_kb(self) -> int:
        return max(p.peak_kb for p in self.parts)

    def share(self, since: float = 0.0) -> float:
        return sum(p.share(since) for p in self.parts)

    def busiest(self, since: float = 0.0) -> float:
        """The largest one process's share: a process near 1.0 is saturated."""
        return max(p.share(since) for p in self.parts)

    def cpu_total(self) -> float:
        return sum(p.cpu_total() for p in self.parts)


def scaled(speed: float) -> list[str]:
    """The simulator's speed, with its rate-limit windows scaled to match."""
    return ["--speed", str(speed), "--limit-scale", str(speed)]


def start_sim(
    symbols: int,
    speed: float,
    weights: str,
    cascade_delay: float,
    log: Path,
    extra: Sequence[str] = (),
    nice: int = 0,
) -> tuple[subprocess.Popen[bytes], str]:
    """`oiradar sim` on a free port (`extra`: more of its options; `nice`: its scheduling
    priority, below the daemon's when > 0); (process, base URL)."""
    mix = ["--regime-weights", weights] if weights else []
    mix += ["--cascade-delay", str(cascade_delay), *extra]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(EXE), "sim", "--symbols", str(symbols), "--port", "0", *scaled(speed), *mix],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.nice(nice)) if nice else None,  # noqa: PLW1509
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


@dataclass
class Sims:
    """Simulator processes that together serve the run's venues, each venue from one of them
    (`bases`: venue -> base URL), on one shared clock: a one-process simulator saturates its
    core at 500 symbols x 4 venues and then inflates every latency it is used to measure."""

    procs: list[subprocess.Popen[bytes]]
    bases: dict[str, str]

    @property
    def first(self) -> str:
        return next(iter(self.bases.values()))

    def unique(self) -> list[str]:
        return list(dict.fromkeys(self.bases.values()))

    def env(self) -> dict[str, str]:
        """The daemon's environment: each venue's REST and WebSocket base (the endpoints'
        per-venue variables), so no `--endpoint` is needed."""
        out = {}
        for venue, base in self.bases.items():
            out[f"OIRADAR_{venue.upper()}_REST"] = base
            out[f"OIRADAR_{venue.upper()}_WS"] = ws_of(base)
        return out

    async def start_clocks(self, http: aiohttp.ClientSession, speed: float) -> None:
        """Start every frozen clock at once; each maps wall time to venue time linearly from
        the moment its POST is handled, so they differ by those moments (checked by
        `offsets_ms`)."""
        await asyncio.gather(*(
            _post(http, f"{b}/_sim/clock", {"speed": speed}) for b in self.unique()
        ))  # fmt: skip

    async def offsets_ms(self, http: aiohttp.ClientSession, speed: float) -> float:
        """Largest difference in wall ms between the clocks, beyond the reads' round trips."""
        reads = [await read_clock(http, b) for b in self.unique()]
        walls = [SimTime(r.wall, r.sim_ms, speed).wall_at(reads[0].sim_ms) for r in reads]
        slack = max(r.rtt_s for r in reads)
        return max(0.0, (max(walls) - min(walls) - slack)) * 1000

    async def stats(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        """The counters of every venue, each from the process serving it."""
        venues: dict[str, Any] = {}
        for base in self.unique():
            got = (await sim_json(http, base + "/_sim/stats")).get("venues", {})
            venues.update({v: got[v] for v, b in self.bases.items() if b == base and v in got})
        return {"venues": venues}


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> None:
    async with http.post(url, json=body) as r:
        r.raise_for_status()


def start_sims(
    groups: Sequence[Sequence[str]],
    symbols: int,
    speed: float,
    weights: str,
    cascade_delay: float,
    logs: Path,
    nice: int = 0,
) -> Sims:
    """One `oiradar sim` per group of venues, the same market (seed, start, symbols) in each,
    clocks frozen until `Sims.start_clocks`; rate limits scaled by `speed`."""
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    procs: list[subprocess.Popen[bytes]] = []
    bases: dict[str, str] = {}
    try:
        for k, group in enumerate(groups):
            extra = ["--venues", ",".join(group), "--start", start, "--speed", "0"]
            proc, base = start_sim(
                symbols, speed, weights, cascade_delay, logs / f"sim{k}.log", extra, nice
            )
            procs.append(proc)
            bases.update(dict.fromkeys(group, base))
    except BaseException:
        for proc in procs:
            stop_sim(proc)
        raise
    return Sims(procs, bases)


def stop_sim(sim: subprocess.Popen[bytes]) -> None:
    sim.terminate()
    try:
        sim.wait(timeout=15)
    except subprocess.TimeoutExpired:
        sim.kill()
        sim.wait()


async def shut(
    watch: subprocess.Popen[bytes] | None,
    sim: subprocess.Popen[bytes] | Sequence[subprocess.Popen[bytes]],
    receiver: Receiver,
) -> None:
    """What a run leaves behind: a daemon still up is killed, the simulators and sink stop."""
    if watch is not None and watch.poll() is None:
        watch.kill()
        watch.wait()
    for proc in [sim] if isinstance(sim, subprocess.Popen) else sim:
        stop_sim(proc)
    await receiver.stop()


def published(db: Path | str) -> dict[str, Any]:
    """What the daemon last published in the store ({} before it did)."""
    try:
        with open_store(db, readonly=True) as store:
            state = store.watch_state()
    except OiradarError:  # not created (or not migrated) yet
        return {}
    return state.status if state is not None else {}


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

    async def config(self, path: Path, sink: str) -> Path:
        """Starts the receiver; writes a config file whose one webhook sink posts to it."""
        hook = await self.start()
        path.write_text(f'[[sinks]]\ntype = "webhook"\nname = "{sink}"\nurl = "{hook}"\n')
        return path


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


# -- a run ----------------------------------------------------------------------------------


@dataclass
class ProbeResult:
    seen: dict[tuple[str, int], float]
    errors: list[str]
    cpu_s: float | None


@dataclass
class Run:
    """What one run measured."""

    clock: SimTime
    watch: Usage
    sim: Usages
    settle_s: float  # simulated seconds after a close before the daemon evaluates it
    t_start: float
    reads: list[ClockRead]
    t_running: float | None = None
    t_stop: float = 0.0
    exit_code: int | None = None
    stop_s: float | None = None  # SIGTERM -> exit; None: killed after 60 s
    ru_maxrss_kb: int = 0
    sim_stats: dict[str, Any] = field(default_factory=dict)
    sim_stats_running: dict[str, Any] = field(default_factory=dict)  # when it began running
    sim_stats_warm: dict[str, Any] = field(default_factory=dict)  # two closes later
    t_warm: float | None = None
    status: dict[str, Any] = field(default_factory=dict)
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    malformed: int = 0
    probe: ProbeResult | None = None
    bar_ms: list[float] = field(default_factory=list)  # bar close -> sink, per alert
    bar_ms_warmed: list[float] = field(default_factory=list)  # the same after the warm-up
    venues: list[str] = field(default_factory=list)
    sim_error: str = ""  # a simulator stopped answering: the run ended there

    @property
    def steady(self) -> float:
        return self.t_running if self.t_running is not None else self.t_stop

    def sim_ms_at_stop(self) -> float:
        return self.clock.sim_at(self.t_stop)
