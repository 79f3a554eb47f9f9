"""Binance USD-M Futures on the wire (exchange-apis.md §1): paths, interval tables, error
codes, and pure parsers of REST and market-stream payloads into records.

On USD-M one contract is one base coin, so OI arrives in base units and USD = base x mark.
No public liquidation REST exists (`allForceOrders` is gone): liquidations come only from the
`forceOrder` stream, whose `S` is the side of the forced *order* (see `parse_force_order`).

Premium-index klines and positioning statistics, verified against Binance's own doc pages
(developers.binance.com, usds-margined-futures market data: "Premium index Kline Data",
"Long/Short Ratio", "Top Trader Long/Short Ratio (Accounts)", "Top Trader Long/Short Ratio
(Positions)", "Taker Buy/Sell Volume"):
- `/fapi/v1/premiumIndexKlines`: `symbol, interval, startTime, endTime, limit` (default 500,
  max 1500), weight by `limit` like klines; rows like klines with the premium as OHLC (a
  fraction, may be negative) and "0" in the volume fields.
- The four `/futures/data/*` endpoints: `symbol, period` (5m..1d), `limit` (default 30, max
  500), `startTime, endTime`; weight 0, in the 1000 requests / 5 min bucket; the latest 30
  days only. Long/short rows `{symbol, longShortRatio, longAccount, shortAccount,
  timestamp}` (the positions endpoint reuses the `*Account` names); taker rows `{buySellRatio,
  buyVol, sellVol, timestamp}` without a symbol. `timestamp` is a string on the doc pages
  and a number in some clients' recordings: both are accepted.
Assumed (the pages do not say): a ratio row's `timestamp` is the end of its period, like
`openInterestHist`, so the taker ratio covers the period that ends there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from oiradar.errors import UnknownSymbol, VenueError, VenueUnavailable
from oiradar.records import (
    Candle,
    ContractKind,
    FundingSample,
    Instrument,
    Liquidation,
    MarketSnapshot,
    OISample,
    Positioning,
    PremiumBar,
    Side,
)
from oiradar.units import interval_ms as interval_of
from oiradar.venues.base import ErrorOf, code_error, decimal, opt_decimal, reads, routed
from oiradar.venues.stream import StreamRecord

VENUE = "binance"
LIVE_PERPETUAL = {"contractType": "PERPETUAL", "status": "TRADING", "quoteAsset": "USDT"}
DEFAULT_FUNDING_H = 8.0  # symbols absent from fundingInfo settle every 8 h

KLINE_INTERVALS = frozenset(
    ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w"]
)  # 1M is left out: months have no fixed length in ms
OI_PERIODS = frozenset(["5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d"])
PREMIUM_INTERVALS = KLINE_INTERVALS  # premiumIndexKlines takes the klines intervals
POSITIONING_PERIODS = OI_PERIODS  # the ratio endpoints take the OI-history periods

KLINES, OI_HIST, FUNDING_RATE = (
    "/fapi/v1/klines",
    "/futures/data/openInterestHist",
    "/fapi/v1/fundingRate",
)
PREMIUM_KLINES = "/fapi/v1/premiumIndexKlines"
# Positioning field of each ratio endpoint.
RATIO_PATHS = {
    "/futures/data/topLongShortAccountRatio": "top_account_ratio",
    "/futures/data/topLongShortPositionRatio": "top_position_ratio",
    "/futures/data/globalLongShortAccountRatio": "account_ratio",
    "/futures/data/takerlongshortRatio": "taker_buy_sell_ratio",
}
RATIO_VALUE = {"/futures/data/takerlongshortRatio": "buySellRatio"}  # else longShortRatio

CODE_ERRORS: dict[int, ErrorOf] = {
    -1121: UnknownSymbol,  # invalid symbol
    -1122: UnknownSymbol,  # invalid symbol status (e.g. delisted)
    -1001: VenueUnavailable,  # disconnected
    -1007: VenueUnavailable,  # timeout waiting for the backend
    -1008: VenueUnavailable,  # throttled by system-level protection
}


def check_payload(payload: Any) -> VenueError | None:
    """Binance error bodies are `{"code": <0, "msg": ...}`; success bodies have no such code."""
    code = payload.get("code") if isinstance(payload, dict) else None
    if not isinstance(code, int) or code >= 0:
        return None
    return code_error(VENUE, CODE_ERRORS, code, f"{payload.get('msg', '')} (code {code})")


def ms(value: object) -> int:
    """A timestamp as int ms, sent as a number or a string of digits (openInterestHist and
    the ratio endpoints send strings on the doc pages)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise ValueError(f"not a timestamp: {value!r}")


# -- REST ----------------------------------------------------------------------------------


@reads(VENUE)
def parse_funding_info(payload: Any) -> dict[str, float]:
    """{symbol: funding interval in hours}; lists only symbols whose settings were adjusted."""
    return {
        row["symbol"]: decimal(row["fundingIntervalHours"])
        for row in payload
        if row.get("fundingIntervalHours")
    }


