"""The interactive chart: the PNG's four panels as plotly subplots in one HTML file.

The file inlines plotly.js (`include_plotlyjs=True`), so it opens offline and can be mailed
or archived as is; nothing is fetched from a CDN. Hover shows every value with its unit
(money pre-formatted in Python: plotly's SI format would print $4.6G for $4.6B).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from oiradar.charts.html_panels import coord, dt, funding, liquidations, open_interest
from oiradar.charts.style import (
    COVERING,
    DOWN,
    LABEL_LEVELS,
    RIBBON,
    SHADE,
    SQUEEZE,
    UP,
    label_slots,
    subtitle,
    title,
    utc,
)
from oiradar.services.chart import ChartData
from oiradar.signals.regimes import Regime

LABEL_HALF_FRAC = 0.055  # half an event label's width over the plot's width


def _rows(d: ChartData) -> list[float]:
    """Panel heights; a panel with nothing to show shrinks to its one-line message."""
    rows = [0.46, 0.22, 0.1 if d.has_funding else 0.04, 0.22 if d.has_liquidations else 0.05]
    return [r / sum(rows) for r in rows]


def render_html(d: ChartData, path: Path) -> None:
    """Draw `d` and save it as one self-contained HTML file at `path`."""
    fig = build(d)
    fig.write_html(
        path,
        include_plotlyjs=True,
        include_mathjax=False,
        full_html=True,
        config={"displaylogo": False, "scrollZoom": True, "responsive": True},
    )


def build(d: ChartData) -> Any:
    """The plotly figure (returned for tests and embedding)."""
    from plotly.subplots import make_subplots  # type: ignore[import-untyped]

    fig = make_subplots(
        rows=4,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.025,
        row_heights=_rows(d),
        # Several venues: the sum on the left axis, each venue on the right (as the PNG).
        specs=[[{}], [{"secondary_y": len(d.oi) > 1}], [{}], [{}]],
    )
    _shading(fig, d)
    _candles(fig, d)
    _events(fig, d)
    open_interest(fig, d)
    funding(fig, d)
    liq_note = liquidations(fig, d)
    fig.update_layout(
        title={
            "text": f"<b>{title(d)}</b><br><span style='font-size:12px;color:#555'>"
            f"{subtitle(d)}</span>",
            "x": 0.01,
        },
        template="plotly_white",
        height=950,
        margin={"l": 80, "r": 230, "t": 90, "b": 40},
        hovermode="x unified",
        hoversubplots="axis",
        bargap=0.15,
        barmode="group",  # funding venues side by side; liquidations share one offsetgroup
        font={"size": 12},
    )
    fig.update_xaxes(
        type="date",  # also for a panel without traces (no funding, no liquidations)
        rangeslider_visible=False,
        showspikes=True,
        spikemode="across",
        range=[coord(d.start_ms), coord(d.end_ms)],
    )
    fig.update_xaxes(
        row=4,
        col=1,
        title_text="time (UTC)",
        rangeslider={
            "visible": True,
            "thickness": 0.04,
            "range": [coord(d.start_ms), coord(d.end_ms)],
        },
    )
    fig.update_xaxes(
        row=1,
        col=1,
        rangeselector={
            "x": 1.0,
            "xanchor": "right",
            "y": 1.01,
            "yanchor": "bottom",
            "buttons": [
                {"count": 6, "label": "6h", "step": "hour", "stepmode": "backward"},
                {"count": 1, "label": "1d", "step": "day", "stepmode": "backward"},
                {"count": 3, "label": "3d", "step": "day", "stepmode": "backward"},
                {"step": "all", "label": "all"},
            ],
        },
    )
    _legends(fig, {"legend4": liq_note})
    return fig


def _legends(fig: Any, titles: dict[str, str]) -> None:
    """One legend per panel, right of it (plotly's single legend would mix the panels)."""
    for row, name in enumerate(("legend", "legend2", "legend3", "legend4"), start=1):
        top = fig.get_subplot(row, 1).yaxis.domain[1]
        legend: dict[str, Any] = {
            "x": 1.01,
            "xanchor": "left",
            "y": top,
            "yanchor": "top",
            "font": {"size": 11},
            "bgcolor": "rgba(0,0,0,0)",
        }
        if titles.get(name):
            legend["title"] = {"text": titles[name], "font": {"size": 10}}
        fig.update_layout({name: legend})


def _shading(fig: Any, d: ChartData) -> None:
    """Covering and squeeze shaded through every panel; every regime in a ribbon at the
    bottom of the price panel (its name is in the candle hover too)."""
    named: set[Regime] = set()
    for s, e, regime in d.regime_runs():
        x0, x1 = coord(s), coord(e)
        if regime in SHADE:
            colour, alpha = SHADE[regime]
            fig.add_vrect(
                x0=x0,
                x1=x1,
                fillcolor=colour,
                opacity=alpha + 0.05,
                line_width=0,
                layer="below",
                row="all",
                col=1,
                exclude_empty_subplots=False,
            )
        colour_r = RIBBON.get(regime)
        if colour_r is not None:
            # The ribbon's shapes carry the legend: one entry per regime present.
            first = regime not in named
            named.add(regime)
            fig.add_vrect(
                x0=x0,
                x1=x1,
                y0=0.0,
                y1=0.035,
                fillcolor=colour_r,
                opacity=0.9,
                line_width=0,
                layer="above",
                row=1,
                col=1,
                exclude_empty_subplots=False,
                showlegend=first,
                name=regime.name.lower().replace("_", " ")
                + (" (shaded)" if regime in SHADE else ""),
                legend="legend",
                legendrank=1100 + int(regime) - (100 if regime in SHADE else 0),
            )


def _candles(fig: Any, d: ChartData) -> None:
    import plotly.graph_objects as go  # type: ignore[import-untyped]

    regimes = [_regime_name(int(r)) for r in d.regime]
    hover = [
        f"{utc(int(t))} UTC ({d.interval} bar)<br>open {o:,.6g}  high {h:,.6g}<br>"
        f"low {lo:,.6g}  close {c:,.6g}<br>regime: {r}"
        for t, o, h, lo, c, r in zip(d.ts, d.open, d.high, d.low, d.close, regimes, strict=True)
    ]
    fig.add_trace(
        go.Candlestick(
            x=dt(d.ts),
            xperiod=d.bar_ms,
            xperiodalignment="middle",
            open=d.open,
            high=d.high,
            low=d.low,
            close=d.close,
            increasing={"line": {"color": UP}, "fillcolor": UP},
            decreasing={"line": {"color": DOWN}, "fillcolor": DOWN},
            name=f"{d.symbol} {d.price_venue}",
            hovertext=hover,
            hoverinfo="text",
            legend="legend",
            legendrank=1,
        ),
        row=1,
        col=1,
    )
    fig.update_yaxes(title_text=f"price (USD)<br>{d.price_venue}", row=1, col=1)


def _regime_name(code: int) -> str:
    return Regime(code).name


def _events(fig: Any, d: ChartData) -> None:
    import plotly.graph_objects as go

    if not d.events:
        return
    lo, hi = float(np.nanmin(d.low)), float(np.nanmax(d.high))
    span = max(hi - lo, 1e-12)
    top = hi + span * 0.45
    fig.update_yaxes(range=[lo - span * 0.08, top], row=1, col=1)
    for ev, (centre, level) in zip(
        d.events, label_slots(d, LABEL_HALF_FRAC, len(LABEL_LEVELS)), strict=True
    ):
        colour = SQUEEZE if ev.regime is Regime.SHORT_SQUEEZE else COVERING
        fig.add_annotation(
            x=coord(ev.signal_ms),
            y=ev.y + span * 0.015,
            text=ev.label.replace("\n", "<br>"),
            showarrow=True,
            arrowhead=0,
            arrowcolor=colour,
            axref="x",
            ax=coord(centre),
            ayref="y",
            ay=top - (top - lo + span * 0.08) * (1.0 - LABEL_LEVELS[level] + 0.05),
            font={"size": 10, "color": colour},
            bgcolor="white",
            bordercolor=colour,
            borderwidth=1,
            row=1,
            col=1,
        )
    hover = [
        f"<b>{e.regime.name}</b><br>signal {utc(e.signal_ms)} UTC<br>bars {utc(e.start_ms)} → "
        f"{utc(e.end_ms)}<br>OI {e.oi_pct:+.2f} %  price {e.price_pct:+.2f} %"
        for e in d.events
    ]
    fig.add_trace(
        go.Scatter(
            x=dt(np.array([e.signal_ms for e in d.events], dtype=np.int64)),
            y=[e.y + span * 0.015 for e in d.events],
            mode="markers",
            marker={
                "symbol": "triangle-down",
                "size": 12,
                "color": [
                    SQUEEZE if e.regime is Regime.SHORT_SQUEEZE else COVERING for e in d.events
                ],
            },
            name="event signal (close of its first bar)",
            hovertext=hover,
            hoverinfo="text",
            legend="legend",
        ),
        row=1,
        col=1,
    )
