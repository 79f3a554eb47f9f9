"""What `bench/soak.py` checks once a soak is over: the fits (RSS, store size), the soak's
store against the truth store (bars lost or wrong), duplicate alerts, and the verdict."""

from __future__ import annotations

import argparse
import math
import sqlite3
from collections import Counter
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from _watchkit import BAR_MS
from oiradar.kinds import Kind
from oiradar.services.retention import EVERY_MS as PRUNE_EVERY_MS
from oiradar.store import Store, open_store
from oiradar.units import HOUR_MS, iso, parse_time

TARGET_RSS_MB_PER_H = 1.0
# A bar-close OI snapshot (Binance's close sweep) is rounded to the symbol's quantity step,
# its history row is not: the same OI differs by up to ~2e-5 on a small-unit coin.
OI_REL_TOL = 1e-4
STORE_TOLERANCE = 0.25  # measured growth within 25 % of the predicted
RAW_KINDS = (Kind.OPEN_INTEREST, Kind.LIQUIDATION_ORDERS)  # what `--retain` reduces


@dataclass(frozen=True, slots=True)
class Sample:
    sim_hours: float  # since the daemon reported `running`
    rss_kb: int
    db_bytes: int  # the store's file
    wal_bytes: int  # its write-ahead log
    rows_written: int  # the daemon's own counter


@dataclass
class Soak:
    start_ms: int  # the simulators' --start
    db: Path
    truth_db: Path
    watch_log: Path
    settle_s: float
    running_ms: int | None = None  # simulated time the daemon reported `running`
    stop_ms: int = 0  # simulated time of the SIGTERM
    exit_code: int | None = None
    samples: list[Sample] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    sim_stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class Diff:
    """The soak's store against the truth, over the compared bars."""

    candles: int = 0  # truth candles compared
    oi_bars: int = 0  # truth bars with an OI history row
    lost: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)


def slope(xs: Iterable[float], ys: Iterable[float]) -> float:
    """Least-squares slope (nan with fewer than 3 points)."""
    x, y = np.asarray(list(xs), dtype=float), np.asarray(list(ys), dtype=float)
    if len(x) < 3 or np.ptp(x) == 0:
        return math.nan
    return float(np.polyfit(x, y, 1)[0])


def same(a: Any, b: Any, rel_tol: float = 1e-9) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=1e-12)


