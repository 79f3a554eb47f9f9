"""`oiradar scan`: the whole market now, across venues, from the cheapest endpoints.

Per venue, concurrently: the instrument list and ONE bulk snapshot call where the venue has
one (price, OI, funding for every symbol), then only the recent history the store does not
already hold (klines and OI history for the window), all within the venue's limits. What
was fetched is stored, and each (venue, symbol) is classified by the Core engine on the
store's series — the same path as `oiradar analyze`, so both agree on the same data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from oiradar.errors import Banned, UnknownSymbol, VenueError
from oiradar.kinds import Kind
from oiradar.records import Candle, MarketSnapshot, OISample
from oiradar.services.history import track_record
from oiradar.signals import rules
from oiradar.signals.context import confidence, session_of
from oiradar.signals.engine import Timeline, more_to_come, timeline
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import REFERENCE_BARS, Regime
from oiradar.store import Store
from oiradar.units import DAY_MS, MINUTE_MS, funding_8h, interval_name, iso
from oiradar.venues.base import VenueClient

BAR_MS = 5 * MINUTE_MS
# Most telling first: how rows rank, and what --min-regime cuts at.
RANK = (
    Regime.SHORT_SQUEEZE,
    Regime.SHORT_COVERING,
    Regime.LONG_LIQUIDATION,
    Regime.NEW_SHORTS,
    Regime.NEW_LONGS,
    Regime.LOW_CONVICTION_RALLY,
    Regime.LOW_CONVICTION_SELLOFF,
    Regime.NEUTRAL,
    Regime.NONE,
    Regime.NO_DATA,
)


# The symbol's 30-day record for covering and squeeze rows (services.history), None on the
# others: the short text, the days it covers, events with a known +1h outcome, hit rate, median.
HISTORY_KEYS = (
    "history",
    "history_days",
    "history_events",
    "history_hit_pct",
    "history_median_1h_pct",
)


@dataclass(frozen=True, slots=True)
class ScanRequest:
    venues: tuple[str, ...]
    symbols: tuple[str, ...] | None = None  # None: --top or --all
    top: int | None = 30
    params: EngineParams = field(default_factory=EngineParams)


@dataclass(slots=True)
class ScanResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    aggregates: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        return bool(self.failed)


@dataclass(slots=True)
class _VenueData:
    venue: str
    now_ms: int
    snaps: dict[str, MarketSnapshot]
    candles: list[Candle] = field(default_factory=list)
    oi: list[OISample] = field(default_factory=list)


def window_name(params: EngineParams) -> str:
    """What the rows read: the horizons, or the reference classifier's ten candles."""
    if params.reference:
        span = interval_name((REFERENCE_BARS - 1) * BAR_MS)
        return f"{span} reference window (last {REFERENCE_BARS} 5m candles)"
    names = [interval_name(w) for w in params.windows_ms]
    return f"{names[0]} window" if len(names) == 1 else f"horizons {', '.join(names)}"


def lookback_ms(params: EngineParams) -> int:
    """History a cold scan must fetch: the longest horizon (or the reference 45 min) plus two
    bars."""
    return max(*params.windows_ms, 45 * MINUTE_MS) + 2 * BAR_MS


