"""`oiradar doctor` against the simulator over real sockets: all well, a renamed field (a
drift: named with its endpoint, exit 6), and a venue failing under faults (exit 5)."""

from __future__ import annotations

import json
from typing import Any

from oiradar.sim.faults import Fault
from oiradar.venues.registry import ALL_VENUES
from tests.conftest import run_cli
from tests.simkit import threaded

EXPECTED = ["instruments", "snapshot", "klines", "oi_history", "funding_history", "stream"]


def _doctor(url: str, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    res = run_cli("doctor", "--endpoint", url, "--format", "json", *args)
    return res.code, json.loads(res.out) if res.out.strip() else [], res.err


def test_the_simulator_passes_every_check() -> None:
    with threaded(speed=1.0) as sim:
        code, reports, err = _doctor(sim.url, "--venues", ",".join(ALL_VENUES))
    assert code == 0, err
    assert [r["venue"] for r in reports] == list(ALL_VENUES)  # the seven
    for r in reports:
        assert [c["name"] for c in r["checks"]] == EXPECTED, r
        assert all(c["status"] == "ok" for c in r["checks"]), r
        assert r["symbol"] == "BTCUSDT" and not r["drift"] and r["ok"]
        assert isinstance(r["clock_skew_ms"], int)
        stream = r["checks"][-1]
        assert "MarketSnapshot" in stream["detail"] or "OISample" in stream["detail"], stream
    lag = {r["venue"]: r["history_lag_ms"] for r in reports}
    assert all(0 <= lag[v] <= 10 * 60_000 for v in ("binance", "bybit", "okx")), lag
    assert lag["bitget"] is None  # Bitget publishes no OI history: not a drift
    [bitget_oi] = [c for c in reports[3]["checks"] if c["name"] == "oi_history"]
    assert bitget_oi["detail"] == "not published by the venue"


def test_a_renamed_field_is_a_drift_naming_endpoint_and_field() -> None:
    with threaded(speed=1.0, renamed_fields={"sumOpenInterest": "sumOI"}) as sim:
        code, reports, _ = _doctor(sim.url, "--venues", "binance,bybit")
    assert code == 6
    binance, bybit = reports
    [drift] = [c for c in binance["checks"] if c["status"] != "ok"]
    assert drift["name"] == "oi_history" and drift["status"] == "drift"
    assert drift["endpoint"] == "/futures/data/openInterestHist"
    assert "sumOpenInterest" in drift["detail"]
    assert binance["drift"] and not bybit["drift"] and bybit["ok"]


def test_a_failing_venue_is_named_and_exits_5() -> None:
    with threaded(fault_rate=1.0, fault_kinds=(Fault.ERROR_5XX,)) as sim:
        code, reports, _ = _doctor(sim.url, "--venues", "okx")
    assert code == 5
    [okx] = reports
    [check] = okx["checks"]  # nothing more to ask without the instrument list
    assert check["status"] == "failed" and check["endpoint"] == "/api/v5/public/instruments"
    assert "HTTP 502" in check["detail"]
    assert not okx["drift"]
