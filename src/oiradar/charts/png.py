"""The PNG chart: four stacked panels on one UTC time axis, drawn with matplotlib (Agg).

A `Figure` is built directly (no pyplot), so nothing depends on a display or on global
state. Layout choices, all for reading at a glance: legends sit outside the panels on the
right so they never cover data; event labels live in a band above the candles; the
liquidation panel clips outliers at a robust limit and prints the clipped values, so one
crash bar cannot flatten every other bar.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from oiradar.charts.png_panels import (
    funding,
    liquidations,
    mpl_day,
    mpl_days,
    open_interest,
    scaled_ticks,
)
from oiradar.charts.style import (
    COVERING,
    DOWN,
    EVENT,
    LABEL_LEVELS,
    RIBBON,
    SHADE,
    SQUEEZE,
    UP,
    label_slots,
    regime_label,
    subtitle,
    title,
)
from oiradar.services.chart import ChartData
from oiradar.signals.regimes import Regime

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 140
SIZE_IN = (14.0, 9.0)
LABEL_PT = 7.8


def render_png(d: ChartData, path: Path, dpi: int = DPI) -> None:
    """Draw `d` and save it as PNG at `path`."""
    fig = figure(d)
    fig.savefig(path, format="png", dpi=dpi, facecolor="white")


def figure(d: ChartData) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")
    # A panel with nothing to show shrinks to a one-line message.
    ratios = [3.4, 1.7, 1.0 if d.has_funding else 0.5, 1.7 if d.has_liquidations else 0.5]
    axes = fig.subplots(4, 1, sharex=True, gridspec_kw={"height_ratios": ratios})
    price, oi_ax, funding_ax, liq_ax = (axes[i] for i in range(4))
    fig.suptitle(title(d), fontsize=12.5, fontweight="bold", x=0.01, ha="left")
    price.set_title(subtitle(d), fontsize=9, color="#555555", loc="left", pad=4)
    for ax in axes:
        _shade(ax, d)
        ax.grid(True, axis="y", color="#e0e0e0", linewidth=0.6)
        ax.grid(True, axis="x", which="major", color="#cfcfcf", linewidth=0.8)
        ax.tick_params(labelsize=8.5)
        for spine in ("top", "right"):
            ax.spines[spine].set_visible(False)
    _candles(price, d)
    open_interest(oi_ax, d)
    funding(funding_ax, d)
    liquidations(liq_ax, d)
    _time_axis(liq_ax, d)
    for ax in axes:
        ax.set_xlim(mpl_day(d.start_ms), mpl_day(d.end_ms))
        ax.yaxis.set_label_coords(-0.06, 0.5)  # align the four y labels
    return fig


def _shade(ax: Axes, d: ChartData) -> None:
    for s, e, regime in d.regime_runs():
        if regime in SHADE:
            colour, alpha = SHADE[regime]
            ax.axvspan(mpl_day(s), mpl_day(e), color=colour, alpha=alpha, linewidth=0, zorder=0)
    for ev in d.events:
        ax.axvline(mpl_day(ev.signal_ms), color=EVENT, linewidth=0.8, linestyle=":", zorder=1)


def _candles(ax: Axes, d: ChartData) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    w = d.bar_ms / 86_400_000.0
    x = mpl_days(d.ts) + w / 2
    ok = np.isfinite(d.open) & np.isfinite(d.close) & np.isfinite(d.high) & np.isfinite(d.low)
    lo, hi = float(np.nanmin(d.low[ok])), float(np.nanmax(d.high[ok]))
    span = max(hi - lo, 1e-12)
    up = d.close >= d.open
    colours = np.where(up, UP, DOWN)
    body_lo = np.minimum(d.open, d.close)
    body = np.maximum(np.abs(d.close - d.open), span * 0.002)  # a doji stays visible
    ax.vlines(x[ok], d.low[ok], d.high[ok], colors=list(colours[ok]), linewidth=0.8, zorder=2)
    ax.bar(x[ok], body[ok], bottom=body_lo[ok], width=w * 0.72, color=colours[ok], zorder=3)
    # Headroom above for the event labels, a little below for the regime ribbon.
    ax.set_ylim(lo - span * 0.10, hi + span * (0.45 if d.events else 0.08))
    ax.set_ylabel(f"price (USD)\n{d.price_venue}", fontsize=9.5)
    ax.yaxis.set_major_formatter(scaled_ticks("", units=False))
    ribbon = _ribbon(ax, d)
    _events(ax, d)
    handles: list[Patch | Line2D] = [
        Patch(color=COVERING, alpha=0.35, label="short covering"),
        Patch(color=SQUEEZE, alpha=0.4, label="short squeeze"),
        Line2D(
            [],
            [],
            color=EVENT,
            marker="v",
            markerfacecolor="#616161",
            markeredgecolor="#616161",
            linestyle=":",
            linewidth=0.8,
            label="event signal\n(close of its first bar)",
        ),
    ]
    others = [r for r in ribbon if r not in SHADE]
    handles += [Patch(color=RIBBON[r], label=regime_label(r)) for r in others]
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.005, 1.0),
        fontsize=8,
        frameon=False,
        title="shaded: covering, squeeze\nribbon: every regime" if others else None,
        title_fontsize=7.5,
        alignment="left",
    )


def _ribbon(ax: Axes, d: ChartData) -> list[Regime]:
    """A thin strip at the panel's bottom coloured by each bar's regime; returns those seen."""
    seen: set[Regime] = set()
    for s, e, regime in d.regime_runs():
        colour = RIBBON.get(regime)
        if colour is not None:
            ax.axvspan(mpl_day(s), mpl_day(e), ymin=0.0, ymax=0.035, color=colour, linewidth=0)
            seen.add(regime)
    return [r for r in RIBBON if r in seen]


def _events(ax: Axes, d: ChartData) -> None:
    """A marker above each event's bar; its label in the band above the candles
    (`label_slots`), the connector pointing at the marker."""
    if not d.events:
        return
    axes_in = SIZE_IN[0] * 0.78  # the panels' width, inches (legends take the rest)
    chars = max(len(line) for ev in d.events for line in ev.label.splitlines())
    half_frac = (chars * LABEL_PT * 0.62 / 72 + 0.12) / axes_in / 2
    lo, hi = ax.get_ylim()
    for ev, (centre, level) in zip(
        d.events, label_slots(d, half_frac, len(LABEL_LEVELS)), strict=True
    ):
        x = mpl_day(ev.signal_ms)
        colour = SQUEEZE if ev.regime is Regime.SHORT_SQUEEZE else COVERING
        y = ev.y + (hi - lo) * 0.015
        ax.plot([x], [y], marker="v", markersize=7, color=colour, zorder=5, linestyle="none")
        ax.annotate(
            ev.label,
            xy=(x, y),
            xycoords="data",
            xytext=(mpl_day(centre), LABEL_LEVELS[level]),
            textcoords=ax.get_xaxis_transform(),
            ha="center",
            va="top",
            fontsize=LABEL_PT,
            fontweight="bold",
            color=colour,
            bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": colour, "lw": 0.8},
            arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.7, "shrinkB": 3},
            zorder=6,
        )


def _time_axis(ax: Axes, d: ChartData) -> None:
    """Day boundaries as major ticks ('Thu 08 Aug'), hours as minor ticks when they fit."""
    from matplotlib import dates as mdates

    days = (d.end_ms - d.start_ms) / 86_400_000
    label = "time (UTC)"
    # matplotlib.dates ships no annotations for its constructors: hence the ignores.
    hhmm = mdates.DateFormatter("%H:%M", tz=UTC)  # type: ignore[no-untyped-call]
    day = mdates.DateFormatter("%a %d %b", tz=UTC)  # type: ignore[no-untyped-call]
    if days <= 1.5:
        hours = next(h for h in (1, 2, 3, 4, 6) if days * 24 / h <= 14)
        ax.xaxis.set_major_locator(mdates.HourLocator(interval=hours, tz=UTC))  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(hhmm)
        first, last = (
            datetime.fromtimestamp(t / 1000, tz=UTC).strftime("%a %d %b %Y")
            for t in (d.start_ms, d.end_ms - 1)
        )
        label = f"time (UTC), {first}" + (f" to {last}" if last != first else "")
    elif days <= 16:
        ax.xaxis.set_major_locator(mdates.DayLocator(tz=UTC))  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(day)
        hours_at = [6, 12, 18] if days <= 5 else [12]
        ax.xaxis.set_minor_locator(mdates.HourLocator(byhour=hours_at, tz=UTC))  # type: ignore[no-untyped-call]
        if days <= 5:
            ax.xaxis.set_minor_formatter(hhmm)
    else:
        loc = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(loc)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc, tz=UTC))  # type: ignore[no-untyped-call]
    ax.tick_params(axis="x", which="minor", labelsize=7.5, labelcolor="#616161")
    ax.tick_params(axis="x", which="major", labelsize=9, pad=12 if 1.5 < days <= 5 else 4)
    ax.set_xlabel(label, fontsize=9.5)
