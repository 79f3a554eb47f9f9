"""Gate USDT perpetuals (APIv4, settle `usdt`) as the simulator serves them: the contract
table and the payload rows REST and the WebSocket send (contracts, tickers, candles,
funding, contract statistics, liquidation orders), exchange-apis.md §10.

Units as Gate's: every size is an integer number of **contracts**, a contract being
`quanto_multiplier` base coin; REST times are Unix seconds, stream times ms; prices are
decimal strings, statistics numbers JSON numbers. Assumptions where the doc is silent:
- `quanto_multiplier` = 10^floor(log10(10 / first price)) (BTC 0.0001, DOGE 10, as Gate's);
- OI (`total_size`, `open_interest`, `position_size`) is this venue's share of the market OI
  rounded to whole contracts; candle and ticker volumes are the whole market's (as the
  Binance, OKX and Bitget venues serve them);
- mark = last trade price, index = mark x 0.9999; `funding_next_apply` the next settlement;
- a statistics row at `time` holds the OI then and the liquidations and taker volume of the
  period ending then; `long_users`/`short_users` and the top-trader counts are built so the
  documented ratios are their exact quotients, as in the recorded reply (§10.4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from oiradar.sim.context import SimContext, dec, price_decimals
from oiradar.sim.market import (
    Bars,
    LiqOrder,
    SymbolData,
    completed,
    funding_now,
    last_price,
    oi_at,
    positioning_snapshots,
)

VENUE = "gate"
PREFIXES = ("/api/v4/futures/",)
MINUTE_S, HOUR_S, DAY_S = 60, 3600, 86_400
CANDLE_INTERVALS = {
    "1m": MINUTE_S, "5m": 5 * MINUTE_S, "15m": 15 * MINUTE_S, "30m": 30 * MINUTE_S,
    "1h": HOUR_S, "4h": 4 * HOUR_S, "8h": 8 * HOUR_S, "1d": DAY_S, "7d": 7 * DAY_S,
}  # fmt: skip
_STATS = ("5m", "15m", "30m", "1h", "4h", "1d")  # ccxt's list; the REST doc names none
STATS_INTERVALS = {k: v for k, v in CANDLE_INTERVALS.items() if k in _STATS}


@dataclass(frozen=True, slots=True)
class Contract:
    """One USDT perpetual: `quanto` base coin per contract (a power of ten)."""

    name: str
    sd: SymbolData
    quanto_exp: int

    @property
    def quanto(self) -> float:
        return 10.0**self.quanto_exp

    def contracts(self, base: float) -> int:
        return round(base / self.quanto)

    def px(self, price: float) -> str:
        return dec(price, price_decimals(self.sd))


def contract_of(sd: SymbolData) -> Contract:
    exp = math.floor(math.log10(10.0 / max(float(sd.close[0]), 1e-12)))
    return Contract(f"{sd.base}_USDT", sd, exp)


def contracts(ctx: SimContext) -> dict[str, Contract]:
    """name -> contract, for every symbol listed by now."""
    now, out = ctx.now_ms(), {}
    for symbol in ctx.market.symbols:
        sd = ctx.market.get(symbol)
        if sd.first_ms <= now:
            c = contract_of(sd)
            out[c.name] = c
    return out


def _open_interest(ctx: SimContext, c: Contract, ts_ms: int) -> int:
    return c.contracts(ctx.share(VENUE) * oi_at(c.sd, ts_ms))


def contract_row(ctx: SimContext, c: Contract, now: int) -> dict[str, Any]:
    rate, next_ms = funding_now(c.sd, now)
    last = last_price(c.sd, now)
    return {
        "name": c.name, "type": "direct", "quanto_multiplier": dec(c.quanto, 12),
        "leverage_min": "1", "leverage_max": "100", "maintenance_rate": "0.005",
        "mark_type": "index", "mark_price": c.px(last), "index_price": c.px(last * 0.9999),
        "last_price": c.px(last), "maker_fee_rate": "-0.0001", "taker_fee_rate": "0.00075",
        "order_price_round": c.px(10.0 ** -price_decimals(c.sd)), "mark_price_round": "0.01",
        "funding_rate": dec(rate, 8), "funding_interval": int(c.sd.funding_interval_h * 3600),
        "funding_next_apply": next_ms // 1000, "funding_rate_limit": "0.003",
        "order_size_min": 1, "order_size_max": 1_000_000, "position_size":
        _open_interest(ctx, c, now), "long_users": 100, "short_users": 100,
        "in_delisting": False, "status": "trading", "is_pre_market": False,
        "enable_decimal": False, "contract_type": "",
    }  # fmt: skip


def ticker_row(ctx: SimContext, c: Contract, now: int) -> dict[str, Any]:
    """24 h stats over the closed base bars of the last day plus the running bar's open."""
    sd, last = c.sd, last_price(c.sd, now)
    i, j = completed(sd, now), completed(sd, now - DAY_S * 1000)
    day = slice(j, i)
    high = max(float(sd.high[day].max()), last) if i > j else last
    low = min(float(sd.low[day].min()), last) if i > j else last
    base_vol = float(sd.volume[day].sum())
    quote_vol = float((sd.volume[day] * sd.close[day]).sum())
    open24 = float(sd.open[min(j, len(sd.ts) - 1)])
    rate, _ = funding_now(sd, now)
    return {
        "contract": c.name, "last": c.px(last), "low_24h": c.px(low), "high_24h": c.px(high),
        "change_percentage": dec((last / open24 - 1) * 100, 2),
        "total_size": str(_open_interest(ctx, c, now)),
        "volume_24h": str(c.contracts(base_vol)), "volume_24h_base": dec(base_vol, 6),
        "volume_24h_quote": dec(quote_vol, 2), "volume_24h_settle": dec(quote_vol, 2),
        "mark_price": c.px(last), "funding_rate": dec(rate, 8),
        "funding_rate_indicative": dec(rate, 8), "index_price": c.px(last * 0.9999),
        "highest_bid": c.px(last - 10.0 ** -price_decimals(sd)), "highest_size": "100",
        "lowest_ask": c.px(last), "lowest_size": "100",
    }  # fmt: skip


