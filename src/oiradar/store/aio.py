"""The store from the event loop: every call runs on a worker thread and is awaited.

Store calls block (a batch of thousands of rows takes tens of milliseconds, a month of bars
a few), and the loop is where liquidation bursts wait to be checked. Code on the loop holds
an `AsyncStore`, not a `Store`, so a blocking call cannot slip in. Each facade has its own
small pool: the backend keeps per-thread resources (a SQLite connection each), so a few
long-lived threads, not the loop's default pool, keep them few.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from oiradar.store.base import Store

T = TypeVar("T")
R = TypeVar("R")


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


class Batches(Generic[T, R]):
    """`fn(store, items)` on the worker for whatever items arrived while its last call ran:
    a stream of small requests (a scan's symbols as their bars come back) becomes a few
    worker trips, one transaction each, and the first items need not wait for the last.
    `await batches(item)` is that item's result. `run` puts a call on the worker: an
    `AsyncStore`'s `run`, or the daemon's writer (`Ingest.write`: its alert log, a batch
    of a bar close's alerts in one transaction). `seal`, if given, runs on the loop over each
    batch as it leaves for the worker (what only the batch's newest item needs is built once
    per batch, not once per item)."""

    def __init__(
        self,
        run: Callable[[Callable[[Store], list[R]]], Awaitable[list[R]]],
        fn: Callable[[Store, list[T]], list[R]],
        seal: Callable[[list[T]], list[T]] | None = None,
    ) -> None:
        self._run_on, self._fn, self._seal = run, fn, seal
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._drain: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        return await self.submit(item)

    def submit(self, item: T) -> asyncio.Future[R]:
        """Queue `item` now, behind every item submitted before it (the worker takes them in
        this order); the future is its result."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._drain is None or self._drain.done():
            self._drain = asyncio.create_task(self._run())
        return future

    async def _run(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            await self._one(batch)

    async def _one(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        try:
            if self._seal is not None:
                items = self._seal(items)
            results = await self._run_on(lambda s: self._fn(s, items))
        except asyncio.CancelledError:
            for _, future in [*batch, *self._queue]:
                future.cancel()
            raise
        except Exception as exc:  # each waiter gets it, as if it had called alone
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # its waiter may have been cancelled meanwhile
                future.set_result(result)
