"""The simulator's OKX v5 SWAP venue against exchange-apis.md §3, over real sockets."""

from __future__ import annotations

import itertools
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from oiradar.sim.faults import Fault
from oiradar.sim.market import completed, last_price, liquidation_orders, oi_at
from oiradar.sim.server import SimServer
from tests.simkit import MINUTE, get, running

FIVE = 5 * MINUTE
BTC, ETH = "BTC-USDT-SWAP", "ETH-USDT-SWAP"
OI_HIST = "/api/v5/rubik/stat/contracts/open-interest-history"
# Documented examples (exchange-apis.md §3.1, abridged there).
OI_EXAMPLE = {
    "instId": "BTC-USDT-SWAP",
    "instType": "SWAP",
    "oi": "2125419",
    "oiCcy": "21254.19",
    "oiUsd": "2360916466.88",
    "ts": "1664005108969",
}
FUNDING_EXAMPLE = {
    "instId": "BTC-USDT-SWAP",
    "instType": "SWAP",
    "fundingRate": "0.0001875",
    "fundingTime": "1700726400000",
    "nextFundingTime": "1700755200000",
    "maxFundingRate": "0.00375",
    "minFundingRate": "-0.00375",
    "settState": "settled",
    "settFundingRate": "0.00016998",
    "premium": "0.000123",
    "method": "current_period",
    "ts": "1700724675402",
}
LIQ_EXAMPLE = {
    "side": "buy",
    "posSide": "net",
    "sz": "13",
    "bkPx": "0.007831",
    "bkLoss": "0",
    "ts": "1692266434010",
}


async def okx(http: aiohttp.ClientSession, sim: SimServer, path: str) -> list[Any]:
    """The `data` of a successful answer (HTTP 200, code "0", msg "")."""
    status, body = await get(http, sim, path)
    assert status == 200 and body["code"] == "0" and body["msg"] == "", body
    data: list[Any] = body["data"]
    return data


def _shape(obj: dict[str, Any], example: dict[str, Any] | str) -> None:
    """The documented keys (an example, or names) are there and every value is a string."""
    keys = set(example.split() if isinstance(example, str) else example)
    assert keys <= set(obj), keys - set(obj)
    assert all(isinstance(v, str) for v in obj.values()), obj


async def test_rest_payloads_match_the_documented_examples() -> None:
    async with running(venues=("okx",)) as (sim, http):
        now = sim.ctx.now_ms()
        inst = await okx(http, sim, "/api/v5/public/instruments?instType=SWAP")
        assert [i["instId"] for i in inst][:2] == [BTC, ETH] and len(inst) == 5
        btc = inst[0]
        _shape(btc, "instId uly instFamily settleCcy ctVal ctMult ctValCcy ctType state listTime")
        _shape(btc, "lotSz tickSz minSz")
        want = {"uly": "BTC-USDT", "instFamily": "BTC-USDT", "settleCcy": "USDT", "ctVal": "0.01"}
        want |= {"ctType": "linear", "ctMult": "1", "ctValCcy": "BTC", "state": "live"}
        assert btc.items() >= want.items()
        assert {i["ctVal"] for i in inst if i["instId"] == ETH} == {"0.1"}
        for i in inst:  # one contract is worth 100-1000 USDT at listing
            sd = sim.ctx.market.get(i["instId"].replace("-USDT-SWAP", "USDT"))
            assert 100 < float(i["ctVal"]) * sd.close[0] <= 1000
        oi = await okx(http, sim, "/api/v5/public/open-interest?instType=SWAP")
        assert len(oi) == 5
        _shape(oi[0], OI_EXAMPLE)
        assert oi[0]["ts"] == str(now)
        hist = await okx(http, sim, f"{OI_HIST}?instId={BTC}&period=5m")
        assert len(hist) == 100 and all(
            len(r) == 4 and all(isinstance(x, str) for x in r) for r in hist
        )
        cd = await okx(http, sim, f"/api/v5/market/candles?instId={BTC}&bar=5m")
        assert len(cd) == 100 and all(len(r) == 9 for r in cd)  # default limit
        assert cd[0][8] == "0" and {r[8] for r in cd[1:]} == {"1"}
        fr = await okx(http, sim, "/api/v5/public/funding-rate?instId=ANY")
        assert len(fr) == 5
        for row in fr:
            _shape(row, FUNDING_EXAMPLE)
            assert int(row["fundingTime"]) > now and row["method"] == "current_period"
        gap = {int(r["nextFundingTime"]) - int(r["fundingTime"]) for r in fr}
        assert gap == {8 * 3_600_000, 4 * 3_600_000}  # ETHUSDT settles every 4 h
        one = await okx(http, sim, f"/api/v5/public/funding-rate?instId={ETH}")
        assert [r["instId"] for r in one] == [ETH]
        fh = await okx(http, sim, f"/api/v5/public/funding-rate-history?instId={BTC}")
        _shape(fh[0], "instId instType fundingRate realizedRate fundingTime method")
        assert all(int(r["fundingTime"]) % (8 * 3_600_000) == 0 for r in fh)
        tk = await okx(http, sim, "/api/v5/market/tickers?instType=SWAP")
        _shape(tk[0], "instId last lastSz open24h high24h low24h vol24h volCcy24h ts")
        assert not {"oi", "fundingRate"} & set(tk[0])
        mp = await okx(http, sim, "/api/v5/public/mark-price?instType=SWAP")
        _shape(mp[0], {"instType": "", "instId": "", "markPx": "", "ts": ""})
        assert mp[0]["markPx"] == tk[0]["last"]
        assert await okx(http, sim, f"/api/v5/public/mark-price?instType=SWAP&instId={ETH}") == [
            mp[1]
        ]


