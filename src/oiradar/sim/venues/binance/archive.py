"""Binance's public data archive as the simulator serves it (exchange-apis.md §1.5): the USD-M
daily liquidation snapshot files under the archive's own paths,
`/data/futures/um/daily/liquidationSnapshot/<SYM>/<SYM>-liquidationSnapshot-<DAY>.zip`, each
with `<name>.CHECKSUM` beside it ("<sha256 hex>  <name>", as `sha256sum` writes it).

A day's file is a zip of one CSV: the header row, then Binance's forced orders of the day as
its stream samples them (the latest order per symbol per second, order side: SELL = a long
liquidated), every row written twice, as the real files repeat them (binance-public-data
#259). Only whole days the market covers are served, up to 2024-03-31: the USD-M files stop
there (issues #337, #361, #420). Anything else is a 404, as the archive answers a missing key.
The other archive datasets (klines, metrics, funding) are not served here.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from datetime import UTC, datetime

from aiohttp import web

from oiradar.sim.context import SimContext, ctx_of
from oiradar.sim.venues.binance.ws import force_orders
from oiradar.units import DAY_MS, iso, parse_time

ROOT = "/data/futures/um/daily/liquidationSnapshot"
LAST_DAY = "2024-03-31"  # the archive's last USD-M liquidation snapshot day
HEADER = (
    "time,side,order_type,time_in_force,original_quantity,price,average_price,order_status,"
    "last_fill_quantity,accumulated_fill_quantity"
)
CHECKSUM = ".CHECKSUM"


FILES = web.AppKey("archive_files", dict)  # (symbol, day) -> zip bytes, the newest kept
KEPT = 64


def setup(app: web.Application) -> None:
    app[FILES] = {}
    app.router.add_get(ROOT + "/{symbol}/{name}", _get)


def day_file(ctx: SimContext, symbol: str, day: str) -> bytes | None:
    """The zipped day file, or None where the archive has none."""
    if symbol not in ctx.market.symbols or day > LAST_DAY:
        return None
    try:
        start = parse_time(day)
    except ValueError:
        return None
    sd = ctx.market.get(symbol)
    if start < sd.first_ms or start + DAY_MS > ctx.now_ms() or iso(start)[:10] != day:
        return None
    rows = [
        f"{o['T']},{o['S']},{o['o']},{o['f']},{o['q']},{o['p']},{o['ap']},{o['X']},{o['l']},{o['z']}"
        for o in (m["o"] for m in force_orders(ctx, sd, start - 1, start + DAY_MS - 1))
    ]
    # Stamped the day after (when the archive writes it), so a file is the same bytes each time.
    entry = zipfile.ZipInfo(f"{symbol}-liquidationSnapshot-{day}.csv", _stamp(start + DAY_MS))
    entry.compress_type = zipfile.ZIP_DEFLATED
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(entry, "\n".join([HEADER, *rows, *rows]) + "\n")
    return buf.getvalue()


def _stamp(ts_ms: int) -> tuple[int, int, int, int, int, int]:
    t = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return (t.year, t.month, t.day, t.hour, t.minute, t.second)


async def _get(request: web.Request) -> web.Response:
    ctx, symbol, name = ctx_of(request), request.match_info["symbol"], request.match_info["name"]
    zip_name = name.removesuffix(CHECKSUM)
    prefix, suffix = f"{symbol}-liquidationSnapshot-", ".zip"
    if not (zip_name.startswith(prefix) and zip_name.endswith(suffix)):
        raise web.HTTPNotFound
    day = zip_name[len(prefix) : -len(suffix)]
    files: dict[tuple[str, str], bytes] = request.app[FILES]
    body = files.get((symbol, day))
    if body is None:  # a file and its CHECKSUM are asked one after the other
        body = await asyncio.to_thread(day_file, ctx, symbol, day)
        while body is not None and len(files) >= KEPT:
            del files[next(iter(files))]
        if body is not None:
            files[symbol, day] = body
    if body is None:
        raise web.HTTPNotFound
    if name.endswith(CHECKSUM):
        return web.Response(text=f"{hashlib.sha256(body).hexdigest()}  {zip_name}\n")
    return web.Response(body=body, content_type="application/zip")
