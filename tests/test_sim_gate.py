"""The simulator's Gate USDT perpetuals against exchange-apis.md §10, over sockets."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from oiradar.sim.faults import Fault
from oiradar.sim.market import funding_history, oi_at
from oiradar.sim.server import SimServer
from oiradar.sim.venues.gate.data import contract_of
from tests.simkit import MINUTE, NOW, get, running

F = "/api/v4/futures/usdt/"
HOUR, DAY = 60 * MINUTE, 24 * 60 * MINUTE
# Keys of the documented examples (§10.1, §10.2, §10.4).
CONTRACT_KEYS = {
    "name", "type", "quanto_multiplier", "mark_price", "index_price", "funding_rate",
    "funding_interval", "funding_next_apply", "funding_rate_limit", "position_size",
    "long_users", "short_users", "leverage_max", "in_delisting", "status", "is_pre_market",
    "enable_decimal", "contract_type",
}  # fmt: skip
TICKER_KEYS = {
    "contract", "last", "low_24h", "high_24h", "change_percentage", "total_size", "volume_24h",
    "volume_24h_base", "volume_24h_quote", "volume_24h_settle", "mark_price", "funding_rate",
    "funding_rate_indicative", "index_price", "highest_bid", "highest_size", "lowest_ask",
    "lowest_size",
}  # fmt: skip
STATS_KEYS = {
    "time", "lsr_taker", "lsr_account", "long_liq_size", "short_liq_size", "open_interest",
    "short_liq_usd", "mark_price", "top_lsr_size", "short_liq_amount", "long_liq_amount",
    "open_interest_usd", "top_lsr_account", "long_liq_usd", "top_long_size", "top_short_size",
    "top_long_account", "top_short_account", "long_taker_size", "short_taker_size",
    "long_users", "short_users",
}  # fmt: skip


async def _ok(http: aiohttp.ClientSession, sim: SimServer, path: str) -> Any:
    status, body = await get(http, sim, F + path)
    assert status == 200, body
    return body


async def test_rows_match_the_documented_examples_and_units() -> None:
    async with running(venues=("gate",)) as (sim, http):
        now = sim.ctx.now_ms()
        rows = await _ok(http, sim, "contracts?limit=2&offset=1")
        assert [r["name"] for r in rows] == ["ETH_USDT", "SOL_USDT"]
        assert set(rows[0]) >= CONTRACT_KEYS and rows[0]["funding_interval"] == 4 * 3600
        tickers = await _ok(http, sim, "tickers")
        assert {t["contract"] for t in tickers} == {
            f"{s[:-4]}_USDT" for s in sim.ctx.market.symbols
        }
        for t in tickers:
            assert set(t) == TICKER_KEYS and all(isinstance(v, str) for v in t.values())
            sd = sim.ctx.market.get(t["contract"].replace("_", ""))
            c = contract_of(sd)
            assert int(t["total_size"]) == round(0.08 * oi_at(sd, now) / c.quanto)  # contracts
        [btc] = await _ok(http, sim, "candlesticks?contract=BTC_USDT&interval=1m&limit=1")
        assert set(btc) == {"t", "v", "c", "h", "l", "o", "sum"} and btc["t"] == now // 1000
        assert isinstance(btc["t"], int) and isinstance(btc["v"], int)
        [mark] = await _ok(http, sim, "candlesticks?contract=mark_BTC_USDT&interval=1m&limit=1")
        assert "v" not in mark
        stats = await _ok(http, sim, "contract_stats?contract=BTC_USDT&interval=5m&limit=2")
        for row in stats:
            assert set(row) == STATS_KEYS and row["time"] * 1000 <= now
            quanto = contract_of(sim.ctx.market.get("BTCUSDT")).quanto
            assert row["open_interest_usd"] == pytest.approx(
                row["open_interest"] * quanto * row["mark_price"])  # fmt: skip
            assert row["lsr_account"] == row["long_users"] / row["short_users"]
            assert row["top_lsr_account"] == row["top_long_account"] / row["top_short_account"]
        assert stats[1]["time"] - stats[0]["time"] == 300  # ascending


async def test_candles_windows_depth_and_conflicts() -> None:
    async with running(venues=("gate",), history_days=12) as (sim, http):
        now_s = sim.ctx.now_ms() // 1000
        base = "candlesticks?contract=ETH_USDT&interval=1m"
        rows = await _ok(http, sim, f"{base}&from={now_s - 1998 * 60}&to={now_s}")
        assert len(rows) == 1999 and rows[0]["t"] == now_s - 1998 * 60  # both ends inclusive
        assert [r["t"] for r in rows] == sorted(r["t"] for r in rows)
        for query, label in (
            (f"&from={now_s - 2000 * 60}&to={now_s}", "INVALID_PARAM_VALUE"),  # 2,001 points
            (f"&from={now_s - 10_001 * 60}&to={now_s - 10_000 * 60}", "INVALID_PARAM_VALUE"),
            (f"&limit=5&to={now_s}", "INVALID_PARAM_VALUE"),
        ):
            status, body = await get(http, sim, F + base + query)
            assert (status, body["label"]) == (400, label), query
        status, body = await get(http, sim, F + "candlesticks?contract=ETH_USDT&interval=2m")
        assert (status, body["label"]) == (400, "INVALID_PARAM_VALUE")
        status, body = await get(http, sim, F + "candlesticks?contract=NOPE_USDT")
        assert (status, body) == (400, {"label": "CONTRACT_NOT_FOUND", "message": ""})


async def test_funding_newest_first_and_stats_paged_with_from() -> None:
    async with running(venues=("gate",), history_days=20) as (sim, http):
        now = sim.ctx.now_ms()
        rows = await _ok(http, sim, f"funding_rate?contract=BTC_USDT&limit=3&to={now // 1000}")
        truth = funding_history(sim.ctx.market.get("BTCUSDT"), 0, now, now)[-3:]
        assert [r["t"] * 1000 for r in rows] == [t for t, _ in truth[::-1]]  # newest first
        assert [float(r["r"]) for r in rows] == pytest.approx([r for _, r in truth[::-1]], abs=5e-9)
        since = (now - DAY) // 1000
        page = await _ok(http, sim, f"contract_stats?contract=BTC_USDT&from={since}&limit=100")
        assert len(page) == 100 and page[0]["time"] >= since and page[0]["time"] % 300 == 0
        status, body = await get(http, sim, F + "contract_stats?contract=BTC_USDT&limit=101")
        assert (status, body["label"]) == (400, "INVALID_PARAM_VALUE")


async def test_rate_limit_per_endpoint_429_with_headers() -> None:
    async with running(venues=("gate",)) as (sim, http):
        for _ in range(200):
            async with http.get(sim.url + F + "tickers") as r:
                assert r.status == 200
        remain = r.headers["X-Gate-RateLimit-Requests-Remain"]
        async with http.get(sim.url + F + "tickers") as r:
            body = await r.json()
            assert (r.status, body["label"], remain) == (429, "TOO_MANY_REQUESTS", "0")
        status, _ = await get(http, sim, F + "contracts")  # another endpoint: its own budget
        assert status == 200


async def test_same_seed_same_bytes_and_the_empty_fault() -> None:
    async def grab(**kw: Any) -> list[bytes]:
        async with running(venues=("gate",), **kw) as (sim, http):
            out = []
            for path in ("tickers", "contract_stats?contract=SOL_USDT&limit=20"):
                async with http.get(sim.url + F + path) as r:
                    out.append(await r.read())
            return out

    assert await grab() == await grab()
    assert await grab(fault_rate=1.0, fault_kinds=(Fault.EMPTY,)) == [b"[]", b"[]"]


async def test_ws_acks_pings_tickers_and_aggregated_liquidations() -> None:
    async with (
        running(venues=("gate",)) as (sim, http),
        http.ws_connect(sim.url.replace("http", "ws") + "/v4/ws/usdt") as ws,
    ):
        await ws.send_json({"time": 0, "channel": "futures.ping"})
        pong = await ws.receive_json()
        assert (pong["channel"], pong["result"], pong["time_ms"]) == ("futures.pong", None,
                                                                     sim.ctx.now_ms())  # fmt: skip
        await ws.send_json({"time": 0, "channel": "futures.tickers", "event": "subscribe",
                            "payload": ["BTC_USDT", "NOPE_USDT"]})  # fmt: skip
        ack = await ws.receive_json()
        assert ack["result"] == {"status": "failed"} and ack["error"]["code"] == 2
        push = await ws.receive_json()
        assert push["event"] == "update" and [r["contract"] for r in push["result"]] == ["BTC_USDT"]
        await ws.send_json({"time": 0, "channel": "futures.public_liquidates",
                            "event": "subscribe", "payload": ["!all"]})  # fmt: skip
        assert (await ws.receive_json())["error"] is None
        sim.ctx.clock.set(NOW // MINUTE * MINUTE + 3 * MINUTE)
        seen: list[dict[str, Any]] = []
        while sum(m["channel"] == "futures.public_liquidates" for m in seen) < 5:
            seen.append(json.loads((await ws.receive()).data))
        for m in (m for m in seen if m["channel"] == "futures.public_liquidates"):
            rows = m["result"]
            assert 1 <= len(rows) <= 20 and len({r["contract"] for r in rows}) == 1
            assert all(m["time_ms"] - 1000 < r["time"] <= m["time_ms"] for r in rows)
            assert all(isinstance(r["size"], int) and r["size"] != 0 for r in rows)


async def test_ws_candlesticks_push_running_rows_and_a_closed_bars_final_row() -> None:
    async with (
        running(venues=("gate",)) as (sim, http),
        http.ws_connect(sim.url.replace("http", "ws") + "/v4/ws/usdt") as ws,
    ):
        bar = 5 * MINUTE
        sim.ctx.clock.set(sim.ctx.now_ms() // bar * bar + 2 * MINUTE + 500)
        opened = sim.ctx.now_ms() // bar * bar
        sub = {"time": 0, "channel": "futures.candlesticks", "event": "subscribe"}
        await ws.send_json(sub | {"payload": ["5m", "ETH_USDT"]})
        assert (await ws.receive_json())["result"] == {"status": "success"}
        push = await ws.receive_json()
        (row,) = push["result"]
        assert set(row) == {"t", "v", "c", "h", "l", "o", "n", "a"} and row["n"] == "5m_ETH_USDT"
        assert row["t"] * 1000 == opened and push["time_ms"] < opened + bar
        sim.ctx.clock.set(opened + bar + 1500)
        push = await ws.receive_json()
        final, new = push["result"]
        assert push["time_ms"] >= opened + bar and new["t"] * 1000 == opened + bar
        _, rest = await get(http, sim, f"/api/v4/futures/usdt/candlesticks?contract=ETH_USDT"
                            f"&interval=5m&from={opened // 1000}&to={opened // 1000}")  # fmt: skip
        assert {k: final[k] for k in ("t", "v", "c", "h", "l", "o")} == {
            k: rest[0][k] for k in ("t", "v", "c", "h", "l", "o")}  # fmt: skip
        await ws.send_json(sub | {"payload": ["7m", "ETH_USDT"]})
        reply = await ws.receive_json()
        assert reply["error"]["code"] == 2
