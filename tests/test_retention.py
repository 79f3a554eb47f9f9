"""Retention (`oiradar prune`, `watch --retain`): raw rows older than an age become per-bar
values, on both SQL backends, and a long run's store stays bounded. What the engine reads
per bar before and after is held equal by the contract suite (test_store_contract.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from oiradar.kinds import Kind
from oiradar.records import Candle, Liquidation, OISample, Side
from oiradar.services.retention import PruneRequest, PruneResult, keep_bounded
from oiradar.store import Store, open_store
from oiradar.units import DAY_MS, MINUTE_MS
from tests.conftest import run_cli

T0 = 1_700_000_100_000 // DAY_MS * DAY_MS
FIVE = 5 * MINUTE_MS


def _day(store: Store, day: int) -> None:
    """One day of a live feed: 5m candles, an OI snapshot a minute, an order a minute."""
    start = T0 + day * DAY_MS
    store.write_records(
        [
            *(
                Candle("okx", "BTCUSDT", FIVE, start + i * FIVE, 1, 2, 0.5, 1.5, 9.0)
                for i in range(288)
            ),
            *(OISample("okx", "BTCUSDT", start + m * MINUTE_MS + 1, 1e4 + m) for m in range(1440)),
            *(
                Liquidation("okx", "BTCUSDT", start + m * MINUTE_MS + 7, Side.SHORT, 1, 2, 2.0)
                for m in range(1440)
            ),
        ],
        coverage=[("okx", "BTCUSDT", start, start + DAY_MS)],
    )


def _rows(store: Store, kind: Kind) -> int:
    return sum(r[3] for r in store.summary() if r[0] == kind.value)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_long_run_stays_bounded(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = str(tmp_path / "s.sqlite") if backend == "sqlite" else request.getfixturevalue("pg_url")
    days = 8
    with open_store(url) as store:
        for day in range(days):
            _day(store, day)
            now = T0 + (day + 1) * DAY_MS
            store.prune(now - 2 * DAY_MS, FIVE)  # keep two days raw, as --retain 2d would
            raw = _rows(store, Kind.OPEN_INTEREST)
            assert raw <= 2 * 1440 + (day + 1) * 288  # two raw days + one value a bar
        assert _rows(store, Kind.LIQUIDATION_ORDERS) == 2 * 1440
        assert _rows(store, Kind.LIQUIDATIONS) == (days - 2) * 288  # one total a bar
        totals = store.read_series("okx", "BTCUSDT", "1d").liq_short_usd
        assert totals.sum() == pytest.approx(days * 1440 * 2.0)  # no order lost or doubled


def test_prune_command_reports_and_refuses_a_short_age(tmp_path: Path) -> None:
    db = str(tmp_path / "s.sqlite")
    with open_store(db) as store:
        _day(store, 0)
    res = run_cli("--db", db, "prune", "--older-than", "1d", "--format", "json")
    assert res.code == 0, res.err
    assert [(r["kind"], r["removed"]) for r in json.loads(res.out)] == [
        ("open_interest", 1440 - 288),
        ("liquidation_orders", 1440),
    ]  # the test data is from 2023: all of it is older than a day
    short = run_cli("--db", db, "prune", "--older-than", "2h")
    assert short.code == 2 and "retention under 1d is refused" in short.err
    assert len(short.err.strip().splitlines()) == 1
    bad = run_cli("--db", db, "watch", "--retain", "1h", "--symbols", "BTCUSDT")
    assert bad.code == 2 and "retention under 1d" in bad.err


async def test_the_daemon_prunes_through_its_writer_at_the_venues_time(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.sqlite") as store:
        _day(store, 0)
        done: list[PruneResult] = []

        async def write(fn: object) -> PruneResult:
            result: PruneResult = await asyncio.to_thread(fn, store)  # type: ignore[arg-type]
            done.append(result)
            return result

        # No venue has told the time yet, twice; then one has, and its clock moves on: half
        # an hour (not due), then a full hour after the first prune (due again).
        t = T0 + 2 * DAY_MS
        ticks = iter([None, None, t, t + 30 * MINUTE_MS, t + 60 * MINUTE_MS])
        req = PruneRequest(DAY_MS, FIVE)
        now = lambda: next(ticks, t + 60 * MINUTE_MS)  # noqa: E731
        task = asyncio.create_task(keep_bounded(write, req, now, poll_s=0.01))
        while len(done) < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the clock stands still: no third prune
        task.cancel()
        assert [d.cutoff_ms for d in done] == [T0 + DAY_MS, T0 + DAY_MS + 60 * MINUTE_MS]
        assert done[0].removed == {Kind.OPEN_INTEREST: 1440 - 288, Kind.LIQUIDATION_ORDERS: 1440}
