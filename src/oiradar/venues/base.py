"""The one small async interface every venue connector implements.

Connectors speak canonical symbols (`BTCUSDT`) and return normalized records only; the
venue's own ids (`BTC-USDT-SWAP`), units (contracts, two-sided OI) and orderings stay
inside its module. Histories are returned oldest first and complete for the range asked
(the connector pages as the venue requires).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Self

from oiradar.records import (
    Candle,
    FundingSample,
    Instrument,
    MarketSnapshot,
    OISample,
    Positioning,
    PremiumBar,
)


class VenueClient(ABC):
    name: str

    @abstractmethod
    async def instruments(self) -> list[Instrument]:
        """Live USDT-margined linear perpetuals (cached after the first call)."""

    @abstractmethod
    async def snapshot(self, symbols: Sequence[str] | None = None) -> list[MarketSnapshot]:
        """Price, OI and funding now for `symbols` (None = all), in as few calls as possible."""

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


def decimal(value: object) -> float:
    """A venue's decimal string (or number) as float; the one place strings become numbers."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.strip():
        return float(value)
    raise ValueError(f"not a number: {value!r}")
