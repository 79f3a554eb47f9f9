"""`oiradar watch`: the real-time daemon (venues, batched store writes, live engine, alerts)."""

from oiradar.services.watch.daemon import (
    Watch,
    WatchRequest,
    alerts_path,
    read_status,
    status_path,
)
from oiradar.services.watch.decide import Decider, Phase

__all__ = [
    "Decider",
    "Phase",
    "Watch",
    "WatchRequest",
    "alerts_path",
    "read_status",
    "status_path",
]
