"""The OKX v5 connector: pure parsers on the documented payloads (exchange-apis.md §3), then the
client against the simulator over real sockets: units, paging, faults and rate limits."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from typing import Any

import pytest

from oiradar.errors import (
    RateLimited,
    UnknownSymbol,
    UserError,
    VenueProtocolError,
    VenueUnavailable,
)
from oiradar.records import Candle, Instrument, OISample
from oiradar.sim.faults import Fault
from oiradar.sim.market import (
    bars,
    funding_history,
    funding_now,
    last_price,
    oi_at,
    oi_snapshots,
)
from oiradar.sim.server import SimServer
from oiradar.venues.base import spaced_funding
from oiradar.venues.limiter import Budget
from oiradar.venues.okx.rest import BUDGETS, MARK_PRICE, OkxClient
from oiradar.venues.okx.wire import (
    Listing,
    check_envelope,
    first_open,
    merge_snapshot,
    parse_candles,
    parse_funding_history,
    parse_funding_rate,
    parse_instruments,
    parse_mark_price,
    parse_oi_history,
    parse_open_interest,
    parse_tickers,
)
from tests.simkit import MINUTE, get, running

HOUR, DAY = 60 * MINUTE, 1440 * MINUTE
FIVE = 5 * MINUTE
SHARE = 0.20  # VENUE_SHARE["okx"]: OKX carries a fifth of the market's OI

# Documented examples, verbatim from exchange-apis.md §3.1 and §3.5 (JSON as printed there).
OI_NOW = json.loads(
    '{"code":"0","data":[{"instId":"BTC-USDT-SWAP","instType":"SWAP","oi":"2125419",'
    '"oiCcy":"21254.19","oiUsd":"2360916466.88","ts":"1664005108969"}],"msg":""}'
)
OI_HIST = json.loads(
    '{"code":"0","data":[["1790550000000","2800476.45","28006.5419","2360916466.88"]],"msg":""}'
)
CANDLES = json.loads(
    '{"code":"0","data":[["1597026383085","3.721","3.743","3.677","3.708","8422410",'
    '"22698348.04828491","12698348.04828491","1"]]}'
)
FUNDING_ANY = json.loads(
    '{"code":"0","data":[{"instId":"BTC-USDT-SWAP","instType":"SWAP","fundingRate":"0.0001875",'
    '"fundingTime":"1700726400000","nextFundingTime":"1700755200000","maxFundingRate":"0.00375",'
    '"minFundingRate":"-0.00375","settState":"settled","settFundingRate":"0.00016998",'
    '"premium":"0.000123","method":"current_period","ts":"1700724675402"}]}'
)
WS_OI = json.loads(
    '[{"instId":"BTC-USDT-SWAP","instType":"SWAP","oi":"5000","oiCcy":"555.55","oiUsd":"50000",'
    '"ts":"1597026383085"}]'
)
BTC_CT = {"BTC-USDT-SWAP": 0.01}  # ctVal of BTC-USDT-SWAP (§3.2)


def _inst_row(inst_id: str, ct_val: str, **kw: str) -> dict[str, str]:
    """An instruments row with the fields §3.1 lists."""
    family = inst_id.removesuffix("-SWAP")
    row = {"instId": inst_id, "uly": family, "instFamily": family, "settleCcy": "USDT",
           "ctVal": ct_val, "ctMult": "1", "ctValCcy": family.split("-")[0], "ctType": "linear",
           "state": "live", "listTime": "1611916800000"}  # fmt: skip
    return row | kw


def test_parse_instruments_keeps_live_linear_usdt_swaps() -> None:
    rows = [
        _inst_row("BTC-USDT-SWAP", "0.01"),
        _inst_row("ETH-USDT-SWAP", "0.1"),
        _inst_row("BTC-USD-SWAP", "100", ctType="inverse", settleCcy="BTC"),
        _inst_row("BTC-USDC-SWAP", "0.0001", settleCcy="USDC"),
        _inst_row("OLD-USDT-SWAP", "10", state="suspend"),
        _inst_row("NEW-USDT-SWAP", "10", state="preopen"),
    ]
    got = parse_instruments(rows)
    listed = 1611916800000  # listTime: backfill asks REST for nothing before it
    assert got == [
        Listing(
            Instrument("okx", "BTCUSDT", "BTC-USDT-SWAP", "BTC", "USDT", 0.01, listed_ms=listed),
            listed,
        ),
        Listing(
            Instrument("okx", "ETHUSDT", "ETH-USDT-SWAP", "ETH", "USDT", 0.1, listed_ms=listed),
            listed,
        ),
    ]


def test_parse_open_interest_uses_oiccy_which_is_contracts_times_ctval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    snap = parse_open_interest(OI_NOW["data"], BTC_CT)["BTC-USDT-SWAP"]
    assert (snap.symbol, snap.ts_ms) == ("BTCUSDT", 1664005108969)
    assert snap.oi_base == 21254.19 == pytest.approx(2125419 * 0.01)  # coin, not contracts
    assert snap.oi_usd == 2360916466.88
    # Without oiCcy the connector converts the contracts itself.
    bare = [{k: v for k, v in OI_NOW["data"][0].items() if k != "oiCcy"}]
    assert parse_open_interest(bare, BTC_CT)["BTC-USDT-SWAP"].oi_base == pytest.approx(21254.19)
    with pytest.raises(VenueProtocolError):
        parse_open_interest(bare, {})
    # §3.5's WS example does not satisfy oiCcy = oi x ctVal: kept as sent, and logged loudly.
    with caplog.at_level(logging.WARNING, logger="oiradar.venues.okx"):
        assert parse_open_interest(WS_OI, BTC_CT)["BTC-USDT-SWAP"].oi_base == 555.55
    assert "oiCcy disagrees inst=BTC-USDT-SWAP" in caplog.text


def test_parse_oi_history_and_candles_rows() -> None:
    assert parse_oi_history(OI_HIST["data"], "BTCUSDT") == [
        OISample("okx", "BTCUSDT", 1790550000000, 28006.5419, 2800476.45, 2360916466.88)
    ]
    [(bar, closed)] = parse_candles(CANDLES["data"], "XUSDT", FIVE)
    want = Candle("okx", "XUSDT", FIVE, 1597026383085, 3.721, 3.743, 3.677, 3.708,
                  volume_base=22698348.04828491, volume_quote=12698348.04828491)  # fmt: skip
    assert closed and bar == want  # vol "8422410" is contracts: volCcy is the coin volume
    forming = [[*CANDLES["data"][0][:8], "0"]]
    assert parse_candles(forming, "XUSDT", FIVE)[0][1] is False


def test_parse_funding_now_history_and_intervals() -> None:
    snap = parse_funding_rate(FUNDING_ANY["data"])["BTC-USDT-SWAP"]
    assert (snap.funding_rate, snap.funding_interval_h) == (0.0001875, 8.0)
    assert (snap.next_funding_ms, snap.ts_ms) == (1700726400000, 1700724675402)
    t0 = 1700726400000
    rows = [
        {"instId": "X-USDT-SWAP", "fundingTime": str(t0), "fundingRate": "0.0002",
         "realizedRate": "0.00019"},
        {"instId": "X-USDT-SWAP", "fundingTime": str(t0 - 4 * HOUR), "fundingRate": "0.0001",
         "realizedRate": ""},
        {"instId": "X-USDT-SWAP", "fundingTime": str(t0 - 12 * HOUR), "fundingRate": "-0.0001"},
    ]  # fmt: skip
    settled = dict(parse_funding_history(rows))  # realizedRate (charged) where present
    assert settled == {t0: 0.00019, t0 - 4 * HOUR: 0.0001, t0 - 12 * HOUR: -0.0001}
    samples = spaced_funding("okx", "XUSDT", settled, t0 - 4 * HOUR, t0, 8.0)
    assert [(s.ts_ms, s.interval_h) for s in samples] == [(t0 - 4 * HOUR, 8.0), (t0, 4.0)]
    assert samples[1].rate_8h == pytest.approx(0.00038)
    four_hourly = {t0 - 8 * HOUR: 0.0, t0 - 4 * HOUR: 0.0, t0: 0.0}  # the oldest: gap after it
    assert [s.interval_h for s in spaced_funding("okx", "XUSDT", four_hourly, 0, t0, 8.0)] == [
        4.0
    ] * 3
    assert [s.interval_h for s in spaced_funding("okx", "XUSDT", {t0: 0.0}, 0, t0, 8.0)] == [8.0]


def test_parse_prices_and_merge_into_one_snapshot() -> None:
    ticker = {"instId": "BTC-USDT-SWAP", "last": "60000.5", "volCcy24h": "1000", "ts": "7"}
    mark = {"instId": "BTC-USDT-SWAP", "markPx": "60001.1", "ts": "8"}
    tk = parse_tickers([ticker])["BTC-USDT-SWAP"]
    assert (tk.last_price, tk.quote_volume_24h) == (60000.5, 60000.5 * 1000)
    mp = parse_mark_price([mark])["BTC-USDT-SWAP"]
    oi = parse_open_interest(OI_NOW["data"], BTC_CT)["BTC-USDT-SWAP"]
    fr = parse_funding_rate(FUNDING_ANY["data"])["BTC-USDT-SWAP"]
    snap = merge_snapshot([oi, tk, mp, fr])
    assert (snap.ts_ms, snap.last_price, snap.mark_price) == (1664005108969, 60000.5, 60001.1)
    assert (snap.oi_base, snap.funding_rate) == (21254.19, 0.0001875)
    assert snap.quote_volume_24h == 60000500.0


def test_envelope_codes_map_to_what_the_caller_should_do() -> None:
    assert check_envelope(OI_NOW) is None
    cases = {
        "51001": UnknownSymbol,
        "50011": RateLimited,
        "50013": RateLimited,
        "50001": VenueUnavailable,
        "51000": VenueProtocolError,
        "50014": VenueProtocolError,
        "59999": VenueProtocolError,
    }
    for code, cls in cases.items():
        err = check_envelope({"code": code, "msg": f"message {code}", "data": []})
        assert type(err) is cls and f"message {code}" in str(err), code
    assert isinstance(check_envelope({"code": "0", "msg": ""}), VenueProtocolError)
    assert isinstance(check_envelope(["not", "an", "envelope"]), VenueProtocolError)
    with pytest.raises(VenueProtocolError, match="unreadable payload, parse_candles"):
        parse_candles([["1597026383085", "3.721"]], "XUSDT", FIVE)  # a changed shape


def test_bar_grid_is_utc_and_weeks_open_on_monday() -> None:
    assert first_open(FIVE + 1, FIVE) == 2 * FIVE and first_open(FIVE, FIVE) == FIVE
    monday = first_open(1_780_000_000_000, 7 * DAY)  # 2026-06-01, a Monday
    assert monday == 1_780_272_000_000


def _client(sim: SimServer) -> OkxClient:
    """A client on the simulator whose budgets shrink with its `limit_scale`, as its windows do."""
    okx = OkxClient(sim.url, env={})
    scale = sim.cfg.limit_scale
    okx.limiter.budgets = {k: Budget(b.limit, b.period_s / scale) for k, b in BUDGETS.items()}
    return okx


async def _requests(http: Any, sim: SimServer) -> int:
    _, stats = await get(http, sim, "/_sim/stats")
    return int(stats["venues"].get("okx", {}).get("requests", 0))


async def test_instruments_canonical_symbols_and_ctval() -> None:
    async with (
        running(venues=("okx",)) as (sim, http),
        OkxClient(env={"OIRADAR_ENDPOINT": sim.url}) as okx,
    ):
        got = await okx.instruments()
        assert [i.symbol for i in got] == sim.ctx.market.symbols
        for inst in got:
            sd = sim.ctx.market.get(inst.symbol)
            assert inst.venue_symbol == f"{sd.base}-USDT-SWAP" and inst.base == sd.base
            ct_val = 10.0 ** math.floor(math.log10(1000 / sd.close[0]))  # the sim's ctVal rule
            assert inst.contract_size == pytest.approx(ct_val)
        assert {i.symbol: i.contract_size for i in got}["BTCUSDT"] == 0.01
        before = await _requests(http, sim)
        assert await okx.instruments() == got and await _requests(http, sim) == before  # cached


async def test_snapshot_all_symbols_in_three_requests_in_coin_units() -> None:
    async with running(venues=("okx",)) as (sim, http), _client(sim) as okx:
        sizes = {i.venue_symbol: i.contract_size for i in await okx.instruments()}
        before = await _requests(http, sim)
        snaps = await okx.snapshot()
        assert await _requests(http, sim) - before == 3
        now = sim.ctx.now_ms()
        _, raw = await get(http, sim, "/api/v5/public/open-interest?instType=SWAP")
        contracts = {r["instId"]: float(r["oi"]) for r in raw["data"]}
        assert [s.symbol for s in snaps] == sim.ctx.market.symbols
        for snap in snaps:
            sd, inst_id = sim.ctx.market.get(snap.symbol), f"{snap.symbol[:-4]}-USDT-SWAP"
            assert snap.ts_ms == now and snap.oi_base is not None
            truth = SHARE * oi_at(sd, now)
            assert snap.oi_base == pytest.approx(truth, rel=1e-3)  # coin, not contracts
            assert snap.oi_base == pytest.approx(contracts[inst_id] * sizes[inst_id])
            assert snap.last_price == pytest.approx(last_price(sd, now), rel=1e-5)
            rate, next_ms = funding_now(sd, now)
            assert snap.funding_rate == pytest.approx(rate, abs=1e-8)
            assert snap.next_funding_ms == next_ms
            assert snap.funding_interval_h == sd.funding_interval_h
            assert snap.oi_usd == pytest.approx(snap.oi_base * last_price(sd, now), rel=1e-5)
            assert snap.quote_volume_24h and snap.mark_price is None
        assert {s.symbol: s.funding_interval_h for s in snaps}["ETHUSDT"] == 4.0
        some = await okx.snapshot(["ETHUSDT", "FOOUSDT", "BTCUSDT"])
        assert [s.symbol for s in some] == ["ETHUSDT", "BTCUSDT"] and okx.unknown == ["FOOUSDT"]
        okx.price_source = MARK_PRICE
        marked = await okx.snapshot(["BTCUSDT"])
        assert marked[0].mark_price == snaps[0].last_price and marked[0].last_price is None


async def test_oi_history_two_days_at_5m_is_complete_and_true() -> None:
    async with running(venues=("okx",), limit_scale=5) as (sim, _), _client(sim) as okx:
        now = sim.ctx.now_ms()
        sizes = {i.symbol: i.contract_size for i in await okx.instruments()}
        sd, ct_val = sim.ctx.market.get("SOLUSDT"), sizes["SOLUSDT"]
        got = await okx.oi_history("SOLUSDT", FIVE, now - 2 * DAY, now)
        times, oi, _ = oi_snapshots(sd, FIVE, now - 2 * DAY, now, now)
        assert len(got) == 576 and [s.ts_ms for s in got] == times.tolist()
        for sample, truth in zip(got, oi, strict=True):
            assert sample.oi_base == pytest.approx(SHARE * truth, abs=0.01 * ct_val)
            assert sample.oi_contracts is not None
            assert sample.oi_base == pytest.approx(sample.oi_contracts * ct_val)
        deep = await okx.oi_history("SOLUSDT", FIVE, now - 7 * DAY, now)  # 1,440 rows kept
        assert len(deep) == 1440 and deep[-1] == got[-1] and deep[0].ts_ms > now - 7 * DAY
        gone = await okx.oi_history("SOLUSDT", FIVE, now - 7 * DAY, now - 6 * DAY)
        assert gone == [] and okx.empty_refetches == 2  # past the horizon: asked, then believed


def _assert_bars(got: list[Candle], sim: SimServer, symbol: str, ivl: int, start: int) -> None:
    now = sim.ctx.now_ms()
    sd = sim.ctx.market.get(symbol)
    want = bars(sd, ivl, start, now, now)
    assert [c.ts_ms for c in got] == want.ts.tolist()
    assert not want.closed[-1]  # the forming bar is kept
    lot = 0.01 * 10.0 ** math.floor(math.log10(1000 / sd.close[0]))
    for i, c in enumerate(got):
        px = (c.open, c.high, c.low, c.close)
        true_px = (want.open[i], want.high[i], want.low[i], want.close[i])
        assert px == pytest.approx(true_px, rel=1e-5)
        assert c.volume_base == pytest.approx(want.volume[i], abs=lot)
        assert c.volume_quote == pytest.approx(want.quote_volume[i], abs=1e-3)


async def test_klines_recent_and_beyond_the_1440_row_horizon() -> None:
    async with running(venues=("okx",), history_days=12) as (sim, _), _client(sim) as okx:
        now = sim.ctx.now_ms()
        recent = await okx.klines("ETHUSDT", FIVE, now - 2 * DAY, now)  # candles only
        _assert_bars(recent, sim, "ETHUSDT", FIVE, now - 2 * DAY)
        week = await okx.klines("ETHUSDT", FIVE, now - 7 * DAY, now)  # + history-candles
        assert len(week) == 2016
        _assert_bars(week, sim, "ETHUSDT", FIVE, now - 7 * DAY)
        hours = await okx.klines("XRPUSDT", HOUR, now - 10 * DAY, now)
        assert len(hours) == 240
        _assert_bars(hours, sim, "XRPUSDT", HOUR, now - 10 * DAY)
        closed = await okx.klines("XRPUSDT", HOUR, now - 10 * DAY, now, forming=False)
        assert closed == hours[:-1]
        with pytest.raises(UserError, match="no 7m candles"):
            await okx.klines("XRPUSDT", 7 * MINUTE, now - DAY, now)


async def test_funding_history_rates_and_intervals() -> None:
    async with running(venues=("okx",)) as (sim, _), _client(sim) as okx:
        now = sim.ctx.now_ms()
        for symbol, hours in (("BTCUSDT", 8.0), ("ETHUSDT", 4.0)):
            got = await okx.funding_history(symbol, now - 5 * DAY, now)
            want = funding_history(sim.ctx.market.get(symbol), now - 5 * DAY, now, now)
            assert [f.ts_ms for f in got] == [t for t, _ in want] and len(got) >= 15
            assert [f.rate for f in got] == pytest.approx([r for _, r in want], abs=1e-8)
            assert {f.interval_h for f in got} == {hours}


async def test_unknown_symbols() -> None:
    async with running(venues=("okx",)) as (sim, _), _client(sim) as okx:
        now = sim.ctx.now_ms()
        for call in (
            okx.oi_history("FOOUSDT", FIVE, now - DAY, now),
            okx.klines("FOOUSDT", FIVE, now - DAY, now),
            okx.funding_history("FOOUSDT", now - DAY, now),
        ):
            with pytest.raises(UnknownSymbol):
                await call
        # A swap delisted after the list was read: OKX's 51001, and the list is read again.
        fake = Instrument("okx", "FOOUSDT", "FOO-USDT-SWAP", "FOO", "USDT", 1.0)
        listed = await okx._listed()
        listed["FOOUSDT"] = Listing(fake, 0)
        with pytest.raises(UnknownSymbol, match="doesn't exist"):
            await okx.klines("FOOUSDT", FIVE, now - DAY, now)
        assert "FOOUSDT" not in {i.symbol for i in await okx.instruments()}


async def _everything(sim: SimServer, okx: OkxClient) -> list[Any]:
    now = sim.ctx.now_ms()
    return [
        await okx.instruments(),
        await okx.snapshot(),
        await okx.oi_history("BTCUSDT", FIVE, now - 2 * DAY, now),
        await okx.klines("ETHUSDT", FIVE, now - 6 * DAY, now),
        await okx.klines("DOGEUSDT", HOUR, now - 7 * DAY, now),
        await okx.funding_history("ETHUSDT", now - 7 * DAY, now),
    ]


async def test_faults_change_nothing() -> None:
    async with running(venues=("okx",), seed=3) as (sim, _), _client(sim) as okx:
        clean = await _everything(sim, okx)
    faulty = running(venues=("okx",), seed=3, fault_rate=0.3)
    async with faulty as (sim, http), _client(sim) as okx:
        sim.ctx.faults.slow_s = 0.05
        okx.http.backoff_s, okx.http.max_attempts = 0.005, 10  # 0.25^10: no request gives up
        assert await _everything(sim, okx) == clean
        _, stats = await get(http, sim, "/_sim/stats")
        assert stats["venues"]["okx"]["faults"] > 0 and okx.http.stats.retries > 0


async def test_empty_lists_are_asked_again_then_believed() -> None:
    # One empty answer in five: a page is believed empty with 0.2^3 = 0.8 %; with this seed
    # (requests run in sequence, so the faults fall the same way each run) none is.
    async with running(venues=("okx",), seed=2, limit_scale=5) as (sim, _), _client(sim) as okx:
        now = sim.ctx.now_ms()
        clean: list[Any] = [await okx.oi_history("BTCUSDT", FIVE, now - 5 * DAY, now)]
        clean.append(await okx.klines("BTCUSDT", FIVE, now - 6 * DAY, now))
    empties = running(
        venues=("okx",), seed=2, limit_scale=5, fault_rate=0.2, fault_kinds=(Fault.EMPTY,)
    )
    async with empties as (sim, _), _client(sim) as okx:
        got: list[Any] = [await okx.oi_history("BTCUSDT", FIVE, now - 5 * DAY, now)]
        got.append(await okx.klines("BTCUSDT", FIVE, now - 6 * DAY, now))
        assert got == clean and okx.empty_refetches > 0
    always = running(venues=("okx",), fault_rate=1.0, fault_kinds=(Fault.EMPTY,))
    async with always as (sim, http), _client(sim) as okx:
        with pytest.raises(VenueUnavailable, match="no live USDT swaps"):
            await okx.instruments()
        assert await _requests(http, sim) == 3  # asked twice more, then believed


async def test_a_burst_stays_inside_the_candle_budget() -> None:
    # The real 2 s window: 48 requests must wait for it even on a loaded machine (in a 0.5 s
    # window, as before, a slow machine spread them past it and the limiter never waited).
    scale = 1
    async with (
        running(venues=("okx",), symbols=12, limit_scale=scale) as (sim, http),
        _client(sim) as okx,
    ):
        now = sim.ctx.now_ms()
        symbols = [i.symbol for i in await okx.instruments()]
        runs = [okx.klines(s, FIVE, now - 4 * DAY, now) for s in symbols]  # 4 pages each
        got = await asyncio.gather(*runs)
        assert [len(k) for k in got] == [1152] * 12
        _, stats = await get(http, sim, "/_sim/stats")
        assert stats["venues"]["okx"]["requests"] == 1 + 12 * 4  # instruments, 4 pages each
        assert stats["venues"]["okx"]["rejected_429"] == 0
        assert okx.limiter.waited_s > 0 and okx.http.stats.retries == 0
