"""dYdX v4 indexer on the wire (exchange-apis.md §13): resolution tables, error bodies, and
pure parsers of REST replies and stream pushes into records.

Symbols: markets are `BTC-USD`, collateral USDC; the canonical name denotes the base only,
so `BTC-USD` is `BTCUSDT` beside the USDT venues (USDC taken as USD). Units: no contract
multiplier — every size and `openInterest` is **base units, one side** (candles' OI is the
long-side sum). Times are ISO-8601 UTC strings; numbers are strings.

Verified with the search tools against dydxprotocol/v4-chain (comlink controllers, config,
rate-limiters; postgres fill types; websocket-documentation.md):
- a trade of `type` "LIQUIDATED" (older pushes: `liquidation: true`) is "the taker side of
  the fill where the subaccount was liquidated", so `side` is the liquidated account's
  closing order: SELL closed a LONG. Every liquidation match is a fill: the feed is
  **complete**. (Never checked against a live cascade.)
- candles: `fromISO` inclusive, `toISO` exclusive, newest first; `startingOpenInterest` is
  the OI when the candle opened.
- page size: `API_LIMIT_V4` is 100 in some indexer versions and 1,000 in others; a larger
  `limit` is refused with "... not greater than max: N", which the client adopts.
- `nextFundingRate` and history `rate` are 1-hour rates (funding ticks hourly; the doc's
  formula is per hour — unverified beyond the docs); markets carry no time, so snapshots
  take the venue's clock from the HTTP `Date` header.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from oiradar.errors import UnknownSymbol, VenueError, VenueProtocolError
from oiradar.records import Candle, Instrument, Liquidation, MarketSnapshot, OISample, Side
from oiradar.units import DAY_MS, HOUR_MS, MINUTE_MS
from oiradar.venues.base import decimal, opt_decimal, reads

VENUE = "dydx"
V4 = "/v4"
MARKETS = f"{V4}/perpetualMarkets"
RESOLUTIONS = {
    MINUTE_MS: "1MIN", 5 * MINUTE_MS: "5MINS", 15 * MINUTE_MS: "15MINS",
    30 * MINUTE_MS: "30MINS", HOUR_MS: "1HOUR", 4 * HOUR_MS: "4HOURS", DAY_MS: "1DAY",
}  # fmt: skip
_MAX_LIMIT = re.compile(r"not greater than max: (\d+)")
_UNKNOWN = ("must be a valid ticker", "not found")


class PageTooLarge(VenueProtocolError):
    """The indexer refused our page size; `limit` is its maximum (API_LIMIT_V4)."""

    def __init__(self, limit: int) -> None:
        super().__init__(VENUE, f"page size above the indexer's maximum {limit}")
        self.limit = limit


def check_payload(payload: Any) -> VenueError | None:
    """`{"errors": [{"msg": ...}]}` (HTTP 400/404) -> the error the caller acts on."""
    if not isinstance(payload, dict) or "errors" not in payload:
        return None
    messages = [str(e.get("msg", e)) for e in payload["errors"] if isinstance(e, dict)]
    text = "; ".join(messages) or str(payload["errors"])[:200]
    for message in messages:
        if found := _MAX_LIMIT.search(message):
            return PageTooLarge(int(found.group(1)))
    if any(marker in text for marker in _UNKNOWN):
        return UnknownSymbol(VENUE, text)
    return VenueProtocolError(VENUE, text)


def iso_ms(text: str) -> int:
    """`2025-07-29T05:46:00.000Z` -> ms UTC."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"no time zone in {text!r}")
    return round(when.timestamp() * 1000)


def ms_iso(ts_ms: int) -> str:
    """ms UTC -> `2025-07-29T05:46:00.000Z`, the indexer's own form."""
    when = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


def canonical(ticker: str) -> str:
    """`BTC-USD` -> `BTCUSDT`."""
    return ticker.removesuffix("-USD").replace("-", "") + "USDT"


@reads(VENUE)
def parse_markets(payload: Any) -> list[Instrument]:
    """`{"markets": {ticker: row}}` -> ACTIVE perps; a contract is one base unit."""
    out = []
    for ticker, row in payload["markets"].items():
        if row.get("status") != "ACTIVE" or not str(ticker).endswith("-USD"):
            continue
        symbol = canonical(str(ticker))
        out.append(Instrument(VENUE, symbol, str(ticker), symbol.removesuffix("USDT"), "USDC",
                              1.0, funding_interval_h=1.0))  # fmt: skip
    return out


def next_hour(ts_ms: int) -> int:
    return (ts_ms // HOUR_MS + 1) * HOUR_MS


@reads(VENUE)
def parse_market(row: Mapping[str, Any], ts_ms: int) -> MarketSnapshot:
    """One market row (REST, or the stream's merged fields): OI base, oracle price as the
    mark, the running hour's funding estimate; no last trade price is carried."""
    oi, mark = decimal(row["openInterest"]), opt_decimal(row.get("oraclePrice"))
    return MarketSnapshot(
        VENUE, canonical(str(row["ticker"])), ts_ms, mark_price=mark, oi_base=oi,
        oi_usd=oi * mark if mark is not None else None,
        funding_rate=opt_decimal(row.get("nextFundingRate")), funding_interval_h=1.0,
        next_funding_ms=next_hour(ts_ms), quote_volume_24h=opt_decimal(row.get("volume24H")),
    )  # fmt: skip


@reads(VENUE)
def parse_candles(payload: Any, symbol: str, interval_ms: int) -> list[tuple[Candle, OISample]]:
    """`{"candles": [...]}` rows, newest first -> (bar, OI at its open) as sent."""
    out = []
    for r in payload["candles"]:
        ts = iso_ms(str(r["startedAt"]))
        o, h, lo, c = (decimal(r[k]) for k in ("open", "high", "low", "close"))
        bar = Candle(VENUE, symbol, interval_ms, ts, o, h, lo, c, decimal(r["baseTokenVolume"]),
                     opt_decimal(r.get("usdVolume")), trades=int(r["trades"]))  # fmt: skip
        out.append((bar, OISample(VENUE, symbol, ts, decimal(r["startingOpenInterest"]))))
    return out


@reads(VENUE)
def parse_funding(payload: Any) -> dict[int, float]:
    """`{"historicalFunding": [{ticker, rate, price, effectiveAt, ...}]}` -> ms -> rate."""
    return {iso_ms(str(r["effectiveAt"])): decimal(r["rate"]) for r in payload["historicalFunding"]}


def is_liquidation(row: Mapping[str, Any]) -> bool:
    return row.get("type") == "LIQUIDATED" or row.get("liquidation") is True


@reads(VENUE)
def parse_liquidations(rows: Any, symbol: str) -> list[tuple[str, Liquidation]]:
    """(trade id, liquidation) for the LIQUIDATED fills of `rows`: the taker is the
    liquidated account, so its SELL closed a LONG; size base, price USD(C). Rows of older
    indexers carry no `id`: their fields stand in for it."""
    out = []
    for r in rows:
        if not is_liquidation(r):
            continue
        side = {"SELL": Side.LONG, "BUY": Side.SHORT}[str(r["side"])]
        qty, price = decimal(r["size"]), decimal(r["price"])
        liq = Liquidation(VENUE, symbol, iso_ms(str(r["createdAt"])), side, qty, price,
                          qty * price)  # fmt: skip
        key = r.get("id") or f"{r['createdAt']}|{r['side']}|{r['size']}|{r['price']}"
        out.append((str(key), liq))
    return out
