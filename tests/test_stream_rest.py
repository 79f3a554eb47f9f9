"""A stream's start-up REST (its listing) goes through the client handed in: the daemon's,
whose limiter holds the venue's whole budget."""

from __future__ import annotations

import pytest

from oiradar.venues import registry
from oiradar.venues.http import RestClient
from oiradar.venues.stream import State
from oiradar.venues.wsstream import WsStream
from tests.simkit import running
from tests.streamkit import streaming, until

STARTUP_REST = ("bitget", "bybit", "dydx", "gate", "hyperliquid", "okx")


@pytest.mark.parametrize("venue", STARTUP_REST)
async def test_start_up_requests_spend_the_handed_in_clients_budget(venue: str) -> None:
    async with running(venues=(venue,)) as (sim, http):
        client = registry.client(venue, sim.url, session=http)
        assert isinstance(client, RestClient)
        stream = registry.stream(venue, sim.url, session=http, rest=client)
        assert isinstance(stream, WsStream)
        async with streaming(stream):  # every symbol listed: the stream asks the venue
            await until(lambda: stream.stats.state is State.LIVE, timeout=8)
        stats = sim.ctx.limits.stats[venue]
        assert stats.requests >= 1
        assert client.limiter.requests == stats.requests  # none by a client of its own
        await client.snapshot(None)  # still open: the stream does not close what it got
        await client.close()


def test_another_venues_client_is_refused_at_construction() -> None:
    """A client of the wrong venue would leave the stream's requests unpaced by the venue's
    budget: a wiring bug, refused when the stream is made (not retried as a venue fault)."""
    wrong = registry.client("okx", "http://127.0.0.1:9")
    with pytest.raises(ValueError, match="the gate stream was handed the okx client"):
        registry.stream("gate", "http://127.0.0.1:9", rest=wrong)
