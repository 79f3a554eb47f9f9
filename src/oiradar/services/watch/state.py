"""What `oiradar watch` publishes in the store, and reading it back: its status for
`oiradar status`, its engine settings for the dashboard, its open episodes for a restart."""

from __future__ import annotations

from typing import Any

from oiradar.errors import UserError
from oiradar.signals.params import EngineParams, Evidence
from oiradar.store import Store


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


def read_status(store: Store) -> dict[str, Any]:
    """What the daemon on `store` published last (`oiradar status`)."""
    state = store.watch_state()
    if state is None:
        raise UserError(
            f"no watch status in {store.location}: is `oiradar watch` running on this store?"
        )
    return state.status
