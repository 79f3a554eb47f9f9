"""The store contract for many processes on one store (collectors, deciders): heartbeats,
the lease, waiting for a change, the orders a decider replays; on every backend, with the
fixtures of tests/test_store_contract.py."""

from __future__ import annotations

import threading
import time

import pytest

from oiradar.records import Liquidation, Side
from oiradar.store import Heartbeat, Store
from tests.test_store_contract import FIVE, MIN, T0, Opener, backend, bars, store

__all__ = ["backend", "store"]  # the fixtures, used by name


def test_heartbeats_are_replaced_per_worker_and_read_from_any_handle(backend: Opener) -> None:
    with backend() as collector, backend() as reader:
        assert reader.workers() == []
        first = Heartbeat("h1:10", "collector", "h1", 10, T0, {"venues": {"okx": {"n": 1}}})
        collector.beat(first)
        collector.beat(Heartbeat("h2:20", "decider", "h2", 20, T0 + 5, {}))
        later = Heartbeat("h1:10", "collector", "h1", 10, T0 + 2_000, {"venues": {}})
        collector.beat(later)
        assert reader.workers() == [later, Heartbeat("h2:20", "decider", "h2", 20, T0 + 5, {})]
        assert reader.version() == 0  # a heartbeat is not market data
        assert reader.changes() == 3  # but a decider waiting for news wakes on it


def test_one_lease_holder_at_a_time_until_it_expires_or_is_released(backend: Opener) -> None:
    with backend() as a, backend() as b:
        assert a.lease("decider") is None
        assert a.take_lease("decider", "A", T0, 15_000)
        assert not b.take_lease("decider", "B", T0 + 1_000, 15_000)  # held by A
        assert a.take_lease("decider", "A", T0 + 5_000, 15_000)  # renewed to T0 + 20 000
        assert not b.take_lease("decider", "B", T0 + 19_000, 15_000)
        assert b.lease("decider") == ("A", T0 + 20_000)
        assert b.take_lease("decider", "B", T0 + 20_001, 15_000)  # A's expired: B takes it
        assert not a.take_lease("decider", "A", T0 + 20_002, 15_000)
        b.release_lease("decider", "A")  # not A's to release any more
        assert a.lease("decider") == ("B", T0 + 35_001)
        b.release_lease("decider", "B")
        assert a.lease("decider") is None
        assert a.take_lease("decider", "A", T0 + 20_003, 15_000)


@pytest.mark.parametrize("write", ["market", "heartbeat"])
def test_wait_changed_wakes_on_another_handles_write(backend: Opener, write: str) -> None:
    with backend() as writer, backend() as waiter:
        v0 = waiter.changes()
        assert waiter.wait_changed(v0, 0.05) == v0  # nothing written: back after the timeout
        woke: list[tuple[int, float]] = []

        def wait() -> None:
            started = time.monotonic()
            woke.append((waiter.wait_changed(v0, 10.0), time.monotonic() - started))

        thread = threading.Thread(target=wait)
        thread.start()
        time.sleep(0.2)  # the waiter is asleep by now (its wake-up is what is measured)
        if write == "market":
            writer.write_records(bars("okx", 1))
        else:
            writer.beat(Heartbeat("h:1", "collector", "h", 1, T0, {}))
        thread.join(10.0)
        assert woke and woke[0][0] > v0
        assert woke[0][1] < 2.0, "woken by the write, not by the timeout"


def test_liquidation_orders_since_a_time_oldest_first(store: Store) -> None:
    def order(ts: int, side: Side, usd: float, symbol: str = "BTCUSDT") -> Liquidation:
        return Liquidation("okx", symbol, ts, side, usd / 100.0, 100.0, usd)

    store.write_records(
        [
            order(T0 + FIVE + 1, Side.SHORT, 2.5),
            order(T0 - 1, Side.SHORT, 7.0),  # before `since`
            order(T0 + MIN, Side.LONG, 4.0),
            order(T0, Side.SHORT, 10.0),
            order(T0 + 2, Side.SHORT, 1.0, "ETHUSDT"),
            Liquidation("bybit", "BTCUSDT", T0, Side.SHORT, 1.0, 1.0, 1.0),  # another venue
        ]
    )
    assert store.liquidation_orders_since("okx", T0) == [
        ("BTCUSDT", T0, "SHORT", 10.0),
        ("ETHUSDT", T0 + 2, "SHORT", 1.0),
        ("BTCUSDT", T0 + MIN, "LONG", 4.0),
        ("BTCUSDT", T0 + FIVE + 1, "SHORT", 2.5),
    ]
