"""`oiradar backtest`'s data: each symbol's stored history as a study sample (its grid, highs
and lows), read once so sweeps and ablations re-run the engine on the same grids. The study
itself is `research.backtest`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from oiradar.errors import NoDataError
from oiradar.research.backtest import BacktestResult, run
from oiradar.research.request import BacktestRequest
from oiradar.research.study import FloatArray
from oiradar.research.trades import Sample
from oiradar.services.analyze import Query, load, other_intervals
from oiradar.signals.windows import build_grid
from oiradar.store import Store


def load_samples(
    store: Store, req: BacktestRequest, progress: Callable[[str], None] = lambda s: None
) -> list[Sample]:
    symbols = req.symbols or tuple(sorted({s for v, s in store.symbols() if v == req.venue}))
    if not symbols:
        raise NoDataError(f"no symbols stored for {req.venue} in {store.location}")
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


def backtest(
    store: Store, req: BacktestRequest, progress: Callable[[str], None] = lambda s: None
) -> BacktestResult:
    samples = load_samples(store, req, progress)
    return run(samples, req)
