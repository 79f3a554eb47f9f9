"""History as context: "on this symbol in the last N days, K similar events; hit rate H,
median +1h return R" — the event study of `oiradar backtest`, run on one symbol's recent
stored history, for scan rows and watch alerts."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from oiradar.errors import NoDataError
from oiradar.research.backtest import BacktestRequest
from oiradar.research.summary import PRIMARY_MS
from oiradar.research.trades import study
from oiradar.services.backtest import load_samples
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import Regime
from oiradar.store import Store
from oiradar.units import DAY_MS, HOUR_MS

# Below a day of stored history a count of past events says nothing ("0 similar events"
# after two hours of recording read as a verdict): the record says so instead.
MIN_HISTORY_MS = DAY_MS


@dataclass(frozen=True, slots=True)
class Track:
    """K events of the same regime whose +1h outcome is known, over the last `days` (the
    whole lookback, or the whole days stored when fewer); `stored_ms` of history in it."""

    days: int
    events: int
    hit_pct: float | None
    median_1h_pct: float | None
    stored_ms: int = 30 * DAY_MS

    @property
    def enough(self) -> bool:
        return self.stored_ms >= MIN_HISTORY_MS

    def text(self, symbol: str) -> str:
        if not self.enough:
            held = f"{self.stored_ms / HOUR_MS:.0f} h stored"
            return f"on {symbol}: not enough history for a track record ({held})"
        head = f"on {symbol} in the last {self.days} days: {self.events} similar event"
        head += "" if self.events == 1 else "s"
        if not self.events or self.hit_pct is None or self.median_1h_pct is None:
            return head
        return f"{head}; hit rate {self.hit_pct:.0f} %, median +1h {self.median_1h_pct:+.2f} %"

    def short(self) -> str:
        if not self.enough:
            return "not enough history"
        if not self.events or self.hit_pct is None or self.median_1h_pct is None:
            return f"{self.events} ev/{self.days}d"
        return f"{self.events} ev/{self.days}d, hit {self.hit_pct:.0f}%, {self.median_1h_pct:+.2f}%"


def track_record(
    store: Store,
    venue: str,
    symbol: str,
    regime: Regime,
    now_ms: int,
    params: EngineParams,
    days: int = 30,
    interval: str = "5m",
) -> Track | None:
    """The symbol's recent record for events labelled `regime` at entry (None: no history)."""
    req = BacktestRequest(
        venue=venue,
        symbols=(symbol,),
        start_ms=now_ms - days * DAY_MS,
        end_ms=now_ms,
        interval=interval,
        params=replace(params, reference=False),
        control_per_event=0,
    )
    try:
        samples = load_samples(store, req)
    except NoDataError:
        return None
    g = samples[0].grid
    stored = min(int(g.ts[-1]) + g.bar_ms, now_ms) - max(int(g.ts[0]), now_ms - days * DAY_MS)
    covered = min(days, max(1, stored // DAY_MS))
    if stored < MIN_HISTORY_MS:
        return Track(covered, 0, None, None, max(0, stored))
    trades, _ = study(samples, req, req.params)
    r = trades.array(PRIMARY_MS)[trades.mask(regime=regime)]
    known = r[~np.isnan(r)]
    if len(known) == 0:
        return Track(covered, 0, None, None, stored)
    return Track(
        covered,
        len(known),
        float(np.mean(known > 0) * 100),
        round(float(np.median(known)), 4),
        stored,
    )
