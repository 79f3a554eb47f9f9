"""`oiradar backtest`: has a signal worked on these coins? An event study over loaded history.

Every event the Core engine finds (the same events `oiradar analyze` lists) is entered at the
close of its first bar — the moment it was knowable — in the regime's direction (covering and
squeezes long, liquidations of longs short...). Forward returns at fixed horizons, the best
and worst the trade saw, and the same numbers for random entries on the same symbols and
days (the control) are summarized per regime, tier and symbol with bootstrap intervals, and
again without the symbols that contribute most, so one coin cannot carry the result. Pure:
`services.backtest` loads the samples from the store.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from oiradar.errors import NoDataError, UserError
from oiradar.research.request import BacktestRequest
from oiradar.research.summary import (
    PRIMARY_MS,
    regimes_of,
    summarize,
    tables,
    top_contributors,
)
from oiradar.research.trades import Sample, horizon_bars, study
from oiradar.signals.horizons import horizons
from oiradar.signals.params import EngineParams, ablation
from oiradar.signals.regimes import Regime
from oiradar.units import interval_name

# An event's fields and their headers, for the CLI table and the HTML report.
EVENT_COLUMNS = [
    ("symbol", "symbol"),
    ("regime", "regime"),
    ("tier", "tier"),
    ("signal_at", "entry (UTC)"),
    ("horizon", "over"),
    ("entry_price", "entry"),
    ("ret_15m_pct", "+15m %"),
    ("ret_1h_pct", "+1h %"),
    ("ret_4h_pct", "+4h %"),
    ("ret_1d_pct", "+24h %"),
    ("mfe_pct", "MFE %"),
    ("mae_pct", "MAE %"),
]


@dataclass(slots=True)
class BacktestResult:
    events: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    without_top: list[dict[str, Any]]
    dropped: list[str]
    horizons: list[str]
    notes: list[str]


def _read_over(sample: Sample, params: EngineParams) -> str:
    """The horizons a sample is read over at its bar size, e.g. '15m+30m+1h' or '1h'."""
    return "+".join(horizons(params, sample.grid.bar_ms).names())


def windows_used(samples: Sequence[Sample], req: BacktestRequest) -> str:
    """'horizons 1h', or per bar size when symbols differ: 'horizons 15m+30m+1h (5m bars),
    1h (1h bars)' — each symbol is read over the horizons its bars allow, as analyze reads it."""
    used = sorted({(s.grid.bar_ms, _read_over(s, req.params)) for s in samples})
    if len({w for _, w in used}) <= 1:
        return f"horizons {used[0][1]}" if used else "horizons -"
    return "horizons " + ", ".join(f"{w} ({interval_name(bar)} bars)" for bar, w in used)


def bars_note(samples: Sequence[Sample], req: BacktestRequest) -> str:
    """Which bar size and horizons each symbol was studied with, and the bar sizes left aside:
    '1h bars over 1h: ETHUSDT, SOLUSDT; 5m bars over 15m+30m+1h: BTCUSDT (also stored: ...)'."""
    groups: dict[tuple[int, str], list[str]] = {}
    for s in sorted(samples, key=lambda x: x.symbol):
        key = (s.grid.bar_ms, _read_over(s, req.params))
        groups.setdefault(key, []).append(s.symbol)
    text = "; ".join(
        f"{interval_name(bar)} bars over {w}: {', '.join(syms)}"
        for (bar, w), syms in sorted(groups.items())
    )
    aside = [f"{s.symbol} {', '.join(s.also_stored)}" for s in samples if s.also_stored]
    if aside:
        text += (
            f" (the finest stored per symbol; also stored: {'; '.join(sorted(aside))}: "
            "choose with --interval)"
        )
    return text


