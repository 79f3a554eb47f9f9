"""By-hand benchmark of `oiradar scan` against `oiradar sim` (issue 4 targets).

1. Binance, 300 symbols, 50 ms latency, real rate limits: the plain sequential scanner of the
   blog post (per symbol: GET openInterestHist period 5m limit 10, then GET klines 5m limit 10,
   with `requests`) versus `oiradar scan --all --venues binance` on a cold store.
   Target: >= 10x faster, zero 429/418.
2. The venues (--venues; default all seven), cold store: `oiradar scan --all` versus the
   floor set by the venues' rate limits for the calls a cold scan needs (derived below and
   printed). Target: <= 1.25x for four venues, <= 1.2x for seven (issue #16); 0 x 429.

    python bench/scan.py                 # 300 symbols, seven venues
    python bench/scan.py --symbols 50    # a quick check
    python bench/scan.py --venues binance,bybit,okx,bitget --skip-blog
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

EXE = Path(sys.executable).parent / "oiradar"
LATENCY_MS = 50.0


def start_sim(symbols: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [str(EXE), "sim", "--symbols", str(symbols), "--latency-ms", str(LATENCY_MS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


def blog_scanner(base: str, symbols: list[str]) -> dict[str, str]:
    """What the blog post does: two sequential requests per symbol, no session, no limiter."""
    out = {}
    for sym in symbols:
        oi = requests.get(
            f"{base}/futures/data/openInterestHist",
            params={"symbol": sym, "period": "5m", "limit": "10"},
            timeout=30,
        ).json()
        kl = requests.get(
            f"{base}/fapi/v1/klines",
            params={"symbol": sym, "interval": "5m", "limit": "10"},
            timeout=30,
        ).json()
        oi_chg = (float(oi[-1]["sumOpenInterest"]) / float(oi[0]["sumOpenInterest"]) - 1) * 100
        px_chg = (float(kl[-1][4]) / float(kl[0][4]) - 1) * 100
        if oi_chg > 1.5 and px_chg > 1:
            out[sym] = "NEW_LONGS"
        elif oi_chg < -1.5 and px_chg > 1:
            out[sym] = "SHORT_COVERING"
        elif oi_chg < -1.5 and px_chg < -1:
            out[sym] = "LONG_LIQUIDATION"
        else:
            out[sym] = "NONE"
    return out


def oiradar_scan(base: str, venues: str, db: Path) -> tuple[float, list[dict[str, Any]], int]:
    env = {**os.environ, "OIRADAR_ENDPOINT": base, "OIRADAR_DB": str(db)}
    t = time.perf_counter()
    proc = subprocess.run(
        [str(EXE), "scan", "--all", "--venues", venues, "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    seconds = time.perf_counter() - t
    if proc.returncode not in (0, 5):
        raise SystemExit(f"scan failed ({proc.returncode}): {proc.stderr.strip()}")
    return seconds, json.loads(proc.stdout), proc.returncode


def stats(base: str) -> dict[str, Any]:
    data: dict[str, Any] = requests.get(f"{base}/_sim/stats", timeout=10).json()["venues"]
    return data


def reset(base: str) -> None:
    requests.post(f"{base}/_sim/stats/reset", timeout=10)


def window_floor(calls: int, limit: int, period_s: float) -> float:
    """Seconds before the last of `calls` may start under "at most `limit` per `period_s`"."""
    return max(0, math.ceil(calls / limit) - 1) * period_s


def hyperliquid_weight(n: int) -> int:
    """Weight of a cold Hyperliquid scan: `metaAndAssetCtxs` twice (instruments, snapshot),
    then one `candleSnapshot` per symbol of the lookback's 15 five-minute bars: 20 each plus
    one per 60 candles (exchange-apis.md §9.1, §11.2)."""
    return 2 * 20 + n * (20 + 1)


def floors(n: int, bybit_requests: int) -> dict[str, tuple[float, str]]:
    """The binding rate limit per venue for a cold scan of n symbols (per-symbol klines and
    OI history; bulk snapshots), from exchange-apis.md §1.3, §2.4, §3.4, §4.3, §10.5, §11.4,
    §13.4."""
    rtt = 3 * LATENCY_MS / 1000  # instruments -> snapshot -> history are sequential
    weight = hyperliquid_weight(n)
    return {
        "binance": (
            rtt + window_floor(n, 1000, 300),
            f"{n} openInterestHist of 1000 / 5 min and ~{3 * n} weight of 2400 / min: not binding",
        ),
        "bybit": (
            rtt + window_floor(bybit_requests, 600, 5),
            f"{bybit_requests} requests of 600 / 5 s",
        ),
        "okx": (rtt + window_floor(n, 40, 2), f"{n} candles of 40 / 2 s per IP"),
        "bitget": (rtt + window_floor(n, 20, 1), f"{n} candles of 20 / s per endpoint"),
        "gate": (
            rtt + window_floor(n, 200, 10),
            f"{n} candlesticks and {n} contract_stats, each 200 / 10 s per endpoint",
        ),
        "hyperliquid": (rtt + window_floor(weight, 1200, 60), f"{weight} weight of 1200 / min"),
        "dydx": (rtt + window_floor(2 * n, 1000, 10), f"{2 * n} candles of 1000 / 10 s"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--symbols", type=int, default=300)
    ap.add_argument(
        "--venues",
        default="binance,bybit,okx,bitget,gate,hyperliquid,dydx",
        help="venues of the cold multi-venue scan (default: all seven)",
    )
    ap.add_argument(
        "--skip-blog", action="store_true", help="skip part 1 (the blog-post comparison)"
    )
    args = ap.parse_args(argv)
    venues = [v.strip() for v in args.venues.split(",") if v.strip()]
    blog_s = scan_s = math.nan
    b: dict[str, Any] = {"rejected_429": 0, "bans": 0}
    proc, base = start_sim(args.symbols)
    tmp = Path(tempfile.mkdtemp(prefix="oiradar-bench-"))
    try:
        symbols = requests.get(f"{base}/_sim/info", timeout=30).json()["symbols"]
        requests.get(f"{base}/fapi/v1/premiumIndex", timeout=60)  # build the market once
        print(
            f"simulator: {len(symbols)} symbols per venue, {LATENCY_MS:.0f} ms latency, real "
            "rate limits",
            flush=True,
        )

        if not args.skip_blog:
            blog_s, scan_s, b = part_one(base, symbols, tmp)

        reset(base)
        all_s, all_rows, code = oiradar_scan(base, ",".join(venues), tmp / "all.sqlite")
        st = stats(base)
        fl = floors(len(symbols), st.get("bybit", {}).get("requests", 0))
        fl = {v: fl[v] for v in venues}
        floor = max(f for f, _ in fl.values())
        bad = sum(st.get(v, {}).get("rejected_429", 0) + st.get(v, {}).get("bans", 0)
                  for v in venues)  # fmt: skip
        print(
            f"oiradar scan --all --venues {','.join(venues)} (cold): {all_s:.2f} s, exit {code}, "
            f"{sum(1 for r in all_rows if r['venue'] != 'all')} venue rows, "
            f"{sum(1 for r in all_rows if r['venue'] == 'all')} cross-venue rows"
        )
        for venue, (secs, why) in fl.items():
            v = st.get(venue, {})
            print(
                f"  {venue:11} floor {secs:6.2f} s  ({why}); requests {v.get('requests', 0)}, "
                f"429s {v.get('rejected_429', 0)}, bans {v.get('bans', 0)}"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()

    ratio = all_s / floor
    target = 1.25 if len(venues) <= 4 else 1.2
    limited = bad + b["rejected_429"] + b["bans"]
    print()
    print("=" * 90)
    if not args.skip_blog:
        speedup = blog_s / scan_s
        print(
            f"binance: blog-post scanner {blog_s:.1f} s vs oiradar scan {scan_s:.2f} s = "
            f"{speedup:.1f}x  [target >= 10x: {'PASS' if speedup >= 10 else 'MISS'}]"
        )
    print(f"429/418 during the scans: {limited}  [target 0: {'PASS' if limited == 0 else 'MISS'}]")
    print(
        f"{len(venues)} venues cold: {all_s:.2f} s vs floor {floor:.2f} s = {ratio:.2f}x  "
        f"[target <= {target:g}x: {'PASS' if ratio <= target else 'MISS'}]"
    )
    print("=" * 90)
    return 0


def part_one(base: str, symbols: list[str], tmp: Path) -> tuple[float, float, dict[str, Any]]:
    """The blog-post scanner vs `oiradar scan --venues binance`, both cold: (their seconds,
    oiradar's Binance counters)."""
    reset(base)
    t = time.perf_counter()
    blog = blog_scanner(base, symbols)
    blog_s = time.perf_counter() - t
    blog_stats = stats(base)["binance"]
    print(
        f"blog-post scanner (Binance): {blog_s:.1f} s, {blog_stats['requests']} requests",
        flush=True,
    )
    reset(base)
    scan_s, rows, _ = oiradar_scan(base, "binance", tmp / "binance.sqlite")
    b: dict[str, Any] = stats(base)["binance"]
    print(
        f"oiradar scan --all --venues binance (cold): {scan_s:.2f} s, {b['requests']} "
        f"requests, 429s {b['rejected_429']}, 418s {b['bans']}",
        flush=True,
    )
    ref = {r["symbol"]: r["regime"] for r in rows if r["venue"] == "binance"}
    print(f"  markets classified: {len(ref)} of {len(blog)}")
    return blog_s, scan_s, b


if __name__ == "__main__":
    raise SystemExit(main())
