"""The daemon's pure parts: episode decisions, the OI poll cadence, batched writes."""

from __future__ import annotations

import asyncio
import math
import random
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from oiradar.errors import StoreError
from oiradar.records import Candle, FundingSample, LiquidationFeed, OISample
from oiradar.services.alerts import Alert
from oiradar.services.watch.bars import BarBook, MinuteOI
from oiradar.services.watch.close import missing_opens
from oiradar.services.watch.decide import STALE_MS, Burst, Decider, Phase
from oiradar.services.watch.ingest import Ingest
from oiradar.services.watch.venue_status import MIN_POLL_S, poll_interval_s
from oiradar.signals.live import Bar, bar_at, grid_bars
from oiradar.signals.params import EngineParams
from oiradar.signals.reading import MarketReading
from oiradar.signals.regimes import Regime
from oiradar.signals.windows import build_grid
from oiradar.store import open_store
from oiradar.store.sqlite import SqliteStore
from oiradar.units import MINUTE_MS
from oiradar.venues.limiter import SAFETY

BAR = 5 * MINUTE_MS
T0 = 1_780_000_200_000 // BAR * BAR
FEEDS = {
    "binance": LiquidationFeed.SAMPLED,
    "bybit": LiquidationFeed.COMPLETE,
    "bitget": LiquidationFeed.NONE,
}


def reading(
    regime: Regime, i: int, *, oi_pct: float = -2.0, funding: float = -2e-4
) -> MarketReading:
    return MarketReading(
        ts_ms=T0 + i * BAR,
        bar_ms=BAR,
        regime=regime,
        horizons_ms=(BAR,),
        reading=0,
        fired_ms=(),
        oi_pct=oi_pct,
        price_pct=1.5,
        oi_threshold=1.5,
        price_threshold=1.0,
        strong=False,
        squeeze=math.nan,
        evidence=(),
        gap=False,
        short_liq_usd=1000.0,
        long_liq_usd=100.0,
        oi_then=1000.0,
        oi_now=1000.0 * (1 + oi_pct / 100),
        price_then=10.0,
        price_now=10.15,
        volume_ratio=300.0 / 50.0,
        funding_rate=funding,
        funding_interval_h=8.0,
        more_to_come=None,
        changes=((oi_pct, 1.5),),
        bands=((1.5, 1.0),),
        oi_then_h=(1000.0,),
        oi_falling=oi_pct < -1.5,
    )


@pytest.fixture
def sent() -> list[Alert]:
    return []


@pytest.fixture
def decider(sent: list[Alert]) -> Decider:
    """One 5m horizon: an episode can end at the first quiet bar (the merge gap is a bar)."""
    return Decider(EngineParams(windows_ms=(BAR,)), BAR, FEEDS, sent.append)


def test_covering_that_resumes_within_the_longest_horizon_is_one_episode(
    sent: list[Alert],
) -> None:
    """As `engine.events` joins runs closer than the longest horizon (1h by default), watch
    neither ends the episode nor announces it again when covering pauses for 30 minutes."""
    d = Decider(EngineParams(), BAR, FEEDS, sent.append)
    d.on_bar("binance", "BTCUSDT", reading(Regime.SHORT_COVERING, 0))
    for i in range(1, 7):  # 30 min of nothing: OI flat, funding normal
        d.on_bar("binance", "BTCUSDT", reading(Regime.NEUTRAL, i, oi_pct=0.0, funding=0.0))
    d.on_bar("binance", "BTCUSDT", reading(Regime.SHORT_COVERING, 7))
    assert [a.kind.value for a in sent] == ["new"]
    for i in range(8, 19):  # 55 min quiet after the last covering bar: still one episode
        d.on_bar("binance", "BTCUSDT", reading(Regime.NEUTRAL, i, oi_pct=0.0, funding=0.0))
    assert [a.kind.value for a in sent] == ["new"]
    d.on_bar("binance", "BTCUSDT", reading(Regime.NEUTRAL, 19, oi_pct=0.0, funding=0.0))
    assert [a.kind.value for a in sent] == ["new", "exhaustion"]  # an hour without covering


