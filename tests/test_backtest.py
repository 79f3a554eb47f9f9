"""The event study: numbers checked by hand, controls, robustness table, sweep, no look-ahead."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oiradar.records import Candle, MarketSeries, OISample
from oiradar.research import backtest as bt
from oiradar.research.study import control_entries, excursions, forward_returns
from oiradar.research.trades import Sample, study
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import Regime
from oiradar.signals.windows import build_grid
from oiradar.store import open_store
from oiradar.units import DAY_MS, MINUTE_MS
from tests.conftest import run_cli
from tests.synth import FIVE_MIN, T0, series

COVERING = Regime.SHORT_COVERING
N = 900


def two_events() -> MarketSeries:
    """Flat market with two orderly short-covering events (15m window, 1.5 % / 1 % bands):
    the first enters at bar 99 (close 101.2) and wins, the second at bar 599 (close 102.3)
    and loses. Every later move stays inside the bands, so nothing else is an event."""
    close = np.full(N, 100.0)
    oi = np.full(N, 1000.0)
    close[98:101] = [100.5, 101.2, 102.0]
    oi[98:101] = [990.0, 975.0, 960.0]
    close[101:111] = 102.0
    close[111:200] = 102.5
    close[200:598] = 101.0
    oi[101:] = 960.0
    close[598:601] = [101.5, 102.3, 103.0]
    oi[598:601] = [950.0, 936.0, 921.6]
    close[601:611] = 103.0
    close[611:] = 102.0
    oi[601:] = 921.6
    return series(close, oi)


def sample(s: MarketSeries, symbol: str = "TESTUSDT") -> Sample:
    return Sample(symbol, "5m", build_grid(s), s.high.copy(), s.low.copy(), None)


def test_event_study_numbers_match_the_hand_computation() -> None:
    req = bt.BacktestRequest(cost_bps=10.0, control_per_event=20)
    res = bt.run([sample(two_events())], req)
    assert [(e["start"], e["regime"], e["tier"]) for e in res.events] == [
        ("2024-06-01T08:15:00Z", "SHORT_COVERING", "normal"),
        ("2024-06-03T01:55:00Z", "SHORT_COVERING", "normal"),
    ]
    first, second = res.events
    assert first["entry_price"] == 101.2 and second["entry_price"] == 102.3
    # (exit / entry - 1) x 100 - 0.10 % cost, exits at +3, +12, +48 and +288 bars.
    expect_first = {"15m": 0.6905138, "1h": 1.1845850, "4h": 1.1845850, "1d": -0.2976285}
    expect_second = {"15m": 0.5842620, "1h": -0.3932551, "4h": -0.3932551, "1d": -0.3932551}
    for row, expect in ((first, expect_first), (second, expect_second)):
        for h, value in expect.items():
            assert row[f"ret_{h}_pct"] == pytest.approx(value, abs=1e-4), h
    assert first["mfe_pct"] == pytest.approx(1.2845850, abs=1e-4)  # 102.5 / 101.2
    assert first["mae_pct"] == pytest.approx(-0.1976285, abs=1e-4)  # 101 / 101.2
    assert second["mfe_pct"] == pytest.approx(0.6842620, abs=1e-4)
    assert second["mae_pct"] == pytest.approx(-0.2932551, abs=1e-4)
    pooled = res.groups[0]
    assert (pooled["group"], pooled["events"]) == ("all", 2)
    assert pooled["hit_pct"] == 50.0
    assert pooled["mean_1h"] == pytest.approx((1.1845850 - 0.3932551) / 2, abs=1e-4)
    assert pooled["median"] == pytest.approx((1.1845850 - 0.3932551) / 2, abs=1e-4)
    lo, hi = pooled["mean_ci"]
    assert -0.3933 <= lo <= pooled["mean_1h"] <= hi <= 1.1846
    # Control: random bars of the same days; the market is flat most of the day, so the
    # control's mean is close to minus the cost.
    assert pooled["control_mean"] == pytest.approx(-0.1, abs=0.15)
    assert pooled["edge"] == pytest.approx(pooled["mean_1h"] - pooled["control_mean"], abs=1e-3)


def test_costs_shift_every_return() -> None:
    free = bt.run([sample(two_events())], bt.BacktestRequest(cost_bps=0.0)).events
    costly = bt.run([sample(two_events())], bt.BacktestRequest(cost_bps=25.0)).events
    for a, b in zip(free, costly, strict=True):
        assert a["ret_1h_pct"] - b["ret_1h_pct"] == pytest.approx(0.25, abs=1e-9)


def test_forward_returns_are_nan_past_the_data_and_signed_by_direction() -> None:
    close = np.array([100.0, 110.0, 121.0])
    got = forward_returns(close, np.array([0, 1, 2]), 1, np.array([1.0, -1.0, 1.0]), 0.0)
    assert got[0] == pytest.approx(10.0) and got[1] == pytest.approx(-10.0)
    assert math.isnan(got[2])
    mfe, mae = excursions(close, close, close, np.array([0]), 2, np.array([-1.0]))
    # Short from 100: the best it saw was 110 (-10 %), the worst 121 (-21 %).
    assert mfe[0] == pytest.approx(-10.0) and mae[0] == pytest.approx(-21.0)


def test_controls_are_on_the_same_day_and_on_valid_bars() -> None:
    rng = np.random.default_rng(1)
    ts = T0 + FIVE_MIN * np.arange(3 * 288, dtype=np.int64)
    valid = np.ones(len(ts), dtype=np.bool_)
    valid[300:350] = False
    entries = np.array([10, 320, 700], dtype=np.int64)
    idx, owner = control_entries(ts, valid, entries, 50, rng)
    assert len(idx) == 150 and np.all(valid[idx])
    assert np.all(ts[idx] // DAY_MS == ts[entries[owner]] // DAY_MS)


def test_the_robustness_table_drops_the_top_contributors() -> None:
    s = two_events()
    samples = [sample(s, "AAAUSDT"), sample(s, "BBBUSDT"), sample(s, "CCCUSDT")]
    res = bt.run(samples, bt.BacktestRequest(drop_top=2))
    assert len(res.dropped) == 2
    assert res.without_top[0]["events"] == 2  # one symbol's two events remain
    keys = {(r["group"], r["key"]) for r in res.groups}
    assert {("symbol", "AAAUSDT"), ("regime", "SHORT_COVERING")} <= keys


def test_sweep_ranks_every_pair_and_warns_about_multiple_testing() -> None:
    rows, warnings = bt.sweep(
        [sample(two_events())],
        bt.BacktestRequest(params=EngineParams(windows_ms=(15 * MINUTE_MS,))),  # one window
        [1.0, 1.5, 5.0],
        [0.5, 1.0],
    )
    assert len(rows) == 6
    means = [r["mean_1h"] for r in rows if r.get("mean_1h") is not None]
    assert means == sorted(means, reverse=True)
    assert "6 threshold pairs" in warnings[0] and "Bonferroni" in warnings[0]
    at_default = next(r for r in rows if (r["oi_threshold"], r["price_threshold"]) == (1.5, 1.0))
    assert at_default["events"] == 2
    # Both events drop OI by 4 %: a 5 % band finds none, and those rows rank last.
    assert [r["events"] for r in rows[-2:]] == [0, 0]


def test_the_sweep_enters_the_same_trades_as_the_detailed_study() -> None:
    """The sweep skips the events' readings and rows; its trades, controls and summary must
    be the detailed study's, including a sample that starts late."""
    rng = np.random.default_rng(5)
    samples = []
    for k, name in enumerate(("AAAUSDT", "BBBUSDT", "BTCUSDT")):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, 3000)))
        oi = 1000 * np.exp(np.cumsum(rng.normal(0, 0.005, 3000)))
        one = sample(series(close, oi), name)
        start = int(one.grid.ts[700]) if k == 1 else None
        samples.append(Sample(one.symbol, one.interval, one.grid, one.high, one.low, start))
    req = bt.BacktestRequest(regimes=(COVERING, Regime.LONG_LIQUIDATION, Regime.NEW_LONGS))
    full, full_ctrl = study(samples, req, req.params)
    light, light_ctrl = study(samples, req, req.params, detail=False)
    assert len(full.symbol) > 20 and not light.rows and full.rows
    for got, want in ((light, full), (light_ctrl, full_ctrl)):
        assert (got.symbol, got.regime, got.tier) == (want.symbol, want.regime, want.tier)
        for h, values in want.returns.items():
            np.testing.assert_array_equal(got.array(h), np.asarray(values))
    np.testing.assert_array_equal(light.mfe, full.mfe)
    np.testing.assert_array_equal(light.mae, full.mae)
    late = [r["start"] for r in full.rows if r["symbol"] == "BBBUSDT"]
    assert late and min(late) >= _iso(int(samples[1].grid.ts[700]))


