"""The one small interface every venue's WebSocket feed implements (for `oiradar watch`).

A stream connects, subscribes, keeps the connection alive the venue's way (pings, pongs),
reconnects with exponential backoff and jitter after any drop (including the venues' 24 h
cuts), resubscribes, drops exact duplicate messages, and hands normalized records to a
callback: `Liquidation` (side = the liquidated *position*) and `MarketSnapshot` updates
(OI, funding, mark price, whichever the venue streams). Raw payloads never leave the module.
"""

from __future__ import annotations

import asyncio
import random
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from oiradar.records import Liquidation, MarketSnapshot

StreamRecord = Liquidation | MarketSnapshot
Handler = Callable[[StreamRecord], Awaitable[None] | None]


class LiquidationFeed(StrEnum):
    """How much of a venue's liquidations its public stream shows (say so on every figure)."""

    COMPLETE = "complete"  # Bybit allLiquidation
    SAMPLED = "sampled"  # Binance, OKX: at most one order per symbol per second
    NONE = "none"  # Bitget: no public liquidation feed


class State(StrEnum):
    CONNECTING = "connecting"
    LIVE = "live"
    BACKOFF = "backoff"
    STOPPED = "stopped"


@dataclass(slots=True)
class StreamStats:
    state: State = State.STOPPED
    connects: int = 0
    disconnects: int = 0
    messages: int = 0
    duplicates: int = 0
    records: int = 0
    last_message_ms: int | None = None  # venue time of the newest message
    last_error: str | None = None
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (down since, back at) ms


class Dedupe:
    """Remembers the last `size` message fingerprints; duplicated messages are dropped."""

    def __init__(self, size: int = 4096) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def fresh(self, fingerprint: str) -> bool:
        if fingerprint in self._seen:
            self._seen.move_to_end(fingerprint)
            return False
        self._seen[fingerprint] = None
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return True


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with full jitter: reconnect storms spread out."""
    return random.uniform(0, min(max_s, base_s * 2**attempt))


class VenueStream(ABC):
    name: str
    liquidations: LiquidationFeed

    @abstractmethod
    async def run(self, symbols: Sequence[str] | None, on_record: Handler) -> None:
        """Stream until cancelled; `symbols` None = every listed perpetual."""

    @property
    @abstractmethod
    def stats(self) -> StreamStats:
        """Connection state and counters (for `oiradar status`)."""


async def deliver(handler: Handler, record: StreamRecord) -> None:
    """Call a sync or async handler."""
    result = handler(record)
    if asyncio.iscoroutine(result):
        await result
