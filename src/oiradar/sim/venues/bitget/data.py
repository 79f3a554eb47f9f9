"""Bitget v2 mix, productType USDT-FUTURES, as the simulator serves it: granularities and the
payload rows REST and the WebSocket both send (contracts, tickers, candles), inside the
`{"code":"00000","msg":"success","requestTime","data"}` envelope, every number and timestamp
a string. Assumptions where the doc is silent (unverified):
- non-`utc` 6H/12H/1D/3D/1W bars open at 00:00 UTC+8 (Bitget's home zone), `utc` ones at
  00:00 UTC, weeks on Mondays; 1M/1Mutc (calendar months) are not simulated;
- mark = last trade price, index = mark x 0.9999, ask = last, bid = last - one tick;
  numbers are plain decimals with trailing zeros stripped, as in the doc examples;
- a symbol exists from its first bar; after the data ends it keeps its last values.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from oiradar.sim.context import SimContext, dec, json_response, price_decimals, qty_decimals
from oiradar.sim.market import Bars, SymbolData, bars, completed, funding_now, last_price, oi_at

VENUE = "bitget"
PREFIXES = ("/api/v2/mix/",)
PRODUCT = "USDT-FUTURES"
MINUTE_MS, HOUR_MS, DAY_MS = 60_000, 3_600_000, 86_400_000
_STEPS = {
    "1m": MINUTE_MS, "3m": 3 * MINUTE_MS, "5m": 5 * MINUTE_MS, "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS, "1H": HOUR_MS, "4H": 4 * HOUR_MS, "6H": 6 * HOUR_MS,
    "12H": 12 * HOUR_MS, "1D": DAY_MS, "3D": 3 * DAY_MS, "1W": 7 * DAY_MS,
}  # fmt: skip
_MONDAY = 4 * DAY_MS  # 1970-01-05 00:00 UTC was a Monday
# granularity -> (bar length, open phase = bar open mod length); UTC+8 midnight = 16:00 UTC.
GRANULARITY = {g: (s, ((_MONDAY if g == "1W" else 0) - 8 * HOUR_MS) % s) for g, s in _STEPS.items()}
GRANULARITY |= {f"{g}utc": (GRANULARITY[g][0], 0) for g in ("6H", "12H", "1D", "3D")}
GRANULARITY["1Wutc"] = (7 * DAY_MS, _MONDAY)


def envelope(ctx: SimContext, data: Any, code: str = "00000", msg: str = "success",
             status: int = 200) -> web.Response:  # fmt: skip
    return json_response(
        {"code": code, "msg": msg, "requestTime": ctx.now_ms(), "data": data}, status=status
    )


def listed(ctx: SimContext, name: str) -> SymbolData | None:
    if not ctx.market.has(name):
        return None
    sd = ctx.market.get(name)
    return sd if sd.first_ms <= ctx.now_ms() else None


def contract_row(sd: SymbolData) -> dict[str, Any]:
    pd, qd = price_decimals(sd), qty_decimals(sd)
    step, price = dec(10.0**-qd, qd), float(sd.close[0])
    return {
        "symbol": sd.symbol, "baseCoin": sd.base, "quoteCoin": "USDT",
        "buyLimitPriceRatio": "0.05", "sellLimitPriceRatio": "0.05", "feeRateUpRatio": "0.1",
        "makerFeeRate": "0.0002", "takerFeeRate": "0.0006", "openCostUpRatio": "0.1",
        "supportMarginCoins": ["USDT"], "minTradeNum": step, "priceEndStep": "1",
        "volumePlace": str(qd), "pricePlace": str(pd), "sizeMultiplier": step,
        "symbolType": "perpetual", "minTradeUSDT": "5", "maxSymbolOrderNum": "999999",
        "maxProductOrderNum": "999999", "maxPositionNum": "150", "symbolStatus": "normal",
        "offTime": "-1", "limitOpenTime": "-1", "deliveryTime": "", "deliveryStartTime": "",
        "launchTime": "", "fundInterval": str(int(sd.funding_interval_h)), "minLever": "1",
        "maxLever": "125" if price >= 1000 else "75", "posLimit": "0.05", "maintainTime": "",
        "maxMarketOrderQty": dec(1e7 / price, qd), "maxOrderQty": dec(5e7 / price, qd),
        "isRwa": "NO",
    }  # fmt: skip


def ticker_row(ctx: SimContext, sd: SymbolData, now: int) -> dict[str, Any]:
    """24 h stats over the closed base bars of the last day plus the running bar's open."""
    pd, qd, n = price_decimals(sd), qty_decimals(sd), len(sd.ts) - 1
    last = last_price(sd, now)
    i, j = completed(sd, now), completed(sd, now - DAY_MS)
    day = slice(j, i)
    high = max(float(sd.high[day].max()), last) if i > j else last
    low = min(float(sd.low[day].min()), last) if i > j else last
    base_vol = float(sd.volume[day].sum())
    quote_vol = float((sd.volume[day] * sd.close[day]).sum())
    open24 = float(sd.open[min(j, n)])
    open_utc = float(sd.open[min(completed(sd, now - now % DAY_MS), n)])
    rate, _ = funding_now(sd, now)
    oi = ctx.share(VENUE) * oi_at(sd, now)
    depth = dec(max(oi * 1e-4, 10.0**-qd), qd)
    return {
        "symbol": sd.symbol, "lastPr": dec(last, pd), "askPr": dec(last, pd),
        "bidPr": dec(last - 10.0**-pd, pd), "bidSz": depth, "askSz": depth,
        "high24h": dec(high, pd), "low24h": dec(low, pd), "ts": str(now),
        "change24h": dec(last / open24 - 1, 5), "baseVolume": dec(base_vol, qd),
        "quoteVolume": dec(quote_vol, 4), "usdtVolume": dec(quote_vol, 4),
        "openUtc": dec(open_utc, pd), "changeUtc24h": dec(last / open_utc - 1, 5),
        "indexPrice": dec(last * 0.9999, pd + 1), "fundingRate": dec(rate, 6),
        "holdingAmount": dec(oi, qd), "deliveryStartTime": None, "deliveryTime": None,
        "deliveryStatus": "delivery_normal", "open24h": dec(open24, pd),
        "markPrice": dec(last, pd),
    }  # fmt: skip