def _trades_until(s: MarketSeries, t_ms: int, params: EngineParams) -> list[tuple[object, ...]]:
    res, _ = study([sample(s)], bt.BacktestRequest(control_per_event=0), params)
    return [
        (r["start"], r["regime"], r["tier"], r["entry_price"], r["oi_change_pct"])
        for r in res.rows
        if r["signal_at"] <= _iso(t_ms)
    ]


def _iso(ms: int) -> str:
    from oiradar.units import iso

    return iso(ms)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), cut=st.integers(30, 380), adaptive=st.booleans())
def test_no_look_ahead_changing_data_after_t_never_changes_a_signal_at_t(
    seed: int, cut: int, adaptive: bool
) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    shocks = rng.choice([0.0, 0.0, 1.0], n) * rng.normal(0, 0.015, n)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.003, n) + shocks))
    oi = 1000 * np.exp(np.cumsum(rng.normal(0, 0.004, n) - shocks))
    liq = [(i, float(rng.uniform(0, 1e3)), float(rng.uniform(0, 1e3))) for i in range(n)]
    params = EngineParams(adaptive=adaptive, min_history_ms=3_600_000)
    before = series(close, oi, liq=liq)
    close2, oi2 = close.copy(), oi.copy()
    # After t: prices and OI shaken, and short liquidations in bursts big enough to turn a
    # running covering into a squeeze (and OI dropping hard enough to make it strong).
    close2[cut + 1 :] *= rng.uniform(0.9, 1.2, n - cut - 1)
    oi2[cut + 1 :] *= rng.uniform(0.7, 1.05, n - cut - 1)
    liq2 = [(i, a, b * (1 if i <= cut else float(rng.uniform(0, 1e4)))) for i, a, b in liq]
    after = series(close2, oi2, liq=liq2)
    t_ms = T0 + (cut + 1) * FIVE_MIN  # the close of bar `cut`
    assert _trades_until(before, t_ms, params) == _trades_until(after, t_ms, params)


