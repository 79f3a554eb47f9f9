"""The Binance USD-M connector against the simulator over real sockets: truth, paging, faults,
limits, bans (the parsers on the documented payloads are in test_venue_binance_wire.py)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from oiradar.errors import (
    Banned,
    RateLimited,
    UnknownSymbol,
    UserError,
    VenueError,
    VenueProtocolError,
    VenueUnavailable,
)
from oiradar.records import Candle, FundingSample, OISample
from oiradar.sim.context import VENUE_SHARE, price_decimals, qty_decimals
from oiradar.sim.faults import Fault, Faults
from oiradar.sim.market import bars, funding_history, funding_now, last_price, oi_at, oi_snapshots
from oiradar.sim.server import SimServer
from oiradar.venues.binance.rest import BinanceClient
from tests.simkit import MINUTE, get, running

DAY = 1440 * MINUTE
SHARE = VENUE_SHARE["binance"]


# -- against the simulator ----------------------------------------------------------------


def _r(x: float, decimals: int) -> float:
    """The value as the venue serialises it (a decimal string)."""
    return float(f"{x:.{decimals}f}")


def truth_klines(sim: SimServer, symbol: str, step: int, start: int, end: int) -> list[Candle]:
    sd = sim.ctx.market.get(symbol)
    b = bars(sd, step, start, end, sim.ctx.now_ms()).share(sim.ctx.share("binance"))
    pd, qd = price_decimals(sd), qty_decimals(sd)
    return [
        Candle(
            "binance",
            symbol,
            step,
            int(b.ts[i]),
            _r(b.open[i], pd),
            _r(b.high[i], pd),
            _r(b.low[i], pd),
            _r(b.close[i], pd),
            volume_base=_r(b.volume[i], qd),
            volume_quote=_r(b.quote_volume[i], 4),
            taker_buy_base=_r(b.taker_buy[i], qd),
            trades=int(b.trades[i]),
        )
        for i in range(len(b.ts))
    ]


def truth_oi(sim: SimServer, symbol: str, period: int, start: int, end: int) -> list[OISample]:
    sd = sim.ctx.market.get(symbol)
    times, oi, usd = oi_snapshots(sd, period, start, end, sim.ctx.now_ms())
    return [
        OISample("binance", symbol, int(t), oi_base=_r(o * SHARE, 8), oi_usd=_r(u * SHARE, 8))
        for t, o, u in zip(times, oi, usd, strict=True)
    ]


def truth_funding(sim: SimServer, symbol: str, start: int, end: int) -> list[FundingSample]:
    sd = sim.ctx.market.get(symbol)
    rows = funding_history(sd, start, end, sim.ctx.now_ms())
    return [FundingSample("binance", symbol, t, _r(r, 8), sd.funding_interval_h) for t, r in rows]


def _steps(ts: list[int]) -> set[int]:
    return {b - a for a, b in itertools.pairwise(ts)}


async def stats(sim: SimServer, http: aiohttp.ClientSession) -> dict[str, int]:
    _, body = await get(http, sim, "/_sim/stats")
    venue: dict[str, int] = body["venues"].get("binance", {"requests": 0, "weight": 0})
    return venue


async def reset_stats(sim: SimServer, http: aiohttp.ClientSession) -> None:
    async with http.post(sim.url + "/_sim/stats/reset") as r:
        assert r.status == 200


async def test_instruments_and_one_call_snapshot() -> None:
    async with running(venues=("binance",)) as (sim, http), BinanceClient(sim.url) as client:
        found = await client.instruments()
        market = sim.ctx.market
        assert [i.symbol for i in found] == market.symbols
        assert [i.funding_interval_h for i in found] == [
            market.get(s).funding_interval_h for s in market.symbols
        ]
        assert {i.funding_interval_h for i in found} == {4.0, 8.0}
        await reset_stats(sim, http)
        snaps = await client.snapshot()
        now = sim.ctx.now_ms()
        n = len(market.symbols)
        st = await stats(sim, http)
        # premiumIndex (10) and ticker/24hr (40) for all, plus N openInterest (1 each)
        assert (st["requests"], st["weight"]) == (2 + n, 50 + n)
        assert [s.symbol for s in snaps] == market.symbols
        for snap in snaps:
            sd = market.get(snap.symbol)
            rate, next_ms = funding_now(sd, now)
            assert snap.ts_ms == now
            assert snap.oi_base == _r(oi_at(sd, now) * SHARE, qty_decimals(sd))
            assert snap.mark_price == _r(last_price(sd, now), price_decimals(sd) + 1)
            assert snap.oi_usd == pytest.approx(snap.oi_base * snap.mark_price, rel=1e-12)
            assert snap.funding_rate == _r(rate, 8) and snap.next_funding_ms == next_ms
            assert snap.funding_interval_h == sd.funding_interval_h
            assert snap.last_price == _r(last_price(sd, now), price_decimals(sd))
            assert snap.quote_volume_24h is not None and snap.quote_volume_24h > 0
        some = await client.snapshot(["SOLUSDT", "NOPEUSDT", "BTCUSDT"])
        assert [s.symbol for s in some] == ["SOLUSDT", "BTCUSDT"]
        assert client.unknown == ["NOPEUSDT"]


async def test_snapshots_come_in_batches_as_the_oi_calls_return() -> None:
    """A scan starts a symbol's history as soon as its openInterest is in: with 8 in flight
    and 40 symbols the first batch comes while most calls have not even been sent, the
    batches together are the one-call snapshot, and stopping early sends no more."""
    sim_running = running(venues=("binance",), symbols=40, latency_ms=20)
    async with sim_running as (sim, http), BinanceClient(sim.url, concurrency=8) as client:
        whole = await client.snapshot()
        n = len(whole)
        await reset_stats(sim, http)
        batches, sent_at_first = [], None
        async for batch in client.snapshots():
            sent_at_first = sent_at_first or (await stats(sim, http))["requests"]
            batches.append(batch)
        assert len(batches) >= 4 and sent_at_first is not None
        assert sent_at_first < n // 2
        assert sorted((s for b in batches for s in b), key=lambda s: s.symbol) == sorted(
            whole, key=lambda s: s.symbol
        )
        await reset_stats(sim, http)
        async with contextlib.aclosing(client.snapshots()) as arriving:
            async for _ in arriving:
                break
        await asyncio.sleep(0.2)  # anything left running would have been sent by now
        assert (await stats(sim, http))["requests"] < n // 2


async def test_histories_are_complete_and_equal_the_truth() -> None:
    async with (
        running(venues=("binance",)) as (sim, _),
        BinanceClient(env={"OIRADAR_ENDPOINT": sim.url}) as client,  # endpoint from the env
    ):
        now = sim.ctx.now_ms()
        start = now - 2 * DAY
        oi = await client.oi_history("BTCUSDT", 5 * MINUTE, start, now)
        assert len(oi) == 576 and _steps([s.ts_ms for s in oi]) == {5 * MINUTE}
        assert oi == truth_oi(sim, "BTCUSDT", 5 * MINUTE, start, now)
        for step in (MINUTE, 5 * MINUTE):
            candles = await client.klines("ETHUSDT", step, start, now)
            assert _steps([c.ts_ms for c in candles]) == {step}
            assert candles[0].ts_ms >= start and candles[-1].ts_ms <= now  # forming bar kept
            assert len(candles) == now // step + (-start) // step + 1  # opens in [start, now]
            assert candles == truth_klines(sim, "ETHUSDT", step, start, now)
        for symbol in ("BTCUSDT", "ETHUSDT"):  # 8 h and 4 h funding
            funding = await client.funding_history(symbol, now - 6 * DAY, now)
            assert funding == truth_funding(sim, symbol, now - 6 * DAY, now)
            hours = sim.ctx.market.get(symbol).funding_interval_h
            assert _steps([f.ts_ms for f in funding]) == {int(hours * 60 * MINUTE)}


async def test_kline_limit_is_weight_optimal() -> None:
    async with running(venues=("binance",)) as (sim, http), BinanceClient(sim.url) as client:
        await client.instruments()
        now = sim.ctx.now_ms()
        await reset_stats(sim, http)
        short = await client.klines("BTCUSDT", MINUTE, now - 60 * MINUTE, now)
        assert len(short) == 61
        assert (await stats(sim, http))["weight"] == 1  # one limit-61 call, no time probe
        await reset_stats(sim, http)
        long = await client.klines("BTCUSDT", MINUTE, now - 2 * DAY, now)
        assert len(long) == 2881  # 5 pages of 499 + 386, each weight 2
        assert (await stats(sim, http))["weight"] == 6 * 2


async def test_oi_history_start_is_clamped_to_30_days() -> None:
    async with (
        running(venues=("binance",), history_days=40) as (sim, _),
        BinanceClient(sim.url) as client,
    ):
        now = sim.ctx.now_ms()
        hourly = await client.oi_history("SOLUSDT", 60 * MINUTE, now - 40 * DAY, now - 20 * DAY)
        assert hourly, "clamped, not an error"
        assert hourly[0].ts_ms >= now - 30 * DAY and hourly[-1].ts_ms <= now - 20 * DAY
        assert hourly == truth_oi(sim, "SOLUSDT", 60 * MINUTE, hourly[0].ts_ms, now - 20 * DAY)
        assert await client.oi_history("SOLUSDT", 60 * MINUTE, now - 40 * DAY, now - 35 * DAY) == []


async def test_unknown_symbol_and_bad_steps() -> None:
    async with running(venues=("binance",)) as (sim, _), BinanceClient(sim.url) as client:
        now = sim.ctx.now_ms()
        with pytest.raises(UnknownSymbol):
            await client.klines("NOPEUSDT", MINUTE, now - DAY, now)
        with pytest.raises(UnknownSymbol):
            await client.oi_history("NOPEUSDT", 5 * MINUTE, now - 40 * DAY, now - 20 * DAY)
        with pytest.raises(UnknownSymbol):
            await client.funding_history("NOPEUSDT", now - DAY, now)
        with pytest.raises(UserError, match="5m"):
            await client.oi_history("BTCUSDT", MINUTE, now - DAY, now)  # no 1m OI history
        with pytest.raises(UserError):
            await client.klines("BTCUSDT", 7 * MINUTE, now - DAY, now)


# -- faults -------------------------------------------------------------------------------


class Recording(Faults):
    """The simulator's seeded faults, noting which kinds it injected."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.seen: list[Fault] = []

    def pick(self) -> Fault | None:
        fault = Faults.pick(self)
        if fault is not None:
            self.seen.append(fault)
        return fault


