"""The API's query and path parameters, checked: a value the API refuses is a `BadRequest`
(a 400 with its message), never a traceback."""

from __future__ import annotations

import re

from aiohttp import web

from oiradar.errors import OiradarError
from oiradar.units import MINUTE_MS, interval_ms, parse_time
from oiradar.venues.registry import ALL_VENUES

# `\Z`, not `$`: `$` also matches before a trailing newline ("BTCUSDT\n").
SYMBOL_RE = re.compile(r"[A-Z0-9]{2,30}\Z")
VENUES = (*ALL_VENUES, "all")  # matched whole, so no pattern can let a trailing newline in
WHOLE_RE = re.compile(r"[0-9]{1,9}\Z")  # ASCII: str.isdigit() takes '²', which int() refuses


class BadRequest(Exception):
    """A parameter the API refuses: becomes a 400 with this message."""


def window(request: web.Request, default_ms: int | None) -> int | None:
    text = request.query.get("window")
    if not text:
        return default_ms
    try:
        ms = interval_ms(text)
    except OiradarError:
        raise BadRequest(f"window {text!r} is not a duration like 15m or 1h") from None
    if ms % (5 * MINUTE_MS) or ms > 24 * 60 * MINUTE_MS:
        raise BadRequest(f"window {text!r} must be a multiple of 5m, at most 1d")
    return ms


def symbol(request: web.Request) -> str:
    symbol = request.match_info["symbol"].upper()
    if not SYMBOL_RE.match(symbol):
        raise BadRequest(f"{request.match_info['symbol']!r} is not a symbol like BTCUSDT")
    return symbol


def venue(request: web.Request, default: str) -> str:
    venue = request.query.get("venue", default).lower()
    if venue not in VENUES:
        raise BadRequest(f"unknown venue {venue!r}: {', '.join(ALL_VENUES)} or all")
    return venue


def time(request: web.Request, key: str) -> int | None:
    text = request.query.get(key)
    if text is None:
        return None
    try:
        return parse_time(text)
    except OiradarError:
        raise BadRequest(f"{key} {text!r} is not an ISO 8601 UTC time") from None


def whole(request: web.Request, key: str, default: int, lo: int, hi: int) -> int:
    text = request.query.get(key)
    if text is None:
        return default
    if not WHOLE_RE.match(text) or not lo <= int(text) <= hi:
        raise BadRequest(f"{key} must be a whole number from {lo} to {hi}")
    return int(text)
