"""The store seam: what services need from persistence, and `open_store` to get one.

Services see records, `MarketSeries` and a few plain documents, never SQL, files or
connections. A store may be used from any thread (each backend keeps whatever per-thread
resources it needs inside), so callers move calls off the event loop with `store.aio`
rather than opening second handles. One store URL is the whole state: the market data, and
what a running `oiradar watch` publishes for `oiradar status` and the dashboard.

`open_store` lives in `store/backends.py`, the one module that knows the backends: a second
backend is one module implementing `Store` plus one line in `BACKENDS` there
(tests/memstore.py proves it on the contract suite, tests/test_store_contract.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from oiradar.kinds import Kind
from oiradar.records import Candle, MarketSeries
from oiradar.store.rows import Record, record_row

ENV_DB = "OIRADAR_DB"
K = TypeVar("K")
S = TypeVar("S", bound="RowWrites")
Span = tuple[str, str, int, int]
"""(venue, symbol, start_ms, end_ms) of a span during which a live liquidation feed was up."""


@dataclass(frozen=True, slots=True)
class Episode:
    """An episode a running daemon announced and has not closed: a restart resumes it."""

    symbol: str
    phase: str  # the decider's phase, e.g. "covering"
    started_ms: int


@dataclass(frozen=True, slots=True)
class WatchState:
    """What `oiradar watch` publishes while it runs (every few seconds, one write)."""

    status: dict[str, Any]  # the JSON object `oiradar status` shows
    engine: dict[str, Any]  # the engine settings it reads with (the dashboard reads alike)
    episodes: tuple[Episode, ...] = ()


@dataclass(frozen=True, slots=True)
class LoggedAlert:
    """One alert the daemon sent, as sent; `seq` grows with every alert logged."""

    seq: int
    alert: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One `watch` process's latest beat (a collector's or a decider's), replaced each beat:
    what it watches (`detail`: per venue its symbols, newest bar stored, feed, status line)
    and when it last wrote, in wall ms (hosts' clocks are assumed NTP-synced)."""

    worker: str  # "host:pid", unique while the process lives
    role: str  # "collector" or "decider"
    host: str
    pid: int
    beat_ms: int
    detail: dict[str, Any]