def test_backtest_cli_on_a_store(tmp_path: Path) -> None:

    s = two_events()
    db = tmp_path / "bt.sqlite"
    with open_store(db) as store:
        recs: list[Candle | OISample] = [
            Candle("binance", sym, FIVE_MIN, int(t), c, c, c, c, 100.0)
            for sym in ("AAAUSDT", "BBBUSDT")
            for t, c in zip(s.candle_ts, s.close, strict=True)
        ]
        recs += [
            OISample("binance", sym, int(t), float(o))
            for sym in ("AAAUSDT", "BBBUSDT")
            for t, o in zip(s.oi_ts, s.oi_base, strict=True)
        ]
        store.write_records(recs)
    table = run_cli("--db", str(db), "backtest")
    assert table.code == 0, table.err
    assert "event study: 4 events on binance, 2 symbol(s)" in table.out
    doc = json.loads(run_cli("--db", str(db), "backtest", "--format", "json").out)
    assert doc["groups"][0]["events"] == 4 and len(doc["events"]) == 4
    csv = run_cli("--db", str(db), "backtest", "--format", "csv").out.splitlines()
    assert csv[0].startswith("symbol,regime,tier,start,signal_at") and len(csv) == 5
    swept = run_cli("--db", str(db), "backtest", "--sweep", "oi=1,2", "price=0.5,1")
    assert swept.code == 0 and "threshold sweep" in swept.out
    assert "4 threshold pairs" in swept.err
    for args, message in [
        (["--sweep", "oi=1,x", "price=1"], "takes numbers"),
        (["--sweep", "oi=1"], "needs both lists"),
        (["price=1"], "unexpected argument"),
        (["--symbols", "NOPEUSDT"], "no candles for NOPEUSDT"),
        (["--cost-bps", "-1"], "--cost-bps must be"),
        (["--from", "2030-01-01"], "no "),
    ]:
        bad = run_cli("--db", str(db), "backtest", *args)
        assert bad.code != 0 and message in bad.err, (args, bad.err)
        assert bad.err.count("\n") == 1


