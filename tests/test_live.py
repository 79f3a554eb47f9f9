"""The incremental engine (`signals.live`) equals the batch timeline, bar for bar."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oiradar.signals.engine import Timeline, grid_timeline
from oiradar.signals.live import Ring, grid_bars, new_state, seed, step
from oiradar.signals.live_many import row_medians, step_many
from oiradar.signals.params import EngineParams, Evidence
from oiradar.signals.reading import MarketReading, reading_at
from oiradar.signals.regimes import Regime
from oiradar.signals.rules import EVIDENCE_ORDER
from oiradar.signals.windows import Grid
from oiradar.units import HOUR_MS, MINUTE_MS

BAR = 5 * MINUTE_MS
T0 = 1_717_200_000_000


def random_grid(rng: np.random.Generator, n: int, holes: float, liq_unknown: float) -> Grid:
    """A 5-minute grid with trends and shocks strong enough to cross every threshold."""
    shocks = rng.choice([0.0, 0.0, 0.0, 1.0], n) * rng.normal(0, 0.02, n)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, n) + shocks))
    oi = 5_000 * np.exp(np.cumsum(rng.normal(0, 0.005, n) - shocks * rng.uniform(0, 2, n)))
    volume = rng.lognormal(3, 1, n)
    short = np.where(rng.uniform(size=n) < 0.3, rng.lognormal(8, 2, n), 0.0)
    long_ = np.where(rng.uniform(size=n) < 0.3, rng.lognormal(8, 2, n), 0.0)
    for arr in (close, oi, volume):
        arr[rng.uniform(size=n) < holes] = np.nan
    unknown = rng.uniform(size=n) < liq_unknown
    short[unknown] = np.nan
    long_[unknown] = np.nan
    funding = rng.normal(0, 1e-4, n)
    taker = volume * rng.uniform(0.2, 0.9, n)
    taker[rng.uniform(size=n) < holes] = np.nan
    premium = rng.normal(0, 3e-4, n)
    ratio = rng.uniform(0.5, 1.5, n)
    ratio[rng.uniform(size=n) < liq_unknown] = np.nan
    return Grid(
        BAR,
        T0 + BAR * np.arange(n, dtype=np.int64),
        close,
        volume,
        oi,
        long_,
        short,
        funding,
        np.full(n, 8.0),
        taker,
        premium,
        ratio,
        None,
    )


def same(a: object, b: object) -> bool:
    """Equal, NaN equal to NaN, floats to 1e-9, tuples element by element."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return (np.isnan(a) and np.isnan(b)) or bool(np.isclose(a, b, rtol=1e-9, atol=1e-12))
    return a == b


def assert_equal(tl: Timeline, i: int, got: MarketReading, params: EngineParams) -> None:
    """The live reading of bar `i` is the batch one, field for field (every horizon's
    changes and bands, the volume ratio, funding, more to come...)."""
    want = reading_at(tl, i, params)
    for f in fields(MarketReading):
        assert same(getattr(got, f.name), getattr(want, f.name)), (
            f"bar {i} {f.name}: live {getattr(got, f.name)!r}, batch {getattr(want, f.name)!r}"
        )
    assert got.regime == Regime(int(tl.regime[i]))  # and the reading is the timeline's
    assert same(got.oi_pct, float(tl.oi_pct[i])) and same(got.squeeze, float(tl.squeeze[i]))
    bits = int(tl.evidence[i])
    assert got.evidence == tuple(e for k, e in enumerate(EVIDENCE_ORDER) if bits >> k & 1)


