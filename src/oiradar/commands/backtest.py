"""`oiradar backtest`: the event study over stored history, and its threshold sweep."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import typer

from oiradar.commands.analysis import From, Interval, To, _regimes
from oiradar.commands.app import DbOption, _store, app, err
from oiradar.commands.engine_options import (
    AdaptiveOption,
    EngineChoice,
    EvidenceOption,
    OiBandOption,
    PriceBandOption,
    TaperOption,
    WindowOption,
    WindowsOption,
)
from oiradar.errors import UserError
from oiradar.render import Format, emit, plural, progress_bar
from oiradar.units import canonical_symbol, interval_ms, parse_time

GROUP_COLUMNS = [
    ("group", "group"),
    ("key", "key"),
    ("events", "n"),
    ("hit", "hit% [CI]"),
    ("mean", "mean% [95% CI]"),
    ("median", "med%"),
    ("control_mean", "ctrl%"),
    ("edge", "edge%"),
    ("p_value", "p"),
    ("mean_15m", "15m%"),
    ("mean_4h", "4h%"),
    ("mean_1d", "24h%"),
    ("mfe_median", "MFE%"),
    ("mae_median", "MAE%"),
]
SWEEP_COLUMNS = [
    ("oi_threshold", "OI band %"),
    ("price_threshold", "price band %"),
    *GROUP_COLUMNS[2:9],
]


StudyVenue = Annotated[str, typer.Option("--venue", help="Venue the series come from.")]
StudySymbols = Annotated[
    str | None,
    typer.Option(
        "--symbols", help="Comma list of symbols. Default: every symbol stored for the venue."
    ),
]
StudyRegime = Annotated[
    str,
    typer.Option(
        "--regime",
        help="Regimes to study (comma list or all); short_covering includes squeezes, "
        "reported apart.",
    ),
]
CostOption = Annotated[
    float, typer.Option("--cost-bps", help="Round-trip fees plus slippage, in basis points.")
]


def study_request(
    venue: str,
    symbols: str | None,
    start: str | None,
    end: str | None,
    interval: str | None,
    regime: str,
    engine: EngineChoice,
    *,
    cost_bps: float = 10.0,
    **extra: Any,
) -> Any:
    """The `BacktestRequest` of the options `backtest` and `report` share."""
    from oiradar.research.request import BacktestRequest

    if not math.isfinite(cost_bps) or cost_bps < 0:
        raise UserError("--cost-bps must be a number >= 0")
    if interval is not None:
        interval_ms(interval)  # a malformed name is a usage error before the store is read
    return BacktestRequest(
        venue=venue.lower(),
        symbols=tuple(canonical_symbol(s) for s in symbols.split(",") if s.strip())
        if symbols
        else None,
        start_ms=parse_time(start) if start else None,
        end_ms=parse_time(end) if end else None,
        interval=interval,
        regimes=_regimes(regime) or (),
        params=engine.params(),
        cost_bps=cost_bps,
        **extra,
    )


def _values(text: str, what: str) -> list[float]:
    try:
        out = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--sweep {what}= takes numbers, e.g. {what}=1,1.5,2") from None
    if not out or any(not math.isfinite(x) or x <= 0 for x in out):
        raise UserError(f"--sweep {what}= takes positive numbers of percent, e.g. {what}=1,1.5,2")
    return out


def parse_sweep(parts: list[str]) -> tuple[list[float], list[float]]:
    """'oi=1,1.5 price=0.5,1' (one string or several tokens) -> the two value lists."""
    found: dict[str, list[float]] = {}
    for token in " ".join(parts).split():
        key, sep, values = token.partition("=")
        if not sep or key.lower() not in ("oi", "price"):
            raise UserError(f"--sweep expects oi=LIST price=LIST, got {token!r}")
        found[key.lower()] = _values(values, key.lower())
    if set(found) != {"oi", "price"}:
        raise UserError("--sweep needs both lists, e.g. --sweep oi=1,1.5,2,3 price=0.5,1,2")
    return found["oi"], found["price"]


UNSIGNED = ("p_value", "oi_threshold", "price_threshold")  # not returns: no + sign


def _show(row: dict[str, Any]) -> dict[str, Any]:
    """Table cells: intervals folded into their column, returns in % with a sign and two
    decimals, bands as given (JSON keeps the raw numbers)."""
    out = {k: _f(v) if isinstance(v, float) and k not in UNSIGNED else v
           for k, v in row.items()}  # fmt: skip
    for key in ("oi_threshold", "price_threshold"):
        if isinstance(row.get(key), float):
            out[key] = f"{row[key]:g}"
    hit, hci = row.get("hit_pct"), row.get("hit_ci") or [None, None]
    mean, mci = row.get("mean_1h"), row.get("mean_ci") or [None, None]
    out["hit"] = f"{hit:.0f} [{_f(hci[0], 0)}, {_f(hci[1], 0)}]" if hit is not None else "-"
    out["mean"] = f"{mean:+.2f} [{_f(mci[0])}, {_f(mci[1])}]" if mean is not None else "-"
    p = row.get("p_value")
    out["p_value"] = f"{p:.3f}" if p is not None else "-"
    return out


def _f(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:+.{digits}f}" if digits else f"{x:.0f}"


def _print(result: Any, venue: str, symbols: int, fmt: Format, show_events: bool) -> None:
    if fmt is Format.JSON:
        doc = {
            "groups": result.groups,
            "without_top": {"dropped": result.dropped, "groups": result.without_top},
            "events": result.events,
            "horizons": result.horizons,
            "notes": result.notes,
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    if fmt is Format.CSV:
        emit(result.events, Format.CSV)
        return
    title = (
        f"event study: {plural(len(result.events), 'event')} on {venue}, {symbols} symbol(s); "
        "returns at +1h unless a column says otherwise"
    )
    shown = [_show(r) for r in result.groups]
    columns = [c for c in GROUP_COLUMNS if any(r.get(c[0]) not in (None, "-") for r in shown)]
    emit(shown, fmt, columns=columns, title=title)
    if result.without_top:
        title = f"without the top contributors: {', '.join(result.dropped)}"
        emit([_show(r) for r in result.without_top], fmt, columns=columns, title=title)
    if show_events:
        from oiradar.research.backtest import EVENT_COLUMNS

        emit(result.events, fmt, columns=EVENT_COLUMNS, title="events")
    for note in result.notes:
        err.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)


def _print_sweep(rows: list[dict[str, Any]], warnings: list[str], fmt: Format) -> None:
    if fmt is Format.JSON:
        typer.echo(json.dumps({"sweep": rows, "warnings": warnings}, indent=2))
        return
    shown = rows if fmt is Format.CSV else [_show(r) for r in rows]
    emit(shown, fmt, columns=SWEEP_COLUMNS, title="threshold sweep")
    for warning in warnings:
        err.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)


ABLATION_COLUMNS = [("key", "evidence"), ("regime", "regime"), *GROUP_COLUMNS[2:9]]


def _print_ablation(rows: list[dict[str, Any]], fmt: Format) -> None:
    if fmt is Format.JSON:
        typer.echo(json.dumps({"ablation": rows}, indent=2))
        return
    shown = rows if fmt is Format.CSV else [_show(r) for r in rows]
    emit(shown, fmt, columns=ABLATION_COLUMNS, title="squeeze evidence, each term in and out")


@app.command("backtest")
def backtest(
    sweep_tokens: Annotated[
        list[str] | None, typer.Argument(hidden=True, show_default=False)
    ] = None,
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
    adaptive: AdaptiveOption = False,
    evidence: EvidenceOption = None,
    cost_bps: CostOption = 10.0,
    control: Annotated[
        int,
        typer.Option(help="Random entries per event, on the same symbol and UTC day."),
    ] = 20,
    drop_top: Annotated[
        int,
        typer.Option(
            "--drop-top",
            help="Repeat the table without the N symbols contributing most to the result.",
        ),
    ] = 2,
    sweep: Annotated[
        str | None,
        typer.Option(
            help="Grid of thresholds instead of one set: --sweep oi=1,1.5,2,3 price=0.5,1,2 "
            "(every pair, ranked by mean +1h return, with a multiple-testing warning)."
        ),
    ] = None,
    show_events: Annotated[
        bool, typer.Option("--events", help="Also list every event with its outcomes.")
    ] = False,
    ablation: Annotated[
        bool,
        typer.Option(
            "--ablation",
            help="Instead, squeeze and covering events under each squeeze-evidence setting "
            "(each term removed, each alone, none): what each term's upgrade separates.",
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the control draws and the bootstrap.")] = 7,
    fmt: Annotated[
        Format,
        typer.Option("--format", help="table, json (everything) or csv (one row per event)."),
    ] = Format.TABLE,
    db: DbOption = None,
) -> None:
    """Has the signal worked on these coins? An event study over the stored history.

    Each event the engine finds (as `oiradar analyze` lists them) is entered at the close of
    its first bar, when it was knowable, in the regime's direction (short covering and
    squeezes long). Reported per regime, tier and symbol: count, hit rate and mean return at
    +1h with 95 % bootstrap intervals, median, mean returns at +15m/+4h/+24h, median max
    favourable/adverse excursion over 24 h; the same for random entries on the same symbols
    and days (the control), the edge over it and a one-sided p-value; then the table again
    without the symbols contributing most. Returns are net of --cost-bps.

    Example: oiradar backtest --symbols BTCUSDT,SOLUSDT --interval 1h

    Example: oiradar backtest --sweep oi=1,1.5,2,3 price=0.5,1,2
    """
    from oiradar.research import backtest as research
    from oiradar.services import backtest as bt

    if sweep_tokens and not sweep:
        raise UserError(f"unexpected argument {sweep_tokens[0]!r} (see --help)")
    if ablation and sweep:
        raise UserError("use --sweep or --ablation, not both")
    grid = parse_sweep([sweep, *(sweep_tokens or [])]) if sweep else None
    if control < 0 or drop_top < 0:
        raise UserError("--control and --drop-top take a number >= 0")
    engine = EngineChoice(
        windows, window, oi_threshold, price_threshold, taper, adaptive, evidence=evidence
    )
    req = study_request(
        venue, symbols, start, end, interval, regime, engine,
        cost_bps=cost_bps, control_per_event=control, drop_top=drop_top, seed=seed,
    )  # fmt: skip
    store = _store(readonly=True, db=db)
    show = fmt is Format.TABLE and err.is_terminal
    with store, progress_bar(err, "{task.description:10}", show) as bar:
        task = bar.add_task("loading", total=len(req.symbols) if req.symbols else None)
        samples = bt.load_samples(store, req, lambda s: bar.advance(task))
        if grid is not None:
            total = len(grid[0]) * len(grid[1])
            bar.update(task, description="sweeping", total=total, completed=0)
            rows, warnings = research.sweep(samples, req, *grid, lambda s: bar.advance(task))
        elif ablation:
            bar.update(task, description="studying", total=None)
            rows = research.ablation_rows(samples, req)
        else:
            result = research.run(samples, req)
    if grid is not None:
        _print_sweep(rows, warnings, fmt)
    elif ablation:
        _print_ablation(rows, fmt)
    else:
        _print(result, venue, len(samples), fmt, show_events)
