"""Simulator core: clock control, faults, the synthetic market's regimes, history replay, CLI."""

from __future__ import annotations

import asyncio
import collections
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from oiradar.records import MarketSeries
from oiradar.signals.engine import events, timeline
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import Regime
from oiradar.sim.faults import Fault
from oiradar.sim.market import bars, oi_snapshots
from oiradar.sim.synth import WEIGHTS, parse_weights, synthetic_market
from tests.simkit import MINUTE, NOW, get, running

FIVE = 5 * MINUTE


async def test_clock_control_endpoint() -> None:
    async with running(venues=("binance",)) as (sim, http):
        _, clock = await get(http, sim, "/_sim/clock")
        assert clock == {"now_ms": NOW // MINUTE * MINUTE, "speed": 0.0}
        async with http.post(sim.url + "/_sim/clock", json={"now_ms": NOW + FIVE}) as r:
            assert (await r.json())["now_ms"] == NOW + FIVE
        async with http.post(sim.url + "/_sim/clock", json={"speed": 3600}) as r:
            assert (await r.json())["speed"] == 3600
        await asyncio.sleep(0.05)
        _, later = await get(http, sim, "/_sim/clock")
        assert later["now_ms"] >= NOW + FIVE + 3600 * 40  # at least 40 ms x 3600
        async with http.post(sim.url + "/_sim/clock", json={"speed": -1}) as r:
            assert r.status == 400
        async with http.post(sim.url + "/_sim/clock", data=b"nope") as r:
            assert r.status == 400


@pytest.mark.parametrize("kind", list(Fault))
async def test_every_fault_kind(kind: Fault) -> None:
    async with running(venues=("binance",), fault_rate=1.0, fault_kinds=(kind,)) as (sim, http):
        sim.ctx.faults.slow_s = 0.05
        url = sim.url + "/fapi/v1/klines?symbol=BTCUSDT&interval=5m&limit=5"
        if kind is Fault.RESET:
            with pytest.raises(aiohttp.ClientError):
                async with http.get(url) as r:
                    await r.read()
            return
        async with http.get(url) as r:
            body = await r.text()
            status, ctype = r.status, r.content_type
        expected = {
            Fault.ERROR_5XX: (502, "text/plain"),
            Fault.SLOW_504: (504, "text/plain"),
            Fault.MAINTENANCE: (503, "text/html"),
            Fault.TRUNCATED: (200, "application/json"),
            Fault.EMPTY: (200, "application/json"),
        }[kind]
        assert (status, ctype) == expected
        if kind is Fault.TRUNCATED:
            with pytest.raises(ValueError):
                import json

                json.loads(body)
        if kind is Fault.EMPTY:
            assert body == "[]"
        _, stats = await get(http, sim, "/_sim/stats")
        assert stats["venues"]["binance"]["faults"] == 1


async def test_latency_is_injected() -> None:
    async with running(venues=("binance",), latency_ms=60.0) as (sim, http):
        loop = asyncio.get_running_loop()
        t = loop.time()
        await get(http, sim, "/fapi/v1/openInterest?symbol=BTCUSDT")
        assert loop.time() - t >= 0.06


def _series(
    market_symbol: str,
    days: int = 9,
    weights: dict[str, float] | None = None,
    cascade_delay: float = 0.0,
) -> MarketSeries:
    start = NOW - days * 86_400_000
    m = synthetic_market(12, start, NOW, seed=7, weights=weights, cascade_delay=cascade_delay)
    sd = m.get(market_symbol)
    b = bars(sd, FIVE, start, NOW, NOW)
    t, oi, _ = oi_snapshots(sd, FIVE, start, NOW, NOW)
    n = int(b.closed.sum())  # closed bars only (the data ends inside the last one)
    k = FIVE // sd.bar_ms
    first = (int(b.ts[0]) - sd.first_ms) // sd.bar_ms
    seg = slice(first, first + n * k)
    long_usd = sd.liq_long[seg].reshape(n, k).sum(1) * b.close[:n]
    short_usd = sd.liq_short[seg].reshape(n, k).sum(1) * b.close[:n]
    c = slice(0, n)
    return MarketSeries(
        "sim", market_symbol, FIVE, b.ts[c], b.open[c], b.high[c], b.low[c], b.close[c],
        b.volume[c], t, oi, np.empty(0, np.int64), np.empty(0), np.empty(0), b.ts[c],
        long_usd, short_usd, True, b.ts[c],
    )  # fmt: skip


def test_synthetic_market_produces_every_regime_and_squeezes() -> None:
    """Checked with the Core engine on the served 5 m bars, not by construction."""
    bar_regimes: collections.Counter[str] = collections.Counter()
    kinds: collections.Counter[tuple[str, str | None]] = collections.Counter()
    for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"):
        tl = timeline(_series(sym), EngineParams())
        bar_regimes.update(Regime(int(r)).name for r in tl.regime)
        kinds.update((e.regime.name, e.tier) for e in events(tl, EngineParams()))
    for regime in Regime:
        if regime not in (Regime.NONE, Regime.NO_DATA):
            assert bar_regimes[regime.name] > 0, regime
    assert kinds[("SHORT_SQUEEZE", "strong")] > 5
    assert kinds[("SHORT_COVERING", "normal")] > 5  # orderly covering stays covering


def test_regime_weights_reshape_the_synthetic_mix() -> None:
    """A squeeze-heavy mix (what bench/watch.py uses to time many escalations) gives the Core
    engine several times the squeezes; the default mix is the documented one."""

    def squeezes(weights: dict[str, float] | None) -> int:
        found = 0
        for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"):
            tl = timeline(_series(sym, days=3, weights=weights), EngineParams())
            found += sum(e.regime is Regime.SHORT_SQUEEZE for e in events(tl, EngineParams()))
        return found

    assert parse_weights("") == WEIGHTS
    heavy = parse_weights("short_squeeze=0.5, SHORT_COVERING=0.3")
    assert heavy["SHORT_SQUEEZE"] == 0.5 and heavy["NEUTRAL"] == WEIGHTS["NEUTRAL"]
    assert squeezes(heavy) > 3 * squeezes(None) > 0


def test_a_cascade_delay_makes_squeezes_read_as_covering_first() -> None:
    """The Core engine sees a covering bar right before the squeeze bar (what the watch
    daemon turns into an escalation) far more often when the cascade waits."""
    heavy = parse_weights("NEW_SHORTS=1,SHORT_SQUEEZE=1,NEUTRAL=0.2")

    def upgrades(delay: float) -> int:
        found = 0
        for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"):
            r = timeline(_series(sym, 3, heavy, delay), EngineParams()).regime
            found += int(
                np.sum((r[:-1] == Regime.SHORT_COVERING) & (r[1:] == Regime.SHORT_SQUEEZE))
            )
        return found

    assert upgrades(0.5) > 5 * max(upgrades(0.0), 1)


def test_synthetic_funding_is_negative_before_squeezes() -> None:
    start = NOW - 9 * 86_400_000
    sd = synthetic_market(12, start, NOW, seed=7).get("SOLUSDT")
    tl = timeline(_series("SOLUSDT"), EngineParams())
    sq = [e for e in events(tl, EngineParams()) if e.regime is Regime.SHORT_SQUEEZE]
    assert sq
    before = [float(sd.funding[(e.start_ms - sd.first_ms) // sd.bar_ms - 30]) for e in sq]
    after = [
        float(sd.funding[min(len(sd.ts) - 1, (e.end_ms - sd.first_ms) // sd.bar_ms + 240)])
        for e in sq
    ]
    assert np.median(before) < 0 < np.median(after) + 1e-4


async def test_history_replay_serves_the_real_data(real_db: Path) -> None:
    start = 1_723_150_800_000  # 2024-08-08T21:00Z, the BTC squeeze hour
    async with running(venues=("binance",), data=real_db, start_ms=start) as (sim, http):
        _, kl = await get(http, sim, "/fapi/v1/klines?symbol=BTCUSDT&interval=1h&limit=2")
        assert [k[0] for k in kl] == [start - 3_600_000, start]
        assert kl[0][4] == "59468.4"  # the 20:00 bar close in ../shared derived/1h candles.csv
        status, _ = await get(http, sim, "/fapi/v1/klines?symbol=BTCUSDT&interval=5m&limit=2")
        assert status == 400  # finer than the recorded bars
        _, oi = await get(http, sim, "/fapi/v1/openInterest?symbol=BTCUSDT")
        assert float(oi["openInterest"]) > 0


def test_cli_prints_listening_line_and_stops_on_sigterm() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    exe = Path(sys.executable).parent / "oiradar"
    proc = subprocess.Popen(
        [str(exe), "sim", "--symbols", "3", "--venues", "binance"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()
        for f in (proc.stdout, proc.stderr):
            if f:
                f.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--venues", "kraken"], "unknown venue(s) kraken"),
        (["--fault-rate", "2"], "--fault-rate must be between 0 and 1"),
        (["--data", "/nonexistent"], "no such file or directory"),
        (["--start", "yesterday"], "invalid time 'yesterday'"),
        (["--regime-weights", "SQUEEZE=1"], "expected NAME=WEIGHT with NAME one of NEUTRAL"),
        (["--regime-weights", "SHORT_SQUEEZE=lots"], "the weight must be a number"),
        (["--regime-weights", "SHORT_SQUEEZE=-1"], "must be a finite number >= 0"),
        (["--regime-weights", ",".join(f"{k}=0" for k in WEIGHTS)], "needs a positive weight"),
        (["--cascade-delay", "1.5"], "--cascade-delay must be between 0 and 1"),
        (["--data", ".", "--cascade-delay", "0.5"], "shape the synthetic market; --data replays"),
    ],
)
def test_cli_bad_input(args: list[str], message: str) -> None:
    from tests.conftest import run_cli

    res = run_cli("sim", *args)
    assert res.code == 2 and message in res.err and res.err.count("\n") == 1


def test_bars_aggregate_base_bars_without_peeking() -> None:
    start = NOW // 3_600_000 * 3_600_000 - 86_400_000  # on the hour
    sd = synthetic_market(3, start, NOW, seed=7).get("ETHUSDT")
    now = start + 3 * 3_600_000 + 7 * MINUTE + 30_000  # 2.5 minutes into a 5 m bar
    b = bars(sd, FIVE, start, now, now)
    assert b.ts[0] == start and b.ts[-1] == now - now % FIVE
    i = 12  # the one-hour mark: base bars 60..64
    seg = slice(60, 65)
    assert (b.open[i], b.close[i]) == (sd.open[60], sd.close[64])
    assert (b.high[i], b.low[i]) == (sd.high[seg].max(), sd.low[seg].min())
    assert b.volume[i] == pytest.approx(sd.volume[seg].sum())
    assert b.closed[:-1].all() and not b.closed[-1]
    # The running bar only knows the 2 closed minutes of its 5 (no look-ahead).
    done = (now - sd.first_ms) // MINUTE
    assert b.close[-1] == sd.close[done - 1] and b.high[-1] == sd.high[done - 2 : done].max()


async def test_fixture_serves_all_seven_venues_on_one_port(sim: object) -> None:
    from oiradar.sim.server import SimServer

    assert isinstance(sim, SimServer) and sim.url.startswith("http://127.0.0.1:")
    paths = {
        "binance": "/fapi/v1/openInterest?symbol=BTCUSDT",
        "bybit": "/v5/market/tickers?category=linear&symbol=BTCUSDT",
        "okx": "/api/v5/public/open-interest?instType=SWAP&instId=BTC-USDT-SWAP",
        "bitget": "/api/v2/mix/market/open-interest?symbol=BTCUSDT&productType=USDT-FUTURES",
        "gate": "/api/v4/futures/usdt/tickers?contract=BTC_USDT",
        "dydx": "/v4/perpetualMarkets?market=BTC-USD",
    }
    async with aiohttp.ClientSession() as http:
        for venue, path in paths.items():
            status, _ = await get(http, sim, path)
            assert status == 200, venue
        async with http.post(sim.url + "/info", json={"type": "meta"}) as r:
            assert r.status == 200 and (await r.json())["universe"][0]["name"] == "BTC"
        _, stats = await get(http, sim, "/_sim/stats")
    served = {v: s["requests"] for v, s in stats["venues"].items()}
    assert served == dict.fromkeys([*paths, "hyperliquid"], 1)


async def test_websocket_faults_duplicate_and_drop() -> None:
    async with (
        running(venues=("binance",), ws_duplicate=1.0, ws_drop_s=0.4) as (sim, http),
        http.ws_connect(sim.url + "/market/ws") as ws,
    ):
        await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 3})
        first = await ws.receive_json()
        second = await ws.receive_json()
        assert first == second == {"result": [], "id": 3}  # every message sent twice
        async with asyncio.timeout(3):
            async for _ in ws:
                pass
        assert ws.closed and ws.close_code == 1001  # dropped by the fault timer
