"""The regime matrix of docs/concepts.md as vectorized classifiers."""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


class Regime(IntEnum):
    """Bar regimes; codes are stable (stored in int8 arrays)."""

    NO_DATA = -1
    NEUTRAL = 0
    NEW_LONGS = 1
    NEW_SHORTS = 2
    SHORT_COVERING = 3
    LONG_LIQUIDATION = 4
    LOW_CONVICTION_RALLY = 5
    LOW_CONVICTION_SELLOFF = 6
    SHORT_SQUEEZE = 7
    NONE = 8  # the reference classifier's "nothing matched"


# Short covering and the squeeze it may turn into: the radar's subject.
COVERING = (Regime.SHORT_COVERING, Regime.SHORT_SQUEEZE)
# Readings that say nothing about the market (no data, inside the bands, the reference's none).
QUIET = (Regime.NO_DATA, Regime.NEUTRAL, Regime.NONE)

# How a terminal colours each regime (rich styles): the CLI's tables and the console alert
# sink show regimes alike.
TERMINAL_STYLE = {
    Regime.SHORT_SQUEEZE: "bold magenta",
    Regime.SHORT_COVERING: "bold green",
    Regime.NEW_LONGS: "cyan",
    Regime.NEW_SHORTS: "yellow",
    Regime.LONG_LIQUIDATION: "red",
    Regime.LOW_CONVICTION_RALLY: "dim green",
    Regime.LOW_CONVICTION_SELLOFF: "dim red",
    Regime.NO_DATA: "dim",
}

MIRROR = {
    Regime.NEW_LONGS: Regime.NEW_SHORTS,
    Regime.NEW_SHORTS: Regime.NEW_LONGS,
    Regime.SHORT_COVERING: Regime.LONG_LIQUIDATION,
    Regime.LONG_LIQUIDATION: Regime.SHORT_COVERING,
    Regime.LOW_CONVICTION_RALLY: Regime.LOW_CONVICTION_SELLOFF,
    Regime.LOW_CONVICTION_SELLOFF: Regime.LOW_CONVICTION_RALLY,
}

# Indexed by (oi direction + 1) * 3 + (price direction + 1), direction in {-1, 0, +1}.
# OI moving while price is flat has no reading in the matrix: NEUTRAL.
_MATRIX = np.array(
    [
        Regime.LONG_LIQUIDATION,
        Regime.NEUTRAL,
        Regime.SHORT_COVERING,  # OI down
        Regime.LOW_CONVICTION_SELLOFF,
        Regime.NEUTRAL,
        Regime.LOW_CONVICTION_RALLY,  # OI flat
        Regime.NEW_SHORTS,
        Regime.NEUTRAL,
        Regime.NEW_LONGS,  # OI up
    ],
    dtype=np.int8,
)


def _direction(change: FloatArray, threshold: FloatArray | float) -> NDArray[np.int8]:
    """+1 beyond +threshold, -1 beyond -threshold, 0 inside the flat band (inclusive)."""
    up = (change > threshold).view(np.int8)
    down = (change < -threshold).view(np.int8)
    return up - down


def classify(
    oi_pct: FloatArray,
    price_pct: FloatArray,
    oi_threshold: FloatArray | float,
    price_threshold: FloatArray | float,
) -> NDArray[np.int8]:
    """Classify each bar from OI and price % change over one window (thresholds in %).

    A NaN change or threshold (a gap) gives NO_DATA, never a regime.
    """
    idx = (_direction(oi_pct, oi_threshold) + 1) * 3 + _direction(price_pct, price_threshold) + 1
    out: NDArray[np.int8] = _MATRIX.take(idx)
    missing = np.isnan(oi_pct) | np.isnan(price_pct)
    if not np.isscalar(oi_threshold):
        missing |= np.isnan(oi_threshold)
    if not np.isscalar(price_threshold):
        missing |= np.isnan(price_threshold)
    out[missing] = Regime.NO_DATA
    return out


REFERENCE_BARS = 10
REFERENCE_OI_PCT = 1.5
REFERENCE_PRICE_PCT = 1.0


def classify_reference(oi_pct: FloatArray, price_pct: FloatArray) -> NDArray[np.int8]:
    """The blog-post scanner: only NEW_LONGS, SHORT_COVERING, LONG_LIQUIDATION or NONE.

    Changes are first-to-last of the last 10 five-minute samples; comparisons are strict.
    """
    out = np.full(oi_pct.shape, Regime.NONE, dtype=np.int8)
    oi_up = oi_pct > REFERENCE_OI_PCT
    oi_down = oi_pct < -REFERENCE_OI_PCT
    p_up = price_pct > REFERENCE_PRICE_PCT
    p_down = price_pct < -REFERENCE_PRICE_PCT
    out[oi_up & p_up] = Regime.NEW_LONGS
    out[oi_down & p_up] = Regime.SHORT_COVERING
    out[oi_down & p_down] = Regime.LONG_LIQUIDATION
    out[np.isnan(oi_pct) | np.isnan(price_pct)] = Regime.NO_DATA
    return out
