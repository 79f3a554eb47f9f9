"""The Bitget connector: parsers on documented payloads, then the client against the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from oiradar.errors import (
    RateLimited,
    UnknownSymbol,
    UserError,
    VenueProtocolError,
    VenueUnavailable,
)
from oiradar.records import Candle, FundingSample, Instrument, MarketSnapshot
from oiradar.sim.context import price_decimals, qty_decimals
from oiradar.sim.faults import Fault
from oiradar.sim.market import SymbolData, bars, funding_history, funding_now, last_price, oi_at
from oiradar.sim.server import SimServer
from oiradar.venues.bitget.rest import BitgetClient
from oiradar.venues.bitget.wire import (
    check_payload,
    parse_candles,
    parse_contracts,
    parse_funding,
    parse_tickers,
)
from tests.simkit import MINUTE, get, running

HOUR, DAY = 60 * MINUTE, 24 * 60 * MINUTE

# exchange-apis.md §4.4: the `ticker` push example (ccxt:pro/bitget.py handle_ticker).
WS_TICKER = {
    "instId": "BTCUSDT", "lastPr": "43480.4", "markPrice": "43476.4", "indexPrice": "43478.4",
    "fundingRate": "0.000096", "nextFundingTime": "1701849600000", "holdingAmount": "50670.787",
    "baseVolume": "120187.104", "quoteVolume": "5167385048.693", "ts": "1701843962811",
}  # fmt: skip
# The response examples of the Bitget doc pages §4 cites (coincise docs/bitget/endpoints/...).
CONTRACT = {
    "symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "buyLimitPriceRatio": "0.9",
    "sellLimitPriceRatio": "0.9", "feeRateUpRatio": "0.1", "makerFeeRate": "0.0004",
    "takerFeeRate": "0.0006", "openCostUpRatio": "0.1", "supportMarginCoins": ["USDT"],
    "minTradeNum": "0.01", "priceEndStep": "1", "volumePlace": "2", "pricePlace": "1",
    "sizeMultiplier": "0.01", "symbolType": "perpetual", "minTradeUSDT": "5",
    "maxSymbolOrderNum": "999999", "maxProductOrderNum": "999999", "maxPositionNum": "150",
    "symbolStatus": "normal", "offTime": "-1", "limitOpenTime": "-1", "deliveryTime": "",
    "deliveryStartTime": "", "launchTime": "", "fundInterval": "8", "minLever": "1",
    "maxLever": "125", "posLimit": "0.05", "maintainTime": "1680165535278",
    "maxMarketOrderQty": "220", "maxOrderQty": "1200", "isRwa": "YES",
}  # fmt: skip
TICKER = {
    "symbol": "BTCUSD", "lastPr": "29904.5", "askPr": "29904.5", "bidPr": "29903.5",
    "bidSz": "0.5091", "askSz": "2.2694", "high24h": "0", "low24h": "0", "ts": "1695794271400",
    "change24h": "0", "baseVolume": "0", "quoteVolume": "0", "usdtVolume": "0", "openUtc": "0",
    "changeUtc24h": "0", "indexPrice": "29132.353333", "fundingRate": "-0.0007",
    "holdingAmount": "125.6844", "deliveryStartTime": None, "deliveryTime": None,
    "deliveryStatus": "delivery_normal", "open24h": "0", "markPrice": "12345",
}  # fmt: skip
CANDLES = [
    ["1695835800000", "26210.5", "26210.5", "26194.5", "26194.5", "26.26", "687897.63"],
    ["1695836100000", "26194.5", "26194.5", "26171", "26171", "17.98", "470618.72"],
]
FUNDING = [
    {"symbol": "BTCUSDT", "fundingRate": "0.0005", "fundingTime": "1695776400000"},
    {"symbol": "BTCUSDT", "fundingRate": "0.000013", "fundingTime": "1695715200000"},
]


# -- parsers ---------------------------------------------------------------------------------


def test_contracts_keep_live_usdt_perpetuals_in_coin_units() -> None:
    delivery = CONTRACT | {"symbol": "BTCUSDT_250328", "symbolType": "delivery"}
    rows = [CONTRACT, delivery, CONTRACT | {"symbol": "XUSDT", "symbolStatus": "maintain"}]
    assert parse_contracts(rows) == [
        Instrument("bitget", "BTCUSDT", "BTCUSDT", "BTC", "USDT", 1.0, funding_interval_h=8.0)
    ]
    with pytest.raises(VenueProtocolError, match="contracts"):
        parse_contracts([{"symbol": "BTCUSDT"}])


def test_tickers_rest_row_and_ws_push() -> None:
    [rest] = parse_tickers([TICKER], {"BTCUSD": 8.0})
    assert rest == MarketSnapshot(
        "bitget", "BTCUSD", 1695794271400, last_price=29904.5, mark_price=12345.0,
        oi_base=125.6844, oi_usd=125.6844 * 12345.0, funding_rate=-0.0007,
        funding_interval_h=8.0, next_funding_ms=None, quote_volume_24h=0.0,
    )  # fmt: skip
    [push] = parse_tickers([WS_TICKER], {})
    assert push == MarketSnapshot(
        "bitget", "BTCUSDT", 1701843962811, last_price=43480.4, mark_price=43476.4,
        oi_base=50670.787, oi_usd=50670.787 * 43476.4, funding_rate=0.000096,
        funding_interval_h=None, next_funding_ms=1701849600000, quote_volume_24h=5167385048.693,
    )  # fmt: skip
    with pytest.raises(VenueProtocolError, match="tickers"):
        parse_tickers([TICKER | {"ts": "soon"}], {})


def test_candles_accept_seven_or_more_fields() -> None:
    got = parse_candles([*CANDLES, [*CANDLES[1], "470618.72"]], "BTCUSDT", 5 * MINUTE)
    assert got[0] == Candle(
        "bitget", "BTCUSDT", 5 * MINUTE, 1695835800000,
        26210.5, 26210.5, 26194.5, 26194.5, 26.26, 687897.63,
    )  # fmt: skip
    assert got[1] == got[2] and got[1].low == 26171.0 and got[1].volume_quote == 470618.72
    with pytest.raises(VenueProtocolError, match="6 fields"):
        parse_candles([CANDLES[0][:6]], "BTCUSDT", 5 * MINUTE)
    with pytest.raises(VenueProtocolError, match="expected a list"):
        parse_candles({"rows": CANDLES}, "BTCUSDT", 5 * MINUTE)


def test_funding_rows() -> None:
    assert parse_funding(FUNDING, "BTCUSDT", 8.0) == [
        FundingSample("bitget", "BTCUSDT", 1695776400000, 0.0005, 8.0),
        FundingSample("bitget", "BTCUSDT", 1695715200000, 0.000013, 8.0),
    ]


def test_envelope_codes_map_to_what_the_caller_should_do() -> None:
    ok = {"code": "00000", "msg": "success", "requestTime": 1695794269124, "data": []}
    assert check_payload(ok) is None
    for code in ("40034", "40102"):
        err = check_payload({"code": code, "msg": "Parameter symbol does not exist"})
        assert isinstance(err, UnknownSymbol) and code in str(err)
    limited = check_payload({"code": "429", "msg": "Too many requests", "data": None})
    assert isinstance(limited, RateLimited) and limited.retry_after_s == 1.0
    assert isinstance(check_payload({"code": "45001", "msg": "Unknown error"}), VenueUnavailable)
    bad = check_payload({"code": "40017", "msg": "Parameter verification failed"})
    assert type(bad) is VenueProtocolError and "Parameter verification failed" in str(bad)
    assert type(check_payload([1, 2])) is VenueProtocolError


# -- against the simulator -----------------------------------------------------------------


Span = tuple[int, int]
Session = tuple[SimServer, aiohttp.ClientSession, BitgetClient]


@asynccontextmanager
async def _client(**sim: Any) -> AsyncIterator[Session]:
    """A Bitget-only simulator (frozen clock) and a client on its endpoint."""
    async with running(venues=("bitget",), **sim) as (server, http):
        client = BitgetClient(server.url, session=http)
        scale = server.cfg.limit_scale  # the simulator's windows shrink by it: so do ours
        budgets = client.limiter.budgets
        client.limiter.budgets = {
            k: replace(b, period_s=b.period_s / scale) for k, b in budgets.items()
        }
        try:
            yield server, http, client
        finally:
            await client.close()


def _near(got: float | None, want: float, decimals: int) -> bool:
    """`want` as the venue prints it: rounded to `decimals` places."""
    return got is not None and abs(got - want) <= 0.5 * 10.0**-decimals + 1e-9 * abs(want)


def _assert_bars(got: list[Candle], sim: SimServer, sd: SymbolData, step: int, span: Span) -> None:
    """`got` are the market's bars opening in `span` as of now, as Bitget prints them."""
    truth = bars(sd, step, *span, sim.ctx.now_ms())
    assert [c.ts_ms for c in got] == [int(t) for t in truth.ts]
    pd, qd = price_decimals(sd), qty_decimals(sd)
    for k, c in enumerate(got):
        prices = (c.open, c.high, c.low, c.close)
        want = (truth.open[k], truth.high[k], truth.low[k], truth.close[k])
        assert all(_near(g, float(w), pd) for g, w in zip(prices, want, strict=True)), c
        assert _near(c.volume_base, float(truth.volume[k]), qd), c
        assert _near(c.volume_quote, float(truth.quote_volume[k]), 4), c
        assert (c.symbol, c.interval_ms) == (sd.symbol, step)


