"""dYdX v4 indexer public WebSocket `/v4/ws` (exchange-apis.md §13.3-13.4): every liquidation
(`v4_trades`, type LIQUIDATED) and real-time OI, oracle price and funding (`v4_markets`).

- `v4_trades` is one subscription per market, at most 32 per connection: markets are split
  over connections of `TRADES_PER_CONN`; `v4_markets` (all markets, no id) rides the first.
- Liquidations are **complete** (every liquidation match is a fill). The `subscribed` reply
  replays the market's latest trades page: the first one only primes the dedupe (the stream
  starts now), later ones — after a reconnect — deliver the liquidations missed meanwhile.
  Trade ids are remembered (digests, bounded) across connections.
- `v4_markets` sends the whole `perpetualMarkets` reply on subscribe, then `trading` deltas
  (changed fields only) and `oraclePrices`: the stream keeps each market's merged fields
  and emits the merged state of every market a message touched.
- Keepalive: the server pings every 30 s (aiohttp answers) and closes (1011) without a pong;
  `{"type":"ping"}` also goes out after `ping_s` of silence.
- Market pushes carry no time (oracle prices and trades do): the venue's clock is the newest
  of the REST `Date` header read while preparing and the stamps pushed since, plus the
  monotonic time after it (a clock running faster than ours, as a simulator's, is followed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from oiradar.records import LiquidationFeed
from oiradar.venues.dedupe import Dedupe
from oiradar.venues.dydx.rest import DydxClient
from oiradar.venues.dydx.wire import VENUE, canonical, iso_ms, parse_liquidations, parse_market
from oiradar.venues.http import ServerClock
from oiradar.venues.stream import StreamRecord
from oiradar.venues.wsstream import Connection, Group, WsStream

PATH = "/v4/ws"
TRADES_PER_CONN = 30  # the indexer allows 32 v4_trades subscriptions per connection
TRADE_MEMORY = 65_536  # trade ids remembered for the replay on resubscribe


def subscribe_messages(tickers: Sequence[str], markets: bool) -> list[str]:
    """`v4_markets` (when `markets`), then `v4_trades` per market, one frame each."""
    frames = [{"type": "subscribe", "channel": "v4_markets"}] if markets else []
    frames += [{"type": "subscribe", "channel": "v4_trades", "id": t} for t in tickers]
    return [json.dumps(f, separators=(",", ":")) for f in frames]


class DydxStream(WsStream):
    """Every ACTIVE market (or `symbols`) over connections of 30 trade subscriptions."""

    name = VENUE
    liquidations = LiquidationFeed.COMPLETE
    ping_text = '{"type":"ping"}'

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tickers: dict[str, str] = {}  # canonical symbol -> ticker
        self._markets: dict[str, dict[str, Any]] = {}  # ticker -> merged fields
        self._trade_ids = Dedupe(TRADE_MEMORY)
        self._primed: set[str] = set()  # tickers whose trade replay has been seen once
        self._clock = ServerClock()  # the venue's: REST's `Date`, then every stamped push

    async def plan(
        self, session: aiohttp.ClientSession, symbols: Sequence[str] | None
    ) -> list[Group]:
        async with self.rest(session, DydxClient) as client:
            listed = await client.instruments()
        if (now := client.http.clock.now_ms()) is not None:
            self._clock.observe_ms(now)
        self._tickers = {i.symbol: i.venue_symbol for i in listed}
        wanted = [s for s in (self._tickers if symbols is None else symbols) if s in self._tickers]
        groups = [wanted[i : i + TRADES_PER_CONN] for i in range(0, len(wanted), TRADES_PER_CONN)]
        return list(groups or [[]])

    def url(self) -> str:
        return self.base_url + PATH

    def subscribe_messages(self, conn: Connection) -> list[str]:
        tickers = [self._tickers[s] for s in conn.items or ()]
        return subscribe_messages(tickers, markets=conn.index == 0)

    def dedupe_key(self, text: str, msg: Any, conn: Connection) -> str | None:
        if not isinstance(msg, dict):
            return None
        if msg.get("type") == "error":
            error = str(msg.get("message"))
            self.venue_error("stream_error", error, error=error)
            return None
        # connection_id and message_id make every data frame unique: a repeat is a duplicate
        return text if msg.get("type") in ("subscribed", "channel_data") else None

    def message_ms(self, msg: Any) -> int | None:
        contents = msg.get("contents") or {}
        stamps = [iso_ms(str(t["createdAt"])) for t in contents.get("trades") or ()]
        stamps += [iso_ms(str(p["effectiveAt"]))
                   for p in (contents.get("oraclePrices") or {}).values()]  # fmt: skip
        if not stamps:
            return self._clock.now_ms()
        # Kept on the venue's clock by what it stamps (trades, oracle prices), not only by the
        # REST reply read when connecting; never set back by a replay of older trades.
        newest, now = max(stamps), self._clock.now_ms()
        if now is None or newest > now:
            self._clock.observe_ms(newest)
        return newest

    def records(self, msg: Any, symbols: frozenset[str] | None) -> list[StreamRecord]:
        channel = msg.get("channel")
        out = self._trades(msg) if channel == "v4_trades" else []
        if channel == "v4_markets":
            out = self._market_records(msg)
        return [r for r in out if symbols is None or r.symbol in symbols]

    def _trades(self, msg: Mapping[str, Any]) -> list[StreamRecord]:
        """New liquidations of a `v4_trades` message; a market's first replay only primes."""
        ticker = str(msg["id"])
        found = parse_liquidations(msg["contents"]["trades"], canonical(ticker))
        fresh = [liq for key, liq in found if self._trade_ids.fresh(key)]
        if msg.get("type") == "subscribed" and ticker not in self._primed:
            self._primed.add(ticker)
            return []
        return list(fresh)

    def _market_records(self, msg: Mapping[str, Any]) -> list[StreamRecord]:
        """The merged state of every ACTIVE market the message touched, at its time."""
        contents, now = msg["contents"], self.message_ms(msg)
        if now is None:
            raise ValueError("no venue clock yet")
        touched: set[str] = set()
        if "markets" in contents:  # the subscribe reply: the whole list
            self._markets = {t: dict(row) for t, row in contents["markets"].items()}
            touched.update(self._markets)
        for ticker, fields in (contents.get("trading") or {}).items():
            self._markets.setdefault(ticker, {"ticker": ticker}).update(fields)
            touched.add(ticker)
        for ticker, oracle in (contents.get("oraclePrices") or {}).items():
            self._markets.setdefault(ticker, {"ticker": ticker})["oraclePrice"] = oracle["price"]
            touched.add(ticker)
        return [
            parse_market(row, now)
            for t in sorted(touched)
            if (row := self._markets[t]).get("status", "ACTIVE") == "ACTIVE"
            and "openInterest" in row
        ]
