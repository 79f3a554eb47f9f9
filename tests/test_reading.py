"""One reading of one bar (issue #13): scan, analyze, watch and the dashboard, each through
its own code path on the same stored data, read the newest bar the same way, field for
field, and show it the same way (rows, events, alerts)."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from oiradar.records import (
    Candle,
    FundingSample,
    LiquidationBar,
    LiquidationFeed,
    MarketSnapshot,
    OISample,
)
from oiradar.services.alerts import Alert
from oiradar.services.analyze import Query, event_dict, run_events, run_timeline
from oiradar.services.dashboard import Board
from oiradar.services.scan import scan_row
from oiradar.services.watch.decide import Decider
from oiradar.signals import rules
from oiradar.signals.live import bar_at, seed, step
from oiradar.signals.params import EngineParams, Evidence
from oiradar.signals.reading import MarketReading, reading_at
from oiradar.signals.regimes import Regime
from oiradar.signals.windows import build_grid
from oiradar.store import open_store
from oiradar.units import HOUR_MS, MINUTE_MS, interval_name, iso
from tests.synth import T0

BAR = 5 * MINUTE_MS
N = 240  # 20 hours: every reader below reads all of it
VENUES = {"binance": 1.0, "bybit": 0.5}  # share of the market's OI
# Adaptive bands (scan then reads 8 days: the whole store, as the dashboard and watch do)
# and every evidence term, with baselines that 20 hours fill.
PARAMS = EngineParams(
    adaptive=True,
    evidence=tuple(Evidence),
    min_history_ms=2 * HOUR_MS,
    adaptive_lookback_ms=12 * HOUR_MS,
    context_lookback_ms=12 * HOUR_MS,
)
FUNDING = -0.0003  # per 8 h: shorts clearly paying


def _market(db: Path) -> None:
    """SOLUSDT on two venues, quiet noise then three bars of covering (OI down, price up)
    with a burst of short liquidations on the last one; funding every 8 h."""
    rng = np.random.default_rng(11)
    close = 150 * np.exp(np.cumsum(rng.normal(0, 0.0015, N)))
    oi = 1e6 * np.exp(np.cumsum(rng.normal(0, 0.001, N)))
    close[-3:] = close[-4] * np.array([1.012, 1.026, 1.041])
    oi[-3:] = oi[-4] * np.array([0.985, 0.968, 0.95])
    volume = rng.lognormal(7, 0.3, N)
    volume[-3:] *= 4
    short = rng.lognormal(8, 1.0, N)
    short[-1] = 4e6
    recs: list[Candle | OISample | FundingSample | LiquidationBar] = []
    for venue, share in VENUES.items():
        for i in range(N):
            t = T0 + i * BAR
            c = float(close[i])
            recs.append(
                Candle(venue, "SOLUSDT", BAR, t, c, c * 1.001, c * 0.999, c, volume[i] * share,
                       taker_buy_base=volume[i] * share * 0.55)
            )  # fmt: skip
            recs.append(OISample(venue, "SOLUSDT", t + BAR, float(oi[i]) * share))
            recs.append(
                LiquidationBar(venue, "SOLUSDT", BAR, t, 0.0, 0.0, 1e3 * share,
                               float(short[i]) * share)
            )  # fmt: skip
        recs += [
            FundingSample(venue, "SOLUSDT", T0 + h * 8 * HOUR_MS, FUNDING, 8.0) for h in range(3)
        ]
    with open_store(db) as s:
        s.write_records(recs)


def same(a: object, b: object) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12)
    return a == b


def assert_same(got: MarketReading, want: MarketReading, who: str) -> None:
    for f in fields(MarketReading):
        g, w = getattr(got, f.name), getattr(want, f.name)
        assert same(g, w), f"{who} {f.name}: {g!r} != {w!r}"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reading") / "one.sqlite"
    _market(path)
    return path


def test_scan_analyze_watch_and_the_dashboard_read_the_newest_bar_alike(db: Path) -> None:
    last_open = T0 + (N - 1) * BAR
    close = last_open + BAR
    with open_store(db, readonly=True) as store:
        # analyze: the batch timeline of the stored series.
        tl, _ = run_timeline(store, Query("SOLUSDT", "binance", interval="5m"), PARAMS)
        analyze = reading_at(tl, -1, PARAMS)
        # watch: the live engine seeded with the history, then stepping the newest bar.
        grid = build_grid(store.read_series("binance", "SOLUSDT", "5m"))
        watch = step(seed(grid.head(N - 1), PARAMS), bar_at(grid, N - 1))
        # scan: its row of the symbol, the snapshot taken at the bar's close.
        snap = MarketSnapshot("binance", "SOLUSDT", close, funding_rate=FUNDING,
                              funding_interval_h=8.0)  # fmt: skip
        scan = scan_row(store, "binance", snap, close, PARAMS)
        # the dashboard: its board of every watched market.
        board = Board(PARAMS)
        assert board.refresh(store)
    assert scan is not None
    dash = board.rows[("binance", "SOLUSDT")]

    # The bar says something worth agreeing on: a squeeze on every evidence term we stored.
    assert analyze.ts_ms == last_open and analyze.regime is Regime.SHORT_SQUEEZE
    assert Evidence.LIQUIDATIONS in analyze.evidence and analyze.strong  # OI -5 % in 15m
    assert analyze.volume_ratio is not None and analyze.volume_ratio > 2
    assert analyze.funding_8h == pytest.approx(FUNDING) and analyze.more_to_come is True
    for who, got in (("watch", watch), ("scan", scan.reading), ("dashboard", dash.reading)):
        assert_same(got, analyze, who)

    # Shown the same way: the scan's row is the dashboard's, the alert carries the reading.
    row = scan.to_dict()
    assert dash.to_dict() == row
    assert row["regime"] == "SHORT_SQUEEZE" and row["more_to_come"] is True
    assert row["confidence"] == analyze.confidence(close, PARAMS) > 0
    assert row["ts"] == iso(close)
    sent: list[Alert] = []
    decider = Decider(PARAMS, BAR, {"binance": LiquidationFeed.SAMPLED}, sent.append)
    decider.on_bar("binance", "SOLUSDT", watch, (FUNDING, 8.0))
    (alert,) = sent
    assert alert.regime is Regime.SHORT_SQUEEZE and alert.ts_ms == close
    assert alert.volume_ratio == round(analyze.volume_ratio, 2)
    assert alert.more_to_come is True and alert.confidence == row["confidence"]
    assert alert.oi_change_pct == pytest.approx(analyze.oi_pct, abs=1e-3)
    assert alert.window_ms == analyze.horizon_ms and alert.funding_rate == FUNDING


def test_an_event_starts_with_the_reading_of_its_first_bar(db: Path) -> None:
    """analyze's event keeps its first bar's reading: the bar the watch alerted on."""
    with open_store(db, readonly=True) as store:
        q = Query("SOLUSDT", "binance", interval="5m")
        tl, _ = run_timeline(store, q, PARAMS)
        evs, q = run_events(store, q, PARAMS, None)
    ev = evs[-1]
    first = reading_at(tl, int((ev.start_ms - int(tl.grid.ts[0])) // BAR), PARAMS)
    assert_same(ev.first, first, "event")
    shown = event_dict(ev, q)
    assert shown["signal_at"] == iso(first.ts_ms + BAR)
    assert shown["funding_rate_8h"] == pytest.approx(first.funding_8h)
    assert shown["more_to_come"] is first.more_to_come is True
    assert shown["horizon"] == interval_name(first.horizon_ms)


def test_more_to_come_is_one_rule() -> None:
    """8 h equivalent at or below -0.01 %: a -0.005 % rate says nothing more is coming, for
    an event, a reading and an alert alike (docs/concepts.md#funding)."""
    p = EngineParams()
    assert rules.more_to_come(-0.0001, p) is True
    assert rules.more_to_come(-0.00005, p) is False
    assert rules.more_to_come(None, p) is None
