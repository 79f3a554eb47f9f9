"""The Gate connector: parsers on the documented payloads (exchange-apis.md §10), then the
client against the simulator over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
from oiradar.records import Candle, FundingSample, Instrument, MarketSnapshot, OISample, Side
from oiradar.sim.context import price_decimals
from oiradar.sim.faults import Fault
from oiradar.sim.market import bars, funding_history, last_price, oi_at, oi_snapshots
from oiradar.sim.server import SimServer
from oiradar.sim.venues.gate.data import contract_of
from oiradar.venues.gate.rest import GateClient
from oiradar.venues.gate.wire import (
    check_payload,
    next_settlement,
    parse_candles,
    parse_contracts,
    parse_funding,
    parse_liquidations,
    parse_stats,
    parse_tickers,
)
from tests.simkit import MINUTE, faults_change_nothing, get, running

HOUR, DAY, FIVE = 60 * MINUTE, 24 * 60 * MINUTE, 5 * MINUTE

# exchange-apis.md §10.1-10.4 (ccxt comments, the doc's samples, a recorded reply).
CONTRACT = {
    "name": "0G_USDT", "type": "direct", "quanto_multiplier": "1", "mark_price": "0.2048",
    "index_price": "0.2077", "funding_rate": "-0.003216", "funding_interval": 28800,
    "funding_next_apply": 1784131200, "funding_rate_limit": "0.02", "position_size": 783779,
    "long_users": 191, "short_users": 157, "leverage_max": "50", "in_delisting": False,
    "status": "trading", "is_pre_market": False, "enable_decimal": False, "contract_type": "",
}  # fmt: skip
TICKER = {
    "contract": "BTC_USDT", "last": "6432", "low_24h": "6278", "high_24h": "6790",
    "change_percentage": "4.43", "total_size": "32323904", "volume_24h": "184040233284",
    "volume_24h_base": "28613220", "volume_24h_quote": "184040233284",
    "volume_24h_settle": "28613220", "mark_price": "6534", "funding_rate": "0.0001",
    "funding_rate_indicative": "0.0001", "index_price": "6531", "highest_bid": "34089.7",
    "highest_size": "100", "lowest_ask": "34217.9", "lowest_size": "1000",
}  # fmt: skip
STATS = {
    "time": 1789658100, "lsr_taker": 1.4404641918028818, "lsr_account": 1.5100772844370358,
    "long_liq_size": 0, "short_liq_size": 0, "open_interest": 652621356, "short_liq_usd": 0,
    "mark_price": 76419.9, "top_lsr_size": 0.9902907270822361, "top_long_size": 29649138,
    "top_short_size": 29939832, "short_liq_amount": 0, "long_liq_amount": 0,
    "short_liq_usd_new": 0, "long_liq_usd_new": 0, "open_interest_usd": 4987325876.33844,
    "top_lsr_account": 0.5802469135802469, "top_long_account": 47, "top_short_account": 81,
    "long_liq_usd": 0, "long_taker_size": 1534950, "short_taker_size": 1065594,
    "long_users": 19930, "short_users": 13198, "last_funding_rate": "0.000048",
}  # fmt: skip
# The push before and after the 2026-08-20 change (time_ms / ms `time`, numbers / strings).
WS_OLD = [{"price": 215.1, "size": -124, "time_ms": 1541486601123, "contract": "BTC_USD"}]
WS_NEW = [
    {"price": "215.1", "size": "-124.5", "time": 1541486601123, "contract": "BTC_USDT"},
    {"price": "215.2", "size": "10.5", "time": 1541486601456, "contract": "BTC_USDT"},
]


def test_contracts_keep_live_crypto_perpetuals_with_their_multiplier() -> None:
    stock = CONTRACT | {"name": "NVDA_USDT", "contract_type": "stocks"}
    gone = CONTRACT | {"name": "OLD_USDT", "in_delisting": True}
    [listing] = parse_contracts(
        [CONTRACT, stock, gone, CONTRACT | {"name": "X_USDT", "status": "prelaunch"}]
    )
    assert listing.instrument == Instrument(
        "gate", "0GUSDT", "0G_USDT", "0G", "USDT", 1.0, funding_interval_h=8.0
    )
    assert listing.next_funding_ms == 1784131200_000
    with pytest.raises(VenueProtocolError, match="parse_contracts"):
        parse_contracts([{"name": "A_USDT"}])


def test_tickers_are_contracts_times_the_multiplier() -> None:
    [listing] = parse_contracts([CONTRACT | {"name": "BTC_USDT", "quanto_multiplier": "0.0001"}])
    [snap] = parse_tickers(
        [TICKER, TICKER | {"contract": "ETH_USDT"}], {"BTC_USDT": listing}, 1784130000_000
    ).values()
    assert snap == MarketSnapshot(
        "gate",
        "BTCUSDT",
        1784130000_000,
        last_price=6432.0,
        mark_price=6534.0,
        oi_base=pytest.approx(3232.3904),
        oi_usd=pytest.approx(3232.3904 * 6534),  # type: ignore[arg-type]
        funding_rate=0.0001,
        funding_interval_h=8.0,
        next_funding_ms=1784131200_000,
        quote_volume_24h=184040233284.0,
    )
    # the cached settlement steps on by whole intervals
    assert next_settlement(1784131200_000, 8.0, 1784131200_000) == 1784131200_000 + 8 * HOUR
    assert next_settlement(None, 8.0, 1) is None


def test_candles_funding_and_statistics_rows() -> None:
    rows = [
        {
            "t": 1539852480,
            "v": 97151,
            "c": "1.032",
            "h": "1.032",
            "l": "1.032",
            "o": "1.032",
            "sum": "3580",
        }
    ]
    assert parse_candles(rows, "XUSDT", MINUTE, 10.0) == [
        Candle(
            "gate", "XUSDT", MINUTE, 1539852480_000, 1.032, 1.032, 1.032, 1.032, 971510.0, 3580.0
        )
    ]
    assert parse_funding([{"t": 1543968000, "r": "0.000157"}]) == {1543968000_000: 0.000157}
    [stat] = parse_stats([STATS], "BTCUSDT", FIVE, 0.0001)
    assert stat.oi == OISample(
        "gate",
        "BTCUSDT",
        1789658100_000,
        pytest.approx(65262.1356),  # type: ignore[arg-type]
        652621356.0,
        4987325876.33844,
    )
    # the identity the recorded reply holds: OI USD = contracts x quanto x mark
    assert stat.oi.oi_base * 76419.9 == pytest.approx(stat.oi.oi_usd)
    pos = stat.positioning
    assert pos.account_ratio == pytest.approx(19930 / 13198)
    assert pos.taker_buy_sell_ratio == pytest.approx(1534950 / 1065594)
    assert (pos.top_account_ratio, pos.top_position_ratio) == (
        STATS["top_lsr_account"],
        STATS["top_lsr_size"],
    )
    assert stat.liquidations.ts_ms == 1789658100_000 - FIVE
    strings = parse_stats(
        [{**STATS, "open_interest": "2851725", "long_liq_size": "3"}], "BTCUSDT", FIVE, 0.0001
    )
    assert strings[0].oi.oi_contracts == 2851725.0 and strings[0].liquidations.long_base > 0


def test_stream_liquidation_size_is_the_order_so_a_sell_was_a_long() -> None:
    assert parse_liquidations(WS_OLD, {}) == []  # a contract we do not list: skipped
    [old] = parse_liquidations(WS_OLD, {"BTC_USD": 1.0})
    assert (old.ts_ms, old.position_side, old.qty_base) == (1541486601123, Side.LONG, 124.0)
    long, short = parse_liquidations(WS_NEW, {"BTC_USDT": 0.0001})
    assert (long.ts_ms, long.position_side, long.price) == (1541486601123, Side.LONG, 215.1)
    assert long.qty_base == pytest.approx(0.01245) and long.usd == pytest.approx(0.01245 * 215.1)
    assert (short.position_side, short.qty_base) == (Side.SHORT, pytest.approx(0.00105))


def test_error_labels_map_to_what_the_caller_should_do() -> None:
    assert isinstance(check_payload({"label": "CONTRACT_NOT_FOUND"}), UnknownSymbol)
    limited = check_payload({"label": "TOO_MANY_REQUESTS", "message": "Request Rate Limit"})
    assert isinstance(limited, RateLimited) and limited.retry_after_s == 1.0
    assert isinstance(check_payload({"label": "TOO_BUSY", "message": ""}), VenueUnavailable)
    bad = check_payload({"label": "INVALID_PARAM_VALUE", "message": "Candlestick too long ago"})
    assert type(bad) is VenueProtocolError and "too long ago" in str(bad)
    assert check_payload([TICKER]) is None and check_payload(CONTRACT) is None


# -- against the simulator -------------------------------------------------------------------


@asynccontextmanager
async def _client(**kw: Any) -> AsyncIterator[tuple[SimServer, aiohttp.ClientSession, GateClient]]:
    async with running(venues=("gate",), **kw) as (sim, http):
        client = GateClient(sim.url, session=http, limit_scale=sim.cfg.limit_scale)
        try:
            yield sim, http, client
        finally:
            await client.close()


def _contracts(sim: SimServer, symbol: str, base: float) -> float:
    """`base` coin as Gate holds it: this venue's share in whole contracts, back in coin."""
    quanto = contract_of(sim.ctx.market.get(symbol)).quanto
    return round(0.08 * base / quanto) * quanto