def test_backtest_on_the_real_data(real_db: Path) -> None:
    res = run_cli("--db", str(real_db), "backtest", "--interval", "1h", "--window", "1h",
                  "--format", "json")  # fmt: skip
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["groups"][0]["events"] >= 9  # at least the nine listed in SOURCES.md
    starts = {(e["symbol"], e["start"]) for e in doc["events"]}
    assert ("BTCUSDT", "2024-06-25T18:00:00Z") in starts
    assert ("SOLUSDT", "2024-08-13T16:00:00Z") in starts


def _ada_records(bars: int | None = None) -> list[Candle | OISample]:
    """`two_events()` (its first `bars`) as ADAUSDT on Bybit: candles and OI to store."""
    s = two_events()
    return [
        Candle("bybit", "ADAUSDT", FIVE_MIN, int(t), c, c, c, c, 1.0)
        for t, c in zip(s.candle_ts[:bars], s.close[:bars], strict=True)
    ] + [
        OISample("bybit", "ADAUSDT", int(t), float(o))
        for t, o in zip(s.oi_ts[:bars], s.oi_base[:bars], strict=True)
    ]


def test_track_record_summarizes_the_symbols_recent_events(tmp_path: Path) -> None:
    from dataclasses import replace

    from oiradar.services.alerts import sample_alert
    from oiradar.services.history import track_record

    db = tmp_path / "h.sqlite"
    with open_store(db) as store:
        store.write_records(_ada_records())
        now = T0 + 4 * DAY_MS
        track = track_record(store, "bybit", "ADAUSDT", COVERING, now, EngineParams())
        assert track is not None
        # The store holds 3 days and 3 hours: the record says 3 days, not 30.
        assert (track.days, track.events, track.hit_pct) == (3, 2, 50.0)
        assert track.median_1h_pct == pytest.approx((1.1845850 - 0.3932551) / 2, abs=1e-4)
        text = track.text("ADAUSDT")
        assert text == (
            "on ADAUSDT in the last 3 days: 2 similar events; hit rate 50 %, median +1h +0.40 %"
        )
        # Only what was knowable by `now`: a day after the first event, one event.
        early = track_record(store, "bybit", "ADAUSDT", COVERING, T0 + DAY_MS, EngineParams())
        assert early is not None and early.events == 1
        assert track_record(store, "okx", "ADAUSDT", COVERING, now, EngineParams()) is None
    alert = replace(sample_alert(now), history=text)
    assert alert.to_dict()["history"] == text and alert.sentence().endswith(text)


def _hourly_store(db: Path, symbols: tuple[str, ...] = ("AAAUSDT",)) -> None:
    """1h bars only (as the real 1h data): flat, then one hour of OI -3 % while price +2 %."""

    hour = 3_600_000
    close = np.full(400, 100.0)
    oi = np.full(400, 1000.0)
    close[200:] = 102.0
    oi[200:] = 970.0
    with open_store(db) as store:
        store.write_records(
            [Candle("binance", sym, hour, T0 + i * hour, c, c, c, c, 100.0)
             for sym in symbols for i, c in enumerate(close)]
            + [OISample("binance", sym, T0 + (i + 1) * hour, float(o))
               for sym in symbols for i, o in enumerate(oi)]
        )  # fmt: skip