def bars_of(sd: SymbolData, gran: str, lo: int, hi: int, now: int, limit: int) -> Bars:
    """The newest `limit` bars of `gran` opening in [lo, hi] as of now, oldest first.

    `bars` opens bars on epoch multiples; a bar with a phase (UTC+8 days, Monday weeks) is
    served by shifting the time axis by the phase and back.
    """
    step, phase = GRANULARITY[gran]
    lo = max(lo, hi - (hi - phase) % step - step * (limit - 1))
    if not phase:
        return bars(sd, step, lo, hi, now)
    b = bars(replace(sd, ts=sd.ts - phase), step, lo - phase, hi - phase, now - phase)
    return replace(b, ts=b.ts + phase)


def candle_rows(
    sd: SymbolData, b: Bars, closed_only: bool = False, usdt: bool = False
) -> list[Any]:
    """[ts, open, high, low, close, base volume, quote volume(, USDT volume)] strings."""
    pd, qd = price_decimals(sd), qty_decimals(sd)
    rows = []
    for k in range(len(b.ts)):
        if closed_only and not b.closed[k]:
            continue
        quote = dec(b.quote_volume[k], 4)
        prices = [dec(float(x[k]), pd) for x in (b.open, b.high, b.low, b.close)]
        row = [str(int(b.ts[k])), *prices, dec(b.volume[k], qd), quote]
        rows.append([*row, quote] if usdt else row)
    return rows
