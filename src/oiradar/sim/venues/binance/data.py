"""Binance USD-M Futures as the simulator serves it: the interval tables and the payload rows
built from the market (exchangeInfo symbols, premiumIndex, 24 h tickers), read by `rest`,
`evidence` and `ws`."""

from __future__ import annotations

from typing import Any

from oiradar.sim.context import SimContext, num, price_decimals, qty_decimals
from oiradar.sim.market import Bars, SymbolData, bars, funding_now, last_price

VENUE = "binance"
PREFIXES = ("/fapi/", "/futures/data/")
DAY_MS = 86_400_000
INTERVALS = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": 7 * DAY_MS,
}
WEEK_OFFSET_MS = 4 * DAY_MS  # weekly klines open Monday 00:00 UTC
OI_PERIODS = {k: INTERVALS[k] for k in ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")}


def symbol_info(sd: SymbolData, first_ms: int) -> dict[str, Any]:
    pd, qd = price_decimals(sd), qty_decimals(sd)
    tick, step = f"{10.0**-pd:.{pd}f}", f"{10.0**-qd:.{qd}f}" if qd else "1"
    return {
        "symbol": sd.symbol,
        "pair": sd.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": first_ms,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": sd.base,
        "quoteAsset": "USDT",
        "marginAsset": "USDT",
        "pricePrecision": pd,
        "quantityPrecision": qd,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": tick,
                "maxPrice": "1000000",
                "tickSize": tick,
            },
            {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "100000000", "stepSize": step},
            {"filterType": "MIN_NOTIONAL", "notional": "5"},
        ],
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
            "TRAILING_STOP_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
    }


def premium_row(sd: SymbolData, now: int) -> dict[str, Any]:
    """Mark, index and funding of one symbol (premiumIndex; the markPrice stream re-keys it)."""
    pd = price_decimals(sd)
    mark = last_price(sd, now)
    rate, next_time = funding_now(sd, now)
    return {
        "symbol": sd.symbol,
        "markPrice": num(mark, pd + 1),
        "indexPrice": num(mark * 0.9999, pd + 1),
        "estimatedSettlePrice": num(mark * 0.99995, pd + 1),
        "lastFundingRate": f"{rate:.8f}",
        "interestRate": "0.00010000",
        "nextFundingTime": next_time,
        "time": now,
    }


def ticker24_row(ctx: SimContext, sd: SymbolData, now: int) -> dict[str, Any]:
    pd, qd = price_decimals(sd), qty_decimals(sd)
    b = bars(sd, sd.bar_ms, now - DAY_MS, now, now).share(ctx.share(VENUE))
    last = last_price(sd, now)
    first = float(b.open[0]) if len(b.ts) else last
    vol = float(b.volume.sum())
    quote = float(b.quote_volume.sum())
    return {
        "symbol": sd.symbol,
        "priceChange": num(last - first, pd),
        "priceChangePercent": f"{(last / first - 1) * 100:.3f}",
        "weightedAvgPrice": num(quote / vol if vol else last, pd),
        "lastPrice": num(last, pd),
        "lastQty": num(1.0, qd),
        "openPrice": num(first, pd),
        "highPrice": num(float(b.high.max()) if len(b.ts) else last, pd),
        "lowPrice": num(float(b.low.min()) if len(b.ts) else last, pd),
        "volume": num(vol, qd),
        "quoteVolume": num(quote, 2),
        "openTime": now - DAY_MS,
        "closeTime": now,
        "firstId": 1,
        "lastId": int(b.trades.sum()) + 1,
        "count": int(b.trades.sum()),
    }


def kline_row(b: Bars, i: int, step: int, pd: int, qd: int) -> list[Any]:
    """Bar `i` as a klines row: [open time, o, h, l, c, volume, close time, quote volume,
    trades, taker buy base, taker buy quote, "0"]."""
    taker = b.taker_buy[i]
    taker_share = taker / b.volume[i] if b.volume[i] > 0 else 0.5
    return [
        int(b.ts[i]),
        num(b.open[i], pd),
        num(b.high[i], pd),
        num(b.low[i], pd),
        num(b.close[i], pd),
        num(b.volume[i], qd),
        int(b.ts[i]) + step - 1,
        num(b.quote_volume[i], 4),
        int(b.trades[i]),
        num(taker, qd),
        num(b.quote_volume[i] * taker_share, 4),
        "0",
    ]
