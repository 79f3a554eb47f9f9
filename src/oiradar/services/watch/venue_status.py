"""A venue's bookkeeping inside `oiradar watch`: the OI poll cadence its limits allow, its
counters and its line in `oiradar status`, and the spans its liquidation feed was up."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from oiradar.records import LiquidationFeed
from oiradar.units import iso
from oiradar.venues.base import VenueClient
from oiradar.venues.limiter import SAFETY
from oiradar.venues.stream import StreamStats, VenueStream

MIN_POLL_S = 1.0  # venues refresh OI about once a second: polling faster buys nothing
RATE_MIN_S = 1.0  # the shortest span a status line's message rate is taken over
POLL_SHARE = 0.5  # of the budget left after the bar-close work; the rest absorbs backfills


def poll_interval_s(
    cost: dict[str, float], budgets: dict[str, tuple[float, float]], reserved: dict[str, float]
) -> float:
    """The fastest cadence at which one poll costing `cost` units per bucket fits in
    POLL_SHARE of what the budgets (limit, period s) leave after `reserved` units/s."""
    interval = MIN_POLL_S
    for bucket, units in cost.items():
        limit, period = budgets[bucket]
        spare = limit * SAFETY / period - reserved.get(bucket, 0.0)
        if spare <= 0:
            return math.inf
        interval = max(interval, units / (POLL_SHARE * spare))
    return interval


@dataclass(slots=True)
class VenueStatus:
    bars_stepped: int = 0
    last_bar_ms: int | None = None
    backfilled: dict[str, int] = field(default_factory=dict)  # kind -> rows fetched by REST
    errors: int = 0
    last_error: str | None = None
    poll_s: float | None = None
    polls: int = 0
    candles: str = "rest"  # "stream": closed candles come from the venue's WebSocket
    streamed_bars: int = 0  # bars stepped from what the streams built (no REST, no store read)
    filled: dict[str, int] = field(default_factory=dict)  # cause -> bars whose candle REST filled
    last_filled: list[str] = field(default_factory=list)  # "SYMBOL@bar open (cause)", newest last
    missing: int = 0  # bars stepped with no candle: neither the stream nor REST had one
    rate_mark: tuple[float, int] = field(default_factory=lambda: (time.monotonic(), 0))
    rate: float = 0.0  # messages a second between the last two marks

    def line(
        self, client: VenueClient, stream: VenueStream, symbols: int, feed: LiquidationFeed
    ) -> dict[str, Any]:
        """The venue's line in `oiradar status`. The message rate is over at least
        RATE_MIN_S since the previous mark: every alert stores the status with it, and a
        rate over the few milliseconds between two alerts of a bar close read 0 or
        thousands."""
        st = stream.stats
        limiter = getattr(client, "limiter", None)
        usage = limiter.usage() if limiter is not None else {}
        http = getattr(getattr(client, "http", None), "stats", None)  # REST clients have one
        mono, seen = self.rate_mark
        now = time.monotonic()
        if now - mono >= RATE_MIN_S:
            self.rate = (st.messages - seen) / (now - mono)
            self.rate_mark = (now, st.messages)
        rate = self.rate
        return {
            "venue": client.name,
            "stream": st.state.value,
            "connects": st.connects,
            "disconnects": st.disconnects,
            "messages": st.messages,
            "msg_per_s": round(rate, 1),
            "duplicates": st.duplicates,
            "last_message": iso(st.last_message_ms) if st.last_message_ms else None,
            "last_bar": iso(self.last_bar_ms) if self.last_bar_ms else None,
            "bars_stepped": self.bars_stepped,
            "candles": self.candles,
            "streamed_bars": self.streamed_bars,
            "filled": dict(self.filled),
            "last_filled": self.last_filled[-10:],
            "missing": self.missing,
            "symbols": symbols,
            "liquidations": feed.value,
            "oi": "stream" if stream.streams_oi else f"poll every {self.poll_s or 0:.1f} s",
            "limiter": {k: f"{u}/{lim}" for k, (u, lim) in usage.items()},
            "backfilled": dict(self.backfilled),
            "rest_errors": self.errors,
            "rest_requests": http.requests if http is not None else 0,
            "rest_429": http.failures.get("RateLimited", 0) if http is not None else 0,
            "last_error": self.last_error or st.last_error,
        }


@dataclass(slots=True)
class FeedSpans:
    """The spans a liquidation feed was connected, from its stream's gaps: each call gives
    the spans closed since the last one and the open span up to the newest message."""

    start: int | None = None
    gaps_seen: int = 0

    def spans(self, stats: StreamStats) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for down, back in stats.gaps[self.gaps_seen :]:
            if self.start is not None and down > self.start:
                out.append((self.start, down))
            self.start = back
        self.gaps_seen = len(stats.gaps)
        last = stats.last_message_ms
        # At a stop the open span still counts if the stream was live up to it (the candles
        # stored then may close after the last bar-close record).
        up = stats.state == "live" or (stats.state == "stopped" and stats.stopped_live)
        if self.start is None and last is not None and up:
            self.start = last
        if self.start is not None and last is not None and up:
            out.append((self.start, last))
        return out
