"""Binance USD-M Futures REST connector (exchange-apis.md §1): USDT perpetuals only, within
Binance's IP limits (declared below as data; the payloads are read in `wire`).

There is no bulk OI endpoint: a snapshot is one `premiumIndex` (mark + funding of every
symbol, weight 10) plus one `openInterest` per symbol (weight 1).

Empty lists: a list that must hold data (exchangeInfo symbols, fundingInfo, premiumIndex, or
a history window covering a full step after the symbol's `onboardDate` and a step before the
venue's time, see `expects_rows`) is asked again up to `EMPTY_RETRIES` more times before it
is believed; a believed empty window is a gap, and paging goes on past it. The venue's time
is the last server time seen plus the monotonic time since; a history call that reaches the
present or the 30-day OI edge refreshes it with one `openInterest` call (weight 1).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from oiradar.errors import UnknownSymbol, UserError, VenueError, VenueProtocolError
from oiradar.lifecycle import cancel_and_wait
from oiradar.records import (
    Candle,
    FundingSample,
    Instrument,
    MarketSnapshot,
    OISample,
    Positioning,
    PremiumBar,
)
from oiradar.units import DAY_MS, HOUR_MS, MINUTE_MS, interval_name
from oiradar.venues.binance.wire import (
    DEFAULT_FUNDING_H,
    FUNDING_RATE,
    KLINE_INTERVALS,
    KLINES,
    OI_HIST,
    OI_PERIODS,
    POSITIONING_PERIODS,
    PREMIUM_INTERVALS,
    PREMIUM_KLINES,
    RATIO_PATHS,
    VENUE,
    check_payload,
    merge_positioning,
    parse_exchange_info,
    parse_funding_info,
    parse_funding_rate,
    parse_klines,
    parse_listing_times,
    parse_oi_history,
    parse_open_interest,
    parse_premium_index,
    parse_premium_klines,
    parse_ratios,
    parse_server_time,
    parse_ticker_24hr,
    snapshot_row,
)
from oiradar.venues.http import Charges, RestClient
from oiradar.venues.limiter import Budget

TIME_FRESH_S = 30.0  # a server time younger than this needs no extra request
log = logging.getLogger(__name__)

WEIGHT, DATA, FUNDING = "REQUEST_WEIGHT", "futures_data", "funding"
BUDGETS = {
    WEIGHT: Budget(2400, 60.0),  # weight per minute per IP (§1.2)
    DATA: Budget(1000, 300.0),  # /futures/data/*: requests per 5 min, weight 0
    FUNDING: Budget(500, 300.0),  # fundingRate + fundingInfo: requests per 5 min
}
# Weight of an endpoint (with `symbol`, without); klines weigh by `limit` instead.
WEIGHTS = {
    "/fapi/v1/premiumIndex": (1, 10),
    "/fapi/v1/ticker/24hr": (1, 40),
    "/fapi/v2/ticker/price": (1, 2),
    "/fapi/v1/exchangeInfo": (1, 1),
    "/fapi/v1/openInterest": (1, 1),
}
FUNDING_PATHS = frozenset({"/fapi/v1/fundingRate", "/fapi/v1/fundingInfo"})
USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
KLINE_LIMIT, OI_LIMIT, FUNDING_LIMIT = 499, 500, 1000  # 499: most bars per weight (§1.3)
OI_RETENTION_MS = 30 * DAY_MS  # openInterestHist keeps the latest 30 days only
RETENTION_MARGIN_MS = MINUTE_MS  # stay clear of the venue's own 30-day check
EMPTY_RETRIES = 2

R = TypeVar("R", OISample, Candle, FundingSample, PremiumBar, Positioning)


def kline_weight(limit: int) -> int:
    """Weight of a klines call by `limit`: [1,100) 1, [100,500) 2, [500,1000] 5, >1000 10."""
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


def charges(path: str, params: Mapping[str, str | int] | None) -> Charges:
    """The limiter charges of one request: (bucket, key, cost)."""
    params = params or {}
    if path.startswith("/futures/data/"):
        return [(DATA, "", 1)]
    if path in FUNDING_PATHS:
        return [(FUNDING, "", 1)]
    if path in (KLINES, PREMIUM_KLINES):
        return [(WEIGHT, "", kline_weight(int(params.get("limit", 500))))]
    with_symbol, without = WEIGHTS.get(path, (1, 1))
    return [(WEIGHT, "", with_symbol if "symbol" in params else without)]


def check_response(status: int, headers: Mapping[str, str], body: bytes) -> VenueError | None:
    """451 (restricted location) and 403 (WAF) are final: retrying cannot help."""
    if status == 451:
        return VenueError(VENUE, "HTTP 451: Binance refuses this location; use another route")
    if status == 403:
        return VenueError(VENUE, "HTTP 403: request rejected by Binance's WAF")
    return None


def expects_rows(lo: int, hi: int, step: int, listed_ms: int, now_ms: int) -> bool:
    """True when [lo, hi] holds a step-aligned time after listing and before now (an empty
    answer there is asked again; a one-bar request for the bar that just closed counts)."""
    first = -(-max(lo, listed_ms + step) // step) * step
    return first <= hi and first < now_ms


def _step_name(ms: int, allowed: frozenset[str], what: str) -> str:
    name = interval_name(ms)
    if name not in allowed:
        raise UserError(f"binance has no {what} {name!r}: use one of {', '.join(sorted(allowed))}")
    return name


async def _all(coros: Sequence[Awaitable[Any]]) -> list[Any]:
    """gather() that cancels the rest when one fails, so a ban stops the whole sweep."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class BinanceClient(RestClient):
    """USD-M market data within Binance's IP limits; canonical symbols equal Binance's."""

    name = VENUE

    budgets = BUDGETS
    check_response = staticmethod(check_response)
    check_payload = staticmethod(check_payload)

    def init_state(self) -> None:
        self.empty_retries = 0
        self._instruments: list[Instrument] | None = None
        self._intervals_h: dict[str, float] = {}
        self._listed_ms: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._server_ms, self._server_mono = 0, 0.0

    def on_headers(self, headers: Mapping[str, str]) -> None:
        used = headers.get(USED_WEIGHT_HEADER, "")
        if used.isdigit():
            self.limiter.observe_used(WEIGHT, int(used))

    def _saw_time(self, server_ms: int) -> None:
        self._server_ms, self._server_mono = server_ms, time.monotonic()

    def _venue_now(self) -> int:
        """The venue's time: the last server time seen plus the time elapsed since."""
        return self._server_ms + int((time.monotonic() - self._server_mono) * 1000)

    async def _get(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        return await self.http.get(path, params, charges(path, params))

    async def _get_rows(
        self, path: str, params: Mapping[str, str | int] | None, expect: bool, key: str = ""
    ) -> Any:
        """GET a list (or a dict's `key` list), asking again when an expected list is empty."""
        for attempt in range(1 + EMPTY_RETRIES):
            payload = await self._get(path, params)
            rows = payload.get(key) if key and isinstance(payload, dict) else payload
            if not isinstance(rows, list):
                raise VenueProtocolError(VENUE, f"{path}: expected a list, got {type(rows)}")
            if rows or not expect:
                return payload
            if attempt < EMPTY_RETRIES:
                self.empty_retries += 1
                log.info("venue=binance event=empty_retry path=%s params=%s", path, params)
        log.warning("venue=binance event=empty_believed path=%s params=%s", path, params)
        return payload

    async def instruments(self) -> list[Instrument]:
        """exchangeInfo + fundingInfo, once; an empty answer is not cached."""
        async with self._lock:
            if self._instruments:
                return list(self._instruments)
            info, funding = await _all(
                [
                    self._get_rows("/fapi/v1/exchangeInfo", None, True, key="symbols"),
                    self._get_rows("/fapi/v1/fundingInfo", None, True),
                ]
            )
            self._intervals_h = parse_funding_info(funding)
            found = parse_exchange_info(info, self._intervals_h)
            self._listed_ms = parse_listing_times(info)
            self._saw_time(parse_server_time(info))
            self._instruments = found
            return list(found)

    async def _open_interest(self, symbol: str) -> OISample | None:
        """OI now; None (and the symbol noted in `unknown`) when Binance rejects the symbol."""
        path = "/fapi/v1/openInterest"
        try:
            payload = await self._get(path, {"symbol": symbol})
        except UnknownSymbol:
            self.unknown.append(symbol)
            return None
        sample = parse_open_interest(payload)
        self._saw_time(sample.ts_ms)
        return sample

    async def snapshot(self, symbols: Sequence[str] | None = None) -> list[MarketSnapshot]:
        """One premiumIndex for all marks and funding, plus one openInterest per symbol."""
        got = [s async for batch in self.snapshots(symbols) for s in batch]
        asked = [i.symbol for i in await self.instruments()] if symbols is None else symbols
        order = {s: i for i, s in enumerate(asked)}
        return sorted(got, key=lambda s: order[s.symbol])

    async def snapshots(
        self, symbols: Sequence[str] | None = None
    ) -> AsyncGenerator[list[MarketSnapshot], None]:
        """The snapshot as its openInterest calls come back (asked in `symbols` order, the
        bulk calls beside them): whatever has arrived since the last batch, in that order."""
        listed = {i.symbol: i for i in await self.instruments()}
        wanted = list(listed) if symbols is None else list(dict.fromkeys(symbols))
        self.unknown = [s for s in wanted if s not in listed]
        wanted = [s for s in wanted if s in listed]
        if not wanted:
            return
        rank = {s: i for i, s in enumerate(wanted)}
        # The bulk calls first in line (every row needs its mark), the whole universe also
        # with the 24 h tickers (weight 40): last price and the quote volume `--top` ranks by.
        paths = ["/fapi/v1/premiumIndex", *(["/fapi/v1/ticker/24hr"] if symbols is None else [])]
        bulk = [asyncio.ensure_future(self._get_rows(p, None, True)) for p in paths]
        ois = [asyncio.ensure_future(self._open_interest(s)) for s in wanted]
        try:
            premium, *tickers = await asyncio.gather(*bulk)
            activity = parse_ticker_24hr(tickers[0]) if tickers else {}
            marks = {r.symbol: r for r in parse_premium_index(premium, self._intervals_h)}
            pending: set[asyncio.Future[OISample | None]] = set(ois)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                got = sorted((oi for t in done if (oi := t.result()) is not None),
                             key=lambda oi: rank[oi.symbol])  # fmt: skip
                if got:
                    yield [snapshot_row(oi, marks, listed, activity) for oi in got]
        finally:  # a failure, or a caller that stopped early: nothing left running
            await cancel_and_wait([*bulk, *ois])

    def snapshot_cost(self, symbols: int) -> dict[str, float] | None:
        """premiumIndex (all symbols, weight 10) plus one openInterest (weight 1) per symbol."""
        per_symbol = WEIGHTS["/fapi/v1/openInterest"][0]
        return {WEIGHT: WEIGHTS["/fapi/v1/premiumIndex"][1] + per_symbol * symbols}

    async def _now(self, symbol: str, end_ms: int, oldest_ms: int | None = None) -> int:
        """The venue's time, asked afresh (openInterest, weight 1) when the range reaches the
        present or the 30-day edge; that call also rejects an unknown symbol before paging."""
        await self.instruments()
        now = self._venue_now()
        near_edge = oldest_ms is not None and oldest_ms <= now - OI_RETENTION_MS + DAY_MS
        stale = time.monotonic() - self._server_mono > TIME_FRESH_S
        # A server time seen in the last few seconds (the snapshot's) is good enough, unless
        # the range ends past it (a bar that just closed; a venue clock running fast).
        if (stale and (end_ms >= now - DAY_MS or near_edge)) or end_ms > now:
            path = "/fapi/v1/openInterest"
            payload = await self._get(path, {"symbol": symbol})
            self._saw_time(parse_open_interest(payload).ts_ms)
            now = self._venue_now()
        return now

    async def _paged(
        self,
        path: str,
        params: dict[str, str | int],
        parse: Callable[[Any], list[R]],
        span: tuple[int, int],
        step: int,
        max_rows: int,
        now_ms: int,
    ) -> list[R]:
        """Forward windows of at most `max_rows` steps over span=[start, end] (up to now);
        a full page continues after its last row, anything else after its window."""
        start, end = span
        listed = self._listed_ms.get(str(params["symbol"]), 0)
        found: dict[int, R] = {}
        lo = start
        while lo <= min(end, now_ms):
            n = max(1, min(max_rows, -(-(end - lo + 1) // step)))
            hi = min(end, lo + n * step - 1)
            query = {**params, "startTime": lo, "endTime": hi, "limit": n}
            payload = await self._get_rows(path, query, expects_rows(lo, hi, step, listed, now_ms))
            rows = sorted(parse(payload), key=lambda r: r.ts_ms)
            found.update((r.ts_ms, r) for r in rows if start <= r.ts_ms <= end)
            last = rows[-1].ts_ms if rows else lo
            if len(rows) >= n and last + step > min(end, now_ms):
                break  # a full page that reached the end of the range (or now): done
            lo = max(lo, last) + 1 if len(rows) >= n else max(hi, last) + 1
        return [found[t] for t in sorted(found)]

    async def oi_history(
        self, symbol: str, period_ms: int, start_ms: int, end_ms: int
    ) -> list[OISample]:
        """5m..1d snapshots; the start is clamped to the venue's 30-day window (no error)."""
        params: dict[str, str | int] = {"symbol": symbol}
        params["period"] = _step_name(period_ms, OI_PERIODS, "OI history period")
        now = await self._now(symbol, end_ms, start_ms)
        span = (max(start_ms, now - OI_RETENTION_MS + RETENTION_MARGIN_MS), end_ms)
        return await self._paged(OI_HIST, params, parse_oi_history, span, period_ms, OI_LIMIT, now)

    async def klines(
        self, symbol: str, interval_ms: int, start_ms: int, end_ms: int
    ) -> list[Candle]:
        """Bars opening in [start, end], the still-forming newest one included; `limit` 499
        (weight 2) for long ranges, fewer than 100 (weight 1) for short ones."""
        params: dict[str, str | int] = {"symbol": symbol}
        params["interval"] = _step_name(interval_ms, KLINE_INTERVALS, "kline interval")
        now = await self._now(symbol, end_ms)
        parse = functools.partial(parse_klines, symbol=symbol, interval_ms=interval_ms)
        span = (start_ms, end_ms)
        return await self._paged(KLINES, params, parse, span, interval_ms, KLINE_LIMIT, now)

    async def funding_history(self, symbol: str, start_ms: int, end_ms: int) -> list[FundingSample]:
        """Settled rates; windows of 1000 current intervals (a full page pages on)."""
        now = await self._now(symbol, end_ms)
        step = int(self._intervals_h.get(symbol, DEFAULT_FUNDING_H) * HOUR_MS)
        parse = functools.partial(parse_funding_rate, intervals_h=self._intervals_h)
        span = (start_ms, end_ms)
        return await self._paged(
            FUNDING_RATE, {"symbol": symbol}, parse, span, step, FUNDING_LIMIT, now
        )

    async def premium_history(
        self, symbol: str, interval_ms: int, start_ms: int, end_ms: int
    ) -> list[PremiumBar]:
        """premiumIndexKlines, paged and weighed like klines; the newest may be forming."""
        params: dict[str, str | int] = {"symbol": symbol}
        params["interval"] = _step_name(interval_ms, PREMIUM_INTERVALS, "premium index interval")
        now = await self._now(symbol, end_ms)
        parse = functools.partial(parse_premium_klines, symbol=symbol, interval_ms=interval_ms)
        span = (start_ms, end_ms)
        return await self._paged(PREMIUM_KLINES, params, parse, span, interval_ms, KLINE_LIMIT, now)

    async def positioning_history(
        self, symbol: str, period_ms: int, start_ms: int, end_ms: int
    ) -> list[Positioning]:
        """The four ratio endpoints (their own 1000 / 5 min bucket; the latest 30 days, the
        start clamped as for OI history), paged like OI history and merged by time."""
        period = _step_name(period_ms, POSITIONING_PERIODS, "positioning period")
        now = await self._now(symbol, end_ms, start_ms)
        span = (max(start_ms, now - OI_RETENTION_MS + RETENTION_MARGIN_MS), end_ms)
        params: dict[str, str | int] = {"symbol": symbol, "period": period}
        parts = await _all(
            [
                self._paged(
                    path,
                    params,
                    functools.partial(parse_ratios, symbol=symbol, path=path),
                    span,
                    period_ms,
                    OI_LIMIT,
                    now,
                )
                for path in RATIO_PATHS
            ]
        )
        return merge_positioning(parts)