PARAMS = {
    "fixed": EngineParams(min_history_ms=2 * HOUR_MS, context_lookback_ms=6 * HOUR_MS),
    "single 15m": EngineParams(
        windows_ms=(15 * MINUTE_MS,), min_history_ms=2 * HOUR_MS, context_lookback_ms=6 * HOUR_MS
    ),
    "every evidence, 5m..2h": EngineParams(
        windows_ms=(5 * MINUTE_MS, 20 * MINUTE_MS, 50 * MINUTE_MS, 2 * HOUR_MS),
        evidence=tuple(Evidence),
        min_history_ms=HOUR_MS,
        context_lookback_ms=3 * HOUR_MS,
    ),
    "adaptive": EngineParams(
        adaptive=True,
        evidence=tuple(Evidence),
        min_history_ms=2 * HOUR_MS,
        adaptive_lookback_ms=5 * HOUR_MS,
        context_lookback_ms=4 * HOUR_MS,
    ),
    "long window": EngineParams(windows_ms=(HOUR_MS,), min_history_ms=HOUR_MS),
    "reference": EngineParams(reference=True),
}


@pytest.mark.parametrize("name", list(PARAMS))
@settings(max_examples=25, deadline=None)
@given(
    seed_=st.integers(0, 2**32 - 1),
    n=st.integers(1, 260),
    split=st.floats(0, 1),
    holes=st.sampled_from([0.0, 0.02, 0.2]),
    liq_unknown=st.sampled_from([0.0, 0.05, 1.0]),
)
def test_step_equals_the_batch_timeline(
    name: str, seed_: int, n: int, split: float, holes: float, liq_unknown: float
) -> None:
    params = PARAMS[name]
    grid = random_grid(np.random.default_rng(seed_), n, holes, liq_unknown)
    tl = grid_timeline(grid, params)
    k = int(split * n)
    state = seed(grid.head(k), params)
    for i, bar in enumerate(grid_bars(grid)[k:], start=k):
        assert_equal(tl, i, step(state, bar), params)


def test_skipped_bars_step_as_missing() -> None:
    params = PARAMS["fixed"]
    grid = random_grid(np.random.default_rng(3), 120, 0.0, 0.0)
    bars = grid_bars(grid)
    # The batch grid of the same data with bars 50..52 lost: NaN rows, as build_grid holds them.
    lost = Grid(
        grid.bar_ms,
        grid.ts,
        *(grid.row(f).copy() for f in list(Grid.__dataclass_fields__)[2:]),
    )
    for f in (
        "close",
        "volume",
        "oi",
        "liq_long_usd",
        "liq_short_usd",
        "taker_buy",
        "premium",
        "ls_account",
    ):
        getattr(lost, f)[50:53] = np.nan
    tl = grid_timeline(lost, params)
    state = new_state(params, BAR)
    for i, bar in enumerate(bars):
        if 50 <= i < 53:
            continue
        assert_equal(tl, i, step(state, bar), params)


def test_bars_must_come_in_order() -> None:
    grid = random_grid(np.random.default_rng(1), 10, 0.0, 0.0)
    state = seed(grid, PARAMS["fixed"])
    with pytest.raises(ValueError, match="not after"):
        step(state, grid_bars(grid)[-1])


def test_a_squeeze_shows_up_live() -> None:
    """A cascade of short liquidations on a covering bar upgrades it, live as in batch."""
    params = EngineParams(min_history_ms=HOUR_MS, context_lookback_ms=6 * HOUR_MS)
    n = 60
    close = np.full(n, 100.0)
    oi = np.full(n, 1_000.0)
    close[-3:] = [101.0, 102.0, 103.0]
    oi[-3:] = [990.0, 975.0, 960.0]
    short = np.full(n, 100.0)
    short[-1] = 50_000.0
    grid = Grid(BAR, T0 + BAR * np.arange(n, dtype=np.int64), close, np.ones(n), oi,
                np.zeros(n), short, np.full(n, -2e-4), np.full(n, 8.0))  # fmt: skip
    state = seed(grid.head(n - 1), params)
    got = step(state, grid_bars(grid)[-1])
    assert got.regime is Regime.SHORT_SQUEEZE
    assert Regime(int(grid_timeline(grid, params).regime[-1])) is Regime.SHORT_SQUEEZE


