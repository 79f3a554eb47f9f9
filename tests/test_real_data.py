"""The real Binance data in ../shared/data/real/derived: import counts/values and its episodes."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest

from oiradar.kinds import Kind
from oiradar.services.analyze import Query, event_dict, run_events, run_timeline
from oiradar.services.exporter import export_store
from oiradar.services.importer import import_paths
from oiradar.signals.params import EngineParams, Evidence
from oiradar.signals.regimes import Regime
from oiradar.store import open_store
from oiradar.units import HOUR_MS, MINUTE_MS, parse_time


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_import_counts_and_values_match_the_files(derived: Path, real_db: Path) -> None:
    with open_store(real_db, readonly=True) as s:
        for folder in sorted(derived.iterdir()):
            if not folder.is_dir():
                continue
            for kind, fname, key in (
                (Kind.CANDLES, "candles.csv", "close"),
                (Kind.OPEN_INTEREST, "open_interest.csv", "oi_base"),
                (Kind.LIQUIDATIONS, "liquidations.csv", "short_liq_base"),
            ):
                path = folder / fname
                if not path.exists():
                    continue
                expected = _csv(path)
                interval = expected[0].get("interval")
                for symbol in sorted({r["symbol"] for r in expected}):
                    mine = [r for r in expected if r["symbol"] == symbol]
                    stored = [
                        r
                        for r in s.rows(kind, "binance", symbol)
                        if interval is None or r[3] == interval
                    ]
                    lo, hi = int(mine[0]["ts_ms"]), int(mine[-1]["ts_ms"])
                    stored = [r for r in stored if lo <= r[0] <= hi]
                    assert len(stored) == len(mine), (folder.name, fname, symbol)
                    idx = {"close": 7, "oi_base": 3, "short_liq_base": 5}[key]
                    for want, got in zip(
                        mine[:: max(1, len(mine) // 50)],
                        stored[:: max(1, len(mine) // 50)],
                        strict=True,
                    ):
                        assert got[0] == int(want["ts_ms"])
                        assert got[idx] == pytest.approx(float(want[key]), rel=1e-12)


def test_known_file_sizes(real_db: Path) -> None:
    with open_store(real_db, readonly=True) as s:
        summary = {(k, sym): n for k, _v, sym, n, _lo, _hi in s.summary()}
    # 1h set: 1,465 bars for BTC/ETH (SOL has 2 fewer after its duplicated rows were dropped
    # upstream); 5m set: 1,441 bars each. BTC is in both sets.
    assert summary[("candles", "ETHUSDT")] == 1465
    assert summary[("candles", "BTCUSDT")] == 1465 + 1441
    assert summary[("candles", "DOGEUSDT")] == 1441
    assert summary[("open_interest", "XRPUSDT")] == 1441


def test_reimport_of_real_data_changes_nothing(derived: Path, real_db: Path) -> None:
    with open_store(real_db) as s:
        again = import_paths(s, [derived])
    assert again.ok and sum(again.changed.values()) == 0 and sum(again.read.values()) > 20_000


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_export_then_import_round_trips(real_db: Path, tmp_path: Path, file_format: str) -> None:
    out = tmp_path / "export"
    with open_store(real_db, readonly=True) as s:
        written = export_store(s, out, file_format)
        originals = {k: list(s.rows(k)) for k in Kind}
    assert {p.name for p, _ in written} == {
        f"candles.{file_format}",
        f"open_interest.{file_format}",
        f"liquidations.{file_format}",
    }
    with open_store(tmp_path / "copy.sqlite") as copy:
        report = import_paths(copy, [out])
        assert report.ok
        for kind in Kind:
            assert list(copy.rows(kind)) == originals[kind]


# Short-covering hours listed in ../shared/data/real/SOURCES.md (1 h bars, UTC bar open), with
# whether the hour carried a burst of short liquidations (squeeze) or was orderly covering.
EPISODES_1H = [
    ("BTCUSDT", "2024-06-25T18:00Z", False),  # OI -4.6 %, short liq 8 BTC: orderly
    ("SOLUSDT", "2024-08-13T16:00Z", True),  # short liq 3,708 SOL vs 42 long
    ("BTCUSDT", "2024-08-16T02:00Z", False),  # short liq 7 BTC: orderly
    ("SOLUSDT", "2024-08-05T07:00Z", True),  # crash rebound, 5,672 SOL shorts liquidated
    ("BTCUSDT", "2024-08-08T21:00Z", True),  # the 2024-08-08 squeeze
    ("SOLUSDT", "2024-08-12T11:00Z", True),  # 5,497 SOL shorts, no longs
    ("ETHUSDT", "2024-08-08T01:00Z", True),
    # $1.0M of shorts vs $51k of longs liquidated in the hour: a squeeze, not orderly covering
    # (the 0.02 % OI floor of oiradar 0.1 left it orderly; labels/README.md).
    ("BTCUSDT", "2024-07-14T21:00Z", True),
    ("BTCUSDT", "2024-08-08T01:00Z", True),
]


def _events_1h(db: Path, symbol: str) -> list[dict[str, object]]:
    with open_store(db, readonly=True) as s:
        evs, q = run_events(
            s, Query(symbol, interval="1h"), EngineParams(windows_ms=(HOUR_MS,)), None
        )
    return [event_dict(e, q) for e in evs]


@pytest.mark.parametrize(("symbol", "start", "squeeze"), EPISODES_1H)
def test_real_short_covering_episodes_are_found(
    real_db: Path, symbol: str, start: str, squeeze: bool
) -> None:
    events = {e["start"]: e for e in _events_1h(real_db, symbol)}
    key = start.replace("Z", ":00Z")
    assert key in events, f"{symbol} {start} not found; got {sorted(events)}"
    ev = events[key]
    assert ev["regime"] == ("SHORT_SQUEEZE" if squeeze else "SHORT_COVERING")
    assert ev["squeeze"] is squeeze
    assert ev["oi_change_pct"] < -1.5 and ev["price_change_pct"] > 1.0
    assert ev["short_liq_usd"] is not None and ev["short_liq_usd"] > 0


def test_btc_june_25_event_values(real_db: Path) -> None:
    ev = next(e for e in _events_1h(real_db, "BTCUSDT") if e["start"] == "2024-06-25T18:00:00Z")
    # SOURCES.md: OI -4.57 % (oi_open->oi_close), price +1.28 %; we measure close-to-close.
    assert ev["oi_change_pct"] == pytest.approx(-4.55, abs=0.05)
    assert ev["price_change_pct"] == pytest.approx(1.28, abs=0.02)
    assert ev["end"] == "2024-06-25T19:00:00Z"
    assert ev["funding_rate"] is None and ev["more_to_come"] is None  # no funding in this set


def test_5m_set_has_no_liquidations_so_squeeze_is_unknown(real_db: Path) -> None:
    """Without liquidations the squeeze is unknown, never "no"; taker flow (in these candles)
    still answers it when taker evidence is on."""
    one_hour = EngineParams(windows_ms=(HOUR_MS,))
    with open_store(real_db, readonly=True) as s:
        only_liq, q = run_events(
            s,
            Query("DOGEUSDT", interval="5m"),
            replace(one_hour, evidence=(Evidence.LIQUIDATIONS,)),
            None,
        )
        with_taker, _ = run_events(s, Query("DOGEUSDT", interval="5m"), one_hour, None)
    fomc = [event_dict(e, q) for e in only_liq]
    assert "2024-09-18T18:00:00Z" in [e["start"] for e in fomc]
    assert all(e["squeeze"] is None and e["short_liq_usd"] is None for e in fomc)
    assert all(e.squeeze is False and e.short_liq_usd is None for e in with_taker)


def test_reference_mode_agrees_with_the_matrix_on_real_5m_data(real_db: Path) -> None:
    """Same 45-minute window and thresholds: reference labels are the matrix's labels."""
    agree = {
        Regime.NEW_LONGS: {Regime.NEW_LONGS},
        Regime.SHORT_COVERING: {Regime.SHORT_COVERING, Regime.SHORT_SQUEEZE},
        Regime.LONG_LIQUIDATION: {Regime.LONG_LIQUIDATION},
        Regime.NONE: {
            Regime.NEUTRAL,
            Regime.NEW_SHORTS,
            Regime.LOW_CONVICTION_RALLY,
            Regime.LOW_CONVICTION_SELLOFF,
        },
        Regime.NO_DATA: {Regime.NO_DATA},
    }
    seen: set[Regime] = set()
    with open_store(real_db, readonly=True) as s:
        for symbol in ("BTCUSDT", "DOGEUSDT", "XRPUSDT"):
            q = Query(symbol, start_ms=parse_time("2024-09-13T21:00Z"), interval="5m")
            ref, _ = run_timeline(s, q, EngineParams(reference=True))
            flat = EngineParams(windows_ms=(45 * MINUTE_MS,), oi_taper=1.0, price_taper=1.0)
            mat, _ = run_timeline(s, q, flat)
            for r, m in zip(ref.regime, mat.regime, strict=True):
                assert Regime(int(m)) in agree[Regime(int(r))]
                seen.add(Regime(int(r)))
    assert {Regime.SHORT_COVERING, Regime.NONE, Regime.NEW_LONGS} <= seen
