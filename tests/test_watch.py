"""`oiradar watch` end to end against the simulator: alerts on time, squeeze upgrades, exact
stored series under faults, no alert twice, clean stop, `oiradar status`."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from oiradar.services.analyze import Query, run_events
from oiradar.services.watch import Watch, WatchRequest
from oiradar.signals.engine import timeline
from oiradar.signals.live import BarResult
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import Regime
from oiradar.store import Store
from oiradar.units import MINUTE_MS, iso, parse_time
from tests.watchkit import Run, watch_until

BAR = 5 * MINUTE_MS
PARAMS = EngineParams(min_history_ms=30 * MINUTE_MS)
# In the seeded synthetic market (seed 7), ADAUSDT covers from 14:02 for 40 min, then is
# squeezed from 14:42 for 24 min, after five quiet hours.
ADA_START = parse_time("2026-05-28T13:00Z")
ADA_END = parse_time("2026-05-28T15:20Z")
# At 300x one simulator push (0.1 s wall) spans 30 s of venue time, and channels of one venue
# (OKX OI vs liquidations) arrive in either order within it: wait two pushes after a close.
SPEED, SETTLE = 300.0, 60_000


def events(db: Path, venue: str, symbol: str, params: EngineParams) -> list[dict[str, object]]:
    from oiradar.services.analyze import event_dict

    with Store(db, readonly=True) as s:
        evs, q = run_events(s, Query(symbol, venue=venue, interval="5m"), params, None)
    return [event_dict(e, q) for e in evs]


Readings = dict[tuple[str, str, int], BarResult]


def recorder(readings: Readings) -> Callable[[Watch], None]:
    """Wraps the daemon's decider to keep every bar the live engine stepped."""

    def probe(daemon: Watch) -> None:
        inner = daemon.decider.on_bar

        def on_bar(venue: str, symbol: str, result: BarResult, *a: Any) -> Any:
            readings[(venue, symbol, result.ts_ms)] = result
            return inner(venue, symbol, result, *a)

        daemon.decider.on_bar = on_bar  # type: ignore[method-assign]

    return probe


@pytest.fixture(scope="module")
def squeeze_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Readings]:
    req = WatchRequest(("binance", "bybit", "okx"), ("ADAUSDT",), None, PARAMS, settle_ms=SETTLE)
    readings: Readings = {}
    run = asyncio.run(
        watch_until(
            tmp_path_factory.mktemp("squeeze"),
            req,
            ADA_END,
            speed=SPEED,
            start_ms=ADA_START,
            probe=recorder(readings),
        )
    )
    return run, readings


def assert_live_equals_batch(run: Run, readings: Readings, params: EngineParams) -> int:
    """Every bar the daemon stepped reads exactly as the batch engine reads the store."""
    checked = 0
    with Store(run.db, readonly=True) as s:
        for venue, symbol in {(v, sym) for v, sym, _ in readings}:
            tl = timeline(s.read_series(venue, symbol, "5m"), params)
            index = {int(t): i for i, t in enumerate(tl.grid.ts)}
            for (v, sym, ts), got in readings.items():
                if (v, sym) != (venue, symbol) or ts not in index:
                    continue
                i = index[ts]
                where = f"{venue} {symbol} {iso(ts)}"
                assert got.regime == Regime(int(tl.regime[i])), where
                assert same(got.oi_pct, float(tl.oi_pct[i])), where
                assert same(got.squeeze, float(tl.squeeze[i])), where
                assert same(got.short_liq_usd, float(tl.short_liq_usd[i])), where
                checked += 1
    return checked


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def test_live_readings_equal_the_batch_engine_on_the_stored_data(
    squeeze_run: tuple[Run, Readings],
) -> None:
    run, readings = squeeze_run
    assert assert_live_equals_batch(run, readings, PARAMS) >= 3 * 25


def test_alert_arrives_within_a_bar_of_the_event_analyze_dates(
    squeeze_run: tuple[Run, Readings],
) -> None:
    squeeze_run, _ = squeeze_run
    alerts = squeeze_run.alerts("ADAUSDT")
    assert alerts, f"no alert; status {squeeze_run.status}"
    first = squeeze_run.received[0]
    evs = [
        e
        for e in events(squeeze_run.db, "binance", "ADAUSDT", PARAMS)
        if parse_time(str(e["start"])) >= ADA_START + 30 * MINUTE_MS
    ]
    assert evs, "analyze found no event in the watched range"
    signal = parse_time(str(evs[0]["signal_at"]))
    assert first.body["kind"] == "new"
    assert parse_time(first.body["ts"]) <= signal
    assert first.sim_ms <= signal + BAR, (first.sim_ms - signal) / 1000


def test_the_squeeze_upgrade_fires_on_the_cascade(squeeze_run: tuple[Run, Readings]) -> None:
    squeeze_run, _ = squeeze_run
    kinds = [(a["kind"], a["regime"]) for a in squeeze_run.alerts("ADAUSDT")]
    assert kinds[0] == ("new", "SHORT_COVERING"), kinds
    assert ("escalation", "SHORT_SQUEEZE") in kinds, kinds
    up = next(a for a in squeeze_run.alerts("ADAUSDT") if a["kind"] == "escalation")
    squeeze_from = parse_time("2026-05-28T14:42Z")
    assert squeeze_from <= parse_time(up["ts"]) <= squeeze_from + 4 * BAR
    assert up["short_liq_usd"] > 2 * up["long_liq_usd"]
    assert up["liq_feeds"] == {"binance": "sampled", "bybit": "complete", "okx": "sampled"}
    assert "squeezed" in up["sentence"]
    squeezes = [
        e for e in events(squeeze_run.db, "bybit", "ADAUSDT", PARAMS) if e["squeeze"] is True
    ]
    assert squeezes, "analyze on the stored data sees no squeeze"


def test_no_alert_is_sent_twice(squeeze_run: tuple[Run, Readings]) -> None:
    squeeze_run, _ = squeeze_run
    keys = [(a["symbol"], a["kind"], a["ts"]) for a in squeeze_run.alerts()]
    assert len(keys) == len(set(keys))
    kinds = [a["kind"] for a in squeeze_run.alerts()]
    assert kinds.count("escalation") <= 1
