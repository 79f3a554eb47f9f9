"""The PNG's lower panels: open interest (per venue and summed), funding and liquidations,
and the tick labels they share."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from oiradar.charts.style import AGGREGATE, DOWN, UP, VENUE_COLOURS, money
from oiradar.services.chart import ChartData

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.ticker import Formatter

FloatArray = NDArray[np.float64]


def mpl_days(ms: NDArray[np.int64]) -> FloatArray:
    """ms UTC -> matplotlib date numbers (days since the epoch)."""
    return np.asarray(ms, dtype=np.float64) / 86_400_000.0


def mpl_day(ms: int) -> float:
    return ms / 86_400_000.0


def _last(values: FloatArray) -> float | None:
    ok = values[np.isfinite(values)]
    return float(ok[-1]) if len(ok) else None


def open_interest(ax: Axes, d: ChartData) -> None:
    """One venue: OI in base units (what the engine classifies). Several: the cross-venue
    sum in USD, bold, on the left axis with its own tight scale, and each venue in USD on
    the right axis; a shared axis would flatten every line between $1B and $9B."""
    x = mpl_days(d.ts) + d.bar_ms / 86_400_000.0  # OI is the snapshot at each bar's close
    if len(d.oi) == 1:
        line = d.oi[0]
        last = _last(line.oi_usd)
        usd = f" (≈ {money(last)} at end)" if last is not None else ""
        ax.plot(x, line.oi_base, color=VENUE_COLOURS[0], linewidth=1.6, label=f"{line.venue}{usd}")
        ax.set_ylabel(f"open interest\n({d.base})", fontsize=9.5)
        ax.yaxis.set_major_formatter(scaled_ticks(""))
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
    ax.yaxis.set_major_formatter(scaled_ticks("$"))
    right.set_ylabel("per venue (USD)", fontsize=8.5, color="#616161")
    right.yaxis.set_major_formatter(scaled_ticks("$"))
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


def funding(ax: Axes, d: ChartData) -> None:
    ax.axhline(0.0, color="#757575", linewidth=0.8)
    # A thin no-data panel has no room for a two-line label; the message says the rest.
    ax.set_ylabel("funding\n(% per 8 h)" if d.has_funding else "funding", fontsize=9.5)
    if not d.has_funding:
        no_data(ax, f"no funding data stored for {', '.join(d.venues)} in this range")
        return
    paying = [(k, line) for k, line in enumerate(d.oi) if np.isfinite(line.funding_8h_pct).any()]
    w = d.bar_ms / 86_400_000.0 * 0.8 / len(paying)
    for slot, (k, line) in enumerate(paying):
        x = mpl_days(d.ts) + d.bar_ms / 86_400_000.0 * 0.1 + w * (slot + 0.5)
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
    ax.yaxis.set_major_formatter(scaled_ticks("", units=False, signed=True))
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)


def liquidations(ax: Axes, d: ChartData) -> None:
    from matplotlib.patches import Patch

    ax.axhline(0.0, color="#757575", linewidth=0.8)
    ax.set_ylabel(
        "liquidations\n(USD per bar)" if d.has_liquidations else "liquidations", fontsize=9.5
    )
    if not d.has_liquidations:
        no_data(ax, f"no liquidation data stored for {', '.join(d.venues)} in this range")
        return
    w = d.bar_ms / 86_400_000.0
    x = mpl_days(d.ts) + w / 2
    shorts, longs = d.liq_short_usd, d.liq_long_usd
    limit, clipping = d.liq_scale()
    for values, sign, colour in ((shorts, 1.0, UP), (longs, -1.0, DOWN)):
        ok = np.isfinite(values)
        ax.bar(x[ok], sign * np.minimum(values[ok], limit), width=w * 0.8, color=colour)
        if clipping:
            _label_clipped(ax, x, values, limit, sign, colour, w)
    ax.set_ylim(-limit * 1.32, limit * 1.32)
    ax.yaxis.set_major_formatter(scaled_ticks("$", absolute=True))
    unknown = d.unknown_liq_runs()
    for s, e in unknown:
        ax.axvspan(
            mpl_day(s), mpl_day(e), facecolor="#f5f5f5", edgecolor="#bdbdbd", hatch="///", lw=0
        )
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


def no_data(ax: Axes, text: str) -> None:
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


_UNITS = ((1e9, "B"), (1e6, "M"), (1e3, "k"), (1.0, ""))


def scaled_ticks(
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