@reads(VENUE)
def parse_exchange_info(payload: Any, intervals_h: Mapping[str, float]) -> list[Instrument]:
    """Trading USDT-quoted perpetuals; one contract is one base coin on USD-M."""
    out = []
    for row in payload["symbols"]:
        if all(row.get(k) == v for k, v in LIVE_PERPETUAL.items()):
            sym, hours = row["symbol"], intervals_h.get(row["symbol"], DEFAULT_FUNDING_H)
            kind = ContractKind.LINEAR
            listed = ms(row["onboardDate"]) if "onboardDate" in row else None
            out.append(
                Instrument(VENUE, sym, sym, row["baseAsset"], "USDT", 1.0, kind, hours, listed)
            )
    return out


@reads(VENUE)
def parse_listing_times(payload: Any) -> dict[str, int]:
    """{symbol: onboardDate ms}: before it, an empty history page is expected."""
    return {
        row["symbol"]: ms(row["onboardDate"]) for row in payload["symbols"] if "onboardDate" in row
    }


@reads(VENUE)
def parse_server_time(payload: Any) -> int:
    """exchangeInfo's `serverTime` (ms): the venue's clock."""
    return ms(payload["serverTime"])


@reads(VENUE)
def parse_open_interest(payload: Any) -> OISample:
    """OI now, in base coins, stamped with the venue's time."""
    return OISample(VENUE, payload["symbol"], ms(payload["time"]), decimal(payload["openInterest"]))


@reads(VENUE)
def parse_oi_history(payload: Any) -> list[OISample]:
    """`sumOpenInterest` is base coins, `sumOpenInterestValue` USDT; `timestamp` str or int."""
    out = []
    for row in payload:
        base, usd = decimal(row["sumOpenInterest"]), decimal(row["sumOpenInterestValue"])
        out.append(OISample(VENUE, row["symbol"], ms(row["timestamp"]), base, oi_usd=usd))
    return out


@reads(VENUE)
def parse_klines(payload: Any, symbol: str, interval_ms: int) -> list[Candle]:
    """Rows [open time, o, h, l, c, volume (coin), close time, quote volume (USDT), trades,
    taker buy base, taker buy quote, ignore]; the newest may still be forming."""
    out = []
    for row in payload:
        o, h, lo, c, vol, quote, taker = (decimal(row[i]) for i in (1, 2, 3, 4, 5, 7, 9))
        ts = ms(row[0])
        out.append(
            Candle(VENUE, symbol, interval_ms, ts, o, h, lo, c, vol, quote, taker, int(row[8]))
        )
    return out


@reads(VENUE)
def parse_premium_index(payload: Any, intervals_h: Mapping[str, float]) -> list[MarketSnapshot]:
    """Mark price and `lastFundingRate` (the running interval's predicted rate, a fraction);
    delivery contracts send "" for the funding fields: absent, not zero."""
    rows = payload if isinstance(payload, list) else [payload]
    return [
        MarketSnapshot(
            VENUE,
            row["symbol"],
            ms(row["time"]),
            mark_price=opt_decimal(row.get("markPrice")),
            funding_rate=opt_decimal(row.get("lastFundingRate")),
            funding_interval_h=intervals_h.get(row["symbol"], DEFAULT_FUNDING_H),
            next_funding_ms=ms(row["nextFundingTime"]) or None,
        )
        for row in rows
    ]


@reads(VENUE)
def parse_ticker_24hr(payload: Any) -> dict[str, tuple[float, float]]:
    """symbol -> (last price, 24 h quote volume in USDT), for ranking by activity."""
    rows = payload if isinstance(payload, list) else [payload]
    return {r["symbol"]: (decimal(r["lastPrice"]), decimal(r["quoteVolume"])) for r in rows}


@reads(VENUE)
def parse_funding_rate(payload: Any, intervals_h: Mapping[str, float]) -> list[FundingSample]:
    """Settled rates per interval (fractions); the interval is the symbol's current one."""
    out = []
    for row in payload:
        sym, rate = row["symbol"], decimal(row["fundingRate"])
        hours = intervals_h.get(sym, DEFAULT_FUNDING_H)
        out.append(FundingSample(VENUE, sym, ms(row["fundingTime"]), rate, hours))
    return out


@reads(VENUE)
def parse_premium_klines(payload: Any, symbol: str, interval_ms: int) -> list[PremiumBar]:
    """Rows [open time, open, high, low, close, "0", close time, ...]: the premium index."""
    out = []
    for row in payload:
        o, h, lo, c = (decimal(row[i]) for i in (1, 2, 3, 4))
        out.append(PremiumBar(VENUE, symbol, interval_ms, ms(row[0]), o, h, lo, c))
    return out


@reads(VENUE)
def parse_ratios(payload: Any, symbol: str, path: str) -> list[Positioning]:
    """One ratio endpoint's rows as samples carrying only that endpoint's ratio."""
    field = RATIO_PATHS[path]
    key = RATIO_VALUE.get(path, "longShortRatio")
    return [
        Positioning(VENUE, symbol, ms(row["timestamp"]), **{field: decimal(row[key])})
        for row in payload
    ]


