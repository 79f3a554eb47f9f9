"""dYdX v4 indexer as the simulator serves it (exchange-apis.md §13): the market table and the
rows REST and the WebSocket send (markets, candles with OI, hourly funding, trades with
LIQUIDATED fills), numbers as strings, times ISO-8601 UTC with milliseconds.

Assumptions where the docs are silent:
- markets are the market's bases as `<BASE>-USD`; sizes are base units (no multiplier);
  OI (`openInterest`, candles' `startingOpenInterest`) is this venue's share of the market
  OI at `stepSize`; candle volumes and `volume24H` (USD) are the whole market's;
- one block per second (height = epoch seconds - 1.7e9); funding ticks every hour on the
  hour at one hour's part of the market's rate (rate / its interval in hours), `price` the
  oracle price then; `nextFundingRate` likewise for the running hour;
- the trade tape is synthetic: one LIMIT trade per base bar at its close, plus every forced
  order of the market as a LIQUIDATED taker fill (`side` SELL when a long is liquidated),
  at least one step in size; ids are 24 hex digits (time, sequence), as in the recorded rows;
- the oracle price is the last trade price; the orderbook mid prices are the bar's open and
  close.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from oiradar.sim.context import SimContext, dec, price_decimals
from oiradar.sim.market import (
    Bars,
    SymbolData,
    completed,
    funding_now,
    last_price,
    liquidation_orders,
    oi_at,
)

VENUE = "dydx"
PREFIXES = tuple(f"/v4/{p}" for p in ("perpetualMarkets", "candles/", "historicalFunding/",
                                      "trades/", "height", "time"))  # fmt: skip
HOUR_MS, DAY_MS = 3_600_000, 86_400_000
RESOLUTIONS = {
    "1MIN": 60_000, "5MINS": 300_000, "15MINS": 900_000, "30MINS": 1_800_000,
    "1HOUR": HOUR_MS, "4HOURS": 4 * HOUR_MS, "1DAY": DAY_MS,
}  # fmt: skip
HEIGHT_ZERO_S = 1_700_000_000


def iso(ts_ms: int) -> str:
    when = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


def height(ts_ms: int) -> str:
    return str(ts_ms // 1000 - HEIGHT_ZERO_S)


@dataclass(frozen=True, slots=True)
class Market:
    ticker: str
    sd: SymbolData
    index: int

    @property
    def step_dp(self) -> int:
        """`stepSize` decimals: about 1 USD a step at the first price."""
        return max(0, math.ceil(math.log10(max(float(self.sd.close[0]), 1e-12))))

    def sz(self, base: float) -> str:
        return dec(base, self.step_dp)

    def px(self, price: float) -> str:
        return dec(price, price_decimals(self.sd))


def markets(ctx: SimContext) -> dict[str, Market]:
    """ticker -> market, for every symbol listed by now."""
    now, out = ctx.now_ms(), {}
    for k, symbol in enumerate(ctx.market.symbols):
        sd = ctx.market.get(symbol)
        if sd.first_ms <= now:
            out[f"{sd.base}-USD"] = Market(f"{sd.base}-USD", sd, k)
    return out


def oi(ctx: SimContext, m: Market, ts_ms: int) -> str:
    return m.sz(ctx.share(VENUE) * oi_at(m.sd, ts_ms))


def hourly(sd: SymbolData, rate: float) -> float:
    return rate / sd.funding_interval_h


def market_row(ctx: SimContext, m: Market, now: int) -> dict[str, Any]:
    """A `perpetualMarkets` row (the recorded reply's keys, in its order)."""
    sd, last = m.sd, last_price(m.sd, now)
    i, j = completed(sd, now), completed(sd, now - DAY_MS)
    prev = float(sd.open[min(j, len(sd.ts) - 1)])
    quote = float((sd.volume[j:i] * sd.close[j:i]).sum())
    rate, _ = funding_now(sd, now)
    step = 10.0**-m.step_dp
    return {
        "clobPairId": str(m.index), "ticker": m.ticker, "status": "ACTIVE",
        "oraclePrice": m.px(last), "priceChange24H": m.px(last - prev),
        "volume24H": dec(quote, 4), "trades24H": i - j,
        "nextFundingRate": dec(hourly(sd, rate), 12),
        "initialMarginFraction": "0.02", "maintenanceMarginFraction": "0.012",
        "openInterest": oi(ctx, m, now), "atomicResolution": -10, "quantumConversionExponent": -9,
        "tickSize": m.px(10.0 ** -price_decimals(sd)), "stepSize": m.sz(step),
        "stepBaseQuantums": 1_000_000, "subticksPerTick": 100_000, "marketType": "CROSS",
        "openInterestLowerCap": "0", "openInterestUpperCap": "0",
        "baseOpenInterest": oi(ctx, m, now), "defaultFundingRate1H": "0",
    }  # fmt: skip


def candle_row(ctx: SimContext, m: Market, resolution: str, b: Bars, k: int) -> dict[str, Any]:
    t = int(b.ts[k])
    return {
        "startedAt": iso(t), "ticker": m.ticker, "resolution": resolution,
        "low": m.px(float(b.low[k])), "high": m.px(float(b.high[k])),
        "open": m.px(float(b.open[k])), "close": m.px(float(b.close[k])),
        "baseTokenVolume": m.sz(float(b.volume[k])), "usdVolume": dec(float(b.quote_volume[k]), 4),
        "trades": int(b.trades[k]), "startingOpenInterest": oi(ctx, m, t),
        "orderbookMidPriceOpen": m.px(float(b.open[k])),
        "orderbookMidPriceClose": m.px(float(b.close[k])),
    }  # fmt: skip


def funding_row(m: Market, t: int) -> dict[str, Any]:
    i = max(completed(m.sd, t) - 1, 0)
    rate = hourly(m.sd, float(m.sd.funding[i]))
    return {"ticker": m.ticker, "rate": dec(rate, 12), "price": m.px(float(m.sd.close[i])),
            "effectiveAtHeight": height(t), "effectiveAt": iso(t)}  # fmt: skip


def funding_times(m: Market, upto_ms: int, now: int) -> range:
    """Hourly settlements from the second hour of data to min(upto, now), ascending."""
    first = -(-(m.sd.first_ms + HOUR_MS) // HOUR_MS) * HOUR_MS
    return range(first, min(upto_ms, now, m.sd.end_ms) + 1, HOUR_MS)


def trades(ctx: SimContext, m: Market, t0: int, t1: int) -> list[dict[str, Any]]:
    """The tape in (t0, t1], oldest first: a LIMIT trade at each base bar's close, and every
    forced order as a LIQUIDATED taker fill of this venue's share."""
    sd, out = m.sd, []
    first = max(-(-(t0 + 1 - sd.first_ms) // sd.bar_ms), 1)
    last = min((t1 - sd.first_ms) // sd.bar_ms, len(sd.ts))
    for b in range(int(first), int(last) + 1):
        t = sd.first_ms + b * sd.bar_ms
        side = "BUY" if sd.close[b - 1] >= sd.open[b - 1] else "SELL"
        size = m.sz(max(10.0**-m.step_dp, float(sd.volume[b - 1]) * 0.001))
        out.append(_trade(t, 0, side, size, m.px(float(sd.close[b - 1])), "LIMIT"))
    share = ctx.share(VENUE)
    for o in liquidation_orders(sd, t0, t1, ctx.venue_seed(VENUE)):
        size = m.sz(max(10.0**-m.step_dp, o.qty_base * share))
        seq = 1 + int(o.long) + 2 * (int(o.qty_base * 1e9) % 0x7FFFFFF)  # the same in any window
        out.append(_trade(o.ts_ms, seq, "SELL" if o.long else "BUY", size, m.px(o.price),
                          "LIQUIDATED"))  # fmt: skip
    out.sort(key=lambda r: (r["createdAt"], r["id"]))
    return out


def _trade(t: int, seq: int, side: str, size: str, price: str, kind: str) -> dict[str, Any]:
    return {"id": f"{t:016x}{seq:08x}", "side": side, "size": size, "price": price,
            "type": kind, "createdAt": iso(t), "createdAtHeight": height(t)}  # fmt: skip
