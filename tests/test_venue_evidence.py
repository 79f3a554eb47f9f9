"""Premium-index and positioning history from the connectors: parsers on the venues' doc
examples, then each client against the simulator over real sockets (truth, paging, faults,
limits). Bitget publishes neither (its ratio series are not documented well enough)."""

from __future__ import annotations

from typing import Any

import pytest

from oiradar.errors import UserError
from oiradar.records import Positioning, PremiumBar
from oiradar.sim.faults import Fault
from oiradar.sim.market import positioning_snapshots, premium_bars
from oiradar.sim.server import SimServer
from oiradar.venues.binance import BinanceClient
from oiradar.venues.binance.rest import DATA, WEIGHT, charges
from oiradar.venues.binance.wire import merge_positioning, parse_premium_klines, parse_ratios
from oiradar.venues.bitget import BitgetClient
from oiradar.venues.bybit import BybitClient
from oiradar.venues.bybit.wire import check_payload, parse_premium_kline
from oiradar.venues.okx import OkxClient
from oiradar.venues.okx.wire import parse_premium_history
from oiradar.venues.okx.wire import premium_bars as okx_bars
from tests.simkit import MINUTE, get, running

FIVE, HOUR, DAY = 5 * MINUTE, 60 * MINUTE, 1440 * MINUTE


def _r(x: float, decimals: int) -> float:
    return float(f"{x:.{decimals}f}")


# -- parsers on the documented examples ----------------------------------------------------


def test_binance_premium_klines_doc_example() -> None:
    row = [1691603820000, "-0.00042931", "-0.00023641", "-0.00059406", "-0.00043659", "0",
           1691603879999, "0", 12, "0", "0", "0"]  # fmt: skip
    assert parse_premium_klines([row], "BTCUSDT", MINUTE) == [
        PremiumBar(
            "binance",
            "BTCUSDT",
            MINUTE,
            1691603820000,
            -0.00042931,
            -0.00023641,
            -0.00059406,
            -0.00043659,
        )
    ]


def test_binance_ratio_doc_examples_merge_by_time() -> None:
    top = [
        {"symbol": "BTCUSDT", "longShortRatio": "1.8105", "longAccount": "0.6442",
         "shortAccount": "0.3558", "timestamp": "1583139600000"},
        {"symbol": "BTCUSDT", "longShortRatio": "0.5576", "longAccount": "0.3580",
         "shortAccount": "0.6420", "timestamp": "1583139900000"},
    ]  # fmt: skip
    glob = [{"symbol": "BTCUSDT", "longShortRatio": "0.1960", "longAccount": "0.6622",
             "shortAccount": "0.3378", "timestamp": 1583139600000}]  # fmt: skip
    taker = [{"buySellRatio": "1.5586", "buyVol": "387.3300", "sellVol": "248.5030",
              "timestamp": "1583139600000"}]  # fmt: skip
    parts = [
        parse_ratios(top, "BTCUSDT", "/futures/data/topLongShortAccountRatio"),
        parse_ratios(glob, "BTCUSDT", "/futures/data/globalLongShortAccountRatio"),
        parse_ratios(taker, "BTCUSDT", "/futures/data/takerlongshortRatio"),
    ]
    assert merge_positioning(parts) == [
        Positioning("binance", "BTCUSDT", 1583139600000, 1.8105, None, 0.1960, 1.5586),
        Positioning("binance", "BTCUSDT", 1583139900000, 0.5576, None, None, None),
    ]


def test_binance_charges_premium_by_limit_and_ratios_to_the_data_bucket() -> None:
    assert charges("/fapi/v1/premiumIndexKlines", {"limit": 499}) == [(WEIGHT, "", 2)]
    assert charges("/fapi/v1/premiumIndexKlines", {"limit": 1500}) == [(WEIGHT, "", 10)]
    for path in ("topLongShortAccountRatio", "takerlongshortRatio"):
        assert charges(f"/futures/data/{path}", {"limit": 500}) == [(DATA, "", 1)]


