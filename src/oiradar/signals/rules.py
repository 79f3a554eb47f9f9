"""Each rule of the engine once, on numpy arrays (the batch timeline) or on one bar (the live
step passes scalars or arrays of length 1): the adaptive band, how the horizons' readings
combine into one regime, strong covering, the squeeze evidence and its upgrade, and what a
reading says about funding and volume. The sizes they run over are in `signals.horizons`.
Pure."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

import numpy as np
from numpy.typing import NDArray

from oiradar.signals.horizons import strong_bars
from oiradar.signals.params import EngineParams, Evidence
from oiradar.signals.regimes import Regime, classify, classify_reference

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
Num = TypeVar("Num", FloatArray, float)
ROBUST_SIGMA = 1.4826  # MAD -> sigma for normal data
EVIDENCE_ORDER = tuple(Evidence)  # bit k of an evidence mask is EVIDENCE_ORDER[k]


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


def adapts(params: EngineParams) -> bool:
    """Whether bands follow the symbol's own noise (never in the reference mode)."""
    return params.adaptive and not params.reference


@overload
def band(spread: float, fixed: float, params: EngineParams) -> float: ...
@overload
def band(spread: FloatArray, fixed: float, params: EngineParams) -> FloatArray: ...
def band(spread: FloatArray | float, fixed: float, params: EngineParams) -> FloatArray | float:
    """The band in force at one horizon: the fixed one, or the adaptive one over the trailing
    median |change| `spread` when the bands adapt (the spread is ignored otherwise)."""
    if adapts(params):
        return adaptive_threshold(spread, fixed, params)
    return np.full(spread.shape, fixed) if isinstance(spread, np.ndarray) else fixed


@overload
def pct(now: float, then: float) -> float: ...
@overload
def pct(now: FloatArray, then: FloatArray) -> FloatArray: ...
def pct(now: FloatArray | float, then: FloatArray | float) -> FloatArray | float:
    """100 x (now / then - 1); NaN where either is missing or `then` is not positive."""
    if not isinstance(now, np.ndarray) and not isinstance(then, np.ndarray):
        # One bar (events, readings): plain floats, the same answer without numpy's
        # per-call cost, which dominated the per-event work of a backtest sweep.
        t = float(then)
        return (float(now) / t - 1.0) * 100.0 if t > 0 else math.nan
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


def strong(
    changes: Callable[[int], tuple[Num, Num]], params: EngineParams, bar_ms: int
) -> BoolArray | bool:
    """Strong covering over any span from one bar up to `strong_within` (30 min); `changes(v)`
    gives (OI %, price %) over `v` bars."""
    hit: BoolArray | bool = False
    for v in range(1, strong_bars(params, bar_ms) + 1):
        hit = hit | strong_covering(*changes(v), params)
    return hit


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


@dataclass(frozen=True, slots=True)
class SqueezeInputs(Generic[Num]):
    """What the squeeze evidence reads at a bar (NaN = unknown), one bar or every bar: short and
    long liquidations over the burst window and the short ones' trailing median (USD), OI in
    USD, net taker buying over the reading's window and the OI closed over it (base), the
    premium (a fraction), the funding rate and all accounts' long/short ratio."""

    short_liq_usd: Num
    long_liq_usd: Num
    short_liq_base: Num
    oi_usd: Num
    net_taker_buy: Num
    oi_drop: Num
    premium: Num
    funding_rate: Num
    ls_account: Num


def evidence_terms(params: EngineParams) -> tuple[Evidence, ...]:
    """The evidence read for the squeeze; none in the reference mode (it has no squeeze)."""
    return () if params.reference else params.evidence


