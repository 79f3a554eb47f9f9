"""Hyperliquid perps on the wire (exchange-apis.md §9.1, §11): request weights, interval
tables, and pure parsers of `/info` replies and stream pushes into records.

Symbols: markets are coins (`BTC`). Settlement is USDC; the canonical name denotes the base
only, so `BTC` is `BTCUSDT` beside the USDT venues (USDC is taken as USD, as USDT is).
`k`-prefixed coins (`kPEPE`) trade 1,000 units and map to `1000PEPEUSDT`, the name Binance
and Bybit give the same 1,000-unit contract — checked against several independent public
mappings (code corpus, exact search: kPEPE/kBONK/kSHIB/kFLOKI -> 1000X); prices and sizes are
already per 1,000 units, so no conversion. Builder dexes (`dex:COIN`) and delisted coins are
left out.

Units: sizes and `openInterest` are **base coin, one side**; USD = OI x `markPx`. `funding`
is the rate of the running **hour** (HL settles hourly); history rows from 2023 are 8 h
apart with 8 h-sized rates, so each settlement's interval is its spacing, never assumed.
Asset contexts carry no timestamp (candles, funding rows and trades do): REST snapshots are
stamped by the venue's clock from the HTTP `Date` header (`http.ServerClock`), stream ones by
that clock kept on the times of one liquid coin's trades.

Weights (doc "Rate limits", verified: coincise dump of the GitBook page): 1,200 per minute
per IP; `metaAndAssetCtxs`/`meta`/`candleSnapshot`/`fundingHistory` 20, plus 1 per 60
candles / per 20 funding rows returned. No rate-limit headers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from oiradar.records import Candle, Instrument, MarketSnapshot
from oiradar.units import DAY_MS, HOUR_MS, MINUTE_MS
from oiradar.venues.base import decimal, opt_decimal, reads

VENUE = "hyperliquid"
INFO = "/info"
BASE_WEIGHT = 20
CANDLES_PER_WEIGHT, FUNDING_PER_WEIGHT = 60, 20
CANDLE_DEPTH = 5000  # "Only the most recent 5000 candles are available"
FUNDING_PAGE = 500  # rows per fundingHistory reply (GoldRush doc; df-hyperliquid-core)
INTERVALS = {
    MINUTE_MS: "1m", 3 * MINUTE_MS: "3m", 5 * MINUTE_MS: "5m", 15 * MINUTE_MS: "15m",
    30 * MINUTE_MS: "30m", HOUR_MS: "1h", 2 * HOUR_MS: "2h", 4 * HOUR_MS: "4h",
    8 * HOUR_MS: "8h", 12 * HOUR_MS: "12h", DAY_MS: "1d", 3 * DAY_MS: "3d", 7 * DAY_MS: "1w",
}  # fmt: skip


def weight(extra_rows: int, per_weight: int) -> int:
    """A request's weight: 20 plus one per `per_weight` rows it may return (rounded up, so
    the charge is never below what the venue counts)."""
    return BASE_WEIGHT + -(-max(0, extra_rows) // per_weight)


def canonical(coin: str) -> str:
    """`BTC` -> `BTCUSDT`; `kPEPE` (1,000 PEPE) -> `1000PEPEUSDT`."""
    if len(coin) > 1 and coin[0] == "k" and coin[1:].isupper():
        return f"1000{coin[1:]}USDT"
    return f"{coin}USDT"


@dataclass(frozen=True, slots=True)
class Market:
    """A listed perp and its index in `universe` (contexts are index-aligned with it)."""

    instrument: Instrument
    index: int


@reads(VENUE)
def parse_universe(meta: Mapping[str, Any]) -> list[Market]:
    """`meta.universe` rows kept: main-dex perps that are not delisted; contract = 1 coin."""
    out = []
    for i, row in enumerate(meta["universe"]):
        coin = str(row["name"])
        if row.get("isDelisted") or ":" in coin:
            continue
        symbol = canonical(coin)
        inst = Instrument(VENUE, symbol, coin, symbol.removesuffix("USDT"), "USDC", 1.0,
                          funding_interval_h=1.0)  # fmt: skip
        out.append(Market(inst, i))
    return out


def next_hour(ts_ms: int) -> int:
    """The next hourly settlement after `ts_ms`."""
    return (ts_ms // HOUR_MS + 1) * HOUR_MS


@reads(VENUE)
def parse_ctx(ctx: Mapping[str, Any], symbol: str, ts_ms: int) -> MarketSnapshot:
    """One asset context: OI (coin, one side) x mark = USD; `midPx` (absent without a book)
    stands for the last price, which the context does not carry; the funding rate is hourly."""
    oi, mark = decimal(ctx["openInterest"]), opt_decimal(ctx.get("markPx"))
    return MarketSnapshot(
        VENUE, symbol, ts_ms, last_price=opt_decimal(ctx.get("midPx")) or mark,
        mark_price=mark, oi_base=oi, oi_usd=oi * mark if mark is not None else None,
        funding_rate=opt_decimal(ctx.get("funding")), funding_interval_h=1.0,
        next_funding_ms=next_hour(ts_ms), quote_volume_24h=opt_decimal(ctx.get("dayNtlVlm")),
    )  # fmt: skip


@reads(VENUE)
def parse_meta_and_ctxs(payload: Any, ts_ms: int) -> list[tuple[Market, MarketSnapshot]]:
    """`[meta, ctxs]`: each kept market with its snapshot at the venue's time `ts_ms`."""
    meta, ctxs = payload
    return [(m, parse_ctx(ctxs[m.index], m.instrument.symbol, ts_ms))
            for m in parse_universe(meta)]  # fmt: skip


