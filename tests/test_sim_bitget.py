"""The simulator's Bitget v2 venue (USDT-FUTURES) against exchange-apis.md §4, over sockets."""

from __future__ import annotations

import asyncio
import json
from itertools import pairwise
from typing import Any

import aiohttp
import pytest

from oiradar.sim.faults import Fault
from oiradar.sim.limits import Rule
from oiradar.sim.market import funding_now, oi_at
from oiradar.sim.server import SimServer
from oiradar.sim.venues.bitget import rest as bitget_rest
from oiradar.sim.venues.bitget import ws as bitget_ws
from tests.simkit import MINUTE, get, running

M = "/api/v2/mix/market/"
Q = "?productType=USDT-FUTURES"
HOUR, DAY = 60 * MINUTE, 24 * 60 * MINUTE
H1 = "candles" + Q + "&symbol=BTCUSDT&granularity=1H"
WS_SUB = {"instType": "USDT-FUTURES", "channel": "ticker", "instId": "BTCUSDT"}
# Keys of the documented examples (coincise Bitget doc dump, ccxt handle_ticker).
CONTRACT_KEYS = {
    "symbol", "baseCoin", "quoteCoin", "buyLimitPriceRatio", "sellLimitPriceRatio",
    "feeRateUpRatio", "makerFeeRate", "takerFeeRate", "openCostUpRatio", "supportMarginCoins",
    "minTradeNum", "priceEndStep", "volumePlace", "pricePlace", "sizeMultiplier", "symbolType",
    "minTradeUSDT", "maxSymbolOrderNum", "maxProductOrderNum", "maxPositionNum", "symbolStatus",
    "offTime", "limitOpenTime", "deliveryTime", "deliveryStartTime", "launchTime", "fundInterval",
    "minLever", "maxLever", "posLimit", "maintainTime", "maxMarketOrderQty", "maxOrderQty",
}  # fmt: skip
TICKER_KEYS = {
    "symbol", "lastPr", "askPr", "bidPr", "bidSz", "askSz", "high24h", "low24h", "ts", "change24h",
    "baseVolume", "quoteVolume", "usdtVolume", "openUtc", "changeUtc24h", "indexPrice",
    "fundingRate", "holdingAmount", "deliveryStartTime", "deliveryTime", "deliveryStatus",
    "open24h", "markPrice",
}  # fmt: skip
WS_TICKER_KEYS = [
    "instId", "lastPr", "bidPr", "askPr", "bidSz", "askSz", "open24h", "high24h", "low24h",
    "change24h", "fundingRate", "nextFundingTime", "markPrice", "indexPrice", "holdingAmount",
    "baseVolume", "quoteVolume", "openUtc", "symbolType", "symbol", "deliveryPrice", "ts",
]  # fmt: skip


async def _ok(http: aiohttp.ClientSession, sim: SimServer, path: str) -> Any:
    status, body = await get(http, sim, path)
    assert status == 200, body
    assert (body["code"], body["msg"]) == ("00000", "success")
    assert body["requestTime"] == sim.ctx.now_ms()
    return body["data"]


async def _err(http: aiohttp.ClientSession, sim: SimServer, path: str) -> tuple[int, str]:
    status, body = await get(http, sim, path)
    assert body["data"] is None and isinstance(body["requestTime"], int), body
    assert isinstance(body["code"], str) and body["msg"], body
    return status, body["code"]


def _strings(row: dict[str, Any], allow_null: tuple[str, ...] = ()) -> None:
    for key, value in row.items():
        assert isinstance(value, str) or (value is None and key in allow_null), (key, value)


async def test_contracts_match_the_documented_example() -> None:
    async with running(venues=("bitget",)) as (sim, http):
        rows = await _ok(http, sim, M + "contracts" + Q)
        assert [r["symbol"] for r in rows] == sim.ctx.market.symbols
        for r in rows:
            assert set(r) >= CONTRACT_KEYS, CONTRACT_KEYS - set(r)
            assert r.pop("supportMarginCoins") == ["USDT"]
            _strings(r)
            sd = sim.ctx.market.get(r["symbol"])
            assert (r["baseCoin"], r["quoteCoin"]) == (sd.base, "USDT")
            assert (r["symbolType"], r["symbolStatus"]) == ("perpetual", "normal")
            assert r["fundInterval"] == str(int(sd.funding_interval_h))
            assert float(r["minTradeNum"]) == 10.0 ** -int(r["volumePlace"])
        one = await _ok(http, sim, M + "contracts?productType=usdt-futures&symbol=ETHUSDT")
        assert [r["symbol"] for r in one] == ["ETHUSDT"]
        assert await _ok(http, sim, M + "contracts?productType=COIN-FUTURES") == []


