"""The underlying market every simulated venue serves: per-symbol base bars, lazily built.

A `SymbolData` holds contiguous base bars (1 m for the synthetic model, the data's own bar
for recorded history): OHLC, volume, OI in base units at the bar close, the funding rate in
force during the bar and liquidation totals by side of the liquidated position; and the
order flow and positioning: taker-buy volume (base units), the premium index at the bar
close (a fraction) and three long/short ratios at the bar close. The query helpers below
answer "as of simulated time `now`" and never look past it.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
INTEREST_8H = 0.0001  # the interest part of an 8-hour funding rate (0.01 %)


@dataclass(frozen=True, slots=True)
class SymbolData:
    symbol: str
    base: str
    bar_ms: int
    ts: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    oi: F64
    funding: F64
    liq_long: F64
    liq_short: F64
    funding_interval_h: float = 8.0
    taker_buy: F64 | None = None  # None: half of the volume
    premium: F64 | None = None  # None: the funding rate less its interest part
    ls_top_account: F64 | None = None  # long/short ratios; None: 1.0 (balanced)
    ls_top_position: F64 | None = None
    ls_account: F64 | None = None
    # Every WebSocket push tick (ten a wall second, per symbol and venue) asks for the forced
    # orders of a few hundred ms: each bar's orders, drawn once per venue seed, are kept here
    # with their times for a bisect (`liquidation_orders`); a `replace`d copy starts empty.
    _orders: dict[tuple[int, int], tuple[list[int], tuple[LiqOrder, ...]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _first_ms: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.ts):
            object.__setattr__(self, "_first_ms", int(self.ts[0]))

    @property
    def first_ms(self) -> int:
        """Open of the first bar (kept: every request asks it); an empty series has none."""
        if not len(self.ts):
            raise IndexError(f"{self.symbol} has no bars")
        return self._first_ms

    @property
    def end_ms(self) -> int:
        """Close of the last bar: nothing exists after it."""
        return int(self.ts[-1]) + self.bar_ms

    @property
    def taker_buy_base(self) -> F64:
        return self.volume * 0.5 if self.taker_buy is None else self.taker_buy

    @property
    def premium_close(self) -> F64:
        """The premium index at each bar's close (a fraction)."""
        if self.premium is not None:
            return self.premium
        return self.funding * 8.0 / self.funding_interval_h - INTEREST_8H

    def ratios(self) -> tuple[F64, F64, F64]:
        """(top-trader accounts, top-trader positions, all accounts) long/short ratios."""
        ones = np.ones(len(self.ts))
        chosen = (self.ls_top_account, self.ls_top_position, self.ls_account)
        a, p, c = (ones if x is None else x for x in chosen)
        return a, p, c


@dataclass(slots=True)
class Market:
    """All symbols of the simulated market; `load` builds one symbol on first use."""

    symbols: list[str]
    load: Callable[[str], SymbolData]
    seed: int = 0
    _cache: dict[str, SymbolData] = field(default_factory=dict)
    _names: frozenset[str] = field(default=frozenset())

    def __post_init__(self) -> None:
        self._names = frozenset(self.symbols)

    def has(self, symbol: str) -> bool:
        return symbol in self._names

    def get(self, symbol: str) -> SymbolData:
        data = self._cache.get(symbol)
        if data is None:
            data = self._cache[symbol] = self.load(symbol)
        return data


# -- queries as of simulated time `now` ---------------------------------------------------


def completed(sd: SymbolData, now_ms: int) -> int:
    """Number of base bars closed at `now` (index of the first not-yet-closed bar)."""
    n = (now_ms - sd.first_ms) // sd.bar_ms
    return int(min(max(n, 0), len(sd.ts)))


def last_price(sd: SymbolData, now_ms: int) -> float:
    """The latest trade price at `now`: the running bar's open, else the last close."""
    i = completed(sd, now_ms)
    if i < len(sd.ts) and now_ms >= sd.first_ms:
        return float(sd.open[i])
    return float(sd.close[max(i - 1, 0)])


