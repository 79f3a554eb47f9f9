"""A second store backend, in memory, used only by the tests: the proof that a backend is one
module plus one line in `store.backends.BACKENDS` (`memory://NAME`). It shares nothing with the
SQLite backend but `store.series` (how read columns become a `MarketSeries`) and passes the
same contract suite (tests/test_store_contract.py).

Handles opened on the same NAME share one dataset for the life of the process, as two
connections share a file; each write is applied whole or not at all.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from oiradar.errors import NoDataError, StoreError
from oiradar.kinds import LAYOUTS, Kind, Layout
from oiradar.records import Candle, MarketSeries
from oiradar.store.base import Heartbeat, LoggedAlert, RowWrites, Span, WatchState
from oiradar.store.schema import SCHEMA_VERSION
from oiradar.store.series import (
    UNBOUNDED,
    Columns,
    assemble,
    premium_sizes,
    week_offset,
)
from oiradar.units import interval_ms, interval_name
from tests.memstore_state import DaemonState

K = TypeVar("K")
Row = tuple[Any, ...]
_CAST = {"int": int, "float": float, "str": str}


@dataclass
class _Data:
    tables: dict[Kind, dict[Row, Row]] = field(default_factory=lambda: {k: {} for k in Kind})
    coverage: dict[tuple[str, str, int], int] = field(default_factory=dict)
    version: int = 0
    state: WatchState | None = None
    alerts: list[LoggedAlert] = field(default_factory=list)
    workers: dict[str, Heartbeat] = field(default_factory=dict)
    beats: int = 0
    leases: dict[str, tuple[str, int]] = field(default_factory=dict)
    listings: dict[tuple[str, str], int] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)


_DATASETS: dict[str, _Data] = {}


def open_memory(url: str, readonly: bool) -> MemoryStore:
    """The `BACKENDS` opener of memory://NAME."""
    name = url.partition("://")[2]
    if name not in _DATASETS:
        if readonly:
            raise NoDataError(f"no store at {url}: import data first (oiradar import PATH)")
        _DATASETS[name] = _Data()
    return MemoryStore(url, _DATASETS[name], readonly)


