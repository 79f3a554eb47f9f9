"""The `oiradar` command line: parse, call a service, render. No business logic here."""

from __future__ import annotations

import importlib
import sys

import typer

from oiradar.commands.app import app, err, fail
from oiradar.errors import OiradarError, UserError
from oiradar.render import Format, emit

# Each module registers its commands on `app` when imported; `oiradar --help` lists them
# in this order.
COMMAND_MODULES = (
    "alerts",
    "analysis",
    "backtest",
    "data",
    "scan",
    "serve",
    "sim",
    "watch",
    "backfill",
    "chart",
    "evaluate",
    "report",
)
for _module in COMMAND_MODULES:
    importlib.import_module(f"oiradar.commands.{_module}")


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
