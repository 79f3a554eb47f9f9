"""Score the engine against labelled episodes (`oiradar evaluate`). Pure: labels and
timelines in, outcomes and a summary out.

A covering or squeeze label is caught when a bar closing after its start and no later than
one bar after its end reads covering (or squeeze); a squeeze label is upgraded when such a
bar reads squeeze. A long-liquidation (or none) label is misread when any bar closing
inside it reads covering. Events per symbol-day count covering episodes over the data read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from statistics import median
from typing import Any

import numpy as np

from oiradar.signals.engine import Timeline
from oiradar.signals.regimes import COVERING, Regime
from oiradar.units import DAY_MS


class Label(StrEnum):
    COVERING = "covering"
    SQUEEZE = "squeeze"
    LONG_LIQUIDATION = "long_liquidation"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class LabelRow:
    """One labelled episode; times ms UTC, `start` < `end`."""

    venue: str
    symbol: str
    start_ms: int
    end_ms: int
    label: Label
    note: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the engine read during one label."""

    label: LabelRow
    flagged: bool  # a covering (or squeeze) bar inside the label's scoring span
    signal_ms: int | None  # the first such bar's close
    squeeze: bool  # a squeeze bar inside it

    @property
    def latency_min(self) -> float | None:
        return None if self.signal_ms is None else (self.signal_ms - self.label.start_ms) / 60e3


@dataclass(frozen=True, slots=True)
class SeriesRead:
    """One labelled series as the engine read it over the evaluated span."""

    venue: str
    symbol: str
    interval: str
    events: int  # covering episodes signalled inside the span
    symbol_days: float


def score(labels: Sequence[LabelRow], tl: Timeline) -> list[Outcome]:
    """Outcomes of the labels of one series."""
    bar = tl.grid.bar_ms
    closes = tl.grid.ts + bar
    covering = np.isin(tl.regime, COVERING)
    squeeze = tl.regime == Regime.SHORT_SQUEEZE
    out = []
    for lab in labels:
        catches = lab.label in (Label.COVERING, Label.SQUEEZE)
        until = lab.end_ms + bar if catches else lab.end_ms
        inside = (closes > lab.start_ms) & (closes <= until)
        hits = np.flatnonzero(inside & covering)
        out.append(
            Outcome(
                label=lab,
                flagged=len(hits) > 0,
                signal_ms=int(closes[hits[0]]) if len(hits) else None,
                squeeze=bool(np.any(inside & squeeze)),
            )
        )
    return out


def span_read(
    tl: Timeline, start_ms: int, end_ms: int, signals: Sequence[int]
) -> tuple[int, float]:
    """(covering episodes signalled in [start, end], symbol-days of valid bars there)."""
    g = tl.grid
    keep = (g.ts >= start_ms) & (g.ts <= end_ms)
    days = float(np.sum(g.valid[keep])) * g.bar_ms / DAY_MS
    return sum(start_ms <= s <= end_ms + g.bar_ms for s in signals), days


@dataclass(frozen=True, slots=True)
class Targets:
    """What the defaults must do on every labelled real data set (docs/concepts.md)."""

    recall_pct: float = 90.0
    squeeze_pct: float = 90.0
    long_misread: int = 0
    events_per_day: float = 1.0


def summarize(
    outcomes: Sequence[Outcome], reads: Sequence[SeriesRead], targets: Targets = Targets()
) -> dict[str, Any]:
    """The figures `oiradar evaluate` prints, with each target's verdict."""
    positives = [o for o in outcomes if o.label.label in (Label.COVERING, Label.SQUEEZE)]
    caught = [o for o in positives if o.flagged]
    squeezes = [o for o in positives if o.label.label is Label.SQUEEZE]
    upgraded = [o for o in squeezes if o.flagged and o.squeeze]
    right = [o for o in caught if o.squeeze == (o.label.label is Label.SQUEEZE)]
    false_sq = [o for o in caught if o.squeeze and o.label.label is Label.COVERING]
    longs = [o for o in outcomes if o.label.label is Label.LONG_LIQUIDATION]
    nones = [o for o in outcomes if o.label.label is Label.NONE]
    lat = [o.latency_min for o in caught if o.latency_min is not None]
    events = sum(r.events for r in reads)
    days = sum(r.symbol_days for r in reads)
    out: dict[str, Any] = {
        "labels": len(outcomes),
        "covering_labels": len(positives),
        "caught": len(caught),
        "recall_pct": _share_pct(len(caught), len(positives)),
        "median_latency_min": round(median(lat), 1) if lat else None,
        "max_latency_min": round(max(lat), 1) if lat else None,
        "squeeze_labels": len(squeezes),
        "squeezes_upgraded": len(upgraded),
        "squeeze_recall_pct": _share_pct(len(upgraded), len(squeezes)),
        "squeeze_accuracy_pct": _share_pct(len(right), len(caught)),
        "covering_read_as_squeeze": len(false_sq),
        "long_liquidation_labels": len(longs),
        "long_liquidations_read_as_covering": sum(o.flagged for o in longs),
        "none_labels": len(nones),
        "none_flagged": sum(o.flagged for o in nones),
        "events": events,
        "symbol_days": round(days, 2),
        "events_per_symbol_day": round(events / days, 3) if days else None,
    }
    out["targets"] = {
        "recall": _meets(out["recall_pct"], targets.recall_pct),
        "squeezes_upgraded": _meets(out["squeeze_recall_pct"], targets.squeeze_pct),
        "long_liquidations": out["long_liquidations_read_as_covering"] <= targets.long_misread,
        "events_per_symbol_day": out["events_per_symbol_day"] is None
        or out["events_per_symbol_day"] <= targets.events_per_day,
    }
    return out


def _share_pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _meets(value: float | None, target: float) -> bool:
    """No labels of a kind cannot miss its target."""
    return value is None or (math.isfinite(value) and value >= target)


def outcome_row(o: Outcome) -> dict[str, Any]:
    """One label's line in the detailed listing."""
    lab = o.label
    kind = lab.label
    if kind in (Label.COVERING, Label.SQUEEZE):
        verdict = "caught" if o.flagged else "MISSED"
        if o.flagged and kind is Label.SQUEEZE:
            verdict += ", upgraded" if o.squeeze else ", NOT UPGRADED"
        elif o.flagged and o.squeeze:
            verdict += ", read as squeeze"
    else:
        verdict = "READ AS COVERING" if o.flagged else "ok"
    return {
        "venue": lab.venue,
        "symbol": lab.symbol,
        "start_ms": lab.start_ms,
        "end_ms": lab.end_ms,
        "label": kind.value,
        "verdict": verdict,
        "signal_ms": o.signal_ms,
        "latency_min": o.latency_min,
        "note": lab.note,
    }
