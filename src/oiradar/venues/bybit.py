"""Bybit v5, category `linear`: USDT perpetuals as oiradar records (exchange-apis.md §2).

Bybit's `openInterest` counts BOTH sides of every position (§2.2), Binance/OKX/Bitget count
one, so OI is halved here: `singleOpenInterest` when the venue sends it, else
`openInterest / 2`; `OI_FIELDS` counts which one was used. Lists arrive newest first and are
returned oldest first. A list that comes back empty where the venue must hold rows (all
tickers, a page the cursor promised, a window between the symbol's `launchTime` and the
venue's own clock in the envelope's `time`) is asked again up to `EMPTY_RETRIES` times
before it is believed: an empty list is what a flaky edge or a half-failed node returns.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from oiradar.errors import (
    Banned,
    RateLimited,
    UnknownSymbol,
    UserError,
    VenueError,
    VenueProtocolError,
    VenueUnavailable,
)
from oiradar.records import (
    Candle,
    FundingSample,
    Instrument,
    MarketSnapshot,
    OISample,
    PremiumBar,
)
from oiradar.units import DAY_MS, HOUR_MS, MINUTE_MS
from oiradar.venues.base import decimal
from oiradar.venues.http import RestClient
from oiradar.venues.limiter import Budget

VENUE = "bybit"
IP_BUDGET = Budget(600, 5.0)  # requests per 5 s per IP, all REST traffic
BUDGETS = {"ip": IP_BUDGET}
CHARGE = [("ip", "", 1)]
BAN_S = 600.0  # HTTP 403: "wait for at least 10 minutes"
RATE_LIMIT_CODES = {10006: 1.0, 10018: 5.0, 10429: 1.0}  # retCode -> seconds to wait
EMPTY_RETRIES = 2
OI_LIMIT, KLINE_LIMIT, FUNDING_LIMIT = 200, 1000, 200
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

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
B = TypeVar("B", Candle, PremiumBar)
Json = Mapping[str, Any]


def check_response(status: int, headers: Mapping[str, str], body: bytes) -> VenueError | None:
    """HTTP 403 is the IP ban (600 req / 5 s breached, or a blocked region): stop 10 min."""
    if status == 403:
        return Banned(VENUE, f"HTTP 403 {body[:60]!r}: IP banned, waiting {BAN_S:.0f} s", BAN_S)
    return None


def check_payload(payload: Any) -> VenueError | None:
    """The v5 envelope: errors arrive with HTTP 200 and `retCode != 0`."""
    if not isinstance(payload, dict) or "retCode" not in payload:
        return VenueProtocolError(VENUE, f"not a v5 envelope: {str(payload)[:200]}")
    code, msg = payload["retCode"], str(payload.get("retMsg", ""))
    if code == 0:
        return None
    if code == 10001 and "symbol" in msg.lower():
        return UnknownSymbol(VENUE, msg)
    if code in RATE_LIMIT_CODES:
        return RateLimited(VENUE, f"retCode {code}: {msg}", RATE_LIMIT_CODES[code])
    if code == 10016:
        return VenueUnavailable(VENUE, f"retCode 10016: {msg}")
    return VenueProtocolError(VENUE, f"retCode {code}: {msg}")


def _protocol(fn: Callable[P, R]) -> Callable[P, R]:
    """A payload that lacks what the docs promise is a VenueProtocolError, never a crash."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise VenueProtocolError(VENUE, f"{fn.__name__}: {type(exc).__name__} {exc}") from exc

    return wrapper


def _opt(row: Json, key: str) -> float | None:
    """A decimal string that the venue may omit or send empty."""
    value = row.get(key)
    return None if value in (None, "") else decimal(value)


def _one_sided(row: Json, both_key: str) -> float | None:
    """ONE side of a Bybit OI figure, whose `openInterest[Value]` counts both sides (§2.2):
    `singleOpenInterest[Value]` as sent, else half the two-sided figure; None if neither."""
    single_key = "single" + both_key[0].upper() + both_key[1:]
    single, both = _opt(row, single_key), _opt(row, both_key)
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


@_protocol
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
    )


