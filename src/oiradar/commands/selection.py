"""The market selection `scan` and `watch` share: venues, and symbols by list, file, top N or
all. One definition, so both commands read their options the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from oiradar.errors import UserError
from oiradar.units import canonical_symbol
from oiradar.venues.registry import DEFAULT_VENUES

VenuesOption = Annotated[str, typer.Option("--venues", help="Comma list of venues.")]
SymbolsOption = Annotated[
    str | None, typer.Option("--symbols", help="Comma list of symbols, e.g. BTCUSDT,SOLUSDT.")
]
WatchlistOption = Annotated[
    Path | None, typer.Option("--watchlist", help="File with one symbol per line (# comments).")
]
TopOption = Annotated[
    int | None,
    typer.Option(
        "--top",
        help="The N symbols with the most 24 h volume per venue "
        "[default: 30 when no other selection is given].",
    ),
]
AllOption = Annotated[bool, typer.Option("--all", help="Every listed perpetual.")]
DEFAULT_VENUES_OPTION = ",".join(DEFAULT_VENUES)  # --venues when none are named


def watchlist_symbols(path: Path) -> tuple[str, ...]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise UserError(f"cannot read watchlist {path}: {exc.strerror}") from None
    symbols = [canonical_symbol(x.split("#", 1)[0]) for x in lines if x.split("#", 1)[0].strip()]
    if not symbols:
        raise UserError(f"watchlist {path} names no symbols")
    return tuple(dict.fromkeys(symbols))


def select(
    symbols: str | None, watchlist: Path | None, top: int | None, all_: bool
) -> tuple[tuple[str, ...] | None, int | None]:
    """(named symbols or None, top N or None for all); at most one way may be given."""
    given = sum(x is not None and x is not False for x in (symbols, watchlist, top, all_ or None))
    if given > 1:
        raise UserError("use one of --symbols, --watchlist, --top and --all")
    if top is not None and top <= 0:
        raise UserError("--top must be a positive number")
    picked = (
        tuple(dict.fromkeys(canonical_symbol(s) for s in symbols.split(",") if s.strip()))
        if symbols
        else (watchlist_symbols(watchlist) if watchlist else None)
    )
    return picked, None if (picked or all_) else (top or 30)


# -- the endpoint, shared by scan, watch and backfill ---------------------------------------

EndpointOption = Annotated[
    str | None,
    typer.Option(
        "--endpoint",
        help="Send every venue's requests (REST and WebSocket) here, e.g. an `oiradar sim`. "
        "Default: $OIRADAR_ENDPOINT, then each venue's OIRADAR_<VENUE>_REST/_WS, then the venue.",
    ),
]
