"""The batch engine's per-bar output, in a module of its own so that the reading built
from it (`signals.reading`) and the engine that fills it (`signals.engine`) both stand on
it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from oiradar.signals.horizons import Horizons
from oiradar.signals.windows import Grid

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Timeline:
    """Per-bar output. Rows `*_h` hold one row per horizon (shortest first); the flat arrays
    are the reading the bar's regime came from. Percentages in %; `squeeze` NaN = unknown;
    `fired` and `evidence` are bitmasks over the horizons and over `EVIDENCE_ORDER`."""

    grid: Grid
    horizons: Horizons
    oi_h: FloatArray
    price_h: FloatArray
    oi_band_h: FloatArray
    price_band_h: FloatArray
    regime_h: NDArray[np.int8]
    regime: NDArray[np.int8]
    reading: NDArray[np.intp]
    fired: NDArray[np.int64]
    oi_pct: FloatArray
    price_pct: FloatArray
    oi_threshold: FloatArray
    price_threshold: FloatArray
    oi_then: FloatArray
    price_then: FloatArray
    strong: BoolArray
    squeeze: FloatArray
    evidence: NDArray[np.int64]
    gap: BoolArray
    short_liq_usd: FloatArray
    long_liq_usd: FloatArray
    changes: dict[str, tuple[FloatArray, FloatArray]]

    def reading_bars(self, i: int) -> int:
        """The length in bars of the horizon bar `i` was read over."""
        return self.horizons.bars[int(self.reading[i])]

    def horizon_names(self, mask: int) -> tuple[str, ...]:
        """The horizons of a `fired` bitmask, shortest first."""
        names = self.horizons.names()
        return tuple(names[k] for k in range(len(names)) if mask >> k & 1)
