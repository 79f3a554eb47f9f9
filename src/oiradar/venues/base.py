"""The one small async interface every venue connector implements, and the boundary helpers
every venue's `wire` module reads payloads with (written once here).

Connectors speak canonical symbols (`BTCUSDT`) and return normalized records only; the
venue's own ids (`BTC-USDT-SWAP`), units (contracts, two-sided OI) and orderings stay
inside its package. Histories are returned oldest first and complete for the range asked
(the connector pages as the venue requires).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, ParamSpec, Self, TypeVar

from oiradar.errors import RateLimited, UserError, VenueError, VenueProtocolError
from oiradar.records import (
    Candle,
    FundingSample,
    Instrument,
    LiquidationBar,
    MarketSnapshot,
    OISample,
    Positioning,
    PremiumBar,
)
from oiradar.units import MINUTE_MS, interval_name

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")
ErrorOf = Callable[[str, str], VenueError]  # (venue, message) -> the error to raise
# What a parser raises when a payload lacks a documented field or has another shape.
UNREADABLE = (KeyError, IndexError, TypeError, ValueError, AttributeError)


class VenueClient(ABC):
    name: str

    @abstractmethod
    async def instruments(self) -> list[Instrument]:
        """Live USDT-margined linear perpetuals (cached after the first call)."""

    @abstractmethod
    async def snapshot(self, symbols: Sequence[str] | None = None) -> list[MarketSnapshot]:
        """Price, OI and funding now for `symbols` (None = all), in as few calls as possible."""

    async def snapshots(
        self, symbols: Sequence[str] | None = None
    ) -> AsyncGenerator[list[MarketSnapshot], None]:
        """`snapshot(symbols)` in batches, each as soon as it is known: a venue that pays a
        request per symbol (Binance's OI) yields them as they come back, so a caller starts on
        the first while the rest are out; the others yield their one bulk answer. Close it
        (`contextlib.aclosing`) if you stop early: the requests still out are cancelled."""
        yield await self.snapshot(symbols)

    @abstractmethod
    async def oi_history(
        self, symbol: str, period_ms: int, start_ms: int, end_ms: int
    ) -> list[OISample]:
        """OI snapshots in [start, end], oldest first; [] where the venue keeps none."""

    @abstractmethod
    async def klines(
        self, symbol: str, interval_ms: int, start_ms: int, end_ms: int
    ) -> list[Candle]:
        """Bars opening in [start, end], oldest first; the last may still be forming (its close
        is the latest price), as the venues serve it."""

    @abstractmethod
    async def funding_history(self, symbol: str, start_ms: int, end_ms: int) -> list[FundingSample]:
        """Settled funding rates in [start, end], oldest first."""

    async def premium_history(
        self, symbol: str, interval_ms: int, start_ms: int, end_ms: int
    ) -> list[PremiumBar]:
        """Premium-index bars opening in [start, end], oldest first (the last may still be
        forming); [] where the venue publishes no premium history."""
        return []

    async def positioning_history(
        self, symbol: str, period_ms: int, start_ms: int, end_ms: int
    ) -> list[Positioning]:
        """Positioning samples in [start, end], oldest first, one per period close; [] where
        the venue publishes no positioning history."""
        return []

    async def liquidation_history(
        self, symbol: str, interval_ms: int, start_ms: int, end_ms: int
    ) -> list[LiquidationBar]:
        """Per-bar liquidation totals by side of the liquidated position, bars opening in
        [start, end], oldest first; [] where the venue publishes none (most: only streams)."""
        return []

    def snapshot_cost(self, symbols: int) -> dict[str, float] | None:
        """Limiter units per bucket that `snapshot()` of `symbols` symbols spends, so a poller
        can compute the fastest cadence the venue allows; None where polling is not needed."""
        return None

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def interval_param(venue: str, table: Mapping[int, str], ms: int, what: str) -> str:
    """The venue's name for a bar or period length (`table`: ms -> its name); a length it
    does not publish is the user's choice to change, named with the ones it does."""
    name = table.get(ms)
    if name is None:
        known = ", ".join(interval_name(k) for k in table)
        raise UserError(f"{venue} has no {interval_name(ms)} {what}: use one of {known}")
    return name


def decimal(value: object) -> float:
    """A venue's decimal string (or number) as float; the one place strings become numbers."""
    if type(value) is str:  # most values, tens of thousands a scan: the cheapest test first
        with contextlib.suppress(ValueError):
            return float(value)
    elif isinstance(value, int | float):
        return float(value)
    raise ValueError(f"not a number: {value!r}")


def opt_decimal(value: object) -> float | None:
    """A decimal the venue may omit or send empty ("" before a first trade, on delivery
    contracts): absent, not zero."""
    return None if value is None or value == "" else decimal(value)


def reads(venue: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Marks a payload parser: a payload it cannot read means the venue changed it, so it
    raises `VenueProtocolError` (never retried, logged loud) naming the parser, not a crash."""

    def wrap(parse: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(parse)
        def parsed(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return parse(*args, **kwargs)
            except UNREADABLE as exc:
                what = f"{parse.__name__}: {type(exc).__name__} {exc}"
                raise VenueProtocolError(venue, f"unreadable payload, {what}") from exc

        return parsed

    return wrap


def rate_limited(seconds: float) -> ErrorOf:
    """An error-table entry for a code that means "wait `seconds`"."""
    return lambda venue, message: RateLimited(venue, message, seconds)


def code_error(
    venue: str, table: Mapping[Any, ErrorOf], code: object, message: str, unknown: str = ""
) -> VenueError:
    """The error a venue's envelope code means, by its table; a code the table lacks is a
    protocol change (`unknown`, when given, is that case's message)."""
    make = table.get(code)
    return make(venue, message) if make else VenueProtocolError(venue, unknown or message)


def routed(
    table: Mapping[Any, Callable[P, Iterable[R]]], key: object, *args: P.args, **kwargs: P.kwargs
) -> list[R]:
    """The records the handler `table` routes `key` to reads from the payload; none for a key
    it does not route (acks, pongs, channels not read)."""
    handler = table.get(key)
    return [] if handler is None else list(handler(*args, **kwargs))


def spaced_funding(
    venue: str, symbol: str, settled: Mapping[int, float], start_ms: int, end_ms: int,
    lone_h: float,
) -> list[FundingSample]:  # fmt: skip
    """Settlements in [start, end], oldest first, for venues whose rows carry no interval:
    each one's is the gap from the previous settlement, to the minute (some venues stamp a
    second or two past the hour); the oldest takes its successor's, a lone one `lone_h`.
    `settled` may reach before `start` for that."""
    times = sorted(settled)
    gaps = [round((b - a) / MINUTE_MS) / 60 for a, b in itertools.pairwise(times)]
    hours = [gaps[0], *gaps] if gaps else [lone_h] * len(times)
    return [
        FundingSample(venue, symbol, t, settled[t], h)
        for t, h in zip(times, hours, strict=True)
        if start_ms <= t <= end_ms
    ]


def newest_open(end_ms: int, now_ms: int, step: int, size: int) -> int:
    """The newest bar open a backwards walk of `size`-bar windows asks for: the `end_ms`
    asked, unless its first window would lie wholly past the venue's clock (empty, so read
    as the series' start). Not the clock itself: a `Date` header's clock (whole seconds, run
    on since) may be behind the venue, and clamping to it hid the newest closed bars (in
    the simulator at speed 120, a clock a few wall seconds old hid whole bars from every
    retry of a close)."""
    return min(end_ms, now_ms + (size - 1) * step) // step * step


async def windows_back(
    lo: int, hi: int, step: int, size: int, fetch: Callable[[int, int], Awaitable[list[Candle]]]
) -> list[Candle]:
    """Bars opening in [lo, hi] (on the `step` grid), oldest first, asked `size` bars a
    window from the newest back; a window that comes back short at its old end is where the
    series begins, so nothing older is asked for."""
    found: dict[int, Candle] = {}
    while hi >= lo:
        first = max(lo, hi - (size - 1) * step)
        page = [c for c in await fetch(first, hi) if first <= c.ts_ms <= hi]
        found.update((c.ts_ms, c) for c in page)
        if not page or min(c.ts_ms for c in page) > first:
            break
        hi = first - step
    return [found[t] for t in sorted(found)]