def test_an_episode_is_announced_once_escalated_once_and_ends_once(
    decider: Decider, sent: list[Alert]
) -> None:
    decider.on_bar("binance", "SOLUSDT", reading(Regime.NEUTRAL, 0))
    decider.on_bar("binance", "SOLUSDT", reading(Regime.SHORT_COVERING, 1))
    decider.on_bar("bybit", "SOLUSDT", reading(Regime.SHORT_COVERING, 1))  # same episode
    decider.on_bar("binance", "SOLUSDT", reading(Regime.SHORT_COVERING, 2))
    decider.on_bar("bybit", "SOLUSDT", reading(Regime.SHORT_SQUEEZE, 2))
    decider.on_bar("bybit", "SOLUSDT", reading(Regime.SHORT_SQUEEZE, 3))  # still squeezed
    # Covering stops, but OI still falls: not exhausted yet.
    decider.on_bar("binance", "SOLUSDT", reading(Regime.LONG_LIQUIDATION, 4))
    decider.on_bar("bybit", "SOLUSDT", reading(Regime.NEUTRAL, 4, oi_pct=-2.0))
    decider.on_bar("binance", "SOLUSDT", reading(Regime.NEUTRAL, 5, oi_pct=0.1, funding=1e-4))
    decider.on_bar("bybit", "SOLUSDT", reading(Regime.NEUTRAL, 5, oi_pct=0.2, funding=1e-4))
    kinds = [(a.kind.value, a.regime) for a in sent]
    assert kinds == [
        ("new", Regime.SHORT_COVERING),
        ("escalation", Regime.SHORT_SQUEEZE),
        ("exhaustion", Regime.SHORT_SQUEEZE),
    ]
    new, up, done = sent
    assert new.ts_ms == T0 + 2 * BAR  # the first covering bar's close
    assert new.drivers == ("binance",)
    assert set(up.drivers) == {"binance", "bybit"}
    assert new.more_to_come and not done.more_to_come
    assert dict(new.liq_feeds) == FEEDS
    assert decider.phase("SOLUSDT") is Phase.IDLE
    decider.on_bar("binance", "SOLUSDT", reading(Regime.SHORT_COVERING, 6))
    assert sent[-1].kind.value == "new"  # a new episode is news again


def test_negative_funding_keeps_the_episode_open(decider: Decider, sent: list[Alert]) -> None:
    decider.on_bar("binance", "ETHUSDT", reading(Regime.SHORT_COVERING, 0))
    decider.on_bar("binance", "ETHUSDT", reading(Regime.NEUTRAL, 1, oi_pct=0.0, funding=-5e-4))
    assert [a.kind.value for a in sent] == ["new"]
    assert decider.phase("ETHUSDT") is Phase.COVERING


def test_a_squeeze_from_the_first_bar_is_a_new_squeeze(decider: Decider, sent: list[Alert]) -> None:
    decider.on_bar("bybit", "BTCUSDT", reading(Regime.SHORT_SQUEEZE, 0))
    assert [(a.kind.value, a.regime) for a in sent] == [("new", Regime.SHORT_SQUEEZE)]
    assert decider.on_burst("BTCUSDT", Burst("bybit", T0 + BAR + 5, 9e5, 1e3)) is None


def test_a_burst_escalates_only_a_covering_episode(decider: Decider, sent: list[Alert]) -> None:
    assert decider.on_burst("XRPUSDT", Burst("binance", T0, 1e6, 0.0)) is None
    decider.on_bar("binance", "XRPUSDT", reading(Regime.SHORT_COVERING, 0))
    up = decider.on_burst("XRPUSDT", Burst("binance", T0 + BAR + 42_000, 5e5, 2e3))
    assert up is not None and up.kind.value == "escalation" and up.ts_ms == T0 + BAR + 42_000
    assert up.short_liq_usd == 5e5  # the running window replaces the venue's closed one
    assert decider.on_burst("XRPUSDT", Burst("binance", T0 + BAR + 43_000, 6e5, 0.0)) is None
    decider.on_bar("binance", "XRPUSDT", reading(Regime.SHORT_SQUEEZE, 1))
    assert [a.kind.value for a in sent] == ["new", "escalation"]