class Scripted(Faults):
    """Faults in a given order (None = a normal answer), then none."""

    def __init__(self, script: list[Fault | None]) -> None:
        super().__init__()
        self.script = list(script)

    def pick(self) -> Fault | None:
        return self.script.pop(0) if self.script else None


async def everything(client: BinanceClient, now: int) -> dict[str, Any]:
    start = now - 2 * DAY
    return {
        "instruments": await client.instruments(),
        "snapshot": await client.snapshot(),
        "oi": [await client.oi_history(s, 5 * MINUTE, start, now) for s in ("BTCUSDT", "XRPUSDT")],
        "k1": await client.klines("SOLUSDT", MINUTE, start, now),
        "k5": await client.klines("DOGEUSDT", 5 * MINUTE, start, now),
        "funding": [
            await client.funding_history(s, now - 6 * DAY, now) for s in ("BTCUSDT", "ETHUSDT")
        ],
    }


async def test_faults_do_not_change_any_output() -> None:
    async with running(venues=("binance",), seed=11) as (sim, _), BinanceClient(sim.url) as client:
        clean = await everything(client, sim.ctx.now_ms())
    async with running(venues=("binance",), seed=11) as (sim, http):
        faults = Recording(rate=0.3, seed=5, slow_s=0.05)
        sim.ctx.faults = faults
        async with BinanceClient(sim.url, backoff_s=0.005, max_attempts=10) as client:
            faulty = await everything(client, sim.ctx.now_ms())
            assert client.http.stats.retries > 0
        assert faulty == clean
        assert set(faults.seen) == set(Fault), "every kind of fault was exercised"
        assert (await stats(sim, http))["faults"] == len(faults.seen)


