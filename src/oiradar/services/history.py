"""History as context: "on this symbol in the last N days, K similar events; hit rate H,
median +1h return R" — the event study of `oiradar backtest`, run on one symbol's recent
stored history, for scan rows, and kept precomputed for watch alerts (`TrackBook`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from oiradar.errors import NoDataError
from oiradar.research.request import BacktestRequest
from oiradar.research.summary import PRIMARY_MS
from oiradar.research.trades import study
from oiradar.services.analyze import WARMUP_DAYS_MS
from oiradar.services.backtest import load_samples
from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import COVERING, Regime
from oiradar.store import Store
from oiradar.units import DAY_MS, HOUR_MS, interval_ms

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


def _stored_ms(first_ms: int, last_open_ms: int, bar_ms: int, now_ms: int, days: int) -> int:
    """History held within the lookback: from its first bar (or the lookback's start) to the
    last bar's close (or now)."""
    return min(last_open_ms + bar_ms, now_ms) - max(first_ms, now_ms - days * DAY_MS)


def _young(stored_ms: int) -> Track | None:
    """The record of a symbol holding under a day (the hours it holds); None from a day."""
    return Track(1, 0, None, None, max(0, stored_ms)) if stored_ms < MIN_HISTORY_MS else None


def track_records(
    store: Store,
    venue: str,
    symbol: str,
    now_ms: int,
    params: EngineParams,
    regimes: tuple[Regime, ...] = COVERING,
    days: int = 30,
    interval: str = "5m",
) -> dict[Regime, Track] | None:
    """The symbol's recent record for events labelled each of `regimes` at entry, from one
    study of its last `days` (None: no history)."""
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
    stored = _stored_ms(int(g.ts[0]), int(g.ts[-1]), g.bar_ms, now_ms, days)
    covered = min(days, max(1, stored // DAY_MS))
    if stored < MIN_HISTORY_MS:
        return dict.fromkeys(regimes, Track(covered, 0, None, None, max(0, stored)))
    trades, _ = study(samples, req, req.params)
    out = {}
    for regime in regimes:
        r = trades.array(PRIMARY_MS)[trades.mask(regime=regime)]
        known = r[~np.isnan(r)]
        out[regime] = (
            Track(covered, 0, None, None, stored)
            if len(known) == 0
            else Track(
                covered,
                len(known),
                float(np.mean(known > 0) * 100),
                round(float(np.median(known)), 4),
                stored,
            )
        )
    return out


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
    records = track_records(store, venue, symbol, now_ms, params, (regime,), days, interval)
    return None if records is None else records[regime]


@dataclass(slots=True)
class TrackBook:
    """The watched symbols' track records, computed off the alert path: `refresh_due` runs
    the studies in the background (on the daemon's history thread) and an alert `read`s its
    symbol's record instead of running a 30-day study itself.

    A record is refreshed once it is `refresh_ms` old in venue time (a 30-day record gains at
    most an event's outcome an hour). Under a day of history there is no study to run, only
    the hours stored to tell, which the book tells from the first stored bar (`cached`; one
    span query in `read` before it is known: a first day's alerts at a bar close loaded a
    month of rows each on the history threads); the background checks it hourly (the same
    query; a symbol with nothing stored yet at every call) and studies it once it holds a
    day."""

    params: EngineParams
    refresh_ms: int = HOUR_MS
    days: int = 30
    interval: str = "5m"
    records: dict[tuple[str, str], dict[Regime, Track]] = field(default_factory=dict)
    checked: dict[tuple[str, str], int] = field(default_factory=dict)  # venue ms of last look
    # The first stored bar of the symbols holding under a day (their record is the hours).
    firsts: dict[tuple[str, str], int] = field(default_factory=dict)

    def refresh_due(self, store: Store, watched: Iterable[tuple[str, str, int]]) -> int:
        """Study every watched (venue, symbol, its venue's now) whose record is due and that
        holds a day of history; returns how many were studied."""
        studied = 0
        for venue, symbol, now_ms in watched:
            key = (venue, symbol)
            last = self.checked.get(key)
            if now_ms <= 0 or (last is not None and 0 <= now_ms - last < self.refresh_ms):
                continue  # the venue's time is not known yet, or the record is fresh
            stored = self._stored(store, venue, symbol, now_ms)
            if stored is None:
                continue  # nothing stored yet: looked at again on the next call
            self.checked[key] = now_ms
            if stored >= MIN_HISTORY_MS:
                self._study(store, venue, symbol, now_ms)
                studied += 1
        return studied

    def cached(self, venue: str, symbol: str, regime: Regime, now_ms: int) -> Track | None:
        """What `read` would return, where it is known without the store (None: call `read`):
        the alert path asks here first, on the loop, so that an alert does not queue on the
        history threads behind a bar close's other alerts (a burst escalation waited p99
        0.7 s there in bench/watch.py). Under a day, the hours run from the first stored
        bar to the newest closed bar's close, which the daemon stores at each close."""
        got = self.records.get((venue, symbol))
        if got is not None:
            return got.get(regime)
        first = self.firsts.get((venue, symbol))
        if first is None:
            return None
        bar = interval_ms(self.interval)
        return _young(_stored_ms(first, now_ms - now_ms % bar - bar, bar, now_ms, self.days))

    def read(
        self, store: Store, venue: str, symbol: str, regime: Regime, now_ms: int
    ) -> Track | None:
        """The alert path: the symbol's precomputed record; read here only when there is none
        yet (under a day of history, or before the background reached the symbol)."""
        got = self.records.get((venue, symbol))
        if got is not None and regime in got:
            return got[regime]
        stored = self._stored(store, venue, symbol, now_ms)
        if stored is not None and (young := _young(stored)) is not None:  # one span query
            return young
        fresh = self._study(store, venue, symbol, now_ms)
        return None if fresh is None else fresh.get(regime)

    def _stored(self, store: Store, venue: str, symbol: str, now_ms: int) -> int | None:
        """History held within the lookback (None: no candles)."""
        span = store.candle_span(
            venue, symbol, self.interval, now_ms - self.days * DAY_MS - WARMUP_DAYS_MS, now_ms
        )
        if span is None:
            return None
        stored = _stored_ms(span[0], span[1], interval_ms(self.interval), now_ms, self.days)
        if stored < MIN_HISTORY_MS:
            self.firsts[(venue, symbol)] = span[0]
        else:
            self.firsts.pop((venue, symbol), None)
        return stored

    def _study(
        self, store: Store, venue: str, symbol: str, now_ms: int
    ) -> dict[Regime, Track] | None:
        got = track_records(
            store, venue, symbol, now_ms, self.params, COVERING, self.days, self.interval
        )
        key = (venue, symbol)
        if got is not None and all(t.enough for t in got.values()):
            self.records[key] = got  # under a day the hours stored change: never kept
            self.checked[key] = now_ms
        else:
            self.records.pop(key, None)
        return got
