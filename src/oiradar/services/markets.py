"""Market rows: what `oiradar scan` prints and the dashboard shows, one row per (venue, symbol)
and one per coin across venues, both built from the engine's `MarketReading` of the newest
bar. Names and rounding happen in `to_dict`, the output boundary."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from oiradar.signals import rules
from oiradar.signals.params import EngineParams
from oiradar.signals.reading import MarketReading
from oiradar.signals.regimes import Regime
from oiradar.units import interval_name, iso

# Most telling first: how rows rank, and what --min-regime cuts at.
RANK = (
    Regime.SHORT_SQUEEZE,
    Regime.SHORT_COVERING,
    Regime.LONG_LIQUIDATION,
    Regime.NEW_SHORTS,
    Regime.NEW_LONGS,
    Regime.LOW_CONVICTION_RALLY,
    Regime.LOW_CONVICTION_SELLOFF,
    Regime.NEUTRAL,
    Regime.NONE,
    Regime.NO_DATA,
)


def num(x: float | None, digits: int) -> float | None:
    """Rounded for output; None for unknown (JSON has no NaN)."""
    return None if x is None or not np.isfinite(x) else round(float(x), digits)


@dataclass(frozen=True, slots=True)
class MarketRow:
    """One (venue, symbol) at `at_ms` (when it was read: a snapshot's time, a bar's close):
    the reading of its newest bar (with the freshest funding known), its confidence then, OI
    now in USD (the venue's figure when it gives one)."""

    venue: str
    symbol: str
    reading: MarketReading
    at_ms: int
    confidence: int
    oi_usd_now: float
    # "snapshot": the newest closed bar had no history row yet (a venue whose history lags
    # its present), so its OI is the live snapshot taken within a bar after its close.
    oi_source: str = "history"

    @property
    def regime(self) -> Regime:
        return self.reading.regime

    @property
    def oi_pct(self) -> float:
        return self.reading.oi_pct

    @property
    def oi_usd(self) -> float | None:
        return num(self.oi_usd_now, 0)

    @property
    def oi_change_usd(self) -> float | None:
        r = self.reading
        return num(r.oi_now * r.price_now - r.oi_then * r.price_then, 0)

    def to_dict(self) -> dict[str, Any]:
        r = self.reading
        return {
            "venue": self.venue,
            "symbol": self.symbol,
            "regime": r.regime.name,
            "horizon": interval_name(r.horizon_ms),
            "oi_change_pct": num(r.oi_pct, 3),
            "price_change_pct": num(r.price_pct, 3),
            "oi_usd": self.oi_usd,
            "oi_change_usd": self.oi_change_usd,
            "funding_rate": num(r.funding_rate, 8),
            "funding_interval_h": num(r.funding_interval_h, 2),
            "funding_rate_8h": num(r.funding_8h, 8),
            "more_to_come": r.more_to_come,
            "short_liq_usd": num(r.short_liq_usd, 0),
            "long_liq_usd": num(r.long_liq_usd, 0),
            "confidence": self.confidence,
            "strong": r.strong,
            "data_gap": r.gap,
            "oi_source": self.oi_source,
            "ts": iso(self.at_ms),
        }


def market_row(
    venue: str,
    symbol: str,
    reading: MarketReading,
    at_ms: int,
    params: EngineParams,
    funding: tuple[float | None, float | None],
    oi_usd: float | None = None,
) -> MarketRow:
    """The row of a series' newest bar read at `at_ms` with the funding (rate, interval h)
    known then; OI in USD from the venue when given, else OI x close."""
    r = reading.with_funding(*funding, params)
    usd = oi_usd if oi_usd is not None else r.oi_now * r.price_now
    return MarketRow(venue, symbol, r, at_ms, r.confidence(at_ms, params), usd)


@dataclass(frozen=True, slots=True)
class CoinRow:
    """One coin across venues: its OI change at each horizon summed in base units over the
    venues where it is known, read with the same rules as one venue; the venue with the
    largest USD OI change drives it (gives the price move and the confidence)."""

    symbol: str
    regime: Regime
    horizon_ms: int
    oi_pct: float
    price_pct: float
    funding_8h: float | None  # OI-weighted across venues
    driver: MarketRow
    venues: tuple[MarketRow, ...]  # every venue row of the coin
    counted: tuple[MarketRow, ...]  # those whose OI change is known

    def to_dict(self) -> dict[str, Any]:
        return {
            "venue": "all",
            "symbol": self.symbol,
            "regime": self.regime.name,
            "horizon": interval_name(self.horizon_ms),
            "funding_rate": None,  # intervals differ per venue: see funding_rate_8h
            "funding_rate_8h": num(self.funding_8h, 8),
            "confidence": self.driver.confidence,
            "oi_change_pct": num(self.oi_pct, 3),
            "price_change_pct": num(self.price_pct, 3),
            "oi_usd": num(sum(r.oi_usd or 0.0 for r in self.venues), 0),
            "oi_change_usd": num(sum(r.oi_change_usd or 0.0 for r in self.counted), 0),
            "short_liq_usd": _total(num(r.reading.short_liq_usd, 0) for r in self.venues),
            "long_liq_usd": _total(num(r.reading.long_liq_usd, 0) for r in self.venues),
            "driver": self.driver.venue,
            "venues": len(self.counted),
            "ts": iso(max(r.at_ms for r in self.counted)),
        }


def aggregate(rows: Sequence[MarketRow], params: EngineParams) -> list[CoinRow]:
    """One row per coin across venues (OI now summed in USD over every venue); a coin whose OI
    change no venue knows has none. Coins are read together, one `rules.read` over a column
    per coin (the same rules as one venue's bar; per coin it was most of a 300-coin scan's
    own time)."""
    by_symbol: dict[str, list[MarketRow]] = {}
    for r in rows:
        by_symbol.setdefault(r.symbol, []).append(r)
    coins: list[tuple[list[MarketRow], list[MarketRow], MarketRow]] = []
    for group in by_symbol.values():
        ok = [r for r in group if any(_known(t, r.reading.oi_now) for t in r.reading.oi_then_h)]
        if ok:
            driver = max(ok, key=lambda r: abs(r.oi_change_usd or 0.0))
            coins.append((group, ok, driver))
    if not coins:
        return []
    n_h = max(len(driver.reading.oi_then_h) for *_, driver in coins)
    oi_h, px_h = np.full((n_h, len(coins)), np.nan), np.full((n_h, len(coins)), np.nan)
    oi_band, px_band = np.full_like(oi_h, np.inf), np.full_like(px_h, np.inf)
    for j, (_, ok, driver) in enumerate(coins):
        reading = driver.reading
        for k in range(len(reading.oi_then_h)):
            pairs = [(r.reading.oi_then_h[k], r.reading.oi_now) for r in ok]
            pairs = [(t, n) for t, n in pairs if _known(t, n)]
            oi_h[k, j] = rules.pct(sum(n for _, n in pairs), sum(t for t, _ in pairs))
            px_h[k, j] = reading.changes[k][1]
            oi_band[k, j], px_band[k, j] = reading.bands[k]
    _, codes, picks, _ = rules.read(oi_h, px_h, oi_band, px_band, params.reference)
    out = []
    for j, (group, ok, driver) in enumerate(coins):
        k = int(picks[j])
        read = Regime(int(codes[j]))
        out.append(_coin(group, ok, driver, read, k, float(oi_h[k, j]), float(px_h[k, j])))
    return out


def _coin(
    group: list[MarketRow],
    ok: list[MarketRow],
    driver: MarketRow,
    read: Regime,
    k: int,
    oi_pct: float,
    price_pct: float,
) -> CoinRow:
    """The coin's row from its read over horizon `k` (its OI and price % there)."""
    # A venue's own evidence (its liquidations, its taker flow) already shows the squeeze.
    shown = any(r.regime is Regime.SHORT_SQUEEZE for r in ok)
    regime = rules.upgrade(read, 1.0 if shown else 0.0)
    usd = [(r.oi_usd or 0.0, num(r.reading.funding_8h, 8)) for r in ok]
    weight = sum(u for u, f in usd if f is not None)
    funding_8h = sum(u * f for u, f in usd if f is not None) / weight if weight else None
    return CoinRow(
        driver.symbol,
        regime,
        driver.reading.horizons_ms[k],
        oi_pct,
        price_pct,
        funding_8h,
        driver,
        tuple(group),
        tuple(ok),
    )


def _known(then: float, now: float) -> bool:
    return math.isfinite(then) and math.isfinite(now)


def _total(values: Iterable[float | None]) -> float | None:
    """Sum of the known values; None when no venue knows (not zero)."""
    known = [v for v in values if v is not None]
    return float(sum(known)) if known else None


def ranked(rows: Iterable[MarketRow | CoinRow]) -> list[dict[str, Any]]:
    """Rows as output, most telling regime first (`RANK`), then the largest OI move as shown
    (to 3 decimals, so ties rank as the table reads)."""
    return [
        r.to_dict()
        for r in sorted(rows, key=lambda r: (RANK.index(r.regime), -abs(num(r.oi_pct, 3) or 0.0)))
    ]
