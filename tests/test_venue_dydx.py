"""The dYdX v4 indexer connector: parsers on the recorded replies (exchange-apis.md §13), then
the client against the simulator over real sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from oiradar.errors import RateLimited, UnknownSymbol, UserError, VenueProtocolError
from oiradar.records import Candle, Instrument, MarketSnapshot, OISample, Side
from oiradar.sim.faults import Fault
from oiradar.sim.market import bars, funding_history, oi_at
from oiradar.sim.server import SimServer
from oiradar.sim.venues.dydx.data import markets
from oiradar.venues.dydx.rest import DydxClient, check_response
from oiradar.venues.dydx.wire import (
    PageTooLarge,
    check_payload,
    iso_ms,
    ms_iso,
    parse_candles,
    parse_funding,
    parse_liquidations,
    parse_market,
    parse_markets,
)
from tests.simkit import MINUTE, faults_change_nothing, get, running

HOUR, DAY, FIVE = 60 * MINUTE, 24 * 60 * MINUTE, 5 * MINUTE
# Real replies recorded by ccxt (2025-07-29) and v4-chain's documentation (testnet push).
MARKET = {
    "clobPairId": "0", "ticker": "BTC-USD", "status": "ACTIVE", "oraclePrice": "118700.5426",
    "priceChange24H": "-790.15561", "volume24H": "563041.3490", "trades24H": 195,
    "nextFundingRate": "0.00016451111111111111", "initialMarginFraction": "0.02",
    "maintenanceMarginFraction": "0.012", "openInterest": "59.0763", "atomicResolution": -10,
    "quantumConversionExponent": -9, "tickSize": "1", "stepSize": "0.0001",
    "stepBaseQuantums": 1000000, "subticksPerTick": 100000, "marketType": "CROSS",
    "openInterestLowerCap": "0", "openInterestUpperCap": "0", "baseOpenInterest": "50.3776",
    "defaultFundingRate1H": "0",
}  # fmt: skip
CANDLE = {
    "startedAt": "2025-07-29T05:46:00.000Z", "ticker": "BTC-USD", "resolution": "1MIN",
    "low": "118810", "high": "118810", "open": "118810", "close": "118810",
    "baseTokenVolume": "0", "usdVolume": "0", "trades": 0, "startingOpenInterest": "59.0763",
    "orderbookMidPriceOpen": "118930.25", "orderbookMidPriceClose": "118930.25",
}  # fmt: skip
FUNDING = {"ticker": "BTC-USD", "rate": "0.000176", "price": "118536.67532",
           "effectiveAtHeight": "45103017", "effectiveAt": "2025-07-29T05:00:01.053Z"}  # fmt: skip
TRADES = [
    {"id": "8ee6d90d-272d-5edd-bf0f-2e4d6ae3d3b7", "size": "0.000100431", "price": "27839",
     "side": "BUY", "createdAt": "2023-04-04T00:29:19.353Z", "type": "LIQUIDATED"},
    {"id": "064dd4bd0000000200000002", "side": "SELL", "size": "5", "price": "99.92",
     "type": "LIQUIDATED", "createdAt": "2026-09-17T05:00:57.925Z",
     "createdAtHeight": "105764029"},
    {"id": "02b03aba000000020000000e", "side": "BUY", "size": "0.0001", "price": "118810",
     "type": "LIMIT", "createdAt": "2025-07-29T05:16:49.920Z", "createdAtHeight": "45103802"},
    {"side": "SELL", "size": "1", "price": "10", "createdAt": "2023-04-04T00:28:56.226Z",
     "liquidation": True},
]  # fmt: skip


def test_markets_in_base_units_with_the_oracle_as_mark() -> None:
    payload = {"markets": {"BTC-USD": MARKET, "OLD-USD": MARKET | {"status": "FINAL_SETTLEMENT"}}}
    assert parse_markets(payload) == [
        Instrument("dydx", "BTCUSDT", "BTC-USD", "BTC", "USDC", 1.0, funding_interval_h=1.0)
    ]
    snap = parse_market(MARKET, iso_ms("2025-07-29T05:46:30.000Z"))
    assert snap == MarketSnapshot(
        "dydx", "BTCUSDT", 1753767990000, mark_price=118700.5426, oi_base=59.0763,
        oi_usd=pytest.approx(59.0763 * 118700.5426),  # type: ignore[arg-type]
        funding_rate=0.00016451111111111111, funding_interval_h=1.0,
        next_funding_ms=1753768800000, quote_volume_24h=563041.349,
    )  # fmt: skip
    assert snap.last_price is None  # markets carry no last trade: absent, not invented


def test_candles_carry_the_oi_at_their_open_and_funding_is_hourly() -> None:
    [(bar, oi)] = parse_candles({"candles": [CANDLE]}, "BTCUSDT", MINUTE)
    assert bar == Candle("dydx", "BTCUSDT", MINUTE, 1753767960000, 118810.0, 118810.0,
                         118810.0, 118810.0, 0.0, 0.0, trades=0)  # fmt: skip
    assert oi == OISample("dydx", "BTCUSDT", 1753767960000, 59.0763)
    assert parse_funding({"historicalFunding": [FUNDING]}) == {1753765201053: 0.000176}
    assert ms_iso(1753765201053) == "2025-07-29T05:00:01.053Z"


def test_liquidated_fills_are_the_taker_so_a_sell_was_a_long() -> None:
    found = parse_liquidations(TRADES, "BTCUSDT")
    assert [(key[:8], liq.position_side) for key, liq in found] == [
        ("8ee6d90d", Side.SHORT), ("064dd4bd", Side.LONG), ("2023-04-", Side.LONG),
    ]  # fmt: skip
    liq = found[1][1]
    assert (liq.ts_ms, liq.qty_base, liq.price, liq.usd) == (1789621257925, 5.0, 99.92, 499.6)


def test_errors_map_to_what_the_caller_should_do() -> None:
    refused = check_payload({"errors": [{"value": "1000", "param": "limit", "location": "query",
                                        "msg": "limit must be a positive integer that is not "
                                               "greater than max: 100"}]})  # fmt: skip
    assert isinstance(refused, PageTooLarge) and refused.limit == 100
    bad = check_payload({"errors": [{"msg": "ticker must be a valid ticker (BTC-USD, etc)"}]})
    assert isinstance(bad, UnknownSymbol)
    other = check_payload({"errors": [{"msg": "resolution must be a valid Candle Resolution"}]})
    assert type(other) is VenueProtocolError and check_payload({"markets": {}}) is None
    limited = check_response(429, {"Retry-After": "2500"}, b"")
    assert isinstance(limited, RateLimited) and limited.retry_after_s == 2.5  # milliseconds


# -- against the simulator -------------------------------------------------------------------


@asynccontextmanager
async def _client(**kw: Any) -> AsyncIterator[tuple[SimServer, aiohttp.ClientSession, DydxClient]]:
    async with running(venues=("dydx",), **kw) as (sim, http):
        client = DydxClient(sim.url, session=http, limit_scale=sim.cfg.limit_scale)
        try:
            yield sim, http, client
        finally:
            await client.close()


async def test_snapshot_one_call_and_oi_history_from_candles() -> None:
    async with _client(extra={"dydx_api_limit": 100}) as (sim, _, c):
        now, sd = sim.ctx.now_ms(), sim.ctx.market.get("SOLUSDT")
        step_dp = markets(sim.ctx)["SOL-USD"].step_dp
        snaps = {s.symbol: s for s in await c.snapshot()}
        assert set(snaps) == set(sim.ctx.market.symbols) and snaps["SOLUSDT"].ts_ms == now
        assert snaps["SOLUSDT"].oi_base == round(0.03 * oi_at(sd, now), step_dp)
        got = await c.oi_history("SOLUSDT", FIVE, now - 2 * DAY, now)
        assert len(got) == 576 and c.page_limit == 100  # learned from the refusal of 1,000
        assert all(s.oi_base == round(0.03 * oi_at(sd, s.ts_ms), step_dp) for s in got)
        k = await c.klines("SOLUSDT", FIVE, now - 2 * DAY, now)
        truth = bars(sd, FIVE, now - 2 * DAY, now, now)
        assert [x.ts_ms for x in k] == [int(t) for t in truth.ts] == [s.ts_ms for s in got]
        with pytest.raises(UserError, match="no 2m candles"):
            await c.klines("SOLUSDT", 2 * MINUTE, now - DAY, now)
        with pytest.raises(UnknownSymbol):
            await c.oi_history("NOPEUSDT", FIVE, now - DAY, now)


async def test_funding_history_is_hourly_and_pages_back() -> None:
    async with _client(history_days=30, extra={"dydx_api_limit": 100}) as (sim, _, c):
        now, sd = sim.ctx.now_ms(), sim.ctx.market.get("ETHUSDT")
        got = await c.funding_history("ETHUSDT", now - 20 * DAY, now)
        assert len(got) == 480 and {f.interval_h for f in got} == {1.0}
        by_ts = {f.ts_ms: f.rate for f in got}
        for t, rate in funding_history(sd, now - 20 * DAY, now, now):
            assert by_ts[t] == pytest.approx(rate / sd.funding_interval_h, abs=1e-11)


async def _everything(sim: SimServer, c: DydxClient) -> list[Any]:
    now = sim.ctx.now_ms()
    out: list[Any] = [await c.instruments(), await c.snapshot()]
    for symbol in ("BTCUSDT", "DOGEUSDT"):
        out.append(await c.klines(symbol, MINUTE, now - DAY, now))
        out.append(await c.oi_history(symbol, FIVE, now - 2 * DAY, now))
        out.append(await c.funding_history(symbol, now - 5 * DAY, now))
    return out


@pytest.mark.parametrize("kinds", [tuple(Fault), (Fault.EMPTY,)], ids=["all-faults", "empty"])
async def test_faults_change_nothing_in_the_output(kinds: tuple[Fault, ...]) -> None:
    kw: dict[str, Any] = {"seed": 4, "limit_scale": 20.0, "extra": {"dydx_api_limit": 100}}
    await faults_change_nothing(_client, _everything, "dydx", kinds, fault_rate=0.2, at_least=5,
                                **kw)  # fmt: skip


async def test_a_burst_waits_inside_100_per_10s() -> None:
    async with _client(limit_scale=5.0) as (sim, http, c):  # 10 s windows last 2 s
        await c.instruments()
        done = await asyncio.gather(*(c.snapshot(["BTCUSDT"]) for _ in range(150)))
        assert all(s[0].symbol == "BTCUSDT" for s in done)
        _, stats = await get(http, sim, "/_sim/stats")
        assert stats["venues"]["dydx"]["rejected_429"] == 0 and c.limiter.waited_s > 0


async def test_a_429_waits_its_retry_after_in_milliseconds() -> None:
    async with _client(limit_scale=5.0) as (sim, http, c):  # 2 s windows
        await c.instruments()
        status, wait_ms = 200, None
        for _ in range(500):  # someone else on our IP spends the window (until it is spent:
            async with http.get(sim.url + "/v4/perpetualMarkets") as r:  # a busy host is slow)
                status, wait_ms = r.status, r.headers.get("Retry-After")
            if status == 429:
                break
        assert status == 429 and wait_ms is not None and int(wait_ms) <= 2000
        started = time.monotonic()
        assert [s.symbol for s in await c.snapshot(["BTCUSDT"])] == ["BTCUSDT"]
        assert time.monotonic() - started < 5.0  # read as seconds it would be half an hour
        assert c.http.stats.failures == {"RateLimited": 1}
