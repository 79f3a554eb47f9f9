"""`oiradar watch`: the real-time daemon (venues, batched store writes, live engine, alerts).

`run(req, store, config=...)` is the Python API; `Watch` the daemon it wires.
"""

from oiradar.services.watch.daemon import Watch, WatchRequest
from oiradar.services.watch.decide import Decider, Phase
from oiradar.services.watch.run import run
from oiradar.services.watch.state import engine_params, health, read_status
from oiradar.services.watch.workers import Role

__all__ = [
    "Decider",
    "Phase",
    "Role",
    "Watch",
    "WatchRequest",
    "engine_params",
    "health",
    "read_status",
    "run",
]
