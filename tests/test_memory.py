"""The watch daemon hands freed heap back to the system (oiradar/memory.py)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from oiradar import memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_glibc_trims_the_heap() -> None:
    trim = memory.heap_trimmer()
    assert trim is not None
    blocks = [bytearray(4096) for _ in range(20_000)]  # ~80 MB in small blocks, then freed
    del blocks
    trim()


async def test_the_daemons_loop_trims_until_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(memory, "heap_trimmer", lambda: lambda: calls.append(1))
    task = asyncio.create_task(memory.keep_trimmed(every_s=0.01))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(calls) >= 3


async def test_without_malloc_trim_the_loop_ends_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "heap_trimmer", lambda: None)
    await asyncio.wait_for(memory.keep_trimmed(every_s=0.01), 1.0)
