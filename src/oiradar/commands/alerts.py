"""`oiradar config init|check` and `oiradar alerts test`: set up and try the alert sinks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from oiradar.commands.app import app
from oiradar.errors import UserError
from oiradar.lifecycle import run

_CONFIG_HELP = (
    "Config file (TOML). Default: $OIRADAR_CONFIG, else the platform's user config dir, "
    "e.g. ~/.config/oiradar/config.toml."
)
ConfigOption = Annotated[Path | None, typer.Option("--config", help=_CONFIG_HELP)]

config_app = typer.Typer(
    name="config",
    help=(
        "Create and check the config file that says where alerts go (docs/config.md).\n\n"
        "  oiradar config init\n\n"
        "  oiradar config check"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)
alerts_app = typer.Typer(
    name="alerts",
    help=(
        "Alert sinks for `oiradar watch`: console, JSON Lines, webhook, Telegram, Discord, "
        "Slack, configured in the config file (see `oiradar config init`)."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(config_app)
app.add_typer(alerts_app)


@config_app.command("init")
def config_init(
    path: Annotated[
        Path | None,
        typer.Option("--path", help=f"Where to write it. {_CONFIG_HELP.split('. ', 1)[1]}"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example config: [alerts] settings and one [[sinks]] table per
    destination (only the console sink is enabled; uncomment the others and fill them in).

    Secrets (bot tokens, webhook URLs) can be written env:NAME to keep them out of the file.
    Refuses to replace an existing file unless --force is given.

    Example: oiradar config init && oiradar alerts test
    """
    from oiradar.config import default_path, write_example

    written = write_example(path.expanduser() if path else default_path(), force=force)
    typer.echo(f"wrote {written}; edit it, then run: oiradar alerts test --config {written}")


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate the config and print what it sets up; secrets print as ***.

    Exit code 2 with one line naming the key when something is wrong.
    """
    from oiradar.config import load
    from oiradar.services.alerts.sinks import destination

    cfg = load(config)
    a = cfg.alerts
    typer.echo(f"config: {cfg.source or 'none found (defaults)'}")
    typer.echo(
        f"alerts: cooldown_s={a.cooldown_s:g} min_confidence={a.min_confidence:g} "
        f"regimes={','.join(a.regimes)} max_attempts={a.max_attempts} backoff_s={a.backoff_s:g}"
    )
    for sink in cfg.sinks:
        typer.echo(f"sink {sink.name} ({sink.type.value}): {destination(sink)}")
    if not cfg.sinks:
        typer.echo("no sinks configured")


@alerts_app.command("test")
def alerts_test(config: ConfigOption = None) -> None:
    """Send one realistic sample alert (a SOLUSDT short squeeze) through every configured
    sink and print one line per sink: ok, or failed with the reason.

    Failures are retried as the daemon would (alerts.max_attempts, alerts.backoff_s).
    Secrets never appear in the output. Exit code 0 when every sink delivered, else 1.

    Example: oiradar alerts test --config ./oiradar.toml
    """
    from oiradar.clock import WallClock
    from oiradar.config import load
    from oiradar.services.alerts.check import check_sinks

    cfg = load(config)
    if not cfg.sinks:
        where = cfg.source or "the config (none found; create one with oiradar config init)"
        raise UserError(f"no [[sinks]] configured in {where}")
    results = run(check_sinks(cfg, WallClock().now_ms()))
    for sink in cfg.sinks:
        done = results.get(sink.name)
        status = "ok" if done and done.ok else f"failed: {done.error if done else 'no result'}"
        tries = f" ({done.attempts} attempts)" if done and done.attempts > 1 else ""
        typer.echo(f"{sink.name} ({sink.type.value}): {status}{tries}")
    if not all(d.ok for d in results.values()) or len(results) < len(cfg.sinks):
        raise typer.Exit(1)
