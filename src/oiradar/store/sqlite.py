"""SQLite store in WAL mode: idempotent upserts, one transaction per batch, columnar reads.

WAL lets `analyze` read while `import` (or later the daemon) writes. Every write call is
one transaction, so a killed writer loses at most the batch in flight and never leaves a
half-written one behind.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import platformdirs
from numpy.typing import NDArray

from oiradar.errors import NoDataError, StoreError
from oiradar.kinds import LAYOUTS, Kind
from oiradar.records import Candle, Instrument, MarketSeries
from oiradar.store.rows import Record, record_row, upsert_sql
from oiradar.store.schema import MIGRATIONS, SCHEMA_VERSION
from oiradar.units import DAY_MS, interval_ms, interval_name

ENV_DB = "OIRADAR_DB"
BUSY_TIMEOUT_MS = 30_000
_K = TypeVar("_K")
# Premium bar sizes read_series looks for (every interval the venues' premium klines have).
PREMIUM_SIZES = tuple(
    interval_ms(n)
    for n in ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w")
)
Span = tuple[str, str, int, int]
"""(venue, symbol, start_ms, end_ms) of a span during which a live liquidation feed was up."""
# The daemon re-sends its open span with a later end every flush: keep the longest end.
_COVERAGE_UPSERT = (
    "INSERT INTO liquidation_coverage (venue, symbol, start_ms, end_ms) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (venue, symbol, start_ms) DO UPDATE SET end_ms = MAX(end_ms, excluded.end_ms)"
)


def default_db_path() -> Path:
    """`$OIRADAR_DB`, else `oiradar.sqlite` in the platform's user-data directory."""
    env = os.environ.get(ENV_DB)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("oiradar", appauthor=False)) / "oiradar.sqlite"


