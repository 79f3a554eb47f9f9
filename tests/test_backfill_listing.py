"""A listing learned by a backfill hides history from every later run, so only strong
evidence teaches one (services/backfill/listing.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from oiradar.records import Candle
from oiradar.services.backfill.listing import ListingFinder, remember
from oiradar.store import open_store
from oiradar.store.aio import AsyncStore
from oiradar.units import DAY_MS, HOUR_MS, MINUTE_MS, parse_time

T0 = parse_time("2026-05-18")
FIVE = 5 * MINUTE_MS


def test_a_day_of_nothing_then_candles_is_a_listing() -> None:
    finder = ListingFinder(learnable={"ADAUSDT"})
    assert finder.answered("ADAUSDT", T0, None) is None  # an empty day: not settled yet
    assert (
        finder.answered("ADAUSDT", T0 + DAY_MS, T0 + DAY_MS + 3 * HOUR_MS)
        == T0 + DAY_MS + 3 * HOUR_MS
    )
    assert finder.answered("ADAUSDT", T0 + 2 * DAY_MS, T0 + 2 * DAY_MS) is None  # once


def test_less_than_a_day_of_nothing_a_skipped_chunk_or_a_listed_venue_teach_nothing() -> None:
    finder = ListingFinder(learnable={"ADAUSDT", "BTCUSDT", "SOLUSDT"})
    # --from just before a maintenance gap: 20 h of nothing, then candles
    assert finder.answered("ADAUSDT", T0, T0 + 20 * HOUR_MS) is None
    # a stored chunk between the empty one and the candles: the stretch is not contiguous
    assert finder.answered("BTCUSDT", T0, None) is None
    finder.skipped("BTCUSDT")
    assert finder.answered("BTCUSDT", T0 + 2 * DAY_MS, T0 + 2 * DAY_MS) is None
    # the venue gave a listing time for this one
    assert finder.answered("ETHUSDT", T0, T0 + 3 * DAY_MS) is None


def test_a_stored_candle_before_the_stretch_makes_it_a_gap(tmp_path: Path) -> None:
    candle = Candle("bitget", "ADAUSDT", FIVE, T0 - FIVE, 1.0, 1.0, 1.0, 1.0, 1.0)

    async def go() -> tuple[dict[str, int], dict[str, int]]:
        with open_store(tmp_path / "s.sqlite") as store:
            store.write_records([candle])
            aio = AsyncStore(store)
            try:
                await remember(aio, "bitget", "ADAUSDT", "5m", T0 + 2 * DAY_MS)  # a gap
                await remember(aio, "bitget", "SOLUSDT", "5m", T0 + 2 * DAY_MS)  # a listing
            finally:
                aio.close()
            return store.listings("bitget"), store.listings("gate")

    assert asyncio.run(go()) == ({"SOLUSDT": T0 + 2 * DAY_MS}, {})