def test_a_stale_venue_does_not_count(decider: Decider, sent: list[Alert]) -> None:
    decider.on_bar("bybit", "ADAUSDT", reading(Regime.SHORT_COVERING, 0))
    decider.on_bar("binance", "ADAUSDT", reading(Regime.NEUTRAL, 5, oi_pct=0.0, funding=0.0))
    # bybit's covering bar is five bars old: binance alone says it is over.
    assert [a.kind.value for a in sent] == ["new", "exhaustion"]
    assert sent[-1].drivers == ("binance",)


def test_an_episode_that_fades_without_exhausting_ends_quietly(
    decider: Decider, sent: list[Alert]
) -> None:
    decider.on_bar("binance", "DOGEUSDT", reading(Regime.SHORT_COVERING, 0))
    late = STALE_MS // BAR + 2
    decider.on_bar("binance", "DOGEUSDT", reading(Regime.NEW_SHORTS, late, oi_pct=3.0))
    assert decider.phase("DOGEUSDT") is Phase.IDLE
    decider.on_bar("binance", "DOGEUSDT", reading(Regime.SHORT_COVERING, late + 1))
    assert [a.kind.value for a in sent] == ["new", "new"]


def test_poll_cadence_is_computed_from_the_budget() -> None:
    # Binance: 2400 weight/min; 500 symbols cost 10 + 500 per poll; klines reserve 500/bar.
    budgets = {"w": (2400.0, 60.0)}
    reserved = {"w": 500 / 300}
    spare = 2400 * SAFETY / 60 - 500 / 300
    assert poll_interval_s({"w": 510}, budgets, reserved) == pytest.approx(510 / (0.5 * spare))
    assert poll_interval_s({"w": 15}, budgets, reserved) == MIN_POLL_S  # never faster than 1 s
    assert poll_interval_s({"w": 15}, budgets, {"w": 1e9}) == math.inf


def test_ingest_batches_and_keeps_a_failed_batch(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.sqlite")
    ingest = Ingest(store)
    bars = [Candle("bybit", "BTCUSDT", BAR, T0 + i * BAR, 1, 2, 0.5, 1.5, 10) for i in range(3)]
    ingest.extend(bars)
    ingest.add(bars[0])  # a duplicate: stored once
    store.close()  # the next write fails
    assert ingest.flush() == 0 and ingest.pending == 4 and ingest.stats.failures == 1
    ingest.store = open_store(tmp_path / "s.sqlite")
    assert ingest.flush() == 4 and ingest.pending == 0
    assert ingest.store.candle_span("bybit", "BTCUSDT", "5m", T0, T0 + 3 * BAR) == (
        T0,
        T0 + 2 * BAR,
    )
    assert replace(bars[0]) == ingest.store.candle_at("bybit", "BTCUSDT", "5m", T0)


async def test_ingest_writes_off_the_event_loop_in_order_and_keeps_a_failed_batch(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path / "s.sqlite")
    ingest = Ingest(store)
    loop_thread = threading.get_ident()
    writers: list[int] = []
    write = SqliteStore.write_records

    def spy(self: SqliteStore, *args: object, **kwargs: object) -> None:
        writers.append(threading.get_ident())
        write(self, *args, **kwargs)  # type: ignore[arg-type]

    bar = Candle("bybit", "BTCUSDT", BAR, T0, 1, 2, 0.5, 1.5, 10)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SqliteStore, "write_records", spy)
        ingest.add(bar)
        first = asyncio.create_task(ingest.flush_async())
        await asyncio.sleep(0)  # the first batch is taken and on its way
        ingest.add(replace(bar, close=1.7))  # a newer value of the same bar
        assert list(await asyncio.gather(first, ingest.flush_async())) == [1, 1]
    assert writers and loop_thread not in writers
    assert store.candle_at("bybit", "BTCUSDT", "5m", T0) == replace(bar, close=1.7)  # in order
    store.close()  # the writer's next write fails
    ingest.add(replace(bar, close=1.8))
    assert await ingest.flush_async() == 0
    assert ingest.pending == 1 and ingest.stats.failures == 1
    await ingest.close()
    ingest.store = store = open_store(tmp_path / "s.sqlite")
    assert await ingest.flush_async() == 1 and ingest.pending == 0
    assert await ingest.write(lambda s: s.append_alert({"after": "the flush"})) == 1
    await ingest.close()
    assert store.candle_at("bybit", "BTCUSDT", "5m", T0) == replace(bar, close=1.8)


