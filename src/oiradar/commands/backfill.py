"""`oiradar backfill`: fill the store with OI, klines, funding, premium and positioning history."""

from __future__ import annotations

import re
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import TaskID

from oiradar.commands.app import DbOption, _store, app, err, fail
from oiradar.commands.selection import (
    DEFAULT_VENUES_OPTION,
    AllOption,
    EndpointOption,
    SymbolsOption,
    TopOption,
    WatchlistOption,
    select,
)
from oiradar.errors import UserError
from oiradar.lifecycle import run
from oiradar.render import Format, emit, progress_bar
from oiradar.services.backfill import BackfillRequest, BackfillResult
from oiradar.units import DAY_MS, interval_ms, iso, parse_time

PARTIAL_EXIT = 5  # some venues failed, the others were backfilled
NOTHING_EXIT = 4  # every venue failed
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
COLUMNS = [
    ("venue", "venue"),
    ("symbols", "symbols"),
    ("chunks", "chunks"),
    ("fetched", "fetched"),
    ("skipped", "skipped"),
    ("candles", "candles"),
    ("open_interest", "OI"),
    ("funding", "funding"),
    ("premium_index", "premium"),
    ("positioning", "positioning"),
    ("liquidations", "liquidations"),
    ("archive_files", "archive files"),
    ("requests", "requests"),
]


class SummaryFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


def _when(text: str, option: str, *, end: bool) -> int:
    """ISO time in ms; a bare date as --to means the end of that day (the day is included)."""
    try:
        ms = parse_time(text)
    except UserError:
        raise UserError(
            f"{option} {text!r} is not a date: expected ISO 8601 such as 2024-08-08 "
            "or 2024-08-08T21:00Z"
        ) from None
    return ms + DAY_MS if end and _DATE_ONLY.match(text.strip()) else ms


@app.command("backfill")
def backfill(
    start: Annotated[
        str,
        typer.Option(
            "--from",
            help="First day (or instant), ISO 8601 UTC, e.g. 2024-08-01 or 2024-08-01T12:00Z.",
            show_default=False,
        ),
    ],
    end: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Last day, included (a bare date means through its end), or an instant. "
            "Default: now.",
            show_default=False,
        ),
    ] = None,
    venues: Annotated[
        str | None,
        typer.Option(
            "--venues",
            help=f"Comma list of venues [default: {DEFAULT_VENUES_OPTION}; binance with "
            "--archive-only].",
            show_default=False,
        ),
    ] = None,
    symbols: SymbolsOption = None,
    watchlist: WatchlistOption = None,
    top: TopOption = None,
    all_: AllOption = False,
    interval: Annotated[
        str, typer.Option(help="Kline interval, 1m .. 1d; OI history at the same period.")
    ] = "5m",
    archive_dir: Annotated[
        Path | None,
        typer.Option(
            "--archive-dir",
            help="Read Binance archive files from this folder (the archive's layout, or bare "
            "file names, each with its .CHECKSUM) instead of downloading them.",
        ),
    ] = None,
    no_archive: Annotated[
        bool, typer.Option("--no-archive", help="REST APIs only; never touch the archive.")
    ] = False,
    premium: Annotated[
        bool,
        typer.Option(
            "--premium",
            help="Also fill premium-index bars (Binance, Bybit, OKX), for the opt-in `premium` "
            "squeeze evidence; OKX needs 15 requests per symbol-day.",
        ),
    ] = False,
    archive_only: Annotated[
        bool,
        typer.Option(
            "--archive-only",
            help="Binance from the archive alone (klines, metrics, fundingRate, "
            "premiumIndexKlines); no REST calls.",
        ),
    ] = False,
    endpoint: EndpointOption = None,
    fmt: Annotated[
        SummaryFormat, typer.Option("--format", help="Summary as a table or JSON (one array).")
    ] = SummaryFormat.TABLE,
    db: DbOption = None,
) -> None:
    """Fill the store with OI, klines, funding, premium-index, positioning (Binance, Gate)
    and per-bar liquidation (Gate) history from the venues' REST APIs and, for Binance, the official public data archive
    (data.binance.vision).

    The range is walked per symbol in UTC days; a day already complete in the store is
    skipped, and each fetched day is written in one transaction, so an interrupted run
    (Ctrl-C, a kill, a lost network) resumes where it stopped when run again. Requests stay
    within every venue's rate limits. Binance keeps only 30 days of OI and positioning
    history: older ones come from the archive's daily metrics files, downloaded over HTTPS,
    verified against their .CHECKSUM and cached ($OIRADAR_CACHE_DIR, else the user cache
    dir). A corrupt file is an error naming it, and nothing of it is stored. What no source holds is listed per
    venue. Exit code 2 = an archive file was rejected, 5 = a venue or the archive failed
    (the rest was stored), 4 = every venue failed.

    Example: oiradar backfill --venues binance,bybit --symbols BTCUSDT,ETHUSDT --from 2024-06-01 --to 2024-06-30

    Files you already have: oiradar backfill --venues binance --symbols BTCUSDT --from 2024-01-01 --to 2024-03-31 --archive-dir ~/binance-data
    """  # noqa: E501
    from oiradar.services.backfill import run as run_backfill

    if no_archive and (archive_dir is not None or archive_only):
        raise UserError("--no-archive contradicts --archive-dir and --archive-only")
    req = _request(start, end, venues, (symbols, watchlist, top, all_), interval, archive_only)
    req = replace(
        req, premium=premium, endpoint=endpoint, archive=not no_archive, archive_dir=archive_dir
    )
    show = fmt is SummaryFormat.TABLE and err.is_terminal
    with _store(db=db) as store, progress_bar(err, "{task.description:8}", show) as bar:
        tasks: dict[str, TaskID] = {v: bar.add_task(v, total=None) for v in req.venues}

        def progress(venue: str, n: int) -> None:
            if n > 0:
                bar.update(tasks[venue], total=n)
            else:
                bar.advance(tasks[venue])

        result = run(run_backfill(req, store, progress=progress))
    answered = [v for v in result.venues if v.failed is None]
    if req.symbols is not None and answered and not any(v.symbols for v in answered):
        for v in answered:  # a table of zeros would read "nothing left to fetch"
            for warning in v.warnings:
                err.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
        where = ", ".join(v.venue for v in answered)
        raise UserError(f"none of {', '.join(req.symbols)} is listed on {where}")
    title = f"backfill {iso(req.start_ms)} .. {iso(req.end_ms)}, {interval} bars, into "
    _report(result, Format(fmt.value), title + store.location)