def oi_at(sd: SymbolData, ts_ms: int) -> float:
    """OI (base) of the last snapshot at or before `ts_ms` (snapshots are at bar closes)."""
    i = completed(sd, ts_ms)
    return float(sd.oi[max(i - 1, 0)])


def funding_now(sd: SymbolData, now_ms: int) -> tuple[float, int]:
    """(rate in force for the running interval, next settlement time)."""
    i = min(completed(sd, now_ms), len(sd.ts) - 1)
    step = int(sd.funding_interval_h * 3_600_000)
    return float(sd.funding[i]), (now_ms // step + 1) * step


def funding_history(
    sd: SymbolData, start_ms: int, end_ms: int, now_ms: int
) -> list[tuple[int, float]]:
    """Settled (time, rate) pairs in [start, end], none after now; ascending."""
    step = int(sd.funding_interval_h * 3_600_000)
    lo = max(start_ms, sd.first_ms + step)
    hi = min(end_ms, now_ms, sd.end_ms)
    if hi < lo:
        return []
    first = -(-lo // step) * step
    times = np.arange(first, hi + 1, step, dtype=np.int64)
    idx = np.clip((times - sd.first_ms) // sd.bar_ms - 1, 0, len(sd.ts) - 1)
    return [(int(t), float(r)) for t, r in zip(times, sd.funding[idx], strict=True)]


@dataclass(frozen=True, slots=True)
class Bars:
    """Aggregated bars (ascending); the last may still be forming (`closed` False)."""

    ts: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    quote_volume: F64
    trades: I64
    closed: NDArray[np.bool_]
    taker_buy: F64

    def share(self, fraction: float) -> Bars:
        """The same bars as one venue trades them: its share of volume and taker buying (as
        of OI), so its taker flow compares with its own OI."""
        return replace(
            self,
            volume=self.volume * fraction,
            quote_volume=self.quote_volume * fraction,
            taker_buy=self.taker_buy * fraction,
        )


def bars(
    sd: SymbolData, interval_ms: int, start_ms: int, end_ms: int, now_ms: int, offset_ms: int = 0
) -> Bars:
    """Bars of `interval_ms` (a multiple of the base bar) opening in [start, end], as of now.

    A running bar only aggregates the base bars already closed plus the running one's open.
    """
    if interval_ms % sd.bar_ms:
        raise ValueError(f"interval {interval_ms} is not a multiple of the base bar {sd.bar_ms}")
    k = interval_ms // sd.bar_ms
    n_done = completed(sd, now_ms)
    lo = max(start_ms, sd.first_ms)
    hi = min(end_ms, now_ms, sd.end_ms - 1)  # a bar cut short by the data end stays running
    # Bars open on multiples of the interval from the epoch, shifted by `offset_ms`
    # (weekly bars open on Mondays: offset 4 days, since 1970-01-01 was a Thursday).
    first = -(-(lo - offset_ms) // interval_ms) * interval_ms + offset_ms
    if hi < first:
        return _empty_bars()
    opens = np.arange(first, hi + 1, interval_ms, dtype=np.int64)
    i0 = (opens - sd.first_ms) // sd.bar_ms
    m = len(opens)
    full = int(np.count_nonzero(i0 + k <= n_done))  # only the last bar can still be forming
    o = sd.open[i0].copy()
    h, lo_, c = o.copy(), o.copy(), o.copy()
    v, q, tb = np.zeros(m), np.zeros(m), np.zeros(m)
    taker = sd.taker_buy_base
    if full:
        seg = slice(int(i0[0]), int(i0[0]) + full * k)
        h[:full] = sd.high[seg].reshape(full, k).max(axis=1)
        lo_[:full] = sd.low[seg].reshape(full, k).min(axis=1)
        c[:full] = sd.close[seg].reshape(full, k)[:, -1]
        v[:full] = sd.volume[seg].reshape(full, k).sum(axis=1)
        q[:full] = (sd.volume[seg] * sd.close[seg]).reshape(full, k).sum(axis=1)
        tb[:full] = taker[seg].reshape(full, k).sum(axis=1)
    if full < m:
        start = int(i0[full])
        if n_done > start:
            part = slice(start, n_done)
            h[full], lo_[full] = sd.high[part].max(), sd.low[part].min()
            c[full] = sd.close[n_done - 1]
            v[full] = sd.volume[part].sum()
            q[full] = (sd.volume[part] * sd.close[part]).sum()
            tb[full] = taker[part].sum()
    trades = (v * 7).astype(np.int64) + (v > 0)
    closed = np.arange(m) < full
    return Bars(opens, o, h, lo_, c, v, q, trades, closed, tb)


def _empty_bars() -> Bars:
    e = np.empty(0)
    return Bars(
        np.empty(0, np.int64), e, e, e, e, e, e, np.empty(0, np.int64), np.empty(0, np.bool_), e
    )


def premium_bars(
    sd: SymbolData, interval_ms: int, start_ms: int, end_ms: int, now_ms: int, offset_ms: int = 0
) -> Bars:
    """Premium-index bars (OHLC as fractions) like `bars`: a base bar opens at the previous
    close's premium and spans it and its own close; volume fields are zero."""
    close = sd.premium_close
    opened = np.concatenate([close[:1], close[:-1]])
    hi, lo = np.maximum(opened, close), np.minimum(opened, close)
    zero = np.zeros(len(sd.ts))
    view = replace(sd, open=opened, high=hi, low=lo, close=close, volume=zero, taker_buy=zero)
    b = bars(view, interval_ms, start_ms, end_ms, now_ms, offset_ms)
    return replace(b, trades=np.zeros(len(b.ts), np.int64))


@dataclass(frozen=True, slots=True)
class PositioningSnapshots:
    """Ratios at each snapshot time (as of the last closed base bar), and the taker buy and
    sell volumes (base units) over the period ending there."""

    ts: I64
    top_account: F64
    top_position: F64
    account: F64
    taker_buy: F64
    taker_sell: F64

    @property
    def taker_ratio(self) -> F64:
        """Taker buy / sell volume (NaN where nothing was sold)."""
        sold = np.where(self.taker_sell > 0, self.taker_sell, np.nan)
        return np.asarray(self.taker_buy / sold, dtype=np.float64)

    def __getitem__(self, keep: slice) -> PositioningSnapshots:
        return PositioningSnapshots(
            self.ts[keep],
            self.top_account[keep],
            self.top_position[keep],
            self.account[keep],
            self.taker_buy[keep],
            self.taker_sell[keep],
        )


def positioning_snapshots(
    sd: SymbolData, period_ms: int, start_ms: int, end_ms: int, now_ms: int
) -> PositioningSnapshots:
    """Every `period_ms` in [start, end] (a full period of data behind each), none after now."""
    lo = max(start_ms, sd.first_ms + period_ms)
    hi = min(end_ms, now_ms, sd.end_ms)
    times = np.arange(-(-lo // period_ms) * period_ms, hi + 1, period_ms, dtype=np.int64)
    if hi < lo:
        times = times[:0]
    idx = np.clip((times - sd.first_ms) // sd.bar_ms - 1, 0, len(sd.ts) - 1)
    a, p, c = sd.ratios()
    buy = np.concatenate([[0.0], np.cumsum(sd.taker_buy_base)])
    sold = np.concatenate([[0.0], np.cumsum(sd.volume - sd.taker_buy_base)])
    first = np.clip(idx + 1 - max(1, period_ms // sd.bar_ms), 0, None)
    b, q = buy[idx + 1] - buy[first], sold[idx + 1] - sold[first]
    return PositioningSnapshots(times, a[idx], p[idx], c[idx], b, q)


def oi_snapshots(
    sd: SymbolData, period_ms: int, start_ms: int, end_ms: int, now_ms: int
) -> tuple[I64, F64, F64]:
    """(snapshot time, OI base, OI USD) every `period_ms` in [start, end], none after now."""
    lo = max(start_ms, sd.first_ms + period_ms)
    hi = min(end_ms, now_ms, sd.end_ms)
    if hi < lo:
        return np.empty(0, np.int64), np.empty(0), np.empty(0)
    first = -(-lo // period_ms) * period_ms
    times = np.arange(first, hi + 1, period_ms, dtype=np.int64)
    idx = np.clip((times - sd.first_ms) // sd.bar_ms - 1, 0, len(sd.ts) - 1)
    oi = sd.oi[idx]
    return times, oi, oi * sd.close[idx]


@dataclass(frozen=True, slots=True)
class LiqOrder:
    ts_ms: int
    long: bool  # True: a long position was liquidated (the forced order sells)
    qty_base: float
    price: float


def liquidation_orders(sd: SymbolData, t0_ms: int, t1_ms: int, seed: int) -> list[LiqOrder]:
    """The individual forced orders in (t0, t1], split deterministically from bar totals."""
    if t1_ms <= t0_ms:
        return []
    first = sd.first_ms
    b0 = max((t0_ms - first) // sd.bar_ms, 0)
    b1 = min((t1_ms - first) // sd.bar_ms, len(sd.ts) - 1)
    out: list[LiqOrder] = []
    for b in range(int(b0), int(b1) + 1):  # bars are disjoint in time: `out` stays sorted
        times, orders = _bar_orders(sd, b, seed)
        out.extend(orders[bisect.bisect_right(times, t0_ms) : bisect.bisect_right(times, t1_ms)])
    return out


ORDER_BARS_KEPT = 512  # bars of forced orders kept per symbol (a few hours of 1 m bars)


def _bar_orders(sd: SymbolData, b: int, seed: int) -> tuple[list[int], tuple[LiqOrder, ...]]:
    """Bar `b`'s forced orders of both sides by time (a long before a short at the same ms),
    with their times."""
    key = (b, seed)
    got = sd._orders.get(key)
    if got is None:
        orders: list[LiqOrder] = []
        for side_long, total in ((True, sd.liq_long[b]), (False, sd.liq_short[b])):
            if total > 0:
                orders.extend(_split(sd, b, side_long, float(total), seed))
        orders.sort(key=lambda o: o.ts_ms)
        got = ([o.ts_ms for o in orders], tuple(orders))
        if len(sd._orders) >= ORDER_BARS_KEPT:
            del sd._orders[next(iter(sd._orders))]
        sd._orders[key] = got
    return got


def _split(
    sd: SymbolData, b: int, side_long: bool, total: float, seed: int
) -> tuple[LiqOrder, ...]:
    return _split_bar(
        sd.symbol,
        int(sd.ts[b]),
        sd.bar_ms,
        float(sd.low[b]),
        float(sd.high[b]),
        side_long,
        total,
        seed,
        b,
    )


# Every WebSocket push tick asks again for the orders of each symbol's running bar; drawing
# them is costly (a fresh seeded generator), and they are the same every time.
@functools.lru_cache(maxsize=65_536)
def _split_bar(
    symbol: str,
    t0: int,
    bar_ms: int,
    lo: float,
    hi: float,
    side_long: bool,
    total: float,
    seed: int,
    b: int,
) -> tuple[LiqOrder, ...]:
    rng = np.random.default_rng([seed, b, int(side_long), len(symbol), *symbol.encode()])
    typical = max(total / 8, 1e-12)
    n = int(min(60, max(1, round(total / typical * rng.uniform(0.5, 1.5)))))
    shares = rng.dirichlet(np.ones(n))
    offsets = np.sort(rng.integers(0, bar_ms, n))
    prices = lo + (hi - lo) * rng.uniform(0, 1, n)
    return tuple(
        LiqOrder(t0 + int(off), side_long, float(total * s), float(p))
        for off, s, p in zip(offsets, shares, prices, strict=True)
    )