def test_a_venue_still_on_an_older_bar_cannot_reopen_the_episode(
    decider: Decider, sent: list[Alert]
) -> None:
    decider.on_bar("bybit", "BTCUSDT", reading(Regime.SHORT_COVERING, 0))
    decider.on_bar("bybit", "BTCUSDT", reading(Regime.NEUTRAL, 2, oi_pct=0.0, funding=0.0))
    assert [a.kind.value for a in sent] == ["new", "exhaustion"]
    decider.on_bar("binance", "BTCUSDT", reading(Regime.SHORT_COVERING, 1))  # late, older bar
    assert [a.kind.value for a in sent] == ["new", "exhaustion"]


def _candle(bar_open: int) -> Candle:
    return Candle("binance", "BTCUSDT", BAR, bar_open, 1.0, 2.0, 0.5, 1.5, 10.0, 15.0, 4.0)


def test_a_polled_venue_bar_is_whole_only_with_an_oi_reading_at_its_close() -> None:
    """Binance's OI is polled: a mid-bar poll is not the close OI its history holds, so a
    bar whose close sweep failed or came late must go the REST way (history), not step."""
    polled, streamed = BarBook(BAR, close_oi_only=True), BarBook(BAR)
    for book in (polled, streamed):
        book.add_candle(_candle(T0))
        book.add_oi("BTCUSDT", T0 + BAR - 40_000, 100.0)  # the last poll before the close
    assert streamed.series("binance", "BTCUSDT", T0, None, T0 - BAR) is not None
    assert polled.series("binance", "BTCUSDT", T0, None, T0 - BAR) is None
    polled.add_oi("BTCUSDT", T0 + BAR, 101.0)  # the close sweep's reading, stamped at the close
    series = polled.series("binance", "BTCUSDT", T0, None, T0 - BAR)
    assert series is not None and series.oi_base.tolist() == [101.0]


@pytest.mark.parametrize("liq", [None, [0.0, 0.0], [1234.5, 0.25]])
@pytest.mark.parametrize(
    "funding",
    [
        None,
        (-30 * MINUTE_MS, -1e-4, 8.0),  # settled half an hour before the bar opened
        (-30 * 60 * MINUTE_MS, 2e-4, 8.0),  # 30 h old: stale, unknown
        (-20 * 60 * MINUTE_MS, 2e-4, 4.0),  # 20 h old on a 4 h interval: still in force
        (BAR + 1, 5e-4, 8.0),  # after the close: not this bar's
    ],
)
@pytest.mark.parametrize("taker", [None, 4.0])
def test_a_streamed_bar_is_the_bar_build_grid_makes_of_the_same_rows(
    liq: list[float] | None, funding: tuple[int, float, float] | None, taker: float | None
) -> None:
    book = BarBook(BAR)
    book.add_candle(replace(_candle(T0), taker_buy_base=taker))
    book.add_oi("BTCUSDT", T0 + 123_000, 99.5)
    if funding is not None:
        at, rate, hours = funding
        book.add_funding(FundingSample("binance", "BTCUSDT", T0 + at, rate, hours))
    series = book.series("binance", "BTCUSDT", T0, liq, T0 - BAR)
    bar = book.bar("BTCUSDT", T0, liq, T0 - BAR)
    assert series is not None and bar is not None
    want = bar_at(build_grid(series), 0)
    assert [getattr(bar, f) for f in Bar.__slots__] == pytest.approx(
        [getattr(want, f) for f in Bar.__slots__], nan_ok=True, rel=0, abs=0
    )


