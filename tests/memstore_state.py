"""The memory backend's non-market tables (tests/memstore.py): what a running daemon
publishes, and what collectors and deciders share (heartbeats, the lease, the change count
a decider waits on), over the same dataset and lock as the market tables."""

from __future__ import annotations

import copy
from typing import Any

from oiradar.kinds import Kind
from oiradar.store.base import Heartbeat, LoggedAlert, WatchState


class DaemonState:
    """Mixed into `MemoryStore`, which provides `_data`, `_writable` and `_series`."""

    _data: Any

    def _writable(self) -> Any:
        raise NotImplementedError

    def _series(self, kind: Kind, venue: str | None, symbol: str | None) -> list[dict[str, Any]]:
        raise NotImplementedError

    # -- what a running daemon publishes ---------------------------------------------------

    def put_watch_state(self, state: WatchState) -> None:
        data = self._writable()
        with data.lock:
            data.state = copy.deepcopy(state)

    def watch_state(self) -> WatchState | None:
        with self._data.lock:
            return copy.deepcopy(self._data.state)

    def append_alert(self, alert: dict[str, Any]) -> int:
        data = self._writable()
        with data.lock:
            seq = len(data.alerts) + 1
            data.alerts.append(LoggedAlert(seq, copy.deepcopy(alert)))
            return seq

    def alerts(self, after: int = 0, limit: int | None = None) -> list[LoggedAlert]:
        with self._data.lock:
            newer = [a for a in self._data.alerts if a.seq > after]
        return copy.deepcopy(newer if limit is None else newer[-limit:] if limit else [])

    # -- many processes on one store ---------------------------------------------------------

    def changes(self) -> int:
        return self._data.version + self._data.beats

    def wait_changed(self, seen: int, timeout_s: float) -> int:
        with self._data.changed:
            self._data.changed.wait_for(lambda: self.changes() != seen, timeout_s)
            return self.changes()

    def liquidation_orders_since(
        self, venue: str, since_ms: int
    ) -> list[tuple[str, int, str, float]]:
        rows = [(r["symbol"], r["ts_ms"], r["position_side"], r["usd"])
                for r in self._series(Kind.LIQUIDATION_ORDERS, venue, None)
                if r["ts_ms"] >= since_ms]  # fmt: skip
        return sorted(rows, key=lambda r: (r[1], r[0]))

    def beat(self, heartbeat: Heartbeat) -> None:
        data = self._writable()
        with data.lock:
            data.workers[heartbeat.worker] = copy.deepcopy(heartbeat)
            data.beats += 1
            data.changed.notify_all()

    def workers(self) -> list[Heartbeat]:
        with self._data.lock:
            return copy.deepcopy([self._data.workers[w] for w in sorted(self._data.workers)])

    def take_lease(self, name: str, holder: str, now_ms: int, ttl_ms: int) -> bool:
        data = self._writable()
        with data.lock:
            held = data.leases.get(name)
            if held is not None and held[0] != holder and held[1] >= now_ms:
                return False
            data.leases[name] = (holder, now_ms + ttl_ms)
            return True

    def release_lease(self, name: str, holder: str) -> None:
        data = self._writable()
        with data.lock:
            if data.leases.get(name, ("", 0))[0] == holder:
                del data.leases[name]

    def lease(self, name: str) -> tuple[str, int] | None:
        with self._data.lock:
            return self._data.leases.get(name)

    def learn_listing(self, venue: str, symbol: str, listed_ms: int) -> None:
        data = self._writable()
        with data.lock:
            known = data.listings.get((venue, symbol))
            data.listings[(venue, symbol)] = listed_ms if known is None else min(known, listed_ms)

    def listings(self, venue: str) -> dict[str, int]:
        with self._data.lock:
            return {s: ms for (v, s), ms in sorted(self._data.listings.items()) if v == venue}
