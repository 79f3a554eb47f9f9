"""Bar close -> sink per venue and cause for `bench/watch.py`, from the daemon's log lines
(`event=bar_closed` and `event=alert`, info level)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _watchkit import BAR_MS, Run
from oiradar.units import parse_time


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def dist(name: str, ms: list[float]) -> str:
    if not ms:
        return f"{name}: none"
    return (
        f"{name}: n={len(ms)} p50 {pct(ms, 0.5):.0f} ms, p95 {pct(ms, 0.95):.0f} ms, "
        f"p99 {pct(ms, 0.99):.0f} ms, max {max(ms):.0f} ms"
    )


Steps = dict[tuple[str, int], tuple[float, float, float, int, int]]


def bar_steps(watch_log: Path) -> Steps:
    """(venue, bar open ms) -> (close step entered, computing from, done: wall s; bars stepped
    from the streams, from the store) from the daemon's `event=bar_closed` lines (info)."""
    out: Steps = {}
    text = watch_log.read_text(errors="replace") if watch_log.exists() else ""
    for line in text.splitlines():
        if "event=bar_closed" not in line:
            continue
        kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
        out[(kv["venue"], parse_time(kv["bar"]))] = (
            float(kv["close_wall"]),
            float(kv["step_wall"]),
            float(kv["done_wall"]),
            int(kv["streamed"]),
            int(kv["rest"]),
        )
    return out


Published = dict[tuple[str, str, int], tuple[float, float, float]]
PARTS = ("record", "store", "sink")


def published_alerts(watch_log: Path) -> Published:
    """(kind, symbol, ts_ms) -> (decided, its record read, stored: wall s) from the daemon's
    `event=alert` lines (info)."""
    out: Published = {}
    text = watch_log.read_text(errors="replace") if watch_log.exists() else ""
    for line in text.splitlines():
        if "event=alert " not in line or "stored_wall=" not in line:
            continue
        kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
        out[(kv["kind"], kv["symbol"], int(kv["ts_ms"]))] = (
            float(kv["made_wall"]), float(kv["read_wall"]), float(kv["stored_wall"])
        )  # fmt: skip
    return out


def loop_stalls(watch_log: Path) -> list[tuple[float, float]]:
    """(from, to: wall s) of each stall of the daemon's event loop (`event=loop_lag`, info:
    a timer woken 100 ms or more late)."""
    out = []
    text = watch_log.read_text(errors="replace") if watch_log.exists() else ""
    for line in text.splitlines():
        if "event=loop_lag" not in line:
            continue
        kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
        end = float(kv["at_wall"])
        out.append((end - float(kv["lag_ms"]) / 1000, end))
    return out


def report_slowest(
    slow: list[tuple[float, float, tuple[float, float, float] | None]],
    stalls: list[tuple[float, float]],
    closes: list[float],
) -> None:
    """The slowest escalations, each split (arrival -> decision, record, store, sink), with
    the loop stalls that overlapped its wait and how long after a close step began."""
    worst = sorted(slow, key=lambda x: x[1] - x[0], reverse=True)[:8]
    for arrived, at_sink, parts in worst:
        split = "no alert line"
        if parts is not None:
            made, read, stored = parts
            split = (
                f"decision {(made - arrived) * 1000:.0f}, record {(read - made) * 1000:.0f}, "
                f"store {(stored - read) * 1000:.0f}, sink {(at_sink - stored) * 1000:.0f} ms"
            )
        over = [(a, b) for a, b in stalls if a < at_sink and b > arrived]
        stalled = sum(min(b, at_sink) - max(a, arrived) for a, b in over) * 1000
        before = [c for c in closes if c <= arrived]
        since = f"{arrived - max(before):.1f} s after a close step began" if before else ""
        print(
            f"    {(at_sink - arrived) * 1000:.0f} ms: {split}; loop stalled {stalled:.0f} ms "
            f"of it ({len(over)} stalls); {since}"
        )


def report_causes(
    run: Run, steps: Steps, bar_alerts: list[tuple[float, dict[str, Any]]], sent: Published
) -> None:
    """Bar close -> sink per venue and per cause. The venue that raised an alert is the one of
    its drivers whose close step for that bar began last before the alert arrived; waiting =
    the bar's close -> that step computing (the settle time, and Binance's OI sweep),
    computing = -> the step done (or the alert, if sooner), delivering = -> the sink; and,
    from the daemon's alert lines, from the decision: its record (the symbol's track record
    read, after the symbol's previous alert), the store (the alert log and the episode
    written), the sink (the webhook)."""
    if not steps:
        print("  per cause: no event=bar_closed lines (run with --log-level info)")
        return
    clock = run.clock
    per: dict[str, dict[str, list[float]]] = {}
    for arrived, a in bar_alerts:
        bar_open = a["ts_ms"] - BAR_MS
        found = [
            (s, v)
            for v in a.get("drivers") or []
            if (s := steps.get((v, bar_open))) and s[1] <= arrived
        ]
        if not found:
            continue
        (_, computing, done, _, _), venue = max(found, key=lambda x: x[0][1])
        close = clock.wall_at(a["ts_ms"])
        end = min(done, arrived)
        causes = ("total", "waiting", "computing", "delivering", *PARTS)
        book = per.setdefault(venue, {c: [] for c in causes})
        book["total"].append((arrived - close) * 1000)
        book["waiting"].append((computing - close) * 1000)
        book["computing"].append((end - computing) * 1000)
        book["delivering"].append((arrived - end) * 1000)
        if got := sent.get((a["kind"], a["symbol"], a["ts_ms"])):
            made, read, stored = got
            for part, ms in zip(PARTS, (read - made, stored - read, arrived - stored), strict=True):
                book[part].append(ms * 1000)
    for venue, book in sorted(per.items()):
        print(f"  {venue}: " + dist("bar close -> sink", book["total"]))
        for cause in ("waiting", "computing", "delivering"):
            print(f"    {dist(cause, book[cause])}")
        for part in PARTS:
            if book[part]:
                print(f"      from the decision, {dist(part, book[part])}")
    streamed = sum(s[3] for s in steps.values())
    rest = sum(s[4] for s in steps.values())
    print(f"  bars stepped at closes: {streamed} from the streams, {rest} via REST/store")
