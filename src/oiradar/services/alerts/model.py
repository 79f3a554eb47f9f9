"""The alert record: what `oiradar watch` tells a human, as a dict and as one sentence."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from oiradar.records import LiquidationFeed
from oiradar.signals.regimes import COVERING, Regime
from oiradar.units import interval_name, iso


class AlertKind(StrEnum):
    NEW = "new"
    ESCALATION = "escalation"  # short covering turned into a squeeze
    EXHAUSTION = "exhaustion"  # OI stabilizes, funding normalizes: the move is running out


_REGIME_PHRASE = {
    Regime.SHORT_SQUEEZE: "shorts are being squeezed",
    Regime.SHORT_COVERING: "shorts are covering",
    Regime.LONG_LIQUIDATION: "longs are being liquidated",
    Regime.NEW_SHORTS: "new shorts are opening",
    Regime.NEW_LONGS: "new longs are opening",
    Regime.LOW_CONVICTION_RALLY: "price rises on falling OI",
    Regime.LOW_CONVICTION_SELLOFF: "price falls on falling OI",
}


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert. Percentages are in % (not fractions); money in USD; times ms UTC.
    `more_to_come`: shorts still pay clearly (funding's 8 h equivalent at or below
    -0.01 %, `rules.more_to_come`), so covering may continue."""

    ts_ms: int
    symbol: str
    kind: AlertKind
    regime: Regime
    tier: str | None
    window_ms: int
    drivers: tuple[str, ...]
    oi_change_pct: float
    price_change_pct: float
    funding_rate: float | None
    more_to_come: bool
    short_liq_usd: float
    long_liq_usd: float
    liq_feeds: tuple[tuple[str, LiquidationFeed], ...]
    volume_ratio: float | None
    session: str
    weekend: bool
    confidence: int
    # "On SOLUSDT in the last 30 days: 12 similar events; hit rate 58 %, median +1h +0.21 %"
    history: str | None = None
    horizons: tuple[int, ...] = ()  # every horizon reading covering when the alert fired

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain types, ISO-8601 `Z` time, the sentence included."""
        return {
            "ts": iso(self.ts_ms),
            "ts_ms": self.ts_ms,  # exact: a burst's is the triggering order's time
            "symbol": self.symbol,
            "kind": self.kind.value,
            "regime": self.regime.name,
            "tier": self.tier,
            "window": interval_name(self.window_ms),
            "horizons": [interval_name(h) for h in self.horizons],
            "drivers": list(self.drivers),
            "oi_change_pct": self.oi_change_pct,
            "price_change_pct": self.price_change_pct,
            "funding_rate": self.funding_rate,
            "more_to_come": self.more_to_come,
            "short_liq_usd": self.short_liq_usd,
            "long_liq_usd": self.long_liq_usd,
            "liq_feeds": {venue: feed.value for venue, feed in self.liq_feeds},
            "volume_ratio": self.volume_ratio,
            "session": self.session,
            "weekend": self.weekend,
            "confidence": self.confidence,
            "history": self.history,
            "sentence": self.sentence(),
        }

    def sentence(self) -> str:
        """One short line a human reads on a phone."""
        window = interval_name(self.window_ms)
        moves = (
            f"OI {self.oi_change_pct:+.1f} % in {window} while price {self.price_change_pct:+.1f} %"
        )
        if self.kind is AlertKind.EXHAUSTION:
            head = f"{self.symbol}: the {_label(self.regime)} is running out of steam"
            return f"{head} — {moves}; OI has stabilized and funding normalized"
        head = f"{self.symbol}: {_REGIME_PHRASE.get(self.regime, _label(self.regime))}"
        if self.kind is AlertKind.ESCALATION:
            head += " (escalated from short covering)"
        parts = [f"{head} — {moves}"]
        seen = [
            f"{venue} {feed.value}"
            for venue, feed in self.liq_feeds
            if feed is not LiquidationFeed.NONE
        ]
        shorts = self.regime in COVERING
        liq = self.short_liq_usd if shorts else self.long_liq_usd
        side = "shorts" if shorts else "longs"
        if seen:
            parts.append(f"{money(liq)} of {side} liquidated ({', '.join(seen)})")
        if self.more_to_come:
            parts.append("funding still negative: more to come")
        if self.history:
            parts.append(self.history)
        return "; ".join(parts)


def _label(regime: Regime) -> str:
    return regime.name.lower().replace("_", " ")


def money(usd: float) -> str:
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(usd) >= div:
            return f"${usd / div:.{0 if abs(usd) / div >= 100 else 1}f}{suffix}"
    return f"${usd:.0f}"


def sample_alert(ts_ms: int) -> Alert:
    """A realistic squeeze on SOL, for `oiradar alerts test` and the docs."""
    return Alert(
        ts_ms=ts_ms,
        symbol="SOLUSDT",
        kind=AlertKind.ESCALATION,
        regime=Regime.SHORT_SQUEEZE,
        tier="strong",
        window_ms=15 * 60_000,
        drivers=("binance", "bybit"),
        oi_change_pct=-3.3,
        price_change_pct=2.2,
        funding_rate=-0.00012,
        more_to_come=True,
        short_liq_usd=554_000.0,
        long_liq_usd=12_500.0,
        liq_feeds=(
            ("bybit", LiquidationFeed.COMPLETE),
            ("binance", LiquidationFeed.SAMPLED),
            ("hyperliquid", LiquidationFeed.NONE),
        ),
        volume_ratio=3.4,
        session="us",
        weekend=False,
        confidence=78,
    )
