"""`oiradar watch` building its bars from the venues' candle streams, against the simulator
over real sockets: live equals batch while every stream drops every 30 s of venue time and
messages are duplicated and reordered, and a bar whose close message was lost is filled from
REST and marked, never skipped."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from oiradar.services.watch import WatchRequest
from oiradar.store import open_store
from oiradar.units import MINUTE_MS, iso, parse_time
from tests.test_watch import PARAMS, Readings, assert_live_equals_batch, recorder
from tests.watchkit import Run, run_daemon, simulated

BAR = 5 * MINUTE_MS
START = parse_time("2026-05-28T16:00Z")
SYMBOLS = ("BTCUSDT", "SOLUSDT")
VENUES = ("binance", "bybit", "okx", "bitget")
# Gate's and Hyperliquid's candle channels too (Hyperliquid's has no closing message to lose).
DROPPING = (*VENUES, "gate", "hyperliquid")
SPEED = 120.0  # one simulator push (0.1 s wall) spans 12 s of venue time
SETTLE = 30_000  # two and a half pushes


async def _truth(run: Run, venue: str, symbol: str, lo: int, hi: int) -> list[Any]:
    from oiradar.venues.registry import client

    async with client(venue, run.sim.url) as c:
        return [k for k in await c.klines(symbol, BAR, lo, hi) if k.ts_ms <= hi]


def _scenario(
    tmp: Any, venues: tuple[str, ...], minutes: int, **faults: Any
) -> tuple[Run, Readings, dict[Any, Any]]:
    req = WatchRequest(venues, SYMBOLS, None, PARAMS, settle_ms=SETTLE)
    readings: Readings = {}

    async def scenario() -> tuple[Run, Readings, dict[Any, Any]]:
        async with simulated(
            tmp / "watch.sqlite", speed=SPEED, limit_scale=SPEED, start_ms=START, **faults
        ) as run:
            await run_daemon(run, req, START + minutes * MINUTE_MS, probe=recorder(readings))
            run.sim.ctx.faults.ws_lose_close = 0.0
            truth: dict[Any, Any] = {}
            for v in venues:
                for sym in SYMBOLS:  # a stop may land between two symbols' steps of a close
                    stepped = sorted(ts for vv, s, ts in readings if (vv, s) == (v, sym))
                    truth[(v, sym)] = await _truth(run, v, sym, stepped[0], stepped[-1])
            return run, readings, truth

    return asyncio.run(scenario())


@pytest.fixture(scope="module")
def dropping(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Readings, dict[Any, Any]]:
    """Six venues; every WebSocket dropped every ~30 s of venue time; 5 % of messages
    duplicated, 5 % reordered; a fifth of the bars' close messages lost."""
    faults = {
        "ws_drop_s": 30.0 / SPEED,
        "ws_duplicate": 0.05,
        "ws_reorder": 0.05,
        "ws_lose_close": 0.2,
    }
    return _scenario(tmp_path_factory.mktemp("streams"), DROPPING, 45, **faults)


def test_live_equals_batch_while_streams_drop_and_misbehave(
    dropping: tuple[Run, Readings, dict[Any, Any]],
) -> None:
    run, readings, _ = dropping
    drops = {v["venue"]: v["disconnects"] for v in run.status["venues"]}
    assert all(n >= 20 for n in drops.values()), drops  # ~90 drops in 45 venue minutes
    assert assert_live_equals_batch(run, readings, PARAMS) >= len(DROPPING) * len(SYMBOLS) * 6


def test_no_bar_is_skipped_and_stored_candles_are_the_venues(
    dropping: tuple[Run, Readings, dict[Any, Any]],
) -> None:
    run, readings, truth = dropping
    with open_store(run.db, readonly=True) as s:
        for (venue, sym), want in truth.items():
            stepped = sorted(ts for v, x, ts in readings if (v, x) == (venue, sym))
            assert stepped == list(range(stepped[0], stepped[-1] + BAR, BAR)), (venue, sym)
            assert [k.ts_ms for k in want] == stepped
            for k in want:
                got = s.candle_at(venue, sym, "5m", k.ts_ms)
                assert got is not None, f"{venue} {sym} lost the bar {iso(k.ts_ms)}"
                assert (got.open, got.high, got.low, got.close, got.volume_base) == (
                    k.open,
                    k.high,
                    k.low,
                    k.close,
                    k.volume_base,
                ), f"{venue} {sym} {iso(k.ts_ms)}"


def test_bars_the_drops_broke_are_filled_and_marked(
    dropping: tuple[Run, Readings, dict[Any, Any]],
) -> None:
    run, _, _ = dropping
    for v in run.status["venues"]:
        assert v["candles"] == "stream", v["venue"]
        assert set(v["filled"]) <= {"close_lost", "reconnect"}, v["filled"]
    # Bitget's candle snapshot after each resubscribe brings the bars a drop missed itself.
    filled = {v["venue"]: sum(v["filled"].values()) for v in run.status["venues"]}
    assert all(filled[v] > 0 for v in ("binance", "bybit", "okx")), filled


@pytest.fixture(scope="module")
def lossy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Readings, dict[Any, Any]]:
    """No drops: only close messages lost, half of them (Hyperliquid has none to lose)."""
    return _scenario(tmp_path_factory.mktemp("lossy"), DROPPING, 35, ws_lose_close=0.5)


def test_a_bar_whose_close_was_lost_is_filled_from_rest_and_marked(
    lossy: tuple[Run, Readings, dict[Any, Any]],
) -> None:
    run, readings, truth = lossy
    for v in run.status["venues"]:
        assert v["disconnects"] == 0, v["venue"]
        lost = set() if v["venue"] == "hyperliquid" else {"close_lost"}
        assert set(v["filled"]) == lost, (v["venue"], v["filled"])
        assert v["streamed_bars"] > 0, v["venue"]  # the others came whole from the streams
        for mark in v["last_filled"]:  # "SYMBOL@bar open (cause)": that bar was stepped
            sym, _, rest = mark.partition("@")
            bar = parse_time(rest.split()[0])
            assert (v["venue"], sym, bar) in readings, mark
    for (venue, sym), want in truth.items():
        stepped = sorted(ts for v, x, ts in readings if (v, x) == (venue, sym))
        assert [k.ts_ms for k in want] == stepped, (venue, sym)
    assert assert_live_equals_batch(run, readings, PARAMS) > 0
