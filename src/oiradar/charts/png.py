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
from numpy.typing import NDArray

from oiradar.services.chart import ChartData
from oiradar.signals.regimes import Regime

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.ticker import Formatter

FloatArray = NDArray[np.float64]

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
DPI = 140
SIZE_IN = (14.0, 9.0)
LABEL_LEVELS = (0.97, 0.845, 0.72)  # axes-fraction heights of event labels, staggered
LABEL_PT = 7.8


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


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _x(ms: NDArray[np.int64]) -> FloatArray:
    """ms UTC -> matplotlib date numbers (days since the epoch)."""
    return np.asarray(ms, dtype=np.float64) / 86_400_000.0


def _xs(ms: int) -> float:
    return ms / 86_400_000.0


def title(d: ChartData) -> str:
    venues = d.venues[0] if len(d.venues) == 1 else f"{', '.join(d.venues)}"
    return (
        f"{d.symbol} perpetual · {venues} · {d.interval} bars · read over {d.window} · "
        f"{_utc(d.start_ms)} → {_utc(d.end_ms)} UTC"
    )


def subtitle(d: ChartData) -> str:
    n_sq = sum(e.regime is Regime.SHORT_SQUEEZE for e in d.events)
    n_cov = len(d.events) - n_sq
    return (
        f"candles and regimes: {d.price_venue} · bands {d.bands} · "
        f"{n_sq} squeeze and {n_cov} covering event(s)"
    )


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
    price, oi, funding, liq = (axes[i] for i in range(4))
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
    _open_interest(oi, d)
    _funding(funding, d)
    _liquidations(liq, d)
    _time_axis(liq, d)
    for ax in axes:
        ax.set_xlim(_xs(d.start_ms), _xs(d.end_ms))
        ax.yaxis.set_label_coords(-0.06, 0.5)  # align the four y labels
    return fig


def _shade(ax: Axes, d: ChartData) -> None:
    for s, e, regime in d.regime_runs():
        if regime in SHADE:
            colour, alpha = SHADE[regime]
            ax.axvspan(_xs(s), _xs(e), color=colour, alpha=alpha, linewidth=0, zorder=0)
    for ev in d.events:
        ax.axvline(_xs(ev.signal_ms), color=EVENT, linewidth=0.8, linestyle=":", zorder=1)


def _candles(ax: Axes, d: ChartData) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    w = d.bar_ms / 86_400_000.0
    x = _x(d.ts) + w / 2
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
    ax.yaxis.set_major_formatter(_scaled_ticks("", units=False))
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
    handles += [Patch(color=RIBBON[r], label=_regime_label(r)) for r in others]
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


def _regime_label(r: Regime) -> str:
    return r.name.lower().replace("_", " ")