async def test_instruments_and_the_one_call_snapshot() -> None:
    async with _client() as (sim, http, c):
        now, market = sim.ctx.now_ms(), sim.ctx.market
        instruments = await c.instruments()
        assert [i.symbol for i in instruments] == market.symbols
        for i in instruments:
            sd = market.get(i.symbol)
            assert (i.venue_symbol, i.base, i.quote) == (sd.symbol, sd.base, "USDT")
            assert (i.contract_size, i.funding_interval_h) == (1.0, sd.funding_interval_h)
        async with http.post(sim.url + "/_sim/stats/reset") as r:
            assert r.status == 200
        snaps = await c.snapshot()
        _, stats = await get(http, sim, "/_sim/stats")
        assert stats["venues"]["bitget"]["requests"] == 1  # tickers; contracts were cached
        assert [s.symbol for s in snaps] == market.symbols
        for s in snaps:
            sd = market.get(s.symbol)
            assert s.ts_ms == now and s.next_funding_ms is None
            assert _near(s.oi_base, 0.10 * oi_at(sd, now), qty_decimals(sd))
            assert s.oi_usd == pytest.approx(s.oi_base * s.mark_price, rel=1e-12)  # type: ignore[operator]
            assert _near(s.mark_price, last_price(sd, now), price_decimals(sd))
            assert s.last_price == s.mark_price
            assert _near(s.funding_rate, funding_now(sd, now)[0], 6)
            assert s.funding_interval_h == sd.funding_interval_h
            assert s.quote_volume_24h is not None and s.quote_volume_24h > 0
        some = await c.snapshot(["ETHUSDT", "NOPEUSDT", "BTCUSDT", "NOPEUSDT"])
        assert [s.symbol for s in some] == ["ETHUSDT", "BTCUSDT"]
        assert c.unknown == ["NOPEUSDT"]
        assert await c.oi_history("BTCUSDT", 5 * MINUTE, now - DAY, now) == []


