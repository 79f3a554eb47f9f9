"""`oiradar scan`: which perpetual markets are in short covering (and every other regime) now."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import TaskID

from oiradar.commands.app import DbOption, _store, app, err, fail
from oiradar.commands.engine_options import (
    AdaptiveOption,
    EngineChoice,
    EvidenceOption,
    OiBandOption,
    PriceBandOption,
    ReferenceOption,
    TaperOption,
    WindowOption,
    WindowsOption,
)
from oiradar.commands.selection import (
    DEFAULT_VENUES_OPTION,
    AllOption,
    EndpointOption,
    SymbolsOption,
    TopOption,
    VenuesOption,
    WatchlistOption,
    select,
)
from oiradar.errors import UserError
from oiradar.lifecycle import run
from oiradar.render import Format, emit, progress_bar
from oiradar.units import MINUTE_MS

PARTIAL_EXIT = 5  # some venues answered
NOTHING_EXIT = 4  # none did (the VenueError exit code)

COLUMNS = [
    ("symbol", "symbol"),
    ("venue", "venue"),
    ("regime", "regime"),
    ("strong", "strong"),
    ("oi_change_pct", "OI %"),
    ("price_change_pct", "price %"),
    ("horizon", "over"),
    ("oi_usd", "OI $"),
    ("oi_change_usd", "ΔOI $"),
    ("funding_rate", "funding"),
    ("funding_rate_8h", "fund 8h"),
    ("confidence", "conf"),
    ("driver", "driver"),
    ("history", "track record"),
]


def _min_regime(text: str | None) -> set[str] | None:
    if text is None:
        return None
    from oiradar.services.markets import RANK

    name = text.strip().upper()
    names = [r.name for r in RANK]
    if name not in names:
        raise UserError(
            f"unknown regime {text!r} for --min-regime: use one of "
            f"{', '.join(n.lower() for n in names[:8])}"
        )
    return set(names[: names.index(name) + 1])


@app.command("scan")
def scan(
    venues: VenuesOption = DEFAULT_VENUES_OPTION,
    symbols: SymbolsOption = None,
    watchlist: WatchlistOption = None,
    top: TopOption = None,
    all_: AllOption = False,
    windows: WindowsOption = None,
    window: WindowOption = None,
    adaptive: AdaptiveOption = False,
    reference: ReferenceOption = False,
    min_regime: Annotated[
        str | None,
        typer.Option(
            help="Show only rows at least this telling, in the order short_squeeze, "
            "short_covering, long_liquidation, new_shorts, new_longs, low_conviction_rally, "
            "low_conviction_selloff, neutral."
        ),
    ] = None,
    oi_threshold: OiBandOption = None,
    price_threshold: PriceBandOption = None,
    taper: TaperOption = None,
    evidence: EvidenceOption = None,
    endpoint: EndpointOption = None,
    fmt: Annotated[
        Format, typer.Option("--format", help="table, json (one array) or csv.")
    ] = Format.TABLE,
    db: DbOption = None,
) -> None:
    """Scan the market now: regime, OI % and price % over the window, OI in USD, funding and
    confidence per venue and symbol, plus one row per coin across venues (total OI change in
    USD and the venue driving it).

    Uses the cheapest endpoints: one bulk snapshot per venue where it exists, and only the
    recent klines and OI history the store does not already hold, within each venue's rate
    limits. Everything fetched is stored, so the next scan is cheaper and `oiradar analyze`
    sees the same data. A symbol a venue does not list is a warning; an unreachable venue is
    named and the others still report (exit code 5 = partial, 4 = no venue answered).

    Example: oiradar scan --venues binance,bybit --top 50 --min-regime short_covering
    """
    from oiradar.services.scan import ScanRequest, window_name
    from oiradar.services.scan import scan as run_scan
    from oiradar.venues.registry import parse_venues

    chosen = parse_venues(venues)
    picked, top_n = select(symbols, watchlist, top, all_)
    params = EngineChoice(
        windows, window, oi_threshold, price_threshold, taper, adaptive, reference, evidence
    ).params(grid_ms=5 * MINUTE_MS)
    keep = _min_regime(min_regime)
    req = ScanRequest(chosen, picked, top_n, params, endpoint)
    show = fmt is Format.TABLE and err.is_terminal
    with _store(db=db) as store, progress_bar(err, "{task.description:8}", show) as bar:
        tasks: dict[str, TaskID] = {v: bar.add_task(v, total=None) for v in chosen}

        def progress(venue: str, n: int) -> None:
            if n > 0:
                bar.update(tasks[venue], total=n)
            else:
                bar.advance(tasks[venue])

        result = run(run_scan(req, store, progress))
    if len(result.failed) == len(chosen):
        for warning in result.warnings:
            err.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
        fail(f"no venue answered ({', '.join(chosen)}); check the network or --endpoint")
        raise typer.Exit(NOTHING_EXIT)
    if picked is not None and not result.rows:  # an empty table would read "all quiet"
        for warning in result.warnings:
            err.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
        answered = [v for v in chosen if v not in result.failed]
        raise UserError(f"none of {', '.join(picked)} is listed on {', '.join(answered)}")
    rows = (
        [*result.aggregates, *result.rows]
        if fmt is Format.TABLE
        else [*result.rows, *result.aggregates]
    )
    if keep is not None:
        rows = [r for r in rows if r["regime"] in keep]
    title = f"scan of {', '.join(chosen)}: {len(result.rows)} market(s), {window_name(params)}"
    emit(rows, fmt, columns=COLUMNS, title=title)
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    if result.partial:
        raise typer.Exit(PARTIAL_EXIT)
