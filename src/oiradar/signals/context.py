"""Event context (session, funding reading, a range broken) and the documented 0-100
confidence score."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from oiradar.units import DAY_MS, HOUR_MS

FloatArray = NDArray[np.float64]

# UTC hours of the main sessions (docs/concepts.md#sessions).
SESSIONS = (("asia", 0, 8), ("europe", 7, 16), ("us", 13, 21))


def session_of(ts_ms: int) -> tuple[str, bool]:
    """('asia+europe', is_weekend) for a UTC instant; 'off-hours' between US close and Asia."""
    hour = (ts_ms % DAY_MS) // HOUR_MS
    weekday = (ts_ms // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    names = [name for name, lo, hi in SESSIONS if lo <= hour < hi]
    return ("+".join(names) or "off-hours"), weekday >= 5


def _clip01(x: float) -> float:
    return float(min(1.0, max(0.0, x))) if np.isfinite(x) else 0.0


def confidence(
    *,
    oi_drop_pct: float,
    oi_threshold_pct: float,
    price_gain_pct: float,
    price_threshold_pct: float,
    funding_8h: float | None,
    more_to_come: bool | None,
    volume_ratio: float | None,
    session: str,
    weekend: bool,
    data_gap: bool,
    use_funding: bool = True,
) -> int:
    """0-100: OI 30, price 15, funding 20, volume 15, session 10, data quality 10.

    Without the funding part (regimes other than covering) the rest is rescaled to 100.
    `more_to_come` is `rules.more_to_come` of `funding_8h` (shorts clearly paying).
    """
    score = 30 * _clip01(abs(oi_drop_pct) / (3 * oi_threshold_pct))
    score += 15 * _clip01(abs(price_gain_pct) / (3 * price_threshold_pct))
    if volume_ratio is not None:
        score += 15 * _clip01((volume_ratio - 1.0) / 2.0)
    if weekend:
        score += 3
    elif session != "off-hours":
        score += 10
    else:
        score += 6
    if not data_gap:
        score += 10
    if not use_funding:
        return round(score * 100 / 80)
    if more_to_come:
        score += 20
    elif funding_8h is not None and funding_8h < 0:
        score += 10
    return round(score)


def breakout(close: FloatArray, i: int, w: int, lookback: int) -> bool | None:
    """Close at bar `i` above the highest close of the `lookback` bars before its reading
    window began (a break of the recent range, not the move's own climb); None with less
    than half of that history."""
    lo, hi = max(0, i - w - lookback), i - w
    if hi <= lo or not np.isfinite(close[i]):
        return None
    prior = close[lo:hi]
    known = prior[np.isfinite(prior)]
    if len(known) < lookback // 2:
        return None
    return bool(close[i] > np.max(known))
