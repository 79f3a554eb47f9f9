"""By-hand benchmark of the regime engine and the importer (not a test: it prints figures).

Run from the project root, with the bench extra (pandas) installed:

    python bench/engine.py                      # full size: 500 symbols x 365 days of 5m bars
    python bench/engine.py --symbols 20 --days 30   # a quick check

What it measures, all on the same seeded synthetic data (geometric random walks for price
and OI with injected short-covering episodes and a few NaN gaps):

* engine core: `windows.pct_change` of OI and close over the 15m window (3 bars) and
  `regimes.classify` with the fixed 1.5 % / 1.0 % thresholds, over every symbol;
* the full `engine.timeline()` (grid alignment, strong tier, squeeze evidence, report
  windows) on a subset with one 15m window (checked against the core) and with the default
  horizons 15m+30m+1h (their cost against one window: target <= 2x), and the adaptive mode
  on a smaller subset, labelled separately;
* two plain pandas per-symbol baselines of the same rules: the typical row-wise
  `DataFrame.apply` script (on a subset: it is slow) and a vectorized `np.select` one;
  both are checked to agree with the engine bar for bar;
* `services.importer.import_paths` on interchange CSV files of >= 1 million rows.

Only the work named is timed (data generation and frame building are not), single process.
The data and the pandas baselines are in `_enginekit.py` beside this file.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import polars as pl

from _enginekit import (
    OI_PCT,
    PRICE_PCT,
    VENUE,
    WINDOW_BARS,
    Data,
    FloatArray,
    Int8Array,
    frame,
    generate,
    market_series,
    pandas_apply,
    pandas_vectorized,
)
from oiradar.services.importer import import_paths
from oiradar.signals.engine import timeline
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import Regime, classify
from oiradar.signals.windows import pct_change
from oiradar.store import open_store
from oiradar.units import MINUTE_MS

TARGET_SPEEDUP = 20.0
TARGET_HORIZON_COST = 2.0  # default horizons vs one window, full timeline()
SINGLE = EngineParams(windows_ms=(15 * MINUTE_MS,))  # what the core and the baselines compute
TARGET_CORE_ROWS_S = 10e6
TARGET_IMPORT_ROWS_S = 200e3
FULL_ROWS = 50_000_000
FULL_IMPORT_ROWS = 1_000_000


# -- the engine -----------------------------------------------------------------------------


def engine_core(oi: FloatArray, close: FloatArray) -> Int8Array:
    """What the engine does per bar in fixed mode: two window changes and the matrix."""
    return classify(pct_change(oi, WINDOW_BARS), pct_change(close, WINDOW_BARS), OI_PCT, PRICE_PCT)


# -- runs -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figure:
    rows: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else math.inf


def _fail(message: str) -> None:
    print(f"FAILED: {message}", file=sys.stderr)
    raise SystemExit(1)


def _check_same(what: str, got: Int8Array, want: Int8Array) -> None:
    if not np.array_equal(got, want):
        bad = np.flatnonzero(got != want)
        _fail(
            f"{what}: {len(bad)} of {len(want)} bars disagree with the engine, first at bar "
            f"{bad[0]} ({Regime(int(got[bad[0]])).name} vs {Regime(int(want[bad[0]])).name})"
        )


def run_core(data: Data) -> tuple[Figure, list[Int8Array]]:
    t0 = time.perf_counter()
    out = [engine_core(data.oi[i], data.close[i]) for i in range(len(data.symbols))]
    seconds = time.perf_counter() - t0
    return Figure(data.oi.size, seconds), out


def run_timeline(
    data: Data, count: int, params: EngineParams, core: list[Int8Array] | None
) -> Figure:
    """timeline() per symbol; in fixed mode its regimes must equal the core's."""
    series = [market_series(data, i) for i in range(count)]
    seconds, rows = 0.0, 0
    for i, s in enumerate(series):
        t0 = time.perf_counter()
        tl = timeline(s, params)
        seconds += time.perf_counter() - t0
        rows += len(tl.regime)
        if core is not None:
            _check_same(f"timeline() of {s.symbol}", tl.regime, core[i])
    return Figure(rows, seconds)


