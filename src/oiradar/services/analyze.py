"""`oiradar analyze` / `oiradar regimes`: load one series from the store and run the engine."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from oiradar.errors import NoDataError, UserError
from oiradar.records import MarketSeries
from oiradar.signals.engine import Event, Timeline, events, timeline
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import Regime
from oiradar.signals.rules import evidence_names
from oiradar.store import Store
from oiradar.units import interval_ms, interval_name, iso

WARMUP_DAYS_MS = 8 * 86_400_000  # context lookbacks (7 d) plus the window


@dataclass(frozen=True, slots=True)
class Query:
    symbol: str
    venue: str = "binance"
    start_ms: int | None = None
    end_ms: int | None = None
    interval: str | None = None


def choose_interval(store: Store, q: Query) -> str:
    """The finest bar size stored for the symbol (5m beats 1h), or the one asked for."""
    stored = store.intervals(q.venue, q.symbol)
    if not stored:
        venues = store.venues_for(q.symbol)
        hint = f"; it is stored for {', '.join(venues)}" if venues else ""
        raise NoDataError(f"no candles for {q.symbol} on {q.venue} in {store.location}{hint}")
    if q.interval is not None:
        if q.interval not in stored:
            raise NoDataError(
                f"no {q.interval} candles for {q.symbol} on {q.venue}; stored: {', '.join(stored)}"
            )
        return q.interval
    with_range = [
        i for i in stored if store.candle_span(q.venue, q.symbol, i, q.start_ms, q.end_ms)
    ]
    pool = with_range or stored
    return min(pool, key=interval_ms)


def other_intervals(store: Store, q: Query, chosen: str) -> list[str]:
    """Bar sizes stored for the symbol besides `chosen` that have candles in the range."""
    return sorted(
        (
            i
            for i in store.intervals(q.venue, q.symbol)
            if i != chosen and store.candle_span(q.venue, q.symbol, i, q.start_ms, q.end_ms)
        ),
        key=interval_ms,
    )


def interval_note(store: Store, q: Query, chosen: str) -> str | None:
    """When no --interval was given and other bar sizes hold data: which one was used, and
    that the others exist (the finest is used, which may hold far less history)."""
    if q.interval is not None:
        return None
    others = other_intervals(store, q, chosen)
    if not others:
        return None
    where = " in range" if q.start_ms is not None or q.end_ms is not None else ""
    return (
        f"{q.symbol} on {q.venue}: {chosen} bars, the finest stored{where}; also stored: "
        f"{', '.join(others)} (choose with --interval {others[0]})"
    )


def load(store: Store, q: Query) -> tuple[MarketSeries, Query]:
    """The series from (start - warm-up) to end, so trailing baselines exist at `start`."""
    if q.start_ms is not None and q.end_ms is not None and q.start_ms > q.end_ms:
        raise UserError(f"empty range: --from {iso(q.start_ms)} is after --to {iso(q.end_ms)}")
    interval = choose_interval(store, q)
    lo = None if q.start_ms is None else q.start_ms - WARMUP_DAYS_MS
    series = store.read_series(q.venue, q.symbol, interval, lo, q.end_ms)
    in_range = series.candle_ts
    if q.start_ms is not None:
        in_range = in_range[in_range >= q.start_ms]
    if len(in_range) == 0:
        span = store.candle_span(q.venue, q.symbol, interval)
        stored = f"; stored: {iso(span[0])} .. {iso(span[1])}" if span else ""
        raise NoDataError(
            f"no {interval} candles for {q.symbol} on {q.venue} in the requested range{stored}"
        )
    if len(series.oi_ts) == 0:
        raise NoDataError(f"no open interest for {q.symbol} on {q.venue} in the requested range")
    return series, replace(q, interval=interval)


def run_timeline(store: Store, q: Query, params: EngineParams) -> tuple[Timeline, Query]:
    series, q = load(store, q)
    return timeline(series, params), q


def run_events(
    store: Store, q: Query, params: EngineParams, regimes: tuple[Regime, ...] | None
) -> tuple[list[Event], Query]:
    tl, q = run_timeline(store, q, params)
    evs = events(tl, params, regimes)
    if q.start_ms is not None:
        evs = [e for e in evs if e.start_ms >= q.start_ms]
    return evs, q


def _num(x: float | None, digits: int = 4) -> float | None:
    if x is None or not np.isfinite(x):
        return None
    return round(float(x), digits)


def event_dict(ev: Event, q: Query) -> dict[str, Any]:
    """The documented JSON shape of an event (docs/cli.md#analyze)."""
    return {
        "venue": q.venue,
        "symbol": q.symbol,
        "interval": q.interval,
        "regime": ev.regime.name,
        "start": iso(ev.start_ms),
        "end": iso(ev.end_ms),
        "signal_at": iso(ev.signal_ms),
        "bars": ev.bars,
        "horizon": interval_name(ev.horizon_ms),
        "horizons": [interval_name(h) for h in ev.horizons_ms],
        "oi_change_pct": _num(ev.oi_change_pct, 3),
        "price_change_pct": _num(ev.price_change_pct, 3),
        "largest_oi_drop_pct": _num(ev.largest_oi_drop_pct, 3),
        "peak_price_gain_pct": _num(ev.peak_price_gain_pct, 3),
        "tier": ev.tier,
        "confidence": ev.confidence,
        "funding_rate": _num(ev.funding_rate, 8),
        "funding_interval_h": _num(ev.funding_interval_h, 2),
        "funding_rate_8h": _num(ev.funding_rate_8h, 8),
        "more_to_come": ev.more_to_come,
        "short_liq_usd": _num(ev.short_liq_usd, 0),
        "long_liq_usd": _num(ev.long_liq_usd, 0),
        "squeeze": ev.squeeze,
        "evidence": [e.value for e in ev.evidence],
        "breakout": ev.breakout,
        "ls_account": _num(ev.ls_account, 4),
        "premium": _num(ev.premium, 6),
        "volume_ratio": _num(ev.volume_ratio, 2),
        "session": ev.session,
        "weekend": ev.weekend,
        "data_gap": ev.data_gap,
    }


def timeline_rows(tl: Timeline, q: Query) -> list[dict[str, Any]]:
    """Bar-by-bar rows for `oiradar regimes` (in range only)."""
    g = tl.grid
    lo = 0 if q.start_ms is None else int(np.searchsorted(g.ts, q.start_ms))
    names = tl.horizons.names()
    rows = []
    for i in range(lo, len(g.ts)):
        row: dict[str, Any] = {
            "ts": iso(int(g.ts[i])),
            "close": _num(g.close[i], 8),
            "oi_base": _num(g.oi[i], 4),
            "oi_change_pct": _num(tl.oi_pct[i], 3),
            "price_change_pct": _num(tl.price_pct[i], 3),
            "horizon": names[int(tl.reading[i])],
            "horizons_fired": list(tl.horizon_names(int(tl.fired[i]))),
            "regime": Regime(int(tl.regime[i])).name,
            "strong": bool(tl.strong[i]),
            "squeeze": None if np.isnan(tl.squeeze[i]) else bool(tl.squeeze[i]),
            "data_gap": bool(tl.gap[i]),
            "oi_threshold_pct": _num(tl.oi_threshold[i], 3),
            "price_threshold_pct": _num(tl.price_threshold[i], 3),
            "short_liq_usd": _num(tl.short_liq_usd[i], 0),
            "evidence": [e.value for e in evidence_names(int(tl.evidence[i]))],
        }
        for name, (oi_c, px_c) in tl.changes.items():
            row[f"oi_{name}_pct"] = _num(oi_c[i], 3)
            row[f"price_{name}_pct"] = _num(px_c[i], 3)
        for k, name in enumerate(names):  # the horizons read, whatever the report windows
            row[f"oi_{name}_pct"] = _num(tl.oi_h[k, i], 3)
            row[f"price_{name}_pct"] = _num(tl.price_h[k, i], 3)
        rows.append(row)
    return rows
