"""The simulator's dYdX v4 indexer against exchange-apis.md §13 and v4-chain's docs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from oiradar.sim.faults import Fault
from oiradar.sim.market import oi_at
from oiradar.sim.server import SimServer
from oiradar.sim.venues.dydx.data import markets, trades
from oiradar.sim.venues.dydx.rest import trade_page
from tests.simkit import MINUTE, get, running

HOUR, DAY = 60 * MINUTE, 24 * 60 * MINUTE
# Keys of the recorded replies (ccxt static responses, 2025-07-29).
MARKET_KEYS = {
    "clobPairId", "ticker", "status", "oraclePrice", "priceChange24H", "volume24H",
    "trades24H", "nextFundingRate", "initialMarginFraction", "maintenanceMarginFraction",
    "openInterest", "atomicResolution", "quantumConversionExponent", "tickSize", "stepSize",
    "stepBaseQuantums", "subticksPerTick", "marketType", "openInterestLowerCap",
    "openInterestUpperCap", "baseOpenInterest", "defaultFundingRate1H",
}  # fmt: skip
CANDLE_KEYS = {
    "startedAt", "ticker", "resolution", "low", "high", "open", "close", "baseTokenVolume",
    "usdVolume", "trades", "startingOpenInterest", "orderbookMidPriceOpen",
    "orderbookMidPriceClose",
}  # fmt: skip
FUNDING_KEYS = {"ticker", "rate", "price", "effectiveAtHeight", "effectiveAt"}
TRADE_KEYS = {"id", "side", "size", "price", "type", "createdAt", "createdAtHeight"}


def ms(text: str) -> int:
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def _ok(http: aiohttp.ClientSession, sim: SimServer, path: str) -> Any:
    status, body = await get(http, sim, path)
    assert status == 200, body
    return body


async def test_replies_match_the_recorded_examples() -> None:
    async with running(venues=("dydx",)) as (sim, http):
        now = sim.ctx.now_ms()
        markets = (await _ok(http, sim, "/v4/perpetualMarkets"))["markets"]
        assert set(markets) == {s.removesuffix("USDT") + "-USD" for s in sim.ctx.market.symbols}
        btc = markets["BTC-USD"]
        assert set(btc) == MARKET_KEYS and btc["status"] == "ACTIVE"
        assert float(btc["openInterest"]) == pytest.approx(
            0.03 * oi_at(sim.ctx.market.get("BTCUSDT"), now), abs=1e-4)  # fmt: skip
        rows = (await _ok(http, sim, "/v4/candles/perpetualMarkets/BTC-USD?resolution=1HOUR"
                                     "&limit=3"))["candles"]  # fmt: skip
        assert set(rows[0]) == CANDLE_KEYS and rows[0]["resolution"] == "1HOUR"
        assert [ms(r["startedAt"]) for r in rows] == [
            now // HOUR * HOUR - k * HOUR for k in range(3)
        ]  # newest first
        funding = await _ok(http, sim, "/v4/historicalFunding/BTC-USD?limit=2")
        assert [set(r) for r in funding["historicalFunding"]] == [FUNDING_KEYS] * 2
        trades = (await _ok(http, sim, "/v4/trades/perpetualMarket/BTC-USD?limit=50"))["trades"]
        assert set(trades[0]) == TRADE_KEYS and len(trades) == 50
        assert {t["type"] for t in trades} <= {"LIMIT", "LIQUIDATED"}
        assert [ms(t["createdAt"]) for t in trades] == sorted(
            (ms(t["createdAt"]) for t in trades), reverse=True)  # fmt: skip


async def test_candle_bounds_page_maximum_and_errors() -> None:
    async with running(venues=("dydx",), extra={"dydx_api_limit": 100}) as (sim, http):
        now = sim.ctx.now_ms()
        lo, hi = now - 10 * MINUTE, now - 5 * MINUTE
        path = f"/v4/candles/perpetualMarkets/ETH-USD?resolution=1MIN&fromISO={iso(lo)}"
        rows = (await _ok(http, sim, f"{path}&toISO={iso(hi)}"))["candles"]
        assert [ms(r["startedAt"]) for r in rows] == list(range(hi - MINUTE, lo - 1, -MINUTE))
        for query, status, msg in (
            ("/v4/candles/perpetualMarkets/ETH-USD?resolution=1MIN&limit=101", 400,
             "limit must be a positive integer that is not greater than max: 100"),
            ("/v4/candles/perpetualMarkets/ETH-USD?resolution=2MINS", 400,
             "resolution must be a valid Candle Resolution"),
            ("/v4/candles/perpetualMarkets/NOPE-USD?resolution=1MIN", 400,
             "ticker must be a valid ticker (BTC-USD, etc)"),
            ("/v4/perpetualMarkets?market=NOPE-USD", 404, "NOPE-USD not found"),
        ):  # fmt: skip
            got, body = await get(http, sim, query)
            assert got == status and body["errors"][0]["msg"].startswith(msg), query


async def test_limits_429_with_retry_after_in_milliseconds() -> None:
    async with running(venues=("dydx",)) as (sim, http):
        for _ in range(100):
            async with http.get(sim.url + "/v4/height") as r:
                assert r.status == 200 and r.headers["RateLimit-Limit"] == "100"
        async with http.get(sim.url + "/v4/time") as r:
            assert r.status == 429 and await r.json() == {"errors": [{"msg": "Too many requests"}]}
            assert 0 < int(r.headers["Retry-After"]) <= 10_000  # ms
        status, _ = await get(http, sim, "/v4/candles/perpetualMarkets/BTC-USD?resolution=1MIN")
        assert status == 200  # candles have a bucket of their own


async def test_same_seed_same_bytes_and_the_empty_fault() -> None:
    async def grab(**kw: Any) -> list[bytes]:
        async with running(venues=("dydx",), **kw) as (sim, http):
            out = []
            for path in ("/v4/perpetualMarkets", "/v4/trades/perpetualMarket/SOL-USD?limit=20"):
                async with http.get(sim.url + path) as r:
                    out.append(await r.read())
            return out

    assert await grab() == await grab()
    empty = await grab(fault_rate=1.0, fault_kinds=(Fault.EMPTY,))
    assert empty[0] == b'{"markets":{}}' and b'"trades":[]' in empty[1]


async def test_ws_connected_subscribed_channel_data_and_caps() -> None:
    async with (
        running(venues=("dydx",)) as (sim, http),
        http.ws_connect(sim.url.replace("http", "ws") + "/v4/ws") as ws,
    ):
        hello = await ws.receive_json()
        assert (hello["type"], hello["message_id"]) == ("connected", 0)
        await ws.send_json({"type": "subscribe", "channel": "v4_trades", "id": "BTC-USD"})
        sub = await ws.receive_json()
        assert (sub["type"], sub["id"], sub["message_id"]) == ("subscribed", "BTC-USD", 1)
        assert len(sub["contents"]["trades"]) == 1000  # the REST page
        await ws.send_json({"type": "subscribe", "channel": "v4_markets"})
        markets = await ws.receive_json()
        assert set(markets["contents"]["markets"]["BTC-USD"]) == MARKET_KEYS
        await ws.send_json({"type": "ping"})
        assert (await ws.receive_json())["type"] == "pong"
        sim.ctx.clock.set(sim.ctx.now_ms() + 2 * MINUTE)
        kinds: set[str] = set()
        while not {"v4_trades", "trading", "oraclePrices"} <= kinds:
            msg = await ws.receive_json()
            assert msg["type"] == "channel_data"
            kinds |= {msg["channel"]} | set(msg["contents"])
        for _ in range(3):  # the third attempt within a second: an error, then close 1008
            await ws.send_json({"type": "subscribe", "channel": "v4_trades", "id": "ETH-USD"})
        replies = [msg.json() async for msg in ws]
        assert replies[-1]["type"] == "error" and "Too many subscribe attempts" in replies[-1][
            "message"]  # fmt: skip
        assert ws.close_code == 1008


async def test_trade_page_reads_back_only_the_bars_it_needs_with_the_same_rows() -> None:
    """The page is read back bar by bar (a subscription must not draw 1,000 bars of forced
    orders): it equals the newest `limit` of the whole `limit` + 1 bars, in a squeeze-heavy
    market (bars of dozens of orders) and near the start of the data."""
    weights = {"SHORT_SQUEEZE": 1.0, "NEW_SHORTS": 1.0, "NEUTRAL": 0.2}
    async with running(venues=("dydx",), regime_weights=weights) as (sim, _):
        ctx, now = sim.ctx, sim.ctx.now_ms()
        for m in list(markets(ctx).values())[:3]:
            first = m.sd.first_ms
            for upto, limit in (
                (now, 1000),
                (now - 7 * MINUTE + 123, 50),
                (first + 5 * MINUTE, 40),
            ):
                whole = trades(ctx, m, upto - (limit + 1) * m.sd.bar_ms, upto)[::-1][:limit]
                assert trade_page(ctx, m, upto, limit) == whole
            liquidated = [t for t in trade_page(ctx, m, now, 1000) if t["type"] == "LIQUIDATED"]
            assert liquidated  # forced orders are on the page, not only bar-close trades
