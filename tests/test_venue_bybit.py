"""The Bybit v5 linear connector: parsers on the payloads quoted in exchange-apis.md §2, then
the client against the simulator over real sockets (truth = the simulated market x 0.30)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from oiradar.errors import (
    Banned,
    RateLimited,
    UnknownSymbol,
    UserError,
    VenueProtocolError,
    VenueUnavailable,
)
from oiradar.records import Candle, FundingSample, Instrument, MarketSnapshot, OISample
from oiradar.sim.context import VENUE_SHARE, num, price_decimals, qty_decimals
from oiradar.sim.market import bars, funding_history, oi_at, oi_snapshots
from oiradar.sim.server import SimServer
from oiradar.venues.bybit import rest as bybit
from oiradar.venues.bybit.rest import BybitClient, check_response
from oiradar.venues.bybit.wire import (
    OI_FIELDS,
    check_payload,
    parse_funding,
    parse_instrument,
    parse_kline,
    parse_open_interest,
    parse_ticker,
)
from oiradar.venues.limiter import Budget
from tests.simkit import MINUTE, get, running

FIVE, HOUR, DAY = 5 * MINUTE, 60 * MINUTE, 24 * 60 * MINUTE
SHARE = VENUE_SHARE["bybit"]  # 0.30 of the market's OI, one side

# exchange-apis.md §2.1 (REST) and §2.5 (WS ticker snapshot), verbatim.
TICKER = {
    "symbol": "BTCUSDT",
    "lastPrice": "66666.60",
    "markPrice": "66666.60",
    "indexPrice": "66668.1",
    "openInterest": "492373.72",
    "openInterestValue": "32824881841.75",
    "singleOpenInterest": "246186.86",
    "fundingRate": "-0.005",
    "nextFundingTime": "1760342400000",
    "fundingIntervalHour": "8",
    "fundingCap": "0.005",
    "volume24h": "73191.387",
    "turnover24h": "4936790807.65",
}
WS_TICKER = {
    "topic": "tickers.BTCUSDT",
    "type": "snapshot",
    "data": {
        "symbol": "BTCUSDT",
        "lastPrice": "66666.60",
        "markPrice": "66666.60",
        "openInterest": "492373.72",
        "openInterestValue": "32824881841.75",
        "fundingRate": "-0.005",
        "nextFundingTime": "1760342400000",
    },
    "cs": 9532239429,
    "ts": 1760325052630,
}
OI_HISTORY = {
    "retCode": 0,
    "result": {
        "symbol": "ETHUSDT",
        "category": "linear",
        "list": [
            {
                "openInterest": "52664.642",
                "singleOpenInterest": "26332.321",
                "timestamp": "1789458600000",
            }
        ],
        "nextPageCursor": "lastid%3D44487872",
    },
}
KLINE = {
    "result": {
        "symbol": "BTCUSDT",
        "category": "linear",
        "list": [["1670608800000", "17071", "17073", "17027", "17055.5", "268.611", "4581234.5"]],
    }
}
FUNDING = {
    "result": {
        "category": "linear",
        "list": [
            {
                "symbol": "ETHUSDT",
                "fundingRate": "-0.00006352",
                "fundingRateTimestamp": "1789459200000",
            }
        ],
    }
}
# §2.1 names these instrument fields (no example payload is quoted there).
INSTRUMENT = {
    "symbol": "BTCUSDT",
    "contractType": "LinearPerpetual",
    "status": "Trading",
    "baseCoin": "BTC",
    "quoteCoin": "USDT",
    "settleCoin": "USDT",
    "launchTime": "1585526400000",
    "fundingInterval": 480,
}


# -- parsers ---------------------------------------------------------------------------------


def test_ticker_takes_the_single_side_which_the_doc_shows_as_exactly_half() -> None:
    before = OI_FIELDS.copy()
    snap = parse_ticker(TICKER, 1760325052630)
    assert snap == MarketSnapshot(
        venue="bybit",
        symbol="BTCUSDT",
        ts_ms=1760325052630,
        last_price=66666.6,
        mark_price=66666.6,
        oi_base=246186.86,
        oi_usd=32824881841.75 / 2,  # no singleOpenInterestValue in the example: halved
        funding_rate=-0.005,
        funding_interval_h=8.0,
        next_funding_ms=1760342400000,
        quote_volume_24h=4936790807.65,
    )
    assert snap.oi_base == float(TICKER["openInterest"]) / 2
    assert OI_FIELDS - before == {"singleOpenInterest": 1, "openInterestValue/2": 1}


def test_ticker_without_single_side_halves_the_two_sided_figure() -> None:
    before = OI_FIELDS["openInterest/2"]
    snap = parse_ticker(WS_TICKER["data"], WS_TICKER["ts"])  # type: ignore[arg-type]
    assert snap.oi_base == 492373.72 / 2 and snap.oi_usd == 32824881841.75 / 2
    assert (snap.funding_interval_h, snap.quote_volume_24h) == (None, None)
    assert OI_FIELDS["openInterest/2"] == before + 1
    with_value = {**TICKER, "singleOpenInterestValue": "16412440920.87"}
    assert parse_ticker(with_value, 1).oi_usd == 16412440920.87


def test_history_kline_funding_and_instrument_parsers() -> None:
    assert parse_open_interest(OI_HISTORY["result"]) == [  # type: ignore[arg-type]
        OISample("bybit", "ETHUSDT", 1789458600000, 26332.321)
    ]
    no_single = {"symbol": "ETHUSDT", "list": [{"openInterest": "52664.642", "timestamp": "7"}]}
    assert parse_open_interest(no_single)[0].oi_base == 52664.642 / 2
    bar = (1670608800000, 17071, 17073, 17027, 17055.5, 268.611, 4581234.5)
    assert parse_kline(KLINE["result"], HOUR) == [Candle("bybit", "BTCUSDT", HOUR, *bar)]
    two = {"symbol": "X", "list": [["2", *"11111", "1"], ["1", *"22222", "2"]]}
    assert [c.ts_ms for c in parse_kline(two, 1)] == [1, 2]  # newest first in, oldest first out
    assert parse_funding(FUNDING["result"], 8.0) == [
        FundingSample("bybit", "ETHUSDT", 1789459200000, -0.00006352, 8.0)
    ]
    assert parse_instrument(INSTRUMENT) == Instrument(
        "bybit", "BTCUSDT", "BTCUSDT", "BTC", "USDT", 1.0, funding_interval_h=8.0,
        listed_ms=1585526400000,  # launchTime: backfill asks REST for nothing before it
    )  # fmt: skip
    for other in (
        {"symbol": "BTCPERP", "quoteCoin": "USDC"},
        {"symbol": "BTC-26DEC25", "contractType": "LinearFutures"},
        {"symbol": "NEWUSDT", "status": "PreLaunch"},
    ):
        assert parse_instrument({**INSTRUMENT, **other}) is None


def test_malformed_payloads_are_protocol_errors() -> None:
    with pytest.raises(VenueProtocolError, match="parse_ticker"):
        parse_ticker({"symbol": "BTCUSDT", "openInterest": "lots"}, 1)
    with pytest.raises(VenueProtocolError):
        parse_kline({"symbol": "X", "list": [["1", "2"]]}, 1)
    with pytest.raises(VenueProtocolError):
        parse_open_interest({"symbol": "X", "list": [{"openInterest": "n/a", "timestamp": "1"}]})
    with pytest.raises(VenueProtocolError):
        parse_open_interest({"symbol": "X", "list": [{"timestamp": "1"}]})
    bare = parse_ticker({"symbol": "NEWUSDT", "lastPrice": ""}, 1)  # pre-market: no figures yet
    assert (bare.oi_base, bare.oi_usd, bare.last_price) == (None, None, None)


@pytest.mark.parametrize(
    ("code", "msg", "error"),
    [
        (10001, "params error: symbol invalid", UnknownSymbol),
        (10001, "symbol params err", UnknownSymbol),
        (10001, "params error: limit must be in [1, 200]", VenueProtocolError),
        (10006, "Too many visits!", RateLimited),
        (10018, "Exceeded the IP Rate Limit", RateLimited),
        (10429, "System level frequency protection", RateLimited),
        (10016, "Service is restarting", VenueUnavailable),
        (10029, "symbol not in whitelist", VenueProtocolError),
    ],
)
def test_envelope_codes_map_to_what_the_caller_should_do(
    code: int, msg: str, error: type[Exception]
) -> None:
    err = check_payload({"retCode": code, "retMsg": msg, "result": {}, "time": 1})
    assert type(err) is error and msg in str(err)
    assert check_payload({"retCode": 0, "retMsg": "OK", "result": {}, "time": 1}) is None
    assert isinstance(check_payload(["not", "an", "envelope"]), VenueProtocolError)


def test_http_403_is_a_ten_minute_ban() -> None:
    err = check_response(403, {"Content-Type": "text/plain"}, b"access too frequent")
    assert isinstance(err, Banned) and err.seconds == 600
    assert check_response(200, {}, b"{}") is None


# -- against the simulator -------------------------------------------------------------------


async def stats(http: aiohttp.ClientSession, sim: SimServer) -> dict[str, int]:
    """The simulator's own count of what reached Bybit (requests, bans, faults...)."""
    _, body = await get(http, sim, "/_sim/stats")
    return dict(body["venues"].get("bybit", {"requests": 0, "bans": 0, "faults": 0}))


