"""By-hand benchmark of the store backends (not a test: it prints figures).

Run from the project root (the PostgreSQL side needs the postgres extra, in the test extra):

    python bench/store.py                       # 1.2 M OI rows + 240 k candles, both backends
    python bench/store.py --symbols 20          # a quick check
    python bench/store.py --pg postgresql://me@db:5432/bench   # an existing (empty) database

Without --pg it starts a throwaway PostgreSQL from the machine's binaries (tests/pgkit.py)
with fsync and synchronous commits ON (SQLite's WAL with synchronous=NORMAL on the other
side) and a small server's settings: shared_buffers=512MB, max_wal_size=4GB. The same
seeded rows go to both:

* ingest: every symbol's minute OI snapshots (6 000 each) and 5m candles (1 200 each), in
  write calls of --batch rows (one transaction each, as `import` writes one per file);
  rows/s over the whole load;
* re-ingest of the same rows (nothing changes; the counts must say 0);
* `read_series(venue, symbol, "5m")`: the whole series (1 200 bars, 6 000 snapshots) and
  the last day (288 bars), over every symbol; median and p95 latency.

Only the store calls are timed; the rows are built before the clock starts.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.pgkit starts the throwaway server

from oiradar.kinds import Kind  # noqa: E402
from oiradar.store import Store, open_store  # noqa: E402
from oiradar.units import DAY_MS, MINUTE_MS  # noqa: E402

T0 = 1_750_000_000_000 // DAY_MS * DAY_MS
SNAPSHOTS, BARS = 6_000, 1_200  # per symbol: ~4 days of minute OI, of 5m candles
Rows = list[tuple[Any, ...]]


def market(symbols: int, seed: int = 7) -> tuple[Rows, Rows]:
    """(OI rows, candle rows) in layout order: random walks, one venue."""
    rng = random.Random(seed)
    oi: Rows = []
    candles: Rows = []
    for n in range(symbols):
        sym = f"X{n:04d}USDT"
        level, price = 1e6, 100.0
        for k in range(SNAPSHOTS):
            level *= 1 + rng.gauss(0, 1e-3)
            oi.append((T0 + k * MINUTE_MS + 500, "binance", sym, level, None, level * price))
        for i in range(BARS):
            close = price * (1 + rng.gauss(0, 2e-3))
            hi, lo = max(price, close) * 1.001, min(price, close) * 0.999
            candles.append((T0 + i * 5 * MINUTE_MS, "binance", sym, "5m", price, hi, lo, close,
                            1e3, 1e5, 500.0, 100))  # fmt: skip
            price = close
    return oi, candles


def ingest(store: Store, oi: Rows, candles: Rows, batch: int) -> tuple[float, int]:
    """(seconds, rows changed) writing all rows in calls of `batch` rows."""
    changed = 0
    started = time.perf_counter()
    for kind, rows in ((Kind.OPEN_INTEREST, oi), (Kind.CANDLES, candles)):
        for at in range(0, len(rows), batch):
            changed += sum(store.write([(kind, rows[at : at + batch])]).values())
    return time.perf_counter() - started, changed


def reads(store: Store, symbols: int) -> tuple[list[float], list[float]]:
    """read_series latencies (ms): whole series, last day, per symbol."""
    whole, day = [], []
    last_open = T0 + (BARS - 1) * 5 * MINUTE_MS
    for n in range(symbols):
        sym = f"X{n:04d}USDT"
        t = time.perf_counter()
        s = store.read_series("binance", sym, "5m")
        whole.append((time.perf_counter() - t) * 1e3)
        assert len(s.candle_ts) == BARS and len(s.oi_ts) == SNAPSHOTS, sym
        t = time.perf_counter()
        store.read_series("binance", sym, "5m", last_open - DAY_MS + 5 * MINUTE_MS, last_open)
        day.append((time.perf_counter() - t) * 1e3)
    return whole, day


@contextmanager
def postgres(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    from tests.pgkit import start_server

    server = start_server(durable=True)
    try:
        yield server.new_database()
    finally:
        server.stop()


def on_disk(target: str) -> int:
    """Bytes the store takes: the SQLite file and its WAL, or the PostgreSQL database."""
    if not target.startswith("postgresql://"):
        return sum(p.stat().st_size for p in Path(target).parent.glob(Path(target).name + "*"))
    import psycopg

    with psycopg.connect(target) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def p95(xs: list[float]) -> float:
    return sorted(xs)[int(0.95 * (len(xs) - 1))]


def bench(name: str, target: str, oi: Rows, candles: Rows, args: argparse.Namespace) -> None:
    total = len(oi) + len(candles)
    with open_store(target) as store:
        secs, changed = ingest(store, oi, candles, args.batch)
        assert changed == total, (changed, total)
        again, unchanged = ingest(store, oi, candles, args.batch)
        assert unchanged == 0, unchanged
        whole, day = reads(store, args.symbols)
    size = on_disk(target)
    print(f"{name:<10} ingest {total / secs:>9,.0f} rows/s ({total:,} rows, {secs:.1f} s)  "
          f"re-ingest {total / again:>9,.0f} rows/s  "
          f"read_series whole {statistics.median(whole):.1f} ms (p95 {p95(whole):.1f})  "
          f"last day {statistics.median(day):.2f} ms (p95 {p95(day):.2f})  "
          f"on disk {size / 2**20:,.0f} MiB ({size / total:.0f} B/row)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=200)
    ap.add_argument("--batch", type=int, default=50_000, help="rows per write call")
    ap.add_argument("--pg", help="an empty PostgreSQL database (default: start one)")
    args = ap.parse_args()
    oi, candles = market(args.symbols)
    print(f"{len(oi):,} OI rows + {len(candles):,} candles, {args.symbols} symbols, "
          f"batches of {args.batch:,} rows")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        bench("sqlite", str(Path(tmp) / "bench.sqlite"), oi, candles, args)
    with postgres(args.pg) as url:
        bench("postgresql", url, oi, candles, args)


if __name__ == "__main__":
    main()
