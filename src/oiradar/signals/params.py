"""Engine parameters with the defaults of docs/concepts.md (all percentages in %)."""

from __future__ import annotations

from dataclasses import dataclass

from oiradar.units import DAY_MS, HOUR_MS, MINUTE_MS


@dataclass(frozen=True, slots=True)
class EngineParams:
    window_ms: int = 15 * MINUTE_MS
    oi_threshold_pct: float = 1.5
    price_threshold_pct: float = 1.0
    # Adaptive: threshold = k x robust sigma (1.4826 x median |change|) of the trailing window.
    adaptive: bool = False
    adaptive_k: float = 3.0
    adaptive_lookback_ms: int = 7 * DAY_MS
    # Trailing baselines (adaptive thresholds, liquidations, volume) need this much history.
    min_history_ms: int = DAY_MS
    adaptive_floor_frac: float = 0.2
    # Strong short covering: OI down >= 5 % within <= 30 min while price rises.
    strong_oi_drop_pct: float = 5.0
    strong_within_ms: int = 30 * MINUTE_MS
    # Squeeze: short liquidations in the window spike against their own trailing median.
    squeeze_k: float = 3.0
    squeeze_min_oi_share_pct: float = 0.02
    squeeze_short_long_ratio: float = 2.0
    # Funding (8 h equivalent, fraction) at or below this says more covering is likely to come.
    more_to_come_funding_8h: float = -0.0001
    context_lookback_ms: int = 7 * DAY_MS
    report_windows_ms: tuple[int, ...] = (15 * MINUTE_MS, 30 * MINUTE_MS, HOUR_MS)
    reference: bool = False