async def test_instruments_and_the_one_call_snapshot_in_coin() -> None:
    async with _client() as (sim, http, c):
        now, market = sim.ctx.now_ms(), sim.ctx.market
        listed = await c.instruments()
        assert sorted(i.symbol for i in listed) == sorted(market.symbols)
        for i in listed:
            sd = market.get(i.symbol)
            assert i.venue_symbol == f"{sd.base}_USDT"
            assert (i.contract_size, i.funding_interval_h) == (
                contract_of(sd).quanto,
                sd.funding_interval_h,
            )
        await http.post(sim.url + "/_sim/stats/reset")
        snaps = await c.snapshot()
        _, stats = await get(http, sim, "/_sim/stats")
        assert stats["venues"]["gate"]["requests"] == 1  # tickers; contracts were cached
        for s in snaps:
            sd = market.get(s.symbol)
            assert s.ts_ms == now  # the venue's clock, from its Date header
            assert s.oi_base == pytest.approx(_contracts(sim, s.symbol, oi_at(sd, now)))
            assert s.mark_price == pytest.approx(round(last_price(sd, now), price_decimals(sd)))
            assert s.next_funding_ms is not None and s.next_funding_ms > now
        some = await c.snapshot(["ETHUSDT", "NOPEUSDT"])
        assert [s.symbol for s in some] == ["ETHUSDT"] and c.unknown == ["NOPEUSDT"]