async def test_instruments_follow_the_cursor_and_are_cached() -> None:
    async with running(venues=("bybit",), symbols=40) as (sim, http), BybitClient(sim.url) as c:
        assert isinstance(c, BybitClient)
        c.instruments_page = 15  # 40 symbols -> 3 pages
        got = await c.instruments()
        assert [i.symbol for i in got] == sorted(sim.ctx.market.symbols)
        for i in got:
            sd = sim.ctx.market.get(i.symbol)
            assert (i.base, i.quote, i.contract_size) == (sd.base, "USDT", 1.0)
            assert i.funding_interval_h == sd.funding_interval_h
        assert await c.instruments() == got
        assert (await stats(http, sim))["requests"] == 3


async def test_snapshot_is_one_request_with_one_sided_oi() -> None:
    async with running(venues=("bybit",)) as (sim, http), BybitClient(sim.url) as c:
        now, snaps = sim.ctx.now_ms(), await c.snapshot()
        assert (await stats(http, sim))["requests"] == 1
        assert [s.symbol for s in snaps] == sim.ctx.market.symbols
        for s in snaps:
            sd = sim.ctx.market.get(s.symbol)
            lot = 10.0 ** -qty_decimals(sd)
            assert s.ts_ms == now and s.oi_base is not None and s.mark_price is not None
            assert abs(s.oi_base - SHARE * oi_at(sd, now)) <= lot / 2 + 1e-9  # not 0.60
            assert s.oi_usd == pytest.approx(s.oi_base * s.mark_price, rel=1e-6)
            assert s.funding_interval_h == sd.funding_interval_h
            assert s.next_funding_ms is not None and s.next_funding_ms > now
        some = await c.snapshot(["SOLUSDT", "NOPEUSDT", "BTCUSDT"])
        assert [s.symbol for s in some] == ["SOLUSDT", "BTCUSDT"]
        assert c.unknown == ["NOPEUSDT"] and await c.snapshot([]) == []
        assert (await stats(http, sim))["requests"] == 2


