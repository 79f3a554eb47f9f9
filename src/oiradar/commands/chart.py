"""`oiradar chart`: price, OI, funding and liquidations with regimes and events, as a PNG to
share or a self-contained HTML file to explore."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from oiradar.commands.analysis import Interval, Symbol, To
from oiradar.commands.app import DbOption, _store, app
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
from oiradar.units import canonical_symbol, interval_ms, parse_time

if TYPE_CHECKING:
    from oiradar.services.chart import ChartData

FORMATS = {".png": "png", ".html": "html", ".htm": "html"}

ChartFrom = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="Start, ISO 8601 UTC (e.g. 2024-08-07 or 2024-08-08T18:00Z). Default: 3 days "
        "before --to.",
    ),
]
ChartVenue = Annotated[
    str,
    typer.Option(
        help="A venue, or all: every venue with candles of the symbol (OI per venue and "
        "summed, liquidations summed). Candles, regimes and events come from a venue with "
        "liquidation data (so squeezes show), binance first, then bybit, okx, bitget, gate, "
        "hyperliquid, dydx.",
    ),
]
Output = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="File to write; .png (static, to share) or .html (interactive, self-contained, "
        "works offline). Default: SYMBOL_FROM-TO.png in the current directory.",
        show_default=False,
    ),
]


def output_format(path: Path) -> str:
    """'png' or 'html' from the suffix; anything else is a user error."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"cannot tell the chart format of {str(path)!r}: use a .png or .html file")
    return fmt


def _stamp(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y%m%d") if dt.hour == dt.minute == 0 else dt.strftime("%Y%m%dT%H%M")


def default_output(symbol: str, start_ms: int, end_ms: int) -> Path:
    """SYMBOL_FROM-TO.png, e.g. BTCUSDT_20240807-20240810.png (times added when not 00:00)."""
    return Path(f"{symbol}_{_stamp(start_ms)}-{_stamp(end_ms)}.png")


@app.command("chart")
def chart(
    symbol: Symbol,
    venue: ChartVenue = "all",
    start: ChartFrom = None,
    end: To = None,
    interval: Interval = None,
    windows: WindowsOption = None,
    window: WindowOption = None,
    oi_threshold: OiBandOption = None,
    price_threshold: PriceBandOption = None,
    taper: TaperOption = None,
    evidence: EvidenceOption = None,
    output: Output = None,
    db: DbOption = None,
) -> None:
    """Draw one symbol's history: candles, OI, funding and liquidations on one UTC time axis.

    Four panels share the time axis: price candles (short covering and squeeze bars shaded,
    a ribbon naming every bar's regime, a marker and label at each event's signal time);
    open interest per venue (base units for one venue; USD and the cross-venue sum for
    several); funding as % per 8 h; liquidations per bar in USD, shorts up and longs down,
    unknown bars hatched (never drawn as zero). Regimes and events are those of `oiradar
    analyze` with the same options. Prints the path written. Details: docs/charts.md.

    Example (the 2024-08-08 short squeeze, on the real data of docs/charts.md):

    \b
      oiradar chart BTCUSDT --from 2024-08-07 --to 2024-08-10 --interval 1h -o btc-squeeze.png
    """
    from oiradar.services.chart import gather, select

    fmt = output_format(output) if output is not None else "png"
    if output is not None and not output.parent.is_dir():
        raise UserError(f"cannot write {output}: no directory {output.parent}")
    sym = canonical_symbol(symbol)
    if interval is not None:
        interval_ms(interval)
    store = _store(readonly=True, db=db)
    with store:
        sel = select(
            store,
            sym,
            None if venue.lower() == "all" else venue.lower(),
            parse_time(start) if start else None,
            parse_time(end) if end else None,
            interval,
        )
        params = EngineChoice(
            windows, window, oi_threshold, price_threshold, taper, evidence=evidence
        ).params()
        data = gather(store, sel, params)
    path = output or default_output(sym, sel.start_ms, sel.end_ms)
    _write(data, path, fmt)
    typer.echo(str(path))


def _write(data: ChartData, path: Path, fmt: str) -> None:
    """Render into a temporary file beside `path`, then rename: a failed or interrupted
    render never leaves a truncated chart (or clobbers the previous one)."""
    tmp = path.with_name(f".{path.name}.part")
    try:
        if fmt == "png":
            from oiradar.charts.png import render_png

            render_png(data, tmp)
        else:
            from oiradar.charts.html import render_html

            render_html(data, tmp)
        tmp.replace(path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
