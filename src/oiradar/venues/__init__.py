"""Exchange connectors. Venue specifics stay in here and never pass the normalized records.

One package per venue (`binance/`, `bybit/`, `okx/`, `bitget/`, `gate/`, `hyperliquid/`,
`dydx/`), each split the same way:
`wire` (paths, tables, pure parsers of payloads into records), `rest` (the REST client and
its limits) and `ws` (the stream). Shared: `base` (the interface and the boundary helpers),
`http` and `limiter` (transport), `stream` (the WebSocket loop), `endpoints`, `registry`.
"""