def _cell(layout: Layout, name: str, value: Any) -> Any:
    """A value as the column's type stores it; NaN is empty (as SQLite stores it)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    dtype = next(c.dtype for c in layout.columns if c.name == name)
    return _CAST[dtype](value)


class MemoryStore(DaemonState, RowWrites):
    def __init__(self, url: str, data: _Data, readonly: bool) -> None:
        self.location, self._data, self._readonly = url, data, readonly
        self._closed = False

    schema_version = SCHEMA_VERSION

    def close(self) -> None:
        self._closed = True

    def _writable(self) -> _Data:
        if self._closed or self._readonly:
            why = "closed" if self._closed else "read-only"
            raise StoreError(f"write to {self.location} failed: the store is {why}")
        return self._data

    # -- writing ---------------------------------------------------------------------------

    def write_grouped(
        self,
        batches: Sequence[tuple[K, Kind, Sequence[Sequence[Any]]]],
        *,
        coverage: Iterable[Span] = (),
    ) -> dict[K, int]:
        data = self._writable()
        with data.lock:
            tables = copy.copy(data.tables)  # applied at the end: all or nothing
            changed: dict[K, int] = {}
            for group, kind, rows in batches:
                table = tables[kind] = dict(tables[kind])
                n = sum(self._upsert(LAYOUTS[kind], table, row) for row in rows)
                changed[group] = changed.get(group, 0) + n
            spans = list(coverage)
            for venue, symbol, start, end in spans:
                key = (venue, symbol, start)
                data.coverage[key] = max(end, data.coverage.get(key, end))
            data.tables = tables
            if any(changed.values()) or spans:
                data.version += 1
                data.changed.notify_all()
        return changed

    def _upsert(self, layout: Layout, table: dict[Row, Row], raw: Sequence[Any]) -> int:
        row = tuple(_cell(layout, n, v) for n, v in zip(layout.names, raw, strict=True))
        for name, value in zip(layout.names, row, strict=True):
            if value is None and name in layout.required:
                raise StoreError(f"write to {self.location} failed: {name} is required")
        key = tuple(row[layout.names.index(k)] for k in layout.key)
        old = table.get(key)
        if old is not None and layout.merge:
            row = tuple(o if n is None else n for o, n in zip(old, row, strict=True))
        if old == row:
            return 0
        table[key] = row
        return 1

    def version(self) -> int:
        return self._data.version

    def prune(self, before_ms: int, bar_ms: int) -> dict[Kind, int]:
        data = self._writable()
        cutoff = before_ms // bar_ms * bar_ms
        with data.lock:
            oi = data.tables[Kind.OPEN_INTEREST]
            old = {k: r for k, r in oi.items() if r[0] <= cutoff}
            last: dict[tuple[str, str, int], int] = {}
            for r in old.values():
                bucket = (r[1], r[2], (r[0] - 1) // bar_ms)
                last[bucket] = max(r[0], last.get(bucket, r[0]))
            gone = [k for k, r in old.items() if r[0] != last[(r[1], r[2], (r[0] - 1) // bar_ms)]]
            for k in gone:
                del oi[k]
            orders = data.tables[Kind.LIQUIDATION_ORDERS]
            spans = [(v, s, lo, hi) for (v, s, lo), hi in data.coverage.items()]
            rolled = [k for k, r in orders.items()
                      if r[0] < cutoff and any(sp[:2] == r[1:3] for sp in spans)]  # fmt: skip
            sums: dict[tuple[str, str, int], list[float]] = {}
            for k in rolled:
                ts, venue, symbol, side, qty, _, usd = orders.pop(k)
                bar_ts = ts - ts % bar_ms
                if not any(sp[:2] == (venue, symbol) and sp[2] <= bar_ts and
                           sp[3] >= bar_ts + bar_ms for sp in spans):  # fmt: skip
                    continue  # an uncovered bar reads as unknown: nothing to keep
                acc = sums.setdefault((venue, symbol, bar_ts), [0.0] * 4)
                at = 0 if side == "LONG" else 1
                acc[at] += qty
                acc[at + 2] += usd
            self._add_totals(sums, interval_name(bar_ms))
            if gone or rolled:
                data.version += 1
                data.changed.notify_all()
        return {Kind.OPEN_INTEREST: len(gone), Kind.LIQUIDATION_ORDERS: len(rolled)}

    def _add_totals(self, sums: dict[tuple[str, str, int], list[float]], name: str) -> None:
        """Per-bar sums added to the totals stored at their bars (USD as read: base x close)."""
        liqs, candles = self._data.tables[Kind.LIQUIDATIONS], self._data.tables[Kind.CANDLES]
        for (venue, symbol, ts), add in sums.items():
            lb, sb, lu, su = add
            key = (venue, symbol, name, ts)
            old = liqs.get(key)
            if old is not None:
                bar = candles.get((venue, symbol, name, ts))
                close = bar[7] if bar is not None else None

                def usd(given: float | None, base: float, c: float | None = close) -> float:
                    return given if given is not None else base * c if c is not None else 0.0

                lb, sb = lb + old[4], sb + old[5]
                lu, su = lu + usd(old[6], old[4]), su + usd(old[7], old[5])
            liqs[key] = (ts, venue, symbol, name, lb, sb, lu, su)

    # -- reading ---------------------------------------------------------------------------

    def _series(self, kind: Kind, venue: str | None, symbol: str | None) -> list[dict[str, Any]]:
        """A kind's rows of a series as dicts, in key order."""
        names = LAYOUTS[kind].names
        with self._data.lock:
            table = self._data.tables[kind]
            rows = [table[k] for k in sorted(table, key=_sort_key)]
        out = [dict(zip(names, r, strict=True)) for r in rows]
        return [
            r
            for r in out
            if (venue is None or r["venue"] == venue) and (symbol is None or r["symbol"] == symbol)
        ]

    def symbols(self) -> list[tuple[str, str]]:
        pairs = {(r["venue"], r["symbol"]) for k in (Kind.CANDLES, Kind.OPEN_INTEREST)
                 for r in self._series(k, None, None)}  # fmt: skip
        return sorted(pairs)

    def summary(self) -> list[tuple[str, str, str, int, int, int]]:
        out = []
        for kind in Kind:
            groups: dict[tuple[str, str], list[int]] = {}
            for r in self._series(kind, None, None):
                groups.setdefault((r["venue"], r["symbol"]), []).append(r["ts_ms"])
            for (v, s), ts in sorted(groups.items()):
                out.append((kind.value, v, s, len(ts), min(ts), max(ts)))
        return out

    def candle_intervals(self) -> list[tuple[str, str, str, int, int, int]]:
        groups: dict[tuple[str, str, str], list[int]] = {}
        for r in self._series(Kind.CANDLES, None, None):
            groups.setdefault((r["venue"], r["symbol"], r["interval"]), []).append(r["ts_ms"])
        return [(v, s, i, len(t), min(t), max(t)) for (v, s, i), t in sorted(groups.items())]

    def intervals(self, venue: str, symbol: str) -> list[str]:
        return sorted({r["interval"] for r in self._series(Kind.CANDLES, venue, symbol)})

    def venues_for(self, symbol: str) -> list[str]:
        return sorted({r["venue"] for r in self._series(Kind.CANDLES, None, symbol)})

    def _bars(self, venue: str, symbol: str, interval: str, lo: int, hi: int) -> list[Row]:
        return [
            tuple(r.values())
            for r in self._series(Kind.CANDLES, venue, symbol)
            if r["interval"] == interval and lo <= r["ts_ms"] <= hi
        ]

    def candle_span(
        self,
        venue: str,
        symbol: str,
        interval: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> tuple[int, int] | None:
        lo, hi = _bounds(start_ms, end_ms)
        ts = [r[0] for r in self._bars(venue, symbol, interval, lo, hi)]
        return (min(ts), max(ts)) if ts else None

    def candle_at(self, venue: str, symbol: str, interval: str, ts_ms: int) -> Candle | None:
        found = self._bars(venue, symbol, interval, ts_ms, ts_ms)
        return Candle(venue, symbol, interval_ms(interval), ts_ms, *found[0][4:]) if found else None

    def last_ts(
        self, kind: Kind, venue: str, symbol: str, start_ms: int | None, end_ms: int | None
    ) -> int | None:
        lo, hi = _bounds(start_ms, end_ms)
        ts = [r["ts_ms"] for r in self._series(kind, venue, symbol) if lo <= r["ts_ms"] <= hi]
        return max(ts, default=None)

    def latest_candles(self, interval: str) -> list[tuple[str, str, int]]:
        newest: dict[tuple[str, str], int] = {}
        for r in self._series(Kind.CANDLES, None, None):
            if r["interval"] == interval:
                key = (r["venue"], r["symbol"])
                newest[key] = max(r["ts_ms"], newest.get(key, r["ts_ms"]))
        return [(v, s, t) for (v, s), t in sorted(newest.items())]

    def timestamps(
        self, kind: Kind, venue: str, symbol: str, start_ms: int, end_ms: int
    ) -> NDArray[np.int64]:
        ts = {r["ts_ms"] for r in self._series(kind, venue, symbol)}
        return np.array(sorted(t for t in ts if start_ms <= t <= end_ms), dtype=np.int64)

    def rows(
        self, kind: Kind, venue: str | None = None, symbol: str | None = None
    ) -> Iterator[Row]:
        for r in self._series(kind, venue, symbol):
            yield tuple(r.values())

    def read_series(
        self,
        venue: str,
        symbol: str,
        interval: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> MarketSeries:
        lo, hi = _bounds(start_ms, end_ms)
        bar = interval_ms(interval)
        close_hi = hi + bar if hi < UNBOUNDED else hi  # the last bar's close
        bars = self._bars(venue, symbol, interval, lo, hi)
        candles = _array(([r[0], *r[4:9], r[10]] for r in bars), 7)
        oi = _array(
            (
                (r["ts_ms"], r["oi_base"])
                for r in self._series(Kind.OPEN_INTEREST, venue, symbol)
                if lo <= r["ts_ms"] <= close_hi
            ),
            2,
        )
        funding = self._series(Kind.FUNDING, venue, symbol)
        since = max((r["ts_ms"] for r in funding if r["ts_ms"] < lo), default=lo)
        rates = _array(
            ((r["ts_ms"], r["funding_rate"], r["interval_h"] or 8.0)
             for r in funding if since <= r["ts_ms"] <= hi),
            3,
        )  # fmt: skip
        spans = np.array(
            sorted(
                (start, end)
                for (v, s, start), end in self._data.coverage.items()
                if (v, s) == (venue, symbol) and start <= close_hi and end >= lo
            ),
            dtype=np.int64,
        ).reshape(-1, 2)
        tracked = any((v, s) == (venue, symbol) for v, s, _ in self._data.coverage)
        pos = _array(
            ([r["ts_ms"], *list(r.values())[3:]]
             for r in self._series(Kind.POSITIONING, venue, symbol)
             if lo <= r["ts_ms"] <= close_hi),
            5,
        )  # fmt: skip
        liq_bars, orders = self._liquidations(venue, symbol, interval, lo, hi)
        premium = self._premium(venue, symbol, bar, lo, hi)
        cols = Columns(candles, oi, rates, liq_bars, orders, spans, tracked, pos, premium)
        return assemble(venue, symbol, bar, cols)

    def _liquidations(
        self, venue: str, symbol: str, interval: str, lo: int, hi: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        bar = interval_ms(interval)
        closes = {r[0]: r[7] for r in self._bars(venue, symbol, interval, -UNBOUNDED, UNBOUNDED)}

        def usd(given: float | None, base: float, ts: int) -> float:
            close = closes.get(ts - ts % bar)
            return given if given is not None else base * close if close is not None else np.nan

        totals = sorted(
            (r["ts_ms"], usd(r["long_liq_usd"], r["long_liq_base"], r["ts_ms"]),
             usd(r["short_liq_usd"], r["short_liq_base"], r["ts_ms"]))
            for r in self._series(Kind.LIQUIDATIONS, venue, symbol)
            if bar % interval_ms(r["interval"]) == 0 and lo <= r["ts_ms"] <= hi
        )  # fmt: skip
        end = hi + bar if hi < UNBOUNDED else hi
        orders = [
            (r["ts_ms"], r["usd"] if r["position_side"] == "LONG" else 0.0,
             r["usd"] if r["position_side"] == "SHORT" else 0.0)
            for r in self._series(Kind.LIQUIDATION_ORDERS, venue, symbol)
            if lo <= r["ts_ms"] < end
        ]  # fmt: skip
        return _array(totals, 3), _array(orders, 3)

    def _premium(self, venue: str, symbol: str, bar: int, lo: int, hi: int) -> NDArray[np.float64]:
        rows = self._series(Kind.PREMIUM_INDEX, venue, symbol)
        offset = week_offset(bar)
        for size in premium_sizes(bar):
            name = interval_name(size)
            sized = [r for r in rows if r["interval"] == name and lo <= r["ts_ms"] < hi + bar]
            if sized:
                return _array(
                    ((r["ts_ms"], r["close"]) for r in sized
                     if r["ts_ms"] - (r["ts_ms"] - offset) % bar <= hi),
                    2,
                )  # fmt: skip
        return np.empty((0, 2))


def _bounds(start_ms: int | None, end_ms: int | None) -> tuple[int, int]:
    return (
        -UNBOUNDED if start_ms is None else start_ms,
        UNBOUNDED if end_ms is None else end_ms,
    )


def _sort_key(key: Row) -> tuple[Any, ...]:
    return tuple((0, "") if v is None else (1, v) for v in key)


def _array(rows: Iterable[Sequence[Any]], ncols: int) -> NDArray[np.float64]:
    """Rows as an (n, ncols) float array, None as NaN."""
    flat = [np.nan if v is None else float(v) for r in rows for v in r]
    return np.array(flat, dtype=np.float64).reshape(-1, ncols)
