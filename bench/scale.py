"""By-hand benchmark of a split deployment's burst path (not a test: it prints figures):
a collector's write of a liquidation burst -> the decider (`watch --decide-only`) wakes,
replays the running bar's orders, escalates -> the alert reaches a sink.

Run from the project root:

    python bench/scale.py                     # both backends, 200 symbols, 200 bursts
    python bench/scale.py --db sqlite --symbols 50

The bench plays the collector itself: it stores a day of 5m bars with OI and liquidations
for every symbol (and a connected liquidation feed), beats as a collector whose newest
stored bar is the last of them, and publishes every symbol as in a covering episode. A
decider then runs in this process on its own store handle and event loop, with a sink that
stamps each alert's arrival. Each burst is one write (one transaction, as a collector's
flush) of a short liquidation large enough for the squeeze rule, into the running bar of
one symbol; latency = the sink's stamp - the end of that write (both `time.perf_counter`
on this host). PostgreSQL wakes the decider with NOTIFY; SQLite by its 10 ms poll. The
PostgreSQL server is a throwaway one from the machine's binaries (tests/pgkit.py).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.pgkit starts the throwaway server

from oiradar.records import Candle, Liquidation, OISample, Side  # noqa: E402
from oiradar.services.alerts import Alert, Gate  # noqa: E402
from oiradar.services.watch import WatchRequest  # noqa: E402
from oiradar.services.watch.deciding import DecideOnly  # noqa: E402
from oiradar.services.watch.state import rss_bytes  # noqa: E402
from oiradar.services.watch.workers import Role, heartbeat  # noqa: E402
from oiradar.signals.params import EngineParams  # noqa: E402
from oiradar.store import Episode, Store, WatchState, open_store  # noqa: E402
from oiradar.units import DAY_MS, MINUTE_MS  # noqa: E402

FIVE = 5 * MINUTE_MS
VENUE = "bybit"
T0 = 1_780_000_000_000 // DAY_MS * DAY_MS
BARS = 288


class Stamp:
    """A sink that notes when each alert arrived (perf_counter)."""

    name = "stamp"

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.got = threading.Event()

    async def send(self, alert: Alert) -> None:
        self.arrived[alert.symbol] = time.perf_counter()
        self.got.set()

    async def close(self) -> None:
        return None


def _history(store: Store, symbols: list[str]) -> int:
    """A day of bars per symbol; returns the last bar's open."""
    records: list[Any] = []
    for k, sym in enumerate(symbols):
        price = 10.0 + k
        for i in range(BARS):
            ts = T0 + i * FIVE
            records.append(Candle(VENUE, sym, FIVE, ts, price, price, price, price, 1e4, 1e5))
            records.append(OISample(VENUE, sym, ts + FIVE, 1e6, None, 1e6 * price))
            side = Side.SHORT if i % 2 else Side.LONG
            records.append(Liquidation(VENUE, sym, ts + 1_000, side, 10.0, price, 10.0 * price))
    last = T0 + (BARS - 1) * FIVE
    spans = [(VENUE, s, T0, last + FIVE + 1) for s in symbols]
    store.write_records(records, coverage=spans)
    return last


def _beat(store: Store, symbols: list[str], last: int) -> None:
    detail = {"state": "running", "venues": {VENUE: {
        "symbols": symbols, "last_bar_ms": last, "first_bar_ms": last, "feed": "complete",
        "funding": {}, "line": {"venue": VENUE}}}}  # fmt: skip
    beat = heartbeat(Role.COLLECT, int(time.time() * 1000), detail)
    store.beat(replace(beat, worker="bench-collector"))  # the decider beats as this process


def run(url: str, n_symbols: int, bursts: int) -> dict[str, Any]:
    symbols = [f"S{k:03d}USDT" for k in range(n_symbols)]
    params = EngineParams(min_history_ms=2 * 3_600_000)
    settle = 1_000
    with open_store(url) as writer:
        last = _history(writer, symbols)
        started = last + FIVE
        episodes = tuple(Episode(s, "covering", started) for s in symbols)
        writer.put_watch_state(WatchState({"state": "stopped"}, {}, episodes))
        _beat(writer, symbols, last)
        req = WatchRequest((VENUE,), None, None, params, settle_ms=settle, lease_ttl_ms=15_000)
        sink = Stamp()
        stop = asyncio.Event()
        loop = asyncio.new_event_loop()
        reader = open_store(url)
        decider = DecideOnly(req, reader, [sink], Gate(cooldown_s=900))
        thread = threading.Thread(target=loop.run_until_complete, args=(decider.run(stop),))
        thread.start()
        deadline = time.monotonic() + 60
        while not (decider.leading and VENUE in decider.feeds
                   and len(decider.feeds[VENUE].states) == n_symbols):  # fmt: skip
            assert time.monotonic() < deadline, "the decider did not start"
            time.sleep(0.05)
        latencies = []
        for i, sym in enumerate(symbols[:bursts]):
            if i % 20 == 0:
                _beat(writer, symbols, last)  # a living collector's heartbeat
            ts = started + settle + 1_000 + i
            big = Liquidation(VENUE, sym, ts, Side.SHORT, 1e6, 10.0, 1e8)
            sink.got.clear()
            writer.write_records([big])
            wrote = time.perf_counter()
            if not sink.got.wait(10):
                raise SystemExit(f"no alert for {sym}: is the squeeze rule met?")
            latencies.append((sink.arrived[sym] - wrote) * 1000)
        rss = rss_bytes()
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        reader.close()
    latencies.sort()
    return {
        "bursts": len(latencies),
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "max_ms": latencies[-1],
        "rss_mb": (rss or 0) / 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", choices=["both", "sqlite", "postgresql"], default="both")
    ap.add_argument("--symbols", type=int, default=200)
    ap.add_argument("--bursts", type=int, default=200)
    args = ap.parse_args()
    results = {}
    if args.db in ("both", "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            results["sqlite"] = run(str(Path(tmp) / "bench.sqlite"), args.symbols, args.bursts)
    if args.db in ("both", "postgresql"):
        from tests.pgkit import start_server

        server = start_server()
        try:
            results["postgresql"] = run(server.new_database(), args.symbols, args.bursts)
        finally:
            server.stop()
    print(f"burst write -> sink, {args.symbols} symbols in a covering episode, one venue")
    for name, r in results.items():
        print(f"{name:>10}: {r['bursts']} bursts  p50 {r['p50_ms']:.1f} ms  "
              f"p99 {r['p99_ms']:.1f} ms  max {r['max_ms']:.1f} ms  "
              f"RSS {r['rss_mb']:.0f} MB (bench + decider)")  # fmt: skip


if __name__ == "__main__":
    main()
