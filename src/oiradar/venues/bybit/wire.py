"""Bybit v5 linear on the wire (exchange-apis.md §2): interval tables, envelope codes, and
pure parsers of REST and public-stream payloads into records.

Bybit's `openInterest` counts BOTH sides of every position (§2.2), Binance/OKX/Bitget count
one, so OI is halved here: `singleOpenInterest` when the venue sends it, else
`openInterest / 2`; `OI_FIELDS` counts which one was used. Lists arrive newest first and
leave oldest first. The public stream's `tickers.<SYM>` rows carry the REST tickers fields,
so one parser reads both; `allLiquidation` names the liquidated *position's* side.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from oiradar.errors import UnknownSymbol, VenueError, VenueProtocolError, VenueUnavailable
from oiradar.records import (
    Candle,
    FundingSample,
    Instrument,
    Liquidation,
    MarketSnapshot,
    OISample,
    PremiumBar,
    Side,
)
from oiradar.units import DAY_MS, HOUR_MS, MINUTE_MS
from oiradar.venues.base import ErrorOf, code_error, decimal, opt_decimal, rate_limited, reads

VENUE = "bybit"
OI_PERIODS = {
    5 * MINUTE_MS: "5min",
    15 * MINUTE_MS: "15min",
    30 * MINUTE_MS: "30min",
    HOUR_MS: "1h",
    4 * HOUR_MS: "4h",
    DAY_MS: "1d",
}
WEEK_MS, MONTH_MS = 7 * DAY_MS, 30 * DAY_MS  # M bars are calendar months; 30 d names them
KLINE_INTERVALS = {
    **{m * MINUTE_MS: str(m) for m in (1, 3, 5, 15, 30, 60, 120, 240, 360, 720)},
    DAY_MS: "D",
    WEEK_MS: "W",
    MONTH_MS: "M",
}
WEEK_OFFSET_MS = 4 * DAY_MS  # weekly bars open on Mondays; 1970-01-01 was a Thursday
# Premium-index klines (bybit-exchange docs `market/premium-index-kline`): the kline intervals
# and limits, rows [start, open, high, low, close]. The page does not state the order; taken
# as newest first like `kline` (Bybit's own MCP tool description says so).
PREMIUM_KLINE = "/v5/market/premium-index-price-kline"
PREMIUM_INTERVALS = KLINE_INTERVALS
OI_FIELDS: Counter[str] = Counter()  # which OI field each parsed row was read from
CODE_ERRORS: dict[int, ErrorOf] = {  # retCode -> error (10001 "symbol" is UnknownSymbol)
    10006: rate_limited(1.0),
    10018: rate_limited(5.0),
    10429: rate_limited(1.0),
    10016: VenueUnavailable,
}

log = logging.getLogger(__name__)
Json = Mapping[str, Any]


def check_payload(payload: Any) -> VenueError | None:
    """The v5 envelope: errors arrive with HTTP 200 and `retCode != 0`."""
    if not isinstance(payload, dict) or "retCode" not in payload:
        return VenueProtocolError(VENUE, f"not a v5 envelope: {str(payload)[:200]}")
    code, msg = payload["retCode"], str(payload.get("retMsg", ""))
    if code == 0:
        return None
    if code == 10001 and "symbol" in msg.lower():
        return UnknownSymbol(VENUE, msg)
    return code_error(VENUE, CODE_ERRORS, code, f"retCode {code}: {msg}")


def _one_sided(row: Json, both_key: str) -> float | None:
    """ONE side of a Bybit OI figure, whose `openInterest[Value]` counts both sides (§2.2):
    `singleOpenInterest[Value]` as sent, else half the two-sided figure; None if neither."""
    single_key = "single" + both_key[0].upper() + both_key[1:]
    single, both = opt_decimal(row.get(single_key)), opt_decimal(row.get(both_key))
    if single is not None:
        if both and abs(single / both - 0.5) > 0.01:
            OI_FIELDS[f"{single_key}!=half"] += 1
            log.warning("bybit %s=%s is not half of %s=%s", single_key, single, both_key, both)
        source, value = single_key, single
    elif both is not None:
        source, value = f"{both_key}/2", both / 2
    else:
        return None
    OI_FIELDS[source] += 1
    log.debug("bybit oi field=%s", source)
    return value


# -- REST ----------------------------------------------------------------------------------


@reads(VENUE)
def parse_instrument(row: Json) -> Instrument | None:
    """A trading USDT-margined linear perpetual, else None (USDC perps, dated futures)."""
    wanted = ("LinearPerpetual", "USDT", "Trading")
    if (row["contractType"], row["quoteCoin"], row["status"]) != wanted:
        return None
    minutes = row.get("fundingInterval")
    return Instrument(
        venue=VENUE,
        symbol=row["symbol"],
        venue_symbol=row["symbol"],
        base=row["baseCoin"],
        quote=row["quoteCoin"],
        contract_size=1.0,  # linear contracts are quoted in the base coin
        funding_interval_h=int(minutes) / 60 if minutes not in (None, "") else None,
        listed_ms=int(row["launchTime"]) if row.get("launchTime") else None,
    )


@reads(VENUE)
def launch_times(rows: Sequence[Json]) -> dict[str, int]:
    """instruments-info `launchTime` (ms string): OI history reaches back to it."""
    return {row["symbol"]: int(row.get("launchTime") or 0) for row in rows}


def is_usdt_perp(symbol: str) -> bool:
    """By name, for tickers: USDC perps end in PERP, dated futures carry `-<date>`."""
    return symbol.endswith("USDT") and "-" not in symbol


@reads(VENUE)
def parse_ticker(row: Json, ts_ms: int) -> MarketSnapshot:
    """One tickers row (REST, or a stream's merged ticker fields) at the venue's time
    `ts_ms`; OI one-sided, turnover24h in USDT."""
    next_funding = row.get("nextFundingTime")
    return MarketSnapshot(
        venue=VENUE,
        symbol=row["symbol"],
        ts_ms=ts_ms,
        last_price=opt_decimal(row.get("lastPrice")),
        mark_price=opt_decimal(row.get("markPrice")),
        oi_base=_one_sided(row, "openInterest"),
        oi_usd=_one_sided(row, "openInterestValue"),
        funding_rate=opt_decimal(row.get("fundingRate")),
        funding_interval_h=opt_decimal(row.get("fundingIntervalHour")),
        next_funding_ms=int(next_funding) if next_funding not in (None, "", "0") else None,
        quote_volume_24h=opt_decimal(row.get("turnover24h")),
    )


def parse_tickers(result: Json, ts_ms: int) -> list[MarketSnapshot]:
    """Every row of one tickers answer, stamped with the envelope's `time`."""
    return [parse_ticker(row, ts_ms) for row in result["list"]]


@reads(VENUE)
def parse_open_interest(result: Json) -> list[OISample]:
    """OI-history rows (newest first, `timestamp` a string) oldest first, one-sided base."""
    out = []
    for row in reversed(result["list"]):
        oi_base = _one_sided(row, "openInterest")
        if oi_base is None:
            raise KeyError("openInterest")
        out.append(OISample(VENUE, result["symbol"], int(row["timestamp"]), oi_base))
    return out


@reads(VENUE)
def parse_kline(result: Json, interval_ms: int) -> list[Candle]:
    """`[start, open, high, low, close, volume (coin), turnover (USDT)]` rows, oldest first."""
    out = []
    for ts, *prices, volume, turnover in (row[:7] for row in reversed(result["list"])):
        o, h, lo, c = map(decimal, prices)
        bar = (int(ts), o, h, lo, c, decimal(volume), decimal(turnover))
        out.append(Candle(VENUE, result["symbol"], interval_ms, *bar))
    return out


@reads(VENUE)
def parse_premium_kline(result: Json, interval_ms: int) -> list[PremiumBar]:
    """`[start, open, high, low, close]` rows of the premium index (a fraction), oldest first."""
    out = []
    for ts, *prices in (row[:5] for row in reversed(result["list"])):
        o, h, lo, c = map(decimal, prices)
        out.append(PremiumBar(VENUE, result["symbol"], interval_ms, int(ts), o, h, lo, c))
    return out


@reads(VENUE)
def parse_funding(result: Json, interval_h: float) -> list[FundingSample]:
    """Settled rates oldest first; rows don't carry the interval, so the caller supplies it."""
    out = []
    for row in reversed(result["list"]):
        ts, rate = int(row["fundingRateTimestamp"]), decimal(row["fundingRate"])
        out.append(FundingSample(VENUE, row["symbol"], ts, rate, interval_h))
    return out


# -- public stream -------------------------------------------------------------------------


def merge_ticker(
    state: Mapping[str, Any] | None, kind: str, data: Mapping[str, Any]
) -> dict[str, Any]:
    """The symbol's ticker fields after one message: a snapshot replaces, a delta merges
    (absent fields are unchanged)."""
    if kind == "snapshot" or state is None:
        return dict(data)
    return {**state, **data}


@reads(VENUE)
def parse_liquidations(msg: Mapping[str, Any]) -> list[Liquidation]:
    """An `allLiquidation` push (`data` a list): `S` is the liquidated POSITION's side (Buy =
    a LONG was liquidated, the opposite of Binance's order side); `v` coin, `p` bankruptcy."""
    out = []
    for row in msg["data"]:
        side = {"Buy": Side.LONG, "Sell": Side.SHORT}[str(row["S"])]
        qty, price = decimal(row["v"]), decimal(row["p"])
        out.append(Liquidation(VENUE, str(row["s"]), int(row["T"]), side, qty, price, qty * price))
    return out


@reads(VENUE)
def parse_kline_push(msg: Mapping[str, Any]) -> list[Candle]:
    """A `kline.<interval>.<symbol>` push -> its closed bars (`confirm` true; the doc:
    "If confirm=true, this means that the candle has closed"), read like `parse_kline`'s REST
    rows: `volume` coin, `turnover` USDT. Running bars -> []."""
    _, interval, symbol = str(msg["topic"]).split(".")
    step = next(ms for ms, name in KLINE_INTERVALS.items() if name == interval)
    out = []
    for row in msg["data"]:
        if row["confirm"] is not True:
            continue
        o, h, lo, c = (decimal(row[k]) for k in ("open", "high", "low", "close"))
        bar = (int(row["start"]), o, h, lo, c, decimal(row["volume"]), decimal(row["turnover"]))
        out.append(Candle(VENUE, symbol, step, *bar))
    return out