class Store:
    """The embedded store. Open with `Store(path)`; use as a context manager to close."""

    def __init__(self, path: Path | str | None = None, *, readonly: bool = False) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.readonly = readonly
        if readonly and not self.path.exists():
            raise NoDataError(f"no store at {self.path}: import data first (oiradar import PATH)")
        try:
            if not readonly:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            uri = f"file:{self.path}{'?mode=ro' if readonly else ''}"
            self._conn = sqlite3.connect(
                uri,
                uri=True,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not readonly:
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from None
        self._upserts = {k: upsert_sql(k) for k in Kind}

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path} has schema v{current}, newer than this oiradar "
                f"(v{SCHEMA_VERSION});"
                " upgrade oiradar"
            )
        if current == SCHEMA_VERSION:
            return
        if self.readonly:
            raise StoreError(f"store {self.path} needs a migration; run any writing command first")
        with self._transaction():
            for version in range(current, SCHEMA_VERSION):
                for stmt in MIGRATIONS[version]:
                    self._conn.execute(stmt)
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- writing ---------------------------------------------------------------------------

    def write(self, batches: Iterable[tuple[Kind, Sequence[Sequence[Any]]]]) -> dict[Kind, int]:
        """Upsert rows (tuples in the kind's layout order) in ONE transaction.

        Returns rows inserted or changed per kind; unchanged duplicates count zero.
        """
        counts = self.write_grouped([(kind, kind, rows) for kind, rows in batches])
        return {Kind(k): n for k, n in counts.items()}

    def write_grouped(
        self,
        batches: Sequence[tuple[_K, Kind, Sequence[Sequence[Any]]]],
        *,
        coverage: Iterable[Span] = (),
    ) -> dict[_K, int]:
        """Like `write`, with changes counted per caller-chosen group key.

        `coverage` spans are upserted in the same transaction and not counted.
        """
        changed: dict[_K, int] = {}
        try:
            with self._transaction():
                for group, kind, rows in batches:
                    before = self._conn.total_changes
                    self._conn.executemany(self._upserts[kind], rows)
                    changed[group] = changed.get(group, 0) + self._conn.total_changes - before
                self._conn.executemany(_COVERAGE_UPSERT, coverage)
        except sqlite3.Error as exc:
            raise StoreError(f"write to {self.path} failed: {exc}") from None
        return changed

    def write_records(
        self,
        records: Iterable[Record],
        *,
        coverage: Iterable[Span] = (),
    ) -> dict[Kind, int]:
        """Upsert normalized records (any mix of kinds) and feed `coverage` in one transaction.

        `coverage` holds (venue, symbol, start_ms, end_ms) spans a live liquidation feed was
        up; a span already stored with the same start keeps the later end. Counts exclude it.
        """
        rows: dict[Kind, list[tuple[Any, ...]]] = {}
        for rec in records:
            kind, row = record_row(rec)
            rows.setdefault(kind, []).append(row)
        return self.write_grouped([(k, k, r) for k, r in rows.items()], coverage=coverage)

    def upsert_instruments(self, instruments: Iterable[Instrument]) -> int:
        rows = [
            (
                i.venue,
                i.symbol,
                i.venue_symbol,
                i.base,
                i.quote,
                i.contract_size,
                i.kind.value,
                i.funding_interval_h,
            )
            for i in instruments
        ]
        with self._transaction():
            before = self._conn.total_changes
            self._conn.executemany(
                "INSERT OR REPLACE INTO instruments VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
            return self._conn.total_changes - before

    # -- reading ---------------------------------------------------------------------------

    def symbols(self) -> list[tuple[str, str]]:
        """(venue, symbol) pairs that have candles or OI."""
        rows = self._conn.execute(
            "SELECT DISTINCT venue, symbol FROM candles UNION "
            "SELECT DISTINCT venue, symbol FROM open_interest ORDER BY 1, 2"
        ).fetchall()
        return [(str(v), str(s)) for v, s in rows]

    def summary(self) -> list[tuple[str, str, str, int, int, int]]:
        """(kind, venue, symbol, rows, first ts, last ts) for every stored series."""
        out: list[tuple[str, str, str, int, int, int]] = []
        for kind in Kind:
            for venue, symbol, n, lo, hi in self._conn.execute(
                f"SELECT venue, symbol, COUNT(*), MIN(ts_ms), MAX(ts_ms) FROM {kind.value} "
                "GROUP BY venue, symbol ORDER BY venue, symbol"
            ):
                out.append((kind.value, venue, symbol, n, lo, hi))
        return out

    def candle_intervals(self) -> list[tuple[str, str, str, int, int, int]]:
        """(venue, symbol, interval, rows, first ts, last ts) per stored bar size."""
        return [
            (str(v), str(s), str(i), int(n), int(lo), int(hi))
            for v, s, i, n, lo, hi in self._conn.execute(
                "SELECT venue, symbol, interval, COUNT(*), MIN(ts_ms), MAX(ts_ms) FROM candles "
                "GROUP BY venue, symbol, interval ORDER BY venue, symbol"
            )
        ]

    def intervals(self, venue: str, symbol: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT DISTINCT interval FROM candles WHERE venue = ? AND symbol = ?", (venue, symbol)
        ).fetchall()
        return [str(r[0]) for r in rows]

    def candle_span(
        self,
        venue: str,
        symbol: str,
        interval: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> tuple[int, int] | None:
        """(first, last) bar open of stored candles within the range, or None."""
        lo, hi = self._conn.execute(
            "SELECT MIN(ts_ms), MAX(ts_ms) FROM candles WHERE venue = ? AND symbol = ? AND "
            "interval = ? AND ts_ms BETWEEN ? AND ?",
            (
                venue,
                symbol,
                interval,
                -(2**62) if start_ms is None else start_ms,
                2**62 if end_ms is None else end_ms,
            ),
        ).fetchone()
        return None if lo is None else (int(lo), int(hi))

    def candle_at(self, venue: str, symbol: str, interval: str, ts_ms: int) -> Candle | None:
        """The stored bar opening at `ts_ms`, or None."""
        row = self._conn.execute(
            "SELECT open, high, low, close, volume_base, volume_quote, taker_buy_base, trades "
            "FROM candles WHERE venue = ? AND symbol = ? AND interval = ? AND ts_ms = ?",
            (venue, symbol, interval, ts_ms),
        ).fetchone()
        if row is None:
            return None
        return Candle(venue, symbol, interval_ms(interval), ts_ms, *row)

    def last_ts(
        self, kind: Kind, venue: str, symbol: str, start_ms: int | None, end_ms: int | None
    ) -> int | None:
        """The newest timestamp of a series within [start, end] (None: unbounded), or None."""
        lo = -(2**62) if start_ms is None else start_ms
        hi = 2**62 if end_ms is None else end_ms
        row = self._conn.execute(
            f"SELECT MAX(ts_ms) FROM {kind.value} WHERE venue = ? AND symbol = ? AND "
            "ts_ms BETWEEN ? AND ?",
            (venue, symbol, lo, hi),
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def latest_candles(self, interval: str) -> list[tuple[str, str, int]]:
        """(venue, symbol, newest bar open) of every series stored at `interval`."""
        # A skip-scan over the primary key: one index seek per series, never a table scan
        # (the dashboard asks every few seconds of a store with millions of bars).
        rows = self._conn.execute(
            """WITH RECURSIVE series(venue, symbol) AS (
                 SELECT * FROM (SELECT venue, symbol FROM candles ORDER BY venue, symbol LIMIT 1)
                 UNION ALL
                 SELECT (SELECT c.venue FROM candles c WHERE (c.venue, c.symbol) >
                           (series.venue, series.symbol) ORDER BY c.venue, c.symbol LIMIT 1),
                        (SELECT c.symbol FROM candles c WHERE (c.venue, c.symbol) >
                           (series.venue, series.symbol) ORDER BY c.venue, c.symbol LIMIT 1)
                 FROM series WHERE series.venue IS NOT NULL)
               SELECT venue, symbol, (SELECT MAX(ts_ms) FROM candles c WHERE c.venue =
                 series.venue AND c.symbol = series.symbol AND c.interval = ?)
               FROM series WHERE venue IS NOT NULL""",
            (interval,),
        ).fetchall()
        return [(str(v), str(s), int(t)) for v, s, t in rows if t is not None]

    def data_version(self) -> int:
        """Changes whenever another connection commits (cheap: no read)."""
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def timestamps(
        self, kind: Kind, venue: str, symbol: str, start_ms: int, end_ms: int
    ) -> NDArray[np.int64]:
        """Every timestamp of a series within [start, end], sorted (to find holes)."""
        rows = self._conn.execute(
            f"SELECT DISTINCT ts_ms FROM {kind.value} WHERE venue = ? AND symbol = ? AND "
            "ts_ms BETWEEN ? AND ? ORDER BY ts_ms",
            (venue, symbol, start_ms, end_ms),
        ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def venues_for(self, symbol: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT DISTINCT venue FROM candles WHERE symbol = ? ORDER BY venue", (symbol,)
        ).fetchall()
        return [str(r[0]) for r in rows]

    def rows(
        self, kind: Kind, venue: str | None = None, symbol: str | None = None
    ) -> Iterator[tuple[Any, ...]]:
        """Every row of a kind in layout order (for export), sorted by key."""
        layout = LAYOUTS[kind]
        where, params = self._filter(venue, symbol)
        yield from self._conn.execute(
            f"SELECT {', '.join(layout.names)} FROM {kind.value}{where} "
            f"ORDER BY {', '.join(layout.key)}",
            params,
        )

    @staticmethod
    def _filter(venue: str | None, symbol: str | None) -> tuple[str, list[str]]:
        conds, params = [], []
        if venue is not None:
            conds.append("venue = ?")
            params.append(venue)
        if symbol is not None:
            conds.append("symbol = ?")
            params.append(symbol)
        return (" WHERE " + " AND ".join(conds) if conds else ""), params

    def _columns(self, sql: str, params: Sequence[Any], ncols: int) -> NDArray[np.float64]:
        """Run a numeric query into an (n, ncols) float array without per-row Python objects."""
        cur = self._conn.execute(sql, params)
        flat = np.fromiter(
            (np.nan if v is None else v for v in itertools.chain.from_iterable(cur)),
            dtype=np.float64,
        )
        return flat.reshape(-1, ncols)

    def read_series(
        self,
        venue: str,
        symbol: str,
        interval: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> MarketSeries:
        """Columnar history for the engine: the bars opening in [start_ms, end_ms], with the OI
        snapshots, positioning samples and liquidation orders up to the last bar's close
        (end_ms + one bar) and premium-index bars inside those bars (see `_premium`)."""
        lo = start_ms if start_ms is not None else -(2**62)
        hi = end_ms if end_ms is not None else 2**62
        c = self._columns(
            "SELECT ts_ms, open, high, low, close, volume_base, taker_buy_base FROM candles "
            "WHERE venue = ? AND symbol = ? AND interval = ? AND ts_ms BETWEEN ? AND ? "
            "ORDER BY ts_ms",
            (venue, symbol, interval, lo, hi),
            7,
        )
        bar_ms = interval_ms(interval)
        # The last bar's OI snapshot is taken at its close, one bar after its open.
        o = self._columns(
            "SELECT ts_ms, oi_base FROM open_interest WHERE venue = ? AND symbol = ? AND "
            "ts_ms BETWEEN ? AND ? ORDER BY ts_ms",
            (venue, symbol, lo, hi + bar_ms if hi < 2**62 else hi),
            2,
        )
        # Funding in force at the start needs the last rate before it.
        f = self._columns(
            "SELECT ts_ms, funding_rate, COALESCE(interval_h, 8.0) FROM funding WHERE venue = ? "
            "AND symbol = ? AND ts_ms BETWEEN "
            "COALESCE((SELECT MAX(ts_ms) FROM funding WHERE venue = ? AND symbol = ? "
            "AND ts_ms < ?),"
            " ?) AND ? ORDER BY ts_ms",
            (venue, symbol, venue, symbol, lo, lo, hi),
            3,
        )
        # Per-bar totals count only at the bar size or finer (they sum into grid bars);
        # USD falls back to base x the close of the grid bar they fall in.
        usable = [
            i for i in self._liquidation_intervals(venue, symbol) if bar_ms % interval_ms(i) == 0
        ]
        marks = ", ".join("?" for _ in usable) or "NULL"
        bars = self._columns(
            "SELECT l.ts_ms, COALESCE(l.long_liq_usd, l.long_liq_base * c.close), "
            "COALESCE(l.short_liq_usd, l.short_liq_base * c.close) FROM liquidations l "
            "LEFT JOIN candles c ON c.venue = l.venue AND c.symbol = l.symbol AND "
            "c.interval = ? AND c.ts_ms = l.ts_ms - (l.ts_ms % ?) "
            f"WHERE l.venue = ? AND l.symbol = ? AND l.interval IN ({marks}) "
            "AND l.ts_ms BETWEEN ? AND ? ORDER BY l.ts_ms",
            (interval, bar_ms, venue, symbol, *usable, lo, hi),
            3,
        )
        orders = self._columns(
            "SELECT ts_ms, CASE position_side WHEN 'LONG' THEN usd ELSE 0 END, "
            "CASE position_side WHEN 'SHORT' THEN usd ELSE 0 END FROM liquidation_orders "
            "WHERE venue = ? AND symbol = ? AND ts_ms >= ? AND ts_ms < ?",
            # Orders during the last bar belong to it: up to (not including) its close.
            (venue, symbol, lo, hi + bar_ms if hi < 2**62 else hi),
            3,
        )
        spans = np.array(
            self._conn.execute(
                "SELECT start_ms, end_ms FROM liquidation_coverage WHERE venue = ? AND "
                "symbol = ? AND start_ms <= ? AND end_ms >= ? ORDER BY start_ms",
                (venue, symbol, hi + bar_ms if hi < 2**62 else hi, lo),
            ).fetchall(),
            dtype=np.int64,
        ).reshape(-1, 2)
        # A live feed's series stays span-ruled even where no span reaches the range read.
        tracked = len(spans) > 0 or (
            self._conn.execute(
                "SELECT 1 FROM liquidation_coverage WHERE venue = ? AND symbol = ? LIMIT 1",
                (venue, symbol),
            ).fetchone()
            is not None
        )
        pos = self._columns(
            "SELECT ts_ms, top_account_ls_ratio, top_position_ls_ratio, account_ls_ratio, "
            "taker_buy_sell_ratio FROM positioning WHERE venue = ? AND symbol = ? AND "
            "ts_ms BETWEEN ? AND ? ORDER BY ts_ms",
            # Like OI: the sample at the last bar's close (its taker ratio covers that bar).
            (venue, symbol, lo, hi + bar_ms if hi < 2**62 else hi),
            5,
        )
        prem = self._premium(venue, symbol, bar_ms, lo, hi)
        liq_bar_ts = bars[:, 0].astype(np.int64)
        liq = np.concatenate([bars, orders])
        liq = liq[np.argsort(liq[:, 0], kind="stable")]
        return MarketSeries(
            venue=venue,
            symbol=symbol,
            interval_ms=bar_ms,
            candle_ts=c[:, 0].astype(np.int64),
            open=c[:, 1],
            high=c[:, 2],
            low=c[:, 3],
            close=c[:, 4],
            volume=c[:, 5],
            oi_ts=o[:, 0].astype(np.int64),
            oi_base=o[:, 1],
            funding_ts=f[:, 0].astype(np.int64),
            funding_rate=f[:, 1],
            funding_interval_h=f[:, 2],
            liq_ts=liq[:, 0].astype(np.int64),
            liq_long_usd=liq[:, 1],
            liq_short_usd=liq[:, 2],
            liq_coverage=len(liq) > 0 or tracked,
            liq_bar_ts=liq_bar_ts,
            liq_spans=spans,
            liq_tracked=tracked,
            taker_buy=c[:, 6],
            pos_ts=pos[:, 0].astype(np.int64),
            pos_top_account=pos[:, 1],
            pos_top_position=pos[:, 2],
            pos_account=pos[:, 3],
            pos_taker_ratio=pos[:, 4],
            premium_ts=prem[:, 0].astype(np.int64),
            premium_close=prem[:, 1],
        )

    def _liquidation_intervals(self, venue: str, symbol: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT DISTINCT interval FROM liquidations WHERE venue = ? AND symbol = ?",
            (venue, symbol),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def _premium(
        self, venue: str, symbol: str, bar_ms: int, lo: int, hi: int
    ) -> NDArray[np.float64]:
        """(open, close) rows of premium-index bars of ONE size: the coarsest stored size that
        divides the bar (the bar's own first) with a bar in range. Bars opening at or after
        `lo` that lie in a grid bar opening at or before `hi` (finer bars fill the last one)."""
        offset = 4 * DAY_MS if bar_ms == 7 * DAY_MS else 0  # weekly bars open on Mondays
        end = hi + bar_ms
        for size in sorted((ms for ms in PREMIUM_SIZES if bar_ms % ms == 0), reverse=True):
            name = interval_name(size)
            # One index seek per size: no scan of a long series to list its sizes.
            if self._conn.execute(
                "SELECT 1 FROM premium_index WHERE venue = ? AND symbol = ? AND interval = ? "
                "AND ts_ms >= ? AND ts_ms < ? LIMIT 1",
                (venue, symbol, name, lo, end),
            ).fetchone():
                return self._columns(
                    "SELECT ts_ms, close FROM premium_index WHERE venue = ? AND symbol = ? AND "
                    "interval = ? AND ts_ms >= ? AND ts_ms < ? AND ts_ms - ((ts_ms - ?) % ?) <= ? "
                    "ORDER BY ts_ms",
                    (venue, symbol, name, lo, end, offset, bar_ms, hi),
                    2,
                )
        return np.empty((0, 2))
