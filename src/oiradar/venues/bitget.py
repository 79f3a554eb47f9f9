"""Bitget v2 mix market data, productType USDT-FUTURES (exchange-apis.md §4).

One `tickers` call carries OI (`holdingAmount`: base coin, one side), mark, last price and
funding for every contract. Bitget publishes no OI history, so `oi_history` is empty and
callers build OI history from snapshots. No premium or positioning history either: the v2
ratio series (`account-long-short`, `taker-buy-sell`) are only named in exchange-apis.md,
with no parameters or payloads, and the v3 ones only appear in ccxt's endpoint table (a
stored mirror of the v3 `futures-account-long-short` page shows no time range to page by),
so `premium_history` and `positioning_history` keep the interface's empty answer. Sizes are
coin amounts (a contract is one coin). Numbers arrive as decimal strings, times as ms
strings, inside the envelope `{"code": "00000", "msg", "requestTime", "data"}`.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from oiradar.errors import (
    RateLimited,
    UnknownSymbol,
    UserError,
    VenueError,
    VenueProtocolError,
    VenueUnavailable,
)
from oiradar.records import Candle, FundingSample, Instrument, MarketSnapshot, OISample
from oiradar.units import DAY_MS, HOUR_MS, MINUTE_MS, interval_name
from oiradar.venues.base import decimal
from oiradar.venues.http import Charges, RestClient
from oiradar.venues.limiter import Budget

T = TypeVar("T")
VENUE = "bitget"
PRODUCT = "USDT-FUTURES"
MARKET = "/api/v2/mix/market/"
# 20 requests/s per IP counted per endpoint (one bucket per path), 6000/min per IP overall.
BUDGETS = {"endpoint": Budget(20, 1.0), "overall": Budget(6000, 60.0)}
# Bars of 6 h and longer use the `utc` variants so they open at 00:00 UTC, not UTC+8.
GRANULARITY = {
    MINUTE_MS: "1m", 3 * MINUTE_MS: "3m", 5 * MINUTE_MS: "5m", 15 * MINUTE_MS: "15m",
    30 * MINUTE_MS: "30m", HOUR_MS: "1H", 4 * HOUR_MS: "4H", 6 * HOUR_MS: "6Hutc",
    12 * HOUR_MS: "12Hutc", DAY_MS: "1Dutc",
}  # fmt: skip
CANDLES_LIMIT, HISTORY_LIMIT = 1000, 200
# `candles` keeps "one month" of 1m/3m/5m; 27 days leaves room for short months and clock
# skew. Coarser bars reach further there, but one cut-off for all is simpler and always safe.
CANDLES_REACH_MS = 27 * DAY_MS
MAX_SPAN_MS = 90 * DAY_MS  # endTime - startTime of one candle request
FUNDING_PAGE = 100
EMPTY_RETRIES = 2
CLOCK_TTL_S = 60.0  # re-read the venue's clock when the last response is older than this
_LIVE = ("perpetual", "normal", "USDT")  # symbolType, symbolStatus, quoteCoin of a live perp
_CODE_ERRORS: dict[str, type[VenueError]] = {
    "40034": UnknownSymbol,  # "Parameter symbol does not exist"
    "40102": UnknownSymbol,  # "Symbol does not exist"
    "45001": VenueUnavailable,  # "Unknown error"
    "40725": VenueUnavailable,  # "service return an error"
    "40844": VenueUnavailable,  # "This contract is under temporary maintenance"
}


def check_payload(payload: Any) -> VenueError | None:
    """The envelope's `code` as the error the caller should act on; None for "00000"."""
    if not isinstance(payload, dict) or "code" not in payload:
        return VenueProtocolError(VENUE, f"not a Bitget envelope: {str(payload)[:200]}")
    code, msg = str(payload["code"]), str(payload.get("msg", ""))
    if code == "00000":
        return None
    if code == "429":
        return RateLimited(VENUE, f"{msg} (code 429)", 1.0)
    return _CODE_ERRORS.get(code, VenueProtocolError)(VENUE, f"{msg} (code {code})")


