"""Each rule of the engine once, on numpy arrays (the batch timeline) or on one bar (the live
step passes arrays of length 1 or scalars): horizons and their bands, how the horizons'
readings combine into one regime, and the squeeze evidence. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar, overload

import numpy as np
from numpy.typing import NDArray

from oiradar.errors import UserError
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import REFERENCE_BARS, Regime, classify, classify_reference
from oiradar.units import HOUR_MS, MINUTE_MS, interval_name

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
Num = TypeVar("Num", FloatArray, float)
ROBUST_SIGMA = 1.4826  # MAD -> sigma for normal data
_TAPER_FROM_MS = 15 * MINUTE_MS
_TAPER_TO_MS = HOUR_MS


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
        if bar_ms != 5 * MINUTE_MS:
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
        return 1.5, 1.0
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
        return "45m (reference)", "OI ±1.5 %, price ±1 % (strict)"
    first = bands(params, hz.ms[0])
    text = f"OI ±{first[0]:.3g} %, price ±{first[1]:.3g} % at {names[0]}"
    if len(names) > 1:
        last = bands(params, hz.ms[-1])
        text += f" … ±{last[0]:.3g} %, ±{last[1]:.3g} % at {names[-1]}"
    if params.adaptive:
        text += " (adaptive)"
    return "+".join(names), text


@overload
def adaptive_threshold(spread: float, fixed: float, params: EngineParams) -> float: ...
@overload
def adaptive_threshold(spread: FloatArray, fixed: float, params: EngineParams) -> FloatArray: ...
def adaptive_threshold(
    spread: FloatArray | float, fixed: float, params: EngineParams
) -> FloatArray | float:
    """k robust sigmas of the symbol's own changes, floored; the fixed band without history."""
    thr = np.maximum(params.adaptive_k * ROBUST_SIGMA * spread, params.adaptive_floor_frac * fixed)
    out = np.where(np.isnan(thr), fixed, thr)
    return out if isinstance(spread, np.ndarray) else float(out)


