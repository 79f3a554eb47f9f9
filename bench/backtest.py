"""By-hand benchmark of `oiradar backtest` (issue 6 targets).

1 year x 100 symbols of generated 5-minute data (candles and OI, with bursts of covering,
squeezes and sell-offs so every regime occurs) in a fresh store, then:

1. the event study over all of it, as `oiradar backtest` runs it (load + engine + study).
   Target: under 60 s on this machine.
2. the sweep of 16 threshold pairs (oi = 1, 1.5, 2, 3 x price = 0.5, 1, 1.5, 2).
   Target: under 3 minutes.

    python bench/backtest.py                    # 100 symbols x 365 days
    python bench/backtest.py --symbols 10 --days 60   # a quick check
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from oiradar.kinds import Kind
from oiradar.research import backtest as research
from oiradar.research.request import BacktestRequest
from oiradar.services import backtest as bt
from oiradar.store import Store, open_store
from oiradar.units import DAY_MS

BAR = 300_000
START = 1_704_067_200_000  # 2024-01-01T00:00Z


def generate(store: Store, symbols: int, days: int, seed: int = 11) -> int:
    """Random-walk prices and OI with occasional regime bursts; returns rows written."""
    n = days * DAY_MS // BAR
    ts = START + BAR * np.arange(n, dtype=np.int64)
    rows = 0
    for k in range(symbols):
        rng = np.random.default_rng([seed, k])
        burst = rng.random(n) < 0.004
        kind = rng.integers(0, 3, n)  # 0 covering, 1 new longs, 2 long liquidation
        px_drift = np.where(burst, np.choose(kind, [0.006, 0.006, -0.006]), 0.0)
        oi_drift = np.where(burst, np.choose(kind, [-0.008, 0.008, -0.008]), 0.0)
        # A burst lasts three bars.
        px_drift = np.convolve(px_drift, np.ones(3))[:n]
        oi_drift = np.convolve(oi_drift, np.ones(3))[:n]
        close = 50 * np.exp(np.cumsum(rng.normal(0, 0.0025, n) + px_drift))
        oi = 1e6 * np.exp(np.cumsum(rng.normal(0, 0.002, n) + oi_drift))
        spread = close * rng.uniform(0.0005, 0.004, n)
        high, low = close + spread, close - spread
        opn = np.r_[close[0], close[:-1]]
        vol = rng.lognormal(8, 0.6, n)
        sym = f"S{k:03d}USDT"
        candles = [
            (int(t), "binance", sym, "5m", float(o), float(h), float(lo), float(c), float(v),
             None, None, None)
            for t, o, h, lo, c, v in zip(ts, opn, high, low, close, vol, strict=True)
        ]  # fmt: skip
        ois = [
            (int(t) + BAR, "binance", sym, float(x), None, None)
            for t, x in zip(ts, oi, strict=True)
        ]
        store.write([(Kind.CANDLES, candles), (Kind.OPEN_INTEREST, ois)])
        rows += len(candles) + len(ois)
        print(f"\r  generated {k + 1}/{symbols} symbols", end="", flush=True)
    print()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--db", type=Path, help="Reuse (or keep) the generated store here.")
    args = ap.parse_args()
    db = args.db or Path(tempfile.mkdtemp(prefix="oiradar-bench-")) / "bt.sqlite"
    fresh = not db.exists()
    with open_store(db) as store:
        if fresh:
            t = time.perf_counter()
            rows = generate(store, args.symbols, args.days)
            print(f"store: {rows:,} rows in {time.perf_counter() - t:.1f} s ({db})")
        req = BacktestRequest()

        t = time.perf_counter()
        samples = bt.load_samples(store, req)
        loaded = time.perf_counter() - t
        result = research.run(samples, req)
        total = time.perf_counter() - t
        bars = sum(len(s.grid.ts) for s in samples)
        print(
            f"event study: {len(samples)} symbols, {bars:,} bars, {len(result.events):,} events "
            f"in {total:.1f} s (load {loaded:.1f} s, engine + study {total - loaded:.1f} s)"
        )
        print(f"  target < 60 s: {'PASS' if total < 60 else 'FAIL'}")

        t = time.perf_counter()
        oi_values, px_values = [1.0, 1.5, 2.0, 3.0], [0.5, 1.0, 1.5, 2.0]
        rows_, _ = research.sweep(samples, req, oi_values, px_values)
        swept = time.perf_counter() - t
        print(
            f"sweep: {len(rows_)} threshold pairs in {swept:.1f} s on the loaded data "
            f"(+ {loaded:.1f} s load = {swept + loaded:.1f} s)"
        )
        print(f"  target < 180 s: {'PASS' if swept + loaded < 180 else 'FAIL'}")
        best = rows_[0]
        print(
            f"  best pair oi={best['oi_threshold']:g} price={best['price_threshold']:g}: "
            f"{best['events']} events, mean +1h {best.get('mean_1h')} % "
            f"(p {best.get('p_value')}; ranked among {len(rows_)}: see the warning in the CLI)"
        )


if __name__ == "__main__":
    main()
