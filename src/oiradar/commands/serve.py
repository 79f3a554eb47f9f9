"""`oiradar serve`: the web dashboard over the store `oiradar watch` writes."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from oiradar.commands.app import DbOption, app, store_url
from oiradar.errors import NoDataError, UserError
from oiradar.units import interval_ms

HostOption = Annotated[
    str, typer.Option(help="Interface to listen on (loopback by default; others need --token).")
]
PortOption = Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0 picks a free one).")]
TokenOption = Annotated[
    str | None,
    typer.Option(
        envvar="OIRADAR_SERVE_TOKEN",
        help="Access token every request must carry (?token=... once in the browser, then a "
        "cookie; or Authorization: Bearer). Required for a non-loopback --host.",
        show_envvar=True,
    ),
]


@app.command("serve")
def serve(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    token: TokenOption = None,
    window: Annotated[
        str, typer.Option(help="Default window of the table (the page can change it).")
    ] = "15m",
    db: DbOption = None,
) -> None:
    """The web dashboard: every watched market's regime live, a chart per symbol, alerts.

    A table of all markets `oiradar watch` is writing to the store — regime, OI % and price %
    over the window, OI in USD across venues with the driving venue, funding, liquidations by
    side, confidence — updating by server-sent events without reloading; click a symbol for
    price, OI per venue, funding and liquidations on one time axis with regime shading, event
    markers and its event history with forward returns; the alert feed on the side. The JSON
    API is described at /api/openapi.json (docs/serve.md). Reads the store only.

    Example: oiradar watch --top 30 &  oiradar serve   (then open http://127.0.0.1:8000)
    """
    from oiradar.store import location_of, open_store
    from oiradar.web.app import ServeConfig
    from oiradar.web.server import check_binding, serve_forever

    check_binding(host, token)
    w = interval_ms(window)
    if w % 300_000:
        raise UserError(f"--window {window} is not a multiple of 5m")
    target = store_url(db)
    try:
        open_store(target, readonly=True).close()
    except NoDataError:
        where = location_of(target)
        raise NoDataError(
            f"no store at {where}: run oiradar watch (or import data) first"
        ) from None
    asyncio.run(serve_forever(ServeConfig(target, host, port, token, w)))
