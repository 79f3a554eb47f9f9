"""The simulator's order flow, positioning and premium: what the synthetic market shows around
the squeezes the Core engine finds, and how each venue serves it (shapes of the venues' doc
examples, units, limits, paging), over real sockets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from oiradar.signals.engine import events, timeline
from oiradar.signals.params import EngineParams, Evidence
from oiradar.signals.regimes import Regime
from oiradar.sim.market import positioning_snapshots, premium_bars
from oiradar.sim.synth import synthetic_market
from tests.simkit import MINUTE, NOW, get, running
from tests.test_sim_core import _series

FIVE = 5 * MINUTE
DAY = 1440 * MINUTE
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT")


def _episodes() -> list[tuple[Regime, Any, int, int]]:
    """(regime, symbol data, first base bar, end base bar) of every event the Core engine
    reports on the served 5 m bars of nine synthetic days (what test_sim_core reads)."""
    market = synthetic_market(12, NOW - 9 * DAY, NOW, seed=7)
    # Squeezes are the liquidation cascades: the other evidence terms are what is tested here.
    params = EngineParams(evidence=(Evidence.LIQUIDATIONS,))
    out = []
    for symbol in SYMBOLS:
        sd = market.get(symbol)
        tl = timeline(_series(symbol), params)
        for e in events(tl, params):
            start = e.start_ms
            if e.regime is Regime.SHORT_SQUEEZE:  # from its first squeeze bar: an episode
                bars = tl.grid.ts[(tl.grid.ts >= e.start_ms) & (tl.grid.ts < e.end_ms)]
                sq = tl.regime[np.isin(tl.grid.ts, bars)] == Regime.SHORT_SQUEEZE
                start = int(bars[np.argmax(sq)])  # may cover for an hour before it is forced
            i0 = (start - sd.first_ms) // sd.bar_ms
            out.append((e.regime, sd, int(i0), int((e.end_ms - sd.first_ms) // sd.bar_ms)))
    return out


def test_taker_buying_outruns_selling_in_covering_and_more_in_squeezes() -> None:
    """Net taker buying per unit of OI closed: about 1x in covering, about 3x in squeezes
    (what the taker evidence separates on real data)."""
    outrun: dict[Regime, list[float]] = {}
    for regime, sd, i0, i1 in _episodes():
        net = float((2 * sd.taker_buy[i0:i1] - sd.volume[i0:i1]).sum())
        drop = float(sd.oi[i0 - 1] - sd.oi[i1 - 1])
        if drop > 0:
            outrun.setdefault(regime, []).append(net / drop)
    squeeze = np.median(outrun[Regime.SHORT_SQUEEZE])
    covering = np.median(outrun[Regime.SHORT_COVERING])
    assert len(outrun[Regime.SHORT_SQUEEZE]) >= 10 and len(outrun[Regime.SHORT_COVERING]) >= 30
    assert squeeze > 2.5 and 0.6 < covering < 1.6
    market = synthetic_market(3, NOW - DAY, NOW, seed=7).get("BTCUSDT")
    assert 0.49 < market.taker_buy.sum() / market.volume.sum() < 0.56  # no drift overall


def test_shorts_crowd_in_before_squeezes_and_the_premium_leads_funding() -> None:
    squeezes = [(sd, i0, i1) for r, sd, i0, i1 in _episodes() if r is Regime.SHORT_SQUEEZE]
    assert len(squeezes) >= 10
    peaks = []
    for sd, i0, i1 in squeezes:
        for ratio in (sd.ls_account, sd.ls_top_account, sd.ls_top_position):
            assert ratio[i0 - 1] < 1.0  # more shorts than longs when the squeeze starts
            assert ratio[i0 - 1] < ratio[i0 - 180]  # and falling over the hours before
        # The premium turns positive while funding is still negative, and flips first.
        assert sd.funding[i0] < 0
        premium_up = int(np.argmax(sd.premium[i0 - 60 :] > 0))
        funding_up = int(np.argmax(sd.funding[i0 - 60 :] > 0))
        assert 0 < premium_up < funding_up
        assert sd.premium[i0 - 60 : i0 + 1].min() < -0.0003  # shorts paid before
        peaks.append(float(sd.premium[i0 : i1 + 30].max()))
    # The squeeze bids the perpetual up (an event the engine starts early can miss the peak).
    assert np.median(peaks) > 0.0005 and np.mean(np.array(peaks) > 0.0003) > 0.8


def _shape(obj: dict[str, Any], example: dict[str, Any]) -> None:
    assert set(obj) == set(example), set(obj) ^ set(example)
    for key, value in example.items():
        assert type(obj[key]) is type(value), (key, obj[key], value)


async def test_binance_serves_premium_klines_and_ratios_as_documented() -> None:
    async with running(venues=("binance",)) as (sim, http):
        now, sd = sim.ctx.now_ms(), sim.ctx.market.get("BTCUSDT")
        q = "symbol=BTCUSDT&interval=5m&limit=3"
        _, kl = await get(http, sim, f"/fapi/v1/premiumIndexKlines?{q}")
        doc = [1691603820000, "-0.00042931", "-0.00023641", "-0.00059406", "-0.00043659", "0",
               1691603879999, "0", 12, "0", "0", "0"]  # fmt: skip
        assert [type(v) for v in kl[0]] == [type(v) for v in doc]
        b = premium_bars(sd, FIVE, kl[0][0], now, now)
        assert [float(x) for x in kl[0][1:5]] == pytest.approx(
            [b.open[0], b.high[0], b.low[0], b.close[0]], abs=1e-8
        )
        assert kl[-1][0] <= now < kl[-1][0] + FIVE and kl[0][8] == 60  # 5-second samples
        examples = {
            "topLongShortAccountRatio": "top_account",
            "topLongShortPositionRatio": "top_position",
            "globalLongShortAccountRatio": "account",
        }
        snaps = positioning_snapshots(sd, FIVE, now - 30 * FIVE, now, now)
        for path, field in examples.items():
            _, rows = await get(http, sim, f"/futures/data/{path}?symbol=BTCUSDT&period=5m")
            assert len(rows) == 30  # the default limit
            _shape(rows[0], {"symbol": "BTCUSDT", "longShortRatio": "1.8105",
                             "longAccount": "0.6442", "shortAccount": "0.3558",
                             "timestamp": "1583139600000"})  # fmt: skip
            want = getattr(snaps, field)[-30:]
            assert [float(r["longShortRatio"]) for r in rows] == pytest.approx(want, abs=6e-5)
            r = float(rows[-1]["longShortRatio"])
            assert float(rows[-1]["longAccount"]) == pytest.approx(r / (1 + r), abs=1e-4)
        _, taker = await get(
            http, sim, "/futures/data/takerlongshortRatio?symbol=BTCUSDT&period=5m"
        )
        _shape(taker[0], {"buySellRatio": "1.5586", "buyVol": "387.3300",
                          "sellVol": "248.5030", "timestamp": "1585614900000"})  # fmt: skip
        assert [int(r["timestamp"]) for r in taker] == snaps.ts[-30:].tolist()
        assert [float(r["buyVol"]) for r in taker] == pytest.approx(snaps.taker_buy[-30:], 1e-6)
        old = now - 31 * DAY
        status, body = await get(
            http, sim, f"/futures/data/takerlongshortRatio?symbol=BTCUSDT&period=1h&startTime={old}"
        )
        assert status == 400 and body["code"] == -1130


async def test_binance_limits_premium_by_weight_and_ratios_by_the_data_bucket() -> None:
    async with running(venues=("binance",), limit_scale=0.01) as (sim, http):
        async with http.get(
            sim.url + "/fapi/v1/premiumIndexKlines?symbol=ETHUSDT&interval=1m&limit=1500"
        ) as r:
            assert r.headers["X-MBX-USED-WEIGHT-1M"] == "10"  # like klines: > 1000 rows
        statuses = []
        for _ in range(1001):  # /futures/data: 1000 requests per 5 minutes
            async with http.get(
                sim.url + "/futures/data/globalLongShortAccountRatio?symbol=ETHUSDT&period=5m"
            ) as r:
                statuses.append(r.status)
        assert statuses[:1000] == [200] * 1000 and statuses[1000] == 429


async def test_bybit_serves_premium_klines_newest_first() -> None:
    async with running(venues=("bybit",)) as (sim, http):
        now, sd = sim.ctx.now_ms(), sim.ctx.market.get("SOLUSDT")
        base = "/v5/market/premium-index-price-kline?category=linear&symbol=SOLUSDT&interval=15"
        _, body = await get(http, sim, f"{base}&limit=4")
        rows = body["result"]["list"]
        assert [type(v) for v in rows[0]] == [str] * 5  # [start, open, high, low, close]
        starts = [int(r[0]) for r in rows]
        assert starts == sorted(starts, reverse=True) and starts[0] <= now < starts[0] + 900_000
        b = premium_bars(sd, 900_000, starts[-1], now, now)
        assert [float(r[4]) for r in reversed(rows)] == pytest.approx(b.close, abs=1e-8)
        _, page = await get(http, sim, f"{base}&start={starts[-1]}&limit=2")
        assert [int(r[0]) for r in page["result"]["list"]] == starts[-2:]  # forward from start
        _, bad = await get(http, sim, f"{base[:-2]}7")
        assert bad["retCode"] == 10001


async def test_okx_serves_premium_history_newest_first_behind_cursors() -> None:
    async with running(venues=("okx",), history_days=200) as (sim, http):
        now, sd = sim.ctx.now_ms(), sim.ctx.market.get("BTCUSDT")
        _, body = await get(http, sim, "/api/v5/public/premium-history?instId=BTC-USDT-SWAP")
        rows = body["data"]
        _shape(rows[0], {"instId": "BTC-USDT-SWAP", "premium": "0.0001", "ts": "1597026383085"})
        ts = [int(r["ts"]) for r in rows]
        assert len(rows) == 100 and ts == list(range(now, now - 100 * MINUTE, -MINUTE))
        closes = sd.premium_close[(np.array(ts) - sd.first_ms) // MINUTE - 1]
        assert [float(r["premium"]) for r in rows] == pytest.approx(closes, abs=1e-8)
        _, page = await get(
            http, sim, f"/api/v5/public/premium-history?instId=BTC-USDT-SWAP&after={ts[-1]}&limit=3"
        )
        assert [int(r["ts"]) for r in page["data"]] == [ts[-1] - k * MINUTE for k in (1, 2, 3)]
        oldest = now - 184 * DAY
        _, deep = await get(
            http, sim, f"/api/v5/public/premium-history?instId=BTC-USDT-SWAP&after={oldest}"
        )
        assert deep["data"] == []  # six months only
        _, bad = await get(http, sim, "/api/v5/public/premium-history?instId=FOO-USDT-SWAP")
        assert bad["code"] == "51001"


async def test_same_seed_same_bytes_for_the_new_endpoints() -> None:
    paths = [
        "/fapi/v1/premiumIndexKlines?symbol=XRPUSDT&interval=1m&limit=50",
        "/futures/data/topLongShortPositionRatio?symbol=XRPUSDT&period=15m&limit=100",
        "/futures/data/takerlongshortRatio?symbol=XRPUSDT&period=5m&limit=100",
        "/v5/market/premium-index-price-kline?category=linear&symbol=XRPUSDT&interval=5",
        "/api/v5/public/premium-history?instId=XRP-USDT-SWAP",
    ]
    bodies = []
    for _ in range(2):
        async with running() as (sim, http):
            one = []
            for p in paths:
                async with http.get(sim.url + p) as r:
                    assert r.status == 200
                    one.append(await r.read())
            bodies.append(one)
    assert bodies[0] == bodies[1]
