"""What is news: per-symbol episodes across venues, turned into alerts.

An episode starts when any venue's closed bar reads SHORT_COVERING or SHORT_SQUEEZE (alert
NEW), is upgraded once when a venue's bar reads SHORT_SQUEEZE or a liquidation burst
crosses the squeeze rule before the bar closes (ESCALATION), and ends when no venue has read
covering for the longest horizon (the gap that joins two runs into one event in
`engine.events`), OI has stopped falling over the shortest horizon and funding is no longer
clearly negative (EXHAUSTION). Each transition fires once per episode, whatever the messages did
(duplicates, reconnects), so the same alert is never produced twice. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from oiradar.records import LiquidationFeed
from oiradar.services.alerts.model import Alert, AlertKind
from oiradar.signals import rules
from oiradar.signals.context import session_of
from oiradar.signals.horizons import horizons
from oiradar.signals.params import EngineParams
from oiradar.signals.reading import MarketReading
from oiradar.signals.regimes import COVERING, Regime


class Phase(StrEnum):
    IDLE = "idle"
    COVERING = "covering"
    SQUEEZE = "squeeze"


@dataclass(slots=True)
class Episode:
    phase: Phase = Phase.IDLE
    started_ms: int = 0
    # Each venue's latest closed bar for the symbol, with the live funding rate if streamed.
    readings: dict[str, MarketReading] = field(default_factory=dict)
    covering_ms: int = 0  # the last bar close any venue read covering
    latest_ms: int = 0  # the newest bar any venue has read


# An episode no venue has read covering for this long ends without an exhaustion alert
# (it faded out some other way); the next covering is news again.
STALE_MS = 6 * 3_600_000


@dataclass(frozen=True, slots=True)
class Burst:
    """A liquidation burst on one venue before its bar closed: window totals so far."""

    venue: str
    ts_ms: int
    short_liq_usd: float
    long_liq_usd: float


class Decider:
    """Feed it closed bars (`on_bar`) and squeeze-rule crossings (`on_burst`); it calls
    `emit` with each alert exactly once per episode transition."""

    def __init__(
        self,
        params: EngineParams,
        bar_ms: int,
        feeds: Mapping[str, LiquidationFeed],
        emit: Callable[[Alert], None],
    ) -> None:
        self.params, self.bar_ms, self.feeds, self.emit = params, bar_ms, dict(feeds), emit
        self.episodes: dict[str, Episode] = {}
        # Covering that resumes within this long after the last covering bar is one episode.
        self.merge_ms = horizons(params, bar_ms).longest * bar_ms

    def open_episodes(self) -> dict[str, dict[str, object]]:
        """Episodes still running, to carry across a restart (the store keeps them)."""
        return {
            sym: {"phase": ep.phase.value, "started_ms": ep.started_ms}
            for sym, ep in self.episodes.items()
            if ep.phase is not Phase.IDLE
        }

    def resume(self, symbol: str, phase: Phase, started_ms: int) -> None:
        self.episodes[symbol] = Episode(phase, started_ms, covering_ms=started_ms)

    def phase(self, symbol: str) -> Phase:
        ep = self.episodes.get(symbol)
        return ep.phase if ep else Phase.IDLE

    def on_bar(
        self,
        venue: str,
        symbol: str,
        result: MarketReading,
        funding: tuple[float | None, float | None] = (None, None),
    ) -> Alert | None:
        """A venue closed a bar for `symbol`; returns (and emits) the alert it causes."""
        ep = self.episodes.setdefault(symbol, Episode())
        if funding[0] is not None:
            result = result.with_funding(*funding, self.params)
        ep.readings[venue] = result
        # Venues close a bar at slightly different moments: one still on an older bar may
        # escalate, but never reopen or end the episode the newer bars decided.
        behind = result.ts_ms < ep.latest_ms
        ep.latest_ms = max(ep.latest_ms, result.ts_ms)
        fresh = self._fresh(ep, ep.latest_ms)
        covering = [v for v, r in fresh.items() if r.regime in COVERING]
        squeeze = any(fresh[v].regime is Regime.SHORT_SQUEEZE for v in covering)
        ts = result.ts_ms + self.bar_ms  # knowable at the bar's close
        if covering:
            ep.covering_ms = max(ep.covering_ms, ts)
        elif ep.phase is not Phase.IDLE and ts - ep.covering_ms > STALE_MS:
            ep.phase = Phase.IDLE
        if behind and not (ep.phase is Phase.COVERING and squeeze):
            return None
        if ep.phase is Phase.IDLE and covering:
            ep.phase, ep.started_ms = (Phase.SQUEEZE if squeeze else Phase.COVERING), ts
            return self._send(symbol, AlertKind.NEW, ep, fresh, covering, ts)
        if ep.phase is Phase.COVERING and squeeze:
            ep.phase = Phase.SQUEEZE
            return self._send(symbol, AlertKind.ESCALATION, ep, fresh, covering, ts)
        quiet = ts - ep.covering_ms >= self.merge_ms
        if ep.phase is not Phase.IDLE and not covering and quiet and self._exhausted(fresh):
            alert = self._send(symbol, AlertKind.EXHAUSTION, ep, fresh, list(fresh), ts)
            ep.phase = Phase.IDLE
            return alert
        return None

    def on_burst(self, symbol: str, burst: Burst) -> Alert | None:
        """A venue's liquidations crossed the squeeze rule inside a running bar."""
        ep = self.episodes.get(symbol)
        if ep is None or ep.phase is not Phase.COVERING:
            return None
        ep.phase = Phase.SQUEEZE
        fresh = self._fresh(ep, max(r.ts_ms for r in ep.readings.values()))
        covering = [v for v, r in fresh.items() if r.regime in COVERING] or [burst.venue]
        return self._send(symbol, AlertKind.ESCALATION, ep, fresh, covering, burst.ts_ms, burst)

    def _fresh(self, ep: Episode, bar_ts: int) -> dict[str, MarketReading]:
        """Readings of the latest bar (a venue that fell behind by more than a bar is stale)."""
        return {v: r for v, r in ep.readings.items() if r.ts_ms >= bar_ts - self.bar_ms}

    def _exhausted(self, fresh: Mapping[str, MarketReading]) -> bool:
        """OI no longer falling beyond its band and funding not clearly negative anywhere."""
        known = [r for r in fresh.values() if not math.isnan(r.oi_pct)]
        if not known:
            return False
        for r in known:
            if r.oi_falling:  # positions are still being closed right now
                return False
            if rules.more_to_come(r.funding_8h, self.params):
                return False
        return True

    def _send(
        self,
        symbol: str,
        kind: AlertKind,
        ep: Episode,
        fresh: Mapping[str, MarketReading],
        covering: list[str],
        ts_ms: int,
        burst: Burst | None = None,
    ) -> Alert:
        alert = build_alert(
            symbol, kind, ep, fresh, covering, ts_ms, self.params, self.bar_ms, self.feeds, burst
        )
        self.emit(alert)
        return alert


