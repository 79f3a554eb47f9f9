"""The store contract: what every backend must do, run on each one.

`sqlite` is the product's backend (opened by URL, as a user may name it); `memory` is a
second implementation used only here (tests/memstore.py): registering it is one line in
`store.backends.BACKENDS`, and it passes the same suite. The last test holds both to the same
`read_series` on seeded random data, array for array.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from oiradar.errors import NoDataError, StoreError, UserError
from oiradar.kinds import Kind
from oiradar.records import (
    Candle,
    FundingSample,
    Liquidation,
    LiquidationBar,
    OISample,
    Positioning,
    PremiumBar,
    Side,
)
from oiradar.signals.windows import Grid, build_grid
from oiradar.store import Episode, LoggedAlert, Store, WatchState, open_store
from oiradar.store.aio import AsyncStore, Batches
from oiradar.store.backends import BACKENDS
from tests.memstore import open_memory

T0 = 1_700_000_100_000 // 3_600_000 * 3_600_000  # an hour boundary
MIN, FIVE, HOUR = 60_000, 300_000, 3_600_000
Opener = Callable[..., Store]


@pytest.fixture(params=["sqlite", "memory", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """open(readonly=False) -> a handle on one fresh store of this backend."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        yield lambda readonly=False: open_store(url, readonly=readonly)
    elif request.param == "memory":
        with pytest.MonkeyPatch.context() as mp:
            mp.setitem(BACKENDS, "memory", open_memory)  # the one line a backend adds
            url = f"memory://{tmp_path.name}"
            yield lambda readonly=False: open_store(url, readonly=readonly)
    else:
        url = f"sqlite:///{tmp_path / 'contract.sqlite'}"
        yield lambda readonly=False: open_store(url, readonly=readonly)


@pytest.fixture
def store(backend: Opener) -> Iterator[Store]:
    with backend() as s:
        yield s


def bars(venue: str, n: int, start: int = T0, close: float = 100.0) -> list[Candle]:
    return [
        Candle(
            venue, "BTCUSDT", FIVE, start + i * FIVE, close, close + 1, close - 1, close + i, 10.0
        )
        for i in range(n)
    ]


# -- writing -------------------------------------------------------------------------------


def test_upserts_count_real_changes_only(store: Store) -> None:
    rows = [(T0 + i * FIVE, "binance", "BTCUSDT", 1000.0 + i, None, None) for i in range(20)]
    assert store.write([(Kind.OPEN_INTEREST, rows)]) == {Kind.OPEN_INTEREST: 20}
    assert store.write([(Kind.OPEN_INTEREST, rows)]) == {Kind.OPEN_INTEREST: 0}
    changed = [(*r[:3], 5.0, None, None) if i % 10 == 0 else r for i, r in enumerate(rows)]
    assert store.write([(Kind.OPEN_INTEREST, changed)]) == {Kind.OPEN_INTEREST: 2}
    assert list(store.rows(Kind.OPEN_INTEREST)) == sorted(changed, key=lambda r: r[0])


def test_a_failed_write_leaves_nothing_behind(store: Store) -> None:
    good = [(T0, "binance", "BTCUSDT", 1.0, None, None)]
    bad = [(T0 + FIVE, "binance", "BTCUSDT", None, None, None)]  # oi_base is required
    with pytest.raises(StoreError):
        store.write([(Kind.OPEN_INTEREST, good), (Kind.OPEN_INTEREST, bad)])
    assert list(store.rows(Kind.OPEN_INTEREST)) == []


def test_positioning_merges_sources(store: Store) -> None:
    taker_only = Positioning("binance", "BTCUSDT", T0, taker_buy_sell_ratio=1.25)
    ratios = Positioning("binance", "BTCUSDT", T0, 0.9, 1.1, 0.8)
    assert store.write_records([taker_only]) == {Kind.POSITIONING: 1}
    assert store.write_records([ratios]) == {Kind.POSITIONING: 1}
    assert store.write_records([taker_only, ratios]) == {Kind.POSITIONING: 0}
    assert list(store.rows(Kind.POSITIONING)) == [(T0, "binance", "BTCUSDT", 0.9, 1.1, 0.8, 1.25)]