async def test_units_contracts_coin_usd_and_the_venue_share() -> None:
    async with running(venues=("okx",)) as (sim, http):
        now = sim.ctx.now_ms()
        inst = {
            i["instId"]: i for i in await okx(http, sim, "/api/v5/public/instruments?instType=SWAP")
        }
        for row in await okx(http, sim, "/api/v5/public/open-interest?instType=SWAP"):
            ct_val = Decimal(inst[row["instId"]]["ctVal"])
            assert Decimal(row["oi"]) * ct_val == Decimal(row["oiCcy"])
            sd = sim.ctx.market.get(row["instId"].replace("-USDT-SWAP", "USDT"))
            assert abs(float(row["oiCcy"]) / (0.20 * oi_at(sd, now)) - 1) < 1e-3
            price = float(row["oiUsd"]) / float(row["oiCcy"])
            assert abs(price / last_price(sd, now) - 1) < 1e-6
        sd = sim.ctx.market.get("SOLUSDT")
        sol = inst["SOL-USDT-SWAP"]
        hist = await okx(http, sim, f"{OI_HIST}?instId=SOL-USDT-SWAP&period=1H&limit=3")
        for ts, contracts, coin, usd in hist:
            assert Decimal(contracts) * Decimal(sol["ctVal"]) == Decimal(coin)
            assert abs(float(coin) / (0.20 * oi_at(sd, int(ts))) - 1) < 1e-3
            close = sd.close[completed(sd, int(ts)) - 1]
            assert abs(float(usd) / float(coin) / close - 1) < 1e-6
        rows = await okx(http, sim, "/api/v5/market/candles?instId=SOL-USDT-SWAP&bar=5m&limit=5")
        for ts, _o, h, low, _c, vol, vol_ccy, quote, _ in rows[1:]:  # closed bars
            assert Decimal(vol) == Decimal(vol_ccy) / Decimal(sol["ctVal"])
            i = (int(ts) - sd.first_ms) // sd.bar_ms
            assert abs(float(vol_ccy) / sd.volume[i : i + 5].sum() - 1) < 1e-3
            assert float(low) <= float(quote) / float(vol_ccy) <= float(h)


async def test_oi_history_bounds_are_exclusive_newest_first_and_1440_deep() -> None:
    async with running(venues=("okx",), limit_scale=1000) as (sim, http):
        now = sim.ctx.now_ms()
        page = await okx(http, sim, f"{OI_HIST}?instId={BTC}&period=5m&limit=500")
        ts = [int(r[0]) for r in page]
        assert len(ts) == 100 and ts[0] == now // FIVE * FIVE  # limit capped; latest snapshot
        assert all(a - b == FIVE for a, b in itertools.pairwise(ts))  # newest first
        begin, end = ts[10], ts[2]
        inner = await okx(http, sim, f"{OI_HIST}?instId={BTC}&period=5m&begin={begin}&end={end}")
        assert [int(r[0]) for r in inner] == ts[3:10]  # both bounds exclusive
        seen: list[int] = []
        cursor = ""
        while rows := await okx(http, sim, f"{OI_HIST}?instId={BTC}&period=5m{cursor}"):
            seen.extend(int(r[0]) for r in rows)
            cursor = f"&end={rows[-1][0]}"
        assert len(seen) == len(set(seen)) == 1440  # "the latest 1,440 data entries"
        assert seen == sorted(seen, reverse=True) and seen[0] - seen[-1] == 1439 * FIVE
        daily = await okx(http, sim, f"{OI_HIST}?instId={BTC}&period=1D&limit=3")
        assert all(int(r[0]) % 86_400_000 == 16 * 3_600_000 for r in daily)  # UTC+8 midnight
        utc = await okx(http, sim, f"{OI_HIST}?instId={BTC}&period=1Dutc&limit=3")
        assert all(int(r[0]) % 86_400_000 == 0 for r in utc)