def test_backtest_and_report_default_to_one_bar_on_hourly_data(tmp_path: Path) -> None:
    """No --window: 15m, or one bar when bars are longer, as analyze (issue #12, item 1)."""
    db = tmp_path / "hourly.sqlite"
    _hourly_store(db)
    table = run_cli("--db", str(db), "backtest")
    assert table.code == 0, table.err
    assert "on binance, 1 symbol(s)" in table.out
    doc = json.loads(run_cli("--db", str(db), "backtest", "--format", "json").out)
    assert [e["start"] for e in doc["events"]] == ["2024-06-09T08:00:00Z"]
    page = run_cli("--db", str(db), "report", "--charts", "1", "--out", str(tmp_path / "r"))
    assert page.code == 0, page.err
    assert "horizons 1h" in (tmp_path / "r" / "index.html").read_text()
    explicit = run_cli("--db", str(db), "backtest", "--window", "15m")
    assert explicit.code == 2 and "not a multiple" in explicit.err


def test_seed_fixes_results_whatever_the_order_of_symbols(tmp_path: Path) -> None:
    """--seed gives the same study for --symbols A,B and B,A (issue #12, item 11)."""

    a = two_events()
    wobble = 1 + 0.002 * np.sin(np.arange(N) / 7.0)  # B differs from A, inside the bands
    b = series(a.close * wobble, a.oi_base)
    db = tmp_path / "two.sqlite"
    with open_store(db) as store:
        for sym, s in (("AAAUSDT", a), ("BBBUSDT", b)):
            store.write_records(
                [Candle("binance", sym, FIVE_MIN, int(t), c, c, c, c, 100.0)
                 for t, c in zip(s.candle_ts, s.close, strict=True)]
                + [OISample("binance", sym, int(t), float(o))
                   for t, o in zip(s.oi_ts, s.oi_base, strict=True)]
            )  # fmt: skip

    def study(symbols: str) -> str:
        res = run_cli("--db", str(db), "backtest", "--symbols", symbols, "--seed", "3",
                      "--drop-top", "1", "--format", "json")  # fmt: skip
        assert res.code == 0, res.err
        return res.out

    forward = study("AAAUSDT,BBBUSDT")
    assert json.loads(forward)["groups"][0]["events"] == 4
    assert study("BBBUSDT,AAAUSDT") == forward


def test_backtest_tables_sign_returns_only(tmp_path: Path) -> None:
    """'1 event', and sweep bands and p-values without a + sign (issue #12, item 13)."""
    db = tmp_path / "hourly.sqlite"
    _hourly_store(db)
    table = run_cli("--db", str(db), "backtest")
    assert "event study: 1 event on binance" in table.out
    swept = run_cli("--db", str(db), "backtest", "--sweep", "oi=1,2.5", "price=0.5")
    assert swept.code == 0, swept.err
    rows = [line.split("│")[1:-1] for line in swept.out.splitlines() if line.startswith("│")]
    bands = sorted((r[0].strip(), r[1].strip()) for r in rows)
    assert bands == [("1", "0.5"), ("2.5", "0.5")], bands


def test_track_record_on_a_few_hours_says_not_enough_history(tmp_path: Path) -> None:
    """Two hours stored is no record: not "0 similar events" (issue #12, item 6)."""
    from oiradar.services.history import track_record

    db = tmp_path / "h.sqlite"
    with open_store(db) as store:
        store.write_records(_ada_records(bars=24))
        now = T0 + 2 * 3_600_000
        track = track_record(store, "bybit", "ADAUSDT", COVERING, now, EngineParams())
    assert track is not None and not track.enough
    assert track.text("ADAUSDT") == "on ADAUSDT: not enough history for a track record (2 h stored)"
    assert track.short() == "not enough history"


