"""By-hand benchmark of `oiradar sim`: response overhead with a 500-symbol universe per venue.

Starts `oiradar sim --symbols 500` in its own process (latency injection off), warms every
symbol up, then times sequential requests over one keep-alive connection per endpoint and
prints p50/p95/p99 in ms. Target (issue 3): p50 under 5 ms. Rate-limit windows are scaled
(--limit-scale 10000) so thousands of back-to-back requests measure the server, not the
venues' budgets.

    python bench/sim.py                 # 500 symbols, 300 requests per endpoint
    python bench/sim.py --symbols 50 --requests 50
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

TARGET_P50_MS = 5.0


def endpoints(symbols: list[str]) -> dict[str, list[str]]:
    """One family of single-symbol requests per venue endpoint (random symbols)."""
    rng = random.Random(7)

    def pick() -> str:
        return rng.choice(symbols)

    n = 400
    return {
        "binance openInterest": [f"/fapi/v1/openInterest?symbol={pick()}" for _ in range(n)],
        "binance klines 5m x100": [
            f"/fapi/v1/klines?symbol={pick()}&interval=5m&limit=100" for _ in range(n)
        ],
        "binance premiumIndex": [f"/fapi/v1/premiumIndex?symbol={pick()}" for _ in range(n)],
        "binance openInterestHist": [
            f"/futures/data/openInterestHist?symbol={pick()}&period=5m&limit=30" for _ in range(n)
        ],
        "bybit tickers (1 symbol)": [
            f"/v5/market/tickers?category=linear&symbol={pick()}" for _ in range(n)
        ],
        "bybit open-interest": [
            f"/v5/market/open-interest?category=linear&symbol={pick()}&intervalTime=5min&limit=50"
            for _ in range(n)
        ],
        "okx open-interest (1 inst)": [
            f"/api/v5/public/open-interest?instType=SWAP&instId={pick()[:-4]}-USDT-SWAP"
            for _ in range(n)
        ],
        "okx candles": [
            f"/api/v5/market/candles?instId={pick()[:-4]}-USDT-SWAP&bar=5m&limit=100"
            for _ in range(n)
        ],
        "bitget ticker": [
            f"/api/v2/mix/market/ticker?symbol={pick()}&productType=USDT-FUTURES" for _ in range(n)
        ],
        "bitget candles": [
            f"/api/v2/mix/market/candles?symbol={pick()}&productType=USDT-FUTURES&granularity=5m"
            f"&limit=100"
            for _ in range(n)
        ],
    }


BULK = {
    "binance premiumIndex (all)": "/fapi/v1/premiumIndex",
    "bybit tickers (all)": "/v5/market/tickers?category=linear",
    "okx open-interest (all)": "/api/v5/public/open-interest?instType=SWAP",
    "bitget tickers (all)": "/api/v2/mix/market/tickers?productType=USDT-FUTURES",
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def time_requests(http: aiohttp.ClientSession, base: str, paths: list[str]) -> list[float]:
    out = []
    for path in paths:
        t = time.perf_counter()
        async with http.get(base + path) as r:
            await r.read()
            if r.status != 200:
                raise RuntimeError(f"{path}: HTTP {r.status}")
        out.append((time.perf_counter() - t) * 1000)
    return out


async def run(base: str, requests: int) -> list[tuple[str, list[float]]]:
    results = []
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/_sim/info") as r:
            symbols = (await r.json())["symbols"]
        print(f"warming up {len(symbols)} symbols per venue ...", flush=True)
        t = time.perf_counter()
        for path in BULK.values():
            async with http.get(base + path) as r:
                await r.read()
        print(f"  first touch of every symbol: {time.perf_counter() - t:.1f} s", flush=True)
        results.append(
            (
                "/_sim/clock (HTTP floor)",
                await time_requests(http, base, ["/_sim/clock"] * requests),
            )
        )
        for name, paths in endpoints(symbols).items():
            results.append((name, await time_requests(http, base, paths[:requests])))
        for name, path in BULK.items():
            results.append((name, await time_requests(http, base, [path] * 20)))
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args(argv)
    exe = Path(sys.executable).parent / "oiradar"
    proc = subprocess.Popen(
        [str(exe), "sim", "--symbols", str(args.symbols), "--limit-scale", "10000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            print(f"simulator did not start: {line!r}")
            return 1
        base = line.removeprefix("listening on ")
        results = asyncio.run(run(base, args.requests))
        rss = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
    print()
    print(f"{'endpoint':34} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    single: list[float] = []
    for name, ms in results:
        print(
            f"{name:34} {len(ms):5d} {pct(ms, 0.5):8.2f} {pct(ms, 0.95):8.2f} {pct(ms, 0.99):8.2f}"
        )
        if "(all)" not in name and "floor" not in name:
            single.extend(ms)
    p50 = statistics.median(single)
    verdict = "PASS" if p50 < TARGET_P50_MS else "MISS"
    print()
    print(
        f"single-symbol requests, all venues: n={len(single)} p50 {p50:.2f} ms "
        f"p99 {pct(single, 0.99):.2f} ms  [target p50 < {TARGET_P50_MS} ms: {verdict}]"
    )
    print(f"simulator RSS after the run: {rss:.0f} MB ({args.symbols} symbols x 4 venues)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
