"""Bitget v2 mix REST connector, productType USDT-FUTURES (exchange-apis.md §4), within the
budgets declared below; the payloads are read in `wire`.

One `tickers` call carries OI (`holdingAmount`: base coin, one side), mark, last price and
funding for every contract. Bitget publishes no OI history, so `oi_history` is empty and
callers build OI history from snapshots. No premium or positioning history either: the v2
ratio series (`account-long-short`, `taker-buy-sell`) are only named in exchange-apis.md,
with no parameters or payloads, and the v3 ones only appear in ccxt's endpoint table (a
stored mirror of the v3 `futures-account-long-short` page shows no time range to page by),
so `premium_history` and `positioning_history` keep the interface's empty answer.

Empty lists: the venue (and the simulator's fault injection) can answer `[]` where rows must
exist. Such a request is sent up to twice more before `[]` is believed. Rows "must exist" for
contracts, tickers, every funding page and every candle window, except a window older than one
that came back short at its old end: that is where the series starts (the listing), so the
empty answer is believed at once. Paging never depends on what came back, only on the range
(windows, page numbers), so a retried request fills exactly the hole it left.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from oiradar.errors import UnknownSymbol, UserError, VenueProtocolError
from oiradar.records import Candle, FundingSample, Instrument, MarketSnapshot, OISample
from oiradar.units import DAY_MS, HOUR_MS, interval_name
from oiradar.venues.bitget.wire import (
    GRANULARITY,
    PRODUCT,
    VENUE,
    check_payload,
    parse_candles,
    parse_contracts,
    parse_funding,
    parse_tickers,
)
from oiradar.venues.http import Charges, RestClient
from oiradar.venues.limiter import Budget

MARKET = "/api/v2/mix/market/"
# 20 requests/s per IP counted per endpoint (one bucket per path), 6000/min per IP overall.
BUDGETS = {"endpoint": Budget(20, 1.0), "overall": Budget(6000, 60.0)}
CANDLES_LIMIT, HISTORY_LIMIT = 1000, 200
# `candles` keeps "one month" of 1m/3m/5m; 27 days leaves room for short months and clock
# skew. Coarser bars reach further there, but one cut-off for all is simpler and always safe.
CANDLES_REACH_MS = 27 * DAY_MS
MAX_SPAN_MS = 90 * DAY_MS  # endTime - startTime of one candle request
FUNDING_PAGE = 100
EMPTY_RETRIES = 2
CLOCK_TTL_S = 60.0  # re-read the venue's clock when the last response is older than this
CLOCK_FRESH_S = 2.0  # ... or than this, when a range reaches past the clock's estimate


class BitgetClient(RestClient):
    """Bitget USDT-FUTURES over REST; canonical symbols are Bitget's own (`BTCUSDT`)."""

    name = VENUE

    budgets = BUDGETS
    check_payload = staticmethod(check_payload)

    def init_state(self) -> None:
        self.empty_retries = 0  # empty answers asked again (see the module docstring)
        self._instruments: list[Instrument] = []
        self._venue_clock: tuple[int, float] | None = None  # (requestTime, monotonic then)
        self._instruments_lock, self._clock_lock = asyncio.Lock(), asyncio.Lock()

    async def _get(self, name: str, params: Mapping[str, str | int]) -> Any:
        """`data` of one market endpoint; remembers the venue's clock from `requestTime`."""
        path = MARKET + name
        charges: Charges = [("endpoint", path, 1), ("overall", "", 1)]
        try:
            payload = await self.http.get(path, {"productType": PRODUCT, **params}, charges)
        except UnknownSymbol as exc:
            why = str(exc).removeprefix(f"{VENUE}: ")
            raise UnknownSymbol(VENUE, f"{params.get('symbol')} is not listed ({why})") from None
        stamp = payload.get("requestTime")
        if isinstance(stamp, int | str) and str(stamp).isdigit():
            self._venue_clock = (int(stamp), time.monotonic())
        return payload.get("data")

    async def _rows(self, name: str, params: Mapping[str, str | int], must_exist: bool) -> Any:
        """`data`; an empty list where rows must exist is asked again up to EMPTY_RETRIES times."""
        data = await self._get(name, params)
        for _ in range(EMPTY_RETRIES if must_exist else 0):
            if data != []:
                break
            self.empty_retries += 1
            data = await self._get(name, params)
        return data

    async def _venue_now(self, symbol: str, reach_ms: int | None = None) -> int:
        """Bitget's time (ms): `candles`' one-month reach counts from it, not from our clock.
        A range reaching past the estimate (`reach_ms`) asks afresh unless the estimate is
        only seconds old: the estimate runs on our clock, and one that ran slow (a venue, or
        a simulator, whose time runs faster) would clamp away the newest bars."""
        async with self._clock_lock:
            clock = self._venue_clock
            age = None if clock is None else time.monotonic() - clock[1]
            ahead = clock is not None and reach_ms is not None and reach_ms > _estimate(clock)
            if age is None or age > CLOCK_TTL_S or (ahead and age > CLOCK_FRESH_S):
                await self._get("funding-time", {"symbol": symbol})
        if self._venue_clock is None:
            raise VenueProtocolError(VENUE, "responses carry no requestTime")
        return _estimate(self._venue_clock)

    async def instruments(self) -> list[Instrument]:
        async with self._instruments_lock:
            if not self._instruments:
                self._instruments = parse_contracts(await self._rows("contracts", {}, True))
        return list(self._instruments)

    async def snapshot(self, symbols: Sequence[str] | None = None) -> list[MarketSnapshot]:
        """All symbols from ONE `tickers` call (contracts once, cached, for the intervals)."""
        live = {i.symbol: i.funding_interval_h for i in await self.instruments()}
        found = {s.symbol: s for s in parse_tickers(await self._rows("tickers", {}, True), live)}
        if symbols is None:
            return [s for sym, s in found.items() if sym in live]
        missing = [s for s in symbols if s not in found and s not in self.unknown]
        self.unknown.extend(dict.fromkeys(missing))
        return [found[s] for s in symbols if s in found]

    async def oi_history(
        self, symbol: str, period_ms: int, start_ms: int, end_ms: int
    ) -> list[OISample]:
        """Always []: Bitget publishes no OI history; record it from `snapshot` instead."""
        return []

    async def klines(
        self, symbol: str, interval_ms: int, start_ms: int, end_ms: int
    ) -> list[Candle]:
        """Bars opening in [start, end], oldest first, the forming last bar kept.

        Pages backwards in windows of at most `limit` bars and 90 days, so a window is answered
        whole whether the venue anchors at startTime or endTime: `candles` (1000 per call) for
        the last CANDLES_REACH_MS, `history-candles` (200 per call, closed bars) before that.
        """
        gran = GRANULARITY.get(interval_ms)
        if gran is None:
            names = ", ".join(GRANULARITY.values())
            raise UserError(f"bitget has no {interval_name(interval_ms)} bars: use {names}")
        if start_ms > end_ms:
            return []
        step = interval_ms
        now = await self._venue_now(symbol, end_ms)
        lo, hi = -(-start_ms // step) * step, min(end_ms, now) // step * step
        cutoff = -(-(now - CANDLES_REACH_MS) // step) * step
        found: dict[int, Candle] = {}
        series_began = False
        while hi >= lo:
            recent = hi >= cutoff
            size = min(CANDLES_LIMIT if recent else HISTORY_LIMIT, MAX_SPAN_MS // step + 1)
            first = max(lo, hi - (size - 1) * step, cutoff if recent else lo)
            params: dict[str, str | int] = {"symbol": symbol, "granularity": gran}
            params |= {"startTime": first, "endTime": hi, "limit": (hi - first) // step + 1}
            name = "candles" if recent else "history-candles"
            rows = await self._rows(name, params, must_exist=not series_began)
            page = [c for c in parse_candles(rows, symbol, step) if first <= c.ts_ms <= hi]
            if not page:
                break
            found.update((c.ts_ms, c) for c in page)
            series_began = min(c.ts_ms for c in page) > first
            hi = first - step
        return [found[t] for t in sorted(found)]

    async def funding_history(self, symbol: str, start_ms: int, end_ms: int) -> list[FundingSample]:
        """Settled rates in [start, end], oldest first, from pages of 100 (newest first).

        The interval is the contract's current `fundInterval`; for a symbol not live now, the
        spacing of the two newest settlements (else 8 h).
        """
        settled: list[FundingSample] = []
        seen: set[int] = set()
        page_no = 1
        while True:
            params: dict[str, str | int] = {"symbol": symbol, "pageSize": FUNDING_PAGE}
            params["pageNo"] = page_no
            rows = await self._rows("history-fund-rate", params, must_exist=True)
            page = parse_funding(rows, symbol, 8.0)  # the interval is settled below
            fresh = [s for s in page if s.ts_ms not in seen]
            if page and not fresh:
                raise VenueProtocolError(VENUE, f"history-fund-rate page {page_no} repeats")
            settled.extend(fresh)
            seen.update(s.ts_ms for s in fresh)
            if len(page) < FUNDING_PAGE or min(s.ts_ms for s in page) < start_ms:
                break
            page_no += 1
        settled.sort(key=lambda s: s.ts_ms)
        live = {i.symbol: i.funding_interval_h for i in await self.instruments()}
        spacing = (settled[-1].ts_ms - settled[-2].ts_ms) / HOUR_MS if len(settled) > 1 else 8.0
        hours = live.get(symbol) or spacing
        return [replace(s, interval_h=hours) for s in settled if start_ms <= s.ts_ms <= end_ms]


def _estimate(clock: tuple[int, float]) -> int:
    """The venue's time now from (its stamp, our monotonic time when it came)."""
    stamp, at = clock
    return stamp + int((time.monotonic() - at) * 1000)
