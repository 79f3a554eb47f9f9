"""The `oiradar` command line: parse, call a service, render. No business logic here."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

from oiradar import __version__

if TYPE_CHECKING:
    import typer

# Which module registers each command; `oiradar CMD` imports only that one (start-up is a
# third of a short scan otherwise), `oiradar --help` all of them, in this order.
COMMANDS = {
    "config": "alerts",
    "alerts": "alerts",
    "analyze": "analysis",
    "regimes": "analysis",
    "backtest": "backtest",
    "import": "data",
    "export": "data",
    "info": "data",
    "prune": "data",
    "scan": "scan",
    "serve": "serve",
    "sim": "sim",
    "watch": "watch",
    "status": "watch",
    "backfill": "backfill",
    "chart": "chart",
    "evaluate": "evaluate",
    "report": "report",
    "doctor": "doctor",
}
ROOT_VALUE_OPTIONS = ("--db",)  # root options followed by a value, not a command


def command_of(args: list[str]) -> str | None:
    """The command word of a command line (None: none, e.g. `oiradar --help`)."""
    words = iter(args)
    for word in words:
        if word in ROOT_VALUE_OPTIONS:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def load_commands(args: list[str]) -> None:
    """Register the command `args` names, or every command (help, completion, a typo)."""
    name = command_of(args)
    completing = "_OIRADAR_COMPLETE" in os.environ  # the shell asks for every command
    wanted = dict.fromkeys(COMMANDS.values())
    if name in COMMANDS and not completing:
        wanted = {COMMANDS[name]: None}
    for module in wanted:
        importlib.import_module(f"oiradar.commands.{module}")
    _in_listed_order()


def _in_listed_order() -> None:
    """Commands in `COMMANDS` order whichever module was imported first (`--help` and
    docs/cli.md list them so, also in a process that ran `oiradar status` before)."""
    from oiradar.commands.app import app

    rank = {name: i for i, name in enumerate(COMMANDS)}

    def key(info: typer.models.CommandInfo) -> int:
        name = info.name or getattr(info.callback, "__name__", "").replace("_", "-")
        return rank.get(name, len(rank))

    app.registered_commands.sort(key=key)


def full_app() -> typer.Typer:
    """The app with every command registered (the docs generator, tests of `--help`)."""
    from oiradar.commands.app import app

    load_commands([])
    return app


def _collect_less(own_process: bool) -> None:
    """Leave what the imports built out of the cyclic collector's scans, and scan the young
    generation every 10,000 allocations instead of 700: a 300-symbol scan spent ~120 ms in
    250 collections, ~30 ms so (the objects a command frees without cycles go at once, by
    reference counting, either way). Not in a process that calls `main` (tests)."""
    if not own_process:
        return
    import gc

    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


SWITCH_INTERVAL_S = 0.0005


def _switch_sooner(own_process: bool) -> None:
    """Let a thread waiting for the GIL have it within 0.5 ms instead of 5. A store thread
    gives the GIL up for every SQLite row step and waits for it back behind whichever thread
    is busy (the event loop at a bar close, the engine's worker): beside a busy thread a
    500-row write took 115-390 ms at 5 ms and 18-22 ms at 0.5 ms (1.4 ms alone), and the
    daemon's loop waited the same way after each socket read. Not in a process that calls
    `main` (tests)."""
    if own_process:
        sys.setswitchinterval(SWITCH_INTERVAL_S)


def main(argv: list[str] | None = None) -> int:
    """Entry point: every known failure becomes one line on stderr and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    name = command_of(args)
    if "--version" in (args[: args.index(name)] if name else args):
        sys.stdout.write(f"oiradar {__version__}\n")  # without importing the command line
        return 0
    import typer

    from oiradar.commands.app import app, err, fail
    from oiradar.errors import OiradarError

    load_commands(args)
    _collect_less(own_process=argv is None)
    _switch_sooner(own_process=argv is None)
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
