"""Recorded history as the simulated market: any store (the caller opens it: `oiradar sim
--data` imports files into a temporary one first, services.importer.history_store)."""

from __future__ import annotations

import numpy as np

from oiradar.errors import UserError
from oiradar.kinds import Kind
from oiradar.sim.market import Market, SymbolData
from oiradar.store import Store
from oiradar.units import interval_ms


def history_market(store: Store, seed: int = 7) -> Market:
    """Every symbol of venue 'binance' (or of any venue) with candles and OI, at its finest bar."""
    chosen: dict[str, tuple[str, str]] = {}
    for venue, symbol in store.symbols():
        if symbol in chosen and chosen[symbol][0] == "binance":
            continue
        if store.intervals(venue, symbol):
            chosen[symbol] = (venue, symbol)
    if not chosen:
        raise UserError(f"{store.location} holds no candles to serve")

    def load(symbol: str) -> SymbolData:
        venue, _ = chosen[symbol]
        return _symbol_from_store(store, venue, symbol)

    return Market(sorted(chosen), load, seed)


def _symbol_from_store(store: Store, venue: str, symbol: str) -> SymbolData:
    intervals = store.intervals(venue, symbol)
    counts = {
        i: sum(1 for _ in store.rows(Kind.CANDLES, venue, symbol) if _[3] == i) for i in intervals
    }
    interval = max(intervals, key=lambda i: (counts[i], -interval_ms(i)))
    s = store.read_series(venue, symbol, interval)
    bar = s.interval_ms
    t0 = int(s.candle_ts[0])
    n = int((s.candle_ts[-1] - t0) // bar) + 1
    ts = t0 + bar * np.arange(n, dtype=np.int64)
    idx = (s.candle_ts - t0) // bar

    def fill(values: np.ndarray) -> np.ndarray:
        out = np.full(n, np.nan)
        out[idx] = values
        return _ffill(out)

    close = fill(s.close)
    volume = np.nan_to_num(np.where(np.isin(np.arange(n), idx), fill(s.volume), 0.0))
    oi = np.full(n, np.nan)
    oidx = (s.oi_ts - t0 - 1) // bar
    ok = (oidx >= 0) & (oidx < n)
    oi[oidx[ok]] = s.oi_base[ok]
    oi = _ffill(oi)
    oi = np.where(np.isnan(oi), np.nanmean(oi) if np.isfinite(oi).any() else 0.0, oi)
    liq_long = np.zeros(n)
    liq_short = np.zeros(n)
    lidx = (s.liq_ts - t0) // bar
    lok = (lidx >= 0) & (lidx < n)
    np.add.at(liq_long, lidx[lok], np.nan_to_num(s.liq_long_usd[lok]))
    np.add.at(liq_short, lidx[lok], np.nan_to_num(s.liq_short_usd[lok]))
    liq_long /= close
    liq_short /= close
    taker = np.where(np.isnan(s.taker_buy), s.volume * 0.5, s.taker_buy)
    taker_buy = np.zeros(n)
    taker_buy[idx] = taker
    funding = np.full(n, 0.0001)
    interval_h = 8.0
    if len(s.funding_ts):
        pos = np.searchsorted(s.funding_ts, ts + bar, side="right") - 1
        has = pos >= 0
        funding[has] = s.funding_rate[pos[has]]
        interval_h = float(s.funding_interval_h[-1])
    # Premium bars (the bar size or finer) close inside the base bar holding their open.
    premium = _at_closes(n, (s.premium_ts - t0) // bar, s.premium_close)
    ratios = [
        _at_closes(n, (s.pos_ts - t0 - 1) // bar, values)
        for values in (s.pos_top_account, s.pos_top_position, s.pos_account)
    ]
    return SymbolData(
        symbol,
        symbol.removesuffix("USDT"),
        bar,
        ts,
        fill(s.open),
        fill(s.high),
        fill(s.low),
        close,
        volume,
        oi,
        funding,
        liq_long,
        liq_short,
        interval_h,
        taker_buy=taker_buy,
        premium=premium,
        ls_top_account=ratios[0],
        ls_top_position=ratios[1],
        ls_account=ratios[2],
    )


def _at_closes(n: int, index: np.ndarray, values: np.ndarray) -> np.ndarray | None:
    """Values placed at the base bars `index` and carried forward; None when none is known."""
    ok = (index >= 0) & (index < n) & ~np.isnan(values)
    if not ok.any():
        return None
    out = np.full(n, np.nan)
    out[index[ok]] = values[ok]
    return _ffill(out)


def _ffill(x: np.ndarray) -> np.ndarray:
    """Carry the last value forward over gaps (a venue always answers with its last value)."""
    valid = ~np.isnan(x)
    idx = np.where(valid, np.arange(len(x)), 0)
    np.maximum.accumulate(idx, out=idx)
    out = x[idx]
    first = int(np.argmax(valid)) if valid.any() else len(x)
    out[:first] = x[first] if first < len(x) else np.nan
    return out
