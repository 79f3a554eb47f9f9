"""`oiradar report`'s data: the backtest study (its tables, every event, the +1h returns of
events and of the control) and, for the symbols with most events, the chart around their
largest move. Nothing is drawn here: `charts.report` renders a `Report`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from oiradar.research.backtest import BacktestResult, run, windows_used
from oiradar.research.request import BacktestRequest
from oiradar.research.trades import Trades, study
from oiradar.services.backtest import load_samples
from oiradar.services.chart import ChartData, gather, select
from oiradar.store import Store
from oiradar.units import DAY_MS, iso, parse_time


@dataclass(frozen=True, slots=True)
class SymbolChart:
    """A busy symbol's chart around its largest move, as the page names and captions it."""

    name: str
    caption: str
    data: ChartData


@dataclass(frozen=True, slots=True)
class Report:
    req: BacktestRequest
    result: BacktestResult
    trades: Trades
    control: Trades
    symbols: int
    windows: str  # the horizons read, e.g. "horizons 1h"
    charts: tuple[SymbolChart, ...]


def build_report(
    store: Store,
    req: BacktestRequest,
    charts: int = 4,
    progress: Callable[[str], None] = lambda s: None,
) -> Report:
    """Run the study once over the stored history and gather the charts of the `charts`
    symbols with most events."""
    samples = load_samples(store, req, progress)
    result = run(samples, req)
    trades, control = study(samples, req, req.params)
    return Report(
        req,
        result,
        trades,
        control,
        len(samples),
        windows_used(samples, req),
        tuple(symbol_charts(store, result, req, charts)),
    )


def symbol_charts(
    store: Store, result: BacktestResult, req: BacktestRequest, limit: int
) -> list[SymbolChart]:
    """For the `limit` symbols with most events, the chart around their largest +1h move."""
    counts: dict[str, int] = {}
    for e in result.events:
        counts[e["symbol"]] = counts.get(e["symbol"], 0) + 1
    out = []
    for sym in sorted(counts, key=lambda s: -counts[s])[:limit]:
        mine = [e for e in result.events if e["symbol"] == sym and e["ret_1h_pct"] is not None]
        if not mine:
            continue
        big = max(mine, key=lambda e: abs(e["ret_1h_pct"]))
        t = parse_time(big["signal_at"])
        sel = select(store, sym, req.venue, t - 2 * DAY_MS, t + DAY_MS, req.interval)
        caption = (
            f"{sym}: its largest +1h move after an event ({big['regime'].lower()}, entry "
            f"{iso(t)[:16].replace('T', ' ')} UTC, {big['ret_1h_pct']:+.2f} %)"
        )
        out.append(SymbolChart(f"chart-{sym}.png", caption, gather(store, sel, req.params)))
    return out
