"""The simulator's Bybit v5 linear venue against exchange-apis.md §2, over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import aiohttp

from oiradar.sim.context import num, price_decimals, qty_decimals
from oiradar.sim.faults import Fault
from oiradar.sim.market import bars, funding_history, last_price, liquidation_orders, oi_snapshots
from oiradar.sim.server import SimServer
from tests.simkit import MINUTE, get, running

FIVE, HOUR, DAY = 5 * MINUTE, 60 * MINUTE, 24 * 60 * MINUTE
WS = "/v5/public/linear"
SHARE = 0.30
ENVELOPE = {"retCode", "retMsg", "result", "retExtInfo", "time"}
# The documented examples (exchange-apis.md §2.1 and §2.5): same keys, same JSON types.
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
OI_ROW = {"openInterest": "52664.642", "singleOpenInterest": "26332.321", "timestamp": "1"}
KLINE_ROW = ["1670608800000", "17071", "17073", "17027", "17055.5", "268.611", "4581234.5"]
FUNDING_ROW = {"symbol": "ETHUSDT", "fundingRate": "-0.00006352", "fundingRateTimestamp": "1"}
KLINE_FIELDS = {"start", "end", "interval", "open", "close", "high", "low", "volume"}
KLINE_FIELDS |= {"turnover", "confirm", "timestamp"}
LIQUIDATION = {"T": 1739502302929, "s": "ROSEUSDT", "S": "Sell", "v": "20000", "p": "0.04499"}


def _shape(obj: dict[str, Any], example: dict[str, Any]) -> None:
    assert set(example) <= set(obj), set(example) - set(obj)
    for key, value in example.items():
        assert type(obj[key]) is type(value), (key, obj[key], value)


async def call(http: aiohttp.ClientSession, sim: SimServer, path: str, **params: Any) -> Any:
    """One REST call: HTTP 200 and the v5 envelope; returns the whole body."""
    status, body = await get(http, sim, f"/v5/market/{path}?{urlencode(params)}")
    assert status == 200 and set(body) == ENVELOPE, body
    return body


async def ok(http: aiohttp.ClientSession, sim: SimServer, path: str, **params: Any) -> Any:
    """`result` of a successful linear call."""
    body = await call(http, sim, path, category="linear", **params)
    assert (body["retCode"], body["retMsg"], body["retExtInfo"]) == (0, "OK", {}), body
    assert body["time"] == sim.ctx.now_ms()
    return body["result"]


async def test_rest_payloads_match_the_documented_examples() -> None:
    async with running(venues=("bybit",)) as (sim, http):
        row = (await ok(http, sim, "tickers", symbol="BTCUSDT"))["list"][0]
        _shape(row, TICKER)
        assert all(isinstance(v, str) for v in row.values())
        assert {"singleOpenInterestValue", "prevPrice24h", "price24hPcnt", "prevPrice1h"} <= set(
            row
        )
        oi = await ok(http, sim, "open-interest", symbol="ETHUSDT", intervalTime="5min")
        assert (oi["symbol"], oi["category"], len(oi["list"])) == ("ETHUSDT", "linear", 50)
        _shape(oi["list"][0], OI_ROW)
        assert oi["nextPageCursor"].startswith("lastid%3D")
        kl = await ok(http, sim, "kline", symbol="BTCUSDT", interval="5")
        assert len(kl["list"]) == 200  # default limit
        assert [type(v) for v in kl["list"][0]] == [type(v) for v in KLINE_ROW]
        fr = await ok(http, sim, "funding/history", symbol="ETHUSDT", limit=1)
        _shape(fr["list"][0], FUNDING_ROW)
        info = (await ok(http, sim, "instruments-info", symbol="SOLUSDT"))["list"][0]
        assert (info["contractType"], info["status"], info["quoteCoin"], info["settleCoin"]) == (
            "LinearPerpetual",
            "Trading",
            "USDT",
            "USDT",
        )
        assert isinstance(info["fundingInterval"], int) and info["launchTime"].isdigit()
        assert {"tickSize", "minPrice", "maxPrice"} <= set(info["priceFilter"])
        assert {"qtyStep", "minOrderQty", "maxOrderQty"} <= set(info["lotSizeFilter"])


async def test_oi_is_two_sided_in_base_and_the_venues_share() -> None:
    async with running(venues=("bybit",)) as (sim, http):
        now = sim.ctx.now_ms()
        rows = (await ok(http, sim, "tickers"))["list"]
        assert [r["symbol"] for r in rows] == sim.ctx.market.symbols
        for r in rows:
            sd = sim.ctx.market.get(r["symbol"])
            lot = 10.0 ** -qty_decimals(sd)
            single, both = Decimal(r["singleOpenInterest"]), Decimal(r["openInterest"])
            assert single * 2 == both
            assert Decimal(r["singleOpenInterestValue"]) * 2 == Decimal(r["openInterestValue"])
            done = (now - sd.first_ms) // sd.bar_ms
            assert abs(float(single) - SHARE * sd.oi[done - 1]) <= lot / 2 + 1e-9
            mark = float(r["markPrice"])
            assert abs(float(r["openInterestValue"]) / (float(both) * mark) - 1) < 1e-6
            assert r["lastPrice"] == num(last_price(sd, now), len(r["lastPrice"].split(".")[1]))
            low, high = float(r["lowPrice24h"]), float(r["highPrice24h"])
            vwap = float(r["turnover24h"]) / float(r["volume24h"])
            assert low <= mark <= high and low * 0.999 <= vwap <= high * 1.001
            step = int(sd.funding_interval_h) * HOUR
            assert r["fundingIntervalHour"] == str(int(sd.funding_interval_h))
            assert now < int(r["nextFundingTime"]) <= now + step
            assert int(r["nextFundingTime"]) % step == 0


async def test_instruments_cursor_walks_every_symbol_once() -> None:
    async with running(venues=("bybit",)) as (sim, http):
        seen: list[dict[str, Any]] = []
        pages, cursor = 0, ""
        while True:
            page = await ok(http, sim, "instruments-info", limit=2, cursor=cursor)
            seen.extend(page["list"])
            pages, cursor = pages + 1, page["nextPageCursor"]
            if not cursor:
                break
        assert pages == 3 and [s["symbol"] for s in seen] == sorted(sim.ctx.market.symbols)
        for s in seen:
            sd = sim.ctx.market.get(s["symbol"])
            assert s["fundingInterval"] == int(sd.funding_interval_h * 60)  # minutes
            assert s["launchTime"] == str(sd.first_ms) and s["baseCoin"] == sd.base
        eth = await ok(http, sim, "instruments-info", baseCoin="ETH")
        assert [s["symbol"] for s in eth["list"]] == ["ETHUSDT"]
        assert (await ok(http, sim, "instruments-info", status="PreLaunch"))["list"] == []


async def test_oi_history_pages_newest_first_back_to_the_first_data() -> None:
    async with running(venues=("bybit",)) as (sim, http):
        now, sd = sim.ctx.now_ms(), sim.ctx.market.get("XRPUSDT")
        qd = qty_decimals(sd)
        stamps: list[int] = []
        cursor = ""
        while True:
            page = await ok(
                http,
                sim,
                "open-interest",
                symbol="XRPUSDT",
                intervalTime="1h",
                limit=200,
                cursor=cursor,
            )
            stamps.extend(int(r["timestamp"]) for r in page["list"])
            for r in page["list"]:
                assert Decimal(r["singleOpenInterest"]) * 2 == Decimal(r["openInterest"])
            if not (cursor := page["nextPageCursor"]):
                break
        assert stamps == list(range(now // HOUR * HOUR, sd.first_ms, -HOUR))  # no gap, no dup
        times, oi, _ = oi_snapshots(sd, HOUR, 0, now, now)
        assert stamps[::-1] == times.tolist()
        assert page["list"][-1]["singleOpenInterest"] == num(round(oi[0] * SHARE, qd), qd)
        window = await ok(
            http,
            sim,
            "open-interest",
            symbol="XRPUSDT",
            intervalTime="15min",
            startTime=now - 2 * HOUR,
            endTime=now - HOUR,
            limit=200,
        )
        got = [int(r["timestamp"]) for r in window["list"]]
        quarter = 15 * MINUTE
        assert got == list(range((now - HOUR) // quarter * quarter, now - 2 * HOUR - 1, -quarter))
        assert window["nextPageCursor"] == ""
        lone = await ok(
            http, sim, "open-interest", symbol="XRPUSDT", intervalTime="1d", startTime=sd.first_ms
        )
        assert int(lone["list"][0]["timestamp"]) == now // DAY * DAY  # walks back from now
        sim.ctx.clock.set(now + HOUR)
        newer = await ok(http, sim, "open-interest", symbol="XRPUSDT", intervalTime="1h", limit=1)
        assert [int(r["timestamp"]) for r in newer["list"]] == [stamps[0] + HOUR]


async def test_klines_newest_first_forming_candle_and_nothing_after_now() -> None:
    async with running(venues=("bybit",)) as (sim, http):
        now, sd = sim.ctx.now_ms(), sim.ctx.market.get("SOLUSDT")
        rows = (await ok(http, sim, "kline", symbol="SOLUSDT", interval="5", limit=3))["list"]
        starts = [int(r[0]) for r in rows]
        assert starts == [now // FIVE * FIVE - i * FIVE for i in range(3)]  # newest first
        truth = bars(sd, FIVE, starts[-1], now, now)
        pd, qd = price_decimals(sd), qty_decimals(sd)
        for r, i in zip(rows, (2, 1, 0), strict=True):
            cols = (truth.open, truth.high, truth.low, truth.close)
            assert r[1:5] == [num(c[i], pd) for c in cols]
            assert r[5:] == [num(truth.volume[i], qd), num(truth.quote_volume[i], 4)]
            assert float(r[2]) >= float(r[6]) / float(r[5]) >= float(r[3])  # turnover = v x p
        assert rows[0][4] == num(last_price(sd, now), pd)  # the forming candle closes at last
        seen: list[int] = []
        start = now - DAY + 7_000  # floored to its candle, as Bybit does
        while True:
            page = (
                await ok(http, sim, "kline", symbol="SOLUSDT", interval="5", limit=100, start=start)
            )["list"]
            if not page:
                break
            got = [int(r[0]) for r in page]
            assert got == sorted(got, reverse=True)
            seen.extend(reversed(got))
            start = got[0] + FIVE
        assert seen == list(range((now - DAY) // FIVE * FIVE, now + 1, FIVE))
        sim.ctx.clock.set(now + 10 * MINUTE)
        later = (await ok(http, sim, "kline", symbol="SOLUSDT", interval="5", limit=3))["list"]
        assert int(later[0][0]) == seen[-1] + 2 * FIVE and int(later[2][0]) == seen[-1]


async def test_day_week_month_candles_open_on_utc_boundaries() -> None:
    async with running(venues=("bybit",), history_days=40) as (sim, http):
        now = sim.ctx.now_ms()
        days = (await ok(http, sim, "kline", symbol="BTCUSDT", interval="D"))["list"]
        first = sim.ctx.market.get("BTCUSDT").first_ms
        assert [int(d[0]) for d in days] == list(range(now // DAY * DAY, first - 1, -DAY))
        weeks = (await ok(http, sim, "kline", symbol="BTCUSDT", interval="W"))["list"]
        assert all((int(w[0]) - 4 * DAY) % (7 * DAY) == 0 for w in weeks)  # Mondays
        assert int(weeks[0][0]) <= now < int(weeks[0][0]) + 7 * DAY
        months = (await ok(http, sim, "kline", symbol="BTCUSDT", interval="M"))["list"]
        # April straddles the first data (not served); May 2026 is forming.
        assert [m[0] for m in months] == ["1777593600000"]
        body = await call(http, sim, "kline", category="linear", symbol="BTCUSDT", interval="7")
        assert (body["retCode"], body["retMsg"]) == (10001, "Invalid period!")


async def test_funding_history_rules() -> None:
    async with running(venues=("bybit",)) as (sim, http):
        now, sd = sim.ctx.now_ms(), sim.ctx.market.get("ETHUSDT")
        body = await call(
            http, sim, "funding/history", category="linear", symbol="ETHUSDT", startTime=now - DAY
        )
        assert body["retCode"] == 10001 and body["result"] == {}
        rows = (await ok(http, sim, "funding/history", symbol="ETHUSDT"))["list"]
        truth = funding_history(sd, 0, now, now)
        assert [int(r["fundingRateTimestamp"]) for r in rows] == [t for t, _ in reversed(truth)]
        assert [float(r["fundingRate"]) for r in rows] == [round(x, 8) for _, x in reversed(truth)]
        end = now - DAY
        older = (await ok(http, sim, "funding/history", symbol="ETHUSDT", endTime=end))["list"]
        assert older and all(int(r["fundingRateTimestamp"]) <= end for r in older)
        two = await ok(
            http, sim, "funding/history", symbol="ETHUSDT", startTime=0, endTime=end, limit=2
        )
        assert two["list"] == older[:2]


async def test_bad_requests_answer_retcode_10001_with_http_200() -> None:
    async with running(venues=("bybit",)) as (sim, http):
        now = sim.ctx.now_ms()
        unknown = {
            "retCode": 10001,
            "retMsg": "params error: symbol invalid",
            "result": {},
            "retExtInfo": {},
            "time": now,
        }
        for path, extra in (
            ("tickers", {}),
            ("kline", {"interval": "5"}),
            ("open-interest", {"intervalTime": "5min"}),
            ("funding/history", {}),
            ("instruments-info", {}),
        ):
            assert await call(http, sim, path, category="linear", symbol="FOOUSDT", **extra) == (
                unknown
            )
        for path, params in (
            ("tickers", {"category": "spot"}),
            ("kline", {"category": "linear", "interval": "5"}),
            ("open-interest", {"category": "linear", "symbol": "BTCUSDT", "intervalTime": "2h"}),
            (
                "open-interest",
                {"category": "linear", "symbol": "BTCUSDT", "intervalTime": "1h", "limit": 201},
            ),
            (
                "open-interest",
                {
                    "category": "linear",
                    "symbol": "BTCUSDT",
                    "intervalTime": "1h",
                    "cursor": "garbage",
                },
            ),
            ("kline", {"category": "linear", "symbol": "BTCUSDT", "interval": "5", "limit": 0}),
            ("kline", {"category": "linear", "symbol": "BTCUSDT", "interval": "5", "start": "x"}),
            (
                "kline",
                {"category": "linear", "symbol": "BTCUSDT", "interval": "5", "start": 2, "end": 1},
            ),
        ):
            body = await call(http, sim, path, **params)
            assert body["retCode"] == 10001 and body["retMsg"].startswith("params error:"), body


async def test_empty_list_fault_keeps_the_envelope() -> None:
    async with running(venues=("bybit",), fault_rate=1.0, fault_kinds=(Fault.EMPTY,)) as (
        sim,
        http,
    ):
        for path, extra in (
            ("tickers", {}),
            ("instruments-info", {}),
            ("kline", {"symbol": "BTCUSDT", "interval": "1"}),
            ("open-interest", {"symbol": "BTCUSDT", "intervalTime": "5min"}),
            ("funding/history", {"symbol": "BTCUSDT"}),
        ):
            result = await ok(http, sim, path, **extra)
            assert result["list"] == [] and result.get("nextPageCursor", "") == ""


async def test_ip_limit_403_then_a_ten_minute_ban() -> None:
    # A scale below 1 stretches the 5 s window, so the burst never straddles a reset.
    async with running(venues=("bybit",), limit_scale=0.01) as (sim, http):
        url = sim.url + "/v5/market/tickers?category=linear&symbol=BTCUSDT"

        async def one() -> tuple[int, str]:
            async with http.get(url) as r:
                return r.status, await r.text()

        results = await asyncio.gather(*(one() for _ in range(603)))
        assert [s for s, _ in results].count(200) == 600
        refused = [(s, t) for s, t in results if s != 200]
        assert refused == [(403, "access too frequent")] * 3
        _, stats = await get(http, sim, "/_sim/stats")
        b = stats["venues"]["bybit"]
        assert (b["requests"], b["bans"], b["while_banned"], b["rejected_429"]) == (603, 1, 2, 0)
        left = sim.ctx.limits.banned_for("bybit", "127.0.0.1")
        assert 600 / 0.01 - 60 < left <= 600 / 0.01


async def test_same_seed_same_bytes() -> None:
    paths = [
        "tickers?category=linear",
        "kline?category=linear&symbol=BTCUSDT&interval=1&limit=50",
        "open-interest?category=linear&symbol=DOGEUSDT&intervalTime=15min&limit=100",
        "funding/history?category=linear&symbol=SOLUSDT",
        "instruments-info?category=linear",
    ]
    bodies = []
    for seed in (7, 7, 8):
        async with running(venues=("bybit",), seed=seed) as (sim, http):
            one = []
            for p in paths:
                async with http.get(f"{sim.url}/v5/market/{p}") as r:
                    one.append(await r.read())
            bodies.append(one)
    assert bodies[0] == bodies[1]
    assert bodies[2][0] != bodies[0][0]


async def _until(
    ws: aiohttp.ClientWebSocketResponse, match: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The next message that matches (others are skipped); fails after 3 s."""
    async with asyncio.timeout(3):
        while True:
            msg: dict[str, Any] = await ws.receive_json()
            if match(msg):
                return msg