def expected_oi(sim: SimServer, symbol: str, period: int, start: int, end: int) -> list[OISample]:
    sd, now = sim.ctx.market.get(symbol), sim.ctx.now_ms()
    times, oi, _ = oi_snapshots(sd, period, start, end, now)
    qd = qty_decimals(sd)
    return [
        OISample("bybit", symbol, t, float(num(round(o * SHARE, qd), qd)))
        for t, o in zip(times.tolist(), oi.tolist(), strict=True)
    ]


def expected_klines(sim: SimServer, symbol: str, step: int, start: int, end: int) -> list[Candle]:
    sd, now = sim.ctx.market.get(symbol), sim.ctx.now_ms()
    b, pd, qd = bars(sd, step, start, end, now), price_decimals(sd), qty_decimals(sd)
    out = []
    for i in range(len(b.ts)):
        o, h, lo, c = (float(num(float(x[i]), pd)) for x in (b.open, b.high, b.low, b.close))
        v, q = float(num(float(b.volume[i]), qd)), float(num(float(b.quote_volume[i]), 4))
        out.append(Candle("bybit", symbol, step, int(b.ts[i]), o, h, lo, c, v, q))
    return out


async def test_oi_history_two_days_at_5m_is_complete_and_true() -> None:
    async with running(venues=("bybit",)) as (sim, http), BybitClient(sim.url) as c:
        now = sim.ctx.now_ms()
        got = await c.oi_history("XRPUSDT", FIVE, now - 2 * DAY, now)
        assert len(got) == 2 * DAY // FIVE
        assert got == expected_oi(sim, "XRPUSDT", FIVE, now - 2 * DAY, now)
        assert (await stats(http, sim))["requests"] == 3  # 576 rows, 200 a page
        mid = await c.oi_history("XRPUSDT", HOUR, now - DAY - 7, now - 7 * HOUR)
        assert mid == expected_oi(sim, "XRPUSDT", HOUR, now - DAY - 7, now - 7 * HOUR)
        with pytest.raises(UserError):
            await c.oi_history("XRPUSDT", 2 * HOUR, now - DAY, now)


