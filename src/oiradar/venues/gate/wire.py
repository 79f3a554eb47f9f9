"""Gate USDT perpetuals (APIv4, settle `usdt`) on the wire, exchange-apis.md §10: interval
tables, error labels, and pure parsers of REST and public-stream payloads into records.

Units: every size is **contracts**; base = contracts x `quanto_multiplier` (BTC_USDT 0.0001
BTC), read once from `/contracts`. OI is `tickers.total_size` / `contract_stats.open_interest`
(one side: `open_interest_usd` = OI x quanto x mark holds exactly in the recorded reply).
REST times are Unix **seconds**; stream rows carry ms. `BTC_USDT` is `BTCUSDT` outside.

Assumptions, each with its source (verified with the search tools, 2026-12):
- Liquidation feed `futures.public_liquidates` (`!all`) is **complete**: Gate's futures WS
  changelog of 2026-08-20 (zh_CN page, in a public changelog-diff archive found by exact
  search of the code corpus) says a contract's liquidations within one aggregation period
  (1 s) are now pushed together as an array "no longer dropping the other orders", early once
  20 are buffered; the same diff renames the row's time to `time` in **ms** (`time_ms`
  before) and shows `price` as a string. Rows are read either way.
- A stream row's `size` is the liquidation **order's** quantity (the doc's "强平订单数量"),
  so `size < 0` (a sell) closed a LONG; REST `liq_orders.size` is the position instead
  (§10.3). Unverified live: pin with a recording.
- `contract_stats` (doc v4.105: `contract` required, `from` s, `interval`, `limit`): rows
  ascending (every recorded reply); the SDK's example pages with `from` + `limit` (default
  30); 100 per page stays within the SDK's client check. A row at `time` is the OI snapshot
  then, and its liquidation totals and taker ratio cover the period ending at `time`
  (unverified: the doc does not say which period).
- Error bodies are `{"label", "message"}`; parse the label (doc "Error handling").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from oiradar.errors import UnknownSymbol, VenueError, VenueUnavailable
from oiradar.records import (
    Candle,
    Instrument,
    Liquidation,
    LiquidationBar,
    MarketSnapshot,
    OISample,
    Positioning,
    Side,
)
from oiradar.units import DAY_MS, HOUR_MS, MINUTE_MS
from oiradar.venues.base import ErrorOf, code_error, decimal, opt_decimal, rate_limited, reads

VENUE = "gate"
SETTLE = "usdt"
FUTURES = f"/api/v4/futures/{SETTLE}/"
# candlesticks intervals (doc enum; 10s is finer than any bar oiradar reads)
CANDLE_INTERVALS = {
    MINUTE_MS: "1m", 5 * MINUTE_MS: "5m", 15 * MINUTE_MS: "15m", 30 * MINUTE_MS: "30m",
    HOUR_MS: "1h", 4 * HOUR_MS: "4h", 8 * HOUR_MS: "8h", DAY_MS: "1d", 7 * DAY_MS: "7d",
}  # fmt: skip
# contract_stats intervals: the REST doc lists none; ccxt documents these (§10.2)
STATS_INTERVALS = {
    5 * MINUTE_MS: "5m", 15 * MINUTE_MS: "15m", 30 * MINUTE_MS: "30m", HOUR_MS: "1h",
    4 * HOUR_MS: "4h", DAY_MS: "1d",
}  # fmt: skip
LABEL_ERRORS: dict[str, ErrorOf] = {
    "TOO_MANY_REQUESTS": rate_limited(1.0),
    "CONTRACT_NOT_FOUND": UnknownSymbol,
    "SERVER_ERROR": VenueUnavailable,
    "TOO_BUSY": VenueUnavailable,
    "INTERNAL": VenueUnavailable,
}


def check_payload(payload: Any) -> VenueError | None:
    """A `{"label", "message"}` body is an error, by its label; lists and rows are data."""
    if isinstance(payload, dict) and "label" in payload:
        label, message = str(payload["label"]), str(payload.get("message") or "")
        return code_error(VENUE, LABEL_ERRORS, label, f"{label} {message}".strip())
    return None


def canonical(contract: str) -> str:
    """`BTC_USDT` -> `BTCUSDT` (names may start with digits: `0G_USDT` -> `0GUSDT`)."""
    return contract.replace("_", "")


@dataclass(frozen=True, slots=True)
class Listing:
    """A live USDT perpetual and its next funding settlement (ms), as `/contracts` says."""

    instrument: Instrument
    next_funding_ms: int | None


def _rows(rows: Any) -> list[Any]:
    if not isinstance(rows, list):
        raise TypeError(f"expected a list, got {str(rows)[:200]}")
    return rows


def _live(row: Mapping[str, Any]) -> bool:
    """Trading crypto USDT perpetuals: not delisting, not pre-market, `contract_type` "" (the
    others are stocks, indices, metals... — one third-party source, unverified)."""
    return (
        row.get("status", "trading") == "trading"
        and not row.get("in_delisting")
        and not row.get("is_pre_market")
        and not row.get("contract_type")
        and str(row["name"]).endswith("_USDT")
    )


@reads(VENUE)
def parse_contracts(rows: Any) -> list[Listing]:
    """Live contracts; `contract_size` = quanto_multiplier, funding interval from seconds."""
    out = []
    for r in _rows(rows):
        if not _live(r):
            continue
        name = str(r["name"])
        seconds, nxt = opt_decimal(r.get("funding_interval")), r.get("funding_next_apply")
        inst = Instrument(
            VENUE, canonical(name), name, name.removesuffix("_USDT"), "USDT",
            decimal(r["quanto_multiplier"]),
            funding_interval_h=seconds / 3600 if seconds else None,
        )  # fmt: skip
        out.append(Listing(inst, int(decimal(nxt)) * 1000 if nxt not in (None, "") else None))
    return out


def next_settlement(listed_ms: int | None, interval_h: float | None, now_ms: int) -> int | None:
    """The first settlement after `now`, stepping the listed one by whole intervals (the
    cached `/contracts` row ages; tickers carry no settlement time)."""
    if listed_ms is None or not interval_h:
        return None
    step = int(interval_h * HOUR_MS)
    return listed_ms + max(0, -(-(now_ms - listed_ms + 1) // step)) * step


@reads(VENUE)
def parse_tickers(
    rows: Any, listings: Mapping[str, Listing], ts_ms: int
) -> dict[str, MarketSnapshot]:
    """contract -> snapshot, for listed contracts: OI `total_size` (contracts) x quanto, last,
    mark, the running funding rate, 24 h quote volume; `ts_ms` is the venue's time."""
    out = {}
    for r in _rows(rows):
        listing = listings.get(str(r["contract"]))
        if listing is None:
            continue
        inst = listing.instrument
        contracts, mark = opt_decimal(r.get("total_size")), opt_decimal(r.get("mark_price"))
        oi = contracts * inst.contract_size if contracts is not None else None
        hours = inst.funding_interval_h
        out[inst.venue_symbol] = MarketSnapshot(
            VENUE, inst.symbol, ts_ms, last_price=opt_decimal(r.get("last")), mark_price=mark,
            oi_base=oi, oi_usd=oi * mark if oi is not None and mark is not None else None,
            funding_rate=opt_decimal(r.get("funding_rate")), funding_interval_h=hours,
            next_funding_ms=next_settlement(listing.next_funding_ms, hours, ts_ms),
            quote_volume_24h=opt_decimal(r.get("volume_24h_quote")),
        )  # fmt: skip
    return out


