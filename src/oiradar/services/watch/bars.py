"""The bars `oiradar watch` builds from its own streams, kept in memory until stepped.

A bar the streams delivered whole (its closed candle, an OI sample inside it, the
liquidation feed connected from before its open) is stepped from memory: no REST call and
no store read, all symbols of a close at once in a worker thread (`live_many.step_many`).
It is the bar `build_grid` makes of the same rows once stored (a test holds them equal), so
it reads as `oiradar analyze` reads them. Anything less (a lost close message, a drop, a
restart) goes the store way: REST fills what the store lacks, and the bar is read back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from oiradar.records import Candle, FundingSample, MarketSeries, OISample
from oiradar.signals.live import Bar, LiveState
from oiradar.signals.live_many import step_many
from oiradar.signals.reading import MarketReading
from oiradar.units import HOUR_MS, MINUTE_MS

MAX_FUNDING_AGE_H = 24.0  # as `build_grid`'s default: older funding is unknown

I64, F64 = np.int64, np.float64


@dataclass(slots=True)
class SymbolBars:
    """One symbol's streamed data for bars not stepped yet: closed candles and the newest OI
    sample per bar (by bar open), and the newest settled funding known."""

    candles: dict[int, Candle] = field(default_factory=dict)
    oi: dict[int, tuple[int, float]] = field(default_factory=dict)  # open -> (ts, OI base)
    funding: FundingSample | None = None


class BarBook:
    """Also holds the streamed candles back from the store until their close is stepped:
    the store's readers (the dashboard) take a bar's candle as the sign that the bar is
    complete, so it must not land before the OI and liquidations that close it.

    With `close_oi_only` (a venue whose OI is polled) a bar is whole only with a sample
    stamped at its close: a mid-bar poll is not the close OI the venue's history holds."""

    def __init__(self, bar_ms: int, *, close_oi_only: bool = False) -> None:
        self.bar_ms, self.close_oi_only = bar_ms, close_oi_only
        self.symbols: dict[str, SymbolBars] = {}
        self._unstored: list[Candle] = []

    def take_unstored(self, upto: int | None = None) -> list[Candle]:
        """The streamed candles opening at or before `upto` (None: all), for the store."""
        out = [c for c in self._unstored if upto is None or c.ts_ms <= upto]
        self._unstored = [c for c in self._unstored if upto is not None and c.ts_ms > upto]
        return out

    def _of(self, symbol: str) -> SymbolBars:
        book = self.symbols.get(symbol)
        if book is None:
            book = self.symbols[symbol] = SymbolBars()
        return book

    def add_candle(self, candle: Candle) -> None:
        if candle.interval_ms == self.bar_ms:
            self._of(candle.symbol).candles[candle.ts_ms] = candle
            self._unstored.append(candle)

    def add_oi(self, symbol: str, ts_ms: int, oi_base: float) -> None:
        """A sample at (or just before) a close belongs to the bar it closes, as in the grid."""
        bars = self._of(symbol).oi
        bar_open = (ts_ms - 1) // self.bar_ms * self.bar_ms
        held = bars.get(bar_open)
        if held is None or ts_ms >= held[0]:
            bars[bar_open] = (ts_ms, oi_base)

    def by_move(self, symbols: list[str], close: int) -> list[str]:
        """`symbols` by the size of the price move of the bar closing at `close`, biggest
        first: where an alert is likeliest (covering moves price). A bar whose closing
        candle has not come yet could be any move: those go first too."""
        bar_open = close - self.bar_ms

        def move(symbol: str) -> float:
            book = self.symbols.get(symbol)
            c = book.candles.get(bar_open) if book else None
            if c is None or not c.open > 0:
                return math.inf
            return abs(c.close / c.open - 1.0)

        return sorted(symbols, key=move, reverse=True)

    def add_funding(self, sample: FundingSample) -> None:
        book = self._of(sample.symbol)
        if book.funding is None or sample.ts_ms >= book.funding.ts_ms:
            book.funding = sample

    def prune(self, symbol: str, upto: int) -> None:
        """Forget the bars opening at or before `upto` (stepped)."""
        book = self._of(symbol)
        for bars in (book.candles, book.oi):
            for bar_open in [b for b in bars if b <= upto]:
                del bars[bar_open]

    def _whole(
        self, symbol: str, bar_open: int, liq: list[float] | None, covered_since: int | None
    ) -> tuple[Candle, tuple[int, float], FundingSample | None] | None:
        """(candle, OI sample, funding in force) of a bar the streams delivered whole."""
        book = self.symbols.get(symbol)
        candle = book.candles.get(bar_open) if book else None
        oi = book.oi.get(bar_open) if book else None
        close = bar_open + self.bar_ms
        if book is None or candle is None or oi is None:
            return None
        if self.close_oi_only and oi[0] != close:
            return None
        if liq is not None and (covered_since is None or covered_since > bar_open):
            return None
        funding = book.funding if book.funding and book.funding.ts_ms <= close else None
        return candle, oi, funding

    def bar(
        self, symbol: str, bar_open: int, liq: list[float] | None, covered_since: int | None
    ) -> Bar | None:
        """The bar opening at `bar_open` as the engine steps it, or None if the streams did
        not deliver it whole. `liq` is the bar's [long, short] USD, None for a venue without
        a liquidation feed; `covered_since` when that feed has been connected since (None:
        not now). Built directly (`build_grid` costs ~1 ms a call, seconds over 2,000
        series); `series` is the same bar for `build_grid`, and a test holds the two equal."""
        whole = self._whole(symbol, bar_open, liq, covered_since)
        if whole is None:
            return None
        candle, oi, funding = whole
        close = bar_open + self.bar_ms
        rate = ivl = math.nan
        if funding is not None:
            age_h = (close - funding.ts_ms) / HOUR_MS
            ivl_or_8 = 8.0 if math.isnan(funding.interval_h) else funding.interval_h
            if not age_h > max(MAX_FUNDING_AGE_H, 2 * ivl_or_8):
                rate, ivl = funding.rate, funding.interval_h
        taker = candle.taker_buy_base
        return Bar(
            bar_open,
            candle.close,
            candle.volume_base,
            oi[1],
            math.nan if liq is None else liq[0],
            math.nan if liq is None else liq[1],
            rate,
            ivl,
            math.nan if taker is None else taker,
        )

    def series(
        self,
        venue: str,
        symbol: str,
        bar_open: int,
        liq: list[float] | None,
        covered_since: int | None,
    ) -> MarketSeries | None:
        """The bar opening at `bar_open` as a one-bar series (as the store would give it to
        `build_grid`), or None if the streams did not deliver it whole (see `bar`)."""
        whole = self._whole(symbol, bar_open, liq, covered_since)
        if whole is None:
            return None
        candle, oi, funding = whole
        close = bar_open + self.bar_ms
        taker = candle.taker_buy_base
        tracked = liq is not None
        return MarketSeries(
            venue,
            symbol,
            self.bar_ms,
            np.array([bar_open], I64),
            np.array([candle.open]),
            np.array([candle.high]),
            np.array([candle.low]),
            np.array([candle.close]),
            np.array([candle.volume_base]),
            np.array([oi[0]], I64),
            np.array([oi[1]]),
            np.array([funding.ts_ms] if funding else [], I64),
            np.array([funding.rate] if funding else [], F64),
            np.array([funding.interval_h] if funding else [], F64),
            np.array([bar_open] if liq else [], I64),
            np.array([liq[0]] if liq else [], F64),
            np.array([liq[1]] if liq else [], F64),
            liq_coverage=tracked,
            liq_bar_ts=np.empty(0, I64),
            liq_spans=np.array([[covered_since or 0, close]], I64)
            if tracked
            else np.empty((0, 2), I64),
            liq_tracked=tracked,
            taker_buy=np.array([math.nan if taker is None else taker]),
        )


