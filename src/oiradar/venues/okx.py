"""OKX v5 public market data for USDT-margined linear swaps (instType SWAP), exchange-apis.md §3.

Sizes are **contracts** (coin = contracts x `ctVal`, BTC-USDT-SWAP 0.01 BTC): OI uses `oiCcy`
(coin, OKX's own conversion, checked against oi x ctVal), candles `volCcy` (coin) and
`volCcyQuote` (USDT); contracts leave only as `OISample.oi_contracts`. Histories come
newest first behind exclusive "older than" cursors; pages walk back from the range end and
return oldest first, deduplicated.

Premium history (`premium-history`, verified against OKX's doc page "Get premium history":
`instId, after, before, limit` <= 100, 20 requests per 2 s per IP, the past 6 months) is point
samples with no bar size and no documented cadence; bars are built here, a sample belonging
to the bar it closes (open < ts <= close), as OI snapshots do.

Empty lists: a healthy OKX answers `[]` only where it keeps nothing, and a page is only asked
for where data should exist (a bulk list; a history page while the range, the listing and the
last full page say more is there). So an empty answer is asked again up to twice before it is
believed (a fault rate p leaves 3 empties in a row with p^3). `/market/candles` is not re-asked:
its empty or short page hands over to `/market/history-candles`, which holds those bars too.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ParamSpec, TypeVar

from oiradar.errors import (
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
from oiradar.units import DAY_MS, HOUR_MS, MINUTE_MS, interval_name
from oiradar.venues.base import decimal
from oiradar.venues.http import RestClient
from oiradar.venues.limiter import Budget

VENUE = "okx"
log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")
WEEK_MS = 7 * DAY_MS
EMPTY_RETRIES = 2  # an empty page where data must exist is asked this many more times
OI_PAGE, CANDLE_PAGE, FUNDING_PAGE = 100, 300, 400  # documented maximum rows per page
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
# premium history"); one point per row, no bar size, so bars are built here.
PREMIUM_HISTORY = Route("/api/v5/public/premium-history", "premium-history", 20)
ROUTES = (INSTRUMENTS, OPEN_INTEREST, OI_HISTORY, CANDLES, HISTORY_CANDLES, FUNDING_RATE,
          FUNDING_HISTORY, TICKERS, MARK_PRICE, PREMIUM_HISTORY)  # fmt: skip
BUDGETS = {r.bucket: Budget(r.limit, 2.0) for r in ROUTES}

# Bar and OI-period names by length; 6 h and longer take the `utc` variant so bars open on the
# UTC grid like the other venues' (plain `1D` opens at UTC+8 midnight).
BARS = {
    MINUTE_MS: "1m", 3 * MINUTE_MS: "3m", 5 * MINUTE_MS: "5m", 15 * MINUTE_MS: "15m",
    30 * MINUTE_MS: "30m", HOUR_MS: "1H", 2 * HOUR_MS: "2H", 4 * HOUR_MS: "4H",
    6 * HOUR_MS: "6Hutc", 12 * HOUR_MS: "12Hutc", DAY_MS: "1Dutc", WEEK_MS: "1Wutc",
}  # fmt: skip
OI_PERIODS = {ms: name for ms, name in BARS.items() if 5 * MINUTE_MS <= ms <= DAY_MS}
PREMIUM_INTERVALS = BARS  # bars are built from the samples: any bar size
PREMIUM_PAGE = 100

_ERRORS: dict[str, Callable[[str], VenueError]] = {
    "51001": lambda msg: UnknownSymbol(VENUE, msg),
    "50011": lambda msg: RateLimited(VENUE, msg, 1.0),
    "50013": lambda msg: RateLimited(VENUE, msg, 1.0),
    "50001": lambda msg: VenueUnavailable(VENUE, msg),
}


def check_envelope(payload: Any) -> VenueError | None:
    """`{"code":"0","msg":"","data":[...]}` is fine; any other code maps to an error class."""
    if not isinstance(payload, dict) or "code" not in payload:
        return VenueProtocolError(VENUE, f"not an OKX envelope: {str(payload)[:200]}")
    code, msg = str(payload["code"]), str(payload.get("msg", ""))
    if code == "0":
        ok = isinstance(payload.get("data"), list)
        return None if ok else VenueProtocolError(VENUE, "envelope without a data list")
    make = _ERRORS.get(code)
    return make(msg) if make else VenueProtocolError(VENUE, f"code {code}: {msg}")


@dataclass(frozen=True, slots=True)
class Listing:
    """A live swap and its listing time (ms): no bar can open a full interval before it."""

    instrument: Instrument
    list_ms: int


def canonical(inst_id: str) -> str:
    """`BTC-USDT-SWAP` -> `BTCUSDT`."""
    return inst_id.removesuffix("-SWAP").replace("-", "")


def _opt(value: object) -> float | None:
    return decimal(value) if value not in (None, "") else None


def parse_instruments(data: list[Any]) -> list[Listing]:
    """USDT-margined linear swaps that trade now; `contract_size` = ctVal (coin per contract)."""
    out = []
    for row in data:
        kind = row.get("ctType"), row.get("settleCcy"), row.get("state")
        if kind != ("linear", "USDT", "live"):
            continue
        inst_id = row["instId"]
        base, quote = (row.get("instFamily") or inst_id.removesuffix("-SWAP")).split("-")[:2]
        inst = Instrument(VENUE, canonical(inst_id), inst_id, base, quote, decimal(row["ctVal"]))
        out.append(Listing(inst, int(row.get("listTime") or 0)))
    return out


def _oi_base(inst_id: str, contracts: float, oi_ccy: float | None, ct_val: float | None) -> float:
    """oiCcy (OKX's own coin figure), else contracts x ctVal; a disagreement is logged."""
    if oi_ccy is None:
        if ct_val is None:
            raise VenueProtocolError(VENUE, f"{inst_id}: OI without oiCcy or a known ctVal")
        return contracts * ct_val
    if ct_val is not None and abs(oi_ccy - contracts * ct_val) > 1e-6 * max(oi_ccy, 1.0):
        log.warning("okx oiCcy disagrees inst=%s oi_ccy=%s oi_x_ctval=%s", inst_id, oi_ccy,
                    contracts * ct_val)  # fmt: skip
    return oi_ccy


def parse_open_interest(data: list[Any], ct_val: Mapping[str, float]) -> dict[str, MarketSnapshot]:
    """instId -> OI part of a snapshot: `oi` contracts, `oiCcy` coin, `oiUsd` USD, `ts` ms."""
    out = {}
    for row in data:
        inst_id = row["instId"]
        base = _oi_base(inst_id, decimal(row["oi"]), _opt(row.get("oiCcy")), ct_val.get(inst_id))
        out[inst_id] = MarketSnapshot(VENUE, canonical(inst_id), int(row["ts"]), oi_base=base,
                                      oi_usd=_opt(row.get("oiUsd")))  # fmt: skip
    return out


def parse_oi_history(data: list[Any], symbol: str) -> list[OISample]:
    """Rows `[ts, oi (contracts), oiCcy (coin), oiUsd]`, any order -> samples as sent."""
    return [
        OISample(VENUE, symbol, int(ts), decimal(ccy), decimal(oi), _opt(usd))
        for ts, oi, ccy, usd, *_ in data
    ]


def parse_candles(data: list[Any], symbol: str, interval_ms: int) -> list[tuple[Candle, bool]]:
    """`[ts,o,h,l,c,vol,volCcy,volCcyQuote,confirm]` -> (bar, closed); `vol` (contracts) is
    dropped for volCcy (coin) and volCcyQuote (USDT); confirm "0" is the forming bar."""
    out = []
    for ts, o, h, low, c, _contracts, coin, quote, confirm, *_ in data:
        price = decimal(o), decimal(h), decimal(low), decimal(c)
        bar = Candle(VENUE, symbol, interval_ms, int(ts), *price, decimal(coin), _opt(quote))
        out.append((bar, confirm != "0"))
    return out


def parse_funding_rate(data: list[Any]) -> dict[str, MarketSnapshot]:
    """instId -> funding part: the running rate, interval = nextFundingTime - fundingTime (h),
    next settlement = fundingTime."""
    out = {}
    for row in data:
        this, after = int(row["fundingTime"]), row.get("nextFundingTime")
        hours = (int(after) - this) / HOUR_MS if after else None
        out[row["instId"]] = MarketSnapshot(
            VENUE, canonical(row["instId"]), int(row.get("ts") or 0),
            funding_rate=decimal(row["fundingRate"]), funding_interval_h=hours,
            next_funding_ms=this)  # fmt: skip
    return out


def parse_funding_history(data: list[Any]) -> list[tuple[int, float]]:
    """(settlement ms, rate) pairs; `realizedRate` (what was charged) where OKX sends it."""
    return [
        (int(row["fundingTime"]), decimal(row.get("realizedRate") or row["fundingRate"]))
        for row in data
    ]


def funding_samples(
    symbol: str, settled: Mapping[int, float], start_ms: int, end_ms: int
) -> list[FundingSample]:
    """Settlements in [start, end], oldest first. OKX's history has no interval field, so each
    interval is the gap from the previous settlement (`settled` may reach further back for
    that); the oldest known one takes the gap to its successor, a lone one 8 h."""
    times = sorted(settled)
    gaps = [(b - a) / HOUR_MS for a, b in itertools.pairwise(times)]
    hours = [gaps[0], *gaps] if gaps else [8.0] * len(times)
    return [
        FundingSample(VENUE, symbol, t, settled[t], h)
        for t, h in zip(times, hours, strict=True)
        if start_ms <= t <= end_ms
    ]


def parse_premium_history(data: list[Any]) -> list[tuple[int, float]]:
    """(sample ms, premium as a fraction) pairs, as sent (newest first)."""
    return [(int(row["ts"]), decimal(row["premium"])) for row in data]


def premium_bars(
    symbol: str, samples: Mapping[int, float], interval_ms: int, start_ms: int, end_ms: int
) -> list[PremiumBar]:
    """OHLC bars of premium samples, oldest first. A sample at `t` is the premium at that
    instant and belongs to the bar whose close it is at or before (open < t <= close), as OI
    snapshots do; bars opening in [start, end] that hold a sample."""
    groups: dict[int, list[float]] = {}
    for t in sorted(samples):
        bar = first_open(t - interval_ms, interval_ms)  # the bar with open < t <= close
        if start_ms <= bar <= end_ms:
            groups.setdefault(bar, []).append(samples[t])
    return [
        PremiumBar(VENUE, symbol, interval_ms, bar, v[0], max(v), min(v), v[-1])
        for bar, v in sorted(groups.items())
    ]


def parse_tickers(data: list[Any]) -> dict[str, MarketSnapshot]:
    """instId -> last price and 24 h quote volume ~ volCcy24h (coin) x last (no USDT field)."""
    out = {}
    for row in data:
        last, coin = _opt(row.get("last")), _opt(row.get("volCcy24h"))  # "" before a trade
        quote = coin * last if coin is not None and last is not None else None
        ts = int(row.get("ts") or 0)
        out[row["instId"]] = MarketSnapshot(VENUE, canonical(row["instId"]), ts, last_price=last,
                                            quote_volume_24h=quote)  # fmt: skip
    return out


def parse_mark_price(data: list[Any]) -> dict[str, MarketSnapshot]:
    """instId -> mark price (`markPx`)."""
    out = {}
    for row in data:
        mark, ts = _opt(row.get("markPx")), int(row.get("ts") or 0)
        out[row["instId"]] = MarketSnapshot(VENUE, canonical(row["instId"]), ts, mark_price=mark)
    return out


def merge_snapshot(parts: Sequence[MarketSnapshot]) -> MarketSnapshot:
    """One symbol's parts from the bulk answers; each field from the first part that has it."""
    merged: dict[str, Any] = {
        f.name: next((v for p in parts if (v := getattr(p, f.name)) is not None), None)
        for f in fields(MarketSnapshot)
    }
    return MarketSnapshot(**merged)


def first_open(t_ms: int, step_ms: int) -> int:
    """The first bar open at or after `t_ms` on the UTC grid (weeks open on Monday)."""
    offset = 4 * DAY_MS if step_ms == WEEK_MS else 0  # 1970-01-01 was a Thursday
    return -(-(t_ms - offset) // step_ms) * step_ms + offset


def _older(cursor: int, stamps: Iterable[int]) -> int:
    """The next "older than" cursor: the oldest row of the page, which must move it."""
    oldest = min(stamps)
    if oldest >= cursor:
        raise VenueProtocolError(VENUE, f"a page at or after its own cursor {cursor}")
    return oldest


def _parse(parser: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """A parser's result; a payload it cannot read means OKX changed it: never retried."""
    try:
        return parser(*args, **kwargs)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        what = f"{parser.__name__}: {type(exc).__name__} {exc}"
        raise VenueProtocolError(VENUE, f"unreadable payload, {what}") from None


def _name(table: Mapping[int, str], ms: int, what: str) -> str:
    name = table.get(ms)
    if name is None:
        known = ", ".join(interval_name(k) for k in table)
        raise UserError(f"okx has no {interval_name(ms)} {what}: use one of {known}")
    return name


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
                listings = _parse(parse_instruments, rows)
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
        parts = (_parse(parse_open_interest, oi, ct_val), _parse(price_parser, price),
                 _parse(parse_funding_rate, funding))  # fmt: skip
        found = ([p[i] for p in parts if i in p] for i in ids)
        return [merge_snapshot(one) for one in found if one]

    async def oi_history(
        self, symbol: str, period_ms: int, start_ms: int, end_ms: int
    ) -> list[OISample]:
        """OKX keeps only the latest 1,440 rows per period: older parts come back missing."""
        period = _name(OI_PERIODS, period_ms, "OI period")
        listing = await self._listing(symbol)
        inst_id, lowest = listing.instrument.venue_symbol, first_open(start_ms, period_ms)
        found: dict[int, OISample] = {}
        cursor = end_ms + 1  # `begin` and `end` are both exclusive
        while cursor > lowest:
            data = await self._get(OI_HISTORY, True, instId=inst_id, period=period,
                                   begin=start_ms - 1, end=cursor, limit=OI_PAGE)  # fmt: skip
            rows = _parse(parse_oi_history, data, symbol)
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
        bar = _name(BARS, interval_ms, "candles")
        listing = await self._listing(symbol)
        inst_id = listing.instrument.venue_symbol
        lowest = first_open(max(start_ms, listing.list_ms - interval_ms + 1), interval_ms)
        found: dict[int, tuple[Candle, bool]] = {}
        route, cursor = CANDLES, end_ms + 1
        while cursor > lowest:
            data = await self._get(route, route is HISTORY_CANDLES, instId=inst_id, bar=bar,
                                   after=cursor, before=start_ms - 1,
                                   limit=CANDLE_PAGE)  # fmt: skip
            page = _parse(parse_candles, data, symbol, interval_ms)
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
            rows = _parse(parse_funding_history, data)
            settled.update((t, r) for t, r in rows if lower <= t <= end_ms)
            if len(rows) < FUNDING_PAGE:
                break
            cursor = _older(cursor, (t for t, _ in rows))
        return funding_samples(symbol, settled, start_ms, end_ms)

    async def premium_history(
        self, symbol: str, interval_ms: int, start_ms: int, end_ms: int
    ) -> list[PremiumBar]:
        """Bars built from premium samples (`premium-history` keeps six months); pages back
        with `after` ("older than") from the end of the last bar."""
        _name(PREMIUM_INTERVALS, interval_ms, "premium bars")
        inst_id = (await self._listing(symbol)).instrument.venue_symbol
        lower, upper = start_ms, end_ms + interval_ms  # samples in (start, end + bar]
        samples: dict[int, float] = {}
        cursor = upper + 1
        while cursor > lower + 1:
            data = await self._get(PREMIUM_HISTORY, True, instId=inst_id, after=cursor,
                                   before=lower, limit=PREMIUM_PAGE)  # fmt: skip
            rows = _parse(parse_premium_history, data)
            samples.update((t, p) for t, p in rows if lower < t <= upper)
            if len(rows) < PREMIUM_PAGE:
                break
            cursor = _older(cursor, (t for t, _ in rows))
        return premium_bars(symbol, samples, interval_ms, start_ms, end_ms)