def test_every_record_kind_round_trips_in_layout_order(store: Store) -> None:
    recs = [
        OISample("okx", "BTCUSDT", T0, 21254.19, 2125419.0, 2.36e9),
        Candle("okx", "BTCUSDT", FIVE, T0, 1.0, 2.0, 0.5, 1.5, 10.0, 15.0, 4.0, 7),
        FundingSample("okx", "BTCUSDT", T0, -0.0001, 4.0),
        Liquidation("bybit", "BTCUSDT", T0, Side.LONG, 0.5, 60000.0, 30000.0),
        LiquidationBar("binance", "BTCUSDT", HOUR, T0, 1.0, 2.0, None, None),
        Positioning("binance", "BTCUSDT", T0, 1.2, None, 0.8, 1.1),
        PremiumBar("bybit", "BTCUSDT", FIVE, T0, -1e-4, 2e-4, -3e-4, 1e-4),
    ]
    assert store.write_records(recs) == dict.fromkeys(Kind, 1)
    assert store.write_records(recs) == dict.fromkeys(Kind, 0)
    assert list(store.rows(Kind.CANDLES)) == [
        (T0, "okx", "BTCUSDT", "5m", 1.0, 2.0, 0.5, 1.5, 10.0, 15.0, 4.0, 7)
    ]
    assert list(store.rows(Kind.LIQUIDATION_ORDERS)) == [
        (T0, "bybit", "BTCUSDT", "LONG", 0.5, 60000.0, 30000.0)
    ]
    assert list(store.rows(Kind.LIQUIDATIONS)) == [
        (T0, "binance", "BTCUSDT", "1h", 1.0, 2.0, None, None)
    ]
    assert list(store.rows(Kind.FUNDING, venue="okx")) == [(T0, "okx", "BTCUSDT", -0.0001, 4.0)]
    assert list(store.rows(Kind.FUNDING, venue="bybit")) == []
    assert store.candle_at("okx", "BTCUSDT", "5m", T0) == recs[1]


def test_grouped_writes_count_per_group_and_keep_the_longest_span(store: Store) -> None:
    oi = [(T0, "okx", "ETHUSDT", 1.0, None, None)]
    counts = store.write_grouped(
        [("a", Kind.OPEN_INTEREST, oi), ("b", Kind.OPEN_INTEREST, oi)],
        coverage=[("okx", "ETHUSDT", T0, T0 + HOUR)],
    )
    assert counts == {"a": 1, "b": 0}
    store.write_records([], coverage=[("okx", "ETHUSDT", T0, T0 + FIVE)])  # an older end
    series = store.read_series("okx", "ETHUSDT", "5m")
    assert series.liq_spans.tolist() == [[T0, T0 + HOUR]] and series.liq_tracked


def test_the_version_grows_with_changed_market_data_only(backend: Opener) -> None:
    with backend() as writer, backend() as reader:
        v0 = reader.version()
        writer.write_records(bars("binance", 3))
        v1 = reader.version()
        assert v1 > v0
        writer.write_records(bars("binance", 3))  # nothing new
        writer.put_watch_state(WatchState({"state": "running"}, {}))
        writer.append_alert({"symbol": "BTCUSDT"})
        assert reader.version() == v1
        writer.write_records(bars("binance", 4))
        assert reader.version() > v1


def test_readonly_handles_read_and_never_write(backend: Opener) -> None:
    with pytest.raises(NoDataError, match="no store at"):
        backend(readonly=True)
    with backend() as s:
        s.write_records(bars("bybit", 2))
    with backend(readonly=True) as r:
        assert r.candle_span("bybit", "BTCUSDT", "5m") == (T0, T0 + FIVE)
        with pytest.raises(StoreError):
            r.write_records(bars("bybit", 3))


def test_a_closed_store_refuses_writes(backend: Opener) -> None:
    s = backend()
    s.close()
    with pytest.raises(StoreError):
        s.write_records(bars("okx", 1))


