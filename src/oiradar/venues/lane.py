"""One market-data turn per pass of the event loop, for every stream of a process.

At a bar close every market-data connection has a backlog at once (30-odd of them at 500
symbols x 4 venues). Each taking its turn (`wsstream.FAIR_TURN_S`) in the same pass of the
loop made one pass last 30-odd turns, and a liquidation that arrived meanwhile was read only
in the next pass; a backlog on the liquidation connection itself drained one turn per pass.
Connections with a backlog queue here instead and take their turns one per pass, so a pass
lasts one turn and the liquidation feed, which never queues, is read within a turn or two
whatever the market data's backlog. A connection whose frame arrives at an idle lane takes
its turn at once: the lane costs nothing until connections contend.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque

_HANDED = object()  # the lane is given to a waiter that has not run yet


class Lane:
    """`await turn(who)` before handling a frame unless `holds(who)` (the same pass)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._owner: object | None = None
        self._waiting: deque[asyncio.Future[None]] = deque()

    def holds(self, who: object) -> bool:
        """True while `who`'s turn lasts: until the loop's next pass."""
        return self._owner is who

    async def turn(self, who: object) -> None:
        """Wait for a pass of the loop no other connection's turn has taken (FIFO)."""
        if self._owner is None and not self._waiting:
            self._grant(who)
            return
        fut = self._loop.create_future()
        self._waiting.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # handed over, then cancelled: pass it on
                self._owner = None
                self._hand()
            raise
        self._grant(who)

    def _grant(self, who: object) -> None:
        self._owner = who
        self._loop.call_soon(self._pass)  # runs in the next pass, after its poll for I/O

    def _pass(self) -> None:
        self._owner = None
        self._hand()

    def _hand(self) -> None:
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.done():  # a waiter cancelled meanwhile is skipped
                self._owner = _HANDED
                fut.set_result(None)
                return


_lanes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Lane] = weakref.WeakKeyDictionary()


def lane() -> Lane:
    """The running loop's lane (one per loop: every venue's stream shares it)."""
    loop = asyncio.get_running_loop()
    found = _lanes.get(loop)
    if found is None:
        found = _lanes[loop] = Lane(loop)
    return found
