"""Binance USD-M premium-index klines and the positioning statistics, as the simulator serves
them (exchange-apis.md §1.1; Binance's "Premium index Kline Data", "Long/Short Ratio", "Top
Trader Long/Short Ratio (Accounts|Positions)" and "Taker Buy/Sell Volume" pages).

- `/fapi/v1/premiumIndexKlines`: klines rows with the premium (a fraction) as OHLC and "0"
  in the volume fields; weight by `limit` as for klines. The ignored count field is the
  number of 5-second samples in the bar (the doc's 1-minute example has 12): an assumption.
- `/futures/data/{top,global}LongShort*Ratio`, `takerlongshortRatio`: the `/futures/data`
  bucket (1000 requests per 5 min), `period` 5m..1d, `limit` 30 by default and at most 500,
  the latest 30 days (an older `startTime` answers -1130, as `openInterestHist` does here);
  ratios at each period's close, `timestamp` as a string (as on the doc pages), ratios and
  shares with 4 decimals. The taker volumes are the whole market's, like the klines' volume
  here; a period in which nothing traded has no taker row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from aiohttp import web

from oiradar.sim.context import SimContext, is_empty_fault, num, qty_decimals
from oiradar.sim.market import PositioningSnapshots, positioning_snapshots, premium_bars
from oiradar.sim.venues.binance.rest import Endpoint, kline_window, stats_window

SAMPLE_MS = 5_000  # Binance computes the premium index every 5 seconds


def premium_index_klines(ctx: SimContext, request: web.Request) -> list[list[Any]]:
    w = kline_window(ctx, request)
    if is_empty_fault(request):
        return []
    step, now = w.step, w.now
    b = premium_bars(w.sd, step, w.lo, w.hi, now, w.offset_ms)
    keep = w.keep(len(b.ts))
    rows = []
    for i in range(len(b.ts))[keep]:
        t = int(b.ts[i])
        done = min(now, t + step) - t if not b.closed[i] else step
        prices = (f"{x:.8f}" for x in (b.open[i], b.high[i], b.low[i], b.close[i]))
        rows.append([t, *prices, "0", t + step - 1, "0", done // SAMPLE_MS, "0", "0", "0"])
    return rows


def _snapshots(ctx: SimContext, request: web.Request) -> tuple[str, PositioningSnapshots]:
    """The symbol and the snapshots a ratio request asks for (the openInterestHist rules)."""
    w = stats_window(ctx, request)
    hi = w.lo - 1 if is_empty_fault(request) else w.hi
    snaps = positioning_snapshots(w.sd, w.step, w.lo, hi, w.now)
    return w.sd.symbol, snaps[w.keep(len(snaps.ts))]


def _long_short(
    pick: Callable[[PositioningSnapshots], np.ndarray],
) -> Callable[[SimContext, web.Request], list[dict[str, str]]]:
    def handle(ctx: SimContext, request: web.Request) -> list[dict[str, str]]:
        symbol, snaps = _snapshots(ctx, request)
        return [
            {
                "symbol": symbol,
                "longShortRatio": f"{r:.4f}",
                "longAccount": f"{r / (1 + r):.4f}",
                "shortAccount": f"{1 / (1 + r):.4f}",
                "timestamp": str(int(t)),
            }
            for t, r in zip(snaps.ts, pick(snaps), strict=True)
        ]

    return handle


def taker_long_short_ratio(ctx: SimContext, request: web.Request) -> list[dict[str, str]]:
    symbol, snaps = _snapshots(ctx, request)
    qd = max(4, qty_decimals(ctx.market.get(symbol)))
    return [
        {
            "buySellRatio": f"{b / s:.4f}",
            "buyVol": num(b, qd),
            "sellVol": num(s, qd),
            "timestamp": str(t),
        }
        for t, b, s in zip(
            snaps.ts.tolist(), snaps.taker_buy.tolist(), snaps.taker_sell.tolist(), strict=True
        )
        if s > 0
    ]


ROUTES: dict[str, Endpoint] = {
    "/fapi/v1/premiumIndexKlines": premium_index_klines,
    "/futures/data/topLongShortAccountRatio": _long_short(lambda s: s.top_account),
    "/futures/data/topLongShortPositionRatio": _long_short(lambda s: s.top_position),
    "/futures/data/globalLongShortAccountRatio": _long_short(lambda s: s.account),
    "/futures/data/takerlongshortRatio": taker_long_short_ratio,
}
