"""The `oiradar` command line: parse, call a service, render. No business logic here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from oiradar import __version__
from oiradar.errors import OiradarError, UserError
from oiradar.render import Format, emit

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
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True)
_state: dict[str, object] = {"db": None, "debug": False}

_DB_HELP = (
    "Store file (SQLite). Default: $OIRADAR_DB, else the platform's user-data dir, "
    "e.g. ~/.local/share/oiradar/oiradar.sqlite."
)
RootDbOption = Annotated[Path | None, typer.Option("--db", envvar="OIRADAR_DB", help=_DB_HELP)]
# A subcommand's own --db wins over the root one and over the environment.
DbOption = Annotated[Path | None, typer.Option("--db", help=_DB_HELP)]


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
    _state["db"] = db
    _state["debug"] = debug


def _store(readonly: bool = False, db: Path | None = None) -> object:
    from oiradar.store import Store

    path = db or _state["db"]
    return Store(path if isinstance(path, Path) else None, readonly=readonly)


# Commands live in their own modules to keep this one small; importing registers them.
from oiradar import commands  # noqa: E402,F401


def main(argv: list[str] | None = None) -> int:
    """Entry point: every known failure becomes one line on stderr and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        # Without standalone mode the parser returns typer.Exit codes instead of raising.
        rc = app(args=args, prog_name="oiradar", standalone_mode=False)
        if isinstance(rc, int):
            return rc
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        err.print("oiradar: aborted")
        return 130
    except typer.TyperException as exc:  # usage errors from the argument parser
        if debug:
            raise
        code = int(getattr(exc, "exit_code", 2))
        if type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(exc.format_message())
            return 0
        fail(f"{exc.format_message()} (see --help)")
        return code
    except OiradarError as exc:
        if debug:
            raise
        fail(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("oiradar: interrupted")
        return 130
    except Exception as exc:
        if debug:
            raise
        fail(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug and report it)")
        return 70
    return 0


__all__ = ["Format", "UserError", "app", "emit", "main"]