def _topic(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("topic") == name


async def test_ws_subscribe_ack_ping_and_ticker_snapshot_then_delta() -> None:
    async with running(venues=("bybit",)) as (sim, http), http.ws_connect(sim.url + WS) as ws:
        now = sim.ctx.now_ms()
        await ws.send_json({"req_id": "1", "op": "subscribe", "args": ["tickers.BTCUSDT"]})
        ack = await ws.receive_json()
        assert ack == {
            "success": True,
            "ret_msg": "",
            "conn_id": ack["conn_id"],
            "req_id": "1",
            "op": "subscribe",
        }
        snap = await _until(ws, _topic("tickers.BTCUSDT"))
        assert (snap["type"], snap["ts"]) == ("snapshot", now) and isinstance(snap["cs"], int)
        _shape(snap["data"], TICKER)
        rest = (await ok(http, sim, "tickers", symbol="BTCUSDT"))["list"][0]
        assert {k: rest[k] for k in TICKER} == {k: snap["data"][k] for k in TICKER}
        await ws.send_json({"op": "ping"})
        pong = await ws.receive_json()  # frozen clock: nothing changed, so no delta in between
        assert pong == {
            "success": True,
            "ret_msg": "pong",
            "conn_id": ack["conn_id"],
            "req_id": "",
            "op": "ping",
        }
        sim.ctx.clock.set(now + 3 * MINUTE)
        delta = await _until(ws, _topic("tickers.BTCUSDT"))
        assert (
            delta["type"] == "delta"
            and delta["cs"] > snap["cs"]
            and delta["ts"] == now + 3 * MINUTE
        )
        changed = {k: v for k, v in delta["data"].items() if k != "symbol"}
        assert changed and delta["data"]["symbol"] == "BTCUSDT"
        assert all(snap["data"][k] != v for k, v in changed.items())  # only changed fields
        merged = {**snap["data"], **delta["data"]}
        rest = (await ok(http, sim, "tickers", symbol="BTCUSDT"))["list"][0]
        assert {k: merged[k] for k in TICKER} == {k: rest[k] for k in TICKER}
        for args, msg in (
            (["foo.BTCUSDT"], "error:handler not found,topic:foo.BTCUSDT"),
            (["tickers.NOPEUSDT"], "Invalid symbol :[tickers.NOPEUSDT]"),
            (["kline.7.BTCUSDT"], "error:handler not found,topic:kline.7.BTCUSDT"),
        ):
            await ws.send_json({"op": "subscribe", "args": args})
            nack = await _until(ws, lambda m: m.get("op") == "subscribe")
            assert (nack["success"], nack["ret_msg"]) == (False, msg)
        await ws.send_json({"req_id": "u", "op": "unsubscribe", "args": ["tickers.BTCUSDT"]})
        done = await _until(ws, lambda m: m.get("op") == "unsubscribe")
        assert (done["success"], done["req_id"]) == (True, "u")
        _, stats = await get(http, sim, "/_sim/stats")
        assert stats["venues"]["bybit"]["ws_connections"] == 1


async def test_ws_all_liquidations_are_complete_with_position_side_and_kline_confirm() -> None:
    async with running(venues=("bybit",)) as (sim, http), http.ws_connect(sim.url + WS) as ws:
        t0 = sim.ctx.now_ms()
        sd = sim.ctx.market.get("BTCUSDT")
        await ws.send_json(
            {"op": "subscribe", "args": ["allLiquidation.BTCUSDT", "kline.5.BTCUSDT"]}
        )
        first = await _until(ws, _topic("kline.5.BTCUSDT"))  # the pusher has run once
        k = first["data"][0]
        assert (k["start"], k["confirm"], k["interval"]) == (t0 // FIVE * FIVE, False, "5")
        assert set(k) == KLINE_FIELDS and k["end"] == k["start"] + FIVE - 1
        t1 = t0 + 5 * MINUTE
        sim.ctx.clock.set(t1)
        liq = await _until(ws, _topic("allLiquidation.BTCUSDT"))
        assert (liq["type"], liq["ts"]) == ("snapshot", t1)
        truth = liquidation_orders(sd, t0, t1, sim.ctx.venue_seed("bybit"))
        assert len(liq["data"]) == len(truth) > 0
        lot = 10.0 ** -qty_decimals(sd)
        for got, real in zip(liq["data"], truth, strict=True):
            _shape(got, LIQUIDATION)
            assert (got["T"], got["s"]) == (real.ts_ms, "BTCUSDT")
            assert got["S"] == ("Buy" if real.long else "Sell")  # Buy: a long was liquidated
            assert abs(float(got["v"]) - real.qty_base * SHARE) <= lot
            assert abs(float(got["p"]) - real.price) <= 0.05
        closed = await _until(ws, _topic("kline.5.BTCUSDT"))
        assert (closed["data"][0]["start"], closed["data"][0]["confirm"]) == (k["start"], True)
        forming = await _until(ws, _topic("kline.5.BTCUSDT"))
        assert forming["data"][0]["start"] == k["start"] + FIVE
        assert forming["data"][0]["confirm"] is False


async def test_ws_is_cut_when_the_client_stops_pinging() -> None:
    # The 10-minute idle cut shortened to 0.3 s of wall time for the test.
    async with (
        running(venues=("bybit",), extra={"bybit_idle_s": 0.3}) as (sim, http),
        http.ws_connect(sim.url + WS) as ws,
    ):
        for _ in range(6):  # 0.6 s of pings keeps it open
            await ws.send_json({"op": "ping", "req_id": "k"})
            assert (await ws.receive_json())["req_id"] == "k"
            await asyncio.sleep(0.1)
        async with asyncio.timeout(2):
            async for _ in ws:
                pass
        assert ws.closed and ws.close_code == 1001


async def test_limit_scale_leaves_the_idle_cut_on_wall_time() -> None:
    """watch.md's recipe gives the simulator --limit-scale S for its speed: the rate limits
    scale, the keepalive deadline must not, since clients ping every 20 s of wall time. At
    300x the cut came after 2 s and the streams reconnected endlessly (issue #12, item 4)."""
    async with (
        running(venues=("bybit",), limit_scale=300, speed=300.0) as (sim, http),
        http.ws_connect(sim.url + WS) as ws,
    ):
        await ws.send_json({"op": "subscribe", "args": ["tickers.BTCUSDT"]})
        pushes = 0
        loop = asyncio.get_running_loop()
        until = loop.time() + 3.0  # past 600 s / 300, with no ping sent
        while loop.time() < until:
            msg = await ws.receive(timeout=until - loop.time() + 0.5)
            assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, ws.close_code)
            pushes += '"topic"' in msg.data
        assert not ws.closed and pushes > 10
