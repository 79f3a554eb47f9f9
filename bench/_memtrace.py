"""`oiradar` in this process with its memory sampled: where a soak's RSS growth lives.

    python bench/_memtrace.py OUT.jsonl SECONDS [--tracemalloc] -- watch --all ...

Every SECONDS (wall) one JSON line goes to OUT.jsonl: the process RSS, what SQLite's own
allocator holds (`sqlite3_memory_used`, its page caches), glibc's heap (`mallinfo2`: in use,
free but kept in its arenas), resident MB per kind of mapping (glibc's heap and thread
arenas, jemalloc's extents, other anonymous memory, files, lazily freed pages), the Python
allocator's live blocks, and the 25 commonest
object types by count (a `gc` census). With `--tracemalloc` the 25
source lines holding the most Python memory too (tracemalloc slows the daemon: a census
alone does not). RSS minus SQLite minus Python's blocks is what libc keeps (fragmentation,
freed heap not given back). `bench/soak.py` and `bench/watch.py --memtrace OUT.jsonl` run the
daemon this way (`add_memtrace_args`, `daemon_exe`).
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import ctypes.util
import gc
import json
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

from oiradar.cli import main
from oiradar.services.watch.state import rss_bytes


def add_memtrace_args(ap: argparse.ArgumentParser) -> None:
    """--memtrace/--memtrace-every: where a run's RSS lives (`daemon_exe`)."""
    ap.add_argument(
        "--memtrace",
        type=Path,
        help="run the daemon under bench/_memtrace.py, its memory split (RSS, SQLite, Python "
        "objects) written to this JSON-lines file every --memtrace-every wall s",
    )
    ap.add_argument("--memtrace-every", type=float, default=120.0, help="(default 120)")
    ap.add_argument(
        "--memtrace-lines",
        action="store_true",
        help="with --memtrace: also the source lines holding the most Python memory "
        "(tracemalloc: slows the daemon, so its latencies mean nothing)",
    )


def daemon_exe(args: argparse.Namespace) -> list[str]:
    """The argv that starts `oiradar`: under this tracer with --memtrace."""
    if args.memtrace is None:
        from _watchkit import EXE  # not at import: this module runs inside the daemon

        return [str(EXE)]
    trace = Path(__file__)
    lines = ["--tracemalloc"] if args.memtrace_lines else []
    return [sys.executable, str(trace), str(args.memtrace), str(args.memtrace_every), *lines, "--"]


def _sqlite_used() -> int | None:
    name = ctypes.util.find_library("sqlite3")
    if name is None:
        return None
    lib = ctypes.CDLL(name)
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    return int(lib.sqlite3_memory_used())


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost",
    )]  # fmt: skip


def _malloc() -> dict[str, int] | None:
    """glibc's heap over all arenas: in use (`uordblks` + mmapped `hblkhd`), free but kept
    (`fordblks`), and the arenas' size (`arena`); None off glibc (< 2.33)."""
    name = ctypes.util.find_library("c")
    try:
        fn = ctypes.CDLL(name).mallinfo2 if name else None
    except AttributeError:
        return None
    if fn is None:
        return None
    fn.restype = _MallInfo2
    m = fn()
    return {"arena": m.arena, "in_use": m.uordblks + m.hblkhd, "free_kept": m.fordblks,
            "mmapped": m.hblkhd}  # fmt: skip


ARENA_ALIGN = 64 << 20  # glibc's per-thread arenas are heaps at 64 MiB-aligned addresses
EXTENT_ALIGN = 2 << 20  # jemalloc's extents (polars' allocator) at 2 MiB-aligned ones


def _mappings() -> dict[str, float] | None:
    """Resident MB by kind of mapping (/proc/self/smaps): glibc's main heap (`[heap]`), its
    thread arenas, large 2 MiB-aligned anonymous extents (jemalloc: polars allocates there,
    invisible to mallinfo2), other anonymous memory (Python's own arenas, numpy's large
    arrays, thread stacks), files (the libraries' code), and what is freed lazily
    (MADV_FREE: counted in RSS until the kernel wants it back)."""
    try:
        text = Path("/proc/self/smaps").read_text()
    except OSError:
        return None
    kb = dict.fromkeys(("heap", "thread_arenas", "extents", "other_anon", "files", "lazy"), 0)
    kind = "other_anon"
    for line in text.splitlines():
        head = line.split(maxsplit=6)
        if "-" in head[0] and not head[0].endswith(":"):
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            name = head[5] if len(head) > 5 else ""
            if name == "[heap]":
                kind = "heap"
            elif name and not name.startswith("["):
                kind = "files"
            elif lo % ARENA_ALIGN == 0:
                kind = "thread_arenas"
            elif lo % EXTENT_ALIGN == 0 and hi - lo >= EXTENT_ALIGN:
                kind = "extents"
            else:
                kind = "other_anon"
        elif head[0] == "Rss:":
            kb[kind] += int(head[1])
        elif head[0] == "LazyFree:":
            kb["lazy"] += int(head[1])
    return {k: round(v / 1024, 1) for k, v in kb.items()}


def _sample(started: float, traced: bool) -> dict[str, Any]:
    counts = collections.Counter(type(o).__name__ for o in gc.get_objects())
    line: dict[str, Any] = {
        "wall_s": round(time.monotonic() - started, 1),
        "rss": rss_bytes(),
        "sqlite": _sqlite_used(),
        "py_blocks": sys.getallocatedblocks(),
        "malloc": _malloc(),
        "maps_mb": _mappings(),
        "objects": dict(counts.most_common(25)),
    }
    if traced:
        snap = tracemalloc.take_snapshot()
        line["traced"] = tracemalloc.get_traced_memory()[0]
        line["top"] = [
            [str(s.traceback[0]), s.size, s.count] for s in snap.statistics("lineno")[:25]
        ]
    return line


def _sampler(out: Path, every_s: float, traced: bool) -> None:
    started = time.monotonic()
    with out.open("a") as f:
        while True:
            f.write(json.dumps(_sample(started, traced)) + "\n")
            f.flush()
            time.sleep(every_s)


def run(argv: list[str]) -> int:
    split = argv.index("--")
    own, rest = argv[:split], argv[split + 1 :]
    out, every_s, traced = Path(own[0]), float(own[1]), "--tracemalloc" in own
    if traced:
        tracemalloc.start(1)
    threading.Thread(target=_sampler, args=(out, every_s, traced), daemon=True).start()
    sys.argv = ["oiradar", *rest]
    return main()


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
