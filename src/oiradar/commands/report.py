"""`oiradar report`: a backtest written as one self-contained HTML page with its charts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from oiradar.cli import DbOption, _store, app, err
from oiradar.commands.analysis import From, Interval, To, Window, _regimes
from oiradar.errors import UserError
from oiradar.render import progress_bar
from oiradar.signals.params import EngineParams
from oiradar.store import Store
from oiradar.units import canonical_symbol, interval_ms, parse_time


@app.command("report")
def report(
    out: Annotated[Path, typer.Option("--out", help="Folder to write index.html and images to.")],
    venue: Annotated[str, typer.Option(help="Venue the series come from.")] = "binance",
    symbols: Annotated[
        str | None,
        typer.Option(help="Comma list of symbols. Default: every symbol stored for the venue."),
    ] = None,
    start: From = None,
    end: To = None,
    interval: Interval = None,
    regime: Annotated[str, typer.Option(help="Regimes to study (as backtest).")] = "short_covering",
    window: Window = None,
    oi_threshold: Annotated[
        float, typer.Option("--oi-threshold", help="OI flat band, +/- %.")
    ] = 1.5,
    price_threshold: Annotated[
        float, typer.Option("--price-threshold", help="Price flat band, +/- %.")
    ] = 1.0,
    cost_bps: Annotated[
        float, typer.Option("--cost-bps", help="Round-trip fees plus slippage, bps.")
    ] = 10.0,
    charts: Annotated[
        int, typer.Option(help="Chart the N symbols with most events (around their largest move).")
    ] = 4,
    db: DbOption = None,
) -> None:
    """Write a backtest (as `oiradar backtest` runs it) as one HTML page you can share: the
    tables per regime, tier and symbol with their intervals, the table without the top
    contributors, the distribution of +1h returns against random entries, a chart around
    each busiest symbol's largest move, and every event. Images are embedded in the page and
    written beside it; nothing is loaded from the network.

    Example: oiradar report --interval 1h --window 1h --out report/ && open report/index.html
    """
    from oiradar.services import backtest as bt
    from oiradar.services.report import write_report

    if charts < 0:
        raise UserError("--charts takes a number >= 0")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    bar_hint = interval_ms(interval) if interval else 5 * 60_000
    req = bt.BacktestRequest(
        venue=venue.lower(),
        symbols=tuple(canonical_symbol(s) for s in symbols.split(",") if s.strip())
        if symbols
        else None,
        start_ms=parse_time(start) if start else None,
        end_ms=parse_time(end) if end else None,
        interval=interval,
        regimes=_regimes(regime) or (),
        params=EngineParams(
            window_ms=interval_ms(window) if window else max(15 * 60_000, bar_hint),
            oi_threshold_pct=oi_threshold,
            price_threshold_pct=price_threshold,
        ),
        cost_bps=cost_bps,
    )
    store = _store(readonly=True, db=db)
    assert isinstance(store, Store)
    with store, progress_bar(err, "{task.description:8}", err.is_terminal) as bar:
        task = bar.add_task("loading", total=len(req.symbols) if req.symbols else None)
        try:
            page = write_report(store, req, out, charts, lambda s: bar.advance(task))
        except OSError as exc:
            raise UserError(f"cannot write to {out}: {exc.strerror or exc}") from None
    typer.echo(str(page))
