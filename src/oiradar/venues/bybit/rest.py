"""Bybit v5 REST connector, category `linear`: USDT perpetuals as oiradar records
(exchange-apis.md §2), within 600 requests / 5 s per IP (the payloads are read in `wire`).

Lists arrive newest first and are returned oldest first. A list that comes back empty where
the venue must hold rows (all tickers, a page the cursor promised, a window between the
symbol's `launchTime` and the venue's own clock in the envelope's `time`) is asked again up
to `EMPTY_RETRIES` times before it is believed: an empty list is what a flaky edge or a
half-failed node returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from oiradar.errors import Banned, UserError, VenueError, VenueProtocolError
from oiradar.records import Candle, FundingSample, Instrument, MarketSnapshot, OISample, PremiumBar
from oiradar.units import HOUR_MS
from oiradar.venues.bybit.wire import (
    KLINE_INTERVALS,
    OI_PERIODS,
    PREMIUM_KLINE,
    VENUE,
    WEEK_MS,
    WEEK_OFFSET_MS,
    check_payload,
    is_usdt_perp,
    launch_times,
    parse_funding,
    parse_instrument,
    parse_kline,
    parse_open_interest,
    parse_premium_kline,
    parse_tickers,
)
from oiradar.venues.http import RestClient
from oiradar.venues.limiter import Budget

IP_BUDGET = Budget(600, 5.0)  # requests per 5 s per IP, all REST traffic
BUDGETS = {"ip": IP_BUDGET}
CHARGE = [("ip", "", 1)]
BAN_S = 600.0  # HTTP 403: "wait for at least 10 minutes"
EMPTY_RETRIES = 2
OI_LIMIT, KLINE_LIMIT, FUNDING_LIMIT = 200, 1000, 200

log = logging.getLogger(__name__)
B = TypeVar("B", Candle, PremiumBar)
Json = Mapping[str, Any]


def check_response(status: int, headers: Mapping[str, str], body: bytes) -> VenueError | None:
    """HTTP 403 is the IP ban (600 req / 5 s breached, or a blocked region): stop 10 min."""
    if status == 403:
        return Banned(VENUE, f"HTTP 403 {body[:60]!r}: IP banned, waiting {BAN_S:.0f} s", BAN_S)
    return None


@dataclass(frozen=True, slots=True)
class _Span:
    """Rows exist every `step_ms` (+ `offset_ms`) from launch + `lag_ms`; expect one in [lo, hi]?"""

    symbol: str
    step_ms: int
    lo: int
    hi: int
    lag_ms: int = 0
    offset_ms: int = 0


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
                self._launch_ms = launch_times(rows)
        return list(self._instruments.values())

    async def snapshot(self, symbols: Sequence[str] | None = None) -> list[MarketSnapshot]:
        """ONE tickers call for the whole venue; requested symbols it lacks go to `unknown`."""
        if symbols is not None and not symbols:
            return []
        result, now = await self._result("/v5/market/tickers", {}, None)
        snaps = parse_tickers(result, now)
        if symbols is None:
            return [s for s in snaps if is_usdt_perp(s.symbol)]
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