def run(samples: Sequence[Sample], req: BacktestRequest) -> BacktestResult:
    trades, control = study(samples, req, req.params)
    if not trades.rows:
        raise NoDataError(
            "no event in the selected history: widen --from/--to, add symbols, or lower the "
            "thresholds"
        )
    groups = tables(trades, control, req)
    dropped = top_contributors(trades, req.drop_top)
    without: list[dict[str, Any]] = []
    if dropped:
        keep = ~np.isin(np.asarray(trades.symbol), dropped)
        ckeep = ~np.isin(np.asarray(control.symbol), dropped)
        label = "without " + ",".join(dropped)
        without.append(summarize("all", label, trades, control, keep, ckeep, req))
        without.extend(
            summarize(
                "regime",
                regime.name,
                trades,
                control,
                keep & trades.mask(regime=regime),
                ckeep & control.mask(regime=regime),
                req,
            )
            for regime in regimes_of(trades)
        )
    notes = [
        f"entries at the close of each event's first bar; returns net of {req.cost_bps:g} bps "
        f"round trip; control: {req.control_per_event} random entries per event on the same "
        "symbol and UTC day; intervals: 95 % bootstrap; p: one-sided, signal mean <= control",
    ]
    skipped = [
        interval_name(h)
        for h in req.horizons_ms
        if any(horizon_bars(h, s.grid.bar_ms) is None for s in samples)
    ]
    if skipped:
        notes.append(f"horizons shorter than the bar or not a multiple of it: {', '.join(skipped)}")
    notes.append(bars_note(samples, req))
    return BacktestResult(
        trades.rows,
        groups,
        without,
        dropped,
        [interval_name(h) for h in req.horizons_ms],
        notes,
    )


def ablation_rows(samples: Sequence[Sample], req: BacktestRequest) -> list[dict[str, Any]]:
    """Squeeze and covering events under each evidence setting (`backtest --ablation`): what
    the upgrade of each term separates, in forward returns against the control."""
    rows = []
    for name, params in ablation(req.params):
        trades, control = study(samples, req, params)
        for regime in (Regime.SHORT_SQUEEZE, Regime.SHORT_COVERING):
            keep, ckeep = trades.mask(regime=regime), control.mask(regime=regime)
            if keep.any():
                row = summarize("evidence", name, trades, control, keep, ckeep, req)
                rows.append({**row, "regime": regime.name})
    return rows


@dataclass(frozen=True, slots=True)
class SweepRow:
    oi: float
    price: float
    stats: dict[str, Any]


def sweep(
    samples: Sequence[Sample],
    req: BacktestRequest,
    oi_values: Sequence[float],
    price_values: Sequence[float],
    progress: Callable[[str], None] = lambda s: None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The grid of (OI, price) thresholds, each with the pooled statistics, best first, and
    the multiple-testing warning that ranking them needs."""
    if req.params.adaptive or req.params.reference:
        raise UserError("--sweep varies the fixed thresholds: drop --adaptive/--reference")
    rows = []
    for oi in oi_values:
        for px in price_values:
            params = replace(req.params, oi_threshold_pct=oi, price_threshold_pct=px)
            trades, control = study(samples, req, params, detail=False)
            if trades.symbol:
                stats = summarize("all", "all", trades, control, trades.mask(), control.mask(), req)
            else:
                stats = {"events": 0}
            rows.append({"oi_threshold": oi, "price_threshold": px, **stats})
            progress(f"oi={oi:g} price={px:g}")
    name = interval_name(PRIMARY_MS)

    def score(r: dict[str, Any]) -> float:
        value = r.get(f"mean_{name}")
        return float(value) if value is not None else -math.inf

    rows.sort(key=score, reverse=True)
    m = len(rows)
    warnings = [
        f"{m} threshold pairs were tested and ranked by mean +{name} return: the best of {m} "
        "looks good partly by chance. At a 5 % level about "
        f"{0.05 * m:.1f} of them would pass by luck alone; require p <= {0.05 / m:.4f} "
        f"(Bonferroni, 0.05/{m}) or confirm the winner on a later period before trusting it.",
    ]
    return rows, warnings
