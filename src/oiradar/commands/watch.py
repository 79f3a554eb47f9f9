"""`oiradar watch` (the real-time daemon) and `oiradar status` (what a running one is doing)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Annotated, Any

import typer

from oiradar.commands.alerts import ConfigOption
from oiradar.commands.app import DbOption, _store, app, store_url
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
from oiradar.commands.selection import (
    DEFAULT_VENUES_OPTION,
    AllOption,
    EndpointOption,
    SymbolsOption,
    TopOption,
    VenuesOption,
    WatchlistOption,
    select,
)
from oiradar.commands.serve import HostOption, PortOption, TokenOption
from oiradar.errors import UserError
from oiradar.render import Format, emit
from oiradar.units import MINUTE_MS, interval_ms

STATUS_COLUMNS = [
    ("venue", "venue"),
    ("stream", "stream"),
    ("messages", "messages"),
    ("msg_per_s", "msg/s"),
    ("disconnects", "drops"),
    ("last_bar", "last bar"),
    ("oi", "OI"),
    ("liquidations", "liquidations"),
    ("limiter", "busiest limit"),
    ("rest_errors", "REST errors"),
]


def _duration_ms(text: str, option: str) -> int:
    """'2s', '500ms', '1m' -> ms."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*", text)
    if not m:
        raise UserError(f"invalid {option} {text!r}: expected e.g. 500ms, 2s, 1m")
    return int(float(m.group(1)) * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}[m.group(2)])


def _logging(level: str, fmt: str) -> None:
    from oiradar.logs import FORMATS, configure

    if level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise UserError(f"unknown --log-level {level!r}: use debug, info, warning or error")
    if fmt not in FORMATS:
        raise UserError(f"unknown --log-format {fmt!r}: use text or json")
    configure(level, fmt)