def _last_per_bar(samples: list[OISample], interval_ms: int) -> dict[tuple[str, int], float]:
    """Each bar's OI as `build_grid` reads it: the last sample in (open, close]."""
    out: dict[tuple[str, int], tuple[int, float]] = {}
    for s in samples:
        key = (s.symbol, (s.ts_ms - 1) // interval_ms)
        if key not in out or s.ts_ms >= out[key][0]:
            out[key] = (s.ts_ms, s.oi_base)
    return {k: v for k, (_, v) in out.items()}


def test_streamed_oi_is_stored_a_sample_a_minute_with_every_bar_unchanged() -> None:
    """Ticker pushes carry OI many times a second; the store gets each minute's last sample
    (when the next minute begins, at a close, at the stop): every bar of every interval
    reads the same OI from those as from all of them, reordered messages included."""
    rng, thin = random.Random(5), MinuteOI()
    every: list[OISample] = []
    stored: list[OISample] = []
    t = T0
    while t < T0 + 23 * MINUTE_MS:
        t += rng.choice([1, 150, 700, 4_000, 20_000, 60_000 - (t - T0) % 60_000])
        for sym in ("AUSDT", "BUSDT"):
            sample = OISample("bybit", sym, t - rng.choice([0, 0, 0, 900]), rng.uniform(1, 2))
            every.append(sample)
            if (due := thin.add(sample)) is not None:
                stored.append(due)
        if t - T0 in (5 * MINUTE_MS, 10 * MINUTE_MS + 1):  # closes read the store
            close = t - (t - T0) % BAR
            stored += thin.take(close)
            assert all(s.ts_ms <= close for s in thin.take(close)) and not thin.take(close)
    stored += thin.take()
    for interval in (MINUTE_MS, BAR, 3 * BAR):
        assert _last_per_bar(stored, interval) == _last_per_bar(every, interval)
    keys = [(s.symbol, s.ts_ms) for s in stored]
    assert len(keys) == len(set(keys))  # none stored twice
    assert len(stored) < len(every) / 3


def test_the_close_sweep_asks_the_biggest_moves_first() -> None:
    book = BarBook(BAR, close_oi_only=True)
    for sym, close in (("AUSDT", 1.01), ("BUSDT", 0.95), ("CUSDT", 1.0)):
        book.add_candle(replace(_candle(T0), symbol=sym, open=1.0, close=close))
    # DUSDT's closing candle has not come yet: it could be any move, so it is asked early.
    order = book.by_move(["AUSDT", "BUSDT", "CUSDT", "DUSDT"], T0 + BAR)
    assert order == ["DUSDT", "BUSDT", "AUSDT", "CUSDT"]


async def test_an_alert_write_goes_ahead_of_flushes_waiting_for_their_turn(
    tmp_path: Path,
) -> None:
    """A bar close queues several batches; the alert log must wait only for the one being
    written, or each alert is late by all of them."""
    store = open_store(tmp_path / "s.sqlite")
    ingest = Ingest(store)
    order: list[str] = []
    held = threading.Event()
    write = SqliteStore.write_records

    def slow(self: SqliteStore, records: list[object], **kwargs: object) -> None:
        held.wait(5)
        order.append(f"flush {len(records)}")
        write(self, records, **kwargs)  # type: ignore[arg-type]

    bar = Candle("bybit", "BTCUSDT", BAR, T0, 1, 2, 0.5, 1.5, 10)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SqliteStore, "write_records", slow)
        ingest.add(bar)
        first = asyncio.create_task(ingest.flush_async())  # in flight, held
        await asyncio.sleep(0.05)
        ingest.extend([bar, bar])
        second = asyncio.create_task(ingest.flush_async())  # waits for its turn
        await asyncio.sleep(0.05)
        alert = asyncio.create_task(ingest.write(lambda s: order.append("alert")))
        await asyncio.sleep(0.05)
        held.set()
        await asyncio.gather(first, second, alert)
    await ingest.close()
    store.close()
    assert order == ["flush 1", "alert", "flush 2"]