def merge_positioning(parts: Iterable[Iterable[Positioning]]) -> list[Positioning]:
    """Samples of the same time merged into one (each ratio from whichever part has it),
    oldest first: the four endpoints give one sample each per period."""
    merged: dict[tuple[str, int], dict[str, float]] = {}
    for part in parts:
        for sample in part:
            slot = merged.setdefault((sample.symbol, sample.ts_ms), {})
            for name in RATIO_PATHS.values():
                value = getattr(sample, name)
                if value is not None:
                    slot[name] = value
    return [
        Positioning(
            VENUE,
            symbol,
            ts,
            slot.get("top_account_ratio"),
            slot.get("top_position_ratio"),
            slot.get("account_ratio"),
            slot.get("taker_buy_sell_ratio"),
        )
        for (symbol, ts), slot in sorted(merged.items(), key=lambda kv: kv[0][1])
    ]


# -- market streams ------------------------------------------------------------------------


@reads(VENUE)
def parse_force_order(data: Mapping[str, Any]) -> list[Liquidation]:
    """A `forceOrder` event -> the liquidation, by the side of the liquidated *position*:
    `S` is the forced order's side, and a BUY closes a short, so the position was SHORT."""
    o = data["o"]
    side = Side.SHORT if str(o["S"]).upper() == "BUY" else Side.LONG
    qty = opt_decimal(o.get("z")) or decimal(o["q"])  # filled so far; the order qty if none
    price = opt_decimal(o.get("ap")) or decimal(o["p"])  # average fill price; the limit if none
    ts = int(o.get("T") or data["E"])
    return [Liquidation(VENUE, str(o["s"]), ts, side, qty, price, qty * price)]


@reads(VENUE)
def parse_mark_price(data: Mapping[str, Any]) -> list[MarketSnapshot]:
    """A `markPriceUpdate` -> mark price, funding rate `r` and next funding time `T`.

    Dated delivery contracts (`BTCUSDT_250627`, no funding) are not perpetuals: skipped."""
    symbol = str(data["s"])
    if "_" in symbol:
        return []
    next_ms = int(data.get("T") or 0) or None
    return [
        MarketSnapshot(
            VENUE,
            symbol,
            int(data["E"]),
            mark_price=opt_decimal(data.get("p")),
            funding_rate=opt_decimal(data.get("r")),
            next_funding_ms=next_ms,
        )
    ]


@reads(VENUE)
def parse_kline(data: Mapping[str, Any]) -> list[Candle]:
    """A `kline` event -> its bar once closed (`k.x` true), as `parse_klines` reads the REST
    row: `v` coin, `q` quote, `V` taker-buy coin, `n` trades; a running update -> []."""
    k = data["k"]
    if k["x"] is not True:
        return []
    o, h, lo, c, vol, quote, taker = (decimal(k[f]) for f in ("o", "h", "l", "c", "v", "q", "V"))
    step = interval_of(str(k["i"]))
    symbol = str(data["s"])
    return [Candle(VENUE, symbol, step, int(k["t"]), o, h, lo, c, vol, quote, taker, int(k["n"]))]


EVENTS: dict[str, Callable[[Mapping[str, Any]], Iterable[StreamRecord]]] = {
    "forceOrder": parse_force_order,  # by the event type `e`
    "markPriceUpdate": parse_mark_price,
    "kline": parse_kline,
}


def _items(msg: Any) -> list[Any]:
    """The events of a market-stream message, combined-wrapped (`{stream, data}`) or raw."""
    data = msg.get("data", msg) if isinstance(msg, dict) and "stream" in msg else msg
    return data if isinstance(data, list) else [data]


def parse_message(msg: Any) -> list[StreamRecord]:
    """Any market-stream message (combined-wrapped or raw) -> records; others -> []."""
    out: list[StreamRecord] = []
    for item in _items(msg):
        if isinstance(item, dict):
            out.extend(routed(EVENTS, item.get("e"), item))
    return out


def message_ms(msg: Any) -> int | None:
    """The newest venue time (`E`) in a message, if it carries one."""
    stamps = [i["E"] for i in _items(msg) if isinstance(i, dict) and isinstance(i.get("E"), int)]
    return max(stamps) if stamps else None


def snapshot_row(
    oi: OISample,
    marks: Mapping[str, MarketSnapshot],
    listed: Mapping[str, Instrument],
    activity: Mapping[str, tuple[float | None, float | None]],
) -> MarketSnapshot:
    """One symbol's snapshot: its OI (and the venue's time with it) on its mark and funding."""
    base = marks.get(oi.symbol) or MarketSnapshot(VENUE, oi.symbol, oi.ts_ms)
    mark = base.mark_price
    last, quote_volume = activity.get(oi.symbol, (None, None))
    return dataclasses.replace(
        base,
        ts_ms=oi.ts_ms,
        oi_base=oi.oi_base,
        oi_usd=oi.oi_base * mark if mark is not None else None,
        funding_interval_h=listed[oi.symbol].funding_interval_h,
        last_price=last,
        quote_volume_24h=quote_volume,
    )
