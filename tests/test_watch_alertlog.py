"""The daemon's alert log: alerts made while the writer is busy (a bar close's flush) are
stored together, so a burst escalation waits behind one write, not behind each of a bar
close's alerts (nor behind its own episode's NEW); each is stored before it is dispatched,
a symbol's alerts in the order they were made."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from oiradar.services.alerts import Alert, Gate
from oiradar.services.alerts.model import AlertKind, sample_alert
from oiradar.services.watch import Watch, WatchRequest
from oiradar.signals.params import EngineParams
from oiradar.store import WatchState, open_store

TS = 1_780_000_200_000


async def emit_while_the_writer_is_busy(daemon: Watch, alerts: list[Alert]) -> float:
    """Emit `alerts` while the writer is busy (as with a chunk of a bar close's flush in
    flight), give their records 0.3 s to be read and their writes to queue, free the writer
    and publish them all; returns the wall time the writer was freed."""
    daemon.dispatcher.start()
    release = threading.Event()
    busy = asyncio.ensure_future(daemon.ingest.write(lambda _: release.wait(5)))
    for alert in alerts:
        daemon._emit(alert)
    await asyncio.sleep(0.3)
    released = time.time()
    release.set()
    await busy
    await daemon._drain_alerts()
    await daemon.dispatcher.close()
    await daemon.ingest.close()
    return released


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

        alerts = [replace(sample_alert(TS), symbol=f"S{k}USDT") for k in range(20)]
        asyncio.run(emit_while_the_writer_is_busy(daemon, alerts))
        logged: list[Any] = [a.alert["symbol"] for a in store.alerts()]
    assert sorted(logged) == sorted(f"S{k}USDT" for k in range(20))
    assert len(states) <= 2, len(states)  # was one write (and one state) per alert
    assert logged_at_send == [True] * 20  # each stored, then sent


def test_an_escalation_right_after_its_new_is_queued_at_once_and_goes_out_after_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """It used to wait for the NEW's whole publication (its write behind a bar close's flush
    included) before queueing its own write: p99 ~120 ms more on a burst escalation in
    bench/watch.py. Its write is now queued behind the NEW's at once; still stored, then
    sent, after the NEW."""
    caplog.set_level(logging.INFO, logger="oiradar.services.watch.daemon")
    with open_store(tmp_path / "w.sqlite") as store:
        req = WatchRequest(("bybit",), ("BTCUSDT",), None, EngineParams())
        sent: list[tuple[str, bool]] = []

        def on_alert(alert: Alert) -> None:
            stored = [a.alert["kind"] for a in store.alerts()]
            sent.append((alert.kind.value, alert.kind.value in stored))

        daemon = Watch(req, store, [], [], [], Gate(cooldown_s=0), on_alert=on_alert)
        new = replace(sample_alert(TS), kind=AlertKind.NEW)
        escalation = replace(new, kind=AlertKind.ESCALATION, ts_ms=TS + 1_000)
        released = asyncio.run(emit_while_the_writer_is_busy(daemon, [new, escalation]))
        logged = [a.alert["kind"] for a in store.alerts()]
    assert logged == ["new", "escalation"]
    assert sent == [("new", True), ("escalation", True)]  # in order, each stored first
    lines = {
        m.group(1): float(m.group(2))
        for r in caplog.records
        if (m := re.search(r"event=alert kind=(\w+) .* read_wall=([\d.]+)", r.getMessage()))
    }
    assert lines["escalation"] < released, (lines, released)  # queued before the NEW's write
