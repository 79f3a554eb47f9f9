"""The figures `bench/watch.py` prints once a run is over: resources, the daemon's and the
simulator's counters, the latency distributions, and the verdict against the targets."""

from __future__ import annotations

import argparse
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from _watchcauses import (
    PARTS,
    bar_steps,
    dist,
    loop_stalls,
    pct,
    published_alerts,
    report_causes,
    report_slowest,
)
from _watchkit import BAR_MS, WARM_CLOSES, Run
from oiradar.units import interval_ms, parse_time

PUSH_WALL_S = 0.1  # the simulator's WebSocket push cadence (wall time)
TARGET_RSS_MB = 300.0  # four venues (the watch issue); seven: 400 MB (issue #16)
TARGET_RSS_MB_SEVEN = 400.0
TARGET_P99_MS = 250.0
TARGET_BAR_P99_MS = 1500.0
MIN_BURSTS = 100  # fewer and a p99 is mostly the maximum
SIM_SATURATED = 0.9  # CPU share of one core


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def log_summary(path: Path) -> list[str]:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    levels: Counter[str] = Counter()
    events: Counter[str] = Counter()
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and parts[2] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            levels[parts[2]] += 1
            ev = next((p for p in parts if p.startswith("event=")), None)
            venue = next((p for p in parts if p.startswith("venue=")), "")
            if ev:
                events[f"{parts[2]} {venue} {ev}".replace("  ", " ")] += 1
    out = [
        f"watch stderr: {len(lines)} lines"
        + (f" ({', '.join(f'{k} {v}' for k, v in sorted(levels.items()))})" if levels else "")
    ]
    out += [f"  {n:6d} x {e}" for e, n in events.most_common(8)]
    if lines:
        out.append("  last lines:")
        out += [f"    {line[:200]}" for line in lines[-5:]]
    return out