def test_one_store_serves_several_threads(store: Store) -> None:
    """Callers share one handle across threads (workers, the event loop's facade)."""
    errors: list[BaseException] = []

    def write(venue: str) -> None:
        try:
            store.write_records(bars(venue, 50))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(v,)) for v in ("binance", "bybit", "okx")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    reads = AsyncStore(store, threads=2)

    async def read_all() -> list[int]:
        spans = await asyncio.gather(
            *(reads.run(lambda s, v=v: s.read_series(v, "BTCUSDT", "5m")) for v in ("okx", "bybit"))
        )
        return [len(x.candle_ts) for x in spans]

    assert asyncio.run(read_all()) == [50, 50]
    reads.close()


def test_batches_take_what_arrived_while_the_last_ran(store: Store) -> None:
    """Items asked one by one go to the worker together while it is busy, each waiter gets
    its own result, and a failing call fails only its own batch's waiters."""
    calls: list[list[int]] = []
    gate = threading.Event()

    def fn(s: Store, items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 1:
            gate.wait(5)  # the first call holds the worker while the rest arrive
        if -1 in items:
            raise ValueError("bad item")
        return [i * 10 for i in items]

    async def main() -> tuple[list[int | BaseException], list[list[int]]]:
        worker = AsyncStore(store)
        batches = Batches(worker.run, fn)
        first = asyncio.create_task(batches(1))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(batches(i)) for i in (2, 3, 4)]
        await asyncio.sleep(0.05)
        gate.set()
        got = await asyncio.gather(first, *rest)
        failed = await asyncio.gather(batches(-1), return_exceptions=True)
        worker.close()
        return [*got, *failed], calls

    got, seen = asyncio.run(main())
    assert got[:4] == [10, 20, 30, 40]
    assert isinstance(got[4], ValueError)
    assert seen == [[1], [2, 3, 4], [-1]]


def test_batches_seal_each_batch_once_on_the_loop(store: Store) -> None:
    """The daemon's alert log: what only a batch's newest item needs (the watch state) is
    built once per batch, on the loop's thread, as the batch leaves."""
    gate, sealed = threading.Event(), []

    def seal(items: list[int]) -> list[int]:
        sealed.append((list(items), threading.get_ident()))
        return [*items[:-1], items[-1] + 100]

    def fn(s: Store, items: list[int]) -> list[int]:
        gate.wait(5)
        return items

    async def main() -> tuple[list[int], int]:
        worker = AsyncStore(store)
        batches = Batches(worker.run, fn, seal)
        first = asyncio.create_task(batches(1))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(batches(i)) for i in (2, 3, 4)]
        await asyncio.sleep(0.05)
        gate.set()
        got = await asyncio.gather(first, *rest)
        worker.close()
        return got, threading.get_ident()

    got, loop_thread = asyncio.run(main())
    assert got == [101, 2, 3, 104]
    assert sealed == [([1], loop_thread), ([2, 3, 4], loop_thread)]


# -- reading -------------------------------------------------------------------------------


def test_listing_what_is_stored(store: Store) -> None:
    store.write_records(
        [
            *bars("okx", 3),
            *bars("binance", 2),
            Candle("binance", "BTCUSDT", HOUR, T0, 1, 2, 0.5, 1.5, 10.0),
            OISample("bitget", "SOLUSDT", T0 + MIN, 5.0),
            OISample("bitget", "SOLUSDT", T0 + 2 * MIN, 6.0),
        ]
    )
    assert store.symbols() == [
        ("binance", "BTCUSDT"),
        ("bitget", "SOLUSDT"),
        ("okx", "BTCUSDT"),
    ]
    assert sorted(store.intervals("binance", "BTCUSDT")) == ["1h", "5m"]
    assert store.venues_for("BTCUSDT") == ["binance", "okx"]
    assert sorted(store.candle_intervals()) == [
        ("binance", "BTCUSDT", "1h", 1, T0, T0),
        ("binance", "BTCUSDT", "5m", 2, T0, T0 + FIVE),
        ("okx", "BTCUSDT", "5m", 3, T0, T0 + 2 * FIVE),
    ]
    assert [r for r in store.summary() if r[0] != "candles"] == [
        ("open_interest", "bitget", "SOLUSDT", 2, T0 + MIN, T0 + 2 * MIN)
    ]
    assert [r[:4] for r in store.summary() if r[0] == "candles"] == [
        ("candles", "binance", "BTCUSDT", 3),
        ("candles", "okx", "BTCUSDT", 3),
    ]
    assert store.latest_candles("5m") == [
        ("binance", "BTCUSDT", T0 + FIVE),
        ("okx", "BTCUSDT", T0 + 2 * FIVE),
    ]
    assert store.latest_candles("1h") == [("binance", "BTCUSDT", T0)]