async def test_klines_page_back_and_equal_the_aggregated_truth() -> None:
    async with running(venues=("bybit",)) as (sim, http), BybitClient(sim.url) as c:
        now, start = sim.ctx.now_ms(), sim.ctx.now_ms() - 2 * DAY
        for step in (MINUTE, FIVE, HOUR):
            truth = expected_klines(sim, "SOLUSDT", step, start, now)
            assert await c.klines("SOLUSDT", step, start, now) == truth  # running bar kept
            assert await c.klines("SOLUSDT", step, start, now, forming=False) == truth[:-1]
            assert len(truth) - 2 * DAY // step in (0, 1)  # both ends included when aligned
        assert (await stats(http, sim))["requests"] == 2 * (
            3 + 1 + 1
        )  # 2880 one-minute bars: 3 pages
        old = await c.klines("SOLUSDT", 4 * HOUR, 0, now - 3 * DAY)  # back to the first data
        first = sim.ctx.market.get("SOLUSDT").first_ms
        assert old == expected_klines(sim, "SOLUSDT", 4 * HOUR, first, now - 3 * DAY)


async def test_funding_history_pages_back_across_200_rows() -> None:
    async with (
        running(venues=("bybit",), history_days=40) as (sim, _),
        BybitClient(sim.url) as c,
    ):
        now, sd = sim.ctx.now_ms(), sim.ctx.market.get("ETHUSDT")
        assert sd.funding_interval_h == 4.0
        got = await c.funding_history("ETHUSDT", 0, now)
        truth = funding_history(sd, 0, now, now)
        assert len(truth) > 200 and [f.ts_ms for f in got] == [t for t, _ in truth]
        assert [f.rate for f in got] == [float(f"{r:.8f}") for _, r in truth]
        assert {f.interval_h for f in got} == {4.0}
        part = await c.funding_history("ETHUSDT", now - 3 * DAY, now - DAY)
        assert part == [f for f in got if now - 3 * DAY <= f.ts_ms <= now - DAY]