@app.command("watch")
def watch(
    venues: VenuesOption = DEFAULT_VENUES_OPTION,
    symbols: SymbolsOption = None,
    watchlist: WatchlistOption = None,
    top: TopOption = None,
    all_: AllOption = False,
    config: ConfigOption = None,
    windows: WindowsOption = None,
    window: WindowOption = None,
    adaptive: AdaptiveOption = False,
    oi_threshold: OiBandOption = None,
    price_threshold: PriceBandOption = None,
    taper: TaperOption = None,
    evidence: EvidenceOption = None,
    min_history: Annotated[
        str,
        typer.Option(
            help="History the trailing baselines need (squeeze, volume, adaptive) before they "
            "count. Liquidations have no REST history: squeezes are called only after this "
            "much streaming."
        ),
    ] = "1d",
    settle: Annotated[
        str,
        typer.Option(
            help="Venue time to wait after a bar closes for late stream messages (its close "
            "message, the last liquidations: Binance pushes one a second) before it is "
            "evaluated; a close message not in by then is filled from REST. Raise it when "
            "watching a simulator running many times real speed."
        ),
    ] = "1s",
    endpoint: EndpointOption = None,
    log_level: Annotated[
        str, typer.Option(help="debug, info, warning or error (logs go to stderr).")
    ] = "info",
    log_format: Annotated[
        str,
        typer.Option(
            help="text (key=value lines) or json (one object per line, each key=value a field)."
        ),
    ] = "text",
    limit_scale: Annotated[
        float,
        typer.Option(
            "--limit-scale",
            hidden=True,
            help="Divide every rate-limit window by this: only to match `oiradar sim "
            "--limit-scale` when it runs many times real speed (benches).",
        ),
    ] = 1.0,
    retain: Annotated[
        str | None,
        typer.Option(
            help="Keep raw OI snapshots and liquidation orders this long (e.g. 30d), then only "
            "their per-bar values (as `oiradar prune`, hourly). Default: keep everything."
        ),
    ] = None,
    serve: Annotated[
        bool,
        typer.Option(help="Also serve the web dashboard (as `oiradar serve`) from this process."),
    ] = False,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    token: TokenOption = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Serve Prometheus metrics at http://127.0.0.1:PORT/metrics (with --serve the "
            "dashboard serves /metrics itself).",
        ),
    ] = None,
    collect_only: Annotated[
        bool,
        typer.Option(
            "--collect-only",
            help="Only stream and poll the venues into the store (a shared PostgreSQL), with a "
            "heartbeat; no alerts. Run any number, each any subset of venues/symbols.",
        ),
    ] = False,
    decide_only: Annotated[
        bool,
        typer.Option(
            "--decide-only",
            help="Run the engine and alerts from what collectors store, woken by their writes; "
            "one decider alerts at a time (a lease), others stand by.",
        ),
    ] = False,
    flush: Annotated[
        str,
        typer.Option(
            help="Write what the streams brought to the store this often (one transaction); a "
            "decider on another host sees it this much later.",
        ),
    ] = "1s",
    lease_ttl: Annotated[
        str,
        typer.Option(
            hidden=True,
            help="A decider's lease (at most 20s): a stand-by takes over this long after the "
            "leader died (tests shorten it).",
        ),
    ] = "15s",
    db: DbOption = None,
) -> None:
    """Watch the market in real time and alert on short covering and short squeezes.

    Streams liquidations, funding and OI (where the venue streams it) from every venue's
    public WebSocket, polls OI where it does not (Binance) as fast as the rate limits allow
    for the watched symbols, and after any disconnect or restart backfills the gap from REST.
    Everything goes to the store in batches (`oiradar analyze` can read it meanwhile). At
    each 5m close the Core engine steps one bar per symbol; liquidation bursts are checked
    against the squeeze rule as they arrive. Alerts (new episode, escalation to a squeeze,
    exhaustion) go to the sinks in the config file (console when none are configured).

    Stop with Ctrl-C or SIGTERM: everything in memory is written first. `oiradar status`
    shows what a running daemon is doing.

    Across hosts: collectors (`--collect-only`) write a shared store and deciders
    (`--decide-only`) read it (docs/scaling.md).

    Example: oiradar watch --top 50 --config ~/.config/oiradar/config.toml
    """
    from oiradar.config import load
    from oiradar.services.retention import PruneRequest
    from oiradar.services.retention import check as check_retention
    from oiradar.services.watch import Role, WatchRequest
    from oiradar.services.watch import run as run_watch
    from oiradar.venues.registry import parse_venues
    from oiradar.web.app import ServeConfig
    from oiradar.web.server import check_binding, serving, serving_metrics

    _logging(log_level, log_format)
    if collect_only and decide_only:
        raise UserError("--collect-only and --decide-only exclude each other: run two processes")
    role = Role.COLLECT if collect_only else Role.DECIDE if decide_only else Role.ALL
    if serve:
        check_binding(host, token)
        if metrics_port is not None:
            raise UserError("--serve already serves /metrics: drop --metrics-port")
    chosen = parse_venues(venues)
    picked, top_n = select(symbols, watchlist, top, all_)
    if not limit_scale > 0:
        raise UserError("--limit-scale must be a positive number")
    params = EngineChoice(
        windows, window, oi_threshold, price_threshold, taper, adaptive, evidence=evidence
    ).params(grid_ms=5 * MINUTE_MS, min_history_ms=interval_ms(min_history))
    cfg = load(config)
    req = WatchRequest(
        chosen,
        picked,
        top_n,
        params,
        settle_ms=_duration_ms(settle, "--settle"),
        endpoint=endpoint,
        limit_scale=limit_scale,
        retain_ms=None if retain is None else interval_ms(retain),
        role=role,
        flush_s=_duration_ms(flush, "--flush") / 1000,
        lease_ttl_ms=_duration_ms(lease_ttl, "--lease-ttl"),
    )
    if not req.flush_s > 0:
        raise UserError(f"--flush {flush!r}: must be more than 0")
    if not 0 < req.lease_ttl_ms <= 20_000:
        raise UserError(f"--lease-ttl {lease_ttl!r}: at most 20s")
    if req.retain_ms is not None:
        check_retention(PruneRequest(req.retain_ms, req.bar_ms))
    dashboard = ServeConfig(store_url(db), host, port, token, params=params) if serve else None
    with _store(db=db) as store:
        beside = serving(dashboard) if dashboard is not None else None
        if metrics_port is not None:
            beside = serving_metrics(store_url(db), metrics_port)
        asyncio.run(run_watch(req, store, config=cfg, beside=beside))


