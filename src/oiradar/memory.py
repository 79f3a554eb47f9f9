"""Handing the heap a long-running daemon freed back to the system.

glibc keeps what Python and numpy free in its arenas (one per thread that allocates: the
store's reader and writer threads, the engine's worker) and returns little of it while the
daemon keeps allocating: in `bench/soak.py` (100 symbols x 6 venues at 60x) the watch's RSS
grew ~1.5 MB per simulated hour while its live objects did not. `malloc_trim(0)` once a
minute gave 5-15 MB back each time and held RSS flat. Where libc has no such call (musl,
macOS) nothing is done.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)
TRIM_EVERY_S = 60.0


def heap_trimmer() -> Callable[[], None] | None:
    """glibc's `malloc_trim(0)`, or None where the C library lacks it."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int

    def call() -> None:
        trim(0)

    return call


async def keep_trimmed(every_s: float = TRIM_EVERY_S) -> None:
    """Trim the heap every `every_s` wall seconds (off the event loop: it takes ~10 ms)."""
    trim = heap_trimmer()
    if trim is None:
        log.debug("event=heap_trim_unavailable")
        return
    while True:
        await asyncio.sleep(every_s)
        await asyncio.to_thread(trim)