@overload
def pct(now: float, then: float) -> float: ...
@overload
def pct(now: FloatArray, then: FloatArray) -> FloatArray: ...
def pct(now: FloatArray | float, then: FloatArray | float) -> FloatArray | float:
    """100 x (now / then - 1); NaN where either is missing or `then` is not positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(np.asarray(then) > 0, (np.asarray(now) / then - 1.0) * 100.0, np.nan)
    return out if isinstance(now, np.ndarray) else float(out)


_OI_DOWN = (Regime.SHORT_COVERING, Regime.LONG_LIQUIDATION)
_QUIET = (Regime.NEUTRAL, Regime.NO_DATA)


def combine(
    regimes: NDArray[np.int8], fast_px: FloatArray, fast_band: FloatArray
) -> tuple[NDArray[np.int8], NDArray[np.intp], NDArray[np.int64]]:
    """One regime per bar from the horizons' regimes (rows, shortest horizon first).

    OI falling with price moving (covering, long liquidation) is what the radar is for: the
    shortest horizon that reads it wins, unless price over the shortest horizon moves the
    other way beyond its band (an hour of covering is not read while price is dumping now,
    nor a long liquidation while it rips). Otherwise the shortest horizon with a reading
    other than NEUTRAL wins, then NEUTRAL, then NO_DATA. Mirror-symmetric by construction.

    Returns (regime, index of the horizon read, bitmask of the horizons reading it).
    """
    n_h, n = regimes.shape
    if n_h == 1:  # one horizon: its reading, and no shorter one to contradict it
        only = regimes[0]
        said = (only != Regime.NEUTRAL) & (only != Regime.NO_DATA)
        return only.copy(), np.zeros(n, np.intp), said.astype(np.int64)
    blocked = np.zeros((n_h, n), dtype=np.bool_)
    blocked |= (regimes == Regime.SHORT_COVERING) & (fast_px < -fast_band)
    blocked |= (regimes == Regime.LONG_LIQUIDATION) & (fast_px > fast_band)
    oi_down = np.isin(regimes, _OI_DOWN) & ~blocked
    other = ~np.isin(regimes, (*_OI_DOWN, *_QUIET))
    known = regimes != Regime.NO_DATA
    # Priority per horizon row: 0 OI-down, 1 another reading, 2 neutral (or blocked), 3 none.
    rank = np.where(oi_down, 0, np.where(other, 1, np.where(known, 2, 3)))
    key = rank * n_h + np.arange(n_h)[:, None]  # ties go to the shortest horizon
    pick = np.argmin(key, axis=0)
    cols = np.arange(n)
    picked = regimes[pick, cols]
    best = rank[pick, cols]
    regime = np.where(best == 2, np.int8(Regime.NEUTRAL), picked).astype(np.int8)
    regime[best == 3] = Regime.NO_DATA
    agree = (regimes == regime[None, :]) & ~blocked & (best < 2)[None, :]
    mask = (agree.astype(np.int64) << np.arange(n_h, dtype=np.int64)[:, None]).sum(axis=0)
    return regime, pick, mask


def read(
    oi_h: FloatArray,
    price_h: FloatArray,
    oi_band_h: FloatArray,
    price_band_h: FloatArray,
    reference: bool = False,
) -> tuple[NDArray[np.int8], NDArray[np.int8], NDArray[np.intp], NDArray[np.int64]]:
    """Classify every horizon (rows, shortest first; columns are bars) and combine them:
    (regime per horizon, regime, horizon read, horizons reading it as a bitmask)."""
    if reference:
        regime_h = classify_reference(oi_h, price_h)
    else:
        regime_h = classify(oi_h, price_h, oi_band_h, price_band_h)
    return regime_h, *combine(regime_h, price_h[0], price_band_h[0])


def strong_covering(oi_drop_pct: Num, price_pct: Num, params: EngineParams) -> BoolArray | bool:
    """OI down by the strong share over one span while price rises over the same span."""
    return (oi_drop_pct <= -params.strong_oi_drop_pct) & (price_pct > 0)


def squeeze_spike(
    short_w: Num, long_w: Num, base: Num, oi_usd: Num, params: EngineParams
) -> BoolArray | bool:
    """Liquidation evidence on window totals: short liquidations at least `squeeze_k` x their
    trailing median, a floor share of OI in USD, and dominant over long liquidations."""
    return (
        (short_w >= params.squeeze_k * base)
        & (short_w >= params.squeeze_min_oi_share_pct / 100 * oi_usd)
        & (short_w >= params.squeeze_short_long_ratio * long_w)
        & (short_w > 0)
    )


def taker_outruns(net_taker_buy: Num, oi_drop: Num, params: EngineParams) -> BoolArray | bool:
    """Taker evidence (base units over the reading's window): forced buying outruns the
    positions closed; covering alone need not hit the book that hard."""
    return (oi_drop > 0) & (net_taker_buy >= params.taker_outrun * oi_drop)


def premium_flip(premium: Num, funding_rate: Num, params: EngineParams) -> BoolArray | bool:
    """Premium evidence: the perp trades rich to the index while funding still charges shorts
    nothing or pays them, the premium leading the funding flip."""
    return (premium >= params.premium_min) & (funding_rate <= 0)


def crowded_shorts(ls_account: Num, params: EngineParams) -> BoolArray | bool:
    """Positioning evidence: clearly more accounts short than long, so covering is forced on
    a crowd rather than chosen by a few."""
    return ls_account <= params.crowded_ratio


def any_known(
    terms: list[tuple[Num, Num]],
) -> Num:
    """OR of evidence terms given as (value, known): 1 if any known term holds, 0 if every
    known term fails, NaN when none is known."""
    if not terms:
        raise ValueError("no evidence terms")
    knowns = [np.asarray(known, dtype=np.bool_) for _, known in terms]
    hit = np.logical_or.reduce(
        [np.asarray(value, dtype=np.bool_) & k for (value, _), k in zip(terms, knowns, strict=True)]
    )
    seen = np.logical_or.reduce(knowns)
    out = np.where(hit, 1.0, np.where(seen, 0.0, np.nan))
    return out if out.ndim else float(out)  # type: ignore[return-value]