@reads(VENUE)
def parse_candles(rows: Any, symbol: str, interval_ms: int, quanto: float) -> list[Candle]:
    """`{t (s), v (contracts), c, h, l, o, sum (USDT)}` rows, any order -> bars as sent."""
    out = []
    for r in _rows(rows):
        o, h, lo, c = (decimal(r[k]) for k in ("o", "h", "l", "c"))
        volume = decimal(r.get("v") or 0) * quanto
        bar = (int(decimal(r["t"])) * 1000, o, h, lo, c, volume, opt_decimal(r.get("sum")))
        out.append(Candle(VENUE, symbol, interval_ms, *bar))
    return out


@reads(VENUE)
def parse_candle_push(
    msg: Mapping[str, Any], listings: Mapping[str, Listing], interval_ms: int
) -> list[Candle]:
    """A `futures.candlesticks` push -> its closed bars. Rows `{t (s), v (contracts), c, h,
    l, o, n: "<interval>_<contract>", a}` carry no closed flag: a row is final when pushed
    (`time_ms`) at or after its bar's close; a bar cannot change after it. Contracts not
    listed are skipped; volume as REST reads it (contracts x multiplier), no quote volume."""
    pushed = envelope_ms(msg)
    out = []
    for r in _rows(msg["result"]):
        listing = listings.get(str(r["n"]).partition("_")[2])
        if listing is None or pushed is None or int(decimal(r["t"])) * 1000 + interval_ms > pushed:
            continue
        inst = listing.instrument
        out += parse_candles([r], inst.symbol, interval_ms, inst.contract_size)
    return out


