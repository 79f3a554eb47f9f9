"""The seeded synthetic market: every regime of docs/concepts.md, squeezes included.

Each symbol's path is a chain of regime segments. Each segment sets per-minute drifts of log
price and log OI (so 15-minute changes land beyond the default thresholds), the
liquidation flow by side and the funding pressure. Squeezes are preceded by hours of
negative funding, push OI down hard while price accelerates, liquidate shorts in a cascade,
and are followed by funding normalizing. Taker flow, long/short ratios and the premium
follow the same segments (`sim.flow`). Deterministic per (seed, symbol).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from oiradar.sim.flow import synthetic_flow
from oiradar.sim.market import Market, SymbolData

MINUTE = 60_000
BASES = (
    "BTC", "ETH", "SOL", "XRP", "DOGE", "BNB", "ADA", "AVAX", "LINK", "DOT",
    "TRX", "TON", "SHIB", "LTC", "BCH", "NEAR", "UNI", "APT", "ARB", "OP",
    "SUI", "PEPE", "WIF", "INJ", "FIL", "ATOM", "ETC", "IMP", "TIA", "SEI",
)  # fmt: skip


# Price levels of the known names (the rest draw a log-uniform level from the seed).
PRICES = {
    "BTC": 60_000.0,
    "ETH": 3_000.0,
    "SOL": 150.0,
    "XRP": 0.55,
    "DOGE": 0.12,
    "BNB": 550.0,
    "ADA": 0.45,
    "AVAX": 30.0,
    "LINK": 14.0,
    "DOT": 6.5,
    "TRX": 0.12,
    "TON": 5.5,
    "SHIB": 0.000018,
    "LTC": 75.0,
    "BCH": 380.0,
    "NEAR": 5.0,
    "UNI": 8.0,
    "APT": 8.5,
    "ARB": 0.8,
    "OP": 1.8,
    "SUI": 1.2,
    "PEPE": 0.000009,
    "WIF": 2.0,
    "INJ": 22.0,
    "FIL": 4.5,
    "ATOM": 7.0,
    "ETC": 23.0,
    "IMP": 0.9,
    "TIA": 6.0,
    "SEI": 0.4,
}


@dataclass(frozen=True, slots=True)
class Style:
    """Per-regime per-minute drifts (log units), liquidation and funding pressure."""

    price: float
    oi: float
    long_liq: float = 0.0  # extra long liquidations, fraction of |OI change|
    short_liq: float = 0.0
    funding: float = 0.0  # added to the 8 h-equivalent rate


STYLES = {
    "NEUTRAL": Style(0.0, 0.0),
    "NEW_LONGS": Style(0.0012, 0.0016, funding=0.0002),
    "NEW_SHORTS": Style(-0.0012, 0.0016, funding=-0.0001),
    "SHORT_COVERING": Style(0.0010, -0.0016),  # orderly: background liquidations only
    "LONG_LIQUIDATION": Style(-0.0012, -0.0018, long_liq=0.35),
    "LOW_CONVICTION_RALLY": Style(0.0011, 0.0),
    "LOW_CONVICTION_SELLOFF": Style(-0.0011, 0.0),
    "SHORT_SQUEEZE": Style(0.0030, -0.0040, short_liq=0.45, funding=0.0003),
}
WEIGHTS = {
    "NEUTRAL": 0.40,
    "NEW_LONGS": 0.09,
    "NEW_SHORTS": 0.09,
    "SHORT_COVERING": 0.10,
    "LONG_LIQUIDATION": 0.08,
    "LOW_CONVICTION_RALLY": 0.08,
    "LOW_CONVICTION_SELLOFF": 0.08,
    "SHORT_SQUEEZE": 0.08,
}


def parse_weights(text: str) -> dict[str, float]:
    """`NAME=W,...` over the default mix (`SHORT_SQUEEZE=0.4` for a squeeze-heavy market);
    ValueError with a readable message on a bad entry."""
    weights = dict(WEIGHTS)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip().upper()
        if not sep or name not in WEIGHTS:
            raise ValueError(
                f"{item!r}: expected NAME=WEIGHT with NAME one of {', '.join(WEIGHTS)}"
            )
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"{item!r}: the weight must be a number") from None
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"{item!r}: the weight must be a finite number >= 0")
        weights[name] = weight
    if sum(weights.values()) <= 0:
        raise ValueError("at least one regime needs a positive weight")
    return weights


def symbol_names(count: int) -> list[str]:
    return [f"{b}USDT" for b in BASES[:count]] + [f"X{i:03d}USDT" for i in range(len(BASES), count)]


def synthetic_market(
    count: int,
    start_ms: int,
    end_ms: int,
    seed: int = 7,
    weights: Mapping[str, float] | None = None,
    cascade_delay: float = 0.0,
) -> Market:
    """`weights`: how often each regime's segment is drawn (default `WEIGHTS`);
    `cascade_delay`: the share of each squeeze before its liquidation cascade starts."""
    names = symbol_names(count)
    index = {s: i for i, s in enumerate(names)}
    first = start_ms // MINUTE * MINUTE
    last = -(-end_ms // MINUTE) * MINUTE
    mix = dict(weights or WEIGHTS)
    return Market(
        names,
        lambda s: synthetic_symbol(s, index[s], first, last, seed, mix, cascade_delay),
        seed,
    )


def _segments(
    rng: np.random.Generator, n: int, weights: Mapping[str, float]
) -> tuple[list[str], list[int]]:
    names, lengths, total = [], [], 0
    keys = list(WEIGHTS)
    probs = np.array([weights.get(k, 0.0) for k in keys])
    while total < n:
        name = str(rng.choice(keys, p=probs / probs.sum()))
        if name == "SHORT_SQUEEZE":
            length = int(rng.integers(12, 40))
        elif name == "NEUTRAL":
            length = int(rng.integers(60, 360))
        else:
            length = int(rng.integers(20, 120))
        names.append(name)
        lengths.append(length)
        total += length
    return names, lengths


def synthetic_symbol(
    symbol: str,
    idx: int,
    start_ms: int,
    end_ms: int,
    seed: int,
    weights: Mapping[str, float] = WEIGHTS,
    cascade_delay: float = 0.0,
) -> SymbolData:
    rng = np.random.default_rng([seed, idx])
    n = (end_ms - start_ms) // MINUTE
    names, lengths = _segments(rng, n, weights)
    seg_of = np.repeat(np.arange(len(names)), lengths)[:n]
    styles = [STYLES[k] for k in names]
    drift_p = np.array([s.price for s in styles])[seg_of]
    drift_oi = np.array([s.oi for s in styles])[seg_of]
    squeeze = np.array([k == "SHORT_SQUEEZE" for k in names])[seg_of]
    # Squeezes accelerate: the drift ramps up over the segment.
    pos = np.arange(n) - np.concatenate([[0], np.cumsum(lengths)])[seg_of]
    ramp = np.where(squeeze, 0.5 + 1.5 * pos / np.array(lengths)[seg_of], 1.0)
    vol = 0.0006 if idx == 0 else float(rng.uniform(0.0008, 0.0016))
    noise_p = rng.normal(0, vol, n)
    noise_oi = rng.normal(0, vol * 0.25, n)
    logret = drift_p * ramp + noise_p
    d_oi = drift_oi * ramp + noise_oi
    base = symbol[: -len("USDT")]
    p0 = PRICES.get(base) or float(np.exp(rng.uniform(np.log(0.001), np.log(3000))))
    close = p0 * np.exp(np.cumsum(logret))
    open_ = np.concatenate([[p0], close[:-1]])
    wick = np.abs(rng.normal(0, vol * 0.6, n))
    high = np.maximum(open_, close) * (1 + wick)
    low = np.minimum(open_, close) * (1 - wick)
    oi0 = float(rng.uniform(2e7, 2e9)) / p0
    oi = oi0 * np.exp(np.cumsum(d_oi))
    activity = 1 + 0.5 * np.abs(logret) / vol + 2.0 * np.abs(d_oi) / vol
    volume = oi0 * 0.002 * activity * rng.lognormal(0, 0.3, n)

    oi_drop = np.maximum(-np.diff(oi, prepend=oi[0]), 0.0)
    # Steady background liquidations, ~0.006 % of OI an hour (real BTC 1 h: a median of
    # ~0.002 %, SOL ~0.003 %): well under a squeeze's floor share of OI.
    bg = oi * 1e-6 * rng.lognormal(0, 1.0, (2, n))
    liq_long = bg[0] + oi_drop * np.array([s.long_liq for s in styles])[seg_of]
    # With a cascade delay, a squeeze's shorts first cover by choice (price and OI already
    # move like a squeeze, liquidations stay at background) and are forced out later: the
    # event reads as covering first and is upgraded as the cascade streams in.
    forced = ~(squeeze & (pos < cascade_delay * np.array(lengths)[seg_of]))
    liq_short = bg[1] + oi_drop * np.array([s.short_liq for s in styles])[seg_of] * forced

    pressure = _pressure(n, seg_of, names, lengths, styles)
    funding = _funding(rng, pressure)
    interval_h = 4.0 if idx % 3 == 1 else 8.0
    ts = start_ms + MINUTE * np.arange(n, dtype=np.int64)
    # Its own generator: the draws above (every price, OI and funding path) stay as they were.
    flow = synthetic_flow(
        np.random.default_rng([seed, idx, 1]), names, lengths, volume, pressure, oi_drop
    )
    return SymbolData(
        symbol,
        base,
        MINUTE,
        ts,
        open_,
        high,
        low,
        close,
        volume,
        oi,
        funding * interval_h / 8.0,
        liq_long,
        liq_short,
        interval_h,
        taker_buy=flow.taker_buy,
        premium=flow.premium,
        ls_top_account=flow.top_account,
        ls_top_position=flow.top_position,
        ls_account=flow.account,
    )


def _pressure(
    n: int,
    seg_of: np.ndarray,
    names: list[str],
    lengths: list[int],
    styles: list[Style],
) -> np.ndarray:
    """8 h-equivalent funding pressure per minute: 0.01 % base, regime pressure, negative
    before squeezes; funding smooths it, the premium runs ahead of it."""
    rate = np.full(n, 0.0001) + np.array([s.funding for s in styles])[seg_of]
    starts = np.concatenate([[0], np.cumsum(lengths)])
    for k, name in enumerate(names):
        if name != "SHORT_SQUEEZE":
            continue
        s, e = int(starts[k]), int(min(starts[k + 1], n))
        pre = max(0, s - 6 * 60)
        rate[pre:s] = np.minimum(rate[pre:s], -0.0004 * np.linspace(0.3, 1.0, s - pre))
        rate[s:e] = np.linspace(-0.0004, 0.0, max(e - s, 1))[: e - s]
        post = min(n, e + 3 * 60)
        rate[e:post] = np.linspace(0.0, 0.0001, max(post - e, 1))[: post - e]
    return np.asarray(rate, dtype=np.float64)


def _funding(rng: np.random.Generator, rate: np.ndarray) -> np.ndarray:
    """The funding rate per minute (8 h-equivalent): the pressure smoothed like a premium
    index average would be."""
    n = len(rate)
    kernel = np.ones(30) / 30
    smoothed = np.convolve(rate, kernel, mode="full")[:n]
    smoothed[:30] = rate[:30]
    return np.clip(smoothed + rng.normal(0, 0.00001, n), -0.003, 0.003)
