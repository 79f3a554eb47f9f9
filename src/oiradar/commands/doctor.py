"""`oiradar doctor`: check every endpoint and channel oiradar uses against the venues."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from oiradar.commands.app import app
from oiradar.commands.selection import DEFAULT_VENUES_OPTION, EndpointOption, VenuesOption
from oiradar.errors import UserError
from oiradar.lifecycle import run
from oiradar.render import Format, emit

DRIFT_EXIT = 6  # a payload changed: oiradar needs an update
FAILED_EXIT = 5  # an endpoint did not answer (network, faults): try again
COLUMNS = (("venue", "venue"), ("name", "check"), ("endpoint", "endpoint"),
           ("status", "status"), ("ms", "ms"), ("detail", "detail"))  # fmt: skip


@app.command("doctor")
def doctor(
    venues: VenuesOption = DEFAULT_VENUES_OPTION,
    endpoint: EndpointOption = None,
    fmt: Annotated[
        Format, typer.Option("--format", help="table, or json to paste into a bug report.")
    ] = Format.TABLE,
) -> None:
    """Ask each venue once for everything oiradar uses (instruments, a snapshot, klines, OI
    history, funding history, the WebSocket feed), read it with oiradar's own parsers, and
    report per venue: each check's endpoint, status and time, the clock skew, and how far the
    venue's OI history lags its present.

    A payload the parsers cannot read is a drift: the line names the endpoint and the field.
    Exit code 0 all well, 6 a drift (oiradar needs an update: paste the JSON into an issue),
    5 an endpoint failed (network or venue trouble: try again).

    Example: oiradar doctor --format json > doctor.json
    """
    from oiradar.services.doctor import doctor as run_doctor
    from oiradar.venues.registry import parse_venues

    if fmt is Format.CSV:
        raise UserError("oiradar doctor prints a table or json")
    reports = run(run_doctor(parse_venues(venues), endpoint))
    if fmt is Format.JSON:
        typer.echo(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        rows = [{"venue": r.venue, **asdict(c)} for r in reports for c in r.checks]
        emit(rows, Format.TABLE, columns=COLUMNS, title="oiradar doctor")
        for r in reports:
            skew = "-" if r.clock_skew_ms is None else f"{r.clock_skew_ms / 1000:+.1f} s"
            lag = "-" if r.history_lag_ms is None else f"{r.history_lag_ms / 60_000:.1f} min"
            verdict = "drift" if r.drift else "ok" if r.ok else "failed"
            typer.echo(f"{r.venue}: {verdict}; probe {r.symbol}, clock skew {skew}, "
                       f"OI history lag {lag}")  # fmt: skip
    if any(r.drift for r in reports):
        raise typer.Exit(DRIFT_EXIT)
    if not all(r.ok for r in reports):
        raise typer.Exit(FAILED_EXIT)