def _usd_drop(r: MarketReading) -> float:
    d = (r.oi_then - r.oi_now) * r.price_now
    return d if math.isfinite(d) else 0.0


def build_alert(
    symbol: str,
    kind: AlertKind,
    ep: Episode,
    fresh: Mapping[str, MarketReading],
    covering: list[str],
    ts_ms: int,
    params: EngineParams,
    bar_ms: int,
    feeds: Mapping[str, LiquidationFeed],
    burst: Burst | None = None,
) -> Alert:
    """The alert's numbers: OI change over the lead venue's horizon summed in base units across
    the venues reading covering; the price move, funding, volume and confidence of the venue
    driving it (largest OI drop in USD), read as the alert's regime; liquidations summed by
    side over every venue."""
    drivers = sorted(
        (v for v in covering if v in fresh), key=lambda v: -_usd_drop(fresh[v])
    ) or list(covering)
    lead = fresh.get(drivers[0]) if drivers else None
    # OI over the lead venue's horizon (venues read the same horizons), summed over the
    # venues the alert is about: those reading covering (every venue for an exhaustion).
    k = lead.reading if lead else 0
    pairs = [(fresh[v].oi_then_h[k], fresh[v].oi_now) for v in covering if v in fresh]
    ok = [(t, n) for t, n in pairs if math.isfinite(t) and math.isfinite(n)]
    oi_pct = rules.pct(sum(n for _, n in ok), sum(t for t, _ in ok))
    short = sum(r.short_liq_usd for r in fresh.values() if math.isfinite(r.short_liq_usd))
    long_ = sum(r.long_liq_usd for r in fresh.values() if math.isfinite(r.long_liq_usd))
    if burst is not None:  # the burst venue's running window replaces its last closed one
        old = fresh.get(burst.venue)
        if old is not None:
            short -= old.short_liq_usd if math.isfinite(old.short_liq_usd) else 0.0
            long_ -= old.long_liq_usd if math.isfinite(old.long_liq_usd) else 0.0
        short += burst.short_liq_usd
        long_ += burst.long_liq_usd
    regime = Regime.SHORT_SQUEEZE if ep.phase is Phase.SQUEEZE or burst else Regime.SHORT_COVERING
    session, weekend = session_of(ts_ms)
    return Alert(
        ts_ms=ts_ms,
        symbol=symbol,
        kind=kind,
        regime=regime,
        tier="strong" if any(fresh[v].strong for v in covering if v in fresh) else "normal",
        window_ms=lead.horizon_ms if lead is not None else params.window_ms,
        horizons=tuple(sorted({h for v in covering if v in fresh for h in fresh[v].fired_ms})),
        drivers=tuple(drivers),
        oi_change_pct=_round(oi_pct, 3),
        price_change_pct=_round(lead.price_pct if lead else math.nan, 3),
        funding_rate=lead.funding_rate if lead else None,
        more_to_come=bool(lead and rules.more_to_come(lead.funding_8h, params)),
        short_liq_usd=round(short, 2),
        long_liq_usd=round(long_, 2),
        liq_feeds=tuple(sorted(feeds.items())),
        volume_ratio=_round(lead.volume_ratio, 2)
        if lead and lead.volume_ratio is not None
        else None,
        session=session,
        weekend=weekend,
        confidence=lead.confidence(ts_ms, params, regime) if lead is not None else 0,
    )


def _round(x: float, digits: int) -> float:
    return round(x, digits) if math.isfinite(x) else math.nan
