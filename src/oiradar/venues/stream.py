"""The one small interface every venue's WebSocket feed implements (for `oiradar watch`).

A stream connects, subscribes, keeps the connection alive the venue's way (pings, pongs),
reconnects with exponential backoff and jitter after any drop (including the venues' 24 h
cuts), resubscribes, drops exact duplicate messages (`venues.wsstream.WsStream`, the loop
every venue shares, does all of that), and hands normalized records to a callback:
`Liquidation` (side = the liquidated *position*), `MarketSnapshot` updates (OI, funding, mark
price, whichever the venue streams) and, once `want_candles` asked for them, `Candle`s of
closed bars only (the venue's closed-bar flag; running bars are dropped at the boundary). Raw
payloads never leave the module.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from oiradar.records import Candle, Liquidation, LiquidationFeed, MarketSnapshot

StreamRecord = Liquidation | MarketSnapshot | Candle
Handler = Callable[[StreamRecord], Awaitable[None] | None]


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
    stopped_live: bool = False  # stopped while live: connected up to last_message_ms


def envelope_ms(msg: Any) -> int | None:
    """The venue time a message carries in its top-level `ts` (Bybit's and Bitget's pushes)."""
    ts = msg.get("ts") if isinstance(msg, dict) else None
    return ts if isinstance(ts, int) else None


class VenueStream(ABC):
    name: str
    liquidations: LiquidationFeed
    streams_oi = True  # False: OI must be polled over REST (Binance)
    candle_ms: int | None = None  # the bar size whose closed candles are streamed (None: none)

    def want_candles(self, interval_ms: int) -> bool:
        """Stream closed candles of `interval_ms` from the next connection on; False where
        the venue's stream has no such channel (then candles come from REST)."""
        return False

    def streams_candles(self, symbol: str) -> bool:
        """Whether `symbol`'s closed candles come from the stream (a venue whose subscription
        cap leaves some symbols to REST says no for those)."""
        return self.candle_ms is not None

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
