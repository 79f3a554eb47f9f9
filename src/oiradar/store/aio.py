"""The store from the event loop: every call runs on a worker thread and is awaited.

Store calls block (a batch of thousands of rows takes tens of milliseconds, a month of bars
a few), and the loop is where liquidation bursts wait to be checked. Code on the loop holds
an `AsyncStore`, not a `Store`, so a blocking call cannot slip in. Each facade has its own
small pool: the backend keeps per-thread resources (a SQLite connection each), so a few
long-lived threads, not the loop's default pool, keep them few.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from oiradar.store.base import Store

T = TypeVar("T")


class AsyncStore:
    """`await reads.run(lambda s: s.read_series(...))`: `s` is the store, on a worker."""

    def __init__(self, store: Store, *, threads: int = 1, name: str = "oiradar-store") -> None:
        self.store = store
        self._threads, self._name = threads, name
        self._pool: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[[Store], T]) -> T:
        return await self.submit(fn)

    def submit(self, fn: Callable[[Store], T]) -> asyncio.Future[T]:
        """`fn(store)` started on a worker now; it completes even if no one awaits it."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix=self._name)
        return asyncio.get_running_loop().run_in_executor(self._pool, fn, self.store)

    def close(self) -> None:
        """Wait for the calls in flight and stop the threads (the store stays open)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
