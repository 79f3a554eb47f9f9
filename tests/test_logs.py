"""`--log-format json`: one object per line, each `key=%s` of the template a field holding
the argument itself (a value with spaces stays whole), tracebacks kept."""

from __future__ import annotations

import json
import logging
import sys

from oiradar.logs import JsonFormatter, fields


def _fail() -> None:
    raise ValueError("bad payload")


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            _fail()
        except ValueError:
            info = sys.exc_info()
    return logging.LogRecord("oiradar.x", logging.WARNING, __file__, 1, msg, args, info)


def test_templated_values_stay_whole() -> None:
    rec = _record("venue=%s event=stream_reconnect attempt=%d error=%s", "okx", 3,
                  "ClientConnectorError: Cannot connect to host x:443 ssl:default")  # fmt: skip
    assert fields(rec) == {
        "venue": "okx",
        "event": "stream_reconnect",
        "attempt": 3,
        "error": "ClientConnectorError: Cannot connect to host x:443 ssl:default",
    }
    doc = json.loads(JsonFormatter().format(rec))
    assert doc["level"] == "WARNING" and doc["logger"] == "oiradar.x"
    assert doc["message"].startswith("venue=okx event=stream_reconnect attempt=3 error=Client")
    assert doc["error"].endswith("ssl:default") and doc["ts"].endswith("+00:00")


def test_a_plain_message_and_a_traceback() -> None:
    doc = json.loads(JsonFormatter().format(_record("store %s is slow", "x", exc=True)))
    assert doc["message"] == "store x is slow" and "ValueError: bad payload" in doc["traceback"]
    assert set(doc) == {"ts", "level", "logger", "message", "traceback"}