@reads(VENUE)
def parse_funding(rows: Any) -> dict[int, float]:
    """`{t (s), r}` rows (order undocumented) -> settlement ms -> rate."""
    return {int(decimal(r["t"])) * 1000: decimal(r["r"]) for r in _rows(rows)}


@dataclass(frozen=True, slots=True)
class Stat:
    """One `contract_stats` row: OI at `time`, positioning, and the period's liquidations."""

    oi: OISample
    positioning: Positioning
    liquidations: LiquidationBar


@reads(VENUE)
def parse_stats(rows: Any, symbol: str, period_ms: int, quanto: float) -> list[Stat]:
    """Rows in any order; numbers arrive as JSON numbers or (older replies) strings."""
    out = []
    for r in _rows(rows):
        ts, contracts = int(decimal(r["time"])) * 1000, decimal(r["open_interest"])
        oi = OISample(VENUE, symbol, ts, contracts * quanto, contracts,
                      opt_decimal(r.get("open_interest_usd")))  # fmt: skip
        pos = Positioning(
            VENUE, symbol, ts, top_account_ratio=opt_decimal(r.get("top_lsr_account")),
            top_position_ratio=opt_decimal(r.get("top_lsr_size")),
            account_ratio=opt_decimal(r.get("lsr_account")),
            taker_buy_sell_ratio=opt_decimal(r.get("lsr_taker")),
        )  # fmt: skip
        long_c, short_c = decimal(r["long_liq_size"]), decimal(r["short_liq_size"])
        liq = LiquidationBar(
            VENUE, symbol, period_ms, ts - period_ms, long_c * quanto, short_c * quanto,
            opt_decimal(r.get("long_liq_usd")), opt_decimal(r.get("short_liq_usd")),
        )  # fmt: skip
        out.append(Stat(oi, pos, liq))
    return out


# -- public stream -------------------------------------------------------------------------


def envelope_ms(msg: Any) -> int | None:
    """A push's venue time: `time_ms`, else `time` (s)."""
    if not isinstance(msg, dict):
        return None
    if isinstance(msg.get("time_ms"), int):
        return int(msg["time_ms"])
    return int(msg["time"]) * 1000 if isinstance(msg.get("time"), int) else None


def _row_ms(row: Mapping[str, Any]) -> int:
    """A liquidation row's time: `time_ms`, else `time` (ms since 2026-08-20, s before)."""
    if row.get("time_ms") is not None:
        return int(decimal(row["time_ms"]))
    stamp = int(decimal(row["time"]))
    return stamp if stamp > 10**11 else stamp * 1000


@reads(VENUE)
def parse_liquidations(rows: Sequence[Any], quanto: Mapping[str, float]) -> list[Liquidation]:
    """`futures.public_liquidates` rows: `size` is the forced ORDER (contracts, signed), so a
    sell (`size < 0`) closed a LONG; `price` is the order price; unknown contracts skipped."""
    out = []
    for r in rows:
        contract = str(r["contract"])
        size = decimal(r["size"])
        if contract not in quanto or size == 0:
            continue
        qty, price = abs(size) * quanto[contract], decimal(r["price"])
        side = Side.LONG if size < 0 else Side.SHORT
        out.append(Liquidation(VENUE, canonical(contract), _row_ms(r), side, qty, price,
                               qty * price))  # fmt: skip
    return out


def stream_tickers(
    msg: Mapping[str, Any], listings: Mapping[str, Listing]
) -> Iterable[MarketSnapshot]:
    """A `futures.tickers` push: the REST tickers fields per contract, at the push's time."""
    ts = envelope_ms(msg)
    if ts is None:
        raise ValueError("a tickers push without time")
    return parse_tickers(msg["result"], listings, ts).values()
