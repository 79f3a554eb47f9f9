"""The HTML chart's lower panels (open interest, funding, liquidations) and the coordinate
and hover-text helpers the whole figure uses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from oiradar.charts.style import AGGREGATE, DOWN, UP, VENUE_COLOURS, compact, money
from oiradar.services.chart import ChartData


def dt(ms: NDArray[np.int64] | int) -> NDArray[np.datetime64]:
    """ms UTC -> naive datetime64: plotly draws naive times as they are (UTC here)."""
    return np.asarray(ms, dtype=np.int64).astype("datetime64[ms]")


def coord(ms: int) -> str:
    """A shape or annotation coordinate: plotly reads this string as a UTC date (numpy
    scalars would be serialized as plain numbers)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def texts(values: NDArray[np.float64], fmt: Any) -> list[str]:
    return ["no data" if not np.isfinite(v) else str(fmt(float(v))) for v in values]


def nice(x: float) -> float:
    """The round number (1, 2, 2.5 or 5 x 10^k) nearest below `x`, for axis ticks."""
    if x <= 0 or not np.isfinite(x):
        return 1.0
    exp = 10.0 ** np.floor(np.log10(x))
    return float(max(m for m in (1.0, 2.0, 2.5, 5.0) if m * exp <= x) * exp)


def open_interest(fig: Any, d: ChartData) -> None:
    import plotly.graph_objects as go  # type: ignore[import-untyped]

    x = dt(d.ts + d.bar_ms)  # OI is the snapshot at each bar's close
    if len(d.oi) == 1:
        line = d.oi[0]
        usd = texts(line.oi_usd, money)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=line.oi_base,
                mode="lines",
                line={"color": VENUE_COLOURS[0], "width": 2},
                name=f"{line.venue} OI ({d.base})",
                customdata=np.array([texts(line.oi_base, compact), usd]).T,
                hovertemplate=f"OI %{{customdata[0]}} {d.base} (%{{customdata[1]}})<extra></extra>",
                legend="legend2",
            ),
            row=2,
            col=1,
        )
        fig.update_yaxes(title_text=f"open interest<br>({d.base})", row=2, col=1)
        return
    for k, line in enumerate(d.oi):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=line.oi_usd,
                mode="lines",
                line={"color": VENUE_COLOURS[k % len(VENUE_COLOURS)], "width": 1.2},
                name=f"{line.venue} (right axis)",
                customdata=np.array([texts(line.oi_usd, money), texts(line.oi_base, compact)]).T,
                hovertemplate=f"{line.venue} %{{customdata[0]}} (%{{customdata[1]}} {d.base})"
                "<extra></extra>",
                legend="legend2",
            ),
            row=2,
            col=1,
            secondary_y=True,
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=d.oi_total_usd,
            mode="lines",
            line={"color": AGGREGATE, "width": 3},
            name="all venues (sum)",
            customdata=texts(d.oi_total_usd, money),
            hovertemplate="all venues %{customdata}<extra></extra>",
            legend="legend2",
            legendrank=1,
        ),
        row=2,
        col=1,
        secondary_y=False,
    )
    fig.update_yaxes(
        title_text="open interest<br>all venues (USD)", tickprefix="$", row=2, col=1,
        secondary_y=False,
    )  # fmt: skip
    fig.update_yaxes(
        title_text="per venue (USD)", tickprefix="$", showgrid=False, row=2, col=1,
        secondary_y=True,
    )  # fmt: skip


def funding(fig: Any, d: ChartData) -> None:
    import plotly.graph_objects as go

    # A thin no-data panel has no room for a title: its message names it.
    fig.update_yaxes(title_text="funding<br>(% per 8 h)" if d.has_funding else "", row=3, col=1)
    if not d.has_funding:
        _empty_panel(fig, 3, f"no funding data stored for {', '.join(d.venues)} in this range")
        return
    for k, line in enumerate(d.oi):
        if not np.isfinite(line.funding_8h_pct).any():
            continue
        fig.add_trace(
            go.Bar(
                x=dt(d.ts),
                xperiod=d.bar_ms,
                xperiodalignment="middle",
                y=line.funding_8h_pct,
                marker_color=VENUE_COLOURS[k % len(VENUE_COLOURS)],
                name=f"{line.venue} funding",
                hovertemplate=f"{line.venue} %{{y:+.4f}} % per 8 h<extra></extra>",
                legend="legend3",
            ),
            row=3,
            col=1,
        )
    fig.update_yaxes(ticksuffix=" %", zeroline=True, zerolinecolor="#757575", row=3, col=1)


def _empty_panel(fig: Any, row: int, text: str) -> None:
    """A panel with no data says so in its middle instead of drawing zeros."""
    fig.add_annotation(
        text=text,
        xref="x domain",
        yref="y domain",
        row=row,
        col=1,
        x=0.5,
        y=0.5,
        showarrow=False,
        font={"color": "#757575"},
    )
    fig.update_yaxes(showticklabels=False, showgrid=False, row=row, col=1)


def liquidations(fig: Any, d: ChartData) -> str:
    """Draw the liquidation panel; returns its legend title (source, clipping)."""
    import plotly.graph_objects as go

    fig.update_yaxes(
        title_text="liquidations<br>(USD per bar)" if d.has_liquidations else "",
        row=4,
        col=1,
    )
    if not d.has_liquidations:
        _empty_panel(fig, 4, f"no liquidation data stored for {', '.join(d.venues)} in this range")
        return ""
    limit, clipped = d.liq_scale()
    src = ", ".join(d.liq_venues)
    for values, sign, colour, name in (
        (d.liq_short_usd, 1.0, UP, "shorts liquidated (up)"),
        (d.liq_long_usd, -1.0, DOWN, "longs liquidated (down)"),
    ):
        fig.add_trace(
            go.Bar(
                x=dt(d.ts),
                xperiod=d.bar_ms,
                xperiodalignment="middle",
                y=sign * values,
                marker_color=colour,
                name=name,
                customdata=texts(values, money),
                hovertemplate=f"{name.split(' (')[0]}: %{{customdata}}<extra></extra>",
                legend="legend4",
                offsetgroup="liquidations",
            ),
            row=4,
            col=1,
        )
    for s, e in d.unknown_liq_runs():
        fig.add_vrect(
            x0=coord(s),
            x1=coord(e),
            fillcolor="#bdbdbd",
            opacity=0.35,
            line_width=0,
            layer="below",
            row=4,
            col=1,
            exclude_empty_subplots=False,
        )
    step = nice(limit / 2)
    k = int(limit * 1.3 // step)
    ticks = [i * step for i in range(-k, k + 1)]
    fig.update_yaxes(
        range=[-limit * 1.3, limit * 1.3],
        tickvals=ticks,
        ticktext=[money(abs(t)) for t in ticks],
        zeroline=True,
        zerolinecolor="#757575",
        row=4,
        col=1,
    )
    return f"source: {src}" + (
        f"<br>bars over {money(limit)} clipped:<br>hover or zoom out for the value"
        if clipped
        else ""
    )