class MinuteOI:
    """The streamed OI the store gets: the last sample of each venue minute per symbol.

    Ticker channels push OI with every change (Bitget ~6 a second per symbol at 500
    symbols, ~8,000 rows a second over four venues): storing each one kept the writer
    thread, and the GIL it holds while building rows, busy for nothing, since every bar of
    every interval (whole minutes, `build_grid`: the last sample in (open, close]) reads
    the same value from the last sample of each minute. A minute's last sample is stored
    when the next minute's first arrives, or at a close (`take`, before the close reads the
    store), or at a stop."""

    def __init__(self) -> None:
        self._pending: dict[str, OISample] = {}
        self._stored: dict[str, int] = {}  # symbol -> time of the last sample stored

    def add(self, sample: OISample) -> OISample | None:
        """Takes the newest sample; returns one to store now (a minute that has ended)."""
        prev = self._pending.get(sample.symbol)
        if prev is not None and sample.ts_ms < prev.ts_ms:  # a reordered message
            older = _minute(sample.ts_ms) < _minute(prev.ts_ms)
            return sample if older else None  # a newer one of its minute is pending
        self._pending[sample.symbol] = sample
        if prev is None or _minute(prev.ts_ms) == _minute(sample.ts_ms):
            return None
        return self._mark(prev)

    def take(self, upto_ms: int | None = None) -> list[OISample]:
        """The pending samples at or before `upto_ms` (None: all) not stored yet."""
        return [
            s
            for s in list(self._pending.values())
            if (upto_ms is None or s.ts_ms <= upto_ms) and self._mark(s) is not None
        ]

    def _mark(self, sample: OISample) -> OISample | None:
        if self._stored.get(sample.symbol) == sample.ts_ms:
            return None
        self._stored[sample.symbol] = sample.ts_ms
        return sample


def _minute(ts_ms: int) -> int:
    """The minute a sample belongs to, as a bar (open, close] holds it."""
    return (ts_ms - 1) // MINUTE_MS


def step_streamed(work: list[tuple[str, LiveState, Bar]]) -> list[tuple[str, MarketReading]]:
    """Step each state by its bar, the rules read once for all (in a worker thread: the loop
    keeps checking liquidation bursts meanwhile; no other code touches these states until it
    returns)."""
    readings = step_many([state for _, state, _ in work], [bar for _, _, bar in work])
    return [(symbol, r) for (symbol, _, _), r in zip(work, readings, strict=True)]
