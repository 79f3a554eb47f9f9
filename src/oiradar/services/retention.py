"""Retention: raw data kept as per-bar values after an age, so a long run's store stays bounded.

`oiradar watch` stores every OI snapshot it polls or streams (Binance every few seconds per
symbol, OKX and Bybit as pushed) and every liquidation order: months of that is most of a
store, yet the engine reads one OI value and one liquidation sum per bar. `prune` reduces
what is older than `older_than` to exactly that (`Store.prune`); `oiradar prune` runs it
once, `watch --retain` hourly. Candles, funding, positioning and premium bars are per-bar
already and are kept.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from oiradar.clock import Clock, WallClock
from oiradar.errors import UserError
from oiradar.kinds import Kind
from oiradar.store import Store
from oiradar.units import DAY_MS, HOUR_MS, MINUTE_MS, iso

log = logging.getLogger(__name__)
MIN_AGE_MS = DAY_MS  # younger raw data may still be re-read by a running daemon's gap repair
EVERY_MS = HOUR_MS  # how often `watch --retain` prunes, in the venues' time
POLL_S = 60.0  # how often it looks at the venues' time (wall seconds)


@dataclass(frozen=True, slots=True)
class PruneRequest:
    older_than_ms: int
    bar_ms: int = 5 * MINUTE_MS  # the per-bar values kept: the daemon's bar


@dataclass(frozen=True, slots=True)
class PruneResult:
    cutoff_ms: int  # raw rows before this bar open were reduced
    removed: dict[Kind, int]


def check(req: PruneRequest) -> None:
    if req.older_than_ms < MIN_AGE_MS:
        raise UserError("retention under 1d is refused: a running daemon may still re-read it")


def prune(store: Store, req: PruneRequest, clock: Clock | None = None) -> PruneResult:
    """Reduce raw data older than `req.older_than_ms` (from `clock`'s now) to per-bar values."""
    check(req)
    now = (clock or WallClock()).now_ms()
    before = now - req.older_than_ms
    removed = store.prune(before, req.bar_ms)
    return PruneResult(before // req.bar_ms * req.bar_ms, removed)


async def keep_bounded(
    write: Callable[[Callable[[Store], PruneResult]], Awaitable[PruneResult]],
    req: PruneRequest,
    now_ms: Callable[[], int | None],
    every_ms: int = EVERY_MS,
    poll_s: float = POLL_S,
) -> None:
    """`prune` through the daemon's writer (`write`) once the venues' time (`now_ms`; None
    while no venue has told it) has moved `every_ms` since the last time: hourly on the
    venues' clock, so a simulator at 60x prunes every wall minute, as a month of it would
    live. Runs until cancelled."""
    check(req)
    last: int | None = None
    while True:
        now = now_ms()
        if now is not None and (last is None or now - last >= every_ms):
            last = now
            try:
                result = await write(functools.partial(prune, req=req, clock=_At(now)))
            except Exception as exc:  # a store hiccup: the next round retries
                log.warning("event=prune_failed error=%s", exc)
            else:
                log.info(
                    "event=pruned before=%s oi_rows=%d liquidation_orders=%d",
                    iso(result.cutoff_ms),
                    result.removed[Kind.OPEN_INTEREST],
                    result.removed[Kind.LIQUIDATION_ORDERS],
                )
        await asyncio.sleep(poll_s)


@dataclass(frozen=True, slots=True)
class _At:
    """A clock stopped at one time (the venues' now, read on the loop)."""

    ms: int

    def now_ms(self) -> int:
        return self.ms
