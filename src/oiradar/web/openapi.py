"""The API's OpenAPI 3.1 description, served at /api/openapi.json (docs/serve.md)."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "description": "Bad parameter (400), unknown symbol or no data (404), missing token (401)",
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"error": {"type": "string"}}}
        }
    },
}
_WINDOW = {
    "name": "window",
    "in": "query",
    "description": "One horizon for the OI and price change, a multiple of 5m; empty or absent: "
    "the engine's horizons read at once (default 15m, 30m, 1h)",
    "schema": {"type": "string", "example": "15m"},
}
_SYMBOL = {
    "name": "symbol",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9]{2,30}$", "example": "BTCUSDT"},
}


def _ok(description: str, example: dict[str, Any] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": {"type": "object"}}
    if example is not None:
        content["example"] = example
    return {
        "200": {"description": description, "content": {"application/json": content}},
        "400": _ERROR,
        "401": _ERROR,
        "404": _ERROR,
    }


SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "oiradar dashboard API",
        "version": "1",
        "description": "Read-only view of the store `oiradar watch` writes. With a token "
        "configured, send it as `Authorization: Bearer TOKEN` (or ?token=).",
    },
    "paths": {
        "/api/markets": {
            "get": {
                "summary": "Every watched market's newest bar, per venue and across venues",
                "parameters": [_WINDOW],
                "responses": _ok(
                    "rows (per venue) and aggregates (per coin, OI summed across venues, "
                    "the driving venue), most telling regime first",
                    {"version": 3, "window": "15m,30m,1h", "rows": [], "aggregates": []},
                ),
            }
        },
        "/api/stream": {
            "get": {
                "summary": "Server-sent events: `table` (as /api/markets) and `alert`",
                "parameters": [_WINDOW],
                "responses": {"200": {"description": "text/event-stream"}, "400": _ERROR},
            }
        },
        "/api/alerts": {
            "get": {
                "summary": "The newest alerts `oiradar watch` sent, newest first",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    }
                ],
                "responses": _ok("alerts: the alert objects of docs/watch.md"),
            }
        },
        "/api/status": {
            "get": {
                "summary": "The watch daemon's state and per-venue stream state",
                "responses": _ok("state, started, updated, venues"),
            }
        },
        "/api/symbols/{symbol}/chart": {
            "get": {
                "summary": "Price, OI per venue and aggregated, funding, liquidations, "
                "regime spans and events on one time axis",
                "parameters": [
                    _SYMBOL,
                    {"name": "venue", "in": "query", "schema": {"type": "string"}},
                    {"name": "from", "in": "query", "schema": {"type": "string"}},
                    {"name": "to", "in": "query", "schema": {"type": "string"}},
                    _WINDOW,
                ],
                "responses": _ok("chart series (null = no data for that bar)"),
            }
        },
        "/api/symbols/{symbol}/events": {
            "get": {
                "summary": "The symbol's events with forward returns (the backtest's study)",
                "parameters": [
                    _SYMBOL,
                    {"name": "venue", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "days",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 3650},
                    },
                    _WINDOW,
                ],
                "responses": _ok("summary (hit rate, mean +1h with intervals) and events"),
            }
        },
        "/api/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": {"description": "JSON"}}}
        },
    },
}
