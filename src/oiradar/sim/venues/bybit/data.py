"""Bybit v5 linear as the simulator serves it: the interval tables and the payload rows built
from the market (instruments, tickers, OI rows, candles), read by `rest` and `ws`.

OI is served as Bybit does: `openInterest` both sides (2 x this venue's share of the market
OI, base units), `singleOpenInterest` one side; values in USDT = base x mark. Candles open on
UTC boundaries (W on Monday, M on the 1st); one straddling the symbol's first data is not
served.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from oiradar.sim.context import SimContext, num
from oiradar.sim.context import price_decimals as price_dec
from oiradar.sim.context import qty_decimals as qty_dec
from oiradar.sim.market import Bars, SymbolData, bars, completed, funding_now, last_price, oi_at

VENUE = "bybit"
PREFIXES = ("/v5/market/",)
MIN_MS, HOUR_MS, DAY_MS = 60_000, 3_600_000, 86_400_000
MINUTES = (1, 3, 5, 15, 30, 60, 120, 240, 360, 720)
# M is a calendar month; 31 days only bounds how far back a page may reach.
INTERVALS = {
    **{str(m): m * MIN_MS for m in MINUTES},
    "D": DAY_MS,
    "W": 7 * DAY_MS,
    "M": 31 * DAY_MS,
}
OI_PERIODS = {
    "5min": 5 * MIN_MS,
    "15min": 15 * MIN_MS,
    "30min": 30 * MIN_MS,
    "1h": HOUR_MS,
    "4h": 4 * HOUR_MS,
    "1d": DAY_MS,
}
NO_DELIVERY = dict.fromkeys(
    ("predictedDeliveryPrice", "basisRate", "deliveryFeeRate", "basis", "preOpenPrice", "preQty"),
    "",
)


def rate_str(x: float) -> str:
    """Funding rate as Bybit prints it: up to 8 decimals, no trailing zeros."""
    text = f"{x:.8f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def instrument_row(sd: SymbolData) -> dict[str, Any]:
    pd, qd, p0 = price_dec(sd), qty_dec(sd), float(sd.close[0])
    tick, step, most = num(10.0**-pd, pd), num(10.0**-qd, qd), num(round(5e6 / p0, qd), qd)
    return {
        "symbol": sd.symbol,
        "contractType": "LinearPerpetual",
        "status": "Trading",
        "baseCoin": sd.base,
        "quoteCoin": "USDT",
        "settleCoin": "USDT",
        "launchTime": str(sd.first_ms),
        "deliveryTime": "0",
        "priceScale": str(pd),
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "50.00", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": tick, "maxPrice": num(p0 * 100, pd), "tickSize": tick},
        "lotSizeFilter": {
            "maxOrderQty": most,
            "maxMktOrderQty": most,
            "minOrderQty": step,
            "qtyStep": step,
            "postOnlyMaxOrderQty": most,
            "minNotionalValue": "5",
        },
        "fundingInterval": int(sd.funding_interval_h * 60),  # minutes
        "upperFundingRate": "0.005",
        "lowerFundingRate": "-0.005",
        "copyTrading": "both",
        "isPreListing": False,
        "preListingInfo": None,
    }


def ticker_fields(ctx: SimContext, sd: SymbolData, now: int) -> dict[str, str]:
    """All linear ticker fields, as strings; OI both sides = 2 x single side exactly."""
    pd, qd = price_dec(sd), qty_dec(sd)
    last = last_price(sd, now)
    day = slice(completed(sd, now - DAY_MS), completed(sd, now))
    prev24 = last_price(sd, now - DAY_MS)
    rate, next_ms = funding_now(sd, now)
    single = round(oi_at(sd, now) * ctx.share(VENUE), qd)
    single_usd = round(single * round(last, pd), 2)  # value = size x the mark as printed
    depth = num(float(sd.volume[max(day.stop - 1, 0)]) * 0.02, qd)  # best bid/ask size
    return {
        "symbol": sd.symbol,
        "lastPrice": num(last, pd),
        "indexPrice": num(last * 0.9999, pd),
        "markPrice": num(last, pd),
        "prevPrice24h": num(prev24, pd),
        "price24hPcnt": f"{last / prev24 - 1:.6f}",
        "highPrice24h": num(float(sd.high[day].max(initial=last)), pd),
        "lowPrice24h": num(float(sd.low[day].min(initial=last)), pd),
        "prevPrice1h": num(last_price(sd, now - HOUR_MS), pd),
        "openInterest": num(2 * single, qd),
        "openInterestValue": num(2 * single_usd, 2),
        "singleOpenInterest": num(single, qd),
        "singleOpenInterestValue": num(single_usd, 2),
        "turnover24h": num(float((sd.volume[day] * sd.close[day]).sum()), 4),
        "volume24h": num(float(sd.volume[day].sum()), qd),
        "fundingRate": rate_str(rate),
        "nextFundingTime": str(next_ms),
        "fundingIntervalHour": str(int(sd.funding_interval_h)),
        "fundingCap": "0.005",
        "bid1Price": num(last - 10.0**-pd, pd),
        "bid1Size": depth,
        "ask1Price": num(last, pd),
        "ask1Size": depth,
    }


def oi_row(ts_ms: int, single: float, qd: int) -> dict[str, str]:
    """Both sides = 2 x the one side exactly, in base units; timestamp as a string."""
    return {
        "openInterest": num(2 * single, qd),
        "singleOpenInterest": num(single, qd),
        "timestamp": str(ts_ms),
    }


BarSource = Callable[[SymbolData, int, int, int, int], Bars]


@dataclass(frozen=True, slots=True)
class Candle:
    start: int
    end: int  # last ms of the candle
    closed: bool
    ohlcvt: tuple[float, ...]  # open, high, low, close, volume (coin), turnover (USDT)

    def fields(self, sd: SymbolData) -> list[str]:
        """open, high, low, close, volume (coin), turnover (USDT) as Bybit strings."""
        pd, (o, h, lo, c, v, t) = price_dec(sd), self.ohlcvt
        return [*(num(x, pd) for x in (o, h, lo, c)), num(v, qty_dec(sd)), num(t, 4)]


def floor_open(interval: str, t: int) -> int:
    """Open time of the candle holding `t`: epoch multiples, Mondays (W), the 1st (M), UTC."""
    if interval == "M":
        d = datetime.fromtimestamp(t / 1000, tz=UTC)
        return int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp() * 1000)
    offset = 4 * DAY_MS if interval == "W" else 0  # 1970-01-05 was a Monday
    step = INTERVALS[interval]
    return (t - offset) // step * step + offset


def next_open(interval: str, t: int) -> int:
    return floor_open(interval, t + 32 * DAY_MS) if interval == "M" else t + INTERVALS[interval]


def candles(
    sd: SymbolData, interval: str, lo: int, hi: int, now: int, source: BarSource = bars
) -> list[Candle]:
    """Candles opening in [lo, hi], ascending, the last maybe forming; none before the data.
    `source` aggregates base bars: trades (`bars`) or the premium index (`premium_bars`)."""
    if interval not in ("W", "M"):
        step = INTERVALS[interval]
        b = source(sd, step, lo, hi, now)
        cols = zip(b.open, b.high, b.low, b.close, b.volume, b.quote_volume, strict=True)
        return [
            Candle(int(t), int(t) + step - 1, bool(x), tuple(map(float, row)))
            for t, x, row in zip(b.ts, b.closed, cols, strict=True)
        ]
    out, first = [], max(lo, sd.first_ms)
    t = floor_open(interval, first)
    t = t if t >= first else next_open(interval, t)
    while t <= min(hi, now):
        u = next_open(interval, t)
        d = source(sd, DAY_MS, t, u - 1, now)  # weeks and months are built from days
        if len(d.ts):
            ohlc = (d.open[0], d.high.max(), d.low.min(), d.close[-1])
            sums = (d.volume.sum(), d.quote_volume.sum())
            closed = bool(d.closed.all()) and u <= now
            out.append(Candle(t, u - 1, closed, tuple(float(x) for x in (*ohlc, *sums))))
        t = u
    return out


def serves(sd: SymbolData, interval: str) -> bool:
    """Intervals the symbol's base bar can build (weeks and months are built from days)."""
    step = DAY_MS if interval in ("W", "M") else INTERVALS.get(interval, 1)
    return interval in INTERVALS and step % sd.bar_ms == 0
