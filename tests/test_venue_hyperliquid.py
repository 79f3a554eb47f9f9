"""The Hyperliquid connector: parsers on the recorded replies (exchange-apis.md §9.1, §11),
then the `/info` client against the simulator over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from oiradar.errors import UnknownSymbol, UserError, VenueProtocolError, VenueUnavailable
from oiradar.records import Candle, FundingSample, MarketSnapshot
from oiradar.sim.faults import Fault
from oiradar.sim.market import bars, funding_history, last_price, oi_at
from oiradar.sim.server import SimServer
from oiradar.sim.venues.hyperliquid.data import coin_of
from oiradar.venues.base import spaced_funding
from oiradar.venues.hyperliquid.rest import HyperliquidClient, check_response
from oiradar.venues.hyperliquid.wire import (
    canonical,
    parse_candles,
    parse_funding,
    parse_meta_and_ctxs,
    weight,
)
from tests.simkit import MINUTE, faults_change_nothing, get, running

HOUR, DAY = 60 * MINUTE, 24 * 60 * MINUTE
# Recorded replies: the ccxt-quoted context, the SDK's mainnet cassettes (2023).
CTX = {
    "dayNtlVlm": "9450588.2273", "funding": "0.0000198", "impactPxs": ["108.04", "108.06"],
    "markPx": "108.04", "midPx": "108.05", "openInterest": "10764.48", "oraclePx": "107.99",
    "premium": "0.00055561", "prevDayPx": "111.81",
}  # fmt: skip
META = {
    "universe": [
        {"maxLeverage": 50, "name": "BTC", "szDecimals": 5},
        {"maxLeverage": 50, "name": "OLD", "szDecimals": 2, "isDelisted": True},
        {"maxLeverage": 10, "name": "xyz:NVDA", "szDecimals": 2},
        {"maxLeverage": 20, "name": "kPEPE", "szDecimals": 0},
    ]
}
CANDLES = [
    {"T": 1684702799999, "c": "0.001604", "h": "0.001616", "i": "1h", "l": "0.001601",
     "n": 709, "o": "0.001601", "s": "kPEPE", "t": 1684699200000, "v": "520665683.0"},
    {"T": 1684706399999, "c": "0.001591", "h": "0.001603", "i": "1h", "l": "0.001584",
     "n": 802, "o": "0.001603", "s": "kPEPE", "t": 1684702800000, "v": "682593287.0"},
]  # fmt: skip
FUNDING = [
    {"coin": "BTC", "fundingRate": "-0.00061334", "premium": "-0.00091334", "time": 1683849600048},
    {"coin": "BTC", "fundingRate": "-0.00074503", "premium": "-0.00104503", "time": 1683878400388},
]


def test_symbols_map_to_canonical_names_and_k_coins_to_1000() -> None:
    assert [canonical(c) for c in ("BTC", "kPEPE", "kSHIB", "KAITO", "k")] == [
        "BTCUSDT", "1000PEPEUSDT", "1000SHIBUSDT", "KAITOUSDT", "kUSDT",
    ]  # fmt: skip


def test_meta_and_contexts_are_index_aligned_and_one_sided_coin() -> None:
    pairs = parse_meta_and_ctxs([META, [CTX, CTX, CTX, CTX]], 1_700_000_000_000)
    assert [(m.instrument.symbol, m.instrument.venue_symbol, m.index) for m, _ in pairs] == [
        ("BTCUSDT", "BTC", 0), ("1000PEPEUSDT", "kPEPE", 3),
    ]  # fmt: skip
    assert pairs[1][0].instrument.base == "1000PEPE" and pairs[0][0].instrument.quote == "USDC"
    assert pairs[0][1] == MarketSnapshot(
        "hyperliquid", "BTCUSDT", 1_700_000_000_000, last_price=108.05, mark_price=108.04,
        oi_base=10764.48, oi_usd=pytest.approx(10764.48 * 108.04),  # type: ignore[arg-type]
        funding_rate=0.0000198, funding_interval_h=1.0, next_funding_ms=1_700_002_800_000,
        quote_volume_24h=9450588.2273,
    )  # fmt: skip
    with pytest.raises(VenueProtocolError, match="parse_meta_and_ctxs"):
        parse_meta_and_ctxs([META, []], 1)


def test_candles_and_the_funding_history_trap() -> None:
    first, _ = parse_candles(CANDLES, "1000PEPEUSDT", HOUR)
    assert first == Candle("hyperliquid", "1000PEPEUSDT", HOUR, 1684699200000, 0.001601,
                           0.001616, 0.001601, 0.001604, 520665683.0, trades=709)  # fmt: skip
    settled = parse_funding(FUNDING)
    # 2023 rows are 8 h apart: the interval is the spacing, never an assumed hour
    assert [
        f.interval_h for f in spaced_funding("hyperliquid", "BTCUSDT", settled, 0, 2**62, 1.0)
    ] == [8.0, 8.0]
    lone = spaced_funding("hyperliquid", "BTCUSDT", {1683849600048: -0.0006}, 0, 2**62, 1.0)
    assert lone == [FundingSample("hyperliquid", "BTCUSDT", 1683849600048, -0.0006, 1.0)]


def test_weights_and_statuses() -> None:
    assert weight(0, 60) == 20 and weight(60, 60) == 21 and weight(61, 60) == 22
    assert weight(500, 20) == 45
    bad = check_response(422, {}, b"Failed to deserialize the JSON body into the target type")
    assert type(bad) is VenueProtocolError
    assert check_response(429, {}, b"null") is None  # the shared layer's RateLimited


# -- against the simulator -------------------------------------------------------------------


@asynccontextmanager
async def _client(
    **kw: Any,
) -> AsyncIterator[tuple[SimServer, aiohttp.ClientSession, HyperliquidClient]]:
    async with running(venues=("hyperliquid",), **kw) as (sim, http):
        client = HyperliquidClient(sim.url, session=http, limit_scale=sim.cfg.limit_scale)
        try:
            yield sim, http, client
        finally:
            await client.close()


async def test_snapshot_is_one_weight_20_call_in_coin_with_k_coins_per_1000() -> None:
    async with _client(symbols=30) as (sim, http, c):
        now = sim.ctx.now_ms()
        snaps = {s.symbol: s for s in await c.snapshot()}
        _, stats = await get(http, sim, "/_sim/stats")
        assert (stats["venues"]["hyperliquid"]["requests"], c.limiter.usage()["weight"][0]) == (
            1, 20,
        )  # fmt: skip
        assert "PEPEUSDT" not in snaps and "1000PEPEUSDT" in snaps
        for symbol, scale in (("BTCUSDT", 1), ("PEPEUSDT", 1000)):
            sd = sim.ctx.market.get(symbol)
            s = snaps[("1000" if scale > 1 else "") + symbol]
            c_ = coin_of(sd)
            assert s.ts_ms == now and s.funding_interval_h == 1.0
            assert s.mark_price == pytest.approx(float(c_.px(last_price(sd, now))))
            assert s.mark_price == pytest.approx(last_price(sd, now) * scale, rel=1e-3)
            assert s.oi_base == pytest.approx(0.06 * oi_at(sd, now) / scale, rel=1e-6)
        assert await c.oi_history("BTCUSDT", 5 * MINUTE, now - DAY, now) == []


async def test_klines_asked_to_a_closed_bar_come_whatever_the_clock_says() -> None:
    """As Gate's: a venue clock behind the venue must not hide the bars asked for."""
    async with _client() as (sim, _, c):
        await c.snapshot(["ETHUSDT"])  # the clock, from the reply's Date
        now, sd = sim.ctx.now_ms(), sim.ctx.market.get("ETHUSDT")
        upto = now // (5 * MINUTE) * 5 * MINUTE - 5 * MINUTE  # the newest closed bar
        c.http.clock.observe_ms(now - 10 * MINUTE)
        got = await c.klines("ETHUSDT", 5 * MINUTE, upto - HOUR, upto)
        truth = bars(sd, 5 * MINUTE, upto - HOUR, upto, now)
        assert [k.ts_ms for k in got] == [int(t) for t in truth.ts] and got[-1].ts_ms == upto


