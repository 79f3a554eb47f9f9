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

from oiradar.services.alerts.model import Alert, AlertKind, LiqFeed
from oiradar.signals.context import confidence, session_of
from oiradar.signals.live import BarResult
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import Regime
from oiradar.signals.rules import horizons
from oiradar.units import funding_8h

COVERING = (Regime.SHORT_COVERING, Regime.SHORT_SQUEEZE)


class Phase(StrEnum):
    IDLE = "idle"
    COVERING = "covering"
    SQUEEZE = "squeeze"


@dataclass(slots=True)
class Reading:
    """A venue's latest closed bar for a symbol, with the live funding rate if streamed."""

    result: BarResult
    funding_rate: float | None = None
    funding_interval_h: float | None = None


@dataclass(slots=True)
class Episode:
    phase: Phase = Phase.IDLE
    started_ms: int = 0
    readings: dict[str, Reading] = field(default_factory=dict)
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
        feeds: Mapping[str, LiqFeed],
        emit: Callable[[Alert], None],
    ) -> None:
        self.params, self.bar_ms, self.feeds, self.emit = params, bar_ms, dict(feeds), emit
        self.episodes: dict[str, Episode] = {}
        # Covering that resumes within this long after the last covering bar is one episode.
        self.merge_ms = horizons(params, bar_ms).longest * bar_ms

    def open_episodes(self) -> dict[str, dict[str, object]]:
        """Episodes still running, to carry across a restart (the status file keeps them)."""
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
        result: BarResult,
        funding: tuple[float | None, float | None] = (None, None),
    ) -> Alert | None:
        """A venue closed a bar for `symbol`; returns (and emits) the alert it causes."""
        ep = self.episodes.setdefault(symbol, Episode())
        ep.readings[venue] = Reading(result, *funding)
        # Venues close a bar at slightly different moments: one still on an older bar may
        # escalate, but never reopen or end the episode the newer bars decided.
        behind = result.ts_ms < ep.latest_ms
        ep.latest_ms = max(ep.latest_ms, result.ts_ms)
        fresh = self._fresh(ep, ep.latest_ms)
        covering = [v for v, r in fresh.items() if r.result.regime in COVERING]
        squeeze = any(fresh[v].result.regime is Regime.SHORT_SQUEEZE for v in covering)
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
        fresh = self._fresh(ep, max(r.result.ts_ms for r in ep.readings.values()))
        covering = [v for v, r in fresh.items() if r.result.regime in COVERING] or [burst.venue]
        return self._send(symbol, AlertKind.ESCALATION, ep, fresh, covering, burst.ts_ms, burst)

    def _fresh(self, ep: Episode, bar_ts: int) -> dict[str, Reading]:
        """Readings of the latest bar (a venue that fell behind by more than a bar is stale)."""
        return {v: r for v, r in ep.readings.items() if r.result.ts_ms >= bar_ts - self.bar_ms}

    def _exhausted(self, fresh: Mapping[str, Reading]) -> bool:
        """OI no longer falling beyond its band and funding not clearly negative anywhere."""
        known = [r for r in fresh.values() if not math.isnan(r.result.oi_pct)]
        if not known:
            return False
        for r in known:
            if r.result.oi_falling:  # positions are still being closed right now
                return False
            rate8 = _funding8(r)
            if rate8 is not None and rate8 <= self.params.more_to_come_funding_8h:
                return False
        return True

    def _send(
        self,
        symbol: str,
        kind: AlertKind,
        ep: Episode,
        fresh: Mapping[str, Reading],
        covering: list[str],
        ts_ms: int,
        burst: Burst | None = None,
    ) -> Alert:
        alert = build_alert(
            symbol, kind, ep, fresh, covering, ts_ms, self.params, self.bar_ms, self.feeds, burst
        )
        self.emit(alert)
        return alert


def _funding8(r: Reading) -> float | None:
    if r.funding_rate is not None:
        return funding_8h(r.funding_rate, r.funding_interval_h or 8.0)
    return funding_8h(_opt(r.result.funding_rate), _opt(r.result.funding_interval_h))


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else x


def _usd_drop(r: BarResult) -> float:
    d = (r.oi_then - r.oi_now) * r.price_now
    return d if math.isfinite(d) else 0.0