def test_alerts_read_a_precomputed_track_record(tmp_path: Path) -> None:
    """The watch daemon's track book studies a symbol off the alert path, once per hour of
    venue time; an alert reads that record (here an older one that knows one event, where a
    fresh study would know two) and never runs the study itself (issue #13)."""
    from oiradar.services.history import TrackBook, track_record

    db = tmp_path / "h.sqlite"
    book = TrackBook(EngineParams())
    key = ("bybit", "ADAUSDT")
    with open_store(db) as store:
        store.write_records(_ada_records())
        day_one, later = T0 + DAY_MS, T0 + 4 * DAY_MS
        assert book.refresh_due(store, [(*key, day_one)]) == 1
        assert book.refresh_due(store, [(*key, day_one + 30 * MINUTE_MS)]) == 0  # still fresh
        old = book.read(store, *key, COVERING, later)
        assert old == track_record(store, *key, COVERING, day_one, EngineParams())
        assert old is not None and old.events == 1
        fresh = track_record(store, *key, COVERING, later, EngineParams())
        assert fresh is not None and fresh.events == 2
        assert book.refresh_due(store, [(*key, later)]) == 1  # an hour on: studied again
        assert book.read(store, *key, COVERING, later) == fresh
        # Under a day stored there is no study to keep: the alert tells the hours it finds.
        assert book.refresh_due(store, [("bybit", "ADAUSDT", T0 + 2 * 3_600_000)]) == 0
        young = TrackBook(EngineParams())
        assert young.refresh_due(store, [(*key, T0 + 2 * 3_600_000)]) == 0
        got = young.read(store, *key, COVERING, T0 + 2 * 3_600_000)
        assert got is not None and not got.enough and got.stored_ms == 2 * 3_600_000
        assert key not in young.records


def test_an_alert_under_a_day_of_history_reads_no_month_of_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first day's alerts at a bar close each loaded a month of rows on the daemon's
    history threads to say "not enough history": one span query says it."""
    from oiradar.services import history

    def loads(*_: object, **__: object) -> None:
        raise AssertionError("the study's rows were loaded")

    with open_store(tmp_path / "h.sqlite") as store:
        store.write_records(_ada_records())
        monkeypatch.setattr(history, "load_samples", loads)
        got = history.TrackBook(EngineParams()).read(
            store, "bybit", "ADAUSDT", COVERING, T0 + 5 * 3_600_000
        )
    assert got is not None and not got.enough and got.stored_ms == 5 * 3_600_000
    assert got.text("ADAUSDT") == "on ADAUSDT: not enough history for a track record (5 h stored)"


def test_the_book_tells_an_alert_its_record_without_the_store_once_it_looked(
    tmp_path: Path,
) -> None:
    """`TrackBook.cached` (on the daemon's loop: an alert asked for its record on the
    history threads queued behind a bar close's other alerts) is what `read` gives, known
    without the store: under a day the hours since the first stored bar, then the study;
    None (ask `read`) before the book has looked, and once a day is held but not studied."""
    from oiradar.services.history import TrackBook

    book, key, hour = TrackBook(EngineParams()), ("bybit", "ADAUSDT"), 3_600_000
    with open_store(tmp_path / "h.sqlite") as store:
        store.write_records(_ada_records())
        assert book.cached(*key, COVERING, T0 + 2 * hour) is None
        assert book.refresh_due(store, [(*key, T0 + 2 * hour)]) == 0
        for now in (T0 + 2 * hour, T0 + 5 * hour, T0 + 23 * hour):  # bar closes
            got = book.cached(*key, COVERING, now)
            assert got is not None and got == TrackBook(EngineParams()).read(
                store, *key, COVERING, now
            )
            assert got.stored_ms == now - T0 and not got.enough
        assert book.cached(*key, COVERING, T0 + DAY_MS) is None  # a day: the study's turn
        assert book.refresh_due(store, [(*key, T0 + DAY_MS)]) == 1
        studied = book.cached(*key, COVERING, T0 + DAY_MS + 5 * MINUTE_MS)
        assert studied is not None and studied.enough
        assert studied == book.read(store, *key, COVERING, T0 + DAY_MS)