async def test_klines_within_the_5000_kept_and_funding_paged_by_500() -> None:
    async with _client(history_days=30) as (sim, _, c):
        now, sd = sim.ctx.now_ms(), sim.ctx.market.get("ETHUSDT")
        got = await c.klines("ETHUSDT", 5 * MINUTE, now - 20 * DAY, now)
        truth = bars(sd, 5 * MINUTE, now - 20 * DAY, now, now)
        assert len(got) == 5000 and got[-1].ts_ms == int(truth.ts[-1])  # only 5,000 are kept
        assert [k.ts_ms for k in got] == [int(t) for t in truth.ts[-5000:]]
        funding = await c.funding_history("ETHUSDT", now - 25 * DAY, now)
        hours = funding_history(sd, now - 25 * DAY, now, now)
        assert len(funding) == 600 and {f.interval_h for f in funding} == {1.0}
        # one hour's part of the market's rate
        by_ts = {f.ts_ms: f.rate for f in funding}
        for t, rate in hours:
            assert by_ts[t] == pytest.approx(rate / sd.funding_interval_h, abs=1e-9)
        with pytest.raises(UserError, match="no 7m candles"):
            await c.klines("ETHUSDT", 7 * MINUTE, now - DAY, now)
        with pytest.raises(UnknownSymbol):
            await c.funding_history("NOPEUSDT", now - DAY, now)


