"""Gate USDT-perpetual REST connector (exchange-apis.md §10) within 200 requests / 10 s per
endpoint per IP; the payloads are read in `wire`.

One `tickers` call carries OI, prices and funding for every contract (`snapshot`); OI history,
positioning and per-bar liquidations come from `contract_stats`, paged forward with `from`
(100 rows a page) from period boundaries, so the three readers of one range (backfill asks
them together) share each page: one request in flight per page, and a page of closed
periods kept (`STATS_KEPT` pages, oldest dropped first; closed periods never change);
candles from `candlesticks` in windows of at most 1,999 points (the doc allows 2,000 per
query, and `limit` may not be combined with `from`/`to`), never further back than the
10,000 points the venue keeps (an older `from` is an error); funding history pages back
with `to` (1,000 rows a page; its order is undocumented, so rows are sorted here).

Gate's replies carry no time: the venue's clock is the `Date` header of its replies
(`http.ServerClock`), which stamps snapshots and bounds how far back candles reach.

Empty lists: where rows must exist (contracts, tickers, a stats or funding page the range
and the venue's clock say is there, a candle window since the series began) an empty
answer is asked again up to `EMPTY_RETRIES` times before it is believed.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

from oiradar.errors import UnknownSymbol, VenueProtocolError
from oiradar.records import (
    Candle,
    FundingSample,
    Instrument,
    LiquidationBar,
    MarketSnapshot,
    OISample,
    Positioning,
)
from oiradar.venues.base import interval_param, newest_open, spaced_funding, windows_back
from oiradar.venues.gate.wire import (
    CANDLE_INTERVALS,
    FUTURES,
    STATS_INTERVALS,
    VENUE,
    Listing,
    Stat,
    check_payload,
    parse_candles,
    parse_contracts,
    parse_funding,
    parse_stats,
    parse_tickers,
)
from oiradar.venues.http import RestClient
from oiradar.venues.limiter import Budget

BUDGETS = {"endpoint": Budget(200, 10.0)}  # per endpoint (path) per IP, all public (§10.5)
CONTRACTS_PAGE, STATS_PAGE, FUNDING_PAGE = 1000, 100, 1000
STATS_KEPT = 128  # contract_stats pages kept for the other readers (~40 KB each)
CANDLE_WINDOW = 1999  # points per candlesticks query (the doc's maximum is 2,000)
CANDLE_DEPTH = 9998  # points back from now (10,000 kept; margin for the second-truncated clock)
SECOND = 1000


class GateClient(RestClient):
    """Gate USDT perpetuals; canonical `BTCUSDT` outside, `BTC_USDT` on the wire."""

    name = VENUE

    budgets = BUDGETS
    check_payload = staticmethod(check_payload)

    def init_state(self) -> None:
        self._listings: dict[str, Listing] | None = None  # contract -> listing
        self._lock = asyncio.Lock()
        self._pages: dict[tuple[str, str, int], asyncio.Task[list[Stat]]] = {}

    async def _get(self, name: str, params: Mapping[str, str | int], must_exist: bool) -> Any:
        """The rows of `FUTURES + name`; an empty list where rows must exist is asked again."""
        path = FUTURES + name

        async def fetch() -> Any:
            return await self.http.get(path, params, [("endpoint", path, 1)])

        return await (self.refetch_empty(fetch) if must_exist else fetch())

    async def listings(self) -> dict[str, Listing]:
        """Contract name -> listing (read once: units and funding schedule)."""
        async with self._lock:
            if self._listings is None:
                listings: list[Listing] = []
                for offset in range(0, 10**6, CONTRACTS_PAGE):
                    params = {"limit": CONTRACTS_PAGE, "offset": offset}
                    rows = await self._get("contracts", params, must_exist=offset == 0)
                    listings.extend(parse_contracts(rows))
                    if len(rows) < CONTRACTS_PAGE:
                        break
                self._listings = {x.instrument.venue_symbol: x for x in listings}
            return self._listings

    async def _listing(self, symbol: str) -> Listing:
        for listing in (await self.listings()).values():
            if listing.instrument.symbol == symbol:
                return listing
        raise UnknownSymbol(VENUE, f"{symbol} is not a live USDT perpetual on gate")

    async def instruments(self) -> list[Instrument]:
        return [x.instrument for x in (await self.listings()).values()]

    async def snapshot(self, symbols: Sequence[str] | None = None) -> list[MarketSnapshot]:
        """Every contract from ONE `tickers` call (contracts once, cached, for the units)."""
        listings = await self.listings()
        rows = await self._get("tickers", {}, must_exist=True)
        found = {s.symbol: s for s in parse_tickers(rows, listings, self.venue_now()).values()}
        return self.chosen(found, symbols)

    async def _stats(self, symbol: str, period_ms: int, start_ms: int, end_ms: int) -> list[Stat]:
        """`contract_stats` rows stamped in [start, end], oldest first, paged forward."""
        interval_param(VENUE, STATS_INTERVALS, period_ms, "statistics period")
        await self._listing(symbol)
        found: dict[int, Stat] = {}
        since = -(-start_ms // period_ms) * period_ms // SECOND  # rows sit on period bounds
        while since * SECOND <= end_ms:
            rows = await self._stats_page(symbol, period_ms, since)
            found.update((r.oi.ts_ms, r) for r in rows if start_ms <= r.oi.ts_ms <= end_ms)
            if len(rows) < STATS_PAGE:
                break
            newest = max(r.oi.ts_ms for r in rows) + period_ms
            if newest <= since * SECOND:
                raise VenueProtocolError(VENUE, f"contract_stats from={since} did not advance")
            since = newest // SECOND
        return [found[t] for t in sorted(found)]

    async def _stats_page(self, symbol: str, period_ms: int, since: int) -> list[Stat]:
        """One `contract_stats` page from `since` (s), shared by concurrent readers and kept
        while every row in it is a closed period."""
        interval = interval_param(VENUE, STATS_INTERVALS, period_ms, "statistics period")
        inst = (await self._listing(symbol)).instrument
        key = (inst.venue_symbol, interval, since)
        task = self._pages.get(key)
        if task is None:
            params: dict[str, str | int] = {"contract": inst.venue_symbol, "interval": interval}
            params |= {"from": since, "limit": STATS_PAGE}
            due = since * SECOND <= self.venue_now() - period_ms  # a row should be there by now
            reply = self._get("contract_stats", params, due)
            task = asyncio.ensure_future(self._parsed(reply, symbol, period_ms, inst))
            task.add_done_callback(functools.partial(self._forget_failed, key))
            self._pages[key] = task
        rows = await asyncio.shield(task)  # one reader cancelled leaves the others theirs
        closed = self.venue_now() - period_ms
        if len(rows) < STATS_PAGE or max(r.oi.ts_ms for r in rows) > closed:
            self._pages.pop(key, None)  # the newest rows may still change or grow
        while len(self._pages) > STATS_KEPT:
            del self._pages[next(iter(self._pages))]
        return rows

    @staticmethod
    async def _parsed(
        reply: Awaitable[Any], symbol: str, period_ms: int, inst: Instrument
    ) -> list[Stat]:
        return parse_stats(await reply, symbol, period_ms, inst.contract_size)

    def _forget_failed(self, key: tuple[str, str, int], task: asyncio.Task[list[Stat]]) -> None:
        """A failed page is asked again by the next reader (and its error is retrieved)."""
        if (task.cancelled() or task.exception() is not None) and self._pages.get(key) is task:
            del self._pages[key]

    async def oi_history(
        self, symbol: str, period_ms: int, start_ms: int, end_ms: int
    ) -> list[OISample]:
        """OI (base = contracts x quanto, USD as Gate computes it) from `contract_stats`."""
        return [s.oi for s in await self._stats(symbol, period_ms, start_ms, end_ms)]

    async def positioning_history(
        self, symbol: str, period_ms: int, start_ms: int, end_ms: int
    ) -> list[Positioning]:
        """Top-trader and all-account long/short ratios and the taker ratio, same rows."""
        return [s.positioning for s in await self._stats(symbol, period_ms, start_ms, end_ms)]

    async def liquidation_history(
        self, symbol: str, interval_ms: int, start_ms: int, end_ms: int
    ) -> list[LiquidationBar]:
        """Long/short liquidation totals of the bars opening in [start, end]: the same rows,
        each stamped at its period's close (wire), so read one period later."""
        rows = await self._stats(symbol, interval_ms, start_ms + interval_ms, end_ms + interval_ms)
        return [s.liquidations for s in rows if start_ms <= s.liquidations.ts_ms <= end_ms]

    async def klines(
        self, symbol: str, interval_ms: int, start_ms: int, end_ms: int
    ) -> list[Candle]:
        """Bars opening in [start, end], oldest first, the forming last bar kept; windows page
        backwards from the end, and a window that comes back short at its old end is where
        the series begins (older windows are not asked for)."""
        interval = interval_param(VENUE, CANDLE_INTERVALS, interval_ms, "candles")
        inst = (await self._listing(symbol)).instrument
        step, now = interval_ms, self.venue_now()
        lo = max(-(-start_ms // step), now // step - CANDLE_DEPTH) * step

        async def window(first: int, last: int) -> list[Candle]:
            params: dict[str, str | int] = {"contract": inst.venue_symbol, "interval": interval}
            params |= {"from": first // SECOND, "to": last // SECOND}
            rows = await self._get("candlesticks", params, must_exist=True)
            return parse_candles(rows, symbol, step, inst.contract_size)

        hi = newest_open(end_ms, now, step, CANDLE_WINDOW)
        return await windows_back(lo, hi, step, CANDLE_WINDOW, window)

    async def funding_history(self, symbol: str, start_ms: int, end_ms: int) -> list[FundingSample]:
        """Settled rates in [start, end], oldest first; pages of 1,000 back from `to`, one
        settlement before `start` kept to know the first one's interval."""
        inst = (await self._listing(symbol)).instrument
        fallback = inst.funding_interval_h or 8.0
        settled: dict[int, float] = {}
        to = end_ms // SECOND
        while True:
            params: dict[str, str | int] = {"contract": inst.venue_symbol, "to": to}
            params["limit"] = FUNDING_PAGE
            page = parse_funding(await self._get("funding_rate", params, must_exist=True))
            settled.update(page)
            if len(page) < FUNDING_PAGE or min(page) < start_ms:
                break
            to = min(page) // SECOND - 1
        return spaced_funding(VENUE, symbol, settled, start_ms, end_ms, fallback)
