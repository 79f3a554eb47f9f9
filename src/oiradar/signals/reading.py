"""One market reading: what the engine says about one series at one closed bar.

The batch timeline (`reading_at`) and the live step (`signals.live.step`) both produce it, and
a property test holds the two equal field for field. Scan rows, events, alerts and the
dashboard are built from it, so each says the same about the same bar: one `volume_ratio`,
one `more_to_come`, one confidence score. Regimes stay `Regime` here; names are for output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from oiradar.signals import rules
from oiradar.signals.context import confidence, session_of
from oiradar.signals.horizons import lookbacks
from oiradar.signals.params import EngineParams, Evidence
from oiradar.signals.regimes import COVERING, QUIET, Regime
from oiradar.signals.timeline import Timeline
from oiradar.signals.windows import median_known
from oiradar.units import funding_8h


@dataclass(frozen=True, slots=True)
class MarketReading:
    """One series at one closed bar. Percentages in %, OI in base units, money in USD; NaN is
    unknown in float fields, None in optional ones.

    `horizon_ms` is the horizon the regime was read over and the OI/price figures are its;
    `changes` and `bands` hold (OI, price) for every horizon of `horizons_ms`, shortest first.
    Liquidations are over the burst window ending at the bar; `volume_ratio` is the volume
    over the reading's window against normal (`rules.volume_ratio`)."""

    ts_ms: int  # the bar's open
    bar_ms: int
    regime: Regime
    horizons_ms: tuple[int, ...]
    reading: int  # the index of the horizon read among `horizons_ms`
    fired_ms: tuple[int, ...]  # every horizon reading the regime
    oi_pct: float
    price_pct: float
    oi_threshold: float
    price_threshold: float
    strong: bool
    squeeze: float  # 1 / 0, NaN = unknown
    evidence: tuple[Evidence, ...]
    gap: bool
    short_liq_usd: float
    long_liq_usd: float
    oi_then: float  # OI and close one reading window ago, and at the bar's close
    oi_now: float
    price_then: float
    price_now: float
    volume_ratio: float | None
    funding_rate: float | None  # in force at the bar's close, per interval, a fraction
    funding_interval_h: float | None
    more_to_come: bool | None  # covering only (`rules.more_to_come`)
    changes: tuple[tuple[float, float], ...]
    bands: tuple[tuple[float, float], ...]
    oi_then_h: tuple[float, ...]  # OI one window ago, per horizon
    oi_falling: bool  # OI below its band over the shortest horizon (still closing)

    @property
    def horizon_ms(self) -> int:
        return self.horizons_ms[self.reading]

    @property
    def covering(self) -> bool:
        return self.regime in COVERING

    @property
    def funding_8h(self) -> float | None:
        """The funding rate as its 8 h equivalent (symbols charged hourly compare fairly)."""
        return funding_8h(self.funding_rate, self.funding_interval_h)

    def with_funding(
        self, rate: float | None, interval_h: float | None, params: EngineParams
    ) -> MarketReading:
        """The reading with a fresher rate (a snapshot, the stream); 8 h when unsaid."""
        ivl = interval_h or 8.0
        more = rules.more_to_come(funding_8h(rate, ivl), params) if self.covering else None
        return replace(self, funding_rate=rate, funding_interval_h=ivl, more_to_come=more)

    def confidence(self, at_ms: int, params: EngineParams, regime: Regime | None = None) -> int:
        """The documented 0-100 score of this bar read as `regime` (its own by default) at
        `at_ms` (whose session counts); 0 for a reading that says nothing."""
        regime = self.regime if regime is None else regime
        if regime in QUIET:
            return 0
        session, weekend = session_of(at_ms)
        return confidence(
            oi_drop_pct=self.oi_pct,
            oi_threshold_pct=self.oi_threshold,
            price_gain_pct=self.price_pct,
            price_threshold_pct=self.price_threshold,
            funding_8h=self.funding_8h,
            more_to_come=rules.more_to_come(self.funding_8h, params),
            volume_ratio=self.volume_ratio,
            session=session,
            weekend=weekend,
            data_gap=self.gap,
            use_funding=regime in COVERING,
        )


def _opt(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def reading_at(
    tl: Timeline, i: int, params: EngineParams, *, vol_base: float | None = None
) -> MarketReading:
    """Bar `i` of a batch timeline (negative counts from the end) as one reading.

    `vol_base` is the trailing volume median before bar `i` when the caller has the whole
    row already (`windows.trailing_median`, as the batch events do): the same number,
    without a median per bar."""
    g, hz = tl.grid, tl.horizons
    i = i % len(g.ts)
    regime = Regime(int(tl.regime[i]))
    k = int(tl.reading[i])
    w = hz.bars[k]
    if vol_base is None:
        lb = lookbacks(params, g.bar_ms)
        vol_base = median_known(g.volume[max(0, i - lb.context) : i], lb.min_history)
    volume = float(np.nansum(g.volume[max(0, i - w + 1) : i + 1]))
    rate, ivl = _opt(float(g.funding_rate[i])), _opt(float(g.funding_interval_h[i]))
    fired = int(tl.fired[i])
    return MarketReading(
        ts_ms=int(g.ts[i]),
        bar_ms=g.bar_ms,
        regime=regime,
        horizons_ms=hz.ms,
        reading=k,
        fired_ms=tuple(m for j, m in enumerate(hz.ms) if fired >> j & 1),
        oi_pct=float(tl.oi_pct[i]),
        price_pct=float(tl.price_pct[i]),
        oi_threshold=float(tl.oi_threshold[i]),
        price_threshold=float(tl.price_threshold[i]),
        strong=bool(tl.strong[i]),
        squeeze=float(tl.squeeze[i]),
        evidence=rules.evidence_names(int(tl.evidence[i])),
        gap=bool(tl.gap[i]),
        short_liq_usd=float(tl.short_liq_usd[i]),
        long_liq_usd=float(tl.long_liq_usd[i]),
        oi_then=float(tl.oi_then[i]),
        oi_now=float(g.oi[i]),
        price_then=float(tl.price_then[i]),
        price_now=float(g.close[i]),
        volume_ratio=rules.volume_ratio(volume, vol_base, w),
        funding_rate=rate,
        funding_interval_h=ivl,
        more_to_come=rules.more_to_come(funding_8h(rate, ivl), params)
        if regime in COVERING
        else None,
        changes=tuple(
            (float(o), float(p)) for o, p in zip(tl.oi_h[:, i], tl.price_h[:, i], strict=True)
        ),
        bands=tuple(
            (float(o), float(p))
            for o, p in zip(tl.oi_band_h[:, i], tl.price_band_h[:, i], strict=True)
        ),
        oi_then_h=tuple(float(g.oi[i - b]) if i >= b else math.nan for b in hz.bars),
        oi_falling=bool(tl.oi_h[0, i] < -tl.oi_band_h[0, i]),
    )
