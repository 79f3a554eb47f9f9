"""How the daemon's log lines are written: `text` (the stdlib's line, `key=value` pairs in
the message) or `json`, one object per line for a log shipper.

The library logs `key=%s` templates (`log.info("venue=%s event=stream_reconnect error=%s",
...)`). In JSON each `key=%s` becomes a field holding the argument itself, so a value with
spaces (an error text) stays whole, which no parser of the text line can promise.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# `key=%s` (a placeholder) or `key=literal`, in a logging template.
_PAIR = re.compile(r"(\w+)=(%[-#0 +]*\d*(?:\.\d+)?[sdifrx]|[^\s%]+)")
_PLACEHOLDER = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[sdifrx]")


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `key=value` pairs of a record, values taken from its arguments where templated."""
    template = str(record.msg)
    args = record.args if isinstance(record.args, tuple) else ()
    out: dict[str, Any] = {}
    for m in _PAIR.finditer(template):
        key, value = m.groups()
        if _PLACEHOLDER.fullmatch(value):
            index = len(_PLACEHOLDER.findall(template[: m.start(2)]))
            out[key] = _plain(args[index]) if index < len(args) else None
        else:
            out[key] = value
    return out


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC, ISO 8601), level, logger, message, the
    record's fields, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **fields(record),
        }
        if record.exc_info:
            doc["traceback"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


def configure(level: str, fmt: str) -> None:
    """Logs to stderr at `level` in `fmt` (one of FORMATS; callers validate both)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