async def _collect(
    client: VenueClient,
    store: Store,
    req: ScanRequest,
    result: ScanResult,
    progress: Callable[[str, int], None],
) -> _VenueData:
    venue = client.name
    listed = {i.symbol for i in await client.instruments()}
    wanted: list[str] | None = None
    if req.symbols is not None:
        wanted = [s for s in req.symbols if s in listed]
        result.warnings.extend(
            f"{s} is not listed on {venue}; skipped" for s in req.symbols if s not in listed
        )
    snaps = {s.symbol: s for s in await client.snapshot(wanted)}
    if not snaps:
        return _VenueData(venue, 0, {})
    now = max(s.ts_ms for s in snaps.values())
    if wanted is None and req.top is not None:
        ranked = sorted(snaps.values(), key=lambda s: -(s.quote_volume_24h or 0.0))
        snaps = {s.symbol: s for s in ranked[: req.top]}
    data = _VenueData(venue, now, snaps)
    start = now - now % BAR_MS - lookback_ms(req.params)
    progress(venue, len(snaps))

    running = now - now % BAR_MS

    async def one(symbol: str) -> None:
        c_span = store.candle_span(venue, symbol, interval_name(BAR_MS), start, now)
        snap = snaps[symbol]
        price = snap.last_price if snap.last_price is not None else snap.mark_price
        try:
            if c_span is not None and c_span[1] >= running - BAR_MS and price is not None:
                # Every closed bar is stored: the running bar comes from the snapshot's price.
                data.candles.append(_running_bar(store, venue, symbol, running, price))
            else:
                k_from = start if c_span is None else c_span[1]  # re-read the last stored bar
                data.candles.extend(await client.klines(symbol, BAR_MS, k_from, now))
            last_oi = store.last_ts(Kind.OPEN_INTEREST, venue, symbol, start, now)
            o_from = start if last_oi is None else last_oi + 1
            if o_from < now - BAR_MS:
                data.oi.extend(await client.oi_history(symbol, BAR_MS, o_from, now))
        except UnknownSymbol:
            result.warnings.append(f"{symbol} is not listed on {venue}; skipped")
            data.snaps.pop(symbol, None)
        progress(venue, -1)

    await asyncio.gather(*(one(s) for s in list(snaps)))
    return data


def _running_bar(store: Store, venue: str, symbol: str, open_ms: int, price: float) -> Candle:
    """The running bar extended to `price` (or opened at the last close if not stored yet)."""
    stored = store.candle_at(venue, symbol, interval_name(BAR_MS), open_ms)
    if stored is not None:
        return replace(
            stored, high=max(stored.high, price), low=min(stored.low, price), close=price
        )
    prev = store.candle_at(venue, symbol, interval_name(BAR_MS), open_ms - BAR_MS)
    first = prev.close if prev is not None else price
    return Candle(
        venue, symbol, BAR_MS, open_ms, first, max(first, price), min(first, price), price, 0.0
    )


def _store(store: Store, data: _VenueData) -> None:
    snap_oi = [
        OISample(data.venue, s.symbol, s.ts_ms, s.oi_base, None, s.oi_usd)
        for s in data.snaps.values()
        if s.oi_base is not None
    ]
    store.write_records([*data.candles, *data.oi, *snap_oi])