async def test_tickers_units_and_single_views_agree() -> None:
    async with running(venues=("bitget",)) as (sim, http):
        now, share = sim.ctx.now_ms(), sim.ctx.share("bitget")
        rows = await _ok(http, sim, M + "tickers" + Q)
        assert len(rows) == 5
        for t in rows:
            assert set(t) == TICKER_KEYS
            _strings(t, allow_null=("deliveryStartTime", "deliveryTime"))
            sd = sim.ctx.market.get(t["symbol"])
            step = 10.0 ** -int(await _volume_place(http, sim, t["symbol"]))
            # OI in base coin: this venue's share of the market OI.
            assert abs(float(t["holdingAmount"]) - share * oi_at(sd, now)) <= step
            vwap = float(t["quoteVolume"]) / float(t["baseVolume"])
            assert float(t["low24h"]) * 0.999 <= vwap <= float(t["high24h"]) * 1.001
            assert float(t["low24h"]) <= float(t["lastPr"]) <= float(t["high24h"])
            assert t["usdtVolume"] == t["quoteVolume"] and t["ts"] == str(now)
            assert float(t["fundingRate"]) == pytest.approx(funding_now(sd, now)[0], abs=1e-6)
            single = await _ok(http, sim, M + "ticker" + Q + "&symbol=" + t["symbol"])
            assert single == [t]
            oi = await _ok(http, sim, M + "open-interest" + Q + "&symbol=" + t["symbol"])
            assert oi == {
                "openInterestList": [{"symbol": t["symbol"], "size": t["holdingAmount"]}],
                "ts": str(now),
            }


async def _volume_place(http: aiohttp.ClientSession, sim: SimServer, symbol: str) -> str:
    rows = await _ok(http, sim, M + "contracts" + Q + "&symbol=" + symbol)
    return str(rows[0]["volumePlace"])


async def test_candles_are_oldest_first_aligned_and_page_without_gaps() -> None:
    async with running(venues=("bitget",)) as (sim, http):
        now = sim.ctx.now_ms()
        base = M + "candles" + Q + "&symbol=BTCUSDT&granularity="
        rows = await _ok(http, sim, base + "5m")
        assert len(rows) == 100  # default limit
        for row in rows:
            assert len(row) == 7 and all(isinstance(v, str) for v in row)
            o, h, lo, c, vol, quote = map(float, row[1:])
            assert lo <= min(o, c) <= max(o, c) <= h
            assert lo * vol * 0.999 <= quote <= h * vol * 1.001  # quote ~ base x price
        ts = [int(r[0]) for r in rows]
        assert all(b - a == 5 * MINUTE for a, b in pairwise(ts))
        assert ts[-1] == now - now % (5 * MINUTE)  # the running bar is the newest
        # Page back through all of the 1m history with endTime: no gaps, no duplicates.
        pages, end = [], now
        while page := await _ok(http, sim, f"{base}1m&limit=1000&endTime={end}"):
            pages = page + pages
            end = int(page[0][0]) - 1
        ts = [int(r[0]) for r in pages]
        assert all(b - a == MINUTE for a, b in pairwise(ts))
        assert ts[0] == sim.ctx.market.get("BTCUSDT").first_ms and len(pages) > 8 * 1440
        # Forward windows of startTime/endTime tile the same series.
        start, tiled = ts[100], []
        for _ in range(3):
            tiled += await _ok(
                http, sim, f"{base}1m&startTime={start}&endTime={start + 99 * MINUTE}"
            )
            start += 100 * MINUTE
        assert tiled == pages[100:400]
        # history-candles (limit <= 200) holds the same closed bars, not the running one.
        hist, end = [], now
        hbase = M + "history-candles" + Q + "&symbol=BTCUSDT&granularity=15m&limit=200"
        while page := await _ok(http, sim, f"{hbase}&endTime={end}"):
            hist, end = page + hist, int(page[0][0]) - 1
        full = await _ok(http, sim, base + "15m&limit=1000")
        assert hist == full[-len(hist) - 1 : -1] and len(hist) >= 7 * 96