@_protocol
def parse_ticker(row: Json, ts_ms: int) -> MarketSnapshot:
    """One tickers row at the venue's time `ts_ms`; OI one-sided, turnover24h in USDT."""
    next_funding = row.get("nextFundingTime")
    return MarketSnapshot(
        venue=VENUE,
        symbol=row["symbol"],
        ts_ms=ts_ms,
        last_price=_opt(row, "lastPrice"),
        mark_price=_opt(row, "markPrice"),
        oi_base=_one_sided(row, "openInterest"),
        oi_usd=_one_sided(row, "openInterestValue"),
        funding_rate=_opt(row, "fundingRate"),
        funding_interval_h=_opt(row, "fundingIntervalHour"),
        next_funding_ms=int(next_funding) if next_funding not in (None, "", "0") else None,
        quote_volume_24h=_opt(row, "turnover24h"),
    )


def parse_tickers(result: Json, ts_ms: int) -> list[MarketSnapshot]:
    """Every row of one tickers answer, stamped with the envelope's `time`."""
    return [parse_ticker(row, ts_ms) for row in result["list"]]


@_protocol
def parse_open_interest(result: Json) -> list[OISample]:
    """OI-history rows (newest first, `timestamp` a string) oldest first, one-sided base."""
    out = []
    for row in reversed(result["list"]):
        oi_base = _one_sided(row, "openInterest")
        if oi_base is None:
            raise KeyError("openInterest")
        out.append(OISample(VENUE, result["symbol"], int(row["timestamp"]), oi_base))
    return out


@_protocol
def parse_kline(result: Json, interval_ms: int) -> list[Candle]:
    """`[start, open, high, low, close, volume (coin), turnover (USDT)]` rows, oldest first."""
    out = []
    for ts, *prices, volume, turnover in (row[:7] for row in reversed(result["list"])):
        o, h, lo, c = map(decimal, prices)
        bar = (int(ts), o, h, lo, c, decimal(volume), decimal(turnover))
        out.append(Candle(VENUE, result["symbol"], interval_ms, *bar))
    return out


@_protocol
def parse_premium_kline(result: Json, interval_ms: int) -> list[PremiumBar]:
    """`[start, open, high, low, close]` rows of the premium index (a fraction), oldest first."""
    out = []
    for ts, *prices in (row[:5] for row in reversed(result["list"])):
        o, h, lo, c = map(decimal, prices)
        out.append(PremiumBar(VENUE, result["symbol"], interval_ms, int(ts), o, h, lo, c))
    return out


@_protocol
def parse_funding(result: Json, interval_h: float) -> list[FundingSample]:
    """Settled rates oldest first; rows don't carry the interval, so the caller supplies it."""
    out = []
    for row in reversed(result["list"]):
        ts, rate = int(row["fundingRateTimestamp"]), decimal(row["fundingRate"])
        out.append(FundingSample(VENUE, row["symbol"], ts, rate, interval_h))
    return out


@_protocol
def _launch_times(rows: Sequence[Json]) -> dict[str, int]:
    """instruments-info `launchTime` (ms string): OI history reaches back to it."""
    return {row["symbol"]: int(row.get("launchTime") or 0) for row in rows}


@dataclass(frozen=True, slots=True)
class _Span:
    """Rows exist every `step_ms` (+ `offset_ms`) from launch + `lag_ms`; expect one in [lo, hi]?"""

    symbol: str
    step_ms: int
    lo: int
    hi: int
    lag_ms: int = 0
    offset_ms: int = 0


def _is_usdt_perp(symbol: str) -> bool:
    """By name, for tickers: USDC perps end in PERP, dated futures carry `-<date>`."""
    return symbol.endswith("USDT") and "-" not in symbol