class Store(Protocol):
    """Persistence behind one interface. Use as a context manager to close it."""

    @property
    def location(self) -> str:
        """Where the store is, as a user names it (a file path; never a password)."""
        ...

    @property
    def schema_version(self) -> int: ...

    def __enter__(self) -> Store: ...

    def __exit__(self, *exc: object) -> None: ...

    def close(self) -> None:
        """Release every resource (every thread's); the store is not usable afterwards."""
        ...

    # -- market data: writing --------------------------------------------------------------

    def write(self, batches: Iterable[tuple[Kind, Sequence[Sequence[Any]]]]) -> dict[Kind, int]:
        """Upsert rows (tuples in the kind's layout order, kinds.LAYOUTS) in ONE transaction;
        rows inserted or changed per kind (an unchanged duplicate counts zero)."""
        ...

    def write_grouped(
        self,
        batches: Sequence[tuple[K, Kind, Sequence[Sequence[Any]]]],
        *,
        coverage: Iterable[Span] = (),
    ) -> dict[K, int]:
        """Like `write`, with changes counted per caller-chosen group key; `coverage` spans
        are stored in the same transaction (a span with a known start keeps the later end)
        and not counted. A failed batch leaves nothing behind (`StoreError`)."""
        ...

    def write_records(
        self, records: Iterable[Record], *, coverage: Iterable[Span] = ()
    ) -> dict[Kind, int]:
        """Upsert normalized records (any mix of kinds) and `coverage` in one transaction."""
        ...

    def version(self) -> int:
        """A number that grows whenever a write changes stored market data, from any handle:
        equal numbers mean nothing changed in between (cheap to ask every few seconds)."""
        ...

    def changes(self) -> int:
        """Like `version`, growing with heartbeats (`beat`) too: what a decider waits on."""
        ...

    def wait_changed(self, seen: int, timeout_s: float) -> int:
        """Block until `changes()` differs from `seen` (a write or a heartbeat from any handle
        or host), at most `timeout_s`; `changes()` then. PostgreSQL wakes on NOTIFY, SQLite
        polls."""
        ...

    def liquidation_orders_since(
        self, venue: str, since_ms: int
    ) -> list[tuple[str, int, str, float]]:
        """(symbol, ts, position side "LONG"/"SHORT", USD) of the venue's liquidation orders
        at or after `since_ms`, oldest first: the running bars a decider replays against the
        squeeze rule, order by order as the streams delivered them."""
        ...

    # -- market data: reading --------------------------------------------------------------

    def symbols(self) -> list[tuple[str, str]]:
        """(venue, symbol) pairs that have candles or OI, sorted."""
        ...

    def summary(self) -> list[tuple[str, str, str, int, int, int]]:
        """(kind, venue, symbol, rows, first ts, last ts) of every stored series, by kind."""
        ...

    def candle_intervals(self) -> list[tuple[str, str, str, int, int, int]]:
        """(venue, symbol, interval, rows, first ts, last ts) per stored bar size."""
        ...

    def intervals(self, venue: str, symbol: str) -> list[str]:
        """The bar sizes stored for a series (names such as "5m")."""
        ...

    def venues_for(self, symbol: str) -> list[str]:
        """Venues with candles of `symbol`, sorted."""
        ...

    def candle_span(
        self,
        venue: str,
        symbol: str,
        interval: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> tuple[int, int] | None:
        """(first, last) bar open of stored candles within the range, or None."""
        ...

    def candle_at(self, venue: str, symbol: str, interval: str, ts_ms: int) -> Candle | None:
        """The stored bar opening at `ts_ms`, or None."""
        ...

    def last_ts(
        self, kind: Kind, venue: str, symbol: str, start_ms: int | None, end_ms: int | None
    ) -> int | None:
        """The newest timestamp of a series within [start, end] (None: unbounded), or None."""
        ...

    def latest_candles(self, interval: str) -> list[tuple[str, str, int]]:
        """(venue, symbol, newest bar open) of every series stored at `interval`; cheap on a
        store of millions of bars (the dashboard asks every few seconds)."""
        ...

    def timestamps(
        self, kind: Kind, venue: str, symbol: str, start_ms: int, end_ms: int
    ) -> NDArray[np.int64]:
        """Every distinct timestamp of a series within [start, end], sorted (to find holes)."""
        ...

    def rows(
        self, kind: Kind, venue: str | None = None, symbol: str | None = None
    ) -> Iterator[tuple[Any, ...]]:
        """Every row of a kind in layout order, sorted by its key (for export)."""
        ...

    def read_series(
        self,
        venue: str,
        symbol: str,
        interval: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> MarketSeries:
        """Columnar history for the engine: the bars opening in [start_ms, end_ms] and what
        goes with them, as docs/store.md (Reading) specifies."""
        ...

    def prune(self, before_ms: int, bar_ms: int) -> dict[Kind, int]:
        """Keep raw data older than `before_ms` only as per-bar values of `bar_ms` bars (the
        bars wholly before it): of an OI series the last snapshot of each bar; of a live
        feed's liquidations (a series with coverage spans) each covered bar's orders summed
        into a per-bar total, the others dropped (they read as unknown). Rows removed per
        kind. The engine reads the same per bar at `bar_ms` or a multiple (docs/store.md)."""
        ...

    # -- what a running daemon publishes (not market data) ---------------------------------

    def put_watch_state(self, state: WatchState) -> None:
        """Replace the published state (status, engine settings, open episodes) at once."""
        ...

    def watch_state(self) -> WatchState | None:
        """The state last published, or None if no daemon ever ran on this store."""
        ...

    def append_alert(self, alert: dict[str, Any]) -> int:
        """Log one alert as sent; returns its `seq`."""
        ...

    def alerts(self, after: int = 0, limit: int | None = None) -> list[LoggedAlert]:
        """Logged alerts with `seq` > `after`, oldest first; `limit`: only the newest so many."""
        ...

    def learn_listing(self, venue: str, symbol: str, listed_ms: int) -> None:
        """Remember where `venue`'s REST history of `symbol` starts (the venue publishes no
        listing time; a backfill found it); an earlier time already known is kept."""
        ...

    def listings(self, venue: str) -> dict[str, int]:
        """Symbol -> the listing time learned for it on `venue` (`learn_listing`)."""
        ...

    # -- many processes on one store (collectors, deciders) --------------------------------

    def beat(self, heartbeat: Heartbeat) -> None:
        """Replace the worker's heartbeat row."""
        ...

    def workers(self) -> list[Heartbeat]:
        """Every heartbeat stored (the living and the dead: the caller judges by age)."""
        ...

    def take_lease(self, name: str, holder: str, now_ms: int, ttl_ms: int) -> bool:
        """Take or renew the lease `name` until `now_ms + ttl_ms`, in one conditional upsert:
        granted if free, expired (at `now_ms`) or already `holder`'s; else False."""
        ...

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up at once (a clean stop), if `holder` has it."""
        ...

    def lease(self, name: str) -> tuple[str, int] | None:
        """(holder, expires wall ms) of the lease, or None if never taken or released."""
        ...


class RowWrites:
    """What every backend builds the same way on its own `write_grouped` and `close`: `write`
    (rows by kind), `write_records` (records of any mix of kinds) and the context manager."""

    def write_grouped(
        self,
        batches: Sequence[tuple[K, Kind, Sequence[Sequence[Any]]]],
        *,
        coverage: Iterable[Span] = (),
    ) -> dict[K, int]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, batches: Iterable[tuple[Kind, Sequence[Sequence[Any]]]]) -> dict[Kind, int]:
        counts = self.write_grouped([(kind, kind, rows) for kind, rows in batches])
        return {Kind(k): n for k, n in counts.items()}

    def write_records(
        self, records: Iterable[Record], *, coverage: Iterable[Span] = ()
    ) -> dict[Kind, int]:
        rows: dict[Kind, list[tuple[Any, ...]]] = {}
        for rec in records:
            kind, row = record_row(rec)
            rows.setdefault(kind, []).append(row)
        return self.write_grouped([(k, k, r) for k, r in rows.items()], coverage=coverage)


def redacted(url: str) -> str:
    """A store URL as it may be shown: without its password or query (which may carry one),
    e.g. postgresql://me@db:5432/oiradar of postgresql://me:pw@db:5432/oiradar?sslmode=x."""
    scheme, _, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    dbname = path.partition("?")[0].partition("#")[0]
    return f"{scheme}://{user}{at}{hosts}{slash}{dbname}"