async def test_klines_two_days_at_1m_and_5m_are_complete() -> None:
    async with _client() as (sim, _, c):
        now, sd = sim.ctx.now_ms(), sim.ctx.market.get("SOLUSDT")
        sizes = []
        for step in (MINUTE, 5 * MINUTE):
            got = await c.klines("SOLUSDT", step, now - 2 * DAY, now)
            _assert_bars(got, sim, sd, step, (now - 2 * DAY, now))
            assert got[-1].ts_ms == now - now % step  # the forming bar is kept
            sizes.append(len(got))
        assert sizes == [2 * 1440 + 1, 2 * 288]  # now is 20:26: no 5m bar opens at now - 2 days
        # A range that starts before the listing ends at the first bar, without error.
        first = sd.first_ms
        early = await c.klines("SOLUSDT", HOUR, first - 3 * DAY, first + 2 * DAY)
        _assert_bars(early, sim, sd, HOUR, (first - 3 * DAY, first + 2 * DAY))
        assert c.empty_retries == 0  # the window before the listing was believed empty at once
        with pytest.raises(UserError, match="no 2m bars"):
            await c.klines("SOLUSDT", 2 * MINUTE, now - DAY, now)


async def test_klines_over_40_days_reach_into_history_candles() -> None:
    async with _client(history_days=45) as (sim, _, c):
        paths: list[str] = []
        plain_get = c.http.get

        async def spy(path: str, params: Any, charges: Any) -> Any:
            paths.append(path.rsplit("/", 1)[-1])
            return await plain_get(path, params, charges)

        c.http.get = spy  # type: ignore[method-assign]
        now, sd = sim.ctx.now_ms(), sim.ctx.market.get("BTCUSDT")
        got = await c.klines("BTCUSDT", HOUR, now - 40 * DAY, now)
        _assert_bars(got, sim, sd, HOUR, (now - 40 * DAY, now))
        assert len(got) == 40 * 24
        # One `candles` page for the last 27 days, then 200-bar pages of closed bars.
        assert paths == ["funding-time", "candles", "history-candles", "history-candles"]


