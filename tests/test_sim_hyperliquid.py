"""The simulator's Hyperliquid `/info` and `/ws` against exchange-apis.md §9.1, §11."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from oiradar.sim.faults import Fault
from oiradar.sim.market import oi_at
from oiradar.sim.server import SimServer
from tests.simkit import MINUTE, running

HOUR, DAY = 60 * MINUTE, 24 * 60 * MINUTE
# Keys of the recorded replies: the ccxt-quoted context, the SDK's candle and funding rows.
CTX_KEYS = {"dayNtlVlm", "funding", "impactPxs", "markPx", "midPx", "openInterest", "oraclePx",
            "premium", "prevDayPx", "dayBaseVlm"}  # fmt: skip
CANDLE_KEYS = {"T", "c", "h", "i", "l", "n", "o", "s", "t", "v"}
FUNDING_KEYS = {"coin", "fundingRate", "premium", "time"}


async def info(http: aiohttp.ClientSession, sim: SimServer, body: Any) -> tuple[int, Any]:
    async with http.post(sim.url + "/info", json=body) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else
                          await r.text())  # fmt: skip


async def test_replies_match_the_recorded_examples_in_coin_units() -> None:
    async with running(venues=("hyperliquid",), symbols=30) as (sim, http):
        now = sim.ctx.now_ms()
        status, (meta, ctxs) = await info(http, sim, {"type": "metaAndAssetCtxs"})
        assert status == 200 and len(meta["universe"]) == len(ctxs) == 30
        names = [u["name"] for u in meta["universe"]]
        assert names[0] == "BTC" and {"kPEPE", "kSHIB"} <= set(names) and "PEPE" not in names
        for u, ctx in zip(meta["universe"], ctxs, strict=True):
            assert set(ctx) == CTX_KEYS and all(isinstance(v, str) for k, v in ctx.items()
                                                if k != "impactPxs")  # fmt: skip
            sd = sim.ctx.market.get(u["name"].removeprefix("k") + "USDT")
            scale = 1000 if u["name"].startswith("k") else 1
            assert float(ctx["openInterest"]) == pytest.approx(0.06 * oi_at(sd, now) / scale,
                                                               rel=1e-3, abs=1e-3)  # fmt: skip
        body = {"type": "candleSnapshot",
                "req": {"coin": "BTC", "interval": "1h", "startTime": now - 5 * HOUR}}  # fmt: skip
        _, rows = await info(http, sim, body)
        assert len(rows) == 5 and set(rows[0]) == CANDLE_KEYS and rows[0]["s"] == "BTC"
        assert rows[0]["T"] == rows[0]["t"] + HOUR - 1 and rows[-1]["t"] == now // HOUR * HOUR
        _, funding = await info(http, sim, {"type": "fundingHistory", "coin": "BTC",
                                            "startTime": now - DAY})  # fmt: skip
        assert len(funding) == 24 and set(funding[0]) == FUNDING_KEYS
        assert funding[1]["time"] - funding[0]["time"] == HOUR  # hourly, ascending


async def test_depth_paging_unknown_coins_and_bad_bodies() -> None:
    async with running(venues=("hyperliquid",), history_days=30) as (sim, http):
        now = sim.ctx.now_ms()
        req = {"coin": "ETH", "interval": "5m", "startTime": 0, "endTime": now}
        _, rows = await info(http, sim, {"type": "candleSnapshot", "req": req})
        assert len(rows) == 5000  # only the latest 5,000 are kept
        _, page = await info(http, sim, {"type": "fundingHistory", "coin": "ETH", "startTime": 0})
        assert len(page) == 500  # a page
        for body in ({"type": "candleSnapshot", "req": req | {"coin": "NOPE"}},
                     {"type": "fundingHistory", "coin": "NOPE", "startTime": 0}):  # fmt: skip
            assert await info(http, sim, body) == (200, [])
        for bad in ('{"type": "nope"}', '{"type": "fundingHistory", "coin": "ETH"}', "[1,2"):
            async with http.post(sim.url + "/info", data=bad) as r:
                assert (r.status, r.content_type) == (422, "text/plain")
                assert await r.text() == "Failed to deserialize the JSON body into the target type"


async def test_weight_limit_counts_rows_and_answers_429_null() -> None:
    async with running(venues=("hyperliquid",)) as (sim, http):
        now = sim.ctx.now_ms()
        req = {"coin": "BTC", "interval": "1m", "startTime": now - 1200 * MINUTE}
        for _ in range(29):  # 29 x (20 + 21) = 1,189 weight
            status, _ = await info(http, sim, {"type": "candleSnapshot", "req": req})
            assert status == 200
        status, body = await info(http, sim, {"type": "meta"})  # 1,209 > 1,200
        assert (status, body) == (429, None)


async def test_same_seed_same_bytes_and_the_empty_fault() -> None:
    async def grab(**kw: Any) -> bytes:
        async with (
            running(venues=("hyperliquid",), **kw) as (sim, http),
            http.post(sim.url + "/info", json={"type": "metaAndAssetCtxs"}) as r,
        ):
            return await r.read()

    assert await grab() == await grab()
    assert await grab(fault_rate=1.0, fault_kinds=(Fault.EMPTY,)) == b'[{"universe":[]},[]]'


async def test_ws_subscribe_contexts_trades_pong_and_idle_close() -> None:
    extra = {"hyperliquid_idle_s": 0.5}
    async with (
        running(venues=("hyperliquid",), extra=extra) as (sim, http),
        http.ws_connect(sim.url.replace("http", "ws") + "/ws") as ws,
    ):
        sub = {"type": "activeAssetCtx", "coin": "ETH"}
        await ws.send_json({"method": "subscribe", "subscription": sub})
        ack = await ws.receive_json()
        assert ack == {"channel": "subscriptionResponse",
                       "data": {"method": "subscribe", "subscription": sub}}  # fmt: skip
        push = await ws.receive_json()
        assert push["channel"] == "activeAssetCtx" and push["data"]["coin"] == "ETH"
        assert set(push["data"]["ctx"]) == CTX_KEYS  # no time in it, as on Hyperliquid
        await ws.send_json({"method": "ping"})
        assert await ws.receive_json() == {"channel": "pong"}
        await ws.send_json({"method": "subscribe", "subscription": {"type": "liquidations"}})
        error = await ws.receive_json()
        assert error["channel"] == "error" and error["data"].startswith("Error parsing JSON")
        await ws.send_json({"method": "subscribe",
                            "subscription": {"type": "trades", "coin": "BTC"}})  # fmt: skip
        await ws.receive_json()
        sim.ctx.clock.set(sim.ctx.now_ms() + 5000)
        trades = await ws.receive_json()
        while trades["channel"] != "trades":
            trades = await ws.receive_json()
        assert [t["time"] % 1000 for t in trades["data"]] == [0] * len(trades["data"])
        async for _ in ws:  # silence: the server hangs up after the idle window
            pass
        assert ws.closed


async def test_ws_candles_push_the_running_bar_then_a_closed_bars_final_row() -> None:
    """`candle`: the running bar whenever it changed, and at the first check after a close
    the closed bar's final row (what `candleSnapshot` serves for it) before the new bar's."""
    async with (
        running(venues=("hyperliquid",)) as (sim, http),
        http.ws_connect(sim.url.replace("http", "ws") + "/ws") as ws,
    ):
        bar = 5 * MINUTE
        sim.ctx.clock.set(sim.ctx.now_ms() // bar * bar + 2 * MINUTE + 500)
        opened = sim.ctx.now_ms() // bar * bar
        sub = {"type": "candle", "coin": "ETH", "interval": "5m"}
        await ws.send_json({"method": "subscribe", "subscription": sub})
        assert (await ws.receive_json())["channel"] == "subscriptionResponse"
        push = await ws.receive_json()
        assert push["channel"] == "candle" and set(push["data"]) == CANDLE_KEYS
        assert push["data"]["t"] == opened and push["data"]["T"] == opened + bar - 1
        sim.ctx.clock.set(opened + bar + 1500)  # past the close
        final, new = (await ws.receive_json())["data"], (await ws.receive_json())["data"]
        _, rows = await info(http, sim, {"type": "candleSnapshot", "req": {
            "coin": "ETH", "interval": "5m", "startTime": opened, "endTime": opened}})  # fmt: skip
        assert final == rows[0] and final != push["data"]  # the bar grew after the first push
        assert new["t"] == opened + bar
        for bad in ({"type": "candle", "coin": "ETH", "interval": "7m"},
                    {"type": "candle", "coin": "NOPE", "interval": "5m"}):  # fmt: skip
            await ws.send_json({"method": "subscribe", "subscription": bad})
            reply = await ws.receive_json()
            while reply["channel"] == "candle":
                reply = await ws.receive_json()
            assert reply["channel"] == "error"
