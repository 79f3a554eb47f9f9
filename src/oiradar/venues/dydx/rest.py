"""dYdX v4 indexer REST connector (exchange-apis.md §13) within its per-IP limits, declared
below as data (comlink source defaults; deployed values may differ); payloads are read in
`wire`.

One `perpetualMarkets` call carries OI, oracle price and the funding estimate of every
market (`snapshot`). OI history is each candle's `startingOpenInterest` (whole history,
newest first): `oi_history` and `klines` read the same candles, paged back with `toISO`
(exclusive). Funding history pages back with `effectiveBeforeOrAt` (inclusive). A page is
`page_limit` rows: 1,000 at first, and the indexer's own maximum once it refuses that.

Over a limit the indexer answers HTTP 429 with `Retry-After` in **milliseconds** (not
seconds, as the shared HTTP layer would read it): converted here.

Empty lists: a page is only asked for where rows should be (the range's newest page, or
one after a full page), so an empty answer is asked again up to `EMPTY_RETRIES` times.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from oiradar.errors import (
    RateLimited,
    UnknownSymbol,
    VenueError,
    VenueProtocolError,
    VenueUnavailable,
)
from oiradar.records import Candle, FundingSample, Instrument, MarketSnapshot, OISample
from oiradar.venues.base import interval_param
from oiradar.venues.dydx.wire import (
    MARKETS,
    RESOLUTIONS,
    V4,
    VENUE,
    PageTooLarge,
    check_payload,
    ms_iso,
    parse_candles,
    parse_funding,
    parse_market,
    parse_markets,
)
from oiradar.venues.http import Charges, RestClient
from oiradar.venues.limiter import Budget

# Per IP, 10 s windows: every GET shares 100; /candles has its own 1,000; historical funding
# is charged to its own 100 too (whether it also counts in the shared one is not clear from
# the source: charged to both, which can only wait longer).
BUDGETS = {"get": Budget(100, 10.0), "candles": Budget(1000, 10.0), "funding": Budget(100, 10.0)}
GET: Charges = [("get", "", 1)]
CANDLES: Charges = [("candles", "", 1)]
FUNDING: Charges = [("get", "", 1), ("funding", "", 1)]
FIRST_PAGE_LIMIT = 1000
R = TypeVar("R")


def check_response(status: int, headers: Mapping[str, str], body: bytes) -> VenueError | None:
    """429 with `Retry-After` in milliseconds (comlink `lib/rate-limit.ts`)."""
    if status != 429:
        return None
    try:
        wait_s = max(0.0, float(headers.get("Retry-After", "1000"))) / 1000
    except ValueError:
        wait_s = 1.0
    return RateLimited(VENUE, "HTTP 429 too many requests", wait_s)


class DydxClient(RestClient):
    """dYdX v4 perpetual markets; canonical `BTCUSDT` outside, `BTC-USD` on the wire."""

    name = VENUE

    budgets = BUDGETS
    check_response = staticmethod(check_response)
    check_payload = staticmethod(check_payload)

    def init_state(self) -> None:
        self.page_limit = FIRST_PAGE_LIMIT
        self._instruments: dict[str, Instrument] | None = None  # canonical -> instrument
        self._lock = asyncio.Lock()

    async def _get(self, path: str, params: Mapping[str, str | int], charges: Charges) -> Any:
        try:
            return await self.http.get(path, params, charges)
        except UnknownSymbol as exc:
            self._instruments = None  # delisted since read: read the list again next time
            raise UnknownSymbol(VENUE, f"{path.rsplit('/', 1)[-1]}: {exc}") from None

    async def _page(
        self, path: str, params: dict[str, str | int], charges: Charges, key: str
    ) -> Any:
        """One page of `page_limit` rows (the reply, whose `key` is its list); adopts the
        indexer's maximum page size when it refuses ours; an empty page is asked again (a
        page is only asked for where rows should be)."""

        async def fetch() -> Any:
            try:
                payload = await self._get(path, {**params, "limit": self.page_limit}, charges)
            except PageTooLarge as exc:
                if exc.limit >= self.page_limit or exc.limit < 1:
                    raise
                self.page_limit = exc.limit
                payload = await self._get(path, {**params, "limit": self.page_limit}, charges)
            if not isinstance(payload.get(key), list):
                raise VenueProtocolError(VENUE, f"{path}: {key} is not a list")
            return payload

        return await self.refetch_empty(fetch, lambda payload: not payload[key])

    async def _markets(self) -> Any:
        """The `perpetualMarkets` reply; an empty list is asked again, then an outage."""

        async def fetch() -> Any:
            return await self._get(MARKETS, {}, GET)

        payload = await self.refetch_empty(fetch, lambda reply: not reply.get("markets"))
        if not payload.get("markets"):
            raise VenueUnavailable(VENUE, "perpetualMarkets listed no markets")
        return payload

    async def instruments(self) -> list[Instrument]:
        async with self._lock:
            if self._instruments is None:
                listed = parse_markets(await self._markets())
                self._instruments = {i.symbol: i for i in listed}
            return list(self._instruments.values())

    async def _ticker(self, symbol: str) -> str:
        await self.instruments()
        inst = (self._instruments or {}).get(symbol)
        if inst is None:
            raise UnknownSymbol(VENUE, f"{symbol} is not an active dydx market")
        return inst.venue_symbol

    async def snapshot(self, symbols: Sequence[str] | None = None) -> list[MarketSnapshot]:
        """Every ACTIVE market from ONE `perpetualMarkets` call."""
        payload = await self._markets()
        now = self.venue_now()
        active = {i.venue_symbol for i in parse_markets(payload)}
        rows = payload["markets"]
        found = {s.symbol: s for s in (parse_market(rows[t], now) for t in sorted(active))}
        return self.chosen(found, symbols)

    async def _candles(
        self, symbol: str, interval_ms: int, start_ms: int, end_ms: int
    ) -> list[tuple[Candle, OISample]]:
        """(bar, OI at its open) for bars opening in [start, end], oldest first."""
        resolution = interval_param(VENUE, RESOLUTIONS, interval_ms, "candles")
        ticker = await self._ticker(symbol)
        path = f"{V4}/candles/perpetualMarkets/{ticker}"
        base: dict[str, str | int] = {"resolution": resolution, "fromISO": ms_iso(start_ms)}

        def parse(payload: Any) -> list[tuple[int, tuple[Candle, OISample]]]:
            return [(c.ts_ms, (c, oi)) for c, oi in parse_candles(payload, symbol, interval_ms)]

        return await self._walk(path, base, CANDLES, "candles", "toISO", end_ms + 1,
                                start_ms, parse, exclusive=True)  # fmt: skip

    async def _walk(
        self, path: str, base: dict[str, str | int], charges: Charges, key: str, cursor: str,
        upper_ms: int, start_ms: int, parse: Callable[[Any], list[tuple[int, R]]],
        *, exclusive: bool,
    ) -> list[R]:  # fmt: skip
        """Pages newest first, moving the `cursor` ISO bound back to the oldest row seen (an
        exclusive bound) or a millisecond before it (an inclusive one)."""
        found: dict[int, R] = {}
        while upper_ms > start_ms or (not exclusive and upper_ms == start_ms):
            params = {**base, cursor: ms_iso(upper_ms)}
            rows = parse(await self._page(path, params, charges, key))
            found.update((t, r) for t, r in rows if start_ms <= t)
            if len(rows) < self.page_limit:
                break
            oldest = min(t for t, _ in rows)
            nxt = oldest if exclusive else oldest - 1
            if nxt >= upper_ms:
                raise VenueProtocolError(VENUE, f"{path}: the {cursor} cursor did not move")
            upper_ms = nxt
        return [found[t] for t in sorted(found)]

    async def oi_history(
        self, symbol: str, period_ms: int, start_ms: int, end_ms: int
    ) -> list[OISample]:
        """OI (base) at each candle's open, every `period_ms`, over the whole history."""
        return [oi for _, oi in await self._candles(symbol, period_ms, start_ms, end_ms)]

    async def klines(
        self, symbol: str, interval_ms: int, start_ms: int, end_ms: int
    ) -> list[Candle]:
        """Bars opening in [start, end], oldest first, the forming last bar kept."""
        return [c for c, _ in await self._candles(symbol, interval_ms, start_ms, end_ms)]

    async def funding_history(self, symbol: str, start_ms: int, end_ms: int) -> list[FundingSample]:
        """Hourly settlements in [start, end], oldest first (the rate is per hour)."""
        ticker = await self._ticker(symbol)
        path = f"{V4}/historicalFunding/{ticker}"

        def parse(payload: Any) -> list[tuple[int, FundingSample]]:
            return [(t, FundingSample(VENUE, symbol, t, r, 1.0))
                    for t, r in parse_funding(payload).items()]  # fmt: skip

        return await self._walk(path, {}, FUNDING, "historicalFunding", "effectiveBeforeOrAt",
                                end_ms, start_ms, parse, exclusive=False)  # fmt: skip