def run_pandas(
    data: Data, count: int, fn: Callable[[pd.DataFrame], object], core: list[Int8Array]
) -> Figure:
    """fn on each of the first `count` symbols' frames (built untimed), then checked."""
    by_name = {r.name: np.int8(r.value) for r in Regime}
    seconds = 0.0
    for i in range(count):
        df = frame(data, i)
        t0 = time.perf_counter()
        result = fn(df)
        seconds += time.perf_counter() - t0
        if isinstance(result, pd.Series):
            codes = np.array([by_name[name] for name in result.to_numpy()], dtype=np.int8)
        else:
            codes = np.asarray(result, dtype=np.int8)
        _check_same(f"pandas ({fn.__name__}) on {data.symbols[i]}", codes, core[i])
    return Figure(count * data.bars, seconds)


def run_import(data: Data, count: int) -> tuple[Figure, int]:
    """import_paths on candles.csv + open_interest.csv of the first `count` symbols."""
    candles, ois = [], []
    for i in range(count):
        s = market_series(data, i)
        candles.append(
            pl.DataFrame(
                {
                    "ts_ms": s.candle_ts,
                    "venue": VENUE,
                    "symbol": s.symbol,
                    "interval": "5m",
                    "open": s.open,
                    "high": s.high,
                    "low": s.low,
                    "close": s.close,
                    "volume_base": s.volume,
                }
            )
        )
        # The interchange file holds the snapshot instant; keep it on the 5m grid.
        ois.append(
            pl.DataFrame(
                {"ts_ms": s.oi_ts, "venue": VENUE, "symbol": s.symbol, "oi_base": s.oi_base}
            )
        )
    with tempfile.TemporaryDirectory(prefix="oiradar-bench-") as tmp:
        root = Path(tmp)
        files = root / "files"
        files.mkdir()
        pl.concat(candles).write_csv(files / "candles.csv")
        pl.concat(ois).write_csv(files / "open_interest.csv")
        expected = sum(len(c) for c in candles) + sum(len(o) for o in ois)
        with open_store(root / "bench.sqlite") as store:
            t0 = time.perf_counter()
            report = import_paths(store, [files])
            seconds = time.perf_counter() - t0
            stored = sum(n for _, _, _, n, _, _ in store.summary())
        size = sum(p.stat().st_size for p in files.iterdir())
    if report.rejected:
        _fail(f"import rejected files: {report.rejected}")
    read = sum(report.read.values())
    if read != expected or stored != expected:
        _fail(f"import read {read} and stored {stored} rows, expected {expected}")
    return Figure(read, seconds), size


# -- output ---------------------------------------------------------------------------------


def _m(rate: float) -> str:
    return f"{rate / 1e6:,.2f} M rows/s"


def _k(rate: float) -> str:
    return f"{rate / 1e3:,.1f} k rows/s"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _line(label: str, fig: Figure, rate: str) -> str:
    return f"{label:<38} {fig.rows:>12,} rows in {fig.seconds:8.2f} s = {rate}"


