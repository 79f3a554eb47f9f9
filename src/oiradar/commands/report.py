"""`oiradar report`: a backtest written as one self-contained HTML page with its charts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from oiradar.commands.analysis import From, Interval, To
from oiradar.commands.app import DbOption, _store, app, err
from oiradar.commands.backtest import (
    CostOption,
    StudyRegime,
    StudySymbols,
    StudyVenue,
    study_request,
)
from oiradar.commands.engine_options import (
    EngineChoice,
    EvidenceOption,
    OiBandOption,
    PriceBandOption,
    TaperOption,
    WindowOption,
    WindowsOption,
)
from oiradar.errors import UserError
from oiradar.render import progress_bar


@app.command("report")
def report(
    out: Annotated[Path, typer.Option("--out", help="Folder to write index.html and images to.")],
    venue: StudyVenue = "binance",
    symbols: StudySymbols = None,
    start: From = None,
    end: To = None,
    interval: Interval = None,
    regime: StudyRegime = "short_covering",
    windows: WindowsOption = None,
    window: WindowOption = None,
    oi_threshold: OiBandOption = None,
    price_threshold: PriceBandOption = None,
    taper: TaperOption = None,
    evidence: EvidenceOption = None,
    cost_bps: CostOption = 10.0,
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

    Example: oiradar report --interval 1h --out report/ && open report/index.html
    """
    from oiradar.charts.report import write_report
    from oiradar.services.report import build_report

    if charts < 0:
        raise UserError("--charts takes a number >= 0")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    req = study_request(
        venue,
        symbols,
        start,
        end,
        interval,
        regime,
        EngineChoice(windows, window, oi_threshold, price_threshold, taper, evidence=evidence),
        cost_bps=cost_bps,
    )
    store = _store(readonly=True, db=db)
    with store, progress_bar(err, "{task.description:8}", err.is_terminal) as bar:
        task = bar.add_task("loading", total=len(req.symbols) if req.symbols else None)
        try:
            report = build_report(store, req, charts, lambda s: bar.advance(task))
            page = write_report(report, out)
        except OSError as exc:
            raise UserError(f"cannot write to {out}: {exc.strerror or exc}") from None
    typer.echo(str(page))