async def _everything(sim: SimServer, c: HyperliquidClient) -> list[Any]:
    now = sim.ctx.now_ms()
    out: list[Any] = [await c.instruments(), await c.snapshot()]
    for symbol in sim.ctx.market.symbols:  # one request each: Hyperliquid pages little
        out.append(await c.klines(symbol, MINUTE, now - 2 * DAY, now))
        out.append(await c.klines(symbol, HOUR, now - 6 * DAY, now))
        out.append(await c.funding_history(symbol, now - 5 * DAY, now))
    return out


@pytest.mark.parametrize("kinds", [tuple(Fault), (Fault.EMPTY,)], ids=["all-faults", "empty"])
async def test_faults_change_nothing_in_the_output(kinds: tuple[Fault, ...]) -> None:
    await faults_change_nothing(_client, _everything, "hyperliquid", kinds, fault_rate=0.2,
                                at_least=2, seed=6, limit_scale=20.0)  # fmt: skip
    always = running(venues=("hyperliquid",), fault_rate=1.0, fault_kinds=(Fault.EMPTY,))
    async with always as (sim, _):
        client = HyperliquidClient(sim.url)
        with pytest.raises(VenueUnavailable, match="listed no perps"):
            await client.instruments()
        await client.close()


async def test_a_burst_is_charged_its_weight_and_never_hits_429() -> None:
    async with _client(limit_scale=30.0) as (sim, http, c):  # 1,200 weight per 2 s
        await c.instruments()
        now = sim.ctx.now_ms()
        # 70 one-day 5-minute candle calls: 70 x (20 + 5) = 1,750 weight
        runs = [c.klines("BTCUSDT", 5 * MINUTE, now - DAY, now) for _ in range(70)]
        got = await asyncio.gather(*runs)
        assert all(len(k) == 288 for k in got)
        _, stats = await get(http, sim, "/_sim/stats")
        assert stats["venues"]["hyperliquid"]["rejected_429"] == 0 and c.limiter.waited_s > 0