def test_bybit_premium_kline_doc_example() -> None:
    payload = {"retCode": 0, "retMsg": "OK", "result": {"symbol": "BTCUSDT", "category": "",
               "list": [["1668470400000", "-0.000754", "-0.001071", "-0.001072", "-0.001072"]]},
               "retExtInfo": {}, "time": 1671969006930}  # fmt: skip
    assert check_payload(payload) is None
    assert parse_premium_kline(payload["result"], DAY) == [
        PremiumBar(
            "bybit", "BTCUSDT", DAY, 1668470400000, -0.000754, -0.001071, -0.001072, -0.001072
        )
    ]


def test_okx_premium_samples_become_bars_they_close() -> None:
    rows = [{"instId": "BTC-USDT-SWAP", "premium": "0.0001", "ts": "1597026383085"}]
    assert parse_premium_history(rows) == [(1597026383085, 0.0001)]
    t0 = 1_700_000_100_000 // FIVE * FIVE
    samples = {t0 + k * MINUTE: k / 1e4 for k in range(0, 11)}  # t0 .. t0+10m, every minute
    bars = okx_bars("BTCUSDT", samples, FIVE, t0, t0 + FIVE)
    # (t0-5m, t0] holds the t0 sample; (t0, t0+5m] the next five; (t0+5m, t0+10m] five more.
    assert bars == [
        PremiumBar("okx", "BTCUSDT", FIVE, t0, 1e-4, 5e-4, 1e-4, 5e-4),
        PremiumBar("okx", "BTCUSDT", FIVE, t0 + FIVE, 6e-4, 1e-3, 6e-4, 1e-3),
    ]


# -- against the simulator -------------------------------------------------------------------


def _premium_truth(sim: SimServer, venue: str, symbol: str, step: int, lo: int, hi: int) -> Any:
    sd = sim.ctx.market.get(symbol)
    b = premium_bars(sd, step, lo, hi, sim.ctx.now_ms())
    cols = zip(b.ts.tolist(), b.open, b.high, b.low, b.close, strict=True)
    return [
        PremiumBar(venue, symbol, step, t, *(_r(float(x), 8) for x in ohlc)) for t, *ohlc in cols
    ]


async def _stats(http: Any, sim: SimServer, venue: str) -> dict[str, int]:
    _, body = await get(http, sim, "/_sim/stats")
    return dict(body["venues"].get(venue, {}))


async def test_binance_premium_history_pages_like_klines_and_equals_the_truth() -> None:
    async with running(venues=("binance",)) as (sim, http), BinanceClient(sim.url) as c:
        now = sim.ctx.now_ms()
        await c.instruments()
        await http.post(sim.url + "/_sim/stats/reset")
        got = await c.premium_history("BTCUSDT", MINUTE, now - 2 * DAY, now)
        assert got == _premium_truth(sim, "binance", "BTCUSDT", MINUTE, now - 2 * DAY, now)
        assert len(got) == 2 * 1440 + 1 and got[-1].ts_ms == now  # the forming bar too
        stats = await _stats(http, sim, "binance")
        assert stats["requests"] == 6 and stats["weight"] == 6 * 2  # pages of 499, weight 2
        with pytest.raises(UserError, match="premium index interval"):
            await c.premium_history("BTCUSDT", 7 * MINUTE, now - DAY, now)


async def test_binance_positioning_merges_four_endpoints_within_30_days() -> None:
    async with (
        running(venues=("binance",), history_days=40) as (sim, http),
        BinanceClient(sim.url) as c,
    ):
        now = sim.ctx.now_ms()
        sd = sim.ctx.market.get("ETHUSDT")
        got = await c.positioning_history("ETHUSDT", FIVE, now - 3 * DAY, now)
        snaps = positioning_snapshots(sd, FIVE, now - 3 * DAY, now, now)
        assert [p.ts_ms for p in got] == snaps.ts.tolist()  # 864 samples: two pages each
        assert [p.top_account_ratio for p in got] == [_r(x, 4) for x in snaps.top_account]
        assert [p.top_position_ratio for p in got] == [_r(x, 4) for x in snaps.top_position]
        assert [p.account_ratio for p in got] == [_r(x, 4) for x in snaps.account]
        assert [p.taker_buy_sell_ratio for p in got] == [_r(x, 4) for x in snaps.taker_ratio]
        await http.post(sim.url + "/_sim/stats/reset")
        old = await c.positioning_history("ETHUSDT", HOUR, now - 40 * DAY, now - 25 * DAY)
        assert old and old[0].ts_ms >= now - 30 * DAY  # clamped, no -1130
        assert (await _stats(http, sim, "binance")).get("rejected_429", 0) == 0