async def test_nothing_after_now_and_new_bars_appear_with_the_clock() -> None:
    async with running(venues=("bitget",)) as (sim, http):
        now = sim.ctx.now_ms()
        url = M + "candles" + Q + f"&symbol=SOLUSDT&granularity=1m&endTime={now + DAY}"
        before = await _ok(http, sim, url)
        assert int(before[-1][0]) == now - now % MINUTE
        hist = await _ok(http, sim, M + "history-candles" + Q + "&symbol=SOLUSDT&granularity=1m")
        assert int(hist[-1][0]) == int(before[-1][0]) - MINUTE
        async with http.post(sim.url + "/_sim/clock", json={"now_ms": now + 5 * MINUTE}) as r:
            assert r.status == 200
        after = await _ok(http, sim, url)
        assert int(after[-1][0]) == int(before[-1][0]) + 5 * MINUTE
        assert after[:-6] == before[5:-1]  # closed bars are unchanged ...
        assert after[-6][0] == before[-1][0] and after[-6] != before[-1]  # ... the running one grew
        # Bars longer than 4H open at 00:00 UTC+8 unless the `utc` variant is asked for.
        base = M + "candles" + Q + "&symbol=SOLUSDT&limit=3&granularity="
        day = await _ok(http, sim, base + "1D")
        assert {int(r[0]) % DAY for r in day} == {16 * HOUR}
        assert {int(r[0]) % DAY for r in await _ok(http, sim, base + "1Dutc")} == {0}
        funding = await _ok(http, sim, M + "history-fund-rate" + Q + "&symbol=SOLUSDT")
        assert all(int(f["fundingTime"]) <= now + 5 * MINUTE for f in funding)


async def test_history_candles_reach_past_the_one_month_window_of_candles() -> None:
    async with running(venues=("bitget",), history_days=40) as (sim, http):
        old = sim.ctx.now_ms() - 31 * DAY
        q = Q + f"&symbol=BTCUSDT&granularity=1m&endTime={old}"
        assert await _ok(http, sim, M + "candles" + q) == []
        rows = await _ok(http, sim, M + "history-candles" + q)
        assert len(rows) == 100 and int(rows[-1][0]) == old - old % MINUTE


async def test_funding_endpoints_and_history_pages() -> None:
    async with running(venues=("bitget",)) as (sim, http):
        now = sim.ctx.now_ms()
        current = await _ok(http, sim, M + "current-fund-rate" + Q)
        assert len(current) == 5
        for c in current:
            assert set(c) == {
                "symbol",
                "fundingRate",
                "fundingRateInterval",
                "nextUpdate",
                "minFundingRate",
                "maxFundingRate",
            }
            _strings(c)
            nxt = await _ok(http, sim, M + "funding-time" + Q + "&symbol=" + c["symbol"])
            assert nxt == [
                {
                    "symbol": c["symbol"],
                    "nextFundingTime": c["nextUpdate"],
                    "ratePeriod": c["fundingRateInterval"],
                }
            ]
            period = int(c["fundingRateInterval"]) * HOUR
            assert now < int(c["nextUpdate"]) <= now + period
            assert int(c["nextUpdate"]) % period == 0
        one = await _ok(http, sim, M + "current-fund-rate" + Q + "&symbol=ETHUSDT")
        assert one == [c for c in current if c["symbol"] == "ETHUSDT"]
        # pageNo from 1, newest first, complete and without duplicates.
        url = M + "history-fund-rate" + Q + "&symbol=ETHUSDT"
        everything = await _ok(http, sim, url + "&pageSize=100")
        paged, page_no = [], 1
        while page := await _ok(http, sim, f"{url}&pageSize=7&pageNo={page_no}"):
            paged, page_no = paged + page, page_no + 1
        assert paged == everything and len(everything) > 7
        times = [int(f["fundingTime"]) for f in everything]
        period = int(current[1]["fundingRateInterval"]) * HOUR
        assert all(a - b == period for a, b in pairwise(times))
        assert times[0] <= now < times[0] + period
        assert set(everything[0]) == {"symbol", "fundingRate", "fundingTime"}
        assert len(await _ok(http, sim, url)) == 20  # default pageSize


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("ticker" + Q + "&symbol=NOPEUSDT", 400, "40034"),
        ("ticker" + Q, 400, "40019"),
        ("tickers", 400, "40019"),
        ("tickers?productType=SPOT", 400, "40020"),
        ("open-interest?productType=COIN-FUTURES&symbol=BTCUSDT", 400, "40034"),
        ("candles" + Q + "&symbol=BTCUSDT", 400, "40019"),
        ("candles" + Q + "&symbol=BTCUSDT&granularity=2m", 400, "40017"),
        ("candles" + Q + "&symbol=BTCUSDT&granularity=1M", 400, "40017"),
        ("candles" + Q + "&symbol=BTCUSDT&granularity=5m&limit=1001", 400, "40017"),
        ("candles" + Q + "&symbol=BTCUSDT&granularity=5m&limit=x", 400, "40017"),
        ("history-candles" + Q + "&symbol=BTCUSDT&granularity=5m&limit=201", 400, "40017"),
        (H1 + "&startTime=0&endTime=8000000000", 400, "40705"),
        (H1 + "&startTime=20&endTime=10", 400, "40707"),
        ("history-fund-rate" + Q + "&symbol=BTCUSDT&pageSize=101", 400, "40017"),
        ("history-fund-rate" + Q + "&symbol=BTCUSDT&pageNo=0", 400, "40017"),
        ("no-such-endpoint" + Q, 404, "40404"),
    ],
)
async def test_bad_requests_answer_bitget_error_codes(path: str, status: int, code: str) -> None:
    async with running(venues=("bitget",)) as (sim, http):
        assert await _err(http, sim, M + path) == (status, code)