def market_row(tl: Timeline, snap: MarketSnapshot, params: EngineParams) -> dict[str, Any]:
    """The newest bar of a timeline as a table row (scan, the dashboard); `_oi_h` (then, now
    per horizon) and `_px_h` (price % per horizon) feed `aggregate` and are dropped before
    output."""
    i = len(tl.grid.ts) - 1
    regime = Regime(int(tl.regime[i]))
    oi_pct, px_pct = float(tl.oi_pct[i]), float(tl.price_pct[i])
    rate, ivl = snap.funding_rate, snap.funding_interval_h or 8.0
    rate_8h = funding_8h(rate, ivl)
    session, weekend = session_of(snap.ts_ms)
    covering = regime in (Regime.SHORT_COVERING, Regime.SHORT_SQUEEZE)
    conf = (
        confidence(
            oi_drop_pct=oi_pct,
            oi_threshold_pct=float(tl.oi_threshold[i]),
            price_gain_pct=px_pct,
            price_threshold_pct=float(tl.price_threshold[i]),
            funding_8h=rate_8h,
            clearly_negative_8h=params.more_to_come_funding_8h,
            volume_ratio=None,
            session=session,
            weekend=weekend,
            data_gap=bool(tl.gap[i]),
            use_funding=covering,
        )
        if regime not in (Regime.NO_DATA, Regime.NEUTRAL, Regime.NONE)
        else 0
    )
    oi_then, px_then = float(tl.oi_then[i]), float(tl.price_then[i])
    oi_now, px_now = float(tl.grid.oi[i]), float(tl.grid.close[i])
    oi_h = [
        (float(tl.grid.oi[i - w]) if i >= w else float("nan"), oi_now) for w in tl.horizons.bars
    ]
    return {
        "venue": snap.venue,
        "symbol": snap.symbol,
        "regime": regime.name,
        "horizon": interval_name(tl.reading_bars(i) * tl.grid.bar_ms),
        "oi_change_pct": _num(oi_pct, 3),
        "price_change_pct": _num(px_pct, 3),
        "oi_usd": _num(snap.oi_usd if snap.oi_usd is not None else oi_now * px_now, 0),
        "oi_change_usd": _num(oi_now * px_now - oi_then * px_then, 0),
        "funding_rate": _num(rate, 8),
        "funding_interval_h": _num(ivl, 2),
        "funding_rate_8h": _num(rate_8h, 8),
        "more_to_come": more_to_come(rate_8h, params) if covering else None,
        "short_liq_usd": _num(float(tl.short_liq_usd[i]), 0),
        "long_liq_usd": _num(float(tl.long_liq_usd[i]), 0),
        "confidence": conf,
        "strong": bool(tl.strong[i]),
        "data_gap": bool(tl.gap[i]),
        "ts": iso(snap.ts_ms),
        "_oi_h": oi_h,
        "_px_h": [float(x) for x in tl.price_h[:, i]],
        "_bands": [
            (float(o), float(p))
            for o, p in zip(tl.oi_band_h[:, i], tl.price_band_h[:, i], strict=True)
        ],
        "_horizons": tl.horizons.names(),
    }


def _num(x: float | None, digits: int) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), digits)


def _evaluate(store: Store, data: _VenueData, params: EngineParams) -> list[dict[str, Any]]:
    rows = []
    warm = 8 * DAY_MS if params.adaptive else lookback_ms(params) + BAR_MS
    for symbol, snap in data.snaps.items():
        series = store.read_series(
            data.venue, symbol, interval_name(BAR_MS), data.now_ms - warm, data.now_ms
        )
        if len(series.candle_ts) == 0:
            continue
        row = market_row(timeline(series, params), snap, params)
        row.update(dict.fromkeys(HISTORY_KEYS))  # every venue row has them (CSV, scripts)
        if row["regime"] in ("SHORT_COVERING", "SHORT_SQUEEZE"):
            track = track_record(store, data.venue, symbol, row["regime"], data.now_ms, params)
            if track is not None:
                row.update(
                    history=track.short(),
                    history_days=track.days if track.enough else None,
                    history_events=track.events if track.enough else None,
                    history_hit_pct=_num(track.hit_pct, 1),
                    history_median_1h_pct=track.median_1h_pct,
                )
        rows.append(row)
    return rows


def aggregate(rows: Sequence[dict[str, Any]], params: EngineParams) -> list[dict[str, Any]]:
    """One row per coin across venues: OI now summed in USD over every venue; its change at
    each horizon summed in base units over the venues where it is known (that decides the
    regime, never USD, which moves with price), read with the same rules as one venue; the
    venue with the largest USD OI change drives it (and gives the price move)."""
    by_symbol: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_symbol.setdefault(r["symbol"], []).append(r)
    out = []
    for symbol, group in by_symbol.items():
        reading = _across_venues(group, params)
        if reading is None:
            continue
        regime, k, oi_pct, px_pct, driver, ok = reading
        usd = [(r["oi_usd"] or 0.0, r["funding_rate_8h"]) for r in ok]
        weight = sum(u for u, f in usd if f is not None)
        funding_8h = sum(u * f for u, f in usd if f is not None) / weight if weight else None
        out.append(
            {
                "venue": "all",
                "symbol": symbol,
                "regime": regime.name,
                "horizon": driver["_horizons"][k],
                "funding_rate": None,  # intervals differ per venue: see funding_rate_8h
                "funding_rate_8h": _num(funding_8h, 8),  # OI-weighted across venues
                "confidence": driver["confidence"],
                "oi_change_pct": _num(oi_pct, 3),
                "price_change_pct": _num(px_pct, 3),
                "oi_usd": _num(sum(r["oi_usd"] or 0.0 for r in group), 0),
                "oi_change_usd": _num(sum(r["oi_change_usd"] or 0.0 for r in ok), 0),
                "short_liq_usd": _total(r.get("short_liq_usd") for r in group),
                "long_liq_usd": _total(r.get("long_liq_usd") for r in group),
                "driver": driver["venue"],
                "venues": len(ok),
                "ts": max(r["ts"] for r in ok),
            }
        )
    return out


