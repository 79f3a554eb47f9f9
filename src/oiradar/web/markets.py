"""The dashboard's table: every watched market's newest bar, per venue and across venues.

"Watched" means a (venue, symbol) whose 5m candles reach within `max_age_ms` of the newest
5m candle in the store (what `oiradar watch` keeps writing). Rows are the same as
`oiradar scan` prints (`services.scan.market_row`, `aggregate`), from the same engine, so
the page, the scan and `oiradar analyze` agree. Only series whose newest bar changed are
recomputed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from oiradar.records import MarketSnapshot
from oiradar.services.scan import aggregate, market_row, rank, strip
from oiradar.signals.engine import timeline
from oiradar.signals.params import EngineParams
from oiradar.store import Store
from oiradar.units import DAY_MS, HOUR_MS, MINUTE_MS, iso

BAR = "5m"
BAR_MS = 5 * MINUTE_MS
MAX_AGE_MS = 2 * HOUR_MS
# Enough history for the window and the trailing baselines' minimum (one day).
READ_MS = DAY_MS + 2 * HOUR_MS


@dataclass(slots=True)
class Board:
    """Rows per (venue, symbol), cached by the newest bar they were computed for."""

    params: EngineParams
    rows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    computed_at: dict[tuple[str, str], int] = field(default_factory=dict)
    version: int = 0  # bumps whenever any row changed

    def refresh(self, store: Store) -> bool:
        """Recompute the series whose newest bar moved; True if anything changed."""
        newest = latest_bars(store)
        if not newest:
            changed = bool(self.rows)
            self.rows.clear()
            self.computed_at.clear()
            self.version += changed
            return changed
        horizon = max(newest.values()) - MAX_AGE_MS
        live = {k: t for k, t in newest.items() if t >= horizon}
        changed = False
        for key in [k for k in self.rows if k not in live]:
            del self.rows[key]
            self.computed_at.pop(key, None)
            changed = True
        for key, last in live.items():
            if self.computed_at.get(key) == last:
                continue
            row = _compute(store, key[0], key[1], last, self.params)
            if row is not None:
                self.rows[key] = row
            self.computed_at[key] = last
            changed = True
        self.version += changed
        return changed

    def table(self) -> dict[str, Any]:
        """Per-venue rows and one row per coin across venues, most telling first."""
        rows = [dict(r) for r in self.rows.values()]
        aggregates = aggregate(rows, self.params)
        strip(rows)
        return {
            "version": self.version,
            "window": _window_name(self.params),
            "rows": rank(rows),
            "aggregates": rank(aggregates),
        }


def latest_bars(store: Store) -> dict[tuple[str, str], int]:
    """The newest 5m bar open per (venue, symbol)."""
    return {(v, s): t for v, s, t in store.latest_candles(BAR)}


def _compute(
    store: Store, venue: str, symbol: str, last_ms: int, params: EngineParams
) -> dict[str, Any] | None:
    series = store.read_series(venue, symbol, BAR, last_ms - READ_MS, last_ms)
    if len(series.candle_ts) == 0:
        return None
    tl = timeline(series, params)
    g = tl.grid
    rate, ivl = float(g.funding_rate[-1]), float(g.funding_interval_h[-1])
    close = float(g.close[-1])
    snap = MarketSnapshot(
        venue,
        symbol,
        last_ms + BAR_MS,
        last_price=close if math.isfinite(close) else None,
        funding_rate=rate if math.isfinite(rate) else None,
        funding_interval_h=ivl if math.isfinite(ivl) else None,
    )
    row = market_row(tl, snap, params)
    row["updated"] = iso(last_ms + BAR_MS)
    return row


def _window_name(params: EngineParams) -> str:
    from oiradar.units import interval_name

    return ",".join(interval_name(w) for w in params.windows_ms)
