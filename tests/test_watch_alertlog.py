"""The daemon's alert log: alerts made while the writer is busy (a bar close's flush) are
stored together, so a burst escalation waits behind one write, not behind each of a bar
close's alerts; each is stored before it is dispatched."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from oiradar.services.alerts import Alert, Gate
from oiradar.services.alerts.model import sample_alert
from oiradar.services.watch import Watch, WatchRequest
from oiradar.signals.params import EngineParams
from oiradar.store import WatchState, open_store

TS = 1_780_000_200_000


def test_alerts_made_while_the_writer_is_busy_are_logged_in_one_write(tmp_path: Path) -> None:
    with open_store(tmp_path / "w.sqlite") as store:
        states: list[WatchState] = []
        logged_at_send: list[bool] = []
        put = store.put_watch_state

        def counted(state: WatchState) -> None:
            states.append(state)
            put(state)

        store.put_watch_state = counted  # type: ignore[method-assign]
        req = WatchRequest(("bybit",), ("BTCUSDT",), None, EngineParams())

        def sent(alert: Alert) -> None:
            logged_at_send.append(any(a.alert["symbol"] == alert.symbol for a in store.alerts()))

        daemon = Watch(req, store, [], [], [], Gate(cooldown_s=0), on_alert=sent)

        async def main() -> None:
            daemon.dispatcher.start()
            release = threading.Event()
            # The writer busy, as with a chunk of a bar close's flush in flight.
            busy = asyncio.ensure_future(daemon.ingest.write(lambda _: release.wait(5)))
            for k in range(20):
                daemon._emit(replace(sample_alert(TS), symbol=f"S{k}USDT"))
            await asyncio.sleep(0.3)  # their records read; the first log write queued
            release.set()
            await busy
            await daemon._drain_alerts()
            await daemon.dispatcher.close()
            await daemon.ingest.close()

        asyncio.run(main())
        logged: list[Any] = [a.alert["symbol"] for a in store.alerts()]
    assert sorted(logged) == sorted(f"S{k}USDT" for k in range(20))
    assert len(states) <= 2, len(states)  # was one write (and one state) per alert
    assert logged_at_send == [True] * 20  # each stored, then sent