def candle_row(c: Contract, b: Bars, k: int, with_volume: bool) -> dict[str, Any]:
    """`{t (s), v (contracts; the market's own series only), c, h, l, o, sum (USDT)}`."""
    row: dict[str, Any] = {"t": int(b.ts[k]) // 1000}
    if with_volume:
        row["v"] = c.contracts(float(b.volume[k]))
    prices = {key: c.px(float(arr[k])) for key, arr in
              (("c", b.close), ("h", b.high), ("l", b.low), ("o", b.open))}  # fmt: skip
    return row | prices | {"sum": dec(float(b.quote_volume[k]), 2)}


def stats_row(ctx: SimContext, c: Contract, t_s: int, interval_s: int, now: int) -> dict[str, Any]:
    """One `contract_stats` row at `t_s` (seconds): OI then, the period's liquidations and
    taker volume, the ratios at its close (as numbers, the recorded reply's types)."""
    sd, t_ms, share = c.sd, t_s * 1000, ctx.share(VENUE)
    mark = float(sd.close[max(completed(sd, t_ms) - 1, 0)])
    oi = _open_interest(ctx, c, t_ms)
    lo, hi = max(0, completed(sd, t_ms - interval_s * 1000)), completed(sd, t_ms)
    liq = {side: c.contracts(share * float(arr[lo:hi].sum()))
           for side, arr in (("long", sd.liq_long), ("short", sd.liq_short))}  # fmt: skip
    pos = positioning_snapshots(sd, interval_s * 1000, t_ms, t_ms, now)
    top_a, top_p, acc = (float(x[0]) if len(x) else 1.0
                         for x in (pos.top_account, pos.top_position, pos.account))  # fmt: skip
    buys = c.contracts(share * float(pos.taker_buy[0])) if len(pos.ts) else 0
    sells = c.contracts(share * float(pos.taker_sell[0])) if len(pos.ts) else 0
    users = (round(acc * 10_000), 10_000)
    tops = (round(top_a * 100), 100)
    top_size = (round(top_p * 10**6), 10**6)
    row = {
        "time": t_s, "lsr_taker": buys / sells if sells else 0, "lsr_account": users[0] / users[1],
        "open_interest": oi, "open_interest_usd": oi * c.quanto * mark, "mark_price": mark,
        "top_lsr_size": top_size[0] / top_size[1], "top_lsr_account": tops[0] / tops[1],
        "top_long_size": top_size[0], "top_short_size": top_size[1],
        "top_long_account": tops[0], "top_short_account": tops[1],
        "long_taker_size": buys, "short_taker_size": sells,
        "long_users": users[0], "short_users": users[1],
    }  # fmt: skip
    for side, size in liq.items():
        row |= {f"{side}_liq_size": size, f"{side}_liq_amount": size * c.quanto,
                f"{side}_liq_usd": size * c.quanto * mark}  # fmt: skip
    return row


def liquidation_row(ctx: SimContext, c: Contract, o: LiqOrder) -> dict[str, Any]:
    """A `futures.public_liquidates` row: `size` is the forced ORDER (a long is closed by a
    sell: negative), at least one contract; `time` in ms; `price` the order price."""
    size = max(1, c.contracts(ctx.share(VENUE) * o.qty_base))
    return {"price": c.px(o.price), "size": -size if o.long else size, "time": o.ts_ms,
            "contract": c.name}  # fmt: skip


def stat_times(sd: SymbolData, interval_s: int, now: int) -> np.ndarray[Any, Any]:
    """Statistics timestamps (s): every interval from one after the first bar up to now."""
    step = interval_s * 1000
    first = -(-(sd.first_ms + step) // step) * step
    return np.arange(first, min(now, sd.end_ms) + 1, step, dtype=np.int64) // 1000
