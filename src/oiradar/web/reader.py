"""The dashboard's store reader: one thread, the store opened read-only there on first use,
so a slow read never stalls the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from oiradar.store import Store, open_store

T = TypeVar("T")


class Reader:
    """The one thread that reads the store (read-only, opened there on first use)."""

    def __init__(self, target: str | Path | None) -> None:
        self.target = target
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="oiradar-store")
        self._store: Store | None = None

    def _open(self) -> Store:
        if self._store is None:
            self._store = open_store(self.target, readonly=True)
        return self._store

    async def run(self, fn: Callable[[Store], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self._open()))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._store is not None:
            self._store.close()
