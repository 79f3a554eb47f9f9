"""The watch daemon hands freed heap back to the system (oiradar/memory.py) and holds its
memory from the start (`windows.load_medians`)."""

from __future__ import annotations

import asyncio
import subprocess
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


_RESIDENT_POLARS = """
import numpy as np
from oiradar.signals.windows import load_medians, trailing_median

def polars_kb():
    kb, mapped = 0, False
    for line in open("/proc/self/smaps"):
        head = line.split()
        if "-" in head[0] and not head[0].endswith(":"):
            mapped = len(head) > 5 and "polars" in head[5]
        elif mapped and head[0] == "Rss:":
            kb += int(head[1])
    return kb

load_medians()
before = polars_kb()
x = np.random.default_rng(1).random(8640)
x[::50] = np.nan
trailing_median(x, 288, 12)  # a track record's month of bars, a day's window
print(before, polars_kb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")
def test_the_first_rolling_median_pages_in_nothing_more_after_load_medians() -> None:
    """A daemon's track record runs its first rolling median hours after the start: the
    polars code it pages in then (~15 MB when `load_medians` only imported polars) read as
    an RSS step in the soak, so `load_medians` runs one at the start."""
    out = subprocess.run(
        [sys.executable, "-c", _RESIDENT_POLARS], capture_output=True, text=True, check=True
    )
    before, after = (int(v) for v in out.stdout.split())
    assert before > 5_000  # the library is resident at all
    assert after - before < 3_000, (before, after)