async def test_binance_faults_change_nothing() -> None:
    async def both(c: BinanceClient, now: int) -> list[Any]:
        return [
            await c.premium_history("SOLUSDT", FIVE, now - 3 * DAY, now),
            await c.positioning_history("SOLUSDT", FIVE, now - 3 * DAY, now),
        ]

    async with running(venues=("binance",), seed=4) as (sim, _), BinanceClient(sim.url) as c:
        now = sim.ctx.now_ms()
        clean = await both(c, now)
    faulty = running(venues=("binance",), seed=4, fault_rate=0.3)
    async with faulty as (sim, http), BinanceClient(sim.url) as c:
        sim.ctx.faults.slow_s = 0.05
        c.http.backoff_s, c.http.max_attempts = 0.005, 12
        assert await both(c, now) == clean
        assert (await _stats(http, sim, "binance"))["faults"] > 0 and c.http.stats.retries > 0


async def test_bybit_premium_history_pages_back_and_survives_empty_pages() -> None:
    async with running(venues=("bybit",)) as (sim, http), BybitClient(sim.url) as c:
        now = sim.ctx.now_ms()
        got = await c.premium_history("XRPUSDT", MINUTE, now - 3 * DAY, now)
        assert got == _premium_truth(sim, "bybit", "XRPUSDT", MINUTE, now - 3 * DAY, now)
        assert len(got) == 3 * 1440 + 1
        assert (await _stats(http, sim, "bybit"))["requests"] == 5  # 1000 a page
    # One empty answer in five: a page is believed empty with 0.2^3 = 0.8 %; with this seed
    # (requests run in sequence, so the faults fall the same way each run) none is.
    empties = running(venues=("bybit",), fault_rate=0.2, fault_kinds=(Fault.EMPTY,), seed=1)
    async with empties as (sim, _), BybitClient(sim.url) as c:
        again = await c.premium_history("XRPUSDT", MINUTE, now - 3 * DAY, now)
        assert again == _premium_truth(sim, "bybit", "XRPUSDT", MINUTE, now - 3 * DAY, now)
        assert len(again) == len(got) and c.empty_retries > 0


async def test_okx_premium_bars_from_six_months_of_samples() -> None:
    async with (
        running(venues=("okx",), history_days=200) as (sim, http),
        OkxClient(sim.url) as c,
    ):
        now = sim.ctx.now_ms()
        sd = sim.ctx.market.get("BTCUSDT")
        got = await c.premium_history("BTCUSDT", FIVE, now - DAY, now)
        closes = sd.premium_close
        want = []
        for b in range(-(-(now - DAY) // FIVE) * FIVE, now + 1, FIVE):
            ks = [k for k in range(1, 6) if b + k * MINUTE <= now]
            v = [_r(float(closes[(b + k * MINUTE - sd.first_ms) // MINUTE - 1]), 8) for k in ks]
            if v:
                want.append(PremiumBar("okx", "BTCUSDT", FIVE, b, v[0], max(v), min(v), v[-1]))
        assert got == want and len(got) == 288  # the last one forming
        stats = await _stats(http, sim, "okx")
        assert stats["requests"] == 1 + 15 and stats.get("rejected_429", 0) == 0
        deep = await c.premium_history("BTCUSDT", HOUR, now - 200 * DAY, now - 180 * DAY)
        assert deep and deep[0].ts_ms >= now - 184 * DAY  # six months of samples


async def test_bitget_has_no_premium_or_positioning_history() -> None:
    async with running(venues=("bitget",)) as (sim, http), BitgetClient(sim.url) as c:
        now = sim.ctx.now_ms()
        assert await c.premium_history("BTCUSDT", FIVE, now - DAY, now) == []
        assert await c.positioning_history("BTCUSDT", FIVE, now - DAY, now) == []
        assert (await _stats(http, sim, "bitget")).get("requests", 0) == 0