def build_alert(
    symbol: str,
    kind: AlertKind,
    ep: Episode,
    fresh: Mapping[str, Reading],
    covering: list[str],
    ts_ms: int,
    params: EngineParams,
    bar_ms: int,
    feeds: Mapping[str, LiqFeed],
    burst: Burst | None = None,
) -> Alert:
    """The alert's numbers: OI change over the lead venue's horizon summed in base units across
    the venues reading covering, the price move and funding of the venue driving it (largest
    OI drop in USD), liquidations summed by side over every venue."""
    drivers = sorted(
        (v for v in covering if v in fresh), key=lambda v: -_usd_drop(fresh[v].result)
    ) or list(covering)
    lead = fresh.get(drivers[0]) if drivers else None
    # OI over the lead venue's horizon (venues read the same horizons), summed over the
    # venues the alert is about: those reading covering (every venue for an exhaustion).
    k = lead.result.reading if lead else 0
    pairs = [(_then(fresh[v].result, k), fresh[v].result.oi_now) for v in covering if v in fresh]
    ok = [(t, n) for t, n in pairs if math.isfinite(t) and math.isfinite(n)]
    then, now = sum(t for t, _ in ok), sum(n for _, n in ok)
    oi_pct = (now / then - 1) * 100 if then > 0 else math.nan
    short = sum(r.result.short_liq_usd for r in fresh.values() if _finite(r.result.short_liq_usd))
    long_ = sum(r.result.long_liq_usd for r in fresh.values() if _finite(r.result.long_liq_usd))
    if burst is not None:  # the burst venue's running window replaces its last closed one
        old = fresh.get(burst.venue)
        if old is not None:
            short -= old.result.short_liq_usd if _finite(old.result.short_liq_usd) else 0.0
            long_ -= old.result.long_liq_usd if _finite(old.result.long_liq_usd) else 0.0
        short += burst.short_liq_usd
        long_ += burst.long_liq_usd
    res = lead.result if lead else None
    rate = (
        (lead.funding_rate if lead.funding_rate is not None else _opt(res.funding_rate))
        if (lead and res)
        else None
    )
    rate8 = _funding8(lead) if lead else None
    session, weekend = session_of(ts_ms)
    horizon_ms = res.horizon_ms if res is not None and res.horizon_ms else params.window_ms
    w = max(1, round(horizon_ms / bar_ms))
    volume_ratio = None
    if res is not None and res.volume_base > 0 and math.isfinite(res.volume_base):
        volume_ratio = res.volume_window / (res.volume_base * w)
    regime = Regime.SHORT_SQUEEZE if ep.phase is Phase.SQUEEZE or burst else Regime.SHORT_COVERING
    conf = 0
    if res is not None:
        conf = confidence(
            oi_drop_pct=res.oi_pct,
            oi_threshold_pct=res.oi_threshold,
            price_gain_pct=res.price_pct,
            price_threshold_pct=res.price_threshold,
            funding_8h=rate8,
            clearly_negative_8h=params.more_to_come_funding_8h,
            volume_ratio=volume_ratio,
            session=session,
            weekend=weekend,
            data_gap=res.gap,
        )
    return Alert(
        ts_ms=ts_ms,
        symbol=symbol,
        kind=kind,
        regime=regime.name,
        tier="strong" if any(fresh[v].result.strong for v in covering if v in fresh) else "normal",
        window_ms=horizon_ms,
        horizons=tuple(
            sorted({h for v in covering if v in fresh for h in fresh[v].result.fired_ms})
        ),
        drivers=tuple(drivers),
        oi_change_pct=_round(oi_pct, 3),
        price_change_pct=_round(res.price_pct if res else math.nan, 3),
        funding_rate=rate,
        short_liq_usd=round(short, 2),
        long_liq_usd=round(long_, 2),
        liq_feeds=tuple(sorted(feeds.items())),
        volume_ratio=_round(volume_ratio, 2) if volume_ratio is not None else None,
        session=session,
        weekend=weekend,
        confidence=conf,
    )


def _then(r: BarResult, k: int) -> float:
    return r.oi_then_h[k] if k < len(r.oi_then_h) else r.oi_then


def _finite(x: float) -> bool:
    return math.isfinite(x)


def _round(x: float, digits: int) -> float:
    return round(x, digits) if math.isfinite(x) else math.nan
