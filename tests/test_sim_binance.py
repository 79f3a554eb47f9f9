"""The simulator's Binance USD-M venue against exchange-apis.md §1, over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp

from oiradar.sim.market import liquidation_orders
from tests.simkit import MINUTE, get, running

FIVE = 5 * MINUTE


def _shape(obj: dict[str, Any], example: dict[str, Any]) -> None:
    """Same keys, and each value of the same JSON type as the documented example."""
    assert set(example) <= set(obj), set(example) - set(obj)
    for key, value in example.items():
        assert type(obj[key]) is type(value), (key, obj[key], value)


async def test_rest_payloads_match_the_documented_examples() -> None:
    async with running(venues=("binance",)) as (sim, http):
        now = sim.ctx.now_ms()
        _, oi = await get(http, sim, "/fapi/v1/openInterest?symbol=BTCUSDT")
        _shape(oi, {"openInterest": "10659.509", "symbol": "BTCUSDT", "time": 1589437530011})
        _, hist = await get(http, sim, "/futures/data/openInterestHist?symbol=BTCUSDT&period=5m")
        _shape(
            hist[0],
            {
                "symbol": "BTCUSDT",
                "sumOpenInterest": "20403.637",
                "sumOpenInterestValue": "150570784.078",
                "CMCCirculatingSupply": "165880.538",
                "timestamp": "1583127900000",
            },
        )
        assert len(hist) == 30  # default limit
        _, kl = await get(http, sim, "/fapi/v1/klines?symbol=BTCUSDT&interval=5m&limit=3")
        example = [
            1499040000000,
            "0.0163",
            "0.8",
            "0.0157",
            "0.0157",
            "148976.11",
            1499644799999,
            "2434.19",
            308,
            "1756.87",
            "28.46",
            "0",
        ]
        assert [type(v) for v in kl[0]] == [type(v) for v in example]
        _, pi = await get(http, sim, "/fapi/v1/premiumIndex?symbol=BTCUSDT")
        _shape(
            pi,
            {
                "symbol": "BTCUSDT",
                "markPrice": "11793.63",
                "indexPrice": "11781.80",
                "estimatedSettlePrice": "11781.16",
                "lastFundingRate": "0.00038246",
                "interestRate": "0.0001",
                "nextFundingTime": 1597392000000,
                "time": 1597370495002,
            },
        )
        assert pi["nextFundingTime"] > now
        _, fr = await get(http, sim, "/fapi/v1/fundingRate?symbol=BTCUSDT&limit=5")
        _shape(
            fr[0],
            {
                "symbol": "BTCUSDT",
                "fundingRate": "0.0001",
                "fundingTime": 1570636800000,
                "markPrice": "34287.54",
            },
        )
        assert all(r["fundingTime"] <= now and r["fundingTime"] % (8 * 3_600_000) == 0 for r in fr)
        _, info = await get(http, sim, "/fapi/v1/exchangeInfo")
        assert info["rateLimits"][0] == {
            "rateLimitType": "REQUEST_WEIGHT",
            "interval": "MINUTE",
            "intervalNum": 1,
            "limit": 2400,
        }
        sym = info["symbols"][0]
        assert (sym["contractType"], sym["status"], sym["quoteAsset"]) == (
            "PERPETUAL",
            "TRADING",
            "USDT",
        )
        _, alls = await get(http, sim, "/fapi/v1/premiumIndex")
        assert [p["symbol"] for p in alls] == sim.ctx.market.symbols
        _, t24 = await get(http, sim, "/fapi/v1/ticker/24hr?symbol=ETHUSDT")
        assert {
            "lastPrice",
            "priceChangePercent",
            "volume",
            "quoteVolume",
            "openTime",
            "closeTime",
            "count",
        } <= t24.keys()


async def test_units_are_the_venues_share_of_the_market() -> None:
    async with running(venues=("binance",)) as (sim, http):
        now = sim.ctx.now_ms()
        sd = sim.ctx.market.get("ETHUSDT")
        _, oi = await get(http, sim, "/fapi/v1/openInterest?symbol=ETHUSDT")
        done = (now - sd.first_ms) // sd.bar_ms
        assert float(oi["openInterest"]) == round(0.40 * sd.oi[done - 1], 2)
        _, hist = await get(
            http, sim, "/futures/data/openInterestHist?symbol=ETHUSDT&period=5m&limit=1"
        )
        row = hist[0]
        price = float(row["sumOpenInterestValue"]) / float(row["sumOpenInterest"])
        i = (int(row["timestamp"]) - sd.first_ms) // sd.bar_ms - 1
        assert abs(price / sd.close[i] - 1) < 1e-9  # USD = base x price at the snapshot


async def test_no_future_data_and_pagination_is_complete() -> None:
    async with running(venues=("binance",)) as (sim, http):
        now = sim.ctx.now_ms()
        day_ago = now - 86_400_000
        seen: list[int] = []
        start = day_ago
        while True:
            _, page = await get(
                http, sim, f"/fapi/v1/klines?symbol=SOLUSDT&interval=5m&limit=100&startTime={start}"
            )
            if not page:
                break
            seen.extend(r[0] for r in page)
            start = page[-1][0] + 1
        assert seen == list(range(seen[0], seen[-1] + FIVE, FIVE))  # no gap, no duplicate
        assert seen[0] >= day_ago and seen[-1] <= now < seen[-1] + FIVE  # last bar is forming
        sim.ctx.clock.set(now + 10 * MINUTE)
        _, later = await get(http, sim, "/fapi/v1/klines?symbol=SOLUSDT&interval=5m&limit=3")
        assert later[-1][0] == seen[-1] + 2 * FIVE
        _, hist = await get(
            http, sim, "/futures/data/openInterestHist?symbol=SOLUSDT&period=5m&limit=500"
        )
        ts = [int(r["timestamp"]) for r in hist]
        assert ts == sorted(ts) and ts[-1] <= now + 10 * MINUTE


async def test_oi_history_only_30_days_and_errors() -> None:
    async with running(venues=("binance",), history_days=40) as (sim, http):
        now = sim.ctx.now_ms()
        status, body = await get(
            http,
            sim,
            "/futures/data/openInterestHist?symbol=BTCUSDT"
            f"&period=1h&startTime={now - 31 * 86_400_000}",
        )
        assert status == 400 and body["code"] == -1130
        status, body = await get(http, sim, "/fapi/v1/openInterest?symbol=FOOUSDT")
        assert (status, body) == (400, {"code": -1121, "msg": "Invalid symbol."})
        status, body = await get(
            http, sim, "/futures/data/openInterestHist?symbol=BTCUSDT&period=1m"
        )
        assert status == 400 and body["code"] == -1130
        status, body = await get(http, sim, "/fapi/v1/openInterest")
        assert status == 400 and body["code"] == -1102


async def test_weight_header_429_then_418_and_stats() -> None:
    # A tiny scale stretches the 1-minute window, so the test never straddles a reset.
    async with running(venues=("binance",), limit_scale=0.01) as (sim, http):
        statuses = []
        for _ in range(241):  # 241 x weight 10 = 2410 > 2400
            async with http.get(sim.url + "/fapi/v1/premiumIndex") as r:
                statuses.append(r.status)
                last_headers = r.headers
        assert statuses[:240] == [200] * 240 and statuses[240] == 429
        assert last_headers["Retry-After"].isdigit()
        async with http.get(sim.url + "/fapi/v1/premiumIndex?symbol=BTCUSDT") as r:
            assert r.status == 418 and "banned until" in (await r.json())["msg"]
        async with http.get(sim.url + "/fapi/v1/time_is_not_served?x=1") as r:
            pass
        async with http.get(sim.url + "/fapi/v1/openInterest?symbol=BTCUSDT") as r:
            assert r.status == 418
        _, stats = await get(http, sim, "/_sim/stats")
        b = stats["venues"]["binance"]
        assert (b["rejected_429"], b["bans"]) == (1, 1) and b["while_banned"] >= 1
        assert b["weight"] == 2410


async def test_same_seed_same_bytes() -> None:
    paths = [
        "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=50",
        "/fapi/v1/premiumIndex",
        "/futures/data/openInterestHist?symbol=XRPUSDT&period=15m&limit=100",
        "/fapi/v1/fundingRate?symbol=DOGEUSDT&limit=20",
    ]
    bodies = []
    for _ in range(2):
        async with running(venues=("binance",)) as (sim, http):
            one = []
            for p in paths:
                async with http.get(sim.url + p) as r:
                    one.append(await r.read())
            bodies.append(one)
    assert bodies[0] == bodies[1]
    async with (
        running(venues=("binance",), seed=8) as (sim, http),
        http.get(sim.url + paths[0]) as r,
    ):
        assert await r.read() != bodies[0][0]


async def _collect(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[Any]:
    out: list[Any] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async for msg in ws:  # a loop, so messages read before the timeout are kept
                out.append(json.loads(msg.data))  # noqa: PERF401
    return out


async def test_force_order_stream_is_sampled_with_order_side() -> None:
    async with running(venues=("binance",)) as (sim, http):
        t0 = sim.ctx.now_ms()
        async with http.ws_connect(sim.url + "/market/ws/!forceOrder@arr") as ws:
            await asyncio.sleep(0.15)
            sim.ctx.clock.set(t0 + 10 * MINUTE)  # ten simulated minutes at once
            got = await _collect(ws, 0.6)
        orders = [m["o"] for m in got]
        assert orders and all(m["e"] == "forceOrder" for m in got)
        buckets = [(o["s"], o["T"] // 1000) for o in orders]
        assert len(buckets) == len(set(buckets))  # <= 1 per symbol per second
        sd = sim.ctx.market.get("BTCUSDT")
        truth = {
            o.ts_ms: o
            for o in liquidation_orders(sd, t0, t0 + 10 * MINUTE, sim.ctx.venue_seed("binance"))
        }
        btc = [o for o in orders if o["s"] == "BTCUSDT"]
        assert btc and len(btc) <= len(truth)
        for o in btc:
            real = truth[o["T"]]
            # BUY closes a short: the liquidated position is SHORT.
            assert o["S"] == ("SELL" if real.long else "BUY")


async def test_combined_streams_subscribe_and_kline_close() -> None:
    async with running(venues=("binance",)) as (sim, http):
        t0 = sim.ctx.now_ms()
        async with http.ws_connect(sim.url + "/market/stream?streams=btcusdt@kline_5m") as ws:
            await ws.send_json({"method": "SUBSCRIBE", "params": ["!markPrice@arr@1s"], "id": 7})
            ack = await ws.receive_json()
            assert ack == {"result": None, "id": 7}
            await ws.send_json({"method": "SUBSCRIBE", "params": ["nonsense@x"], "id": 8})
            assert (await ws.receive_json())["error"]["code"] == 2
            sim.ctx.clock.set(t0 + 6 * MINUTE)
            got = await _collect(ws, 0.5)
        streams = {m["stream"] for m in got}
        assert streams == {"btcusdt@kline_5m", "!markPrice@arr@1s"}
        marks = next(m["data"] for m in got if m["stream"] == "!markPrice@arr@1s")
        assert {m["s"] for m in marks} == set(sim.ctx.market.symbols)
        assert any(m["data"]["k"]["x"] for m in got if m["stream"] == "btcusdt@kline_5m")


async def test_connection_is_cut_after_24_simulated_hours() -> None:
    async with (
        running(venues=("binance",)) as (sim, http),
        http.ws_connect(sim.url + "/market/ws/btcusdt@markPrice") as ws,
    ):
        sim.ctx.clock.set(sim.ctx.now_ms() + 24 * 3_600_000 + 1)
        async with asyncio.timeout(3):
            async for _ in ws:
                pass
        assert ws.closed and ws.close_code == 1001


async def test_more_than_ten_messages_a_second_closes_the_connection() -> None:
    async with (
        running(venues=("binance",)) as (sim, http),
        http.ws_connect(sim.url + "/market/ws") as ws,
    ):
        for n in range(11):  # the 11th within a second is one too many
            await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": n})
        replies: list[Any] = []
        async with asyncio.timeout(3):
            while (msg := await ws.receive()).type == aiohttp.WSMsgType.TEXT:
                replies.append(json.loads(msg.data))
        assert replies == [{"result": [], "id": n} for n in range(10)]
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert (msg.data, msg.extra) == (aiohttp.WSCloseCode.POLICY_VIOLATION, "Too many requests")


async def test_weekly_klines_open_on_monday() -> None:
    async with running(venues=("binance",), history_days=30) as (sim, http):
        _, rows = await get(http, sim, "/fapi/v1/klines?symbol=BTCUSDT&interval=1w&limit=3")
        assert rows
        for row in rows:
            assert (row[0] // 86_400_000 + 3) % 7 == 0  # Monday 00:00 UTC