@reads(VENUE)
def parse_candles(rows: Any, symbol: str, interval_ms: int) -> list[Candle]:
    """`{t, T, s, i, o, c, h, l, v (coin), n}` rows -> bars (no quote volume on HL)."""
    if not isinstance(rows, list):
        raise TypeError(f"expected a list, got {str(rows)[:200]}")
    out = []
    for r in rows:
        o, h, lo, c, v = (decimal(r[k]) for k in ("o", "h", "l", "c", "v"))
        out.append(Candle(VENUE, symbol, interval_ms, int(r["t"]), o, h, lo, c, v,
                          trades=int(r["n"])))  # fmt: skip
    return out


@reads(VENUE)
def parse_funding(rows: Any) -> dict[int, float]:
    """`{coin, fundingRate, premium, time}` rows -> settlement ms -> rate for its interval."""
    if not isinstance(rows, list):
        raise TypeError(f"expected a list, got {str(rows)[:200]}")
    return {int(r["time"]): decimal(r["fundingRate"]) for r in rows}


# -- public stream -------------------------------------------------------------------------


def subscribe_message(coin: str, kind: str = "activeAssetCtx") -> str:
    return f'{{"method":"subscribe","subscription":{{"type":"{kind}","coin":"{coin}"}}}}'


def candle_subscribe_message(coin: str, interval: str) -> str:
    return (
        '{"method":"subscribe","subscription":'
        f'{{"type":"candle","coin":"{coin}","interval":"{interval}"}}}}'
    )


@reads(VENUE)
def parse_candle_push(
    msg: Mapping[str, Any], symbols: Mapping[str, str], interval_ms: int
) -> Candle | None:
    """A `candle` push `{"channel", "data": {t, T, s, i, o, c, h, l, v, n}}`: the bar's row
    so far, as `parse_candles` reads it (None: a coin not listed)."""
    data = msg["data"]
    symbol = symbols.get(str(data["s"]))
    return None if symbol is None else parse_candles([data], symbol, interval_ms)[0]


@reads(VENUE)
def trade_times(msg: Mapping[str, Any]) -> list[int]:
    """The `time` (ms) of each row of a `trades` push: the venue's clock between replies."""
    return [int(row["time"]) for row in msg["data"]]


@reads(VENUE)
def parse_active_ctx(
    msg: Mapping[str, Any], symbols: Mapping[str, str], ts_ms: int
) -> list[MarketSnapshot]:
    """An `activeAssetCtx` push `{"channel", "data": {"coin", "ctx"}}`; coins not listed
    (builder dexes, new since start) are skipped."""
    data = msg["data"]
    symbol = symbols.get(str(data["coin"]))
    return [] if symbol is None else [parse_ctx(data["ctx"], symbol, ts_ms)]


def coins_of(markets: Sequence[Market]) -> dict[str, str]:
    """coin -> canonical symbol."""
    return {m.instrument.venue_symbol: m.instrument.symbol for m in markets}
