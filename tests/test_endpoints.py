"""Venue base URLs: public hosts by default, one simulator via OIRADAR_ENDPOINT, per-venue env."""

from __future__ import annotations

import pytest

from oiradar.errors import ConfigError
from oiradar.venues.endpoints import PUBLIC, VENUES, Endpoints, endpoints
from tests.simkit import running


def test_defaults_are_the_public_hosts() -> None:
    assert endpoints("binance", env={}) == Endpoints(
        "https://fapi.binance.com", "wss://fstream.binance.com"
    )
    assert {v: endpoints(v, env={}) for v in VENUES} == PUBLIC


def test_one_endpoint_for_all_and_per_venue_overrides() -> None:
    env = {"OIRADAR_ENDPOINT": "http://127.0.0.1:8765/", "OIRADAR_OKX_WS": "ws://127.0.0.1:9/"}
    assert endpoints("bybit", env=env) == Endpoints("http://127.0.0.1:8765", "ws://127.0.0.1:8765")
    assert endpoints("okx", env=env) == Endpoints("http://127.0.0.1:8765", "ws://127.0.0.1:9")
    assert endpoints("bitget", "https://sim.example:1", env=env).ws == "wss://sim.example:1"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OIRADAR_ENDPOINT": "127.0.0.1:8765"}, "OIRADAR_ENDPOINT='127.0.0.1:8765' is not a URL"),
        (
            {"OIRADAR_BYBIT_WS": "http://x:1"},
            "OIRADAR_BYBIT_WS='http://x:1' is not a URL like ws://",
        ),
    ],
)
def test_bad_urls_are_config_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        endpoints("bybit", env=env)
    with pytest.raises(ConfigError, match="unknown venue 'kraken'"):
        endpoints("kraken", env={})


async def test_the_endpoint_reaches_the_simulator() -> None:
    async with running(venues=("binance",)) as (sim, http):
        base = endpoints("binance", env={"OIRADAR_ENDPOINT": sim.url}).rest
        assert base == sim.url
        async with http.get(base + "/fapi/v1/openInterest?symbol=BTCUSDT") as r:
            assert r.status == 200 and (await r.json())["symbol"] == "BTCUSDT"
        ws_base = endpoints("binance", env={"OIRADAR_ENDPOINT": sim.url}).ws
        async with http.ws_connect(ws_base + "/market/ws") as ws:
            await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 1})
            assert await ws.receive_json() == {"result": [], "id": 1}


def test_gate_serves_rest_and_its_usdt_socket_from_two_hosts() -> None:
    assert endpoints("gate", env={}) == Endpoints("https://api.gateio.ws", "wss://fx-ws.gateio.ws")
    assert endpoints("dydx", env={}).rest == "https://indexer.dydx.trade"


async def test_the_registry_knows_seven_venues_and_defaults_to_six() -> None:
    from oiradar.errors import UserError
    from oiradar.records import LiquidationFeed
    from oiradar.venues.registry import ALL_VENUES, DEFAULT_VENUES, client, parse_venues, stream

    assert parse_venues("gate, Hyperliquid,dydx,gate") == ("gate", "hyperliquid", "dydx")
    assert DEFAULT_VENUES == ("binance", "bybit", "okx", "bitget", "gate", "dydx")
    assert set(ALL_VENUES) == set(PUBLIC) == set(VENUES)
    with pytest.raises(UserError, match="use binance, bybit, okx, bitget, gate, hyperliquid, dydx"):
        parse_venues("kraken")
    feeds = {}
    for venue in ALL_VENUES:
        made = client(venue, "http://127.0.0.1:9")
        assert made.name == venue
        await made.close()
        feeds[venue] = stream(venue, "http://127.0.0.1:9").liquidations
    assert feeds == {
        "binance": LiquidationFeed.SAMPLED, "bybit": LiquidationFeed.COMPLETE,
        "okx": LiquidationFeed.SAMPLED, "bitget": LiquidationFeed.SAMPLED,
        "gate": LiquidationFeed.COMPLETE, "hyperliquid": LiquidationFeed.NONE,
        "dydx": LiquidationFeed.COMPLETE,
    }  # fmt: skip