def test_spans_newest_and_timestamps_within_a_range(store: Store) -> None:
    store.write_records([*bars("okx", 6), *(OISample("okx", "BTCUSDT", T0 + k * MIN, 1.0)
                                          for k in (1, 2, 7, 9))])  # fmt: skip
    assert store.candle_span("okx", "BTCUSDT", "5m") == (T0, T0 + 5 * FIVE)
    assert store.candle_span("okx", "BTCUSDT", "5m", T0 + 1, T0 + 3 * FIVE) == (
        T0 + FIVE,
        T0 + 3 * FIVE,
    )
    assert store.candle_span("okx", "BTCUSDT", "1h") is None
    assert store.candle_at("okx", "BTCUSDT", "5m", T0 + 1) is None
    assert store.last_ts(Kind.OPEN_INTEREST, "okx", "BTCUSDT", None, None) == T0 + 9 * MIN
    assert store.last_ts(Kind.OPEN_INTEREST, "okx", "BTCUSDT", None, T0 + 8 * MIN) == T0 + 7 * MIN
    assert store.last_ts(Kind.FUNDING, "okx", "BTCUSDT", None, None) is None
    ts = store.timestamps(Kind.OPEN_INTEREST, "okx", "BTCUSDT", T0 + 2 * MIN, T0 + 9 * MIN)
    assert ts.dtype == np.int64 and ts.tolist() == [T0 + 2 * MIN, T0 + 7 * MIN, T0 + 9 * MIN]


def test_read_series_follows_the_documented_rules(store: Store) -> None:
    """docs/store.md (Reading), rule by rule, on the bars opening T0+1h .. T0+1h+10m."""
    lo, hi = T0 + HOUR, T0 + HOUR + 2 * FIVE
    store.write_records(
        [
            *bars("binance", 20),
            *(OISample("binance", "BTCUSDT", T0 + k * FIVE, 100.0 + k) for k in range(20)),
            FundingSample("binance", "BTCUSDT", T0, -0.0002, 8.0),  # in force at the start
            FundingSample("binance", "BTCUSDT", T0 + 30 * MIN, -0.0001, 4.0),
            FundingSample("binance", "BTCUSDT", hi + MIN, 0.0003, 8.0),  # after the last bar
            LiquidationBar("binance", "BTCUSDT", FIVE, lo, 2.0, 1.0),  # USD = base x close
            LiquidationBar("binance", "BTCUSDT", MIN, lo + FIVE + MIN, 0.0, 0.5, 0.0, 55.0),
            LiquidationBar("binance", "BTCUSDT", HOUR, lo, 9.0, 9.0),  # coarser: left out
            Liquidation("binance", "BTCUSDT", hi + FIVE - 1, Side.SHORT, 1, 10, 10.0),
            Liquidation("binance", "BTCUSDT", hi + FIVE, Side.LONG, 1, 10, 7.0),  # next bar
            Positioning("binance", "BTCUSDT", hi + FIVE, 0.9, 1.1, 0.8, 1.2),
            Positioning("binance", "BTCUSDT", hi + 2 * FIVE, 0.5, 0.5, 0.5, 0.5),
            *(
                PremiumBar("binance", "BTCUSDT", MIN, lo + k * MIN, 0, 0, 0, k * 1e-5)
                for k in range(15)
            ),
            *(
                PremiumBar("binance", "BTCUSDT", FIVE, lo + k * FIVE, 0, 0, 0, 1e-3)
                for k in range(2)
            ),
        ],
        coverage=[("binance", "BTCUSDT", lo - HOUR, lo + FIVE), ("binance", "BTCUSDT", 0, 1)],
    )
    s = store.read_series("binance", "BTCUSDT", "5m", lo, hi)
    assert s.candle_ts.tolist() == [lo, lo + FIVE, hi] and s.interval_ms == FIVE
    assert s.close.tolist() == [112.0, 113.0, 114.0]  # close + i of bars("binance")
    assert s.oi_ts.tolist() == [lo, lo + FIVE, hi, hi + FIVE]  # to the last bar's close
    assert s.funding_ts.tolist() == [T0 + 30 * MIN] and s.funding_interval_h.tolist() == [4.0]
    first = store.read_series("binance", "BTCUSDT", "5m", T0 + MIN, hi)
    assert first.funding_ts.tolist() == [T0, T0 + 30 * MIN]  # the rate in force at the start
    assert s.liq_bar_ts.tolist() == [lo, lo + FIVE + MIN]
    assert s.liq_ts.tolist() == [lo, lo + FIVE + MIN, hi + FIVE - 1]
    assert s.liq_long_usd.tolist() == [2.0 * 112.0, 0.0, 0.0]
    assert s.liq_short_usd.tolist() == [1.0 * 112.0, 55.0, 10.0]
    assert s.liq_coverage and s.liq_tracked
    assert s.liq_spans.tolist() == [[lo - HOUR, lo + FIVE]]  # overlapping spans only
    assert s.pos_ts.tolist() == [hi + FIVE]
    assert s.pos_top_account.tolist() == [0.9] and s.pos_taker_ratio.tolist() == [1.2]
    assert s.premium_ts.tolist() == [lo, lo + FIVE]  # one size, the bar's own first
    assert s.premium_close.tolist() == [1e-3, 1e-3]
    hourly = store.read_series("binance", "BTCUSDT", "1h")  # no 1h candles; 5m premium
    assert hourly.candle_ts.size == 0 and hourly.premium_ts.tolist() == [lo, lo + FIVE]
    assert store.read_series("binance", "BTCUSDT", "15m", lo, lo).premium_ts.tolist() == [
        lo + k * FIVE for k in range(2)
    ]