def _across_venues(
    group: Sequence[dict[str, Any]], params: EngineParams
) -> tuple[Regime, int, float, float, dict[str, Any], list[dict[str, Any]]] | None:
    """(regime, horizon index, OI %, price %, driver row, venues counted) of one coin."""
    ok = [r for r in group if any(np.isfinite(t) and np.isfinite(n) for t, n in r["_oi_h"])]
    if not ok:
        return None
    driver = max(ok, key=lambda r: abs(r["oi_change_usd"] or 0.0))
    n_h = len(driver["_oi_h"])
    oi_h, px_h = np.full((n_h, 1), np.nan), np.full((n_h, 1), np.nan)
    for k in range(n_h):
        pairs = [r["_oi_h"][k] for r in ok if np.isfinite(r["_oi_h"][k][0] + r["_oi_h"][k][1])]
        then, now = sum(t for t, _ in pairs), sum(n for _, n in pairs)
        oi_h[k, 0] = (now / then - 1) * 100 if then > 0 else np.nan
        px_h[k, 0] = driver["_px_h"][k]
    bands = np.array(driver["_bands"], dtype=np.float64)
    _, codes, picks, _ = rules.read(oi_h, px_h, bands[:, :1], bands[:, 1:], params.reference)
    regime, k = Regime(int(codes[0])), int(picks[0])
    if regime is Regime.SHORT_COVERING and any(r["regime"] == "SHORT_SQUEEZE" for r in ok):
        regime = Regime.SHORT_SQUEEZE  # a venue's liquidations already show the squeeze
    return regime, k, float(oi_h[k, 0]), float(px_h[k, 0]), driver, ok


def _total(values: Iterable[float | None]) -> float | None:
    """Sum of the known values; None when no venue knows (not zero)."""
    known = [v for v in values if v is not None]
    return float(sum(known)) if known else None


def strip(rows: list[dict[str, Any]]) -> None:
    """Drop the internal per-horizon values `aggregate` needed."""
    for r in rows:
        for key in ("_oi_h", "_px_h", "_bands", "_horizons"):
            r.pop(key, None)


def rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order = {r.name: i for i, r in enumerate(RANK)}
    return sorted(rows, key=lambda r: (order.get(r["regime"], 99), -abs(r["oi_change_pct"] or 0)))


async def scan(
    clients: Sequence[VenueClient],
    store: Store,
    req: ScanRequest,
    progress: Callable[[str, int], None] = lambda venue, n: None,
) -> ScanResult:
    """Scan every venue concurrently; a venue that fails is reported, the others still are."""
    result = ScanResult()

    async def guarded(client: VenueClient) -> _VenueData | None:
        try:
            return await _collect(client, store, req, result, progress)
        except Banned as exc:
            result.failed.append(client.name)
            result.warnings.append(
                f"{client.name} has banned this IP for {exc.seconds:.0f} s; skipped"
            )
        except VenueError as exc:
            result.failed.append(client.name)
            result.warnings.append(f"{client.name} unreachable: {exc}; skipped")
        return None

    gathered = await asyncio.gather(*(guarded(c) for c in clients))
    for data in gathered:
        if data is None or not data.snaps:
            continue
        _store(store, data)
        result.rows.extend(_evaluate(store, data, req.params))
    result.aggregates = aggregate(result.rows, req.params)
    strip(result.rows)
    result.rows = rank(result.rows)
    result.aggregates = rank(result.aggregates)
    return result
