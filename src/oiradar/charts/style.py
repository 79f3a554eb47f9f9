"""What the PNG and the HTML chart share: colours, the title lines, money and base-unit
labels, and where event labels go."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from oiradar.services.chart import ChartData
from oiradar.signals.regimes import Regime

UP = "#26a69a"  # rising candle, short liquidations (forced buying)
DOWN = "#ef5350"  # falling candle, long liquidations (forced selling)
COVERING = "#43a047"
SQUEEZE = "#d81b60"
EVENT = "#6a1b9a"
AGGREGATE = "#212121"
VENUE_COLOURS = ("#1e88e5", "#fb8c00", "#8e24aa", "#00897b", "#6d4c41")
# The thin ribbon under the candles names every regime; only covering and squeeze are
# shaded through all panels (they are what oiradar is for).
RIBBON = {
    Regime.NEW_LONGS: "#4fc3f7",
    Regime.NEW_SHORTS: "#ffb74d",
    Regime.SHORT_COVERING: COVERING,
    Regime.SHORT_SQUEEZE: SQUEEZE,
    Regime.LONG_LIQUIDATION: "#e53935",
    Regime.LOW_CONVICTION_RALLY: "#b0bec5",
    Regime.LOW_CONVICTION_SELLOFF: "#d7ccc8",
}
SHADE = {Regime.SHORT_COVERING: (COVERING, 0.13), Regime.SHORT_SQUEEZE: (SQUEEZE, 0.16)}
LABEL_LEVELS = (0.97, 0.845, 0.72)  # axes-fraction heights of event labels, staggered


def money(x: float, digits: int = 1) -> str:
    """4.6e9 -> '$4.6B'; the compact form traders read (sign kept)."""
    sign = "-" if x < 0 else ""
    a = abs(x)
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{sign}${a / div:.{digits}f}{suffix}"
    return f"{sign}${a:.0f}"


def compact(x: float) -> str:
    """81234 -> '81.2k' (base units)."""
    a = abs(x)
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{x / div:.1f}{suffix}"
    return f"{x:.4g}"


def utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def regime_label(r: Regime) -> str:
    return r.name.lower().replace("_", " ")


def title(d: ChartData) -> str:
    venues = d.venues[0] if len(d.venues) == 1 else f"{', '.join(d.venues)}"
    return (
        f"{d.symbol} perpetual · {venues} · {d.interval} bars · read over {d.window} · "
        f"{utc(d.start_ms)} → {utc(d.end_ms)} UTC"
    )


def subtitle(d: ChartData) -> str:
    n_sq = sum(e.regime is Regime.SHORT_SQUEEZE for e in d.events)
    n_cov = len(d.events) - n_sq
    return (
        f"candles and regimes: {d.price_venue} · bands {d.bands} · "
        f"{n_sq} squeeze and {n_cov} covering event(s)"
    )


def label_slots(d: ChartData, half_frac: float, levels: int) -> list[tuple[int, int]]:
    """Where each event's label goes: (centre in ms, level). Labels are kept inside the
    range and a label takes the first level where it clears its left neighbour (the
    least crowded one when none does); `half_frac` is half a label's width over the range."""
    lo, hi = d.start_ms, d.end_ms
    half = half_frac * (hi - lo)
    free_at = [-np.inf] * levels
    out: list[tuple[int, int]] = []
    for ev in d.events:
        centre = min(max(float(ev.signal_ms), lo + half), hi - half)
        level = next(
            (k for k, at in enumerate(free_at) if centre - half >= at),
            int(np.argmin(free_at)),
        )
        free_at[level] = centre + half
        out.append((int(centre), level))
    return out
