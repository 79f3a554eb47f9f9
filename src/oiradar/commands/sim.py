"""`oiradar sim`: run the local exchange (all seven venues on one port) until interrupted."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated

import typer

from oiradar.commands.app import app
from oiradar.errors import UserError
from oiradar.units import parse_time


@app.command("sim")
def sim(
    data: Annotated[
        Path | None,
        typer.Option(
            help="Serve recorded history instead of the synthetic market: a store file "
            "(.sqlite) or files/folders that `oiradar import` reads."
        ),
    ] = None,
    symbols: Annotated[int, typer.Option(help="Synthetic market size (symbols per venue).")] = 50,
    start: Annotated[
        str | None,
        typer.Option(
            help="Simulated time at start, ISO 8601 UTC. Default: now (synthetic) or one day "
            "into the history (--data)."
        ),
    ] = None,
    speed: Annotated[
        float,
        typer.Option(
            help="Simulated seconds per wall second (0 freezes "
            "the clock; set it later via POST /_sim/clock)."
        ),
    ] = 1.0,
    latency_ms: Annotated[float, typer.Option(help="Added to every REST response.")] = 0.0,
    jitter_ms: Annotated[float, typer.Option(help="Uniform +/- jitter on the latency.")] = 0.0,
    fault_rate: Annotated[
        float,
        typer.Option(
            help="Share of REST responses replaced by a fault: 5xx, slow 504, connection reset, "
            "truncated JSON, HTML maintenance page or an empty list."
        ),
    ] = 0.0,
    ws_drop_s: Annotated[
        float,
        typer.Option(help="Drop every WebSocket connection after ~N wall seconds (0 = never)."),
    ] = 0.0,
    ws_duplicate: Annotated[
        float, typer.Option(help="Probability a WS message is sent twice.")
    ] = 0.0,
    ws_reorder: Annotated[
        float, typer.Option(help="Probability a WS message is swapped with the next.")
    ] = 0.0,
    ws_lose_close: Annotated[
        float,
        typer.Option(help="Probability a candle channel's closing message for a bar is lost."),
    ] = 0.0,
    limit_scale: Annotated[
        float,
        typer.Option(
            help="Divide every rate-limit window and ban by this (1 = the venues' real limits)."
        ),
    ] = 1.0,
    history_days: Annotated[float, typer.Option(help="Synthetic history before --start.")] = 8.0,
    future_days: Annotated[float, typer.Option(help="Synthetic data after --start.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the market model, latency and faults.")] = 7,
    regime_weights: Annotated[
        str | None,
        typer.Option(
            metavar="NAME=W,...",
            help="The synthetic market's mix: how often each regime's segment is drawn, over "
            "the default NEUTRAL=0.40, NEW_LONGS=0.09, NEW_SHORTS=0.09, SHORT_COVERING=0.10, "
            "LONG_LIQUIDATION=0.08, LOW_CONVICTION_RALLY=0.08, LOW_CONVICTION_SELLOFF=0.08, "
            "SHORT_SQUEEZE=0.08 (e.g. SHORT_SQUEEZE=0.5 for a squeeze-heavy market).",
        ),
    ] = None,
    cascade_delay: Annotated[
        float,
        typer.Option(
            metavar="SHARE",
            help="Share (0-1) of each synthetic squeeze before its liquidation cascade starts: "
            "shorts first cover by choice, so the event reads as covering and is upgraded as "
            "the cascade streams in (0: the cascade starts with the squeeze).",
        ),
    ] = 0.0,
    history_lag: Annotated[
        str | None,
        typer.Option(
            metavar="[VENUE=]DURATION,...",
            help="Hold back each venue's OI history by this much (e.g. 5m, or binance=5m): "
            "the row of the bar just closed is not out yet, as on a lagging venue; the live "
            "snapshot is not held back.",
        ),
    ] = None,
    rename_field: Annotated[
        str | None,
        typer.Option(
            metavar="OLD=NEW,...",
            help="Rename these keys in every REST payload, as a venue that changed its API "
            "would (`oiradar doctor` should name them).",
        ),
    ] = None,
    venues: Annotated[str, typer.Option(help="Comma list of venues to serve.")] = (
        "binance,bybit,okx,bitget,gate,hyperliquid,dydx"
    ),
    host: Annotated[
        str, typer.Option(help="Interface to bind (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port; 0 picks a free one.")] = 0,
) -> None:
    """Run a local exchange: Binance, Bybit, OKX, Bitget, Gate, Hyperliquid, dYdX public data.

    Every venue's REST and WebSocket paths are served on one port (they do not collide), in
    each venue's own units, symbol names, orderings, rate limits and error codes, on a
    simulated clock that never serves data after "now". Point oiradar at it with
    OIRADAR_ENDPOINT=http://127.0.0.1:PORT. Control: GET/POST /_sim/clock
    ({"now_ms", "speed"}), GET /_sim/stats, POST /_sim/stats/reset, GET /_sim/info.
    Prints one line `listening on http://HOST:PORT` when ready; stops on Ctrl-C / SIGTERM.

    Example: oiradar sim --symbols 500 --speed 60 --fault-rate 0.05 --port 8765
    """
    from oiradar.services.importer import history_store
    from oiradar.sim.server import SIM_VENUES, SimConfig, parse_history_lag, serve_until_stopped
    from oiradar.sim.synth import parse_weights

    if symbols < 0:
        raise UserError("--symbols must be >= 0")
    if symbols == 0 and data is None:
        raise UserError("--symbols must be at least 1 for the synthetic market")
    if not 0 <= fault_rate <= 1:
        raise UserError("--fault-rate must be between 0 and 1")
    if speed < 0 or limit_scale <= 0:
        raise UserError("--speed must be >= 0 and --limit-scale > 0")
    if data is not None and not data.exists():
        raise UserError(f"{data}: no such file or directory")
    if not 0 <= cascade_delay <= 1:
        raise UserError("--cascade-delay must be between 0 and 1")
    if data is not None and (regime_weights is not None or cascade_delay):
        raise UserError(
            "--regime-weights and --cascade-delay shape the synthetic market; --data replays "
            "history"
        )
    weights = None
    if regime_weights is not None:
        try:
            weights = parse_weights(regime_weights)
        except ValueError as exc:
            raise UserError(f"--regime-weights {exc}") from None
    chosen = tuple(v.strip().lower() for v in venues.split(",") if v.strip())
    unknown = sorted(set(chosen) - set(SIM_VENUES))
    if unknown or not chosen:
        raise UserError(
            f"unknown venue(s) {', '.join(unknown) or '(none)'}: use {', '.join(SIM_VENUES)}"
        )
    cfg = SimConfig(
        venues=chosen,
        symbols=symbols,
        data=data,
        start_ms=parse_time(start) if start else None,
        speed=speed,
        latency_ms=latency_ms,
        jitter_ms=jitter_ms,
        fault_rate=fault_rate,
        seed=seed,
        limit_scale=limit_scale,
        history_days=history_days,
        future_days=future_days,
        ws_drop_s=ws_drop_s,
        ws_duplicate=ws_duplicate,
        ws_reorder=ws_reorder,
        ws_lose_close=ws_lose_close,
        regime_weights=weights,
        cascade_delay=cascade_delay,
        history_lag_ms=parse_history_lag(history_lag, chosen) if history_lag else {},
        renamed_fields=_pairs(rename_field, "--rename-field"),
    )

    with contextlib.ExitStack() as stack:
        if data is not None:
            cfg.history = stack.enter_context(history_store(data))
        asyncio.run(serve_until_stopped(cfg, host, port))


def _pairs(text: str | None, option: str) -> dict[str, str]:
    """`OLD=NEW,...` as a dict; a part without `=` is a user error."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in (text or "").split(",") if p.strip()):
        old, sep, new = part.partition("=")
        if not (sep and old.strip() and new.strip()):
            raise UserError(f"{option}: {part!r} is not OLD=NEW")
        out[old.strip()] = new.strip()
    return out
