"""What a backfill asks for and what each day of it lacks: the request, the venue's plan
(which periods, how far back REST reaches, what the archive must give) and the comparison of
each UTC-day chunk with the store. Pure: no requests, no store I/O."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from oiradar.datafiles.archive import LIQUIDATION_LAST_DAY
from oiradar.errors import UserError
from oiradar.records import (
    Candle,
    FundingSample,
    Liquidation,
    LiquidationBar,
    MarketSeries,
    OISample,
    Positioning,
    PremiumBar,
)
from oiradar.units import DAY_MS, HOUR_MS, MINUTE_MS, interval_ms, interval_name, iso
from oiradar.venues.binance import OI_RETENTION_MS, RETENTION_MARGIN_MS

BINANCE = "binance"
CONCURRENCY = 8  # symbols in flight per venue: keeps per-instrument budgets (OKX) busy
Rec = Candle | OISample | FundingSample | PremiumBar | Positioning | LiquidationBar | Liquidation
I64 = NDArray[np.int64]
Progress = Callable[[str, int], None]  # (venue, n): n > 0 sets the total, -1 advances one chunk

# Interval tables of each connector (attribute of oiradar.venues.<venue>): ms keys or names.
KLINE_TABLES = {
    "binance": "KLINE_INTERVALS",
    "bybit": "KLINE_INTERVALS",
    "okx": "BARS",
    "bitget": "GRANULARITY",
    "gate": "CANDLE_INTERVALS",
    "hyperliquid": "INTERVALS",
    "dydx": "RESOLUTIONS",
}
OI_TABLES = {
    "binance": "OI_PERIODS",
    "bybit": "OI_PERIODS",
    "okx": "OI_PERIODS",
    "gate": "STATS_INTERVALS",  # contract_stats
    "dydx": "RESOLUTIONS",  # each candle's starting OI
}
PREMIUM_TABLES = dict.fromkeys(("binance", "bybit", "okx"), "PREMIUM_INTERVALS")
# the ratio endpoints' periods (Binance), contract_stats (Gate)
POSITIONING_TABLES = {"binance": "POSITIONING_PERIODS", "gate": "STATS_INTERVALS"}
# Per-bar liquidation totals by side: only Gate's contract_stats publishes them.
LIQUIDATION_TABLES = {"gate": "STATS_INTERVALS"}
# What each venue's REST API keeps of OI history (exchange-apis.md): Binance the latest 30
# days (its connector stays a minute clear of the edge), OKX the latest 1,440 rows per
# period, Bybit everything since listing, Bitget nothing.
BINANCE_OI_KEEP_MS = OI_RETENTION_MS - RETENTION_MARGIN_MS
OKX_OI_ROWS = 1_440
NO_DATA_HINTS = {
    ("okx", "funding"): "OKX keeps about three months of funding",
    ("okx", "OI"): "OKX keeps the latest 1,440 rows per period",
    ("bitget", "candles"): "Bitget keeps one month of 1m-5m bars",
    ("okx", "premium index"): "OKX keeps six months of premium samples",
    ("gate", "candles"): "Gate keeps the latest 10,000 bars per interval",
    ("hyperliquid", "candles"): "Hyperliquid keeps the latest 5,000 bars per interval",
}


def _lengths(venue: str, tables: dict[str, str]) -> frozenset[int]:
    """A connector's supported bar or period lengths in ms (empty: none)."""
    if venue not in tables:
        return frozenset()
    values = getattr(importlib.import_module(f"oiradar.venues.{venue}"), tables[venue])
    return frozenset(v if isinstance(v, int) else interval_ms(v) for v in values)


def check_interval(venues: Sequence[str], bar_ms: int) -> None:
    """Bad input before any request: the interval must fit a day and exist on every venue."""
    name = interval_name(bar_ms)
    if bar_ms > DAY_MS or DAY_MS % bar_ms:
        raise UserError(f"--interval {name}: backfill walks whole days; use 1m .. 1d")
    for venue in venues:
        allowed = _lengths(venue, KLINE_TABLES)
        if bar_ms not in allowed:
            names = ", ".join(interval_name(x) for x in sorted(allowed) if x <= DAY_MS)
            raise UserError(f"{venue} has no {name} klines: use one of {names}, or leave it out")


def oi_period(venue: str, bar_ms: int, tables: dict[str, str] = OI_TABLES) -> int | None:
    """The bar itself where the venue has that OI period, else the largest 5m..1h period that
    divides it (the smallest for bars under 5m); None where the venue keeps no OI history.
    Positioning periods follow the same rule (`tables=POSITIONING_TABLES`)."""
    periods = _lengths(venue, tables)
    if not periods or bar_ms in periods:
        return bar_ms if periods else None
    fits = [p for p in periods if p <= min(bar_ms, HOUR_MS) and bar_ms % p == 0]
    return max(fits) if fits else min(periods)