async def test_empty_page_is_asked_again_then_believed_as_a_gap() -> None:
    async with running(venues=("binance",)) as (sim, _), BinanceClient(sim.url) as client:
        await client.instruments()
        now = sim.ctx.now_ms()
        start = now - 2 * DAY
        truth = truth_klines(sim, "BTCUSDT", MINUTE, start, now)
        empty = Fault.EMPTY
        # Requests: pages of 499 bars (exchangeInfo's server time is fresh: no time probe).
        sim.ctx.faults = Scripted([empty, empty])
        assert await client.klines("BTCUSDT", MINUTE, start, now) == truth
        assert client.empty_retries == 2
        sim.ctx.faults = Scripted([None, empty, empty, empty])
        gapped = await client.klines("BTCUSDT", MINUTE, start, now)
        assert gapped == truth[:499] + truth[998:]  # page 2 believed empty; paging went on
        sim.ctx.faults = Scripted([empty])  # before listing: an empty page is expected
        listed = sim.ctx.market.get("BTCUSDT").first_ms
        before = client.empty_retries
        early = await client.klines("BTCUSDT", 60 * MINUTE, listed - 60 * DAY, listed + DAY)
        assert early == truth_klines(sim, "BTCUSDT", 60 * MINUTE, listed - 60 * DAY, listed + DAY)
        assert client.empty_retries == before


