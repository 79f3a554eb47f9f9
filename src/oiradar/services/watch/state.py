"""What `oiradar watch` publishes in the store, and reading it back: its status for
`oiradar status`, its engine settings for the dashboard, its open episodes for a restart."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from oiradar.clock import Clock, WallClock
from oiradar.errors import UserError
from oiradar.services.watch.workers import is_stale, with_workers
from oiradar.signals.params import EngineParams, Evidence
from oiradar.store import Store
from oiradar.units import parse_time

STALE_AFTER_MS = 30_000  # fifteen missed status writes (the daemon writes one every 2 s)
LIVE_STATES = ("starting", "running")


def engine_settings(p: EngineParams) -> dict[str, Any]:
    """The settings the daemon reads with, as JSON (the dashboard reads the store alike)."""
    return {
        "windows_ms": list(p.windows_ms),
        "oi_threshold_pct": p.oi_threshold_pct,
        "price_threshold_pct": p.price_threshold_pct,
        "oi_taper": p.oi_taper,
        "price_taper": p.price_taper,
        "evidence": [e.value for e in p.evidence],
        "adaptive": p.adaptive,
        "min_history_ms": p.min_history_ms,
    }


def engine_params(store: Store) -> EngineParams:
    """The engine settings of the daemon that last ran on `store`; the defaults if none did
    (or its settings are unreadable)."""
    state = store.watch_state()
    if state is None:
        return EngineParams()
    e, defaults = state.engine, EngineParams()
    try:
        return EngineParams(
            windows_ms=tuple(int(w) for w in e.get("windows_ms", defaults.windows_ms)),
            oi_threshold_pct=float(e["oi_threshold_pct"]),
            price_threshold_pct=float(e["price_threshold_pct"]),
            oi_taper=float(e.get("oi_taper", defaults.oi_taper)),
            price_taper=float(e.get("price_taper", defaults.price_taper)),
            adaptive=bool(e["adaptive"]),
            min_history_ms=int(e["min_history_ms"]),
            evidence=tuple(Evidence(x) for x in e.get("evidence", defaults.evidence)),
        )
    except (ValueError, KeyError, TypeError):
        return defaults


def read_status(store: Store, clock: Clock | None = None) -> dict[str, Any]:
    """What the daemon on `store` published last (`oiradar status`), checked for life, with
    the collectors' and deciders' heartbeats (a venue whose collectors stopped is stale)."""
    state, beats = store.watch_state(), store.workers()
    if state is None and not beats:
        raise UserError(
            f"no watch status in {store.location}: is `oiradar watch` running on this store?"
        )
    now = (clock or WallClock()).now_ms()
    status = checked(state.status, now) if state is not None else {"state": "no decider"}
    return with_workers(status, beats, now)


def health(store: Store, clock: Clock | None = None) -> tuple[bool, str]:
    """Whether the watch process of *this host* is alive (`oiradar status --check`, a
    container's or a service's health check), and a line saying why not.

    A host running a collector or a decider (leading or standing by) is healthy while one of
    its processes beats; a host running none is judged by the status a plain watch (or the
    leading decider) publishes."""
    now = (clock or WallClock()).now_ms()
    here = socket.gethostname()
    mine = [hb for hb in store.workers() if hb.host == here]
    if mine:
        if any(not is_stale(hb, now) and (hb.pid <= 0 or _alive(hb.pid)) for hb in mine):
            return True, ""
        last = max(mine, key=lambda hb: hb.beat_ms)
        age_s = max(0, now - last.beat_ms) // 1000
        return False, f"{last.role} {last.worker} stale: last heartbeat {age_s} s ago"
    status = read_status(store, clock)
    if status.get("state") == "running":
        return True, ""
    if status.get("state") == "no decider":  # no watch ever published one
        return False, f"no collector or decider beats on {here}, and no watch publishes a status"
    return False, f"watch {status.get('state')} (updated {status.get('updated')})"


def checked(status: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """`status` with `state` "stale" when the daemon that wrote it running cannot be: its
    last write older than `STALE_AFTER_MS`, or its pid gone on this host. A `kill -9` leaves
    "running" in the store; the age works across hosts (a shared store), the pid at once."""
    if status.get("state") not in LIVE_STATES:
        return status
    try:
        age_ms = now_ms - parse_time(str(status.get("updated")))
    except UserError:
        age_ms = STALE_AFTER_MS + 1
    gone = status.get("host") == socket.gethostname() and not _alive(status.get("pid"))
    if age_ms <= STALE_AFTER_MS and not gone:
        return status
    return {**status, "state": "stale", "stale_s": max(0, age_ms) // 1000}


def rss_bytes() -> int | None:
    """This process's resident memory (Linux `/proc`; None elsewhere), for `/metrics`."""
    try:
        pages = Path("/proc/self/statm").read_text(encoding="ascii").split()[1]
        return int(pages) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: asks only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, someone else's
        return True
    return True