@app.command("status")
def status(
    fmt: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.TABLE,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Print nothing but exit 1 (with one line on stderr) unless this host's "
            "watch is alive: a collector or decider (leading or standing by) beating, or a "
            "plain watch running. A container or service health check.",
        ),
    ] = False,
    db: DbOption = None,
) -> None:
    """What the `oiradar watch` writing this store is doing: per venue its stream state,
    messages, message rate, last bar stepped, how OI is fetched, limiter usage and errors;
    then rows written and alerts sent. Reads what the daemon publishes in the store every 2 s.

    Example: oiradar status --format json
    """
    from oiradar.errors import NoDataError
    from oiradar.services.watch import health, read_status
    from oiradar.store import location_of

    try:
        with _store(readonly=True, db=db) as store:
            if check:
                ok, why = health(store)
                if not ok:
                    typer.echo(why, err=True)
                    raise typer.Exit(1)
                return
            data = read_status(store)
    except NoDataError:  # no store at all: nothing ever ran on it
        raise UserError(
            f"no watch status in {location_of(store_url(db))}: is `oiradar watch` running on "
            "this store?"
        ) from None
    if fmt is Format.JSON:
        typer.echo(json.dumps(data, indent=2))
        return
    if fmt is not Format.TABLE:
        raise UserError("oiradar status prints a table or json")
    rows = [_status_row(v) for v in data.get("venues", [])]
    store, alerts = data.get("store", {}), data.get("alerts", {})
    title = (
        f"watch {data.get('state')} (pid {data.get('pid')}, since {data.get('started')}, "
        f"updated {data.get('updated')})"
    )
    emit(rows, Format.TABLE, columns=STATUS_COLUMNS, title=title)
    typer.echo(
        f"store: {store.get('rows_written', 0)} rows written in {store.get('flushes', 0)} "
        f"batches, {store.get('pending', 0)} pending; alerts: {alerts.get('sent', 0)} sent, "
        f"delivered {alerts.get('delivered') or {}}, failed {alerts.get('failed') or {}}"
    )
    if loop := data.get("loop"):
        typer.echo(
            f"event loop: worst lag {loop.get('lag_ms', 0)} ms over the last 10 s, "
            f"{loop.get('stalls', 0)} stalls of 100 ms or more since the start"
        )
    for w in data.get("workers", []):  # collectors and deciders on this store
        lead = " leading" if w.get("leading") else ""
        state = "stale" if w.get("stale") else "live"
        typer.echo(
            f"{w['role']} {w['worker']}{lead}: {state}, last beat {w['age_s']} s ago, "
            f"venues {','.join(w.get('venues') or []) or '-'}"
        )


def _status_row(v: dict[str, Any]) -> dict[str, Any]:
    """The table shows each venue's busiest rate-limit bucket (JSON has them all)."""
    usage = []
    for bucket, text in (v.get("limiter") or {}).items():
        used, _, limit = str(text).partition("/")
        if used.isdigit() and limit.isdigit() and int(limit):
            usage.append((int(used) / int(limit), bucket, text))
    busiest = max(usage, default=None)
    limiter = f"{busiest[1]} {busiest[2]} ({busiest[0]:.0%})" if busiest else ""
    return {**v, "limiter": limiter}
