"""Prometheus metrics of `oiradar watch`, derived from the status it already publishes in
the store every 2 s (the same JSON `oiradar status` shows): the dashboard's `/metrics` and
`watch --metrics-port` render it, so the daemon itself keeps no second set of counters.

Counters are the daemon's own running totals (they restart at zero with it, which
Prometheus' `rate()` handles). The store's mean write latency is
`rate(oiradar_store_write_seconds_total) / rate(oiradar_store_flushes_total)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from oiradar.services.watch.state import checked
from oiradar.units import parse_time

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _StatusCollector(Collector):
    def __init__(self, status: dict[str, Any] | None, now_ms: int) -> None:
        self.status = checked(status, now_ms) if status is not None else None
        self.now_ms = now_ms

    def collect(self) -> Iterator[Metric]:
        st = self.status or {}
        up = GaugeMetricFamily("oiradar_watch_up", "1 while a watch writes this store")
        up.add_metric([], 1.0 if st.get("state") == "running" else 0.0)
        yield up
        if not st:
            return
        yield from _venues(st.get("venues") or [], self.now_ms)
        yield from _store(st.get("store") or {})
        yield from _alerts(st.get("alerts") or {})
        yield from _loop(st.get("loop") or {})
        if isinstance(st.get("rss_bytes"), int):
            rss = GaugeMetricFamily("oiradar_process_resident_memory_bytes", "watch RSS")
            rss.add_metric([], float(st["rss_bytes"]))
            yield rss


def _venues(venues: list[dict[str, Any]], now_ms: int) -> Iterator[Metric]:
    labels = ["venue"]
    live = GaugeMetricFamily(
        "oiradar_stream_live", "1 when the venue's stream is live", labels=labels
    )
    rate = GaugeMetricFamily("oiradar_stream_messages_per_second", "stream rate", labels=labels)
    age = GaugeMetricFamily(
        "oiradar_last_bar_age_seconds", "time since the last bar evaluated opened", labels=labels
    )
    totals = {
        key: CounterMetricFamily(f"oiradar_{name}", text, labels=labels)
        for key, name, text in (
            ("messages", "stream_messages", "stream messages"),
            ("connects", "stream_connects", "stream (re)connections"),
            ("disconnects", "stream_disconnects", "stream drops"),
            ("duplicates", "stream_duplicates", "duplicated stream messages dropped"),
            ("rest_errors", "rest_errors", "REST failures"),
            ("rest_requests", "rest_requests", "REST requests sent (retries included)"),
            ("rest_429", "rest_rate_limited", "REST requests answered 429"),
        )
    }
    usage = GaugeMetricFamily(
        "oiradar_limiter_usage_ratio", "rate-limit budget in use", labels=["venue", "bucket"]
    )
    backfilled = CounterMetricFamily(
        "oiradar_backfilled_rows", "rows fetched over REST", labels=["venue", "kind"]
    )
    for v in venues:
        name = str(v.get("venue"))
        live.add_metric([name], 1.0 if v.get("stream") == "live" else 0.0)
        rate.add_metric([name], float(v.get("msg_per_s") or 0.0))
        for key, family in totals.items():
            family.add_metric([name], float(v.get(key) or 0))
        if v.get("last_bar"):
            age.add_metric([name], max(0.0, (now_ms - parse_time(str(v["last_bar"]))) / 1000))
        for bucket, text in (v.get("limiter") or {}).items():
            used, _, limit = str(text).partition("/")
            if used.isascii() and used.isdigit() and limit.isascii() and limit.isdigit():
                usage.add_metric([name, str(bucket)], int(used) / max(1, int(limit)))
        for kind, rows in (v.get("backfilled") or {}).items():
            backfilled.add_metric([name, str(kind)], float(rows))
    yield from (live, rate, age, *totals.values(), usage, backfilled)


def _store(store: dict[str, Any]) -> Iterator[Metric]:
    for key, name, text, family in (
        ("rows_written", "store_rows_written", "rows written", CounterMetricFamily),
        ("flushes", "store_flushes", "write batches", CounterMetricFamily),
        ("write_failures", "store_write_failures", "failed write batches", CounterMetricFamily),
        ("pending", "store_pending_rows", "rows queued for the store", GaugeMetricFamily),
        ("write_s", "store_write_seconds", "wall seconds spent writing", CounterMetricFamily),
        ("last_write_s", "store_last_write_seconds", "the last write batch", GaugeMetricFamily),
    ):
        metric = family(f"oiradar_{name}", text)
        metric.add_metric([], float(store.get(key) or 0))
        yield metric


def _alerts(alerts: dict[str, Any]) -> Iterator[Metric]:
    for key, name, text in (
        ("produced", "alerts_produced", "alerts the engine produced"),
        ("sent", "alerts_sent", "alerts past the gate, sent to the sinks"),
    ):
        metric = CounterMetricFamily(f"oiradar_{name}", text)
        metric.add_metric([], float(alerts.get(key) or 0))
        yield metric
    for key, text in (("delivered", "alerts delivered"), ("failed", "alerts given up")):
        per_sink = CounterMetricFamily(f"oiradar_alerts_{key}", text, labels=["sink"])
        for sink, n in (alerts.get(key) or {}).items():
            per_sink.add_metric([str(sink)], float(n))
        yield per_sink


def _loop(loop: dict[str, Any]) -> Iterator[Metric]:
    if not loop:  # a status published before the loop's lag was measured
        return
    lag = GaugeMetricFamily(
        "oiradar_loop_lag_seconds", "the event loop's worst lag over the last 10 s"
    )
    lag.add_metric([], float(loop.get("lag_ms") or 0) / 1000)
    stalls = CounterMetricFamily("oiradar_loop_stalls", "event-loop stalls of 100 ms or more")
    stalls.add_metric([], float(loop.get("stalls") or 0))
    yield from (lag, stalls)


def exposition(status: dict[str, Any] | None, now_ms: int) -> bytes:
    """The Prometheus text exposition of a published status (None: no watch ever ran)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StatusCollector(status, now_ms))
    return generate_latest(registry)
