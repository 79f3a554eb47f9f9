"""`oiradar report` drawn: a backtest (`services.report.Report`) as one self-contained HTML
page, with its charts.

The page holds the study's tables (per regime, tier and symbol; without the top
contributors; every event), its notes, the distribution of +1h returns against the
control's, and for the symbols with most events a chart around their largest move. Images
are embedded (data URIs) and also written beside the page, so the folder can be mailed or
published as is; nothing is fetched from the network when it is opened.
"""

from __future__ import annotations

import base64
import html
import io
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oiradar.render import plural
from oiradar.research.backtest import EVENT_COLUMNS, BacktestResult
from oiradar.research.request import BacktestRequest
from oiradar.research.summary import PRIMARY_MS
from oiradar.research.trades import Trades
from oiradar.services.chart import ChartData
from oiradar.services.report import Report
from oiradar.signals.params import EngineParams
from oiradar.units import iso

GROUP_COLUMNS = [
    ("group", "group"),
    ("key", "key"),
    ("events", "events"),
    ("hit_pct", "hit % (+1h)"),
    ("hit_ci", "95 % CI"),
    ("mean_1h", "mean % (+1h)"),
    ("mean_ci", "95 % CI"),
    ("median", "median %"),
    ("control_mean", "control %"),
    ("edge", "edge %"),
    ("p_value", "p"),
    ("mean_4h", "mean % (+4h)"),
    ("mean_1d", "mean % (+24h)"),
    ("mfe_median", "MFE %"),
    ("mae_median", "MAE %"),
]


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    caption: str
    png: bytes


ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _cell(key: str, value: Any) -> str:
    """Returns in % carry a sign; rates, p-values and prices do not."""
    if value is None:
        return "-"
    if isinstance(value, list):
        return "[" + ", ".join(_cell(key, v) for v in value) + "]"
    if isinstance(value, float):
        if key == "p_value":
            return f"{value:.3f}"
        if key == "entry_price":
            return f"{value:,.2f}" if abs(value) >= 1000 else f"{value:.6g}"
        if abs(value) >= 1000:
            return f"{value:,.2f}"
        return f"{value:.1f}" if key.startswith("hit") else f"{value:+.2f}"
    text = str(value)
    if ISO.match(text):
        text = text[:16].replace("T", " ")
    return html.escape(text)


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(k, r.get(k))}</td>" for k, _ in columns) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def distribution(trades: Trades, control: Trades) -> Figure:
    """+1h returns of the events against the control's, as overlaid histograms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ev = trades.array(PRIMARY_MS)
    ct = control.array(PRIMARY_MS)
    ev, ct = ev[np.isfinite(ev)], ct[np.isfinite(ct)]
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=120)
    both = np.concatenate([ev, ct]) if len(ev) + len(ct) else np.zeros(1)
    lo, hi = np.percentile(both, [1, 99]) if len(both) > 1 else (-1.0, 1.0)
    bins = np.linspace(min(lo, -0.5), max(hi, 0.5), 40).tolist()
    ax.hist(ct, bins=bins, density=True, alpha=0.45, color="#8b949e", label="control (random)")
    ax.hist(ev, bins=bins, density=True, alpha=0.7, color="#2ea043", label="events")
    ax.axvline(0, color="#444", lw=0.8)
    if len(ev):
        ax.axvline(float(np.mean(ev)), color="#2ea043", ls="--", lw=1.2, label="events mean")
    if len(ct):
        ax.axvline(float(np.mean(ct)), color="#6e7681", ls="--", lw=1.2, label="control mean")
    ax.set_xlabel("return after 1 h, % (net of costs)")
    ax.set_ylabel("density")
    ax.legend(frameon=False, fontsize=9)
    ax.set_title("Where the trades ended after one hour", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    caption = f"{plural(len(ev), 'event')}, {plural(len(ct), 'control entry', 'control entries')}"
    return Figure("returns-1h.png", caption, buf.getvalue())


def chart_png(data: ChartData) -> bytes:
    """A symbol's chart as PNG bytes (drawn by `charts.png`)."""
    from oiradar.charts.png import render_png

    with tempfile.TemporaryDirectory() as d:
        target = Path(d) / "chart.png"
        render_png(data, target)
        return target.read_bytes()


CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:28px auto;
max-width:1800px;color:#1f2328;padding:0 16px}p,figure{max-width:1200px}h1{font-size:24px}
h2{font-size:18px;margin-top:32px}
table{border-collapse:collapse;font-size:13px;margin:8px 0 4px}th,td{padding:4px 9px;
border-bottom:1px solid #d0d7de;text-align:right;white-space:nowrap}th{background:#f6f8fa}
td:first-child,th:first-child,td:nth-child(2),th:nth-child(2){text-align:left}
.note{color:#57606a;font-size:13px}figure{margin:18px 0}img{max-width:100%;border:1px solid
#d0d7de}figcaption{color:#57606a;font-size:13px}.scroll{overflow-x:auto}
"""


def write_report(report: Report, out: Path) -> Path:
    """Write `out/index.html` and its images; returns the page."""
    figures = [
        distribution(report.trades, report.control),
        *(Figure(c.name, c.caption, chart_png(c.data)) for c in report.charts),
    ]
    out.mkdir(parents=True, exist_ok=True)
    for f in figures:
        (out / f.name).write_bytes(f.png)
    page = out / "index.html"
    text = _page(report.result, report.req, report.symbols, report.windows, figures)
    page.write_text(text, encoding="utf-8")
    return page


def _page(
    result: BacktestResult,
    req: BacktestRequest,
    symbols: int,
    windows: str,
    figures: list[Figure],
) -> str:
    p: EngineParams = req.params
    span = (
        f"{iso(req.start_ms)[:10] if req.start_ms else 'all stored history'}"
        f"{' to ' + iso(req.end_ms)[:10] if req.end_ms else ''}"
    )
    settings = (
        f"{req.venue}, {symbols} symbol(s), {span}; {windows}; 15m bands OI "
        f"{p.oi_threshold_pct:g} %, price {p.price_threshold_pct:g} % (x{p.oi_taper:.2g}, "
        f"x{p.price_taper:.2g} at 1h){', adaptive' if p.adaptive else ''}; costs "
        f"{req.cost_bps:g} bps round trip"
    )
    imgs = "".join(
        f'<figure><img alt="{html.escape(f.caption)}" src="data:image/png;base64,'
        f'{base64.b64encode(f.png).decode()}"><figcaption>{html.escape(f.caption)}'
        "</figcaption></figure>"
        for f in figures
    )
    without = (
        f"<h2>Without the top contributors ({html.escape(', '.join(result.dropped))})</h2>"
        f'<div class="scroll">{_table(result.without_top, GROUP_COLUMNS)}</div>'
        if result.without_top
        else ""
    )
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in result.notes)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>oiradar backtest report</title><style>{CSS}</style></head><body>"
        f"<h1>Backtest: {plural(len(result.events), 'event')}</h1>"
        f'<p class="note">{html.escape(settings)}</p>{notes}'
        f'<h2>Results</h2><div class="scroll">{_table(result.groups, GROUP_COLUMNS)}</div>'
        f"{without}<h2>Figures</h2>{imgs}"
        f'<h2>Every event</h2><div class="scroll">{_table(result.events, EVENT_COLUMNS)}</div>'
        '<p class="note">Made by oiradar backtest: entries at the close of each event\'s first '
        "bar, labelled by what was known then; a small sample's intervals are wide on "
        "purpose.</p></body></html>"
    )
