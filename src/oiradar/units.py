"""Time, interval and symbol helpers shared by every layer."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from oiradar.errors import UserError

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

_INTERVAL_RE = re.compile(r"^(\d+)(m|h|d|w)$")
_UNIT_MS = {"m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS, "w": 7 * DAY_MS}


def interval_ms(text: str) -> int:
    """'5m' -> 300000; accepts m, h, d, w suffixes (Binance-style interval names)."""
    m = _INTERVAL_RE.match(text.strip())
    if not m or int(m.group(1)) == 0:
        raise UserError(f"invalid interval {text!r}: expected e.g. 5m, 15m, 1h, 4h, 1d")
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def interval_name(ms: int) -> str:
    """300000 -> '5m'; the largest unit that divides evenly."""
    for unit in ("w", "d", "h", "m"):
        size = _UNIT_MS[unit]
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


_EPOCH_MS_RE = re.compile(r"[0-9]{1,15}\Z")  # ASCII only: str.isdigit() takes '²', int() not
_FIRST_MS = 0  # 1970-01-01
_LAST_MS = 32_503_680_000_000  # 3000-01-01: later (or earlier than 1970) is a typo, not a time


def parse_time(text: str) -> int:
    """ISO 8601 date or datetime (naive = UTC) or epoch ms -> ms UTC, from 1970 to 2999."""
    raw = text.strip()
    if _EPOCH_MS_RE.match(raw):
        ms = int(raw)
    else:
        try:
            dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise UserError(
                f"invalid time {text!r}: expected ISO 8601 such as 2024-08-08 or 2024-08-08T21:00Z"
            ) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        try:
            ms = int(dt.timestamp() * 1000)
        except (OverflowError, ValueError):
            ms = -1
    if not _FIRST_MS <= ms < _LAST_MS:
        raise UserError(f"invalid time {text!r}: expected a time from 1970 to 2999")
    return ms


def iso(ts_ms: int) -> str:
    """ms UTC -> '2024-08-08T21:00:00Z' (the only time format at output edges)."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def funding_8h(rate: float | None, interval_h: float | None) -> float | None:
    """A funding rate per `interval_h` hours as the 8-hour equivalent, so symbols charged every
    1 h, 4 h or 8 h compare fairly; None when either is unknown."""
    if rate is None or not interval_h:
        return None
    return rate * 8.0 / interval_h


SYMBOL_MAX_CHARS = 30
_SYMBOL_RE = re.compile(r"[A-Z0-9]+\Z")


def canonical_symbol(text: str) -> str:
    """User input -> canonical symbol: 'btc-usdt' / 'BTC-USDT-SWAP' / 'btcusdt' -> 'BTCUSDT';
    ASCII letters and digits, at most 30 (what every venue lists and the dashboard accepts)."""
    raw = text.strip().upper().replace("/", "-").replace("_", "-")
    if raw.endswith("-SWAP"):
        raw = raw[: -len("-SWAP")]
    sym = raw.replace("-", "")
    if not _SYMBOL_RE.match(sym) or len(sym) > SYMBOL_MAX_CHARS:
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise UserError(f"invalid symbol {shown!r}: expected e.g. BTCUSDT")
    return sym
