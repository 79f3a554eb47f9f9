"""The event study's tables: hit rate and mean return per group with bootstrap intervals,
the control's figures and the edge over it, a one-sided p; groups per regime, tier,
context and symbol, and the symbols that contribute most. Pure: trades in, rows out."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from oiradar.research.request import BacktestRequest
from oiradar.research.study import hit_rows, interval, mean_rows, p_better, resample, rounded
from oiradar.research.trades import Trades
from oiradar.signals.regimes import Regime
from oiradar.units import HOUR_MS, interval_name

PRIMARY_MS = HOUR_MS  # the horizon tables rank and test by
CONTEXT = {"breakout": "range broken", "crowded": "shorts crowded", "market": "BTC covering"}


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
        row[f"mean_{name}"] = rounded(float(np.mean(known))) if len(known) else None
        if h != PRIMARY_MS:
            continue
        means, hits = (
            resample(known, [mean_rows, hit_rows], rng, req.bootstrap_n)
            if len(known) >= 2
            else (np.empty(0), np.empty(0))
        )
        ci, hit_ci = interval(means), interval(hits)
        ck = c[~np.isnan(c)]
        row.update(
            {
                "hit_pct": rounded(float(np.mean(known > 0) * 100)) if len(known) else None,
                "hit_ci": [rounded(hit_ci.low, 1), rounded(hit_ci.high, 1)],
                "mean_ci": [rounded(ci.low), rounded(ci.high)],
                "median": rounded(float(np.median(known))) if len(known) else None,
                "control_mean": rounded(float(np.mean(ck))) if len(ck) else None,
                "control_hit_pct": rounded(float(np.mean(ck > 0) * 100)) if len(ck) else None,
                "edge": rounded(float(np.mean(known) - np.mean(ck)))
                if len(known) and len(ck)
                else None,
                "p_value": rounded(
                    p_better(r, c, rng, req.bootstrap_n, means if len(means) else None), 4
                ),
            }
        )
    mfe = np.asarray(trades.mfe)[keep] if trades.mfe else np.empty(0)
    mae = np.asarray(trades.mae)[keep] if trades.mae else np.empty(0)
    row["mfe_median"] = rounded(float(np.nanmedian(mfe))) if np.any(np.isfinite(mfe)) else None
    row["mae_median"] = rounded(float(np.nanmedian(mae))) if np.any(np.isfinite(mae)) else None
    return row


def tables(trades: Trades, control: Trades, req: BacktestRequest) -> list[dict[str, Any]]:
    """All events, then per regime, per regime and tier, per symbol."""

    def row(
        label: str, key: str, ctrl_key: dict[str, str | Regime], **match: str | Regime
    ) -> dict[str, Any]:
        return summarize(
            label, key, trades, control, trades.mask(**match), control.mask(**ctrl_key), req
        )

    rows = [row("all", "all", {})]
    for regime in regimes_of(trades):
        name = regime.name
        rows.append(row("regime", name, {"regime": regime}, regime=regime))
        tiers = {t for t, r in zip(trades.tier, trades.regime, strict=True) if r == regime}
        if len(tiers - {"-"}) > 1:  # one tier only would repeat the regime's row
            rows.extend(
                row("tier", f"{name}/{tier}", {"regime": regime}, regime=regime, tier=tier)
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


def top_contributors(trades: Trades, k: int) -> list[str]:
    """The `k` symbols whose events sum to the largest |primary-horizon return|."""
    r = trades.array(PRIMARY_MS)
    sums: dict[str, float] = {}
    for sym, x in zip(trades.symbol, r, strict=True):
        if math.isfinite(x):
            sums[sym] = sums.get(sym, 0.0) + x
    ranked = sorted(sums, key=lambda s: -abs(sums[s]))
    return ranked[:k] if len(ranked) > k else []


def regimes_of(trades: Trades) -> list[Regime]:
    """The regimes the trades were entered in, in the order tables list them (by name)."""
    return sorted(set(trades.regime), key=lambda r: r.name)