def test_read_series_of_nothing_is_empty_and_unknown(store: Store) -> None:
    s = store.read_series("okx", "DOGEUSDT", "5m", T0, T0 + HOUR)
    assert s.candle_ts.size == s.oi_ts.size == s.liq_ts.size == s.pos_ts.size == 0
    assert not s.liq_coverage and not s.liq_tracked and s.liq_spans.shape == (0, 2)
    assert s.taker_buy.size == 0 and s.premium_close.size == 0


# -- retention -----------------------------------------------------------------------------


def test_prune_keeps_what_the_engine_reads_per_bar(store: Store) -> None:
    """Minute OI snapshots and single orders older than the cutoff become per-bar values;
    the engine's grid (signals.windows) reads the same at 5m and 15m, before and after."""
    rng = random.Random(5)
    recs: list[object] = [*bars("binance", 288), *bars("bybit", 288)]
    for venue in ("binance", "bybit"):
        recs += [OISample(venue, "BTCUSDT", T0 + k * MIN + rng.randrange(1, MIN), 1e4 + k)
                 for k in range(24 * 60)]  # fmt: skip
        recs += [Liquidation(venue, "BTCUSDT", T0 + rng.randrange(24 * HOUR),
                             rng.choice((Side.LONG, Side.SHORT)), rng.random(), 100.0,
                             rng.random() * 1e3) for _ in range(400)]  # fmt: skip
    recs.append(LiquidationBar("bybit", "BTCUSDT", FIVE, T0 + FIVE, 1.0, 2.0))  # USD: x close
    store.write_records(recs, coverage=[("bybit", "BTCUSDT", T0, T0 + 6 * HOUR)])  # type: ignore[arg-type]

    def grids() -> list[Grid]:
        return [build_grid(store.read_series(v, "BTCUSDT", i, lo, hi))
                for v in ("binance", "bybit") for i in ("5m", "15m")
                for lo, hi in ((None, None), (T0 + HOUR, T0 + 20 * HOUR))]  # fmt: skip

    before, version = grids(), store.version()
    cutoff = T0 + 12 * HOUR + 7  # the last whole 5m bar before it is pruned
    removed = store.prune(cutoff, FIVE)
    assert removed[Kind.OPEN_INTEREST] == 2 * (144 * 5 - 144)  # 4 of the 5 per bar
    assert removed[Kind.LIQUIDATION_ORDERS] > 150 and store.version() > version
    for old, new in zip(before, grids(), strict=True):
        for name in ("ts", "close", "oi", "liq_long_usd", "liq_short_usd", "funding_rate"):
            np.testing.assert_allclose(getattr(new, name), getattr(old, name), rtol=1e-12,
                                       err_msg=name)  # fmt: skip
    oi_ts = store.timestamps(Kind.OPEN_INTEREST, "okx", "BTCUSDT", T0, T0 + 24 * HOUR)
    assert oi_ts.size == 0  # nothing invented
    kept = store.timestamps(Kind.OPEN_INTEREST, "bybit", "BTCUSDT", T0, T0 + 24 * HOUR)
    assert kept.size == 144 + 12 * 60 and all(t > T0 + 12 * HOUR or t % FIVE
                                             for t in kept[:144])  # fmt: skip
    fed = list(store.rows(Kind.LIQUIDATION_ORDERS, venue="bybit"))  # a live feed's series
    assert fed and min(r[0] for r in fed) >= T0 + 12 * HOUR
    assert len(list(store.rows(Kind.LIQUIDATION_ORDERS, venue="binance"))) == 400  # imported
    assert store.prune(cutoff, FIVE) == {Kind.OPEN_INTEREST: 0, Kind.LIQUIDATION_ORDERS: 0}
    assert store.version() == version + 1