async def test_candles_paginate_without_gaps_and_only_1440_recent_rows() -> None:
    async with running(venues=("okx",), limit_scale=1000) as (sim, http):
        now = sim.ctx.now_ms()
        base = f"/api/v5/market/candles?instId={ETH}&bar=1m&limit=300"
        seen: list[int] = []
        cursor = ""
        while rows := await okx(http, sim, base + cursor):
            seen.extend(int(r[0]) for r in rows)
            cursor = f"&after={rows[-1][0]}"
        assert seen[0] == now // MINUTE * MINUTE and len(seen) == len(set(seen)) == 1440
        assert all(a - b == MINUTE for a, b in itertools.pairwise(seen))
        hist = f"/api/v5/market/history-candles?instId={ETH}&bar=1m&limit=300&after={seen[-1]}"
        older = await okx(http, sim, hist)
        assert len(older) == 300 and int(older[0][0]) == seen[-1] - MINUTE  # deeper history
        lo, hi = seen[20], seen[5]
        both = await okx(http, sim, f"{base}&before={lo}&after={hi}")
        assert [int(r[0]) for r in both] == seen[6:20]
        newest = await okx(
            http, sim, f"/api/v5/market/candles?instId={ETH}&bar=1m&limit=3&before={lo}"
        )
        assert [int(r[0]) for r in newest] == seen[:3]  # `before` alone: the latest rows
        h4 = await okx(http, sim, f"/api/v5/market/candles?instId={ETH}&bar=4H&limit=2")
        assert int(h4[0][0]) == now // (4 * 3_600_000) * 4 * 3_600_000
        assert all(r[8] == "0" for r in h4[:1])


async def test_nothing_after_the_simulated_now() -> None:
    async with running(venues=("okx",)) as (sim, http):
        now = sim.ctx.now_ms() - 7 * MINUTE - 1234  # the market has a day of future data
        sim.ctx.clock.set(now)
        paths = [
            f"/api/v5/market/candles?instId={BTC}&bar=5m",
            f"/api/v5/market/history-candles?instId={BTC}&bar=15m",
            f"{OI_HIST}?instId={BTC}&period=5m",
        ]
        for path in paths:
            assert max(int(r[0]) for r in await okx(http, sim, path)) <= now
        fh = await okx(http, sim, f"/api/v5/public/funding-rate-history?instId={BTC}")
        assert int(fh[0]["fundingTime"]) <= now
        cd = await okx(http, sim, f"/api/v5/market/candles?instId={BTC}&bar=5m&limit=1")
        sd = sim.ctx.market.get("BTCUSDT")
        i = completed(sd, now)
        assert cd[0][4] == f"{sd.open[i]:.1f}".rstrip("0").rstrip(".")  # running bar: its open


async def test_errors_unknown_instrument_and_bad_parameters() -> None:
    async with running(venues=("okx",)) as (sim, http):
        unknown = {
            "code": "51001",
            "msg": "Instrument ID, Instrument ID code or Spread ID doesn't exist.",
            "data": [],
        }
        for path in (
            f"{OI_HIST}?instId=FOO-USDT-SWAP",
            "/api/v5/market/candles?instId=BTCUSDT",
            "/api/v5/public/funding-rate?instId=BTC-USD-SWAP",
            "/api/v5/public/funding-rate-history?instId=ANY",
            "/api/v5/public/open-interest?instType=SWAP&instId=FOO-USDT-SWAP",
        ):
            assert await get(http, sim, path) == (200, unknown), path
        bad = {"bar=1h": "bar", "limit=x": "limit", "limit=0": "limit", "after=-5": "after"}
        for query, name in bad.items():
            status, body = await get(http, sim, f"/api/v5/market/candles?instId={BTC}&{query}")
            assert (status, body["code"], body["msg"]) == (200, "51000", f"Parameter {name} error")
        _, body = await get(http, sim, f"{OI_HIST}?instId={BTC}&period=1m")
        assert body["code"] == "51000"
        _, body = await get(http, sim, "/api/v5/public/open-interest")
        assert (body["code"], body["msg"]) == ("50014", "Parameter instType can not be empty.")
        assert await okx(http, sim, "/api/v5/public/open-interest?instType=FUTURES") == []