class BybitClient(RestClient):
    """Bybit v5 linear market data within 600 requests / 5 s per IP."""

    name = VENUE
    instruments_page = 1000  # rows per instruments-info page (the venue allows 1..1000)

    budgets = BUDGETS
    check_response = staticmethod(check_response)
    check_payload = staticmethod(check_payload)

    def init_state(self) -> None:
        self.empty_retries = 0
        self._instruments: dict[str, Instrument] | None = None
        self._launch_ms: dict[str, int] = {}
        self._lock = asyncio.Lock()

    async def _result(
        self, path: str, params: Mapping[str, str | int], span: _Span | None
    ) -> tuple[Json, int]:
        """(`result`, venue time ms); an empty list is re-asked unless `span` allows it."""
        for attempt in range(EMPTY_RETRIES + 1):
            payload = await self.http.get(path, {"category": "linear", **params}, CHARGE)
            result, now = payload.get("result"), payload.get("time")
            if not isinstance(result, dict) or not isinstance(result.get("list"), list):
                raise VenueProtocolError(VENUE, f"{path}: no result.list in {str(payload)[:200]}")
            if not isinstance(now, int):
                raise VenueProtocolError(VENUE, f"{path}: envelope without an integer time")
            if result["list"] or not await self._expects(span, now):
                break
            if attempt == EMPTY_RETRIES:
                log.warning("bybit empty list path=%s params=%s: believed", path, dict(params))
                break
            self.empty_retries += 1
            log.info("bybit empty list path=%s params=%s: asking again", path, dict(params))
        return result, now

    async def _expects(self, span: _Span | None, now: int) -> bool:
        """Whether the venue must hold a row in `span` (None: always, e.g. all tickers)."""
        if span is None:
            return True
        await self.instruments()
        first = max(span.lo, self._launch_ms.get(span.symbol, 0) + span.lag_ms) - span.offset_ms
        grid = -(-first // span.step_ms) * span.step_ms + span.offset_ms
        return grid <= min(span.hi, now)

    async def instruments(self) -> list[Instrument]:
        """Every trading USDT perpetual, following `nextPageCursor`; fetched once."""
        async with self._lock:
            if self._instruments is None:
                rows: list[Json] = []
                cursor, seen = "", set()
                while True:
                    params: dict[str, str | int] = {"limit": self.instruments_page}
                    if cursor:
                        params["cursor"] = cursor
                    result, _ = await self._result("/v5/market/instruments-info", params, None)
                    rows.extend(result["list"])
                    cursor = str(result.get("nextPageCursor") or "")
                    if not cursor or cursor in seen:
                        break
                    seen.add(cursor)
                parsed = [parse_instrument(row) for row in rows]
                self._instruments = {i.symbol: i for i in parsed if i is not None}
                self._launch_ms = _launch_times(rows)
        return list(self._instruments.values())

    async def snapshot(self, symbols: Sequence[str] | None = None) -> list[MarketSnapshot]:
        """ONE tickers call for the whole venue; requested symbols it lacks go to `unknown`."""
        if symbols is not None and not symbols:
            return []
        result, now = await self._result("/v5/market/tickers", {}, None)
        snaps = parse_tickers(result, now)
        if symbols is None:
            return [s for s in snaps if _is_usdt_perp(s.symbol)]
        by_symbol = {s.symbol: s for s in snaps}
        for symbol in symbols:
            if symbol not in by_symbol and symbol not in self.unknown:
                self.unknown.append(symbol)
                log.warning("bybit symbol=%s not in tickers: skipped", symbol)
        return [by_symbol[s] for s in dict.fromkeys(symbols) if s in by_symbol]

    async def oi_history(
        self, symbol: str, period_ms: int, start_ms: int, end_ms: int
    ) -> list[OISample]:
        """Walks back from `end_ms` with the cursor; `endTime` always sent (a lone
        `startTime` is ignored by the venue). The first snapshot is one period after launch."""
        if period_ms not in OI_PERIODS:
            raise UserError(f"bybit OI periods are {', '.join(OI_PERIODS.values())}")
        params: dict[str, str | int] = {
            "symbol": symbol,
            "intervalTime": OI_PERIODS[period_ms],
            "startTime": start_ms,
            "endTime": end_ms,
            "limit": OI_LIMIT,
        }
        found: dict[int, OISample] = {}
        span = _Span(symbol, period_ms, start_ms, end_ms, lag_ms=period_ms)
        oldest = end_ms + 1
        while True:
            result, _ = await self._result("/v5/market/open-interest", params, span)
            page = parse_open_interest(result)
            found.update((s.ts_ms, s) for s in page if start_ms <= s.ts_ms <= end_ms)
            cursor = str(result.get("nextPageCursor") or "")
            if not page or not cursor or page[0].ts_ms <= start_ms:
                break
            if page[0].ts_ms >= oldest:
                raise VenueProtocolError(VENUE, f"open-interest cursor {cursor!r} did not advance")
            oldest, params["cursor"] = page[0].ts_ms, cursor
            span = _Span(symbol, period_ms, start_ms, oldest - 1, lag_ms=period_ms)
        return [found[t] for t in sorted(found)]

    async def klines(
        self, symbol: str, interval_ms: int, start_ms: int, end_ms: int, *, forming: bool = True
    ) -> list[Candle]:
        """Pages back with `end` (rows newest first); `forming=False` drops the running bar."""
        bars, venue_now = await self._bars(
            "/v5/market/kline", parse_kline, symbol, interval_ms, start_ms, end_ms
        )
        if bars and not forming and venue_now is not None:
            bars = [c for c in bars if c.ts_ms + interval_ms <= venue_now]
        return bars

    async def premium_history(
        self, symbol: str, interval_ms: int, start_ms: int, end_ms: int
    ) -> list[PremiumBar]:
        """premium-index-price-kline, paged like klines; the newest may still be forming."""
        bars, _ = await self._bars(
            PREMIUM_KLINE, parse_premium_kline, symbol, interval_ms, start_ms, end_ms
        )
        return bars

    async def _bars(
        self,
        path: str,
        parse: Callable[[Json, int], list[B]],
        symbol: str,
        interval_ms: int,
        start_ms: int,
        end_ms: int,
    ) -> tuple[list[B], int | None]:
        """Bars opening in [start, end] oldest first, and the venue's time: pages back with
        `end` (rows come newest first)."""
        if interval_ms not in KLINE_INTERVALS:
            raise UserError(f"bybit kline intervals are {', '.join(KLINE_INTERVALS.values())}")
        offset = WEEK_OFFSET_MS if interval_ms == WEEK_MS else 0
        found: dict[int, B] = {}
        hi, venue_now = end_ms, None
        while hi >= start_ms:
            want = min(KLINE_LIMIT, (hi - start_ms) // interval_ms + 2)
            params: dict[str, str | int] = {"symbol": symbol, "end": hi, "limit": want}
            params["interval"] = KLINE_INTERVALS[interval_ms]
            span = _Span(symbol, interval_ms, start_ms, hi, offset_ms=offset)
            result, now = await self._result(path, params, span)
            venue_now = now if venue_now is None else venue_now
            page = parse(result, interval_ms)
            found.update((c.ts_ms, c) for c in page if start_ms <= c.ts_ms <= end_ms)
            if not page or page[0].ts_ms > hi:
                break
            hi = page[0].ts_ms - 1
        return [found[t] for t in sorted(found)], venue_now

    async def funding_history(self, symbol: str, start_ms: int, end_ms: int) -> list[FundingSample]:
        """Pages back with `endTime` only (a lone `startTime` is an error); the interval is
        the instrument's current one (8 h when the symbol is not listed any more)."""
        await self.instruments()
        listed = (self._instruments or {}).get(symbol)
        interval_h = (listed.funding_interval_h if listed else None) or 8.0
        step = int(interval_h * HOUR_MS)
        found: dict[int, FundingSample] = {}
        hi = end_ms
        while hi >= start_ms:
            params: dict[str, str | int] = {"symbol": symbol, "endTime": hi, "limit": FUNDING_LIMIT}
            span = _Span(symbol, step, start_ms, hi, lag_ms=step)
            result, _ = await self._result("/v5/market/funding/history", params, span)
            page = parse_funding(result, interval_h)
            found.update((f.ts_ms, f) for f in page if start_ms <= f.ts_ms <= end_ms)
            if len(page) < FUNDING_LIMIT or page[0].ts_ms > hi:
                break
            hi = page[0].ts_ms - 1
        return [found[t] for t in sorted(found)]
