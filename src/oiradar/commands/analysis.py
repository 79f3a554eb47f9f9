"""`oiradar analyze` (events) and `oiradar regimes` (bar timeline) over stored history."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from oiradar.commands.app import DbOption, _store, app, err
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
from oiradar.errors import UserError
from oiradar.render import Format, emit
from oiradar.signals.regimes import Regime
from oiradar.store import Store
from oiradar.units import canonical_symbol, interval_ms, parse_time

Symbol = Annotated[str, typer.Argument(help="Canonical symbol, e.g. BTCUSDT.", show_default=False)]
Venue = Annotated[str, typer.Option(help="Venue the series comes from.")]
From = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="Start, ISO 8601 UTC (e.g. 2024-08-08 or "
        "2024-08-08T21:00Z). Default: all stored history.",
    ),
]
To = Annotated[str | None, typer.Option("--to", help="End (inclusive), ISO 8601 UTC.")]
Interval = Annotated[
    str | None,
    typer.Option(
        help="Bar size to use when several are stored (default: the finest with data in range)."
    ),
]
FormatOpt = Annotated[Format, typer.Option("--format", help="table, json (one array) or csv.")]


def _regimes(text: str) -> tuple[Regime, ...] | None:
    if text.lower() == "all":
        return tuple(Regime)
    out = []
    for part in text.split(","):
        name = part.strip().upper()
        if name == "SHORT_SQUEEZE":
            name = "SHORT_COVERING"
        try:
            out.append(Regime[name])
        except KeyError:
            raise UserError(
                f"unknown regime {part!r}: use all or e.g. short_covering, new_longs,"
                " long_liquidation"
            ) from None
    return tuple(out)


def _query(symbol: str, venue: str, start: str | None, end: str | None, interval: str | None):  # type: ignore[no-untyped-def]
    from oiradar.services.analyze import Query

    if interval is not None:
        interval_ms(interval)
    return Query(
        symbol=canonical_symbol(symbol),
        venue=venue.lower(),
        start_ms=parse_time(start) if start else None,
        end_ms=parse_time(end) if end else None,
        interval=interval,
    )


def _bar(store: Store, q: Any) -> tuple[int, str | None]:
    """The bar size the command will use, and a note naming it when others are stored too
    (printed once the command has succeeded, so an error stays one line)."""
    from oiradar.services.analyze import choose_interval, interval_note

    chosen = choose_interval(store, q)
    return interval_ms(chosen), interval_note(store, q, chosen)


def _note(text: str | None) -> None:
    if text is not None:
        err.print(f"note: {text}", markup=False, highlight=False, soft_wrap=True)


EVENT_COLUMNS = [
    ("start", "start UTC"),
    ("bars", "bars"),
    ("horizon", "horizon"),
    ("regime", "regime"),
    ("tier", "tier"),
    ("oi_change_pct", "OI %"),
    ("price_change_pct", "price %"),
    ("funding_rate_8h", "fund 8h"),
    ("more_to_come", "more"),
    ("short_liq_usd", "short liq$"),
    ("long_liq_usd", "long liq$"),
    ("volume_ratio", "vol x"),
    ("confidence", "conf"),
]


@app.command("analyze")
def analyze(
    symbol: Symbol,
    venue: Venue = "binance",
    start: From = None,
    end: To = None,
    windows: WindowsOption = None,
    window: WindowOption = None,
    interval: Interval = None,
    oi_threshold: OiBandOption = None,
    price_threshold: PriceBandOption = None,
    taper: TaperOption = None,
    adaptive: AdaptiveOption = False,
    reference: ReferenceOption = False,
    evidence: EvidenceOption = None,
    regime: Annotated[
        str,
        typer.Option(help="short_covering (includes squeezes), all, or a comma list of regimes."),
    ] = "short_covering",
    fmt: FormatOpt = Format.TABLE,
    db: DbOption = None,
) -> None:
    """List regime events of one symbol from the store (short covering and squeezes by default).

    An event is a run of consecutive bars in one regime. Short-covering events carry a tier
    (strong = OI down >= 5 % within 30 min while price rises), funding in force (per
    interval and 8 h equivalent; more_to_come when clearly negative), liquidations by side
    (squeeze = a burst of short liquidations; null when no liquidation data), volume vs
    normal, session and a 0-100 confidence (docs/concepts.md).

    Example: oiradar analyze BTCUSDT --from 2024-08-01 --to 2024-08-20 --format json
    """
    from oiradar.services.analyze import event_dict, run_events

    q = _query(symbol, venue, start, end, interval)
    store = _store(readonly=True, db=db)
    with store:
        bar, note = _bar(store, q)
        choice = EngineChoice(
            windows, window, oi_threshold, price_threshold, taper, adaptive, reference, evidence
        )
        params = choice.params()
        read_note = choice.note(params, bar)
        evs, q = run_events(store, q, params, _regimes(regime))
    _note(note)
    _note(read_note)
    rows = [event_dict(e, q) for e in evs]
    emit(
        rows,
        fmt,
        columns=EVENT_COLUMNS,
        title=f"{q.symbol} on {q.venue}, {q.interval} bars: {len(rows)} event(s)",
    )
    if not rows and fmt is Format.TABLE:
        err.print("no events in range with these thresholds (try --adaptive or --regime all)")


@app.command("regimes")
def regimes(
    symbol: Symbol,
    venue: Venue = "binance",
    start: From = None,
    end: To = None,
    windows: WindowsOption = None,
    window: WindowOption = None,
    interval: Interval = None,
    oi_threshold: OiBandOption = None,
    price_threshold: PriceBandOption = None,
    taper: TaperOption = None,
    adaptive: AdaptiveOption = False,
    reference: ReferenceOption = False,
    evidence: EvidenceOption = None,
    fmt: FormatOpt = Format.TABLE,
    db: DbOption = None,
) -> None:
    """Print the bar-by-bar regime timeline of one symbol (JSON/CSV carry every window).

    Each bar's regime is decided at its close from the OI (base units) and price change
    over the window; a bar whose window touches missing data says so (data_gap) and a
    bar without data is NO_DATA, never a 0 % change.

    Example: oiradar regimes DOGEUSDT --from 2024-09-18T17:00Z --to 2024-09-18T19:00Z
    """
    from oiradar.services.analyze import run_timeline, timeline_rows

    q = _query(symbol, venue, start, end, interval)
    store = _store(readonly=True, db=db)
    with store:
        bar, note = _bar(store, q)
        choice = EngineChoice(
            windows, window, oi_threshold, price_threshold, taper, adaptive, reference, evidence
        )
        params = choice.params()
        read_note = choice.note(params, bar)
        tl, q = run_timeline(store, q, params)
    _note(note)
    _note(read_note)
    rows = timeline_rows(tl, q)
    emit(
        rows,
        fmt,
        columns=[
            ("ts", "bar open (UTC)"),
            ("close", "close"),
            ("oi_base", "OI (base)"),
            ("oi_change_pct", "OI %"),
            ("price_change_pct", "price %"),
            ("horizon", "over"),
            ("regime", "regime"),
            ("strong", "strong"),
            ("squeeze", "squeeze"),
            ("data_gap", "gap"),
        ],
        title=f"{q.symbol} on {q.venue}, {q.interval} bars",
    )