async def test_oi_history_pages_contract_stats_forward_completely() -> None:
    async with _client() as (sim, _, c):
        now, sd = sim.ctx.now_ms(), sim.ctx.market.get("SOLUSDT")
        got = await c.oi_history("SOLUSDT", FIVE, now - 2 * DAY, now)  # 576 rows: 6 pages
        times, oi, _ = oi_snapshots(sd, FIVE, now - 2 * DAY, now, now)
        assert [s.ts_ms for s in got] == [int(t) for t in times] and len(got) == 576
        assert [s.oi_base for s in got] == pytest.approx(
            [_contracts(sim, "SOLUSDT", float(x)) for x in oi]
        )
        pos = await c.positioning_history("SOLUSDT", HOUR, now - DAY, now)
        assert len(pos) == 24 and all(p.account_ratio and p.taker_buy_sell_ratio for p in pos)
        with pytest.raises(UserError, match="no 2m statistics"):
            await c.oi_history("SOLUSDT", 2 * MINUTE, now - DAY, now)


async def test_klines_in_windows_of_1999_points_within_the_10000_kept() -> None:
    async with _client(history_days=12) as (sim, _, c):
        now, sd = sim.ctx.now_ms(), sim.ctx.market.get("ETHUSDT")
        got = await c.klines("ETHUSDT", MINUTE, now - 3 * DAY, now)
        truth = bars(sd, MINUTE, now - 3 * DAY, now, now)
        assert [k.ts_ms for k in got] == [int(t) for t in truth.ts] and len(got) == 4321
        assert got[-1].close == round(float(truth.close[-1]), price_decimals(sd))
        quanto = contract_of(sd).quanto
        assert got[100].volume_base == pytest.approx(
            round(float(truth.volume[100]) / quanto) * quanto
        )
        deep = await c.klines("ETHUSDT", MINUTE, now - 10 * DAY, now)  # only 10,000 are kept
        assert len(deep) == 9999 and deep[-1] == got[-1]