def _each(what: str, rows: Any, parse: Callable[[Any], T]) -> list[T]:
    """`parse` over a list of rows; any shape surprise is a protocol error, never a retry."""
    if not isinstance(rows, list):
        raise VenueProtocolError(VENUE, f"{what}: expected a list, got {str(rows)[:200]}")
    try:
        out = [parse(row) for row in rows]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise VenueProtocolError(VENUE, f"{what}: unexpected row ({exc!r})") from None
    return out


def _opt(value: Any) -> float | None:
    return None if value is None or value == "" else decimal(value)


def parse_contracts(rows: Any) -> list[Instrument]:
    """Live USDT perpetuals (`perpetual`, `normal`); `fundInterval` is in hours."""

    def one(r: Mapping[str, Any]) -> Instrument | None:
        if (r["symbolType"], r["symbolStatus"], r["quoteCoin"]) != _LIVE:
            return None
        sym = str(r["symbol"])
        hours = _opt(r.get("fundInterval"))
        return Instrument(
            VENUE, sym, sym, str(r["baseCoin"]), "USDT", 1.0, funding_interval_h=hours
        )

    return [i for i in _each("contracts", rows, one) if i is not None]


def parse_tickers(rows: Any, intervals: Mapping[str, float | None]) -> list[MarketSnapshot]:
    """REST `tickers` rows or WS `ticker` pushes (`instId`); OI in coin, USD = coin x mark.

    REST tickers carry no next funding time (WS pushes do): it stays None there, since one
    `funding-time` call per symbol would defeat the one-call snapshot.
    """

    def one(r: Mapping[str, Any]) -> MarketSnapshot:
        sym = str(r.get("symbol") or r["instId"])
        mark, oi = _opt(r.get("markPrice")), _opt(r.get("holdingAmount"))
        volume = _opt(r.get("usdtVolume"))
        nxt = r.get("nextFundingTime")
        return MarketSnapshot(
            VENUE,
            sym,
            int(r["ts"]),
            last_price=_opt(r.get("lastPr")),
            mark_price=mark,
            oi_base=oi,
            oi_usd=oi * mark if oi is not None and mark is not None else None,
            funding_rate=_opt(r.get("fundingRate")),
            funding_interval_h=intervals.get(sym),
            next_funding_ms=int(nxt) if nxt else None,
            quote_volume_24h=volume if volume is not None else _opt(r.get("quoteVolume")),
        )

    return _each("tickers", rows, one)


def parse_candles(rows: Any, symbol: str, interval_ms: int) -> list[Candle]:
    """Rows `[ts, open, high, low, close, baseVolume, quoteVolume, ...]` (>= 7 fields)."""

    def one(r: Sequence[Any]) -> Candle:
        if len(r) < 7:
            raise ValueError(f"{len(r)} fields in {list(r)!r}")
        o, h, lo, c, vol, quote = (decimal(x) for x in r[1:7])
        return Candle(VENUE, symbol, interval_ms, int(r[0]), o, h, lo, c, vol, quote)

    return _each("candles", rows, one)


def parse_funding(rows: Any, symbol: str, interval_h: float) -> list[FundingSample]:
    """`history-fund-rate` rows: the settled rate (fraction) at `fundingTime`."""

    def one(r: Mapping[str, Any]) -> FundingSample:
        return FundingSample(
            VENUE, symbol, int(r["fundingTime"]), decimal(r["fundingRate"]), interval_h
        )

    return _each("history-fund-rate", rows, one)


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

    async def _venue_now(self, symbol: str) -> int:
        """Bitget's time (ms): `candles`' one-month reach counts from it, not from our clock."""
        async with self._clock_lock:
            clock = self._venue_clock
            if clock is None or time.monotonic() - clock[1] > CLOCK_TTL_S:
                await self._get("funding-time", {"symbol": symbol})
        if self._venue_clock is None:
            raise VenueProtocolError(VENUE, "responses carry no requestTime")
        stamp, at = self._venue_clock
        return stamp + int((time.monotonic() - at) * 1000)

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
        now = await self._venue_now(symbol)
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