@asynccontextmanager
async def fake_venue(status: int, body: str) -> AsyncIterator[tuple[str, list[str]]]:
    """exchangeInfo answers `status` + `body`, fundingInfo `[]`; yields (url, exchangeInfo hits)."""
    hits: list[str] = []

    async def exchange_info(request: web.Request) -> web.Response:
        hits.append(request.path)
        kind = "text/html" if body.startswith("<") else "application/json"
        return web.Response(status=status, text=body, content_type=kind)

    async def funding_info(request: web.Request) -> web.Response:
        return web.json_response([])

    app = web.Application()
    app.router.add_get("/fapi/v1/exchangeInfo", exchange_info)
    app.router.add_get("/fapi/v1/fundingInfo", funding_info)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", hits
    finally:
        await runner.cleanup()


NO_BASE = '{"serverTime":1,"symbols":[{"symbol":"BTCUSDT","contractType":"PERPETUAL",' + (
    '"status":"TRADING","quoteAsset":"USDT"}]}'
)


@pytest.mark.parametrize(
    ("status", "body", "error", "tries"),
    [
        (451, '{"code":0,"msg":"Service unavailable from a restricted location"}', VenueError, 1),
        (403, "<html>403 Forbidden</html>", VenueError, 1),
        (400, '{"code":-1130,"msg":"Parameter \'x\' is not valid."}', VenueProtocolError, 1),
        (200, NO_BASE, VenueProtocolError, 1),  # a documented field went missing
        (503, "<html>We'll be back soon</html>", VenueUnavailable, 3),
        (
            400,
            '{"code":-1008,"msg":"Request throttled by system-level protection."}',
            VenueUnavailable,
            3,
        ),
        (429, '{"code":-1003,"msg":"Too many requests"}', RateLimited, 3),
    ],
)
async def test_error_statuses(status: int, body: str, error: type[Exception], tries: int) -> None:
    """Final errors are raised after one request; transient ones after `max_attempts`."""
    async with fake_venue(status, body) as (url, hits):
        client = BinanceClient(url, backoff_s=0.001, max_attempts=3)
        client.limiter.pause = lambda seconds: None  # type: ignore[method-assign]
        async with client:
            with pytest.raises(error) as caught:
                await client.instruments()
        assert type(caught.value) is error
        assert len(hits) == tries


# -- limits and bans ----------------------------------------------------------------------


async def test_burst_stays_under_the_weight_limit() -> None:
    # The 1-minute window lasts two seconds; twice its budget is asked for, so the limiter
    # must wait even on a loaded machine that serves the burst at half speed.
    scale = 30.0
    async with (
        running(venues=("binance",), symbols=50, limit_scale=scale) as (sim, http),
        BinanceClient(sim.url, limit_scale=scale) as client,
    ):
        for _ in range(20):
            rounds = await asyncio.gather(*(client.snapshot() for _ in range(4)))
            assert all(len(r) == 50 for r in rounds)
        st = await stats(sim, http)
        assert st["weight"] >= 80 * 60 >= 2 * 2400  # two windows' budget
        assert (st["rejected_429"], st["bans"]) == (0, 0)
        assert client.limiter.waited_s > 0