async def test_klines_asked_to_a_closed_bar_come_whatever_the_clock_says() -> None:
    """The venue's clock (its `Date` headers, run on since) is not the bound of what is
    asked: a clock ten minutes behind (a simulator at speed 120, seconds after the last
    reply) hid the two newest closed bars from every retry of a bar close."""
    async with _client() as (sim, _, c):
        await c.snapshot(["ETHUSDT"])  # the clock, from the reply's Date
        now, sd = sim.ctx.now_ms(), sim.ctx.market.get("ETHUSDT")
        upto = now // FIVE * FIVE - FIVE  # the newest closed bar
        c.http.clock.observe_ms(now - 10 * MINUTE)
        got = await c.klines("ETHUSDT", FIVE, upto - HOUR, upto)
        truth = bars(sd, FIVE, upto - HOUR, upto, now)
        assert [k.ts_ms for k in got] == [int(t) for t in truth.ts] and got[-1].ts_ms == upto


async def test_funding_history_sorted_with_intervals_from_spacing() -> None:
    async with _client(history_days=45) as (sim, _, c):
        now, sd = sim.ctx.now_ms(), sim.ctx.market.get("ETHUSDT")
        got = await c.funding_history("ETHUSDT", now - 40 * DAY, now)
        truth = funding_history(sd, now - 40 * DAY, now, now)
        assert [f.ts_ms for f in got] == [t for t, _ in truth] and len(got) == 240
        assert {f.interval_h for f in got} == {sd.funding_interval_h}
        assert got[0] == FundingSample(
            "gate",
            "ETHUSDT",
            truth[0][0],
            pytest.approx(truth[0][1], abs=1e-8),  # type: ignore[arg-type]
            sd.funding_interval_h,
        )


async def test_unknown_symbols() -> None:
    async with _client() as (sim, _, c):
        now = sim.ctx.now_ms()
        with pytest.raises(UnknownSymbol, match="NOPEUSDT"):
            await c.klines("NOPEUSDT", MINUTE, now - HOUR, now)
        with pytest.raises(UnknownSymbol):
            await c.funding_history("NOPEUSDT", now - DAY, now)


async def _everything(sim: SimServer, c: GateClient) -> list[Any]:
    now = sim.ctx.now_ms()
    out: list[Any] = [await c.instruments(), await c.snapshot()]
    for sym in ("BTCUSDT", "XRPUSDT"):
        out.append(await c.klines(sym, MINUTE, now - 2 * DAY, now))
        out.append(await c.oi_history(sym, FIVE, now - DAY, now))
        out.append(await c.positioning_history(sym, HOUR, now - DAY, now))
        out.append(await c.funding_history(sym, now - 5 * DAY, now))
    return out


@pytest.mark.parametrize("kinds", [tuple(Fault), (Fault.EMPTY,)], ids=["all-faults", "empty"])
async def test_faults_change_nothing_in_the_output(kinds: tuple[Fault, ...]) -> None:
    await faults_change_nothing(_client, _everything, "gate", kinds, fault_rate=0.3, at_least=5,
                                seed=3)  # fmt: skip


async def test_a_burst_waits_inside_200_per_10s_per_endpoint() -> None:
    async with _client(limit_scale=4.0) as (sim, http, c):  # 10 s windows last 2.5 s
        await c.instruments()
        done = await asyncio.gather(*(c.snapshot(["BTCUSDT"]) for _ in range(260)))
        assert all(s[0].symbol == "BTCUSDT" for s in done)
        _, stats = await get(http, sim, "/_sim/stats")
        assert stats["venues"]["gate"]["rejected_429"] == 0 and c.limiter.waited_s > 0


async def test_a_429_pauses_the_client_until_the_window_passes() -> None:
    async with _client(limit_scale=10.0) as (sim, http, c):  # 1 s windows
        await c.instruments()
        url = sim.url + "/api/v4/futures/usdt/tickers"
        statuses: list[int] = []
        while len(statuses) < 1000 and 429 not in statuses:  # someone else on our IP spends
            async with http.get(url) as r:  # the window (until it is spent: a busy host is slow)
                statuses.append(r.status)
        assert statuses[-1] == 429
        snaps = await c.snapshot(["BTCUSDT"])  # 429 -> no request for the window -> served
        assert [s.symbol for s in snaps] == ["BTCUSDT"]
        assert c.http.stats.failures == {"RateLimited": 1} and c.http.stats.requests == 3
