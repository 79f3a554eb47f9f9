"""How a long-running process (watch, serve, sim) learns it should stop: one rule for all."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Coroutine, Iterable
from typing import Any, TypeVar


@contextlib.asynccontextmanager
async def stop_on_signals() -> AsyncIterator[asyncio.Event]:
    """An event SIGINT and SIGTERM set, so the process drains and closes instead of dying
    mid-write; the handlers are removed on exit (a caller's own loop keeps its defaults).

    Where the loop cannot take signal handlers (not the main thread, Windows), the event is
    still returned and only the caller can set it.
    """
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    added: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, event.set)
            added.append(sig)
    try:
        yield event
    finally:
        for sig in added:
            loop.remove_signal_handler(sig)


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any] | None]) -> list[BaseException]:
    """Cancel `tasks` (None: none) and wait until each has ended; returns the errors they
    ended with (a cancelled task has none). `asyncio.wait`, not each awaited under
    `suppress(CancelledError)`: that also swallowed a cancellation of the caller landing
    meanwhile (a stop), and a stream reconnected instead of ending."""
    live = [t for t in tasks if t is not None]
    for task in live:
        task.cancel()
    if live:
        await asyncio.wait(live)
    return [e for t in live if not t.cancelled() and (e := t.exception()) is not None]


T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` whose main task ends with None, the value handed out beside it.

    On the way out `asyncio.run` reads back its SIGINT handler, which names the main task,
    and that formats the task with its result: a 300-symbol scan's result took ~50 ms to
    render for nothing, on every run of the command."""
    box: list[T] = []

    async def boxed() -> None:
        box.append(await main)

    asyncio.run(boxed())
    return box[0]
