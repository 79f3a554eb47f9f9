"""OKX v5 public market data on the wire, USDT-margined linear swaps (instType SWAP),
exchange-apis.md §3: bar tables, envelope codes, and pure parsers of REST and public-stream
payloads into records.

Sizes are **contracts** (coin = contracts x `ctVal`, BTC-USDT-SWAP 0.01 BTC): OI uses `oiCcy`
(coin, OKX's own conversion, checked against oi x ctVal), candles `volCcy` (coin) and
`volCcyQuote` (USDT); contracts leave only as `OISample.oi_contracts`. The venue's
`BTC-USDT-SWAP` is `BTCUSDT` outside (`canonical`).

Premium history (`premium-history`, verified against OKX's doc page "Get premium history":
`instId, after, before, limit` <= 100, 20 requests per 2 s per IP, the past 6 months) is point
samples with no bar size and no documented cadence; bars are built here (`premium_bars`), a
sample belonging to the bar it closes (open < ts <= close), as OI snapshots do.

Stream pushes (`liquidation-orders`, `open-interest`, `funding-rate`, `mark-price`) carry the
REST rows' fields, so the REST parsers read them too. A liquidation's `side` is the *order*
side (buy closes a short => SHORT liquidated); `posSide` counts only when it is
`long`/`short` (hedge mode), never `net`; `sz` is contracts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from oiradar.errors import UnknownSymbol, VenueError, VenueProtocolError, VenueUnavailable
from oiradar.records import (
    Candle,
    Instrument,
    Liquidation,
    MarketSnapshot,
    OISample,
    PremiumBar,
    Side,
)
from oiradar.units import DAY_MS, HOUR_MS, MINUTE_MS
from oiradar.venues.base import (
    ErrorOf,
    code_error,
    decimal,
    opt_decimal,
    rate_limited,
    reads,
    routed,
)
from oiradar.venues.stream import StreamRecord

VENUE = "okx"
log = logging.getLogger(__name__)
WEEK_MS = 7 * DAY_MS

# Bar and OI-period names by length; 6 h and longer take the `utc` variant so bars open on the
# UTC grid like the other venues' (plain `1D` opens at UTC+8 midnight).
BARS = {
    MINUTE_MS: "1m", 3 * MINUTE_MS: "3m", 5 * MINUTE_MS: "5m", 15 * MINUTE_MS: "15m",
    30 * MINUTE_MS: "30m", HOUR_MS: "1H", 2 * HOUR_MS: "2H", 4 * HOUR_MS: "4H",
    6 * HOUR_MS: "6Hutc", 12 * HOUR_MS: "12Hutc", DAY_MS: "1Dutc", WEEK_MS: "1Wutc",
}  # fmt: skip
OI_PERIODS = {ms: name for ms, name in BARS.items() if 5 * MINUTE_MS <= ms <= DAY_MS}
PREMIUM_INTERVALS = BARS  # bars are built from the samples: any bar size

CODE_ERRORS: dict[str, ErrorOf] = {
    "51001": UnknownSymbol,
    "50011": rate_limited(1.0),
    "50013": rate_limited(1.0),
    "50001": VenueUnavailable,
}


def check_envelope(payload: Any) -> VenueError | None:
    """`{"code":"0","msg":"","data":[...]}` is fine; any other code maps to an error class."""
    if not isinstance(payload, dict) or "code" not in payload:
        return VenueProtocolError(VENUE, f"not an OKX envelope: {str(payload)[:200]}")
    code, msg = str(payload["code"]), str(payload.get("msg", ""))
    if code == "0":
        ok = isinstance(payload.get("data"), list)
        return None if ok else VenueProtocolError(VENUE, "envelope without a data list")
    return code_error(VENUE, CODE_ERRORS, code, msg, unknown=f"code {code}: {msg}")


@dataclass(frozen=True, slots=True)
class Listing:
    """A live swap and its listing time (ms): no bar can open a full interval before it."""

    instrument: Instrument
    list_ms: int


def canonical(inst_id: str) -> str:
    """`BTC-USDT-SWAP` -> `BTCUSDT`."""
    return inst_id.removesuffix("-SWAP").replace("-", "")


def first_open(t_ms: int, step_ms: int) -> int:
    """The first bar open at or after `t_ms` on the UTC grid (weeks open on Monday)."""
    offset = 4 * DAY_MS if step_ms == WEEK_MS else 0  # 1970-01-01 was a Thursday
    return -(-(t_ms - offset) // step_ms) * step_ms + offset


# -- REST ----------------------------------------------------------------------------------


@reads(VENUE)
def parse_instruments(data: list[Any]) -> list[Listing]:
    """USDT-margined linear swaps that trade now; `contract_size` = ctVal (coin per contract)."""
    out = []
    for row in data:
        kind = row.get("ctType"), row.get("settleCcy"), row.get("state")
        if kind != ("linear", "USDT", "live"):
            continue
        inst_id = row["instId"]
        base, quote = (row.get("instFamily") or inst_id.removesuffix("-SWAP")).split("-")[:2]
        listed = int(row.get("listTime") or 0)
        inst = Instrument(
            VENUE, canonical(inst_id), inst_id, base, quote, decimal(row["ctVal"]),
            listed_ms=listed or None,
        )  # fmt: skip
        out.append(Listing(inst, listed))
    return out


def _oi_base(inst_id: str, contracts: float, oi_ccy: float | None, ct_val: float | None) -> float:
    """oiCcy (OKX's own coin figure), else contracts x ctVal; a disagreement is logged."""
    if oi_ccy is None:
        if ct_val is None:
            raise VenueProtocolError(VENUE, f"{inst_id}: OI without oiCcy or a known ctVal")
        return contracts * ct_val
    if ct_val is not None and abs(oi_ccy - contracts * ct_val) > 1e-6 * max(oi_ccy, 1.0):
        log.warning("okx oiCcy disagrees inst=%s oi_ccy=%s oi_x_ctval=%s", inst_id, oi_ccy,
                    contracts * ct_val)  # fmt: skip
    return oi_ccy


@reads(VENUE)
def parse_open_interest(data: list[Any], ct_val: Mapping[str, float]) -> dict[str, MarketSnapshot]:
    """instId -> OI part of a snapshot: `oi` contracts, `oiCcy` coin, `oiUsd` USD, `ts` ms."""
    out = {}
    for row in data:
        inst_id = row["instId"]
        oi_ccy = opt_decimal(row.get("oiCcy"))
        base = _oi_base(inst_id, decimal(row["oi"]), oi_ccy, ct_val.get(inst_id))
        out[inst_id] = MarketSnapshot(VENUE, canonical(inst_id), int(row["ts"]), oi_base=base,
                                      oi_usd=opt_decimal(row.get("oiUsd")))  # fmt: skip
    return out


@reads(VENUE)
def parse_oi_history(data: list[Any], symbol: str) -> list[OISample]:
    """Rows `[ts, oi (contracts), oiCcy (coin), oiUsd]`, any order -> samples as sent."""
    return [
        OISample(VENUE, symbol, int(ts), decimal(ccy), decimal(oi), opt_decimal(usd))
        for ts, oi, ccy, usd, *_ in data
    ]


@reads(VENUE)
def parse_candles(data: list[Any], symbol: str, interval_ms: int) -> list[tuple[Candle, bool]]:
    """`[ts,o,h,l,c,vol,volCcy,volCcyQuote,confirm]` -> (bar, closed); `vol` (contracts) is
    dropped for volCcy (coin) and volCcyQuote (USDT); confirm "0" is the forming bar."""
    out = []
    for ts, o, h, low, c, _contracts, coin, quote, confirm, *_ in data:
        price = decimal(o), decimal(h), decimal(low), decimal(c)
        bar = Candle(VENUE, symbol, interval_ms, int(ts), *price, decimal(coin), opt_decimal(quote))
        out.append((bar, confirm != "0"))
    return out


@reads(VENUE)
def parse_funding_rate(data: list[Any]) -> dict[str, MarketSnapshot]:
    """instId -> funding part: the running rate, interval = nextFundingTime - fundingTime (h),
    next settlement = fundingTime."""
    out = {}
    for row in data:
        this, after = int(row["fundingTime"]), row.get("nextFundingTime")
        hours = (int(after) - this) / HOUR_MS if after else None
        out[row["instId"]] = MarketSnapshot(
            VENUE, canonical(row["instId"]), int(row.get("ts") or 0),
            funding_rate=decimal(row["fundingRate"]), funding_interval_h=hours,
            next_funding_ms=this)  # fmt: skip
    return out


@reads(VENUE)
def parse_funding_history(data: list[Any]) -> list[tuple[int, float]]:
    """(settlement ms, rate) pairs; `realizedRate` (what was charged) where OKX sends it."""
    return [
        (int(row["fundingTime"]), decimal(row.get("realizedRate") or row["fundingRate"]))
        for row in data
    ]


@reads(VENUE)
def parse_premium_history(data: list[Any]) -> list[tuple[int, float]]:
    """(sample ms, premium as a fraction) pairs, as sent (newest first)."""
    return [(int(row["ts"]), decimal(row["premium"])) for row in data]


def premium_bars(
    symbol: str, samples: Mapping[int, float], interval_ms: int, start_ms: int, end_ms: int
) -> list[PremiumBar]:
    """OHLC bars of premium samples, oldest first. A sample at `t` is the premium at that
    instant and belongs to the bar whose close it is at or before (open < t <= close), as OI
    snapshots do; bars opening in [start, end] that hold a sample."""
    groups: dict[int, list[float]] = {}
    for t in sorted(samples):
        bar = first_open(t - interval_ms, interval_ms)  # the bar with open < t <= close
        if start_ms <= bar <= end_ms:
            groups.setdefault(bar, []).append(samples[t])
    return [
        PremiumBar(VENUE, symbol, interval_ms, bar, v[0], max(v), min(v), v[-1])
        for bar, v in sorted(groups.items())
    ]


@reads(VENUE)
def parse_tickers(data: list[Any]) -> dict[str, MarketSnapshot]:
    """instId -> last price and 24 h quote volume ~ volCcy24h (coin) x last (no USDT field)."""
    out = {}
    for row in data:
        last = opt_decimal(row.get("last"))  # "" before a first trade
        coin = opt_decimal(row.get("volCcy24h"))
        quote = coin * last if coin is not None and last is not None else None
        ts = int(row.get("ts") or 0)
        out[row["instId"]] = MarketSnapshot(VENUE, canonical(row["instId"]), ts, last_price=last,
                                            quote_volume_24h=quote)  # fmt: skip
    return out


@reads(VENUE)
def parse_mark_price(data: list[Any]) -> dict[str, MarketSnapshot]:
    """instId -> mark price (`markPx`)."""
    out = {}
    for row in data:
        mark, ts = opt_decimal(row.get("markPx")), int(row.get("ts") or 0)
        out[row["instId"]] = MarketSnapshot(VENUE, canonical(row["instId"]), ts, mark_price=mark)
    return out


def merge_snapshot(parts: Sequence[MarketSnapshot]) -> MarketSnapshot:
    """One symbol's parts from the bulk answers; each field from the first part that has it."""
    merged: dict[str, Any] = {
        f.name: next((v for p in parts if (v := getattr(p, f.name)) is not None), None)
        for f in fields(MarketSnapshot)
    }
    return MarketSnapshot(**merged)


# -- public stream -------------------------------------------------------------------------

_POSITION = {"long": Side.LONG, "short": Side.SHORT}
_BY_ORDER = {"buy": Side.SHORT, "sell": Side.LONG}  # the order closes the opposite position


@reads(VENUE)
def parse_liquidations(data: Sequence[Any], ct_val: Mapping[str, float]) -> list[Liquidation]:
    """`liquidation-orders` data -> liquidations; instruments without a known ctVal skipped."""
    out = []
    for row in data:
        inst_id = str(row["instId"])
        ct = ct_val.get(inst_id)
        if ct is None:
            continue  # not a listed USDT swap (coin-margined, new since start): units unknown
        for d in row.get("details") or []:
            side = _POSITION.get(str(d.get("posSide", "")).lower())
            side = side or _BY_ORDER.get(str(d["side"]).lower())
            if side is None:
                continue
            qty, price = decimal(d["sz"]) * ct, decimal(d["bkPx"])
            out.append(
                Liquidation(VENUE, canonical(inst_id), int(d["ts"]), side, qty, price, qty * price)
            )
    return out


# channel -> the records of a push's `data`, given instId -> ctVal
CHANNELS: dict[str, Callable[[Any, Mapping[str, float]], Iterable[StreamRecord]]] = {
    "liquidation-orders": parse_liquidations,
    "open-interest": lambda data, ct_val: parse_open_interest(data, ct_val).values(),
    "funding-rate": lambda data, _: parse_funding_rate(data).values(),
    "mark-price": lambda data, _: parse_mark_price(data).values(),
}


def parse_message(msg: Any, ct_val: Mapping[str, float]) -> list[StreamRecord]:
    """A push `{"arg": {"channel": ...}, "data": [...]}` -> records; acks, errors -> []."""
    if not isinstance(msg, dict) or "data" not in msg or not isinstance(msg.get("arg"), dict):
        return []
    return routed(CHANNELS, msg["arg"].get("channel"), msg["data"], ct_val)


def message_ms(msg: Any) -> int | None:
    """The newest venue time in a push (`ts` of rows or of liquidation details)."""
    if not isinstance(msg, dict) or not isinstance(msg.get("data"), list):
        return None
    stamps = []
    for row in msg["data"]:
        if not isinstance(row, dict):
            continue
        if row.get("ts"):
            stamps.append(int(row["ts"]))
        stamps.extend(int(d["ts"]) for d in row.get("details") or [] if d.get("ts"))
    return max(stamps) if stamps else None
