"""Order flow and positioning of the synthetic market: taker buying, long/short ratios and
the premium index, per 1-minute base bar and regime segment.

What they show, on purpose (docs/simulator.md): taker buying outruns selling while shorts
cover, by about the positions closed (many shorts close with market buys), and by about
three times them in a squeeze (forced buys and the momentum they draw), as on the real 1 h
data of docs/concepts.md#squeeze; sells dominate long liquidations; in the
hours before a squeeze shorts crowd in (every long/short ratio falls below 1) and the
crowding unwinds as the squeeze forces them out; the premium runs ahead of funding (funding
averages it over the interval) and jumps while a squeeze bids the perpetual up, so it turns
positive while funding is still negative. Drawn from a generator of their own, after the
price path: a seed's prices, OI, funding and liquidations are what they were without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from oiradar.sim.market import INTEREST_8H

F64 = NDArray[np.float64]

# Share of the volume that takers buy, above one half, per regime (a squeeze ramps it up);
# covering and squeezes take their net buying from the OI drop instead (OUTRUN).
TAKER_BIAS = {
    "NEUTRAL": 0.0,
    "NEW_LONGS": 0.05,
    "NEW_SHORTS": -0.05,
    "SHORT_COVERING": 0.07,
    "LONG_LIQUIDATION": -0.10,
    "LOW_CONVICTION_RALLY": 0.02,
    "LOW_CONVICTION_SELLOFF": -0.02,
    "SHORT_SQUEEZE": 0.14,
}
# Shift of the log long/short ratios per regime (new shorts push them down, and so on).
LS_SHIFT = {
    "NEUTRAL": 0.0,
    "NEW_LONGS": 0.12,
    "NEW_SHORTS": -0.12,
    "SHORT_COVERING": 0.08,
    "LONG_LIQUIDATION": -0.10,
    "LOW_CONVICTION_RALLY": 0.03,
    "LOW_CONVICTION_SELLOFF": -0.03,
    "SHORT_SQUEEZE": 0.0,  # its ratios come from the crowding unwinding
}
CROWDING_MIN = 6 * 60  # shorts crowd in over the 6 h before a squeeze (as funding turns)
PREMIUM_LEAD_MIN = 45  # the premium is where funding pressure will be this much later
SQUEEZE_PREMIUM = 0.0012  # the premium's extra rise over a squeeze (0.12 %)
# Net taker buying (base) per unit of OI closed: covering ~1x, a squeeze ~3x (real BTC 1 h:
# 0.6-1.8x in orderly covering hours, 2.2-3.3x in squeezes).
OUTRUN = {"SHORT_COVERING": 1.0, "SHORT_SQUEEZE": 3.0}


@dataclass(frozen=True, slots=True)
class Flow:
    taker_buy: F64  # base units per bar
    premium: F64  # fraction, at each bar's close
    top_account: F64  # long/short ratios at each bar's close
    top_position: F64
    account: F64


def ema(x: F64, span: int) -> F64:
    """Exponential moving average (alpha 2/(span+1)) as one convolution, seeded with x[0]."""
    alpha = 2.0 / (span + 1)
    width = int(6 / alpha) + 1
    kernel = alpha * (1 - alpha) ** np.arange(width)
    kernel /= kernel.sum()
    padded = np.concatenate([np.full(width, x[0] if len(x) else 0.0), x])
    return np.convolve(padded, kernel)[width : width + len(x)]


def synthetic_flow(
    rng: np.random.Generator,
    names: Sequence[str],
    lengths: Sequence[int],
    volume: F64,
    pressure: F64,
    oi_drop: F64,
) -> Flow:
    """`pressure`: the 8 h-equivalent funding pressure before funding's own smoothing;
    `oi_drop`: OI closed per bar (base, >= 0)."""
    n = len(volume)
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    seg_of = np.repeat(np.arange(len(names)), lengths)[:n]
    frac = (np.arange(n) - starts[seg_of]) / np.asarray(lengths, dtype=np.float64)[seg_of]
    squeeze = np.array([k == "SHORT_SQUEEZE" for k in names])[seg_of]
    ramp = np.where(squeeze, 0.5 + 1.5 * frac, 1.0)  # squeezes accelerate, as the price does
    bias = np.array([TAKER_BIAS[k] for k in names])[seg_of]
    noise = rng.normal(0, 0.03, n)
    share = 0.5 + bias * ramp + noise
    outrun = np.array([OUTRUN.get(k, 0.0) for k in names])[seg_of]
    tied = outrun > 0
    share[tied] = 0.5 + (outrun * oi_drop / np.maximum(volume, 1e-12))[tied] / 2 + noise[tied]
    share = np.clip(share, 0.05, 0.95)
    crowded = _crowding(names, starts, n)
    shift = ema(np.array([LS_SHIFT[k] for k in names])[seg_of], 60)
    top_account, top_position, account = (
        _ratio(rng, shift, crowded, lo, hi) for lo, hi in ((0.9, 1.3), (0.9, 1.4), (1.0, 1.8))
    )
    ahead = np.concatenate([pressure[PREMIUM_LEAD_MIN:], np.full(PREMIUM_LEAD_MIN, pressure[-1])])
    kick = ema(np.where(squeeze, SQUEEZE_PREMIUM * frac, 0.0), 15)
    premium = ahead[:n] - INTEREST_8H + kick + rng.normal(0, 0.00003, n)
    return Flow(volume * share, premium, top_account, top_position, account)


def _crowding(names: Sequence[str], starts: NDArray[np.int64], n: int) -> F64:
    """0..1: how crowded shorts are; rises over the hours before a squeeze, unwinds in it."""
    w = np.zeros(n)
    for k, name in enumerate(names):
        if name != "SHORT_SQUEEZE":
            continue
        s, e = int(starts[k]), int(min(starts[k + 1], n))
        pre = max(0, s - CROWDING_MIN)
        w[pre:s] = np.maximum(w[pre:s], np.linspace(0.0, 1.0, s - pre))
        w[s:e] = np.maximum(w[s:e], np.linspace(1.0, 0.0, e - s))
    return w


def _ratio(rng: np.random.Generator, shift: F64, crowded: F64, lo: float, hi: float) -> F64:
    """A long/short ratio around a level drawn in [lo, hi], pulled to a crowded-short level
    (well below 1 and below the usual level) by `crowded`, smoothed like real positioning."""
    usual = np.log(rng.uniform(lo, hi)) + shift
    crowd = np.log(min(0.85, float(np.exp(usual.mean())) * rng.uniform(0.55, 0.75)))
    target = (1 - crowded) * usual + crowded * crowd
    noisy = target + rng.normal(0, 0.03, len(target))
    return np.asarray(np.exp(ema(noisy, 20)), dtype=np.float64)
