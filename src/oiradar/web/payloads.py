"""JSON for the symbol view: a `ChartData` as the page draws it (the data comes from
`services.dashboard`). NaN becomes null: JSON has no NaN, and a gap must stay a gap in the
browser too."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from oiradar.services.chart import ChartData
from oiradar.signals.regimes import COVERING


def _list(values: Iterable[float]) -> list[float | None]:
    return [None if not math.isfinite(v) else round(float(v), 10) for v in values]


def chart_json(data: ChartData) -> dict[str, Any]:
    """The chart's series on one time axis, covering and squeeze runs as [start ms, end ms,
    regime] for shading, and the event marks."""
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
        "regimes": [
            [start, end, regime.name]
            for start, end, regime in data.regime_runs()
            if regime in COVERING
        ],
        "events": [
            {
                "signal_ms": e.signal_ms,
                "start_ms": e.start_ms,
                "end_ms": e.end_ms,
                "regime": e.regime.name,
                "oi_pct": e.oi_pct,
                "price_pct": e.price_pct,
                "y": e.y,
                "label": e.label,
            }
            for e in data.events
        ],
    }