def exactly(a: object, b: object) -> bool:
    """Equal, NaN equal to NaN, element by element."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(exactly(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


@pytest.mark.parametrize("name", list(PARAMS))
@settings(max_examples=10, deadline=None)
@given(
    seed_=st.integers(0, 2**32 - 1),
    n=st.integers(2, 200),
    holes=st.sampled_from([0.0, 0.02, 0.2]),
    liq_unknown=st.sampled_from([0.0, 0.05, 1.0]),
)
def test_many_steps_at_once_equal_one_by_one(
    name: str, seed_: int, n: int, holes: float, liq_unknown: float
) -> None:
    """A bar close steps all of a venue's symbols with `step_many`: each reading equals
    `step`'s exactly, series of different lengths and gaps side by side, bars skipped too."""
    params = PARAMS[name]
    rng = np.random.default_rng(seed_)
    grids = [random_grid(rng, n + 7 * j, holes, liq_unknown) for j in range(6)]
    splits = [int(rng.integers(0, len(g.ts) - 1)) for g in grids]
    one = [seed(g.head(k), params) for g, k in zip(grids, splits, strict=True)]
    many = [seed(g.head(k), params) for g, k in zip(grids, splits, strict=True)]
    rows = [list(range(k, len(g.ts))) for g, k in zip(grids, splits, strict=True)]
    for r in rows[1:]:  # some bars never come: stepped as missing before the next
        if len(r) > 3:
            del r[1]
    bars = [grid_bars(g) for g in grids]
    for step_no in range(max(len(r) for r in rows)):
        live = [j for j, r in enumerate(rows) if step_no < len(r)]
        todo = [bars[j][rows[j][step_no]] for j in live]
        got = step_many([many[j] for j in live], todo)
        for j, bar, reading in zip(live, todo, got, strict=True):
            want = step(one[j], bar)
            for f in fields(MarketReading):
                a, b = getattr(reading, f.name), getattr(want, f.name)
                assert exactly(a, b), f"series {j} bar {bar.ts_ms} {f.name}: {a!r} != {b!r}"


def test_row_medians_are_each_rings_median() -> None:
    rng = np.random.default_rng(7)
    rings = []
    for k in range(40):
        size = 9
        tail = rng.normal(size=int(rng.integers(0, 12)))
        tail[rng.uniform(size=len(tail)) < 0.3] = np.nan
        rings.append(Ring(size, tail if k % 5 else None))
    for min_periods in (1, 4, 9):
        got = row_medians(rings, min_periods)
        want = [r.median(min_periods) for r in rings]
        assert all(exactly(float(a), b) for a, b in zip(got, want, strict=True))


def test_baselines_read_single_precision_in_batch_and_live_alike() -> None:
    """A week of baseline values per series is kept at single precision (the daemon's
    largest memory), and batch rounds the same way: the median of values that differ only
    beyond float32's digits is the same number in the ring, the batch row and one bar's."""
    from oiradar.signals.windows import median_known, trailing_median

    p = EngineParams()
    state = new_state(p, BAR)
    hist = [state.short_w_hist, state.volume_hist, *state.abs_oi_hist, *state.abs_px_hist]
    assert {r.buf.dtype for r in hist} == {np.dtype(np.float32)}
    assert state.close.buf.dtype == np.float64  # the windows the rules read stay exact
    x = 1.0 + np.array([1, 2, 3, 4]) * 2.0**-40  # equal once rounded to float32
    ring = Ring(8, dtype=np.float32)
    for v in x:
        ring.push(float(v))
    batch = trailing_median(np.append(x, 0.0), 8, 1)[-1]
    assert ring.median(1) == batch == median_known(x, 1) == 1.0
    assert row_medians([ring, ring], 1).tolist() == [1.0, 1.0]
    assert float(np.median(x)) != 1.0  # at double precision it would not be