def _request(
    start: str,
    end: str | None,
    venues: str | None,
    selection: tuple[str | None, Path | None, int | None, bool],
    interval: str,
    archive_only: bool,
) -> BackfillRequest:
    """Every input check, before the store or the network is touched."""
    from oiradar.clock import WallClock
    from oiradar.services.backfill import check_interval
    from oiradar.venues.registry import parse_venues

    start_ms = _when(start, "--from", end=False)
    end_ms = _when(end, "--to", end=True) if end is not None else WallClock().now_ms()
    chosen = parse_venues(venues or ("binance" if archive_only else DEFAULT_VENUES_OPTION))
    if archive_only and chosen != ("binance",):
        raise UserError("--archive-only is for binance (the only venue with an archive)")
    picked, top_n = select(*selection)
    if archive_only and picked is None:
        raise UserError("--archive-only needs --symbols or --watchlist: the archive has no list")
    bar_ms = interval_ms(interval)
    check_interval(chosen, bar_ms)
    if start_ms >= end_ms:
        raise UserError(f"--from {start} is not before --to {end or 'now'}")
    return BackfillRequest(chosen, start_ms, end_ms, picked, top_n, bar_ms, archive_only)


def _report(result: BackfillResult, fmt: Format, title: str) -> None:
    """The summary on stdout; warnings, notes and errors one line each on stderr."""
    emit([v.row() for v in result.venues], fmt, columns=COLUMNS, title=title)
    for report in result.venues:
        for warning in report.warnings:
            err.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
        for reason, where in report.missing.items():
            note = f"note: {report.venue}: {where.text(reason)}"
            err.print(note, markup=False, highlight=False, soft_wrap=True)
    failures = [v.failed for v in result.venues if v.failed is not None]
    down = [result.archive_down] if result.archive_down is not None else []
    for message in [*result.errors, *failures, *down]:
        fail(message)
    if result.errors:
        raise typer.Exit(2)
    if failures and len(failures) == len(result.venues):
        raise typer.Exit(NOTHING_EXIT)
    if failures or result.archive_down:
        raise typer.Exit(PARTIAL_EXIT)
