"""OI over REST for a venue without an OI stream (Binance), inside `oiradar watch`.

Every close starts a sweep of all watched symbols as soon as the venue's clock passes it;
its readings, taken within the settle time (at least a sixth of a bar) after the close, are
stored as the bar-close OI (stamped at the close): the bar close then needs no OI-history
call, and in the simulator they equal the venue's own 5-minute history. At the venue's
weight limit a sweep of hundreds of symbols takes seconds, so the close sweep asks the
likeliest alerts first (`urgency`: the bar's biggest price moves) and hands each reading
over as it comes back (`VenueClient.snapshots`): the close steps those symbols meanwhile.
Between closes,
sweeps run as often as half of the weight budget left after one sweep per bar allows (never
faster than once a second), but none that would still run at the next close. A later
reading is stored at its own time; the bar then lacks OI and the close fills it from the
venue's history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from oiradar.errors import VenueError
from oiradar.lifecycle import cancel_and_wait
from oiradar.records import MarketSnapshot
from oiradar.services.watch.venue_status import VenueStatus, poll_interval_s
from oiradar.venues.base import VenueClient

log = logging.getLogger(__name__)
TICK_S = 0.02  # how often the venue clock is looked at for a close
Take = Callable[[list[MarketSnapshot], int | None], None]  # (readings, the close they are for)
Urgency = Callable[[list[str], int], list[str]]  # (symbols, close) -> the order to ask them in


class OIPoller:
    def __init__(
        self,
        client: VenueClient,
        status: VenueStatus,
        now_ms: Callable[[], int],
        take: Take,
        *,
        bar_ms: int,
        settle_ms: int,
        urgency: Urgency | None = None,
    ) -> None:
        self.client, self.status, self.now_ms, self.take = client, status, now_ms, take
        self.bar_ms, self.settle_ms, self.urgency = bar_ms, settle_ms, urgency
        self.swept = 0  # the newest close a sweep has finished for
        self._sweep_ms = 0  # venue ms the last sweep took

    def interval_s(self, symbols: int) -> float | None:
        """The cadence between closes its limits allow; None where it cannot poll."""
        cost = self.client.snapshot_cost(symbols)
        limiter = getattr(self.client, "limiter", None)
        if cost is None or limiter is None:
            return None
        budgets = {k: (float(b.limit), b.period_s) for k, b in limiter.budgets.items()}
        reserved = {k: units / (self.bar_ms / 1000) for k, units in cost.items()}  # the close's
        return poll_interval_s(cost, budgets, reserved)

    def at_close(self, ts_ms: int, close_ms: int) -> bool:
        """Whether a reading at `ts_ms` of the sweep of `close_ms` is that close's OI."""
        return 0 <= ts_ms - close_ms <= max(self.settle_ms, self.bar_ms // 6)

    async def closed(self, close_ms: int, timeout_s: float) -> None:
        """Until the sweep of `close_ms` is done (or `timeout_s` of wall time passed)."""
        deadline = time.monotonic() + timeout_s
        while self.swept < close_ms and time.monotonic() < deadline:
            await asyncio.sleep(TICK_S)

    async def run(self, symbols: list[str]) -> None:
        interval = self.interval_s(len(symbols))
        if interval is None:
            return
        self.status.poll_s = interval
        log.info(
            "venue=%s event=oi_poll symbols=%d cadence_s=%.2f",
            self.client.name,
            len(symbols),
            interval,
        )
        now = self.now_ms()
        self.swept = now - now % self.bar_ms
        next_regular = time.monotonic() + interval
        regular: asyncio.Task[None] | None = None
        try:
            while True:
                now = self.now_ms()
                close = now - now % self.bar_ms
                if close > self.swept:
                    # A sweep between closes still running (a slow venue or machine) gives
                    # way: the close's readings count only if taken right after it.
                    await _cancel(regular)
                    await self._sweep(symbols, close)
                    self.swept = close
                    next_regular = time.monotonic() + interval
                elif time.monotonic() >= next_regular and (regular is None or regular.done()):
                    if regular is not None and not regular.cancelled():
                        regular.result()  # a failure other than the venue's is not swallowed
                    next_regular = time.monotonic() + interval
                    if now + 2 * self._sweep_ms < close + self.bar_ms:  # done before the close
                        regular = asyncio.create_task(self._sweep(symbols, None))
                await asyncio.sleep(TICK_S)
        finally:
            await _cancel(regular)

    async def _sweep(self, symbols: list[str], close: int | None) -> None:
        started = self.now_ms()
        order = self.urgency(symbols, close) if close is not None and self.urgency else symbols
        if not await self._read(order, close):
            return
        self.status.polls += 1
        self._sweep_ms = max(0, self.now_ms() - started)

    async def _read(self, symbols: list[str], close: int | None) -> bool:
        """The sweep, each batch of readings handed over as it comes back; False if it
        failed (what came before the failure is kept)."""
        if not symbols:
            return True
        late = 0
        try:
            async with contextlib.aclosing(self.client.snapshots(symbols)) as arriving:
                async for snaps in arriving:
                    if close is not None:
                        late += sum(not self.at_close(s.ts_ms, close) for s in snaps)
                    self.take(snaps, close)
        except VenueError as exc:
            self.status.errors += 1
            self.status.last_error = str(exc)
            log.warning("venue=%s event=rest_error error=%s", self.client.name, exc)
            return False
        finally:
            if late:
                log.info("venue=%s event=oi_late close_ms=%d symbols=%d", self.client.name,
                         close, late)  # fmt: skip
        return True


async def _cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel `task` and wait for it to end; an error it ended with (not the venue's: those
    it reports itself) is not swallowed."""
    for exc in await cancel_and_wait([task]):
        raise exc