async def test_funding_history_pages_until_the_start() -> None:
    async with _client(history_days=45) as (sim, _, c):
        now, sd = sim.ctx.now_ms(), sim.ctx.market.get("XRPUSDT")
        got = await c.funding_history("XRPUSDT", 0, now)
        truth = funding_history(sd, 0, now, now)
        assert len(truth) > 100  # more than one page of 100
        assert [f.ts_ms for f in got] == [t for t, _ in truth]
        assert all(_near(f.rate, r, 6) for f, (_, r) in zip(got, truth, strict=True))
        assert {f.interval_h for f in got} == {sd.funding_interval_h}
        middle = await c.funding_history("XRPUSDT", now - 10 * DAY, now - 2 * DAY)
        assert middle == [f for f in got if now - 10 * DAY <= f.ts_ms <= now - 2 * DAY]


async def test_unknown_symbols_raise_unknown_symbol() -> None:
    async with _client() as (sim, _, c):
        now = sim.ctx.now_ms()
        with pytest.raises(UnknownSymbol, match="NOPEUSDT is not listed"):
            await c.klines("NOPEUSDT", MINUTE, now - HOUR, now)
        with pytest.raises(UnknownSymbol, match="40034"):
            await c.funding_history("NOPEUSDT", now - DAY, now)


# -- faults and limits ---------------------------------------------------------------------


async def _everything(sim: SimServer, c: BitgetClient) -> list[Any]:
    """Every method, sequentially (so a seeded fault sequence hits the same requests)."""
    now = sim.ctx.now_ms()
    out: list[Any] = [await c.instruments(), await c.snapshot()]
    for sym in sim.ctx.market.symbols:
        out.append(await c.klines(sym, MINUTE, now - 2 * DAY, now))
        out.append(await c.klines(sym, 5 * MINUTE, now - 2 * DAY, now))
        out.append(await c.klines(sym, HOUR, now - 40 * DAY, now))
        out.append(await c.funding_history(sym, now - 40 * DAY, now))
        out.append(await c.oi_history(sym, 5 * MINUTE, now - DAY, now))
    return out


