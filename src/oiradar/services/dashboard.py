"""The dashboard's data, read from the store the running `oiradar watch` writes.

The market board holds every watched market's newest bar, per venue and across venues: the
rows `oiradar scan` prints (`services.markets`), from the same reading of the same engine,
so the page, the scan and `oiradar analyze` agree; only series whose newest bar changed are
recomputed. "Watched" means a (venue, symbol) whose 5m candles reach within `MAX_AGE_MS` of
the newest 5m candle in the store. A symbol's view is its chart (the same gathering as
`oiradar chart`) and its events with their outcomes (the same study as `oiradar backtest`).
The web app only turns these into JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from oiradar.errors import NoDataError
from oiradar.research import backtest as research
from oiradar.research.request import BacktestRequest
from oiradar.services.backtest import load_samples
from oiradar.services.chart import ChartData, gather, select
from oiradar.services.markets import MarketRow, aggregate, market_row, ranked
from oiradar.signals.engine import timeline
from oiradar.signals.params import EngineParams
from oiradar.signals.reading import reading_at
from oiradar.store import Store
from oiradar.units import DAY_MS, HOUR_MS, MINUTE_MS, interval_ms, interval_name

BAR = "5m"
BAR_MS = 5 * MINUTE_MS
MAX_AGE_MS = 2 * HOUR_MS
# Enough history for the window and the trailing baselines' minimum (one day).
READ_MS = DAY_MS + 2 * HOUR_MS


@dataclass(slots=True)
class Board:
    """Rows per (venue, symbol), cached by the newest bar they were computed for."""

    params: EngineParams
    rows: dict[tuple[str, str], MarketRow] = field(default_factory=dict)
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
        rows = ranked(self.rows.values())
        for row in rows:
            row["updated"] = row["ts"]  # the bar's close: when the row was read
        return {
            "version": self.version,
            "window": ",".join(interval_name(w) for w in self.params.windows_ms),
            "rows": rows,
            "aggregates": ranked(aggregate(list(self.rows.values()), self.params)),
        }


def latest_bars(store: Store) -> dict[tuple[str, str], int]:
    """The newest 5m bar open per (venue, symbol)."""
    return {(v, s): t for v, s, t in store.latest_candles(BAR)}


def _compute(
    store: Store, venue: str, symbol: str, last_ms: int, params: EngineParams
) -> MarketRow | None:
    """The row of the bar opened at `last_ms`, read at its close with its own funding."""
    series = store.read_series(venue, symbol, BAR, last_ms - READ_MS, last_ms)
    if len(series.candle_ts) == 0:
        return None
    reading = reading_at(timeline(series, params), -1, params)
    funding = (reading.funding_rate, reading.funding_interval_h)
    return market_row(venue, symbol, reading, last_ms + BAR_MS, params, funding)


def _params(window_ms: int | None, bar_ms: int) -> EngineParams:
    """The engine's horizons, or one window rounded down to a multiple of the bar."""
    if window_ms is None:
        return EngineParams()
    return EngineParams(windows_ms=(max(window_ms, bar_ms) // bar_ms * bar_ms,))


def symbol_chart(
    store: Store,
    symbol: str,
    venue: str,
    start_ms: int | None,
    end_ms: int | None,
    window_ms: int | None,
) -> ChartData:
    """The symbol's chart over every venue (`venue` "all") or one."""
    sel = select(store, symbol, None if venue == "all" else venue, start_ms, end_ms, None)
    return gather(store, sel, _params(window_ms, interval_ms(sel.interval)))


def symbol_events(
    store: Store, symbol: str, venue: str, days: int, window_ms: int | None
) -> dict[str, Any]:
    """The symbol's events over its last `days` of stored history with their outcomes."""
    span = store.candle_span(venue, symbol, BAR) or _any_span(store, venue, symbol)
    end = span[1]
    req = BacktestRequest(
        venue=venue,
        symbols=(symbol,),
        start_ms=end - days * DAY_MS,
        end_ms=end,
        params=EngineParams(),
        drop_top=0,
    )
    samples = load_samples(store, req)
    req = replace(req, params=_params(window_ms, samples[0].grid.bar_ms))
    try:
        result = research.run(samples, req)
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