async def test_rate_limits_answer_429_50011_per_ip_and_instrument() -> None:
    # limit_scale 0.01 stretches 2 s windows to 200 s: no window boundary inside the test.
    async with running(venues=("okx",), limit_scale=0.01) as (sim, http):
        path = f"{OI_HIST}?instId={BTC}&limit=1"
        codes = [await get(http, sim, path) for _ in range(12)]
        assert [s for s, _ in codes] == [200] * 10 + [429] * 2  # 10 / 2 s per IP + instId
        assert codes[-1][1] == {"code": "50011", "msg": "Too Many Requests", "data": []}
        assert (await get(http, sim, f"{OI_HIST}?instId={ETH}&limit=1"))[0] == 200
        for _ in range(40):
            await okx(http, sim, f"/api/v5/market/candles?instId={ETH}&limit=1")
        status, _ = await get(http, sim, f"/api/v5/market/candles?instId={BTC}&limit=1")
        assert status == 429  # 40 / 2 s per IP, whatever the instrument
        for _ in range(3):  # WebSocket: 3 connections per second per IP
            async with http.ws_connect(sim.url + "/ws/v5/public"):
                pass
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(sim.url + "/ws/v5/public")
        assert refused.value.status == 429
        _, stats = await get(http, sim, "/_sim/stats")
        assert stats["venues"]["okx"]["rejected_429"] == 4 and stats["venues"]["okx"]["bans"] == 0


async def test_same_seed_same_bytes_and_empty_fault() -> None:
    paths = [
        "/api/v5/public/instruments?instType=SWAP",
        "/api/v5/public/open-interest?instType=SWAP",
        f"{OI_HIST}?instId={BTC}",
        f"/api/v5/market/candles?instId={BTC}&bar=15m",
        "/api/v5/public/funding-rate?instId=ANY",
        "/api/v5/market/tickers?instType=SWAP",
    ]
    bodies: list[list[bytes]] = []
    for _ in range(2):
        async with running(venues=("okx",)) as (sim, http):
            bodies.append([await (await http.get(sim.url + p)).read() for p in paths])
    assert bodies[0] == bodies[1]
    async with running(venues=("okx",), fault_rate=1.0, fault_kinds=(Fault.EMPTY,)) as (sim, http):
        for path in paths:
            assert await okx(http, sim, path) == []


async def test_history_replay_in_contracts(real_db: Path) -> None:
    start = 1_723_150_800_000  # 2024-08-08T21:00Z, the BTC squeeze hour
    async with running(venues=("okx",), data=real_db, start_ms=start) as (sim, http):
        kl = await okx(http, sim, f"/api/v5/market/candles?instId={BTC}&bar=1H&limit=2")
        assert [int(k[0]) for k in kl] == [start, start - 3_600_000]  # newest first
        assert kl[1][4] == "59468.4"  # the 20:00 bar close in ../shared derived/1h candles.csv
        _, body = await get(http, sim, f"/api/v5/market/candles?instId={BTC}&bar=5m")
        assert body["code"] == "51000"  # finer than the recorded bars
        oi = await okx(http, sim, f"/api/v5/public/open-interest?instType=SWAP&instId={BTC}")
        sd = sim.ctx.market.get("BTCUSDT")
        assert abs(float(oi[0]["oiCcy"]) / (0.20 * oi_at(sd, start)) - 1) < 1e-3


async def _recv(ws: aiohttp.ClientWebSocketResponse) -> Any:
    msg = await ws.receive(timeout=3)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    return msg.data if msg.data == "pong" else json.loads(msg.data)


