"""The bare WebSocket client `bench/watch.py` runs beside the daemon (in a process of its own)
to time when each short liquidation left the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from _watchkit import ProbeResult, cpu_s, sim_json

WATCH = Path(__file__).with_name("watch.py")  # runs the probe with `--probe BASE OUT`


class Probe:
    """A bare WebSocket client of the liquidation feeds the daemon reads (Binance
    `!forceOrder@arr`, Bybit `allLiquidation.*`, OKX `liquidation-orders`, Gate
    `futures.public_liquidates` `!all`, Bitget's UTA `liquidation`, dYdX's `v4_trades` per
    market), doing nothing else (Hyperliquid has no liquidation feed).

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

    async def run(self, http: aiohttp.ClientSession, bases: dict[str, str]) -> None:
        """Every probed venue among `bases` (venue -> its simulator's base URL)."""
        feeds = {"binance": self._binance, "bybit": self._bybit, "okx": self._okx,
                 "gate": self._gate, "bitget": self._bitget, "dydx": self._dydx}  # fmt: skip
        names = [v for v in feeds if v in bases]
        outcomes = await asyncio.gather(
            *(feeds[v](http, bases[v]) for v in names), return_exceptions=True
        )
        for name, outcome in zip(names, outcomes, strict=True):
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
        arg = {"channel": "liquidation-orders", "instType": "SWAP"}
        async for arrived, row in self._rows(http, f"{base}/ws/v5/public", arg):
            symbol = "".join(str(row.get("instId", "")).split("-")[:2])
            for d in row.get("details") or []:
                if d.get("side") == "buy":  # a short's forced buy
                    self._saw(symbol, int(d["ts"]), arrived)

    async def _rows(
        self, http: aiohttp.ClientSession, url: str, arg: dict[str, str]
    ) -> AsyncIterator[tuple[float, dict[str, Any]]]:
        """OKX's and Bitget's way: one `subscribe` op, `ping` text every 5 s, pushes whose
        `data` holds the rows; each row with its message's arrival."""
        async with http.ws_connect(url) as ws:
            await ws.send_json({"op": "subscribe", "args": [arg]})
            pinger = asyncio.create_task(self._ping(ws, "ping"))
            try:
                async for msg in ws:
                    arrived = time.time()
                    if msg.type is not aiohttp.WSMsgType.TEXT or msg.data == "pong":
                        continue
                    for row in json.loads(msg.data).get("data") or []:
                        if isinstance(row, dict):
                            yield arrived, row
            finally:
                pinger.cancel()

    async def _gate(self, http: aiohttp.ClientSession, base: str) -> None:
        async with http.ws_connect(f"{base}/v4/ws/usdt") as ws:
            channel = "futures.public_liquidates"
            sub = {"time": int(time.time()), "channel": channel, "event": "subscribe"}
            await ws.send_json(sub | {"payload": ["!all"]})
            async for msg in ws:
                arrived = time.time()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                push = json.loads(msg.data)
                if push.get("channel") != channel or push.get("event") != "update":
                    continue
                for row in push.get("result") or []:
                    ts = row.get("time_ms", row.get("time"))
                    if float(row.get("size", 0)) > 0 and ts is not None:  # a short's forced buy
                        self._saw(str(row["contract"]).replace("_", ""), int(ts), arrived)

    async def _bitget(self, http: aiohttp.ClientSession, base: str) -> None:
        arg = {"instType": "usdt-futures", "topic": "liquidation"}
        async for arrived, row in self._rows(http, f"{base}/v3/ws/public", arg):
            if str(row.get("side")).lower() == "sell":  # a short position's
                self._saw(str(row["symbol"]), int(row["ts"]), arrived)

    async def _dydx(self, http: aiohttp.ClientSession, base: str) -> None:
        """Every market's trade tape over connections of 30 (the indexer's cap is 32); a
        short's liquidation is a LIQUIDATED fill whose taker bought."""
        tickers = [s.removesuffix("USDT") + "-USD" for s in self.symbols]
        await asyncio.gather(
            *(self._dydx_conn(http, base, tickers[i : i + 30]) for i in range(0, len(tickers), 30))
        )

    async def _dydx_conn(self, http: aiohttp.ClientSession, base: str, tickers: list[str]) -> None:
        async with http.ws_connect(f"{base}/v4/ws") as ws:
            for t in tickers:
                await ws.send_json({"type": "subscribe", "channel": "v4_trades", "id": t})
                await asyncio.sleep(0.02)
            async for msg in ws:
                arrived = time.time()
                if msg.type is not aiohttp.WSMsgType.TEXT or "LIQUIDATED" not in msg.data:
                    continue
                push = json.loads(msg.data)
                if push.get("type") != "channel_data":  # the subscribe reply replays history
                    continue
                symbol = str(push["id"]).removesuffix("-USD").replace("-", "") + "USDT"
                for row in (push.get("contents") or {}).get("trades") or []:
                    if row.get("type") == "LIQUIDATED" and row.get("side") == "BUY":
                        when = datetime.fromisoformat(str(row["createdAt"]).replace("Z", "+00:00"))
                        self._saw(symbol, round(when.timestamp() * 1000), arrived)

    @staticmethod
    async def _ping(ws: aiohttp.ClientWebSocketResponse, text: str) -> None:
        while not ws.closed:
            await asyncio.sleep(5)
            await ws.send_str(text)


def probe_main(bases_json: str, out: Path) -> int:
    """`bench/watch.py --probe BASES OUT` (BASES: JSON venue -> base URL): the probe until
    SIGTERM, then what it saw to OUT."""
    bases: dict[str, str] = json.loads(bases_json)
    base = next(iter(bases.values()))

    async def go() -> Probe:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with aiohttp.ClientSession() as http:
            probe = Probe((await sim_json(http, base + "/_sim/info"))["symbols"])
            task = asyncio.create_task(probe.run(http, bases))
            await stop.wait()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return probe

    probe = asyncio.run(go())
    rows = [[sym, ts, arrived] for (sym, ts), arrived in probe.seen.items()]
    out.write_text(json.dumps({"seen": rows, "errors": probe.errors}))
    return 0


def start_probe(bases: dict[str, str], out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(WATCH), "--probe", json.dumps(bases), str(out)])


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
