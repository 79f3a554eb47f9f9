"""The event study's trades: every event the engine finds, entered at the close of its first
bar in the regime's direction, with forward returns, excursions and random controls on the
same symbols and days. Pure: sample grids in, trades out."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oiradar.research.request import BacktestRequest
from oiradar.research.study import FloatArray, control_entries, excursions, forward_returns, rounded
from oiradar.signals import rules
from oiradar.signals.engine import Event, event_spans, events, grid_timeline
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import COVERING, Regime
from oiradar.signals.windows import Grid
from oiradar.units import interval_name, iso

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
    regime: list[Regime] = field(default_factory=list)
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

    arrays: dict[tuple[int, int], FloatArray] = field(default_factory=dict, repr=False)

    def array(self, horizon: int) -> FloatArray:
        """The returns at `horizon` as an array, converted once per length (every table
        group asks for them again; the lists only ever grow)."""
        values = self.returns.get(horizon, [])
        key = (horizon, len(values))
        if key not in self.arrays:
            self.arrays[key] = np.asarray(values, dtype=np.float64)
        return self.arrays[key]

    def mask(self, **match: str | Regime) -> np.ndarray[Any, np.dtype[np.bool_]]:
        keep = np.ones(len(self.symbol), dtype=np.bool_)
        for key, value in match.items():
            keep &= np.asarray(getattr(self, key)) == value
        return keep


def horizon_bars(horizon_ms: int, bar_ms: int) -> int | None:
    return horizon_ms // bar_ms if horizon_ms % bar_ms == 0 and horizon_ms >= bar_ms else None


def study(
    samples: Sequence[Sample], req: BacktestRequest, params: EngineParams, *, detail: bool = True
) -> tuple[Trades, Trades]:
    """(events, controls) over every sample for one parameter set.

    Samples are taken in symbol order and each symbol draws its controls from its own
    stream of `req.seed`, so a seed fixes the result whatever order the symbols were named
    in (the bootstrap resamples the pooled rows, whose order is now the symbols').

    `detail=False` (the sweep) enters the same trades from the events' first bars alone:
    no event readings, context or per-trade rows, whose construction per event was most of
    a sweep's time; returns, excursions, labels and controls are the same."""
    trades, control = Trades(), Trades()
    longest = max(req.horizons_ms)
    market = _market(samples, params) if detail else None
    for s in sorted(samples, key=lambda x: x.symbol):
        rng = np.random.default_rng([req.seed, zlib.crc32(s.symbol.encode())])
        g = s.grid
        tl = grid_timeline(g, params)
        first_bar = 0 if s.start_ms is None else int(np.searchsorted(g.ts, s.start_ms))
        if detail:
            evs = [
                e
                for e in events(tl, params, req.regimes)
                if (s.start_ms is None or e.start_ms >= s.start_ms) and e.regime in DIRECTION
            ]
            starts = [e.first_index for e in evs]
        else:
            evs = []
            starts = [
                i
                for regime, i, _ in event_spans(tl, req.regimes)
                if i >= first_bar and regime in DIRECTION
            ]
        if not starts:
            continue
        entries = np.asarray(starts, dtype=np.int64)
        labels = [_label_at(tl.regime[i], bool(tl.strong[i])) for i in starts]
        # Labelled by what was known at entry: the first bar's regime and tier, never the
        # event's later bars (a covering that turns into a squeeze stays covering here).
        direction = np.array([DIRECTION[regime] for regime, _ in labels])
        ctrl, owner = control_entries(g.ts, g.valid, entries, req.control_per_event, rng)
        ctrl_dir = direction[owner]
        for h in req.horizons_ms:
            bars = horizon_bars(h, g.bar_ms)
            for book, idx, d in ((trades, entries, direction), (control, ctrl, ctrl_dir)):
                r = (
                    forward_returns(g.close, idx, bars, d, req.cost_bps)
                    if bars
                    else np.full(len(idx), np.nan)
                )
                book.returns.setdefault(h, []).extend(r.tolist())
        lb = horizon_bars(longest, g.bar_ms) or 1
        mfe, mae = excursions(s.high, s.low, g.close, entries, lb, direction)
        trades.mfe.extend(mfe.tolist())
        trades.mae.extend(mae.tolist())
        first = len(trades.symbol)
        trades.symbol.extend([s.symbol] * len(starts))
        trades.regime.extend(regime for regime, _ in labels)
        trades.tier.extend(tier for _, tier in labels)
        control.symbol.extend([s.symbol] * len(ctrl))
        picks = owner.tolist()
        control.regime.extend(labels[k][0] for k in picks)
        control.tier.extend(["-"] * len(ctrl))
        for k, e in enumerate(evs):
            i = starts[k]
            context = _context(e, s.symbol, market, params)
            trades.breakout.append(context[0])
            trades.crowded.append(context[1])
            trades.market.append(context[2])
            row: dict[str, Any] = {
                "symbol": s.symbol,
                "regime": labels[k][0].name,
                "tier": labels[k][1],
                "start": iso(e.start_ms),
                "signal_at": iso(e.signal_ms),
                "entry_price": float(g.close[i]),
                "oi_change_pct": rounded(float(tl.oi_pct[i])),
                "price_change_pct": rounded(float(tl.price_pct[i])),
                "horizon": interval_name(tl.reading_bars(i) * g.bar_ms),
                "breakout": context[0],
                "shorts_crowded": context[1],
                "btc_covering": context[2],
            }
            for h in req.horizons_ms:
                row[f"ret_{interval_name(h)}_pct"] = rounded(trades.returns[h][first + k])
            row["mfe_pct"], row["mae_pct"] = rounded(float(mfe[k])), rounded(float(mae[k]))
            trades.rows.append(row)
        if detail:  # a control shares its event's context
            for name in ("breakout", "crowded", "market"):
                mine = getattr(trades, name)[first:]
                getattr(control, name).extend(mine[k] for k in picks)
    return trades, control


MARKET_SYMBOL = "BTCUSDT"


def _market(samples: Sequence[Sample], params: EngineParams) -> dict[int, bool] | None:
    """BTC reading covering per bar open (when BTC is among the samples), as an alt's context."""
    btc = next((s for s in samples if s.symbol == MARKET_SYMBOL), None)
    if btc is None:
        return None
    tl = grid_timeline(btc.grid, params)
    covering = np.isin(tl.regime, COVERING)
    return {int(t): bool(c) for t, c in zip(btc.grid.ts, covering, strict=True)}


def _yes(flag: bool | None) -> str:
    return "-" if flag is None else "yes" if flag else "no"


def _context(
    e: Event, symbol: str, market: dict[int, bool] | None, params: EngineParams
) -> tuple[str, str, str]:
    crowded = None if e.ls_account is None else bool(rules.crowded_shorts(e.ls_account, params))
    btc = None if market is None or symbol == MARKET_SYMBOL else market.get(e.start_ms)
    return _yes(e.breakout), _yes(crowded), _yes(btc)


def _label_at(code: Any, strong: bool) -> tuple[Regime, str]:
    regime = Regime(int(code))
    return regime, ("strong" if strong else "normal") if regime in COVERING else "-"
