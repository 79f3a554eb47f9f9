"""The typer app and what every command shares: the root options, the store, stderr.

Commands import this module; it imports no command (cli.py imports them to register), so
the command line has no import circle.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from oiradar import __version__

if TYPE_CHECKING:
    from oiradar.store import Store

app = typer.Typer(
    name="oiradar",
    help=(
        "Detect short covering and short squeezes (and every other OI/price regime) on "
        "crypto perpetual futures from open interest, price, funding and liquidations.\n\n"
        "The market now, on Binance, Bybit, OKX and Bitget:\n\n"
        "  oiradar scan --top 50 --min-regime short_covering\n\n"
        "History, offline:\n\n"
        "  oiradar import ../shared/data/real/derived\n\n"
        "  oiradar analyze BTCUSDT --from 2024-08-01 --to 2024-08-20\n\n"
        "No network? Run a local exchange and point oiradar at it:\n\n"
        "  oiradar sim --port 8765 &  OIRADAR_ENDPOINT=http://127.0.0.1:8765 oiradar scan\n\n"
        "Every command takes --db PATH (or OIRADAR_DB) to choose the store."
    ),
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, pwsh
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True)


@dataclass(slots=True)
class RootOptions:
    """What the root callback parsed, for the command that runs after it."""

    db: str | None = None
    debug: bool = False


root = RootOptions()

_DB_HELP = (
    "Store: a SQLite file, or a URL such as sqlite:///PATH. Default: $OIRADAR_DB, else the "
    "platform's user-data dir, e.g. ~/.local/share/oiradar/oiradar.sqlite."
)
RootDbOption = Annotated[
    str | None, typer.Option("--db", envvar="OIRADAR_DB", metavar="<path>", help=_DB_HELP)
]
# A subcommand's own --db wins over the root one and over the environment.
DbOption = Annotated[str | None, typer.Option("--db", metavar="<path>", help=_DB_HELP)]


def fail(message: str) -> None:
    """One line on stderr, never wrapped, never styled."""
    sys.stderr.write(f"oiradar: error: {' '.join(message.split())}\n")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"oiradar {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    db: RootDbOption = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool | None,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = None,
) -> None:
    root.db = db
    root.debug = debug


def store_url(db: str | None = None) -> str | None:
    """The store a command was given: its own --db, the root one, $OIRADAR_DB, or None (the
    default store, `open_store` decides)."""
    return db or root.db


def _store(readonly: bool = False, db: str | None = None) -> Store:
    from oiradar.store import open_store  # numpy and SQLite: not for `sim` or `--help`

    return open_store(store_url(db), readonly=readonly)