async def test_rate_limits_per_endpoint_and_overall(monkeypatch: pytest.MonkeyPatch) -> None:
    async with running(venues=("bitget",)) as (sim, http):
        # 45 requests on one endpoint: at least one 1 s window sees more than 20.
        url = M + "ticker" + Q + "&symbol=BTCUSDT"
        results = await asyncio.gather(*(get(http, sim, url) for _ in range(45)))
        refused = [body for status, body in results if status == 429]
        assert refused and refused[0]["code"] == "429" and refused[0]["data"] is None
        assert refused[0]["msg"] == "Too many requests"
        assert (await get(http, sim, M + "contracts" + Q))[0] == 200  # its own budget
        _, stats = await get(http, sim, "/_sim/stats")
        assert stats["venues"]["bitget"]["rejected_429"] == len(refused)
        # The overall budget spans endpoints (shrunk here from 6000/min to 30/h).
        monkeypatch.setattr(bitget_rest, "OVERALL", Rule("overall", 30, 3600.0))
        paths = [M + e + Q for e in ("contracts", "tickers", "current-fund-rate", "nothing")]
        results = await asyncio.gather(*(get(http, sim, p) for p in paths * 10))
        assert sum(status == 429 for status, _ in results) == 10


async def test_same_seed_and_frozen_clock_give_the_same_bytes() -> None:
    paths = [
        "contracts",
        "tickers",
        "candles" + Q + "&symbol=XRPUSDT&granularity=15m",
        "history-fund-rate" + Q + "&symbol=XRPUSDT",
    ]
    bodies: list[list[bytes]] = []
    for _ in range(2):
        async with running(venues=("bitget",)) as (sim, http):
            out = []
            for p in paths:
                async with http.get(sim.url + M + p + ("" if "?" in p else Q)) as r:
                    out.append(await r.read())
            bodies.append(out)
    assert bodies[0] == bodies[1]


async def test_empty_list_fault_keeps_the_envelope() -> None:
    async with running(venues=("bitget",), fault_rate=1.0, fault_kinds=(Fault.EMPTY,)) as (
        sim,
        http,
    ):
        assert await _ok(http, sim, M + "tickers" + Q) == []
        assert await _ok(http, sim, M + "candles" + Q + "&symbol=BTCUSDT&granularity=1m") == []
        oi = await _ok(http, sim, M + "open-interest" + Q + "&symbol=BTCUSDT")
        assert oi["openInterestList"] == []


# -- WebSocket -------------------------------------------------------------------------------


async def _until(ws: aiohttp.ClientWebSocketResponse, done: Any) -> list[Any]:
    """Read messages (JSON or text) until `done(messages)` holds; 3 s at most."""
    seen: list[Any] = []
    async with asyncio.timeout(3):
        while not done(seen):
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            seen.append(msg.data if msg.data == "pong" else json.loads(msg.data))
    return seen


def _pushes(seen: list[Any], channel: str) -> list[dict[str, Any]]:
    return [
        m
        for m in seen
        if isinstance(m, dict) and m.get("arg", {}).get("channel") == channel and "action" in m
    ]