def compare(soak: Store, truth: Store, lo_ms: int, hi_ms: int) -> Diff:
    """Every truth 5m candle opening in [lo, hi] and every truth OI row in (lo, hi + bar]
    must be in the soak's store: candles with the same close and volume; OI as a row in the
    same bar, with the same value (to OI_REL_TOL) where the soak has one at the same time."""
    diff = Diff()
    for venue, symbol in truth.symbols():
        stored = {r[0]: r for r in soak.rows(Kind.CANDLES, venue, symbol) if r[3] == "5m"}
        for r in truth.rows(Kind.CANDLES, venue, symbol):
            if r[3] != "5m" or not lo_ms <= r[0] <= hi_ms:
                continue
            diff.candles += 1
            got = stored.get(r[0])
            where = f"{venue} {symbol} candle {iso(r[0])}"
            if got is None:
                diff.lost.append(where)
            elif not (same(got[7], r[7]) and same(got[8], r[8])):
                diff.wrong.append(f"{where}: close/volume {got[7]}/{got[8]} != {r[7]}/{r[8]}")
        oi_rows = [
            r
            for r in truth.rows(Kind.OPEN_INTEREST, venue, symbol)
            if lo_ms < r[0] <= hi_ms + BAR_MS
        ]
        if not oi_rows:
            continue
        ts = soak.timestamps(Kind.OPEN_INTEREST, venue, symbol, lo_ms, hi_ms + BAR_MS)
        buckets = set(((ts - 1) // BAR_MS).tolist())
        exact = {r[0]: r[3] for r in soak.rows(Kind.OPEN_INTEREST, venue, symbol)
                 if lo_ms < r[0] <= hi_ms + BAR_MS}  # fmt: skip
        for r in oi_rows:
            diff.oi_bars += 1
            where = f"{venue} {symbol} OI {iso(r[0])}"
            if (r[0] - 1) // BAR_MS not in buckets:
                diff.lost.append(where)
            elif r[0] in exact and not same(exact[r[0]], r[3], OI_REL_TOL):
                diff.wrong.append(f"{where}: {exact[r[0]]} != {r[3]}")
    return diff


def duplicates(alerts: Iterable[dict[str, Any]]) -> int:
    """Alerts sent more than once: the same (symbol, kind, ts_ms)."""
    keys = Counter((a.get("symbol"), a.get("kind"), a.get("ts_ms")) for a in alerts)
    return sum(n - 1 for n in keys.values() if n > 1)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(args: argparse.Namespace, soak: Soak) -> int:
    """Prints the figures and the verdict; 0 when every target is met."""
    assert soak.running_ms is not None
    steady = [s for s in soak.samples if s.sim_hours >= args.warmup_hours]
    hours = [s.sim_hours for s in steady]
    print(
        f"soak: {args.symbols} symbols x {len(soak.status.get('venues', []))} venues, "
        f"{args.hours:g} simulated h at speed "
        f"{args.speed:g} from {iso(soak.running_ms)}; faults {args.fault_rate:g} of REST, "
        f"WebSocket drops every ~{args.ws_drop_s:g} wall s, duplicates {args.ws_duplicate:g}, "
        f"lost candle closes {args.ws_lose_close:g}; "
        f"{len(soak.samples)} samples, fits over {len(steady)} after {args.warmup_hours:g} h"
    )
    rss_slope = slope(hours, (s.rss_kb / 1024 for s in steady))
    rss = [s.rss_kb / 1024 for s in soak.samples]
    print(
        f"memory: RSS {rss[0]:.0f} MB at running, {max(rss):.0f} MB peak, {rss[-1]:.0f} MB at "
        f"the end; slope after warm-up {rss_slope:+.2f} MB per simulated hour "
        f"(target < {TARGET_RSS_MB_PER_H:g}): {verdict(rss_slope < TARGET_RSS_MB_PER_H)}"
    )
    store_ok = report_store(args, soak, steady)
    with (
        open_store(soak.db, readonly=True) as store,
        open_store(soak.truth_db, readonly=True) as tr,
    ):
        newest = (soak.stop_ms - int(soak.settle_s * 1000)) // BAR_MS * BAR_MS - 2 * BAR_MS
        # Up to the last bar every venue had closed when SIGTERM came: at 60x a close whose
        # REST fills meet faults can take longer than a bar of simulated time, and the bars
        # the daemon had not closed yet are the next start's to fill, not lost.
        closed = [parse_time(str(v["last_bar"])) for v in soak.status.get("venues", [])
                  if v.get("last_bar")]  # fmt: skip
        newest = min([newest, *closed])
        lo = -(-soak.running_ms // BAR_MS) * BAR_MS
        diff = compare(store, tr, lo, newest)
        logged = [a.alert for a in store.alerts()]
    print(
        f"bars: {diff.candles} candles and {diff.oi_bars} OI bars of the truth from "
        f"{iso(lo)} to {iso(newest)}: {len(diff.lost)} lost, {len(diff.wrong)} wrong: "
        f"{verdict(diff.candles > 0 and not diff.lost and not diff.wrong)}"
    )
    for line in (diff.lost + diff.wrong)[:10]:
        print(f"  {line}")
    dup_log, dup_sink = duplicates(logged), duplicates(soak.received)
    print(
        f"alerts: {len(logged)} logged, {len(soak.received)} received at the sink; duplicates "
        f"{dup_log} in the log, {dup_sink} at the sink: {verdict(dup_log == dup_sink == 0)}"
    )
    report_counters(soak)
    ok = (
        rss_slope < TARGET_RSS_MB_PER_H
        and store_ok
        and diff.candles > 0
        and not diff.lost
        and not diff.wrong
        and dup_log == dup_sink == 0
    )
    print(f"soak: {verdict(ok)}")
    return 0 if ok else 1


def report_store(args: argparse.Namespace, soak: Soak, steady: list[Sample]) -> bool:
    """Measured growth of the store's file against the growth its writes predict, and the
    retention horizon: nothing raw older than `--retain` (plus the hour between two prunes)
    before the end but each bar's last OI. The WAL beside it is reported apart: it is
    bounded (`store.sqlite.WAL_LIMIT_BYTES` once a checkpoint empties it), not growth."""
    assert soak.running_ms is not None
    horizon = soak.stop_ms - args.retain_ms - PRUNE_EVERY_MS
    with open_store(soak.db, readonly=True) as store:
        summary = store.summary()
        stale = 0  # OI: snapshots beyond a bar's last; liquidation orders: any
        for kind, venue, symbol, *_ in summary:
            if Kind(kind) in RAW_KINDS:
                ts = store.timestamps(Kind(kind), venue, symbol, 0, horizon - BAR_MS)
                kept = len(np.unique((ts - 1) // BAR_MS)) if kind == Kind.OPEN_INTEREST else 0
                stale += len(ts) - kept
    tables = table_sizes(soak.db)
    rows = sum(r[3] for r in summary)
    retain_h = args.retain_ms / HOUR_MS
    pruned = [s for s in steady if s.sim_hours >= retain_h + 1]
    if len(pruned) >= 3 and horizon - soak.running_ms >= HOUR_MS:
        # A run longer than its retention: once the hourly prune holds the raw rows to the
        # window, only what it keeps of each bar adds to the store, at the rate that bar
        # rows stand before the horizon (OI there is one row a bar), times each table's
        # bytes per row.
        hours = [s.sim_hours for s in pruned]
        measured = slope(hours, (s.db_bytes / 1e6 for s in pruned))
        span_h = (horizon - soak.running_ms) / HOUR_MS
        per_h = {k: n / span_h for k, n in rows_between(soak.db, soak.running_ms, horizon).items()
                if Kind(k) != Kind.LIQUIDATION_ORDERS}  # fmt: skip
        predicted = sum(n * tables[k].per_row for k, n in per_h.items()) / 1e6
        basis = "the bar rows kept an hour past --retain " + ", ".join(
            f"{k} {n:.0f} x {tables[k].per_row:.0f} B" for k, n in sorted(per_h.items()) if n
        )
        growth = "after --retain"
    else:
        hours = [s.sim_hours for s in steady]
        measured = slope(hours, (s.db_bytes / 1e6 for s in steady))
        rows_per_h = slope(hours, (s.rows_written for s in steady))
        per_row = sum(t.bytes for t in tables.values()) / max(1, rows)
        predicted = rows_per_h * per_row / 1e6
        basis = f"{rows_per_h:.0f} rows written an hour x {per_row:.0f} B"
        growth = "after warm-up"
    ok = abs(measured - predicted) <= STORE_TOLERANCE * abs(predicted) and stale == 0
    by_kind: Counter[str] = Counter()
    for kind, *_, n, _first, _last in summary:
        by_kind[kind] += n
    print(
        f"store: {soak.samples[-1].db_bytes / 1e6:.0f} MB, {rows} rows "
        f"({', '.join(f'{k} {n}' for k, n in sorted(by_kind.items()))}); growth {growth} "
        f"{measured:.2f} MB per simulated hour, predicted by {basis}: {predicted:.2f} MB; raw "
        f"rows older than --retain {args.retain} + 1 h at the end: {stale}: {verdict(ok)}"
    )
    wal = [s.wal_bytes / 1e6 for s in soak.samples]
    print(
        f"  WAL beside it: peak {max(wal):.0f} MB, median {np.median(wal):.0f} MB, "
        f"{wal[-1]:.0f} MB at the end"
    )
    raw = sum(tables[k].bytes for k in RAW_KINDS if k in tables) / 1e6
    day = sum(tables[k].bytes for k in tables if Kind(k) not in RAW_KINDS) / 1e6
    day *= 24 / max(1e-9, args.hours + 1)
    note = "" if args.hours > retain_h else " (this run is shorter: nothing was old enough)"
    print(
        f"  with --retain {args.retain} the store settles at ~{raw:.0f} MB of raw rows (those "
        f"of the last {args.retain}) plus ~{day:.0f} MB of bar rows per day{note}"
    )
    return ok


@dataclass(frozen=True, slots=True)
class Table:
    bytes: int  # pages of the table and its indexes
    rows: int

    @property
    def per_row(self) -> float:
        return self.bytes / max(1, self.rows)


def table_sizes(db: Path) -> dict[str, Table]:
    """Each kind's table: its pages (SQLite's `dbstat` where the build has it, else the
    file shared by rows) and its rows."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        counts = {k.value: conn.execute(f"SELECT COUNT(*) FROM {k.value}").fetchone()[0]
                  for k in Kind}  # fmt: skip
        try:
            pages = dict(conn.execute(
                "SELECT s.tbl_name, SUM(d.pgsize) FROM dbstat d JOIN sqlite_master s ON d.name ="
                " s.name GROUP BY s.tbl_name"
            ).fetchall())  # fmt: skip
        except sqlite3.OperationalError:  # built without dbstat: the file by rows
            each = db.stat().st_size / max(1, sum(counts.values()))
            pages = {k: int(n * each) for k, n in counts.items()}
    return {k: Table(int(pages.get(k) or 0), int(n)) for k, n in counts.items()}


def rows_between(db: Path, lo_ms: int, hi_ms: int) -> dict[str, int]:
    """Rows of each kind stamped in [lo, hi)."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return {k.value: conn.execute(
            f"SELECT COUNT(*) FROM {k.value} WHERE ts_ms >= ? AND ts_ms < ?", (lo_ms, hi_ms)
        ).fetchone()[0] for k in Kind}  # fmt: skip


def report_counters(soak: Soak) -> None:
    for v in soak.status.get("venues", []):
        print(
            f"  {v.get('venue'):8} messages {v.get('messages', 0)}, drops "
            f"{v.get('disconnects', 0)}, duplicates dropped {v.get('duplicates', 0)}, REST errors "
            f"{v.get('rest_errors', 0)}, last bar {v.get('last_bar')}"
        )
    for name, v in sorted((soak.sim_stats.get("venues") or {}).items()):
        print(
            f"  simulator {name:8} {v.get('requests', 0)} requests, {v.get('faults', 0)} faults, "
            f"429 {v.get('rejected_429', 0)}, bans {v.get('bans', 0)}"
        )
    print(f"  watch exit code after SIGTERM: {soak.exit_code}")
