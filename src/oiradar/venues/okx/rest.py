"""OKX v5 REST connector for USDT-margined linear swaps (instType SWAP), exchange-apis.md §3:
each route's budget declared as data below; the payloads are read in `wire`.

Histories come newest first behind exclusive "older than" cursors; pages walk back from the
range end and return oldest first, deduplicated. OKX keeps the latest 1,440 OI-history rows
per period and candles, about three months of funding, six months of premium samples.

Empty lists: a healthy OKX answers `[]` only where it keeps nothing, and a page is only asked
for where data should exist (a bulk list; a history page while the range, the listing and the
last full page say more is there). So an empty answer is asked again up to twice before it is
believed (a fault rate p leaves 3 empties in a row with p^3). `/market/candles` is not re-asked:
its empty or short page hands over to `/market/history-candles`, which holds those bars too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from oiradar.errors import UnknownSymbol, VenueProtocolError, VenueUnavailable
from oiradar.records import Candle, FundingSample, Instrument, MarketSnapshot, OISample, PremiumBar
from oiradar.units import HOUR_MS
from oiradar.venues.base import interval_param, spaced_funding
from oiradar.venues.http import RestClient
from oiradar.venues.limiter import Budget
from oiradar.venues.okx.wire import (
    BARS,
    OI_PERIODS,
    PREMIUM_INTERVALS,
    VENUE,
    Listing,
    check_envelope,
    first_open,
    merge_snapshot,
    parse_candles,
    parse_funding_history,
    parse_funding_rate,
    parse_instruments,
    parse_mark_price,
    parse_oi_history,
    parse_open_interest,
    parse_premium_history,
    parse_tickers,
    premium_bars,
)

log = logging.getLogger(__name__)
EMPTY_RETRIES = 2  # an empty page where data must exist is asked this many more times
OI_PAGE, CANDLE_PAGE, FUNDING_PAGE = 100, 300, 400  # documented maximum rows per page
PREMIUM_PAGE = 100
FUNDING_LOOKBACK_MS = 8 * HOUR_MS  # the longest funding interval OKX documents


@dataclass(frozen=True, slots=True)
class Route:
    """A REST path and its budget: `limit` requests per 2 s per IP, and per value of the
    query parameter `key` where OKX keys the limit on it (instId, instType), §3.1."""

    path: str
    bucket: str
    limit: int
    key: str = ""


INSTRUMENTS = Route("/api/v5/public/instruments", "instruments", 20, "instType")
OPEN_INTEREST = Route("/api/v5/public/open-interest", "open-interest", 20, "instId")
OI_HISTORY = Route("/api/v5/rubik/stat/contracts/open-interest-history", "oi-history", 10, "instId")
CANDLES = Route("/api/v5/market/candles", "candles", 40)
HISTORY_CANDLES = Route("/api/v5/market/history-candles", "history-candles", 20)
FUNDING_RATE = Route("/api/v5/public/funding-rate", "funding-rate", 10, "instId")
FUNDING_HISTORY = Route("/api/v5/public/funding-rate-history", "funding-history", 10, "instId")
TICKERS = Route("/api/v5/market/tickers", "tickers", 20)
MARK_PRICE = Route("/api/v5/public/mark-price", "mark-price", 10)
# Premium samples: 20 / 2 s (rule "IP"), the latest 6 months, limit <= 100 (OKX doc "Get
# premium history"); one point per row, no bar size, so bars are built in `wire`.
PREMIUM_HISTORY = Route("/api/v5/public/premium-history", "premium-history", 20)
ROUTES = (INSTRUMENTS, OPEN_INTEREST, OI_HISTORY, CANDLES, HISTORY_CANDLES, FUNDING_RATE,
          FUNDING_HISTORY, TICKERS, MARK_PRICE, PREMIUM_HISTORY)  # fmt: skip
BUDGETS = {r.bucket: Budget(r.limit, 2.0) for r in ROUTES}


def _older(cursor: int, stamps: Iterable[int]) -> int:
    """The next "older than" cursor: the oldest row of the page, which must move it."""
    oldest = min(stamps)
    if oldest >= cursor:
        raise VenueProtocolError(VENUE, f"a page at or after its own cursor {cursor}")
    return oldest


class OkxClient(RestClient):
    """OKX v5 SWAP connector; canonical `BTCUSDT` outside, `BTC-USDT-SWAP` on the wire."""

    name = VENUE

    budgets = BUDGETS
    check_payload = staticmethod(check_envelope)

    def init_state(self) -> None:
        self.price_source = TICKERS  # or MARK_PRICE: the third call of `snapshot`
        self.empty_refetches = 0
        self._listings: dict[str, Listing] | None = None  # canonical symbol -> listing
        self._lock = asyncio.Lock()

    async def _get(self, route: Route, expect: bool, **params: str | int) -> list[Any]:
        """`data` of one request; `expect` (data must exist) re-asks an empty list twice."""
        key = str(params.get(route.key, "")) if route.key else ""
        for attempt in range(1 + (EMPTY_RETRIES if expect else 0)):
            if attempt:
                self.empty_refetches += 1
                log.info("okx empty list refetched path=%s attempt=%d", route.path, attempt)
            try:
                payload = await self.http.get(route.path, params, [(route.bucket, key, 1)])
            except UnknownSymbol:
                self._listings = None  # delisted since we read the list: read it again
                raise
            if payload["data"]:
                data: list[Any] = payload["data"]
                return data
        return []

    async def _listed(self) -> dict[str, Listing]:
        async with self._lock:
            if self._listings is None:
                rows = await self._get(INSTRUMENTS, True, instType="SWAP")
                listings = parse_instruments(rows)
                if not listings:
                    raise VenueUnavailable(VENUE, "instruments listed no live USDT swaps")
                self._listings = {x.instrument.symbol: x for x in listings}
            return self._listings

    async def _listing(self, symbol: str) -> Listing:
        listing = (await self._listed()).get(symbol)
        if listing is None:
            raise UnknownSymbol(VENUE, f"{symbol} is not a live USDT swap on okx")
        return listing

    async def instruments(self) -> list[Instrument]:
        return [x.instrument for x in (await self._listed()).values()]

    async def snapshot(self, symbols: Sequence[str] | None = None) -> list[MarketSnapshot]:
        """Three bulk calls for every swap: open-interest, funding-rate ANY and `price_source`
        (tickers: last price and 24 h volume, which the scanner ranks by; or mark-price)."""
        listed = await self._listed()
        wanted = list(listed) if symbols is None else list(dict.fromkeys(symbols))
        self.unknown = [s for s in wanted if s not in listed]
        ids = [listed[s].instrument.venue_symbol for s in wanted if s in listed]
        if not ids:
            return []
        ct_val = {x.instrument.venue_symbol: x.instrument.contract_size for x in listed.values()}
        oi, funding, price = await asyncio.gather(
            self._get(OPEN_INTEREST, True, instType="SWAP"),
            self._get(FUNDING_RATE, True, instId="ANY"),
            self._get(self.price_source, True, instType="SWAP"),
        )
        price_parser = parse_mark_price if self.price_source is MARK_PRICE else parse_tickers
        parts = (parse_open_interest(oi, ct_val), price_parser(price),
                 parse_funding_rate(funding))  # fmt: skip
        found = ([p[i] for p in parts if i in p] for i in ids)
        return [merge_snapshot(one) for one in found if one]

    async def oi_history(
        self, symbol: str, period_ms: int, start_ms: int, end_ms: int
    ) -> list[OISample]:
        """OKX keeps only the latest 1,440 rows per period: older parts come back missing."""
        period = interval_param(VENUE, OI_PERIODS, period_ms, "OI period")
        listing = await self._listing(symbol)
        inst_id, lowest = listing.instrument.venue_symbol, first_open(start_ms, period_ms)
        found: dict[int, OISample] = {}
        cursor = end_ms + 1  # `begin` and `end` are both exclusive
        while cursor > lowest:
            data = await self._get(OI_HISTORY, True, instId=inst_id, period=period,
                                   begin=start_ms - 1, end=cursor, limit=OI_PAGE)  # fmt: skip
            rows = parse_oi_history(data, symbol)
            found.update((s.ts_ms, s) for s in rows if start_ms <= s.ts_ms <= end_ms)
            if len(rows) < OI_PAGE:  # the range start or the 1,440-row horizon
                break
            cursor = _older(cursor, (s.ts_ms for s in rows))
        return [found[t] for t in sorted(found)]

    async def klines(
        self, symbol: str, interval_ms: int, start_ms: int, end_ms: int, *, forming: bool = True
    ) -> list[Candle]:
        """`candles` (latest 1,440 rows, the cheaper budget) then `history-candles` for the
        older rest; a still-forming last bar is kept unless `forming` is False."""
        bar = interval_param(VENUE, BARS, interval_ms, "candles")
        listing = await self._listing(symbol)
        inst_id = listing.instrument.venue_symbol
        lowest = first_open(max(start_ms, listing.list_ms - interval_ms + 1), interval_ms)
        found: dict[int, tuple[Candle, bool]] = {}
        route, cursor = CANDLES, end_ms + 1
        while cursor > lowest:
            data = await self._get(route, route is HISTORY_CANDLES, instId=inst_id, bar=bar,
                                   after=cursor, before=start_ms - 1,
                                   limit=CANDLE_PAGE)  # fmt: skip
            page = parse_candles(data, symbol, interval_ms)
            found.update((c.ts_ms, (c, done)) for c, done in page if start_ms <= c.ts_ms <= end_ms)
            if page:
                cursor = _older(cursor, (c.ts_ms for c, _ in page))
            elif route is HISTORY_CANDLES:
                break  # believed after the re-asks: the venue has nothing older
            if route is CANDLES and len(page) < CANDLE_PAGE:
                route = HISTORY_CANDLES  # the 1,440-row horizon (or a fault): the archive
        return [c for t in sorted(found) for c, done in [found[t]] if done or forming]

    async def funding_history(self, symbol: str, start_ms: int, end_ms: int) -> list[FundingSample]:
        """Settled rates; OKX keeps about three months. One settlement before `start` is read
        too (intervals are at most 8 h) to know the first one's interval."""
        inst_id = (await self._listing(symbol)).instrument.venue_symbol
        lower = start_ms - FUNDING_LOOKBACK_MS
        settled: dict[int, float] = {}
        cursor = end_ms + 1  # `after`: older than; `before`: newer than
        while cursor > lower:
            data = await self._get(FUNDING_HISTORY, True, instId=inst_id, after=cursor,
                                   before=lower - 1, limit=FUNDING_PAGE)  # fmt: skip
            rows = parse_funding_history(data)
            settled.update((t, r) for t, r in rows if lower <= t <= end_ms)
            if len(rows) < FUNDING_PAGE:
                break
            cursor = _older(cursor, (t for t, _ in rows))
        return spaced_funding(VENUE, symbol, settled, start_ms, end_ms, 8.0)

    async def premium_history(
        self, symbol: str, interval_ms: int, start_ms: int, end_ms: int
    ) -> list[PremiumBar]:
        """Bars built from premium samples (`premium-history` keeps six months); pages back
        with `after` ("older than") from the end of the last bar."""
        interval_param(VENUE, PREMIUM_INTERVALS, interval_ms, "premium bars")
        inst_id = (await self._listing(symbol)).instrument.venue_symbol
        lower, upper = start_ms, end_ms + interval_ms  # samples in (start, end + bar]
        samples: dict[int, float] = {}
        cursor = upper + 1
        while cursor > lower + 1:
            data = await self._get(PREMIUM_HISTORY, True, instId=inst_id, after=cursor,
                                   before=lower, limit=PREMIUM_PAGE)  # fmt: skip
            rows = parse_premium_history(data)
            samples.update((t, p) for t, p in rows if lower < t <= upper)
            if len(rows) < PREMIUM_PAGE:
                break
            cursor = _older(cursor, (t for t, _ in rows))
        return premium_bars(symbol, samples, interval_ms, start_ms, end_ms)
