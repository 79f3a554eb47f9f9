"""The rate-limit budget this host's oiradar processes spent lately, shared through one small
file per venue endpoint in the cache directory (`$OIRADAR_CACHE_DIR/limits`).

A venue counts requests per IP, not per process. Where it reports the count in every reply
(Binance's `X-MBX-USED-WEIGHT-1M`) a new process learns it at its first reply; where it does
not (Binance's `/futures/data`: 1,000 requests per 5 minutes; every other venue's buckets), a
process started right after another one believed it had the whole budget: a 300-symbol
`oiradar scan --all` uses about a third of Binance's `/futures/data` budget, so the fourth scan
within five minutes ran into a 429 and a ban. Now a client starts with what the others spent
in its windows (read when it is made) and adds its own when it closes (merged under a file
lock). Processes running at the same time still do not see each other's current usage;
losing the file costs nothing but that memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from oiradar.cache import cache_root
from oiradar.venues.limiter import Limiter

try:
    import fcntl
except ImportError:  # not on Windows: the file is then written without a lock
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
Spent = list[tuple[str, str, int, float]]  # (bucket, key, cost, wall time of the reply)


def usage_file(venue: str, base_url: str, env: Mapping[str, str] | None = None) -> Path:
    """One file per venue and endpoint: a simulator on another port is another venue."""
    digest = hashlib.blake2b(base_url.encode(), digest_size=6).hexdigest()
    return cache_root(os.environ if env is None else env) / "limits" / f"{venue}-{digest}.json"


def load(limiter: Limiter, path: Path) -> None:
    """Charge `limiter` with what other processes spent within its windows."""
    now_wall, now_mono = time.time(), time.monotonic()
    limiter.seed(
        (bucket, key, cost, now_mono - (now_wall - done))
        for bucket, key, cost, done in _read(path)
        if _live(limiter, (bucket, key, cost, done), now_wall)
    )


def save(limiter: Limiter, path: Path) -> None:
    """Add what `limiter` spent to the file, keeping only charges still inside a window."""
    now_wall, now_mono = time.time(), time.monotonic()
    mine = [(b, k, c, now_wall - (now_mono - done)) for b, k, c, done in limiter.spent()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            rows = [r for r in [*_read(path), *mine] if _live(limiter, r, now_wall)]
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(_per_tick(rows), separators=(",", ":")), "utf-8")
            tmp.replace(path)
    except OSError as exc:  # a read-only home: only the memory across processes is lost
        log.debug("venue=%s event=usage_not_saved path=%s error=%s", limiter.venue, path, exc)


def _per_tick(rows: Spent) -> list[list[object]]:
    """Charges summed per bucket, key and tenth of a second, each at the end of its tenth
    (careful: it expires a little later), so the file stays small whatever the requests."""
    sums: dict[tuple[str, str, int], int] = {}
    for bucket, key, cost, done in rows:
        tick = (bucket, key, math.ceil(done * 10))
        sums[tick] = sums.get(tick, 0) + cost
    return [[b, k, c, t / 10] for (b, k, t), c in sorted(sums.items())]


def _live(limiter: Limiter, row: tuple[str, str, int, float], now_wall: float) -> bool:
    budget = limiter.budgets.get(row[0])
    period = budget.period_s if budget is not None else 0.0
    return row[3] + period > now_wall


def _read(path: Path) -> Spent:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return [(str(b), str(k), int(c), float(d)) for b, k, c, d in raw]
    except (OSError, ValueError, TypeError):  # none yet, or torn: start from nothing
        return []


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    with path.with_suffix(".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