async def test_unknown_symbol_raises() -> None:
    async with running(venues=("bybit",)) as (sim, _), BybitClient(sim.url) as c:
        now = sim.ctx.now_ms()
        with pytest.raises(UnknownSymbol, match="symbol invalid"):
            await c.oi_history("NOPEUSDT", FIVE, now - DAY, now)
        with pytest.raises(UnknownSymbol):
            await c.klines("NOPEUSDT", FIVE, now - DAY, now)
        with pytest.raises(UnknownSymbol):
            await c.funding_history("NOPEUSDT", now - DAY, now)


async def everything(sim: SimServer, c: BybitClient) -> list[Any]:
    now = sim.ctx.now_ms()
    c.instruments_page = 2  # 5 symbols -> 3 cursor pages
    return [
        await c.instruments(),
        await c.snapshot(),
        await c.oi_history("BTCUSDT", FIVE, now - 7 * DAY, now),  # 11 cursor pages
        await c.oi_history("ETHUSDT", 15 * MINUTE, now - 5 * DAY, now),
        await c.klines("SOLUSDT", MINUTE, now - 7 * DAY, now),  # 11 pages back with `end`
        await c.klines("XRPUSDT", FIVE, now - 2 * DAY, now),
        await c.funding_history("ETHUSDT", 0, now),
    ]


@pytest.mark.parametrize("seed", [3, 11])
async def test_faults_change_nothing_in_the_output(seed: int) -> None:
    async with running(venues=("bybit",), seed=seed) as (sim, http), BybitClient(sim.url) as c:
        clean = await everything(sim, c)
    async with (
        running(venues=("bybit",), seed=seed, fault_rate=0.3) as (sim, http),
        BybitClient(sim.url) as c,
    ):
        sim.ctx.faults.slow_s = 0.05
        c.http.backoff_s = 0.01
        assert await everything(sim, c) == clean
        assert (await stats(http, sim))["faults"] >= 5 and c.http.stats.retries >= 5
        assert c.empty_retries >= 1  # an empty list inside the data was asked again


async def test_empty_list_outside_the_data_is_believed_without_retry() -> None:
    async with running(venues=("bybit",)) as (sim, _), BybitClient(sim.url) as c:
        first = sim.ctx.market.get("BTCUSDT").first_ms
        assert await c.oi_history("BTCUSDT", FIVE, first - 2 * DAY, first - DAY) == []
        assert await c.klines("BTCUSDT", FIVE, first - 2 * DAY, first - DAY) == []
        assert c.empty_retries == 0


async def test_a_burst_over_600_in_5s_waits_instead_of_being_banned() -> None:
    scale = 2.0  # the window becomes 2.5 s (short windows would let scheduling jitter matter)
    async with (
        running(venues=("bybit",), limit_scale=scale) as (sim, http),
        BybitClient(sim.url) as c,
    ):
        c.limiter.budgets["ip"] = Budget(bybit.IP_BUDGET.limit, bybit.IP_BUDGET.period_s / scale)
        done = await asyncio.gather(*(c.snapshot(["BTCUSDT"]) for _ in range(700)))
        assert all(s[0].symbol == "BTCUSDT" for s in done)
        report = await stats(http, sim)
        assert (report["requests"], report["bans"], report["while_banned"]) == (700, 0, 0)
        assert c.limiter.waited_s > 0


async def test_no_request_while_banned() -> None:
    async with running(venues=("bybit",)) as (sim, http), BybitClient(sim.url) as c:
        url = f"{sim.url}/v5/market/instruments-info?category=linear&symbol=BTCUSDT"

        async def one() -> int:
            async with http.get(url) as r:
                return r.status

        for _ in range(30):  # a fixed window may split one burst: burst until the 403
            if 403 in await asyncio.gather(*(one() for _ in range(100))):
                break
        assert (await stats(http, sim))["bans"] == 1
        with pytest.raises(Banned):
            await c.snapshot()
        seen = (await stats(http, sim))["requests"]
        with pytest.raises(Banned, match="not sending"):
            await c.klines("BTCUSDT", FIVE, 0, sim.ctx.now_ms())
        assert (await stats(http, sim))["requests"] == seen
        assert c.limiter.banned_for() > 590
