"""`oiradar backtest`: has a signal worked on these coins? An event study over stored history.

Every event the Core engine finds (the same events `oiradar analyze` lists) is entered at the
close of its first bar — the moment it was knowable — in the regime's direction (covering and
squeezes long, liquidations of longs short...). Forward returns at fixed horizons, the best
and worst the trade saw, and the same numbers for random entries on the same symbols and
days (the control) are summarized per regime, tier and symbol with bootstrap intervals, and
again without the symbols that contribute most, so one coin cannot carry the result.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from oiradar.errors import NoDataError, UserError
from oiradar.services.analyze import Query, load, other_intervals
from oiradar.signals.engine import events, grid_timeline
from oiradar.signals.horizons import horizons
from oiradar.signals.params import EngineParams, ablation
from oiradar.signals.regimes import Regime
from oiradar.signals.study import (
    FloatArray,
    bootstrap,
    control_entries,
    excursions,
    forward_returns,
    hit_rows,
    mean_rows,
    p_better,
)
from oiradar.signals.windows import Grid, build_grid
from oiradar.store import Store
from oiradar.units import HOUR_MS, MINUTE_MS, interval_name, iso

HORIZONS_MS = (15 * MINUTE_MS, HOUR_MS, 4 * HOUR_MS, 24 * HOUR_MS)
PRIMARY_MS = HOUR_MS  # the horizon tables rank and test by
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
DIRECTION = {
    Regime.SHORT_COVERING: 1.0,
    Regime.SHORT_SQUEEZE: 1.0,
    Regime.NEW_LONGS: 1.0,
    Regime.LOW_CONVICTION_RALLY: 1.0,
    Regime.LONG_LIQUIDATION: -1.0,
    Regime.NEW_SHORTS: -1.0,
    Regime.LOW_CONVICTION_SELLOFF: -1.0,
}


@dataclass(frozen=True, slots=True)
class BacktestRequest:
    venue: str = "binance"
    symbols: tuple[str, ...] | None = None  # None: every symbol stored for the venue
    start_ms: int | None = None
    end_ms: int | None = None
    interval: str | None = None
    regimes: tuple[Regime, ...] = (Regime.SHORT_COVERING,)
    params: EngineParams = field(default_factory=EngineParams)
    horizons_ms: tuple[int, ...] = HORIZONS_MS
    cost_bps: float = 10.0  # round trip: fees plus slippage
    control_per_event: int = 20
    drop_top: int = 2
    seed: int = 7
    bootstrap_n: int = 2000


@dataclass(frozen=True, slots=True)
class Sample:
    """Loaded once per symbol; the sweep re-runs the engine on the same grid."""

    symbol: str
    interval: str
    grid: Grid
    high: FloatArray
    low: FloatArray
    start_ms: int | None
    # Other bar sizes stored with data in range when none was asked for (the finest is used).
    also_stored: tuple[str, ...] = ()


@dataclass(slots=True)
class Trades:
    """Event (or control) entries pooled over symbols: one row per trade."""

    symbol: list[str] = field(default_factory=list)
    regime: list[str] = field(default_factory=list)
    tier: list[str] = field(default_factory=list)
    # Context at entry, "yes"/"no"/"-" (unknown): the range broken, shorts crowded, BTC
    # reading covering at the same bar (alts only).
    breakout: list[str] = field(default_factory=list)
    crowded: list[str] = field(default_factory=list)
    market: list[str] = field(default_factory=list)
    returns: dict[int, list[float]] = field(default_factory=dict)  # horizon ms -> per trade
    mfe: list[float] = field(default_factory=list)
    mae: list[float] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def array(self, horizon: int) -> FloatArray:
        return np.asarray(self.returns.get(horizon, []), dtype=np.float64)

    def mask(self, **match: str) -> np.ndarray[Any, np.dtype[np.bool_]]:
        keep = np.ones(len(self.symbol), dtype=np.bool_)
        for key, value in match.items():
            keep &= np.asarray(getattr(self, key)) == value
        return keep


@dataclass(slots=True)
class BacktestResult:
    events: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    without_top: list[dict[str, Any]]
    dropped: list[str]
    horizons: list[str]
    notes: list[str]


def load_samples(
    store: Store, req: BacktestRequest, progress: Callable[[str], None] = lambda s: None
) -> list[Sample]:
    symbols = req.symbols or tuple(sorted({s for v, s in store.symbols() if v == req.venue}))
    if not symbols:
        raise NoDataError(f"no symbols stored for {req.venue} in {store.path}")
    found = _load_all(store, req, symbols, progress)
    if not found:
        raise NoDataError(f"no stored symbol of {req.venue} has data in the requested range")
    return found


def _load_all(
    store: Store, req: BacktestRequest, symbols: Sequence[str], progress: Callable[[str], None]
) -> list[Sample]:
    out = []
    for sym in symbols:
        q = Query(sym, req.venue, req.start_ms, req.end_ms, req.interval)
        try:
            series, q = load(store, q)
        except NoDataError:
            if req.symbols is not None:
                raise  # named by the user: say why it cannot be studied
            continue  # every stored symbol: those without data in range are left out
        assert q.interval is not None
        also = () if req.interval else other_intervals(store, replace(q, interval=None), q.interval)
        out.append(
            Sample(
                sym,
                q.interval,
                build_grid(series),
                _per_bar(series, "high"),
                _per_bar(series, "low"),
                req.start_ms,
                tuple(also),
            )
        )
        progress(sym)
    return out


def _per_bar(series: Any, name: str) -> FloatArray:
    """High or low on the grid (NaN for missing bars), like build_grid aligns close."""
    ts = series.candle_ts
    if len(ts) == 0:
        return np.empty(0)
    n = int((ts[-1] - ts[0]) // series.interval_ms) + 1
    out = np.full(n, np.nan)
    out[(ts - ts[0]) // series.interval_ms] = getattr(series, name)
    return out


def _horizon_bars(horizon_ms: int, bar_ms: int) -> int | None:
    return horizon_ms // bar_ms if horizon_ms % bar_ms == 0 and horizon_ms >= bar_ms else None


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


def study(
    samples: Sequence[Sample], req: BacktestRequest, params: EngineParams
) -> tuple[Trades, Trades]:
    """(events, controls) over every sample for one parameter set.

    Samples are taken in symbol order and each symbol draws its controls from its own
    stream of `req.seed`, so a seed fixes the result whatever order the symbols were named
    in (the bootstrap resamples the pooled rows, whose order is now the symbols')."""
    trades, control = Trades(), Trades()
    longest = max(req.horizons_ms)
    market = _market(samples, params)
    for s in sorted(samples, key=lambda x: x.symbol):
        rng = np.random.default_rng([req.seed, zlib.crc32(s.symbol.encode())])
        g = s.grid
        tl = grid_timeline(g, params)
        evs = [
            e
            for e in events(tl, params, req.regimes)
            if (s.start_ms is None or e.start_ms >= s.start_ms) and e.regime in DIRECTION
        ]
        if not evs:
            continue
        index = {int(t): i for i, t in enumerate(g.ts)}
        entries = np.array([index[e.start_ms] for e in evs], dtype=np.int64)
        direction = np.array([DIRECTION[Regime(int(tl.regime[i]))] for i in entries])
        ctrl, owner = control_entries(g.ts, g.valid, entries, req.control_per_event, rng)
        ctrl_dir = direction[owner]
        for h in req.horizons_ms:
            bars = _horizon_bars(h, g.bar_ms)
            for book, idx, d in ((trades, entries, direction), (control, ctrl, ctrl_dir)):
                r = (
                    forward_returns(g.close, idx, bars, d, req.cost_bps)
                    if bars
                    else np.full(len(idx), np.nan)
                )
                book.returns.setdefault(h, []).extend(r.tolist())
        lb = _horizon_bars(longest, g.bar_ms) or 1
        mfe, mae = excursions(s.high, s.low, g.close, entries, lb, direction)
        trades.mfe.extend(mfe.tolist())
        trades.mae.extend(mae.tolist())
        for k, e in enumerate(evs):
            i = int(entries[k])
            # Labelled by what was known at entry: the first bar's regime and tier, never the
            # event's later bars (a covering that turns into a squeeze stays covering here).
            regime, tier = _label_at(tl.regime[i], bool(tl.strong[i]))
            trades.symbol.append(s.symbol)
            trades.regime.append(regime)
            trades.tier.append(tier)
            context = _context(e, s.symbol, market, params)
            trades.breakout.append(context[0])
            trades.crowded.append(context[1])
            trades.market.append(context[2])
            row: dict[str, Any] = {
                "symbol": s.symbol,
                "regime": regime,
                "tier": tier,
                "start": iso(e.start_ms),
                "signal_at": iso(e.signal_ms),
                "entry_price": float(g.close[i]),
                "oi_change_pct": _num(float(tl.oi_pct[i])),
                "price_change_pct": _num(float(tl.price_pct[i])),
                "horizon": interval_name(tl.reading_bars(i) * g.bar_ms),
                "breakout": context[0],
                "shorts_crowded": context[1],
                "btc_covering": context[2],
            }
            for h in req.horizons_ms:
                row[f"ret_{interval_name(h)}_pct"] = _num(trades.returns[h][len(trades.symbol) - 1])
            row["mfe_pct"], row["mae_pct"] = _num(float(mfe[k])), _num(float(mae[k]))
            trades.rows.append(row)
        control.symbol.extend([s.symbol] * len(ctrl))
        labels = [_label_at(tl.regime[int(i)], False)[0] for i in entries]
        control.regime.extend(labels[int(k)] for k in owner)
        control.tier.extend(["-"] * len(ctrl))
        first = len(trades.symbol) - len(evs)
        for name in ("breakout", "crowded", "market"):  # a control shares its event's context
            mine = getattr(trades, name)[first:]
            getattr(control, name).extend(mine[int(k)] for k in owner)
    return trades, control


MARKET_SYMBOL = "BTCUSDT"
_COVERING = (Regime.SHORT_COVERING, Regime.SHORT_SQUEEZE)


def _market(samples: Sequence[Sample], params: EngineParams) -> dict[int, bool] | None:
    """BTC reading covering per bar open (when BTC is among the samples), as an alt's context."""
    btc = next((s for s in samples if s.symbol == MARKET_SYMBOL), None)
    if btc is None:
        return None
    tl = grid_timeline(btc.grid, params)
    covering = np.isin(tl.regime, _COVERING)
    return {int(t): bool(c) for t, c in zip(btc.grid.ts, covering, strict=True)}


def _yes(flag: bool | None) -> str:
    return "-" if flag is None else "yes" if flag else "no"


def _context(
    e: Any, symbol: str, market: dict[int, bool] | None, params: EngineParams
) -> tuple[str, str, str]:
    crowded = None if e.ls_account is None else e.ls_account <= params.crowded_ratio
    btc = None if market is None or symbol == MARKET_SYMBOL else market.get(e.start_ms)
    return _yes(e.breakout), _yes(crowded), _yes(btc)


def _label_at(code: Any, strong: bool) -> tuple[str, str]:
    regime = Regime(int(code))
    covering = regime in (Regime.SHORT_COVERING, Regime.SHORT_SQUEEZE)
    return regime.name, ("strong" if strong else "normal") if covering else "-"


def _num(x: float, digits: int = 4) -> float | None:
    return round(x, digits) if math.isfinite(x) else None


def summarize(
    label: str,
    key: str,
    trades: Trades,
    control: Trades,
    keep: np.ndarray[Any, np.dtype[np.bool_]],
    ckeep: np.ndarray[Any, np.dtype[np.bool_]],
    req: BacktestRequest,
) -> dict[str, Any]:
    """One table row: counts, hit rate and mean with 95 % bootstrap intervals per horizon,
    median, the control's figures and the edge over it, a one-sided p, excursions."""
    rng = np.random.default_rng(req.seed)
    row: dict[str, Any] = {"group": label, "key": key, "events": int(keep.sum())}
    for h in req.horizons_ms:
        name = interval_name(h)
        r = trades.array(h)[keep]
        c = control.array(h)[ckeep]
        known = r[~np.isnan(r)]
        row[f"n_{name}"] = len(known)
        row[f"mean_{name}"] = _num(float(np.mean(known))) if len(known) else None
        if h != PRIMARY_MS:
            continue
        ci = bootstrap(r, mean_rows, rng, req.bootstrap_n)
        hit_ci = bootstrap(r, hit_rows, rng, req.bootstrap_n)
        ck = c[~np.isnan(c)]
        row.update(
            {
                "hit_pct": _num(float(np.mean(known > 0) * 100)) if len(known) else None,
                "hit_ci": [_num(hit_ci.low, 1), _num(hit_ci.high, 1)],
                "mean_ci": [_num(ci.low), _num(ci.high)],
                "median": _num(float(np.median(known))) if len(known) else None,
                "control_mean": _num(float(np.mean(ck))) if len(ck) else None,
                "control_hit_pct": _num(float(np.mean(ck > 0) * 100)) if len(ck) else None,
                "edge": _num(float(np.mean(known) - np.mean(ck)))
                if len(known) and len(ck)
                else None,
                "p_value": _num(p_better(r, c, rng, req.bootstrap_n), 4),
            }
        )
    mfe = np.asarray(trades.mfe)[keep] if trades.mfe else np.empty(0)
    mae = np.asarray(trades.mae)[keep] if trades.mae else np.empty(0)
    row["mfe_median"] = _num(float(np.nanmedian(mfe))) if np.any(np.isfinite(mfe)) else None
    row["mae_median"] = _num(float(np.nanmedian(mae))) if np.any(np.isfinite(mae)) else None
    return row


def tables(trades: Trades, control: Trades, req: BacktestRequest) -> list[dict[str, Any]]:
    """All events, then per regime, per regime and tier, per symbol."""

    def row(label: str, key: str, ctrl_key: dict[str, str], **match: str) -> dict[str, Any]:
        return summarize(
            label, key, trades, control, trades.mask(**match), control.mask(**ctrl_key), req
        )

    rows = [row("all", "all", {})]
    for regime in sorted(set(trades.regime)):
        rows.append(row("regime", regime, {"regime": regime}, regime=regime))
        tiers = {t for t, r in zip(trades.tier, trades.regime, strict=True) if r == regime}
        if len(tiers - {"-"}) > 1:  # one tier only would repeat the regime's row
            rows.extend(
                row("tier", f"{regime}/{tier}", {"regime": regime}, regime=regime, tier=tier)
                for tier in sorted(tiers - {"-"})
            )
    for name, text in CONTEXT.items():
        seen = sorted(set(getattr(trades, name)) - {"-"})
        if len(seen) > 1:  # both answers occur: the context splits the events
            rows.extend(
                row("context", f"{text}: {v}", {name: v}, **{name: v}) for v in reversed(seen)
            )
    rows.extend(
        row("symbol", sym, {"symbol": sym}, symbol=sym) for sym in sorted(set(trades.symbol))
    )
    return rows


CONTEXT = {"breakout": "range broken", "crowded": "shorts crowded", "market": "BTC covering"}


def top_contributors(trades: Trades, k: int) -> list[str]:
    """The `k` symbols whose events sum to the largest |primary-horizon return|."""
    r = trades.array(PRIMARY_MS)
    sums: dict[str, float] = {}
    for sym, x in zip(trades.symbol, r, strict=True):
        if math.isfinite(x):
            sums[sym] = sums.get(sym, 0.0) + x
    ranked = sorted(sums, key=lambda s: -abs(sums[s]))
    return ranked[:k] if len(ranked) > k else []


def backtest(
    store: Store, req: BacktestRequest, progress: Callable[[str], None] = lambda s: None
) -> BacktestResult:
    samples = load_samples(store, req, progress)
    return run(samples, req)


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
                regime,
                trades,
                control,
                keep & trades.mask(regime=regime),
                ckeep & control.mask(regime=regime),
                req,
            )
            for regime in sorted(set(trades.regime))
        )
    notes = [
        f"entries at the close of each event's first bar; returns net of {req.cost_bps:g} bps "
        f"round trip; control: {req.control_per_event} random entries per event on the same "
        "symbol and UTC day; intervals: 95 % bootstrap; p: one-sided, signal mean <= control",
    ]
    skipped = [
        interval_name(h)
        for h in req.horizons_ms
        if any(_horizon_bars(h, s.grid.bar_ms) is None for s in samples)
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
        for regime in (Regime.SHORT_SQUEEZE.name, Regime.SHORT_COVERING.name):
            keep, ckeep = trades.mask(regime=regime), control.mask(regime=regime)
            if keep.any():
                row = summarize("evidence", name, trades, control, keep, ckeep, req)
                rows.append({**row, "regime": regime})
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
            trades, control = study(samples, req, params)
            if trades.rows:
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