async def test_used_weight_header_of_another_client_is_honoured() -> None:
    # A tiny scale stretches the window so the test never straddles a reset.
    async with running(venues=("binance",), limit_scale=0.01) as (sim, http):
        for _ in range(239):  # another process on this IP spends 2390 weight
            async with http.get(sim.url + "/fapi/v1/premiumIndex") as r:
                assert r.status == 200
        async with BinanceClient(sim.url, limit_scale=0.01) as client:
            await client.instruments()  # its header reports 2391 used of 2400
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.snapshot(), 0.3)
            assert client.limiter.waited_s > 0
            st = await stats(sim, http)
            # What fits the 9 weight left went out (openInterest, weight 1), nothing more.
            assert st["weight"] <= 2400 and st["rejected_429"] == 0


async def test_no_request_while_banned() -> None:
    async with running(venues=("binance",), limit_scale=0.01) as (sim, http):
        status = 200
        while status != 418:  # hammer past the 429 into a ban
            async with http.get(sim.url + "/fapi/v1/premiumIndex") as r:
                status = r.status
        async with BinanceClient(sim.url) as client:
            with pytest.raises(Banned):
                await client.snapshot()
            sent = (await stats(sim, http))["requests"]
            calls: list[Callable[[], Any]] = [
                client.snapshot,
                lambda: client.klines("BTCUSDT", MINUTE, 0, 1),
            ]
            for call in calls:
                with pytest.raises(Banned):
                    await call()
            assert (await stats(sim, http))["requests"] == sent


async def test_requests_queued_for_their_budget_are_not_sent_into_a_ban() -> None:
    """A client that believes it has more budget than the venue grants (another process on
    the IP, a wrong limit) runs into a 429 and, with 64 requests in flight, a ban. The
    hundreds still queued behind its limiter must not go out then: before, 250 of a scan's
    requests were sent into the ban. The venue's windows are long here (scale 0.01), the
    client's short (100), so only the venue stops it."""
    params = {"symbol": "BTCUSDT", "period": "5m", "limit": "30"}
    async with (
        running(venues=("binance",), limit_scale=0.01) as (sim, http),
        BinanceClient(sim.url, limit_scale=100.0) as client,
    ):
        burst = asyncio.gather(
            *(client._get("/futures/data/openInterestHist", params) for _ in range(1_300)),
            return_exceptions=True,
        )
        got = await asyncio.wait_for(burst, 60)  # refused at once, not after the Retry-After
        st = await stats(sim, http)
    assert sum(isinstance(g, Banned) for g in got) > 100  # refused without being sent
    assert (st["rejected_429"], st["bans"]) == (1, 1)
    assert st["while_banned"] <= 64  # at most those already in flight when the ban came
    assert st["requests"] <= 1_000 + 1 + 64 + 64


async def test_a_new_client_starts_with_what_the_last_one_spent() -> None:
    """Binance reports no usage for /futures/data (1,000 requests per 5 minutes per IP): a
    scan started right after another one believed it had the whole budget, and the fourth
    300-symbol scan within five minutes hit a 429 and a ban. The budget a client spent is
    left in the cache (venues/usage.py) for the next one, which waits instead."""
    params = {"symbol": "BTCUSDT", "period": "5m", "limit": "30"}
    path = "/futures/data/openInterestHist"
    async with running(venues=("binance",), limit_scale=0.01) as (sim, http):
        async with BinanceClient(sim.url, limit_scale=0.01) as first:
            await asyncio.gather(*(first._get(path, params) for _ in range(990)))
        async with BinanceClient(sim.url, limit_scale=0.01) as second:
            assert second.limiter.usage()["futures_data"] == (990, 1000)
            sent = (await stats(sim, http))["requests"]
            burst = asyncio.gather(*(second._get(path, params) for _ in range(20)))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(burst, 0.5)
            st = await stats(sim, http)
    assert st["requests"] == sent + 10 and (st["rejected_429"], st["bans"]) == (0, 0)