def report_resources(args: argparse.Namespace, run: Run) -> float:
    """Prints the run, CPU and memory lines; returns the peak RSS in MB."""
    clock, wall = run.clock, run.t_stop - run.t_start
    streamed = run.t_stop - run.steady
    print(
        f"{args.symbols} symbols x {len(run.venues)} venues, sim speed {clock.speed:g}, "
        f"settle {run.settle_s:g}s; "
        f"daemon running for {streamed:.0f} s wall (~{streamed * clock.speed / 60:.0f} simulated "
        f"minutes, {streamed * clock.speed * 1000 / BAR_MS:.1f} bars) after a start-up of "
        + (f"{run.t_running - run.t_start:.1f} s" if run.t_running else "(never running)")
    )
    watch, sim = run.watch, run.sim
    print(
        f"the simulators ({len(sim.parts)} process{'es' if len(sim.parts) > 1 else ''}), the "
        "daemon and this receiver share "
        f"{os.cpu_count()} CPUs; each simulator is one asyncio loop (at most one core)"
    )
    print(
        f"watch CPU: {100 * watch.share(run.steady):.0f} % of one core once running, "
        f"{100 * watch.cpu_total() / wall:.0f} % over the whole {wall:.0f} s "
        f"({watch.cpu_total():.0f} CPU s, start-up included)"
    )
    parts = ", ".join(f"{100 * p.share(run.steady):.0f}" for p in sim.parts)
    print(
        f"simulator CPU (not the daemon's): {100 * sim.share(run.steady):.0f} % of one core "
        f"while the daemon was running (per process: {parts} %), "
        f"{100 * sim.cpu_total() / wall:.0f} % over the whole run"
    )
    if sim.busiest(run.steady) >= SIM_SATURATED:
        print(
            "  a simulator saturates its core: its push ticks run late and its REST replies "
            "queue, which inflates every latency below (see the bare-client probe)"
        )
    marks = [run.t_start + 60 * k for k in range(1, int(wall // 60) + 1)]
    per_min = [
        next((s for s in watch.samples if s[0] >= m), watch.samples[-1])[1] / 1024 for m in marks
    ]
    print(
        f"watch RSS at each wall minute from launch (MB): {', '.join(f'{x:.0f}' for x in per_min)}"
    )
    stop = f"{run.stop_s:.2f} s" if run.stop_s is not None else "did not exit in 60 s: killed"
    print(f"graceful stop (SIGTERM -> exit): {stop}, exit code {run.exit_code}")
    drift = max(
        max(0.0, abs(clock.wall_at(c.sim_ms) - c.wall) - c.rtt_s / 2) * 1000 for c in run.reads
    )
    print(
        f"sim clock: {len(run.reads)} reads, max deviation from the linear mapping beyond each "
        f"request's own round trip {drift:.1f} ms"
    )
    return max(watch.peak_kb, run.ru_maxrss_kb) / 1024


def report_status(run: Run) -> int:
    """Prints the daemon's published figures and the simulator's counters; returns 429s + bans."""
    streamed = max(1.0, run.t_stop - run.steady)
    settle_ms = run.settle_s * 1000
    newest = int(run.sim_ms_at_stop() - settle_ms) // BAR_MS * BAR_MS - BAR_MS  # its open
    print(
        f"{'venue':8} {'messages':>9} {'msg/s':>7} {'drops':>6} {'bars':>5} {'behind':>6} "
        f"{'REST err':>8}  last bar / limiter at the stop"
    )
    for v in run.status.get("venues", []):
        n = max(1, int(v.get("symbols") or 0))
        last = v.get("last_bar")
        behind = str((newest - parse_time(last)) // BAR_MS) if last else "-"
        limiter = ", ".join(f"{k} {u}" for k, u in (v.get("limiter") or {}).items() if u[0] != "0")
        print(
            f"{v['venue']:8} {v.get('messages', 0):9d} {v.get('messages', 0) / streamed:7.0f} "
            f"{v.get('disconnects', 0):6d} {v.get('bars_stepped', 0) / n:5.1f} {behind:>6} "
            f"{v.get('rest_errors', 0):8d}  {last} / {limiter or '-'}"
        )
    print(
        "  (bars: bars stepped per symbol; behind: bars closed and settled before the stop but "
        "not stepped yet)"
    )
    store, alerts = run.status.get("store", {}), run.status.get("alerts", {})
    print(
        f"store: {store.get('rows_written', 0)} rows written in {store.get('flushes', 0)} "
        f"batches, {store.get('write_failures', 0)} write failures"
    )
    kinds = Counter(str(a.get("kind")) for _, a in run.received)
    print(
        f"alerts: {alerts.get('produced', 0)} produced, {alerts.get('sent', 0)} sent, delivered "
        f"{alerts.get('delivered') or {}}, failed {alerts.get('failed') or {}}; received "
        f"{len(run.received)} ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})"
        + (f", {run.malformed} malformed" if run.malformed else "")
    )
    venues = run.sim_stats.get("venues", {})
    for name, v in sorted(venues.items()):
        print(
            f"simulator {name:8} {v.get('requests', 0):6d} requests, 429 {v.get('rejected_429', 0)}"
            f", 418/403 {v.get('bans', 0)}, {v.get('ws_messages', 0)} WebSocket messages"
        )
    report_rest(run)
    return sum(int(v.get("rejected_429", 0)) + int(v.get("bans", 0)) for v in venues.values())


# Binance's OI poll runs on a cadence of its own, not at the bar close: counted apart.
POLLED = {"/fapi/v1/openInterest", "/fapi/v1/premiumIndex"}


def report_rest(run: Run) -> None:
    """REST requests per bar close once the daemon runs (start-up backfill left out), per venue
    and endpoint: the simulator's counters at the start of the steady state and at the stop;
    then the same after the warm-up closes (their bars still go via REST and the cold funding
    fill lands in them), where the run lasted long enough."""
    if not run.sim_stats_running or not run.t_running:
        print("REST per bar close: not measured (the daemon never ran)")
        return
    _rest_since(run, run.sim_stats_running, run.t_running, "")
    if run.sim_stats_warm and run.t_warm is not None:
        _rest_since(run, run.sim_stats_warm, run.t_warm, " after the warm-up")


_MARKET = re.compile(r"/[A-Z0-9]+-USD[A-Z]*$")


def _rest_since(run: Run, stats: dict[str, Any], t_from: float, label: str) -> None:
    before = stats.get("venues", {})
    after = run.sim_stats.get("venues", {})
    first = int(run.clock.sim_at(t_from) // BAR_MS) + 1
    last = int(run.clock.sim_at(run.t_stop) // BAR_MS)
    closes = max(1, last - first + 1)
    total = polled = 0
    for name in sorted(after):
        old = before.get(name, {}).get("paths", {})
        new = after[name].get("paths", {})
        delta: dict[str, int] = {}
        for p, n in new.items():
            if grew := n - old.get(p, 0):
                shape = _MARKET.sub("/{market}", p)  # dYdX's paths name the market
                delta[shape] = delta.get(shape, 0) + grew
        venue_total = sum(delta.values())
        venue_polled = sum(n for p, n in delta.items() if p in POLLED)
        total += venue_total
        polled += venue_polled
        parts = ", ".join(f"{p} {n / closes:.0f}" for p, n in sorted(delta.items()))
        print(f"REST per bar close{label} {name:8} {venue_total / closes:7.0f}: {parts or '-'}")
    print(
        f"REST per bar close{label}, all venues: {total / closes:.0f} over {closes} closes "
        f"({(total - polled) / closes:.0f} without Binance's OI poll, {polled / closes:.0f} polled)"
    )


def report_latency(args: argparse.Namespace, run: Run, watch_log: Path) -> tuple[list[float], int]:
    """Prints the latency distributions; returns (message left the simulator -> sink, ms, for
    the escalations the probe saw the tipping order of; the number of escalations)."""
    clock, probe = run.clock, run.probe
    # A burst escalation's ts_ms is the tipping order's venue time (to the ms); a bar close's
    # is the bar boundary.
    bursts = [
        (t, a) for t, a in run.received if a.get("kind") == "escalation" and a["ts_ms"] % BAR_MS
    ]
    from_order = [(t - clock.wall_at(a["ts_ms"])) * 1000 for t, a in bursts]
    seen = probe.seen if probe else {}
    sim_part = [(arrived - clock.wall_at(ts)) * 1000 for (_, ts), arrived in seen.items()]
    left = [
        (t - seen[(a["symbol"], a["ts_ms"])]) * 1000
        for t, a in bursts
        if (a["symbol"], a["ts_ms"]) in seen
    ]
    print(f"liquidation -> sink, burst escalations: {len(bursts)}")
    print(
        "  "
        + dist(
            f"from the tipping message leaving the simulator (its arrival at a bare client "
            f"here; found for {len(left)} of {len(bursts)})",
            left,
        )
    )
    print(
        "  " + dist("from the tipping order's venue time (adds the simulator's part)", from_order)
    )
    print(
        "  "
        + dist(
            "the simulator's part, order time -> bare client, every short liquidation of "
            f"the probed venues (push batching every {PUSH_WALL_S * 1000:.0f} ms wall, "
            "its loop running late)",
            sim_part,
        )
    )
    if probe and probe.cpu_s is not None:
        print(f"  (the probe process used {probe.cpu_s:.0f} CPU s)")
    for err in probe.errors if probe else []:
        print(f"  probe feed failed: {err}")
    if len(bursts) < MIN_BURSTS:
        print(
            f"  only {len(bursts)} burst escalations (< {MIN_BURSTS}): the p99 means little; "
            "run longer (--minutes) or faster (--speed). Squeezes are called only after "
            f"--min-history {args.min_history} of streaming "
            f"({interval_ms(args.min_history) / 1000 / clock.speed:.0f} s wall at this speed)"
        )
    bar_alerts = [(t, a) for t, a in run.received if a["ts_ms"] % BAR_MS == 0]
    bar_ms = [
        (t - clock.wall_at(a["ts_ms"])) * 1000
        for t, a in bar_alerts
        if clock.wall_at(a["ts_ms"]) >= run.steady
    ]
    settle_wall = run.settle_s / clock.speed * 1000
    print(
        dist(
            f"bar close -> sink ({len(bar_alerts) - len(bar_ms)} alerts of bars closed before "
            f"the daemon was running left out; includes the {run.settle_s:g}s settle = "
            f"{settle_wall:.0f} ms wall)",
            bar_ms,
        )
    )
    steady = [(t, a) for t, a in bar_alerts if clock.wall_at(a["ts_ms"]) >= run.steady]
    # The closes right after a start step bars the streams saw only in part, via REST (the
    # warm-up, as in the REST counts): the steady state is what a daemon runs in for months.
    warm = run.t_warm if run.t_warm is not None else run.t_stop
    warmed = [(t, a) for t, a in steady if clock.wall_at(a["ts_ms"]) > warm]
    run.bar_ms_warmed = [(t - clock.wall_at(a["ts_ms"])) * 1000 for t, a in warmed]
    print(dist("bar close -> sink after the warm-up closes", run.bar_ms_warmed))
    steps, sent = bar_steps(watch_log), published_alerts(watch_log)
    print(" after the warm-up, per venue and cause:")
    report_causes(run, steps, warmed, sent)
    print(" the warm-up closes:")
    report_causes(run, steps, [x for x in steady if x not in warmed], sent)
    parts = [(t, sent.get((a["kind"], a["symbol"], a["ts_ms"]))) for t, a in bursts]
    deciding = [
        (p[0] - seen[(a["symbol"], a["ts_ms"])]) * 1000
        for (_, p), (_, a) in zip(parts, bursts, strict=True)
        if p is not None and (a["symbol"], a["ts_ms"]) in seen
    ]
    print(
        "  "
        + dist(
            "burst escalations, the tipping message's arrival at the bare client -> the "
            "daemon's decision (its stream, its loop)",
            deciding,
        )
    )
    for k, part in enumerate(PARTS):
        ms = [((t if k == 2 else p[k + 1]) - p[k]) * 1000 for t, p in parts if p is not None]
        print(f"  burst escalations from the decision, {dist(part, ms)}")
    stalls = loop_stalls(watch_log)
    lags = [(b - a) * 1000 for a, b in stalls]
    print(f"  {dist('event-loop stalls of 100 ms or more (event=loop_lag)', lags)}")
    timed = [
        (seen[(a["symbol"], a["ts_ms"])], t, sent.get((a["kind"], a["symbol"], a["ts_ms"])))
        for t, a in bursts
        if (a["symbol"], a["ts_ms"]) in seen
    ]
    print("  the slowest burst escalations:")
    report_slowest(timed, stalls, sorted(v[0] for v in steps.values()))
    run.bar_ms = bar_ms
    return left, len(bursts)


def report(args: argparse.Namespace, run: Run, watch_log: Path) -> int:
    print()
    print("=" * 94)
    peak = report_resources(args, run)
    target_rss = TARGET_RSS_MB if len(args.venues.split(",")) <= 4 else TARGET_RSS_MB_SEVEN
    print()
    limited = report_status(run)
    print()
    left, escalations = report_latency(args, run, watch_log)
    print()
    for line in log_summary(watch_log):
        print(line)
    print()
    print("=" * 94)
    if run.sim_error:
        print(f"a simulator stopped answering ({run.sim_error}): the run ended early")
    print(f"peak RSS: {peak:.1f} MB (target < {target_rss:.0f} MB: {verdict(peak < target_rss)})")
    if left:
        p99 = pct(left, 0.99)
        enough = "" if len(left) >= MIN_BURSTS else f"; fewer than {MIN_BURSTS}: indicative"
        print(
            f"liquidation message -> sink p99: {p99:.0f} ms over {len(left)} burst escalations "
            f"of {escalations}{enough} (target < {TARGET_P99_MS:.0f} ms: "
            f"{verdict(p99 < TARGET_P99_MS)})"
        )
    else:
        print("liquidation -> sink p99: no burst escalation measured (target: NOT MEASURED)")
    if run.bar_ms_warmed:
        p99 = pct(run.bar_ms_warmed, 0.99)
        print(
            f"bar close -> sink p99 after the warm-up: {p99:.0f} ms over "
            f"{len(run.bar_ms_warmed)} alerts (target < {TARGET_BAR_P99_MS:.0f} ms: "
            f"{verdict(p99 < TARGET_BAR_P99_MS)}); with the {WARM_CLOSES} warm-up closes after "
            f"the start: {pct(run.bar_ms, 0.99):.0f} ms over {len(run.bar_ms)}"
        )
    elif run.bar_ms:
        print(
            f"bar close -> sink p99: {pct(run.bar_ms, 0.99):.0f} ms over {len(run.bar_ms)} "
            "alerts, all of the warm-up closes (target: NOT MEASURED, run longer)"
        )
    print(f"429/418 from the simulator: {limited} (target 0: {verdict(limited == 0)})")
    print(
        f"graceful stop: exit code {run.exit_code}"
        + (f" after {run.stop_s:.2f} s" if run.stop_s is not None else ", killed")
        + f" ({verdict(run.exit_code == 0)})"
    )
    print("=" * 94)
    return 0
