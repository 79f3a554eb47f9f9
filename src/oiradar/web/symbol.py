"""The symbol view's data: the chart (the same gathering as `oiradar chart`) and the symbol's
event history with forward returns (the same study as `oiradar backtest`), as JSON."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from oiradar.charts.data import gather, select
from oiradar.errors import NoDataError
from oiradar.services import backtest as bt
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import Regime
from oiradar.store import Store
from oiradar.units import DAY_MS, interval_ms


def _list(values: Any) -> list[float | None]:
    """NaN -> null: JSON has no NaN, and a gap must stay a gap in the browser too."""
    return [None if not math.isfinite(v) else round(float(v), 10) for v in values]


def _spans(ts: np.ndarray[Any, Any], regime: np.ndarray[Any, Any], bar_ms: int) -> list[Any]:
    """Runs of covering and squeeze bars as [start ms, end ms, regime] for shading."""
    out: list[Any] = []
    wanted = (Regime.SHORT_COVERING, Regime.SHORT_SQUEEZE)
    for i, code in enumerate(regime):
        name = Regime(int(code))
        if name not in wanted:
            continue
        start, end = int(ts[i]), int(ts[i]) + bar_ms
        if out and out[-1][2] == name.name and out[-1][1] == start:
            out[-1][1] = end
        else:
            out.append([start, end, name.name])
    return out


def chart_payload(
    store: Store,
    symbol: str,
    venue: str,
    start_ms: int | None,
    end_ms: int | None,
    window_ms: int | None,
) -> dict[str, Any]:
    sel = select(store, symbol, None if venue == "all" else venue, start_ms, end_ms, None)
    params = _params(window_ms, interval_ms(sel.interval))
    data = gather(store, sel, params)
    return {
        "symbol": data.symbol,
        "base": data.base,
        "interval": data.interval,
        "window": data.window,
        "price_venue": data.price_venue,
        "venues": list(data.venues),
        "ts": [int(t) for t in data.ts],
        "open": _list(data.open),
        "high": _list(data.high),
        "low": _list(data.low),
        "close": _list(data.close),
        "oi": [
            {
                "venue": v.venue,
                "oi_usd": _list(v.oi_usd),
                "oi_base": _list(v.oi_base),
                "funding_8h_pct": _list(v.funding_8h_pct),
            }
            for v in data.oi
        ],
        "oi_total_usd": _list(data.oi_total_usd),
        "liq_venues": list(data.liq_venues),
        "liq_long_usd": _list(data.liq_long_usd),
        "liq_short_usd": _list(data.liq_short_usd),
        "regimes": _spans(data.ts, data.regime, data.bar_ms),
        "events": [
            {
                "signal_ms": e.signal_ms,
                "start_ms": e.start_ms,
                "end_ms": e.end_ms,
                "regime": e.regime,
                "oi_pct": e.oi_pct,
                "price_pct": e.price_pct,
                "y": e.y,
                "label": e.label,
            }
            for e in data.events
        ],
    }


def _params(window_ms: int | None, bar_ms: int) -> EngineParams:
    """The engine's horizons, or one window rounded down to a multiple of the bar."""
    if window_ms is None:
        return EngineParams()
    return EngineParams(windows_ms=(max(window_ms, bar_ms) // bar_ms * bar_ms,))


def events_payload(
    store: Store, symbol: str, venue: str, days: int, window_ms: int | None
) -> dict[str, Any]:
    """The symbol's events over its last `days` of stored history with their outcomes."""
    span = store.candle_span(venue, symbol, "5m") or _any_span(store, venue, symbol)
    end = span[1]
    req = bt.BacktestRequest(
        venue=venue,
        symbols=(symbol,),
        start_ms=end - days * DAY_MS,
        end_ms=end,
        params=EngineParams(),
        drop_top=0,
    )
    samples = bt.load_samples(store, req)
    req = replace(req, params=_params(window_ms, samples[0].grid.bar_ms))
    try:
        result = bt.run(samples, req)
    except NoDataError:
        return {"symbol": symbol, "venue": venue, "days": days, "summary": None, "events": []}
    summary = next((g for g in result.groups if g["group"] == "all"), None)
    return {
        "symbol": symbol,
        "venue": venue,
        "days": days,
        "summary": summary,
        "events": list(reversed(result.events)),
        "notes": result.notes,
    }


def _any_span(store: Store, venue: str, symbol: str) -> tuple[int, int]:
    for interval in store.intervals(venue, symbol):
        span = store.candle_span(venue, symbol, interval)
        if span is not None:
            return span
    raise NoDataError(f"no candles for {symbol} on {venue}")
