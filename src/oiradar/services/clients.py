"""Venue clients for one service call: made for the venues asked, closed however it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from oiradar.venues.base import VenueClient
from oiradar.venues.registry import client


@asynccontextmanager
async def venue_clients(
    venues: Sequence[str], endpoint: str | None = None, **kw: Any
) -> AsyncIterator[list[VenueClient]]:
    """One REST client per venue (`endpoint`: every venue's requests go there, e.g. a
    simulator; `kw` as `venues.registry.client` takes them), in the order given."""
    clients = [client(v, endpoint, **kw) for v in venues]
    try:
        yield clients
    finally:
        for c in clients:
            await c.close()
