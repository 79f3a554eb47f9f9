"""Alerts for `oiradar watch`: the record, the sinks, the gate and the dispatcher."""

from oiradar.services.alerts.dispatch import Delivery, Dispatcher, Gate
from oiradar.services.alerts.model import Alert, AlertKind, sample_alert
from oiradar.services.alerts.sinks import Sink, SinkError, build_sink, scrub

__all__ = [
    "Alert",
    "AlertKind",
    "Delivery",
    "Dispatcher",
    "Gate",
    "Sink",
    "SinkError",
    "build_sink",
    "sample_alert",
    "scrub",
]