async def test_a_flush_goes_in_chunks_an_alert_between_them_and_a_failure_keeps_the_rest(
    tmp_path: Path,
) -> None:
    """A bar close's batch is written a chunk a transaction: an alert's write waits for one
    chunk, not the whole batch; a failed chunk and those after it stay queued, in order."""
    store = open_store(tmp_path / "s.sqlite")
    ingest = Ingest(store, chunk_rows=2)
    order: list[str] = []
    held, fail = threading.Event(), threading.Event()
    write = SqliteStore.write_records

    def slow(self: SqliteStore, records: list[Candle], **kwargs: object) -> None:
        held.wait(5)
        if fail.is_set():
            fail.clear()
            order.append("failed")
            raise StoreError("disk full")
        order.append(f"rows {[c.close for c in records]}")
        write(self, records, **kwargs)  # type: ignore[arg-type]

    bars = [Candle("bybit", "BTCUSDT", BAR, T0 + i * BAR, 1, 2, 0.5, i, 10) for i in range(5)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SqliteStore, "write_records", slow)
        ingest.extend(bars)
        flush = asyncio.create_task(ingest.flush_async())
        await asyncio.sleep(0.05)  # the first chunk is held on the writer thread
        alert = asyncio.create_task(ingest.write(lambda s: order.append("alert")))
        await asyncio.sleep(0.05)
        held.set()
        assert await flush == 5 and await alert is None
        assert order == ["rows [0, 1]", "alert", "rows [2, 3]", "rows [4]"]
        order.clear()
        ingest.extend([replace(b, close=10 + b.close) for b in bars])
        fail.set()
        held.clear()
        flush = asyncio.create_task(ingest.flush_async())
        await asyncio.sleep(0.05)
        held.set()
        assert await flush == 0 and order == ["failed"]
        assert [c.close for c in ingest._records] == [10, 11, 12, 13, 14]  # all, in order
        assert await ingest.flush_async() == 5
    await ingest.close()
    assert store.candle_at("bybit", "BTCUSDT", "5m", T0 + 4 * BAR) == replace(bars[4], close=14)
    store.close()


def test_bars_no_candle_came_for_are_the_missing_ones(tmp_path: Path) -> None:
    """A close steps a symbol from the store once REST filled what it could; a bar the venue
    never served (no close message, no REST row) is stepped past as unknown and counted
    (`missing` in the status, `event=bar_missing`): these are the bars it names."""
    store = open_store(tmp_path / "s.sqlite")
    store.write_records([_candle(T0 + k * BAR) for k in (1, 2, 4, 5)])  # 0 and 3: no candle
    grid = build_grid(store.read_series("binance", "BTCUSDT", "5m", T0, T0 + 5 * BAR))
    bars = [b for b in grid_bars(grid) if b.ts_ms >= T0]
    assert [b.ts_ms for b in bars] == [T0 + k * BAR for k in (1, 2, 3, 4, 5)]
    assert missing_opens(bars, T0, BAR) == [T0, T0 + 3 * BAR]
    assert missing_opens(bars, T0 + BAR, BAR) == [T0 + 3 * BAR]
    assert missing_opens(bars[:2], T0 + BAR, BAR) == []
    assert missing_opens([], T0, BAR) == []
    store.close()