# -- what a running daemon publishes -------------------------------------------------------


def test_the_watch_state_is_replaced_whole(backend: Opener) -> None:
    with backend() as daemon, backend() as dashboard:
        assert dashboard.watch_state() is None
        first = WatchState(
            {"state": "running", "venues": [{"venue": "okx"}]},
            {"windows_ms": [900_000], "adaptive": False},
            (Episode("ADAUSDT", "covering", T0), Episode("BTCUSDT", "squeeze", T0 + FIVE)),
        )
        daemon.put_watch_state(first)
        assert dashboard.watch_state() == first
        second = WatchState({"state": "stopped"}, {"windows_ms": [900_000]}, ())
        daemon.put_watch_state(second)
        assert dashboard.watch_state() == second


def test_alerts_are_logged_in_order_and_read_after_a_seq(backend: Opener) -> None:
    with backend() as daemon, backend() as dashboard:
        assert dashboard.alerts() == []
        seqs = [daemon.append_alert({"symbol": s, "n": i}) for i, s in enumerate("ABCD")]
        assert seqs == sorted(seqs) and len(set(seqs)) == 4
        assert [a.alert["symbol"] for a in dashboard.alerts()] == list("ABCD")
        assert dashboard.alerts(after=seqs[1]) == [
            LoggedAlert(seqs[2], {"symbol": "C", "n": 2}),
            LoggedAlert(seqs[3], {"symbol": "D", "n": 3}),
        ]
        assert [a.seq for a in dashboard.alerts(limit=2)] == seqs[2:]  # the newest, in order
        assert dashboard.alerts(after=seqs[3]) == []


def test_a_learned_listing_is_kept_and_only_an_earlier_one_replaces_it(backend: Opener) -> None:
    with backend() as backfill, backend() as reader:
        assert reader.listings("bitget") == {}
        backfill.learn_listing("bitget", "ADAUSDT", T0 + FIVE)
        backfill.learn_listing("bitget", "ADAUSDT", T0 + 2 * FIVE)  # later: not a listing
        backfill.learn_listing("gate", "ADAUSDT", T0 + 3 * FIVE)
        backfill.learn_listing("bitget", "BTCUSDT", T0)
        assert reader.listings("bitget") == {"ADAUSDT": T0 + FIVE, "BTCUSDT": T0}
        backfill.learn_listing("bitget", "ADAUSDT", T0)
        assert reader.listings("bitget")["ADAUSDT"] == T0
        assert reader.listings("gate") == {"ADAUSDT": T0 + 3 * FIVE}