# Each term: (holds, the inputs it needs known), routed by the term.
_TERMS: dict[
    Evidence, Callable[[SqueezeInputs[Any], EngineParams], tuple[Any, tuple[Any, ...]]]
] = {
    Evidence.LIQUIDATIONS: lambda x, p: (
        squeeze_spike(x.short_liq_usd, x.long_liq_usd, x.short_liq_base, x.oi_usd, p),
        (x.short_liq_usd, x.short_liq_base),
    ),
    Evidence.TAKER: lambda x, p: (
        taker_outruns(x.net_taker_buy, x.oi_drop, p),
        (x.net_taker_buy, x.oi_drop),
    ),
    Evidence.PREMIUM: lambda x, p: (
        premium_flip(x.premium, x.funding_rate, p),
        (x.premium, x.funding_rate),
    ),
    Evidence.POSITIONING: lambda x, p: (crowded_shorts(x.ls_account, p), (x.ls_account,)),
}


def evidence_term(ev: Evidence, x: SqueezeInputs[Num], params: EngineParams) -> tuple[Num, Num]:
    """(holds, known) of one evidence term at every bar given, as 1.0/0.0."""
    value, needs = _TERMS[ev](x, params)
    known = np.logical_not(np.logical_or.reduce([np.isnan(v) for v in needs]))
    return _as_float(value, x.oi_usd), _as_float(known, x.oi_usd)


def _as_float(flag: object, like: Num) -> Num:
    out = np.asarray(flag, dtype=np.float64)
    return out if isinstance(like, np.ndarray) else float(out)


def squeeze(x: SqueezeInputs[Num], params: EngineParams) -> tuple[Num, NDArray[np.int64]]:
    """(squeeze 1/0/NaN, bitmask over `EVIDENCE_ORDER` of the terms that held): any known term
    that holds upgrades covering; NaN when no term is known (or none is read)."""
    terms = evidence_terms(params)
    bits = np.zeros(np.shape(x.oi_usd), np.int64)
    if not terms:
        return _as_float(np.full(np.shape(x.oi_usd), np.nan), x.oi_usd), bits
    read = []
    for ev in terms:
        value, known = evidence_term(ev, x, params)
        hit = (np.asarray(value) == 1.0) & (np.asarray(known) == 1.0)
        bits |= hit.astype(np.int64) << EVIDENCE_ORDER.index(ev)
        read.append((value, known))
    return any_known(read), bits


def evidence_names(bits: int) -> tuple[Evidence, ...]:
    """The terms of an evidence bitmask, in `EVIDENCE_ORDER`."""
    return tuple(e for k, e in enumerate(EVIDENCE_ORDER) if bits >> k & 1)


@overload
def upgrade(regime: Regime, squeeze_flag: float) -> Regime: ...
@overload
def upgrade(regime: NDArray[np.int8], squeeze_flag: FloatArray) -> NDArray[np.int8]: ...
def upgrade(
    regime: Regime | NDArray[np.int8], squeeze_flag: float | FloatArray
) -> Regime | NDArray[np.int8]:
    """Short covering with squeeze evidence (flag 1) is a short squeeze."""
    if not isinstance(regime, np.ndarray):  # one reading: no numpy round trip per coin
        up1 = regime == Regime.SHORT_COVERING and float(squeeze_flag) == 1.0
        return Regime.SHORT_SQUEEZE if up1 else Regime(regime)
    up = (np.asarray(regime) == Regime.SHORT_COVERING) & (np.asarray(squeeze_flag) == 1.0)
    out = np.where(up, np.int8(Regime.SHORT_SQUEEZE), regime).astype(np.int8)
    return out if isinstance(regime, np.ndarray) else Regime(int(out))


def more_to_come(rate_8h: float | None, params: EngineParams) -> bool | None:
    """Shorts still paying clearly (8 h equivalent at or below the line, -0.01 %): more
    covering is likely. Unknown funding says nothing."""
    return None if rate_8h is None else rate_8h <= params.more_to_come_funding_8h


def volume_ratio(volume: float, base_per_bar: float, bars: int) -> float | None:
    """Volume over a span against normal: the trailing median volume per bar x its bars; None
    without that baseline (less than `min_history` of it)."""
    normal = base_per_bar * bars
    return volume / normal if math.isfinite(normal) and normal > 0 else None
