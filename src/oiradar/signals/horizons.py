"""What a series is read over, in bars: its horizons and their fixed bands, the trailing
lookbacks of its baselines, and how both are described in titles. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass

from oiradar.errors import UserError
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import REFERENCE_BARS, REFERENCE_OI_PCT, REFERENCE_PRICE_PCT
from oiradar.units import HOUR_MS, MINUTE_MS, interval_name

_TAPER_FROM_MS = 15 * MINUTE_MS
_TAPER_TO_MS = HOUR_MS
REFERENCE_BAR_MS = 5 * MINUTE_MS  # the blog-post scanner reads ten 5m candles
REFERENCE_SPAN_MS = (REFERENCE_BARS - 1) * REFERENCE_BAR_MS


@dataclass(frozen=True, slots=True)
class Horizons:
    """The horizons one series is read over, in bars (ascending), and those left out."""

    bars: tuple[int, ...]
    bar_ms: int
    skipped_ms: tuple[int, ...] = ()

    @property
    def ms(self) -> tuple[int, ...]:
        return tuple(b * self.bar_ms for b in self.bars)

    @property
    def longest(self) -> int:
        return self.bars[-1]

    def names(self) -> tuple[str, ...]:
        return tuple(interval_name(m) for m in self.ms)


def window_bars(window_ms: int, bar_ms: int) -> int:
    """A window as a whole number of bars; anything else is a user error."""
    if window_ms <= 0 or window_ms % bar_ms:
        raise UserError(
            f"window {interval_name(window_ms)} is not a multiple of the data's bar size "
            f"{interval_name(bar_ms)}"
        )
    return window_ms // bar_ms


def horizons(params: EngineParams, bar_ms: int) -> Horizons:
    """The horizons that are whole multiples of the bar; one bar when none is (e.g. the
    default 15m, 30m, 1h on 1 h bars reads 1 h only). A single window must fit exactly."""
    if params.reference:
        if bar_ms != REFERENCE_BAR_MS:
            raise UserError(
                f"reference mode needs 5m data; this series has {interval_name(bar_ms)} bars"
            )
        return Horizons((REFERENCE_BARS - 1,), bar_ms)
    wanted = sorted(set(params.windows_ms))
    if len(wanted) == 1:
        return Horizons((window_bars(wanted[0], bar_ms),), bar_ms)
    fit = [w // bar_ms for w in wanted if w >= bar_ms and w % bar_ms == 0]
    skipped = tuple(w for w in wanted if not (w >= bar_ms and w % bar_ms == 0))
    return Horizons(tuple(fit) or (1,), bar_ms, skipped)


@dataclass(frozen=True, slots=True)
class Lookbacks:
    """Trailing windows in bars: the context baselines (liquidations, volume), the adaptive
    bands' spread, and the history any baseline needs before it says anything."""

    context: int
    adaptive: int
    min_history: int


def lookbacks(params: EngineParams, bar_ms: int) -> Lookbacks:
    return Lookbacks(
        max(2, params.context_lookback_ms // bar_ms),
        max(2, params.adaptive_lookback_ms // bar_ms),
        max(2, params.min_history_ms // bar_ms),
    )


def liq_window_bars(params: EngineParams, bar_ms: int) -> int:
    """The burst window liquidations are summed over: 15 min, or one bar when bars are longer."""
    return window_bars(params.liq_window_ms, bar_ms) if params.liq_window_ms > bar_ms else 1


def strong_bars(params: EngineParams, bar_ms: int) -> int:
    """The longest span strong covering is looked for over (30 min), at least one bar."""
    return max(1, params.strong_within_ms // bar_ms)


def band_at(window_ms: int, base_pct: float, taper: float) -> float:
    """The flat band at a horizon: `base` up to 15 min, `base x taper` from 1 h, geometric in
    between (so 30 min gets base x sqrt(taper))."""
    if window_ms <= _TAPER_FROM_MS:
        return base_pct
    frac = min(1.0, math.log(window_ms / _TAPER_FROM_MS) / math.log(_TAPER_TO_MS / _TAPER_FROM_MS))
    return base_pct * math.pow(taper, frac)


def bands(params: EngineParams, window_ms: int) -> tuple[float, float]:
    """(OI band, price band) in % at one horizon; the reference mode's are its own."""
    if params.reference:
        return REFERENCE_OI_PCT, REFERENCE_PRICE_PCT
    return (
        band_at(window_ms, params.oi_threshold_pct, params.oi_taper),
        band_at(window_ms, params.price_threshold_pct, params.price_taper),
    )


def describe(params: EngineParams, bar_ms: int) -> tuple[str, str]:
    """('15m+30m+1h', 'OI +/-1.5 %, price +/-1 % at 15m ... +/-1 %, +/-0.8 % at 1h') for
    titles: what a series of this bar size is read over, and with which fixed bands."""
    hz = horizons(params, bar_ms)
    names = hz.names()
    if params.reference:
        span = interval_name(REFERENCE_SPAN_MS)
        return f"{span} (reference)", (
            f"OI ±{REFERENCE_OI_PCT:g} %, price ±{REFERENCE_PRICE_PCT:g} % (strict)"
        )
    first = bands(params, hz.ms[0])
    text = f"OI ±{first[0]:.3g} %, price ±{first[1]:.3g} % at {names[0]}"
    if len(names) > 1:
        last = bands(params, hz.ms[-1])
        text += f" … ±{last[0]:.3g} %, ±{last[1]:.3g} % at {names[-1]}"
    if params.adaptive:
        text += " (adaptive)"
    return "+".join(names), text
