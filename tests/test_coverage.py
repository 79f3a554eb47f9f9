"""Live liquidation feed coverage: schema v2, spans in the store, unknown bars on the grid."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from oiradar.errors import StoreError
from oiradar.kinds import Kind
from oiradar.records import Candle, Liquidation, MarketSeries, Side
from oiradar.services.watch.venue_status import FeedSpans
from oiradar.signals.windows import build_grid
from oiradar.store import Store, open_store
from oiradar.store.schema import MIGRATIONS, SCHEMA_VERSION
from oiradar.venues.stream import State, StreamStats
from tests.synth import FIVE_MIN as BAR
from tests.synth import T0, series

NAN = float("nan")


def _v1_store(path: Path) -> None:
    conn = sqlite3.connect(path)
    for stmt in MIGRATIONS[0]:
        conn.execute(stmt)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO liquidation_orders VALUES (?, 'bybit', 'BTCUSDT', 'LONG', 0.5, 6e4, 3e4)",
        (T0,),
    )
    conn.execute("INSERT INTO open_interest VALUES (?, 'bybit', 'BTCUSDT', 1.0, NULL, NULL)", (T0,))
    conn.commit()
    conn.close()


def test_v1_store_is_migrated_to_the_current_schema_and_keeps_its_rows(db_path: Path) -> None:
    _v1_store(db_path)
    with pytest.raises(StoreError, match="needs a migration"):
        open_store(db_path, readonly=True)
    with open_store(db_path) as s:
        assert s.schema_version == SCHEMA_VERSION
        assert list(s.rows(Kind.LIQUIDATION_ORDERS)) == [
            (T0, "bybit", "BTCUSDT", "LONG", 0.5, 6e4, 3e4)
        ]
        assert len(list(s.rows(Kind.OPEN_INTEREST))) == 1
        s.write_records([], coverage=[("bybit", "BTCUSDT", T0, T0 + BAR)])
        assert s.read_series("bybit", "BTCUSDT", "5m").liq_spans.tolist() == [[T0, T0 + BAR]]
    with open_store(db_path, readonly=True) as r:  # migrated once, readable from then on
        assert r.schema_version == SCHEMA_VERSION


def _spans(s: Store) -> list[tuple[str, str, int, int]]:
    rows = s._conn.execute("SELECT * FROM liquidation_coverage ORDER BY 1, 2, 3").fetchall()
    return [(str(v), str(y), int(a), int(b)) for v, y, a, b in rows]


def test_spans_roundtrip_and_the_upsert_extends_the_end(store: Store) -> None:
    order = Liquidation("bybit", "BTCUSDT", T0 + 1000, Side.SHORT, 1.0, 2.0, 2.0)
    counts = store.write_records([order], coverage=[("bybit", "BTCUSDT", T0, T0 + BAR)])
    assert counts == {Kind.LIQUIDATION_ORDERS: 1}  # coverage rows are not counted
    store.write_records([], coverage=[("bybit", "BTCUSDT", T0, T0 + 3 * BAR)])
    store.write_records([], coverage=[("bybit", "BTCUSDT", T0, T0 + 2 * BAR)])  # never shrinks
    store.write_records(
        [],
        coverage=[
            ("bybit", "BTCUSDT", T0 + 10 * BAR, T0 + 11 * BAR),
            ("bybit", "BTCUSDT", T0 - 9 * BAR, T0 - 8 * BAR),
            ("bybit", "ETHUSDT", T0, T0 + 50 * BAR),
            ("okx", "BTCUSDT", T0, T0 + 50 * BAR),
        ],
    )
    assert _spans(store) == [
        ("bybit", "BTCUSDT", T0 - 9 * BAR, T0 - 8 * BAR),
        ("bybit", "BTCUSDT", T0, T0 + 3 * BAR),
        ("bybit", "BTCUSDT", T0 + 10 * BAR, T0 + 11 * BAR),
        ("bybit", "ETHUSDT", T0, T0 + 50 * BAR),
        ("okx", "BTCUSDT", T0, T0 + 50 * BAR),
    ]
    got = store.read_series("bybit", "BTCUSDT", "5m", T0 - 5 * BAR, T0 + 10 * BAR)
    # Only this (venue, symbol), only spans overlapping [start, end] (inclusive), by start.
    assert got.liq_spans.dtype == np.int64
    assert got.liq_spans.tolist() == [[T0, T0 + 3 * BAR], [T0 + 10 * BAR, T0 + 11 * BAR]]
    everything = store.read_series("bybit", "BTCUSDT", "5m")
    assert everything.liq_spans.shape == (3, 2)
    assert everything.liq_spans[:, 0].tolist() == sorted(everything.liq_spans[:, 0].tolist())


def test_upsert_keeps_one_row_per_start(store: Store) -> None:
    for end in (T0 + BAR, T0 + 4 * BAR, T0 + 2 * BAR):  # the daemon's flushes, one out of order
        store.write_records([], coverage=[("bybit", "BTCUSDT", T0, end)])
    store.write_records([], coverage=[("bybit", "BTCUSDT", T0, T0 + 5 * BAR)] * 2)
    assert _spans(store) == [("bybit", "BTCUSDT", T0, T0 + 5 * BAR)]


def test_spans_alone_give_coverage_and_unknown_elsewhere(store: Store) -> None:
    candles = [
        Candle("bybit", "BTCUSDT", BAR, T0 + i * BAR, 1.0, 1.0, 1.0, 1.0, 1.0) for i in range(4)
    ]
    store.write_records(candles)
    assert not store.read_series("bybit", "BTCUSDT", "5m").liq_coverage
    store.write_records([], coverage=[("bybit", "BTCUSDT", T0 + BAR, T0 + 3 * BAR)])
    s = store.read_series("bybit", "BTCUSDT", "5m")
    assert s.liq_coverage and len(s.liq_ts) == 0
    g = build_grid(s)
    np.testing.assert_array_equal(g.liq_long_usd, [NAN, 0.0, 0.0, NAN])
    np.testing.assert_array_equal(g.liq_short_usd, [NAN, 0.0, 0.0, NAN])


def test_coverage_is_written_in_the_same_transaction(store: Store) -> None:
    order = Liquidation("bybit", "BTCUSDT", T0, Side.LONG, 1.0, 2.0, 2.0)
    bad = ("bybit", "BTCUSDT", T0, None)  # end_ms NOT NULL
    with pytest.raises(StoreError, match="write to"):
        store.write_records([order], coverage=[bad])  # type: ignore[list-item]
    assert list(store.rows(Kind.LIQUIDATION_ORDERS)) == []


def _grid_liq(
    n: int,
    *,
    orders: Sequence[tuple[int, float, float]] = (),
    spans: Sequence[tuple[int, int]] = (),
    bar_totals: Sequence[tuple[int, float, float]] = (),
) -> tuple[list[float], list[float]]:
    """(long, short) per bar of a grid of n bars; orders and totals as (bar, long, short)."""
    liq = [*orders, *bar_totals]
    base: MarketSeries = series([1.0] * n, [1.0] * n, liq=liq if liq else None)
    s = replace(
        base,
        liq_coverage=bool(liq or spans),
        liq_bar_ts=np.array([T0 + i * BAR for i, _, _ in bar_totals], dtype=np.int64),
        liq_spans=np.array(spans, dtype=np.int64).reshape(-1, 2),
    )
    g = build_grid(s)
    return g.liq_long_usd.tolist(), g.liq_short_usd.tolist()


def _same(got: list[float], want: list[float]) -> bool:
    return bool(np.array_equal(np.array(got), np.array(want), equal_nan=True))


def test_bars_inside_a_span_are_zero_and_outside_unknown() -> None:
    at = [T0 + i * BAR for i in range(8)]
    long, short = _grid_liq(
        8,
        orders=[(0, 5.0, 0.0), (2, 7.0, 1.0), (6, 3.0, 3.0)],
        spans=[
            (at[1], at[3]),  # bars 1, 2 fully inside
            (at[3] + 60_000, at[5]),  # bar 3 only partly inside, bar 4 ends exactly at the end
        ],
        bar_totals=[(7, 1.0, 2.0)],  # a per-bar total is known on its own
    )
    assert _same(long, [NAN, 0.0, 7.0, NAN, 0.0, NAN, NAN, 1.0])
    assert _same(short, [NAN, 0.0, 1.0, NAN, 0.0, NAN, NAN, 2.0])  # orders in 0 and 6 unknown


def test_a_long_span_covers_past_a_nested_short_one() -> None:
    at = [T0 + i * BAR for i in range(7)]
    long, _ = _grid_liq(6, spans=[(at[2], at[3]), (at[0], at[6])])  # unsorted, nested
    assert long == [0.0] * 6


def test_span_cover_matches_a_brute_force_check() -> None:
    rng = np.random.default_rng(3)
    n = 200
    starts = T0 + rng.integers(-5 * BAR, n * BAR, 60)
    spans = [(int(a), int(a + rng.integers(0, 6 * BAR))) for a in starts]
    long, _ = _grid_liq(n, spans=spans)
    want = [
        0.0 if any(a <= T0 + i * BAR and T0 + (i + 1) * BAR <= b for a, b in spans) else NAN
        for i in range(n)
    ]
    assert _same(long, want)
    assert 0 < sum(v == 0.0 for v in want) < n  # both kinds of bars occur


def test_without_spans_the_old_rules_hold() -> None:
    # Orders only: the stream is continuous, so bars without orders are zero.
    assert _grid_liq(4, orders=[(1, 2.0, 3.0)]) == ([0.0, 2.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0])
    # Per-bar totals: only those bars, and bars with an order, are known.
    long, short = _grid_liq(5, orders=[(3, 4.0, 0.0)], bar_totals=[(1, 1.0, 2.0)])
    assert _same(long, [NAN, 1.0, NAN, 4.0, NAN])
    assert _same(short, [NAN, 2.0, NAN, 0.0, NAN])
    # No liquidation source at all: everything unknown.
    assert all(np.isnan(v) for v in _grid_liq(3)[0])


def test_default_spans_are_an_empty_int_array() -> None:
    s = series([1.0], [1.0])
    assert s.liq_spans.shape == (0, 2) and s.liq_spans.dtype == np.int64


def test_a_range_read_of_a_tracked_series_keeps_span_rules(store: Store) -> None:
    """Reading only bars no span reaches must not fall back to 'orders are continuous': the
    live daemon reads one bar at a time and must see what a whole-history read sees."""
    candles = [
        Candle("okx", "ADAUSDT", BAR, T0 + i * BAR, 1.0, 1.0, 1.0, 1.0, 1.0) for i in range(6)
    ]
    order = Liquidation("okx", "ADAUSDT", T0 + BAR + 5, Side.SHORT, 1.0, 1.0, 1.0)
    store.write_records(
        [*candles, order], coverage=[("okx", "ADAUSDT", T0 + 3 * BAR, T0 + 6 * BAR)]
    )
    head = store.read_series("okx", "ADAUSDT", "5m", T0, T0 + 2 * BAR)
    assert head.liq_tracked
    np.testing.assert_array_equal(build_grid(head).liq_short_usd, [NAN, NAN, NAN])
    whole = build_grid(store.read_series("okx", "ADAUSDT", "5m"))
    np.testing.assert_array_equal(whole.liq_short_usd, [NAN, NAN, NAN, 0.0, 0.0, 0.0])
    # The last bar read owns the orders up to its close (not only those at its open).
    last = store.read_series("okx", "ADAUSDT", "5m", T0 + BAR, T0 + BAR)
    assert list(last.liq_ts) == [T0 + BAR + 5]


def test_feed_spans_reach_the_last_message_of_a_stream_stopped_while_live() -> None:
    """The stop's coverage record closes the open span (the candles stored at a stop may
    close after the last bar-close record); a stop during a reconnect claims nothing more."""
    live = StreamStats(state=State.LIVE, last_message_ms=T0 + 60_000)
    spans = FeedSpans()
    assert spans.spans(live) == [(T0 + 60_000, T0 + 60_000)]
    stopped = replace(live, state=State.STOPPED, last_message_ms=T0 + 400_000, stopped_live=True)
    assert spans.spans(stopped) == [(T0 + 60_000, T0 + 400_000)]
    down = FeedSpans(start=T0 + 60_000)
    assert down.spans(replace(stopped, stopped_live=False)) == []