def _ribbon(ax: Axes, d: ChartData) -> list[Regime]:
    """A thin strip at the panel's bottom coloured by each bar's regime; returns those seen."""
    seen: set[Regime] = set()
    for s, e, regime in d.regime_runs():
        colour = RIBBON.get(regime)
        if colour is not None:
            ax.axvspan(_xs(s), _xs(e), ymin=0.0, ymax=0.035, color=colour, linewidth=0)
            seen.add(regime)
    return [r for r in RIBBON if r in seen]


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
        x = _xs(ev.signal_ms)
        colour = SQUEEZE if ev.regime is Regime.SHORT_SQUEEZE else COVERING
        y = ev.y + (hi - lo) * 0.015
        ax.plot([x], [y], marker="v", markersize=7, color=colour, zorder=5, linestyle="none")
        ax.annotate(
            ev.label,
            xy=(x, y),
            xycoords="data",
            xytext=(_xs(centre), LABEL_LEVELS[level]),
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


def _last(values: FloatArray) -> float | None:
    ok = values[np.isfinite(values)]
    return float(ok[-1]) if len(ok) else None


def _open_interest(ax: Axes, d: ChartData) -> None:
    """One venue: OI in base units (what the engine classifies). Several: the cross-venue
    sum in USD, bold, on the left axis with its own tight scale, and each venue in USD on
    the right axis; a shared axis would flatten every line between $1B and $9B."""
    x = _x(d.ts) + d.bar_ms / 86_400_000.0  # OI is the snapshot at each bar's close
    if len(d.oi) == 1:
        line = d.oi[0]
        last = _last(line.oi_usd)
        usd = f" (≈ {money(last)} at end)" if last is not None else ""
        ax.plot(x, line.oi_base, color=VENUE_COLOURS[0], linewidth=1.6, label=f"{line.venue}{usd}")
        ax.set_ylabel(f"open interest\n({d.base})", fontsize=9.5)
        ax.yaxis.set_major_formatter(_scaled_ticks(""))
        ax.margins(y=0.12)
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
        return
    right = ax.twinx()
    total = _last(d.oi_total_usd)
    for k, line in enumerate(d.oi):
        last = _last(line.oi_usd)
        share = f" ({last / total:.0%})" if last is not None and total else ""
        right.plot(
            x,
            line.oi_usd,
            color=VENUE_COLOURS[k % len(VENUE_COLOURS)],
            linewidth=1.0,
            label=f"{line.venue} {money(last) if last is not None else 'n/a'}{share}",
        )
    ax.plot(
        x,
        d.oi_total_usd,
        color=AGGREGATE,
        linewidth=2.4,
        label=f"all venues (sum) {money(total) if total is not None else ''}",
    )
    ax.set_zorder(right.get_zorder() + 1)  # the sum over the venue lines
    ax.patch.set_visible(False)
    ax.set_ylabel("open interest\nall venues (USD)", fontsize=9.5)
    ax.yaxis.set_major_formatter(_scaled_ticks("$"))
    right.set_ylabel("per venue (USD)", fontsize=8.5, color="#616161")
    right.yaxis.set_major_formatter(_scaled_ticks("$"))
    right.tick_params(labelsize=8, labelcolor="#616161")
    right.spines["top"].set_visible(False)
    for a in (ax, right):
        a.margins(y=0.12)
    handles, labels = ax.get_legend_handles_labels()
    more, more_labels = right.get_legend_handles_labels()
    ax.legend(
        handles + more,
        labels + more_labels,
        loc="upper left",
        bbox_to_anchor=(1.07, 1.0),
        fontsize=8,
        frameon=False,
        title="last value (share)",
        title_fontsize=7.5,
        alignment="left",
    )


def _funding(ax: Axes, d: ChartData) -> None:
    ax.axhline(0.0, color="#757575", linewidth=0.8)
    # A thin no-data panel has no room for a two-line label; the message says the rest.
    ax.set_ylabel("funding\n(% per 8 h)" if d.has_funding else "funding", fontsize=9.5)
    if not d.has_funding:
        _no_data(ax, f"no funding data stored for {', '.join(d.venues)} in this range")
        return
    paying = [(k, line) for k, line in enumerate(d.oi) if np.isfinite(line.funding_8h_pct).any()]
    w = d.bar_ms / 86_400_000.0 * 0.8 / len(paying)
    for slot, (k, line) in enumerate(paying):
        x = _x(d.ts) + d.bar_ms / 86_400_000.0 * 0.1 + w * (slot + 0.5)
        f = line.funding_8h_pct
        ok = np.isfinite(f)
        ax.bar(
            x[ok],
            f[ok],
            width=w,
            color=VENUE_COLOURS[k % len(VENUE_COLOURS)],
            label=line.venue,
        )
    # As many decimals as the tick step needs (the same on every tick): a fixed three
    # repeated labels on a calm market's tiny rates (+0.001, +0.001, +0.002, ...).
    ax.yaxis.set_major_formatter(_scaled_ticks("", units=False, signed=True))
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)