@pytest.mark.parametrize("kinds", [tuple(Fault), (Fault.EMPTY,)], ids=["all-faults", "empty"])
async def test_faults_change_nothing_in_the_output(kinds: tuple[Fault, ...]) -> None:
    sim_kw: dict[str, Any] = {"seed": 3, "history_days": 45, "limit_scale": 10.0}
    async with _client(**sim_kw) as (sim, _, c):
        clean = await _everything(sim, c)
    async with _client(**sim_kw, fault_rate=0.3, fault_kinds=kinds) as (sim, http, c):
        sim.ctx.faults.slow_s = 0.05
        c.http.backoff_s = 0.005
        assert await _everything(sim, c) == clean
        _, stats = await get(http, sim, "/_sim/stats")
        faults = stats["venues"]["bitget"]["faults"]
        # Every fault costs one retry, but contracts and funding-time ignore empty-list faults.
        assert 10 <= c.http.stats.retries + c.empty_retries <= faults
        if kinds == (Fault.EMPTY,):
            assert c.http.stats.retries == 0


async def test_an_empty_answer_is_believed_after_two_more_tries() -> None:
    async with _client(fault_rate=1.0, fault_kinds=(Fault.EMPTY,)) as (sim, http, c):
        now = sim.ctx.now_ms()
        assert await c.snapshot(["BTCUSDT"]) == []  # contracts are not list-faulted here
        assert c.unknown == ["BTCUSDT"] and c.empty_retries == 2
        assert await c.klines("BTCUSDT", MINUTE, now - HOUR, now) == []
        assert c.empty_retries == 4
        _, stats = await get(http, sim, "/_sim/stats")
        # contracts, 3 x tickers, 3 x candles (the tickers' requestTime gave the venue's clock)
        assert stats["venues"]["bitget"]["requests"] == 7


async def test_many_symbols_at_once_stay_inside_the_limits() -> None:
    # 30 symbols ask `candles` at once: more than its 20 per second (whole-second windows,
    # so the burst fits in one even on a loaded machine).
    async with _client(symbols=30, limit_scale=1.0) as (sim, http, c):
        now = sim.ctx.now_ms()
        symbols = sim.ctx.market.symbols
        results = await asyncio.gather(*(c.klines(s, HOUR, now - 2 * DAY, now) for s in symbols))
        for sym, got in zip(symbols, results, strict=True):
            _assert_bars(got, sim, sim.ctx.market.get(sym), HOUR, (now - 2 * DAY, now))
        _, stats = await get(http, sim, "/_sim/stats")
        assert stats["venues"]["bitget"]["requests"] == 1 + 30  # funding-time, then `candles`
        assert stats["venues"]["bitget"]["rejected_429"] == 0
        assert c.limiter.waited_s > 0


def test_klines_reach_the_newest_bar_when_the_venues_time_runs_faster_than_ours() -> None:
    """The client estimates Bitget's time from its last answer plus our elapsed time. Where
    the venue's time runs faster (the simulator at speed 60, as the soak runs it) the estimate
    fell behind and clamped away the newest bars: a watch's gap fill got none and the bar was
    lost. A range reaching past the estimate asks the venue's time afresh."""

    async def go() -> None:
        async with _client(speed=600.0) as (server, _, client):
            start = server.ctx.now_ms() - HOUR
            await client.klines("BTCUSDT", 5 * MINUTE, start, start + HOUR)  # sets its clock
            await asyncio.sleep(2.5)  # 25 venue minutes: the estimate is now 25 minutes slow
            now = server.ctx.now_ms()
            newest = now // (5 * MINUTE) * (5 * MINUTE) - 5 * MINUTE  # the last closed bar
            got = await client.klines("BTCUSDT", 5 * MINUTE, newest - HOUR, newest)
            assert got and got[-1].ts_ms == newest

    asyncio.run(go())