# -- URLs ----------------------------------------------------------------------------------


def test_an_unknown_scheme_is_a_user_error_that_never_echoes_the_url() -> None:
    with pytest.raises(UserError, match="no store backend for mysql://") as exc:
        open_store("mysql://me:s3cret@db.example/oiradar")
    assert "s3cret" not in str(exc.value)


# -- both backends read alike --------------------------------------------------------------


def _random_market(rng: random.Random) -> tuple[list[object], list[tuple[str, str, int, int]]]:
    """A day of messy 5m data for two venues: holes, every record kind, odd timestamps."""
    recs: list[object] = []
    for venue in ("binance", "bybit"):
        for i in range(288):
            t = T0 + i * FIVE
            if rng.random() < 0.9:
                c = 100 + rng.gauss(0, 2)
                taker = None if rng.random() < 0.3 else rng.random() * 5
                recs.append(
                    Candle(venue, "BTCUSDT", FIVE, t, c, c + 1, c - 1, c, 10.0, None, taker)
                )
            if rng.random() < 0.8:
                recs.append(OISample(venue, "BTCUSDT", t + rng.choice((FIVE, MIN, 1)), 1e4 + i))
            if rng.random() < 0.3:
                side = rng.choice((Side.LONG, Side.SHORT))
                recs.append(Liquidation(venue, "BTCUSDT", t + rng.randrange(FIVE), side, 1.0,
                                        100.0, rng.random() * 1e4))  # fmt: skip
            if rng.random() < 0.2:
                usd = None if rng.random() < 0.5 else rng.random() * 1e3
                recs.append(LiquidationBar(venue, "BTCUSDT", rng.choice((MIN, FIVE, HOUR)),
                                           t, rng.random(), rng.random(), usd, usd))  # fmt: skip
            if i % 12 == 0:
                recs.append(FundingSample(venue, "BTCUSDT", t, rng.gauss(0, 1e-4), 8.0))
            if rng.random() < 0.5:
                recs.append(Positioning(venue, "BTCUSDT", t + FIVE, rng.random(), None,
                                        rng.random(), rng.random()))  # fmt: skip
            if rng.random() < 0.4:
                recs.append(PremiumBar(venue, "BTCUSDT", rng.choice((MIN, FIVE)), t, 0, 0, 0,
                                       rng.gauss(0, 1e-4)))  # fmt: skip
    spans = [("bybit", "BTCUSDT", T0 + k * HOUR, T0 + k * HOUR + rng.randrange(HOUR))
             for k in range(0, 24, 3)]  # fmt: skip
    return recs, spans


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_both_backends_read_the_same_series(tmp_path: Path, seed: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(BACKENDS, "memory", open_memory)
        _assert_same_series(
            [open_store(tmp_path / "a.sqlite"), open_store(f"memory://{tmp_path.name}")], seed
        )


def test_postgresql_reads_what_sqlite_reads(tmp_path: Path, pg_url: str) -> None:
    _assert_same_series([open_store(tmp_path / "a.sqlite"), open_store(pg_url)], 4)


def _assert_same_series(stores: list[Store], seed: int) -> None:
    recs, spans = _random_market(random.Random(seed))
    for s in stores:
        s.write_records(recs, coverage=spans)  # type: ignore[arg-type]
    ranges = [(None, None), (T0 + HOUR, T0 + 5 * HOUR), (T0 + 7, T0 + 7)]
    for venue in ("binance", "bybit"):
        for interval in ("5m", "15m", "1h"):
            for lo, hi in ranges:
                a, b = (s.read_series(venue, "BTCUSDT", interval, lo, hi) for s in stores)
                for name in a.__dataclass_fields__:
                    x, y = getattr(a, name), getattr(b, name)
                    if isinstance(x, np.ndarray):
                        np.testing.assert_array_equal(x, y, err_msg=name)
                    else:
                        assert x == y, name
    assert [list(s.rows(k)) for k in Kind for s in stores[:1]] == [
        list(s.rows(k)) for k in Kind for s in stores[1:]
    ]
    for s in stores:
        s.close()