@dataclass(frozen=True, slots=True)
class BackfillRequest:
    """Bars opening in [start_ms, end_ms) on `venues`; symbols by name, top N or all."""

    venues: tuple[str, ...]
    start_ms: int
    end_ms: int
    symbols: tuple[str, ...] | None = None
    top: int | None = None
    interval_ms: int = 5 * MINUTE_MS
    archive_only: bool = False
    concurrency: int = CONCURRENCY
    # Premium-index bars feed only the opt-in `premium` squeeze evidence, and OKX serves them
    # 100 one-minute samples a request (15 per symbol-day): asked for, not by default.
    premium: bool = False
    endpoint: str | None = None  # every venue's requests go here (a simulator); None: the venues
    archive: bool = True  # False: REST only, never the Binance archive (--no-archive)
    archive_dir: Path | None = None  # archive files already on disk, instead of downloads


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bars opening in [start_ms, end_ms); their OI slots close in (start_ms, end_ms]."""

    start_ms: int
    end_ms: int

    @property
    def day(self) -> str:
        return iso(self.start_ms)[:10]


def chunks(start_ms: int, end_ms: int, bar_ms: int) -> list[Chunk]:
    """[start, end) cut at UTC midnights: one chunk per day, so an archive day is one file."""
    lo = -(-start_ms // bar_ms) * bar_ms
    out = []
    while lo < end_ms:
        hi = min(end_ms, (lo // DAY_MS + 1) * DAY_MS)
        out.append(Chunk(lo, hi))
        lo = hi
    return out


@dataclass(frozen=True, slots=True)
class VenuePlan:
    venue: str
    bar_ms: int
    now_ms: int
    oi_period_ms: int | None  # None: the venue publishes no OI history
    oi_rest_from_ms: int | None  # the oldest OI slot REST still serves; None: no REST
    oi_archive: bool  # slots REST cannot serve come from the Binance archive
    oi_keep: str  # what the venue keeps, for the report
    premium_ms: int | None = None  # premium bars at the bar size; None: the venue has none
    pos_period_ms: int | None = None  # positioning (Binance); None: the venue has none
    pos_rest_from_ms: int | None = None  # the oldest slot the ratio endpoints serve
    premium_asked: bool = False  # --premium: say so where the venue has none
    liq_period_ms: int | None = None  # per-bar liquidation totals (Gate); None: none
    liq_archive: bool = False  # Binance's archive liquidation snapshot days (to 2024-03-31)


def plan_for(venue: str, req: BackfillRequest, now_ms: int, archive: bool) -> VenuePlan:
    period = oi_period(venue, req.interval_ms)
    keep, rest_from = "everything since listing", -(2**62)
    if venue == BINANCE:
        keep, rest_from = "30 days", now_ms - BINANCE_OI_KEEP_MS
    elif venue == "okx" and period is not None:
        rows_days = OKX_OI_ROWS * period / DAY_MS
        keep = f"the latest 1,440 rows: {rows_days:g} days at {interval_name(period)}"
        # The newest row is the slot closed last, the oldest 1,439 slots before it: one
        # slot further back is never served, and asking for it made every re-run fetch again.
        rest_from = (now_ms // period - (OKX_OI_ROWS - 1)) * period
    rest = None if req.archive_only or period is None else rest_from
    oi_archive = archive and venue == BINANCE
    with_premium = req.premium and req.interval_ms in _lengths(venue, PREMIUM_TABLES)
    premium = req.interval_ms if with_premium else None
    pos = oi_period(venue, req.interval_ms, POSITIONING_TABLES)
    pos_keep = now_ms - BINANCE_OI_KEEP_MS if venue == BINANCE else -(2**62)
    pos_rest = None if req.archive_only or pos is None else pos_keep
    liq = None if req.archive_only else oi_period(venue, req.interval_ms, LIQUIDATION_TABLES)
    return VenuePlan(
        venue,
        req.interval_ms,
        now_ms,
        period,
        rest,
        oi_archive,
        keep,
        premium,
        pos,
        pos_rest,
        req.premium,
        liq,
        oi_archive,
    )


@dataclass(frozen=True, slots=True)
class Lack:
    """What one chunk misses in the store, by source; `notes` say what no source can give."""

    bars: I64
    oi_rest: I64  # OI slot closes to ask the venue for
    oi_archive: I64  # OI slot closes to read from the archive
    funding: bool
    notes: tuple[str, ...] = ()
    premium: I64 = field(default_factory=lambda: np.empty(0, np.int64))  # bar opens
    pos_rest: I64 = field(default_factory=lambda: np.empty(0, np.int64))  # slot closes
    pos_archive: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    liq: I64 = field(default_factory=lambda: np.empty(0, np.int64))  # liquidation bar opens
    liq_day: bool = False  # the archive's liquidation snapshot of the (whole, uncovered) day

    @property
    def nothing(self) -> bool:
        slots = (self.oi_rest, self.oi_archive, self.premium, self.pos_rest, self.pos_archive,
                 self.liq)  # fmt: skip
        return not (self.bars.size or any(x.size for x in slots) or self.funding or self.liq_day)


def uncovered(slots: I64, ts: I64, period: int | None) -> I64:
    """The slot closes t among `slots` with no snapshot (sorted `ts`) in (t - period, t]."""
    if not slots.size or not ts.size or not period:
        return slots
    i = np.searchsorted(ts, slots - period, side="right")
    covered = (i < ts.size) & (ts[np.minimum(i, ts.size - 1)] <= slots)
    return slots[~covered]


def _slots(
    plan: VenuePlan,
    c: Chunk,
    what: tuple[str, int, int | None, str],
    have_ts: I64,
    notes: list[str],
    listed_ms: int,
) -> tuple[I64, I64]:
    """(slot closes to ask REST for, slot closes to read from the archive) of one kind of
    snapshot; `what` = (name, period, the oldest slot REST serves, what the venue keeps)."""
    name, p, oldest, keep = what
    empty = np.empty(0, np.int64)
    slots = np.arange((c.start_ms // p + 1) * p, c.end_ms + 1, p, dtype=np.int64)
    missing = uncovered(slots, have_ts, p)
    by_rest = missing >= (oldest if oldest is not None else 2**62)
    # The listing bounds what REST serves; the archive's files are what they are.
    missing = missing[(missing >= listed_ms + p) | (~by_rest & plan.oi_archive)]
    by_rest = missing >= (oldest if oldest is not None else 2**62)
    if oldest is not None and not plan.oi_archive and not by_rest.all():
        tip = "; the Binance archive has it (drop --no-archive)" * (plan.venue == BINANCE)
        notes.append(f"{name} before {iso(oldest)} is beyond what {plan.venue} keeps ({keep}){tip}")
    return missing[by_rest], (missing[~by_rest] if plan.oi_archive else empty)


def lacks(
    plan: VenuePlan,
    cks: Sequence[Chunk],
    have: MarketSeries,
    funding_ms: int,
    listed_ms: int | None = None,
) -> list[Lack]:
    """Compare each chunk with what the store holds (one read per symbol, done beforehand).
    Nothing is due from REST before `listed_ms` (the venue's listing time, where it gives
    one): no bar opens a full bar before it, no OI or positioning slot closes within a period
    after it, no funding settles at or before it. Asked for anyway, those would come back
    empty on every re-run."""
    out = []
    empty = np.empty(0, np.int64)
    listed = -(2**62) if listed_ms is None else listed_ms
    for c in cks:
        opens = np.arange(c.start_ms, c.end_ms, plan.bar_ms, dtype=np.int64)
        opens = opens[opens > listed - plan.bar_ms]
        bars = opens[~np.isin(opens, have.candle_ts)]
        notes: list[str] = []
        if listed > c.start_ms:
            notes.append(
                f"{plan.venue} lists it from {iso(listed)}: its REST API has nothing before"
            )
        rest, archive = empty, empty
        if plan.oi_period_ms is None:
            notes.append(f"{plan.venue} publishes no OI history; record it live with oiradar watch")
        else:
            oi = ("OI", plan.oi_period_ms, plan.oi_rest_from_ms, plan.oi_keep)
            rest, archive = _slots(plan, c, oi, have.oi_ts, notes, listed)
        premium = opens[~np.isin(opens, have.premium_ts)] if plan.premium_ms else empty
        if plan.premium_ms is None and plan.premium_asked:
            notes.append(f"{plan.venue} publishes no premium-index history")
        pos_rest, pos_archive = empty, empty
        if plan.pos_period_ms is not None:
            pos = ("positioning", plan.pos_period_ms, plan.pos_rest_from_ms, plan.oi_keep)
            pos_rest, pos_archive = _slots(plan, c, pos, have.pos_ts, notes, listed)
        liq = empty
        if (lp := plan.liq_period_ms) is not None:
            liq_opens = np.arange(-(-c.start_ms // lp) * lp, c.end_ms, lp, dtype=np.int64)
            liq_opens = liq_opens[liq_opens > listed - lp]  # per-bar sums, like the bars
            liq = liq_opens[~np.isin(liq_opens, have.liq_bar_ts)]
        spans = have.liq_spans
        covered = bool(((spans[:, 0] <= c.start_ms) & (spans[:, 1] >= c.end_ms)).any())
        whole = c.end_ms - c.start_ms == DAY_MS and c.day <= LIQUIDATION_LAST_DAY
        liq_day = plan.liq_archive and whole and not covered
        first_due = max(c.start_ms, listed + 1)
        due = np.arange(-(-first_due // funding_ms) * funding_ms, c.end_ms, funding_ms).size
        held = int(((have.funding_ts >= c.start_ms) & (have.funding_ts < c.end_ms)).sum())
        lack = Lack(bars, rest, archive, held < due, tuple(notes), premium, pos_rest, pos_archive,
                    liq, liq_day)  # fmt: skip
        out.append(lack)
    return out


def runs(indices: list[int]) -> list[list[int]]:
    """[1, 2, 3, 7, 8] -> [[1, 2, 3], [7, 8]]: consecutive chunks, asked for in one go."""
    out: list[list[int]] = []
    for i in indices:
        if out and out[-1][-1] == i - 1:
            out[-1].append(i)
        else:
            out.append([i])
    return out
