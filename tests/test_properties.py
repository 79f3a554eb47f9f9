"""Invariants of the classifier and engine, checked with hypothesis."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from oiradar.signals.engine import events, timeline
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import MIRROR, Regime, classify
from tests.synth import series

changes = arrays(
    np.float64,
    st.integers(1, 200),
    elements=st.floats(-30, 30, allow_nan=False).filter(lambda x: abs(x) != 1.5 and abs(x) != 1.0),
)


@given(changes, st.data())
def test_mirroring_price_flips_the_regime(oi: np.ndarray, data: st.DataObject) -> None:
    px = data.draw(arrays(np.float64, oi.shape, elements=st.floats(-30, 30, allow_nan=False)))
    a = classify(oi, px, 1.5, 1.0)
    b = classify(oi, -px, 1.5, 1.0)
    for x, y in zip(a, b, strict=True):
        rx, ry = Regime(int(x)), Regime(int(y))
        assert ry is MIRROR.get(rx, rx)


def _walk(seed: int, n: int, vol: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0, vol, n)))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(-20, 20), st.integers(-20, 20), st.booleans())
def test_scaling_oi_or_price_leaves_regimes_unchanged(
    seed: int, k_oi: int, k_px: int, adaptive: bool
) -> None:
    """Powers of two scale exactly in floating point, so every % change is identical."""
    close, oi = _walk(seed, 400, 0.006), _walk(seed + 1, 400, 0.008) * 50
    p = EngineParams(adaptive=adaptive, min_history_ms=3_600_000)
    base = timeline(series(close, oi), p)
    scaled = timeline(series(close * 2.0**k_px, oi * 2.0**k_oi), p)
    np.testing.assert_array_equal(base.regime, scaled.regime)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(30, 380), st.booleans())
def test_nothing_at_bar_t_depends_on_data_after_t(seed: int, t: int, adaptive: bool) -> None:
    n = 400
    close, oi = _walk(seed, n, 0.006), _walk(seed + 7, n, 0.008)
    liq = [(i, 10.0 * (i % 3), 50.0 * (i % 5)) for i in range(n)]
    fund = [(i, 0.0001 * np.sin(i), 8.0) for i in range(0, n, 96)]
    p = EngineParams(adaptive=adaptive, min_history_ms=3_600_000)
    full = timeline(series(close, oi, liq=liq, funding=fund), p)
    # Rewrite the future after bar t (prices, OI, liquidations, funding) ...
    rng = np.random.default_rng(seed + 99)
    close2, oi2 = close.copy(), oi.copy()
    close2[t + 1 :] *= rng.uniform(0.5, 2.0, n - t - 1)
    oi2[t + 1 :] *= rng.uniform(0.5, 2.0, n - t - 1)
    liq2 = [(i, lo, sh * (7.0 if i > t else 1.0)) for i, lo, sh in liq]
    fund2 = [(i, r if i <= t else -0.01, h) for i, r, h in fund]
    changed = timeline(series(close2, oi2, liq=liq2, funding=fund2), p)
    # ... and every per-bar output up to t is the same.
    s = slice(0, t + 1)
    np.testing.assert_array_equal(full.regime[s], changed.regime[s])
    np.testing.assert_array_equal(full.oi_pct[s], changed.oi_pct[s])
    np.testing.assert_array_equal(full.squeeze[s], changed.squeeze[s])
    np.testing.assert_array_equal(full.oi_threshold[s], changed.oi_threshold[s])
    # Events that ended a merge gap (the longest horizon) before t were already knowable
    # with the same values: a run closer than that to a later one joins it.
    bar = full.grid.bar_ms
    settled = int(full.grid.ts[t]) + bar - bar * full.horizons.longest
    before = [e for e in events(full, p) if e.end_ms <= settled]
    after = [e for e in events(changed, p) if e.end_ms <= settled]
    assert [(e.start_ms, e.regime, e.squeeze, e.tier) for e in before] == [
        (e.start_ms, e.regime, e.squeeze, e.tier) for e in after
    ]


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_every_bar_gets_exactly_one_regime(seed: int) -> None:
    close, oi = _walk(seed, 300, 0.01), _walk(seed + 3, 300, 0.01)
    oi[::37] = np.nan
    tl = timeline(series(close, oi), EngineParams())
    assert set(np.unique(tl.regime)) <= {r.value for r in Regime}
    assert (tl.regime[np.isnan(tl.oi_pct)] == Regime.NO_DATA).all()