async def test_ws_subscribe_ticker_and_candles() -> None:
    async with running(venues=("bitget",)) as (sim, http):
        now = sim.ctx.now_ms()
        async with http.ws_connect(sim.url + "/v2/ws/public") as ws:
            candle = {**WS_SUB, "channel": "candle5m"}
            bad = [{**WS_SUB, "instId": "XXX"}, {**WS_SUB, "channel": "candle2m"}]
            await ws.send_json({"op": "subscribe", "args": [WS_SUB, candle, *bad]})
            seen = await _until(ws, lambda s: _pushes(s, "ticker") and _pushes(s, "candle5m"))
            acks = [m for m in seen if m.get("event") == "subscribe"]
            assert [a["arg"] for a in acks] == [WS_SUB, candle]
            errors = [m for m in seen if m.get("event") == "error"]
            assert [e["code"] for e in errors] == [30001, 30001]
            assert (
                errors[0]["msg"] == "instType:USDT-FUTURES,channel:ticker,instId:XXX doesn't exist"
            )
            push = _pushes(seen, "ticker")[0]
            assert (push["action"], push["arg"], push["ts"]) == ("snapshot", WS_SUB, now)
            tick = push["data"][0]
            assert list(tick) == WS_TICKER_KEYS and tick["symbolType"] == 1
            rest = (await _ok(http, sim, M + "ticker" + Q + "&symbol=BTCUSDT"))[0]
            for key in ("lastPr", "markPrice", "indexPrice", "fundingRate", "holdingAmount"):
                assert tick[key] == rest[key]
            assert tick["ts"] == str(now) and int(tick["nextFundingTime"]) > now
            snap = _pushes(seen, "candle5m")[0]
            assert snap["action"] == "snapshot" and len(snap["data"]) == 100
            assert all(len(r) == 8 and r[7] == r[6] for r in snap["data"])
            rest_rows = await _ok(http, sim, M + "candles" + Q + "&symbol=BTCUSDT&granularity=5m")
            assert [r[:7] for r in snap["data"]] == rest_rows
            # Moving the clock: an update with the now-final bar, then the new running one.
            sim.ctx.clock.set(now_ms=now + 5 * MINUTE)
            seen = await _until(ws, lambda s: _pushes(s, "candle5m"))
            update = _pushes(seen, "candle5m")[0]
            assert update["action"] == "update"
            assert [r[0] for r in update["data"]] == [
                snap["data"][-1][0],
                str(int(snap["data"][-1][0]) + 5 * MINUTE),
            ]
            await ws.send_json({"op": "unsubscribe", "args": [WS_SUB]})
            await ws.send_str("nonsense")
            await ws.send_str("ping")
            seen = await _until(ws, lambda s: "pong" in s)
            assert {"event": "unsubscribe", "arg": WS_SUB} in seen
            assert {"event": "error", "code": 30002, "msg": "Illegal request"} in seen
        _, stats = await get(http, sim, "/_sim/stats")
        assert stats["venues"]["bitget"]["ws_connections"] == 1


async def test_ws_is_force_closed_after_24_simulated_hours() -> None:
    async with running(venues=("bitget",)) as (sim, http):
        start = sim.ctx.now_ms()
        async with http.ws_connect(sim.url + "/v2/ws/public") as ws:
            sim.ctx.clock.set(now_ms=start + 24 * HOUR - MINUTE)
            await ws.send_str("ping")
            assert await _until(ws, lambda s: "pong" in s) == ["pong"]
            sim.ctx.clock.set(now_ms=start + 24 * HOUR)
            async with asyncio.timeout(2):
                msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert msg.data == aiohttp.WSCloseCode.GOING_AWAY


async def test_ws_closes_idle_and_flooding_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    async with running(venues=("bitget",)) as (sim, http):
        async with http.ws_connect(sim.url + "/v2/ws/public") as ws:
            for _ in range(11):  # the 11th message within a second is one too many
                await ws.send_str("ping")
            seen: list[Any] = []
            async with asyncio.timeout(2):
                while (msg := await ws.receive()).type == aiohttp.WSMsgType.TEXT:
                    seen.append(msg.data)
            assert seen == ["pong"] * 10
            assert msg.data == aiohttp.WSCloseCode.POLICY_VIOLATION
        monkeypatch.setattr(bitget_ws, "IDLE_S", 0.2)  # the doc's 2 minutes without a ping
        async with http.ws_connect(sim.url + "/v2/ws/public") as ws:
            await ws.send_json({"op": "subscribe", "args": [WS_SUB]})
            async with asyncio.timeout(2):
                while (msg := await ws.receive()).type == aiohttp.WSMsgType.TEXT:
                    pass
            assert msg.type == aiohttp.WSMsgType.CLOSE
