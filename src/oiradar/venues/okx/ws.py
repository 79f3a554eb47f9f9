"""OKX v5 public WebSocket (exchange-apis.md §3.5): liquidations, open interest, funding.

One connection to `/ws/v5/public` subscribes `open-interest` and `funding-rate` per instId,
in batches well under the 64 KB subscribe limit, and another one (the last) `liquidation-orders`
(instType SWAP: every swap in one subscription, *sampled* to one order per contract per
second): on the first, an order waited behind every OI and funding push in the same TCP
stream. `side` is the
*order* side (buy closes a short => SHORT liquidated); `posSide` counts only when it is
`long`/`short` (hedge mode), never `net` (read in `wire`). `sz` is contracts: base = sz x
ctVal, with ctVal read once from the REST instruments list. The text `ping` goes out whenever
nothing arrived for `ping_s` (< 30 s, after which OKX closes); a missing answer means
reconnect.

Candles (when `want_candles` asked) come from a second connection, to `/ws/v5/business`
(OKX serves `candle*` channels there only): `candle5m` per instId; rows like the REST
candles, `confirm` "1" on the closed bar ("0 represents that it is uncompleted, 1 represents
that it is completed"). A push of a running bar only (its text ends `"0"]]}`) is dropped
before decoding; candle rows carry no venue time for the clock (their `ts` is the open).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp

from oiradar.records import LiquidationFeed
from oiradar.venues.okx.rest import OkxClient
from oiradar.venues.okx.wire import (
    BARS,
    VENUE,
    canonical,
    message_ms,
    parse_candles,
    parse_message,
)
from oiradar.venues.stream import StreamRecord
from oiradar.venues.wsstream import Connection, FeedGroup, Group, WsStream

BATCH = 200  # args per subscribe message: ~11 KB, far below the 64 KB cap
BUSINESS = 1  # the connection index of `/ws/v5/business` (candles)
RUNNING_CANDLE = '"0"]]}'  # the end of a candle push whose only row is still forming
log = logging.getLogger(__name__)


LIQUIDATIONS = json.dumps(
    {"op": "subscribe", "args": [{"channel": "liquidation-orders", "instType": "SWAP"}]},
    separators=(",", ":"),
)


def subscribe_messages(inst_ids: Sequence[str], batch: int = BATCH) -> list[str]:
    """open-interest and funding-rate per instId, batched."""
    args: list[dict[str, str]] = []
    for inst_id in inst_ids:
        args.append({"channel": "open-interest", "instId": inst_id})
        args.append({"channel": "funding-rate", "instId": inst_id})
    return [
        json.dumps({"op": "subscribe", "args": args[i : i + batch]}, separators=(",", ":"))
        for i in range(0, len(args), batch)
    ]


def candle_messages(inst_ids: Sequence[str], bar: str, batch: int = BATCH) -> list[str]:
    """`candle<bar>` subscriptions per instId on the business connection, batched."""
    args = [{"channel": f"candle{bar}", "instId": i} for i in inst_ids]
    return [
        json.dumps({"op": "subscribe", "args": args[i : i + batch]}, separators=(",", ":"))
        for i in range(0, len(args), batch)
    ]


class OkxStream(WsStream):
    """Every live USDT swap (or `symbols`): OI and funding on one `/ws/v5/public`
    connection, candles on one `/ws/v5/business` connection, liquidations on one more
    public connection (the last)."""

    name = VENUE
    liquidations = LiquidationFeed.SAMPLED
    ping_text = "ping"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ct_val: dict[str, float] = {}  # instId -> ctVal
        self.inst_ids: dict[str, str] = {}  # canonical symbol -> instId

    async def prepare(self, session: aiohttp.ClientSession) -> None:
        async with self.rest(session, OkxClient) as client:
            listed = await client.instruments()
        self.ct_val = {i.venue_symbol: i.contract_size for i in listed}
        self.inst_ids = {i.symbol: i.venue_symbol for i in listed}

    def want_candles(self, interval_ms: int) -> bool:
        self.candle_ms = interval_ms if interval_ms in BARS else None
        return self.candle_ms is not None

    async def plan(
        self, session: aiohttp.ClientSession, symbols: Sequence[str] | None
    ) -> list[Group]:
        items = None if symbols is None else list(symbols)
        groups: list[Group] = [items] if self.candle_ms is None else [items, items]
        return [*groups, FeedGroup()]

    def url(self) -> str:
        return f"{self.base_url}/ws/v5/public"

    def url_for(self, conn: Connection) -> str:
        business = conn.index == BUSINESS and not conn.feed
        return f"{self.base_url}/ws/v5/business" if business else self.url()

    def subscribe_messages(self, conn: Connection) -> list[str]:
        if conn.feed:
            return [LIQUIDATIONS]
        symbols = conn.items
        wanted = list(self.inst_ids) if symbols is None else list(dict.fromkeys(symbols))
        unknown = [s for s in wanted if s not in self.inst_ids]
        if unknown:
            log.warning("venue=okx event=stream_skipped symbols=%s", ",".join(unknown))
        inst_ids = [self.inst_ids[s] for s in wanted if s in self.inst_ids]
        if conn.index == BUSINESS and self.candle_ms is not None:
            return candle_messages(inst_ids, BARS[self.candle_ms])
        return subscribe_messages(inst_ids)

    def decode(self, text: str) -> Any:
        if text == "pong" or text.endswith(RUNNING_CANDLE):
            return None
        return super().decode(text)

    def records(self, msg: Any, symbols: frozenset[str] | None) -> list[StreamRecord]:
        if isinstance(msg, dict) and msg.get("event") == "error":
            error = f"okx {msg.get('code')}: {msg.get('msg')}"
            self.venue_error("stream_error", error, error=error)
            return []
        arg = msg.get("arg") if isinstance(msg, dict) else None
        channel = arg.get("channel") if isinstance(arg, dict) else None
        candle = isinstance(channel, str) and channel.startswith("candle") and "data" in msg
        if candle and self.candle_ms:
            symbol = canonical(str(arg["instId"]))  # type: ignore[index]
            rows = parse_candles(msg["data"], symbol, self.candle_ms)
            out: list[StreamRecord] = [bar for bar, closed in rows if closed]
        else:
            out = parse_message(msg, self.ct_val)
        return out if symbols is None else [r for r in out if r.symbol in symbols]

    def message_ms(self, msg: Any) -> int | None:
        return message_ms(msg)
