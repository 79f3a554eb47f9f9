"""Hyperliquid perps as the simulator serves them (exchange-apis.md §9.1, §11): the coin table
and the payload rows `/info` and the WebSocket send (universe, asset contexts, candles,
funding history), numbers as strings, times as integer ms, sizes in coin.

Assumptions where the docs are silent:
- coins are the market's bases; a base priced under 0.001 trades as `k<BASE>` (1,000 units:
  price x 1,000, sizes / 1,000), as kPEPE and kSHIB do on Hyperliquid;
- OI (`openInterest`, one side) is this venue's share of the market OI; `dayNtlVlm` and
  candle volumes are the whole market's (as the other simulated venues serve them);
- funding settles every hour at one hour's part of the market's rate (rate x 1 / its
  interval in hours); `premium` is the market's premium; the mark is the last trade price,
  oracle = mark x 0.9999, mid = mark, impact prices one tick either side;
- `szDecimals` is the market's quantity precision (per k-coin unit), prices keep the
  market's decimals (Hyperliquid's 5-significant-figure rule is not modelled).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oiradar.sim.context import SimContext, dec, price_decimals, qty_decimals
from oiradar.sim.market import SymbolData, completed, funding_now, last_price, oi_at

VENUE = "hyperliquid"
PREFIXES = ("/info",)
HOUR_MS, DAY_MS = 3_600_000, 86_400_000
INTERVALS = {
    "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": HOUR_MS, "2h": 2 * HOUR_MS, "4h": 4 * HOUR_MS, "8h": 8 * HOUR_MS,
    "12h": 12 * HOUR_MS, "1d": DAY_MS, "3d": 3 * DAY_MS, "1w": 7 * DAY_MS,
}  # fmt: skip
K_BELOW = 0.001  # bases priced under this trade in units of 1,000


@dataclass(frozen=True, slots=True)
class Coin:
    """A perp: `scale` market units per coin unit (1,000 for a k-coin, else 1)."""

    name: str
    sd: SymbolData
    scale: int

    @property
    def px_dp(self) -> int:
        return max(0, price_decimals(self.sd) - (3 if self.scale > 1 else 0))

    @property
    def sz_dp(self) -> int:
        return min(8, qty_decimals(self.sd) + (3 if self.scale > 1 else 0))

    def px(self, price: float) -> str:
        return dec(price * self.scale, self.px_dp)

    def sz(self, base: float) -> str:
        return dec(base / self.scale, self.sz_dp)


def coin_of(sd: SymbolData) -> Coin:
    k = float(sd.close[0]) < K_BELOW
    return Coin(f"k{sd.base}" if k else sd.base, sd, 1000 if k else 1)


def coins(ctx: SimContext) -> list[Coin]:
    """The universe, in the market's order, listed by now."""
    now = ctx.now_ms()
    found = (ctx.market.get(s) for s in ctx.market.symbols)
    return [coin_of(sd) for sd in found if sd.first_ms <= now]


def universe_row(c: Coin) -> dict[str, Any]:
    lev = 50 if float(c.sd.close[0]) >= 1000 else 20
    return {"szDecimals": c.sz_dp, "name": c.name, "maxLeverage": lev, "marginTableId": lev}


def hourly(sd: SymbolData, rate: float) -> float:
    """The part of the market's rate (per its interval) paid each hour."""
    return rate / sd.funding_interval_h


def ctx_row(ctx: SimContext, c: Coin, now: int) -> dict[str, Any]:
    """One asset context (the keys of the ccxt-quoted example, in its order)."""
    sd, last = c.sd, last_price(c.sd, now)
    i, j = completed(sd, now), completed(sd, now - DAY_MS)
    day = slice(j, i)
    base_vol = float(sd.volume[day].sum())
    quote_vol = float((sd.volume[day] * sd.close[day]).sum())
    prev = float(sd.open[min(j, len(sd.ts) - 1)])
    rate, _ = funding_now(sd, now)
    premium = float(sd.premium_close[max(i - 1, 0)])
    tick = 10.0 ** -price_decimals(sd)
    return {
        "dayNtlVlm": dec(quote_vol, 4), "funding": dec(hourly(sd, rate), 10),
        "impactPxs": [c.px(last - tick), c.px(last + tick)], "markPx": c.px(last),
        "midPx": c.px(last), "openInterest": c.sz(ctx.share(VENUE) * oi_at(sd, now)),
        "oraclePx": c.px(last * 0.9999), "premium": dec(premium, 8),
        "prevDayPx": c.px(prev), "dayBaseVlm": c.sz(base_vol),
    }  # fmt: skip


def candle_row(c: Coin, interval: str, step: int, k: int, b: Any) -> dict[str, Any]:
    """`{T, c, h, i, l, n, o, s, t, v}` as the doc's example orders them."""
    t = int(b.ts[k])
    return {
        "T": t + step - 1, "c": c.px(float(b.close[k])), "h": c.px(float(b.high[k])),
        "i": interval, "l": c.px(float(b.low[k])), "n": int(b.trades[k]),
        "o": c.px(float(b.open[k])), "s": c.name, "t": t, "v": c.sz(float(b.volume[k])),
    }  # fmt: skip


def funding_rows(c: Coin, start_ms: int, end_ms: int, now: int) -> list[dict[str, Any]]:
    """Hourly settlements in [start, end] (none after now or before the second hour of
    data), ascending, the rate in force at each."""
    sd = c.sd
    first = max(start_ms, sd.first_ms + HOUR_MS)
    first = -(-first // HOUR_MS) * HOUR_MS
    out = []
    for t in range(first, min(end_ms, now, sd.end_ms) + 1, HOUR_MS):
        i = max(completed(sd, t) - 1, 0)
        rate, premium = hourly(sd, float(sd.funding[i])), float(sd.premium_close[i])
        out.append({"coin": c.name, "fundingRate": dec(rate, 10), "premium": dec(premium, 8),
                    "time": t})  # fmt: skip
    return out


def trade_row(c: Coin, t: int) -> dict[str, Any]:
    """A synthetic trade at second `t` (ms) at the last price (the market keeps no tape)."""
    price = last_price(c.sd, t)
    return {
        "coin": c.name, "side": "B" if t // 1000 % 2 else "A", "px": c.px(price),
        "sz": c.sz(10.0 ** -qty_decimals(c.sd)), "time": t, "hash": f"0x{t:064x}",
        "tid": t // 1000, "users": ["0x" + "1" * 40, "0x" + "2" * 40],
    }  # fmt: skip
