"""Hyperliquid perps over `POST /info` (exchange-apis.md §9.1, §11) within 1,200 weight per
minute per IP; the payloads are read in `wire`.

Each request is charged its weight before it is sent: 20, plus one per 60 candles or 20
funding rows it can return (known from the range asked), so the limiter never lets the
per-row surcharge overrun the budget. One `metaAndAssetCtxs` (20) gives the universe and
OI, mark, funding and volume of every perp (`snapshot`). Hyperliquid keeps no OI history:
`oi_history` is empty and callers build it from snapshots, as for Bitget. Candles reach back
5,000 bars; funding history comes 500 rows a reply, oldest first, paged by `startTime`.

Assumed where nothing is recorded (unverified): a coin the universe lacks is refused here
(`UnknownSymbol`) before asking, since the venue's answer for one is unknown; an over-limit
reply is HTTP 429 (body `null`, no Retry-After: one second is waited); a malformed body is
HTTP 422 (our bug: never retried).

Empty lists: a candle window since the series began, or a funding page the range and the
venue's clock say holds a settlement, is asked again up to `EMPTY_RETRIES` times.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from oiradar.errors import (
    UnknownSymbol,
    VenueError,
    VenueProtocolError,
    VenueUnavailable,
)
from oiradar.records import Candle, FundingSample, Instrument, MarketSnapshot, OISample
from oiradar.units import HOUR_MS
from oiradar.venues.base import interval_param, newest_open, spaced_funding, windows_back
from oiradar.venues.http import RestClient
from oiradar.venues.hyperliquid.wire import (
    CANDLE_DEPTH,
    CANDLES_PER_WEIGHT,
    FUNDING_PAGE,
    FUNDING_PER_WEIGHT,
    INFO,
    INTERVALS,
    VENUE,
    Market,
    parse_candles,
    parse_funding,
    parse_meta_and_ctxs,
    weight,
)
from oiradar.venues.limiter import Budget

BUDGETS = {"weight": Budget(1200, 60.0)}  # all REST, per IP (doc "Rate limits")


def check_response(status: int, headers: Mapping[str, str], body: bytes) -> VenueError | None:
    """422: the body did not deserialize — a request we built wrong, never retried."""
    if status == 422:
        return VenueProtocolError(VENUE, f"HTTP 422 {body[:120]!r}")
    return None


class HyperliquidClient(RestClient):
    """Hyperliquid perps; canonical `BTCUSDT` / `1000PEPEUSDT` outside, `BTC` / `kPEPE` on
    the wire."""

    name = VENUE

    budgets = BUDGETS
    check_response = staticmethod(check_response)

    def init_state(self) -> None:
        self._markets: dict[str, Market] | None = None  # canonical symbol -> market
        self._lock = asyncio.Lock()

    async def _info(self, body: Mapping[str, Any], cost: int, must_exist: bool = False) -> Any:
        """One `/info` request charged `cost` weight; an empty list where rows must exist is
        asked again."""

        async def fetch() -> Any:
            return await self.http.post(INFO, body, [("weight", "", cost)])

        return await (self.refetch_empty(fetch) if must_exist else fetch())

    async def _snapshots(self) -> list[tuple[Market, MarketSnapshot]]:
        """Every perp with its context; an empty universe is asked again, then an outage."""

        async def fetch() -> list[tuple[Market, MarketSnapshot]]:
            payload = await self._info({"type": "metaAndAssetCtxs"}, weight(0, 1))
            return parse_meta_and_ctxs(payload, self.venue_now())

        pairs = await self.refetch_empty(fetch)
        if not pairs:
            raise VenueUnavailable(VENUE, "metaAndAssetCtxs listed no perps")
        return pairs

    async def markets(self) -> dict[str, Market]:
        """Canonical symbol -> market (read once)."""
        async with self._lock:
            if self._markets is None:
                self._markets = {m.instrument.symbol: m for m, _ in await self._snapshots()}
            return self._markets

    async def _coin(self, symbol: str) -> str:
        market = (await self.markets()).get(symbol)
        if market is None:
            raise UnknownSymbol(VENUE, f"{symbol} is not a listed perp on hyperliquid")
        return market.instrument.venue_symbol

    async def instruments(self) -> list[Instrument]:
        return [m.instrument for m in (await self.markets()).values()]

    async def snapshot(self, symbols: Sequence[str] | None = None) -> list[MarketSnapshot]:
        """Every perp from ONE `metaAndAssetCtxs` call (weight 20)."""
        pairs = await self._snapshots()
        if self._markets is None:
            self._markets = {m.instrument.symbol: m for m, _ in pairs}
        return self.chosen({s.symbol: s for _, s in pairs}, symbols)

    async def oi_history(
        self, symbol: str, period_ms: int, start_ms: int, end_ms: int
    ) -> list[OISample]:
        """Always []: Hyperliquid keeps no OI history; record it from `snapshot` instead."""
        return []

    async def klines(
        self, symbol: str, interval_ms: int, start_ms: int, end_ms: int
    ) -> list[Candle]:
        """Bars opening in [start, end], oldest first (the forming last bar kept), within the
        latest 5,000 the venue keeps: windows of up to 5,000 bars backwards from the end."""
        name = interval_param(VENUE, INTERVALS, interval_ms, "candles")
        coin, step, now = await self._coin(symbol), interval_ms, self.venue_now()

        async def window(first: int, last: int) -> list[Candle]:
            rows = (last - first) // step + 1
            req = {"coin": coin, "interval": name, "startTime": first, "endTime": last}
            body = {"type": "candleSnapshot", "req": req}
            reply = await self._info(body, weight(rows, CANDLES_PER_WEIGHT), must_exist=True)
            return parse_candles(reply, symbol, step)

        lo = max(-(-start_ms // step), now // step - (CANDLE_DEPTH - 1)) * step
        hi = newest_open(end_ms, now, step, CANDLE_DEPTH)
        return await windows_back(lo, hi, step, CANDLE_DEPTH, window)

    async def funding_history(self, symbol: str, start_ms: int, end_ms: int) -> list[FundingSample]:
        """Settlements in [start, end], oldest first; one hourly slot before `start` is read
        too, to know the first one's interval (the spacing: 1 h now, 8 h in 2023)."""
        coin = await self._coin(symbol)
        since, upto = start_ms - 8 * HOUR_MS, min(end_ms, self.venue_now())
        settled: dict[int, float] = {}
        while since <= upto:
            hours = (upto - since) // HOUR_MS + 1  # at most one settlement an hour
            cost = weight(min(FUNDING_PAGE, hours), FUNDING_PER_WEIGHT)
            body = {"type": "fundingHistory", "coin": coin, "startTime": since, "endTime": upto}
            page = parse_funding(await self._info(body, cost, must_exist=hours > 8))
            settled.update(page)
            if len(page) < FUNDING_PAGE:
                break
            newest = max(page)
            if newest < since:
                raise VenueProtocolError(VENUE, f"fundingHistory startTime={since} went back")
            since = newest + 1
        return spaced_funding(VENUE, symbol, settled, start_ms, end_ms, 1.0)