def _horizon_lines(full: Figure, multi: Figure, symbols: int) -> None:
    """The one-window timeline and the default horizons', with the horizons' cost."""
    print(_line(f"full timeline() 15m ({symbols} sym):", full, _m(full.rate)))
    cost = full.rate / multi.rate
    verdict = _verdict(cost <= TARGET_HORIZON_COST)
    print(
        _line(f"full timeline() 15m+30m+1h ({symbols} sym):", multi, _m(multi.rate))
        + f"  [{cost:.2f}x the single window; target <= 2x: {verdict}]"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--symbols", type=int, default=500, help="symbols generated (500)")
    ap.add_argument("--days", type=int, default=365, help="days of 5m bars per symbol (365)")
    ap.add_argument("--apply-symbols", type=int, default=5, help="symbols for pandas apply (5)")
    ap.add_argument("--timeline-symbols", type=int, default=50, help="symbols for timeline() (50)")
    ap.add_argument("--adaptive-symbols", type=int, default=5, help="symbols, adaptive mode (5)")
    ap.add_argument("--import-symbols", type=int, default=5, help="symbols in the CSV files (5)")
    args = ap.parse_args(argv)
    if args.symbols < 1 or args.days < 1:
        ap.error("--symbols and --days must be >= 1")
    sub = {
        name: min(max(1, getattr(args, name)), args.symbols)
        for name in ("apply_symbols", "timeline_symbols", "adaptive_symbols", "import_symbols")
    }

    print(f"generating {args.symbols} symbols x {args.days} days of 5m bars (seed 7) ...")
    t0 = time.perf_counter()
    data = generate(args.symbols, args.days)
    print(f"  {data.oi.size:,} bar-rows in {time.perf_counter() - t0:.1f} s (not timed)")

    print("engine core (pct_change + classify), all symbols ...")
    core, regimes = run_core(data)
    counts = np.bincount(np.concatenate(regimes).astype(np.int64) + 1, minlength=len(Regime) + 1)
    mix = ", ".join(
        f"{r.name} {100 * counts[r.value + 1] / data.oi.size:.2f}%"
        for r in Regime
        if counts[r.value + 1]
    )
    print(f"  regime mix: {mix}")

    print(f"full timeline(), one 15m window, {sub['timeline_symbols']} symbols ...")
    full = run_timeline(data, sub["timeline_symbols"], SINGLE, regimes)
    print(f"  regimes equal the core's on all {sub['timeline_symbols']} symbols")
    print(f"full timeline(), default horizons 15m+30m+1h, {sub['timeline_symbols']} symbols ...")
    multi = run_timeline(data, sub["timeline_symbols"], EngineParams(), None)
    print(f"full timeline(), adaptive thresholds, {sub['adaptive_symbols']} symbols ...")
    adaptive = run_timeline(data, sub["adaptive_symbols"], EngineParams(adaptive=True), None)

    print(f"pandas row-wise apply, {sub['apply_symbols']} symbols ...")
    p_apply = run_pandas(data, sub["apply_symbols"], pandas_apply, regimes)
    print(f"  agreement: 100% ({p_apply.rows:,} bars)")
    print(f"pandas vectorized (np.select), {args.symbols} symbols ...")
    p_vec = run_pandas(data, args.symbols, pandas_vectorized, regimes)
    print(f"  agreement: 100% ({p_vec.rows:,} bars)")

    print(f"import of interchange CSV, {sub['import_symbols']} symbols ...")
    imp, size = run_import(data, sub["import_symbols"])
    print(f"  {size / 2**20:,.1f} MiB of CSV, every row read and stored")

    vs_apply = core.rate / p_apply.rate
    vs_vec = core.rate / p_vec.rate
    print()
    print("=" * 100)
    print(f"summary: {args.symbols} symbols x {data.bars:,} bars of 5m, 15m window, single process")
    print(
        _line("engine core (pct_change+classify):", core, _m(core.rate))
        + f"  [target >= 10 M rows/s: {_verdict(core.rate >= TARGET_CORE_ROWS_S)}]"
    )
    _horizon_lines(full, multi, sub["timeline_symbols"])
    print(
        _line(
            f"full timeline() adaptive ({sub['adaptive_symbols']} sym):",
            adaptive,
            _m(adaptive.rate),
        )
    )
    print(_line(f"pandas row-apply ({sub['apply_symbols']} sym):", p_apply, _k(p_apply.rate)))
    print(_line(f"pandas vectorized ({args.symbols} sym):", p_vec, _m(p_vec.rate)))
    print(
        f"speed-up vs pandas apply: {vs_apply:,.0f}x "
        f"[target >= 20x: {_verdict(vs_apply >= TARGET_SPEEDUP)}] ; "
        f"vs pandas vectorized: {vs_vec:,.2f}x ; full timeline() vs pandas apply: "
        f"{full.rate / p_apply.rate:,.0f}x"
    )
    print(
        _line("import (CSV -> SQLite):", imp, _k(imp.rate))
        + f"  [target >= 200 k rows/s: {_verdict(imp.rate >= TARGET_IMPORT_ROWS_S)}]"
    )
    _footer(data.oi.size < FULL_ROWS or imp.rows < FULL_IMPORT_ROWS)
    return 0


def _footer(reduced: bool) -> None:
    print("agreement: 100% (pandas apply, pandas vectorized and timeline() vs engine core)")
    if reduced:
        print(
            f"note: a reduced run; the targets are meant for >= {FULL_ROWS:,} bar-rows and an "
            f"import of >= {FULL_IMPORT_ROWS:,} rows (the defaults)"
        )
    print("=" * 100)


if __name__ == "__main__":
    raise SystemExit(main())
