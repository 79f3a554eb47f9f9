"""Collectors and deciders on one store: who they are, what their heartbeats say, and
which venues' data is current.

A collector (`watch --collect-only`) beats every `BEAT_EVERY_S`, and at once after every
bar close, with per venue: the symbols it watches, the newest bar it closed *and stored*
(`last_bar_ms`, only ever sent after the flush that wrote that bar's rows), its liquidation
feed, the live funding rates and its status line. A decider (`--decide-only`) steps each
(venue, symbol) up to that mark; a venue whose collectors' beats are older than
`STALE_AFTER_MS` is stale: shown so, and never stepped (its bars are unknown until a
collector stores them, never zero).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from oiradar.store import Heartbeat

BEAT_EVERY_S = 2.0
STALE_AFTER_MS = 10_000  # five missed beats
LEASE = "decider"


class Role(StrEnum):
    ALL = "all"  # plain `oiradar watch`: everything in one process
    COLLECT = "collector"
    DECIDE = "decider"


def worker_id() -> str:
    """Unique while this process lives: a pid means something on its host only."""
    return f"{socket.gethostname()}:{os.getpid()}"


def heartbeat(role: Role, now_ms: int, detail: dict[str, Any]) -> Heartbeat:
    return Heartbeat(worker_id(), role.value, socket.gethostname(), os.getpid(), now_ms, detail)


@dataclass(slots=True)
class VenueView:
    """What the collectors of one venue say, merged: per symbol the newest stored bar of
    a fresh collector; the symbols only stale collectors watched; the status line."""

    marks: dict[str, int] = field(default_factory=dict)
    firsts: dict[str, int] = field(default_factory=dict)  # the bar each one's warm-up stepped
    stale: set[str] = field(default_factory=set)
    feed: str = "none"
    funding: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    line: dict[str, Any] = field(default_factory=dict)
    collectors: list[str] = field(default_factory=list)


def is_stale(hb: Heartbeat, now_ms: int) -> bool:
    return now_ms - hb.beat_ms > STALE_AFTER_MS or hb.detail.get("state") == "stopped"


def venue_views(beats: list[Heartbeat], now_ms: int) -> dict[str, VenueView]:
    """Every venue some collector ever beat for, as the deciders see it now."""
    views: dict[str, VenueView] = {}
    for hb in sorted(beats, key=lambda b: b.beat_ms):  # the newest beat's line wins
        if hb.role != Role.COLLECT.value:
            continue
        stale = is_stale(hb, now_ms)
        for venue, v in (hb.detail.get("venues") or {}).items():
            view = views.setdefault(venue, VenueView())
            symbols = [str(s) for s in v.get("symbols") or ()]
            if stale:
                view.stale.update(symbols)
                continue
            view.collectors.append(hb.worker)
            view.line, view.feed = dict(v.get("line") or {}), str(v.get("feed") or "none")
            for sym, (rate, hours) in (v.get("funding") or {}).items():
                view.funding[str(sym)] = (rate, hours)
            last, first = v.get("last_bar_ms"), v.get("first_bar_ms")
            for sym in symbols:
                view.stale.discard(sym)
                if isinstance(last, int):
                    view.marks[sym] = max(last, view.marks.get(sym, last))
                if isinstance(first, int):
                    view.firsts[sym] = min(first, view.firsts.get(sym, first))
    for view in views.values():
        view.stale -= set(view.marks)
    return views


def with_workers(status: dict[str, Any], beats: list[Heartbeat], now_ms: int) -> dict[str, Any]:
    """`status` (a decider's or a plain watch's) with every worker's age, and each venue
    whose collectors all stopped beating shown stale (`oiradar status`, the dashboard)."""
    if not beats:
        return status
    workers = [
        {
            "worker": hb.worker,
            "role": hb.role,
            "age_s": max(0, now_ms - hb.beat_ms) // 1000,
            "stale": is_stale(hb, now_ms),
            "venues": sorted(hb.detail.get("venues") or {}),
            "leading": hb.detail.get("leading"),
        }
        for hb in beats
    ]
    views = venue_views(beats, now_ms)
    venues = []
    for given in status.get("venues", []):
        view = views.get(str(given.get("venue")))
        stale = view is not None and bool(view.stale) and not view.marks
        venues.append({**given, "stream": "stale", "stale": True} if stale else given)
    listed = {str(line.get("venue")) for line in venues}
    for venue, view in sorted(views.items()):  # collectors no decider has reported yet
        if venue not in listed:
            stale = bool(view.stale) and not view.marks
            line = {**view.line, "venue": venue}
            venues.append({**line, "stream": "stale", "stale": True} if stale else line)
    return {**status, "venues": venues, "workers": workers}