def _liquidations(ax: Axes, d: ChartData) -> None:
    from matplotlib.patches import Patch

    ax.axhline(0.0, color="#757575", linewidth=0.8)
    ax.set_ylabel(
        "liquidations\n(USD per bar)" if d.has_liquidations else "liquidations", fontsize=9.5
    )
    if not d.has_liquidations:
        _no_data(ax, f"no liquidation data stored for {', '.join(d.venues)} in this range")
        return
    w = d.bar_ms / 86_400_000.0
    x = _x(d.ts) + w / 2
    shorts, longs = d.liq_short_usd, d.liq_long_usd
    limit, clipping = d.liq_scale()
    for values, sign, colour in ((shorts, 1.0, UP), (longs, -1.0, DOWN)):
        ok = np.isfinite(values)
        ax.bar(x[ok], sign * np.minimum(values[ok], limit), width=w * 0.8, color=colour)
        if clipping:
            _label_clipped(ax, x, values, limit, sign, colour, w)
    ax.set_ylim(-limit * 1.32, limit * 1.32)
    ax.yaxis.set_major_formatter(_scaled_ticks("$", absolute=True))
    unknown = d.unknown_liq_runs()
    for s, e in unknown:
        ax.axvspan(_xs(s), _xs(e), facecolor="#f5f5f5", edgecolor="#bdbdbd", hatch="///", lw=0)
    handles = [
        Patch(color=UP, label="shorts liquidated (up)"),
        Patch(color=DOWN, label="longs liquidated (down)"),
    ]
    if unknown:
        handles.append(
            Patch(facecolor="#f5f5f5", edgecolor="#bdbdbd", hatch="///", label="no data")
        )
    note = ", ".join(d.liq_venues)
    if clipping:
        note += f"\nbars over {money(limit)} clipped,\nvalue printed on them"
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.005, 1.0),
        fontsize=8,
        frameon=False,
        title=note,
        title_fontsize=7.5,
        alignment="left",
    )


def _label_clipped(
    ax: Axes, x: FloatArray, values: FloatArray, limit: float, sign: float, colour: str, w: float
) -> None:
    """Mark clipped bars with a break and print their value; of clipped neighbours only the
    largest gets a label, so labels never collide."""
    idx = np.flatnonzero(np.isfinite(values) & (values > limit))
    taken: list[float] = []
    min_gap = (x[-1] - x[0] + w) * 0.04
    for i in idx[np.argsort(-values[idx])]:
        ax.plot(
            [x[i] - w * 0.45, x[i] + w * 0.45],
            [sign * limit * 0.90, sign * limit * 0.94],
            color="white",
            linewidth=1.6,
            zorder=4,
        )
        if any(abs(x[i] - t) < min_gap for t in taken):
            continue
        taken.append(float(x[i]))
        ax.annotate(
            money(float(values[i])),
            xy=(x[i], sign * limit),
            xytext=(0, 2 * sign),
            textcoords="offset points",
            ha="center",
            va="bottom" if sign > 0 else "top",
            fontsize=7.5,
            fontweight="bold",
            color=colour,
            bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85},
            zorder=6,
        )


def _no_data(ax: Axes, text: str) -> None:
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=8.5,
        color="#757575",
        bbox={"fc": "white", "ec": "none", "alpha": 0.8},
    )
    ax.set_yticks([])


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


_UNITS = ((1e9, "B"), (1e6, "M"), (1e3, "k"), (1.0, ""))


def _scaled_ticks(
    prefix: str, absolute: bool = False, units: bool = True, signed: bool = False
) -> Formatter:
    """Tick labels like $8.25B / 80.5k (or 0.1015 / 61,000 without `units`; +0.0125 with
    `signed`): one unit for the whole axis (from its largest tick) and just enough decimals
    to tell neighbouring ticks apart, the same number on every tick."""
    from matplotlib.ticker import Formatter

    class Scaled(Formatter):
        ref = 1.0
        digits = 0

        def format_ticks(self, values: list[float]) -> list[str]:
            ticks = sorted(v for v in values if np.isfinite(v))
            if ticks:
                self.ref = max(abs(ticks[0]), abs(ticks[-1]))
                steps = np.diff(ticks) / self._div()[0]
                step = float(np.min(steps)) if len(steps) else 1.0
                self.digits = next(
                    (k for k in range(5) if abs(step * 10**k - round(step * 10**k)) < 1e-6), 4
                )
            return [self(v) for v in values]

        def _div(self) -> tuple[float, str]:
            if not units:
                return 1.0, ""
            return next(((dv, sx) for dv, sx in _UNITS if self.ref >= dv), (1.0, ""))

        def __call__(self, x: float, pos: int | None = None) -> str:
            div, suffix = self._div()
            v = abs(x) if absolute else x
            if abs(v) < 1e-12 * max(self.ref, 1.0):
                return f"{prefix}0"
            sign = "-" if v < 0 else "+" if signed else ""
            return f"{sign}{prefix}{abs(v) / div:,.{self.digits}f}{suffix}"

    return Scaled()