async def test_ws_acks_errors_ping_and_pushes() -> None:
    async with (
        running(venues=("okx",)) as (sim, http),
        http.ws_connect(sim.url + "/ws/v5/public") as ws,
    ):
        args = [
            {"channel": c, "instId": BTC} for c in ("open-interest", "funding-rate", "mark-price")
        ]
        await ws.send_str(json.dumps({"op": "subscribe", "args": args}))
        first: dict[str, Any] = {}
        for arg in args:
            ack = await _recv(ws)
            assert ack["event"] == "subscribe" and ack["arg"] == arg and len(ack["connId"]) == 8
            push = await _recv(ws)  # the current state at once
            assert push["arg"] == arg and push["data"][0]["instId"] == BTC
            first[arg["channel"]] = push["data"][0]
        _shape(first["open-interest"], OI_EXAMPLE)
        _shape(first["funding-rate"], FUNDING_EXAMPLE)
        _shape(first["mark-price"], "instType instId markPx ts")
        await ws.send_str("ping")
        assert await _recv(ws) == "pong"
        await ws.send_str('{"op":"subscribe","argss":[]}')
        err = await _recv(ws)
        assert (err["event"], err["code"]) == ("error", "60012")
        assert err["msg"].startswith("Invalid request: ")
        wrong = [{"channel": "candle5m", "instId": BTC}, {"channel": "mark-price", "instId": "X"}]
        await ws.send_str(json.dumps({"op": "subscribe", "args": wrong}))
        assert [(await _recv(ws))["code"] for _ in range(2)] == ["60018", "60018"]
        now = sim.ctx.now_ms()
        sim.ctx.clock.set(now + MINUTE)  # the next bar closes: OI and mark price change
        pushed: dict[str, Any] = {}
        while not {"open-interest", "mark-price"} <= set(pushed):
            msg = await _recv(ws)
            pushed[msg["arg"]["channel"]] = msg["data"][0]
        assert pushed["open-interest"]["ts"] == pushed["mark-price"]["ts"] == str(now + MINUTE)
        assert pushed["open-interest"]["oi"] != first["open-interest"]["oi"]
        assert pushed["mark-price"]["markPx"] != first["mark-price"]["markPx"]
        _, stats = await get(http, sim, "/_sim/stats")
        assert stats["venues"]["okx"]["ws_connections"] == 1


async def test_ws_liquidations_are_sampled_with_the_order_side() -> None:
    async with (
        running(venues=("okx",)) as (sim, http),
        http.ws_connect(sim.url + "/ws/v5/public") as ws,
    ):
        arg = {"channel": "liquidation-orders", "instType": "SWAP"}
        await ws.send_str(json.dumps({"op": "subscribe", "args": [arg]}))
        assert (await _recv(ws))["event"] == "subscribe"
        start = sim.ctx.now_ms() // 1000 * 1000 - 1
        sim.ctx.clock.set(sim.ctx.now_ms() + 90_000)
        end = sim.ctx.now_ms() // 1000 * 1000 - 1
        msg = await _recv(ws)
        assert msg["arg"] == arg
        got = {
            (d["instId"], x["ts"], x["side"], x["sz"]) for d in msg["data"] for x in d["details"]
        }
        _shape(msg["data"][0]["details"][0], LIQ_EXAMPLE)
        assert {d["uly"] for d in msg["data"]} <= {
            s.replace("USDT", "-USDT") for s in sim.ctx.market.symbols
        }
        want = set()
        for symbol in sim.ctx.market.symbols:
            sd = sim.ctx.market.get(symbol)
            ct_val = 10.0 ** math.floor(math.log10(1000 / sd.close[0]))
            orders = liquidation_orders(sd, start, end, sim.ctx.venue_seed("okx"))
            latest = {o.ts_ms // 1000: o for o in orders}
            for o in latest.values():  # long liquidated -> a forced SELL order
                lots = max(1, round(o.qty_base * 0.20 / ct_val * 100))
                sz = f"{lots / 100:.2f}".rstrip("0").rstrip(".")
                want.add((f"{sd.base}-USDT-SWAP", str(o.ts_ms), "sell" if o.long else "buy", sz))
        assert got == want and len(want) > 20
        per_second = [(i, int(ts) // 1000) for i, ts, _, _ in got]
        assert len(per_second) == len(set(per_second))  # <= 1 per instrument per second


async def test_ws_business_candles_and_idle_close() -> None:
    async with running(venues=("okx",), extra={"okx_idle_s": 0.3}) as (sim, http):
        async with http.ws_connect(sim.url + "/ws/v5/business") as ws:
            arg = {"channel": "candle5m", "instId": ETH}
            await ws.send_str(json.dumps({"op": "subscribe", "args": [arg]}))
            assert (await _recv(ws))["event"] == "subscribe"
            row = (await _recv(ws))["data"][0]
            assert len(row) == 9 and row[8] == "0" and int(row[0]) % FIVE == 0
            sim.ctx.clock.set(int(row[0]) + FIVE)  # the bar closes, the next one opens
            final, fresh = (await _recv(ws))["data"][0], (await _recv(ws))["data"][0]
            assert (final[0], final[8]) == (row[0], "1")
            assert (int(fresh[0]), fresh[8]) == (int(row[0]) + FIVE, "0")
            msg = await ws.receive(timeout=3)  # nothing pushed for okx_idle_s: closed
            assert msg.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 4004
        async with http.ws_connect(sim.url + "/ws/v5/public") as ws:
            msg = await ws.receive(timeout=3)  # no subscription at all: closed too
            assert msg.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 4004
