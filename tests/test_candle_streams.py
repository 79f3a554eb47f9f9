"""The venues' candle channels read at the boundary: the doc payloads, the closed-bar flags,
running bars dropped before decoding, and subscriptions within each venue's limits."""

from __future__ import annotations

import json

import pytest

from oiradar.records import Candle, Instrument
from oiradar.units import MINUTE_MS
from oiradar.venues.binance.wire import parse_kline
from oiradar.venues.binance.ws import BinanceStream
from oiradar.venues.binance.ws import subscribe_messages as binance_subscribe
from oiradar.venues.bitget.wire import parse_candle_push
from oiradar.venues.bitget.ws import BitgetStream
from oiradar.venues.bybit.wire import parse_kline_push
from oiradar.venues.bybit.ws import BybitStream, split_symbols
from oiradar.venues.gate.wire import Listing
from oiradar.venues.gate.ws import GateStream
from oiradar.venues.hyperliquid import HyperliquidStream
from oiradar.venues.okx.ws import OkxStream
from oiradar.venues.wsstream import Connection

BAR = 5 * MINUTE_MS
# developers.binance.com, USD-M "Kline/Candlestick Streams" (1m example; `x` as documented)
BINANCE = {
    "e": "kline", "E": 1638747660000, "s": "BTCUSDT",
    "k": {"t": 1638747660000, "T": 1638747719999, "s": "BTCUSDT", "i": "1m", "f": 100,
          "L": 200, "o": "0.0010", "c": "0.0020", "h": "0.0025", "l": "0.0015",
          "v": "1000", "n": 100, "x": False, "q": "1.0000", "V": "500", "Q": "0.500",
          "B": "123456"},
}  # fmt: skip
# bybit-exchange/docs `websocket/public/kline.mdx`
BYBIT = {
    "topic": "kline.5.BTCUSDT",
    "data": [{"start": 1672324800000, "end": 1672325099999, "interval": "5",
              "open": "16649.5", "close": "16677", "high": "16677", "low": "16608",
              "volume": "2.081", "turnover": "34666.4005", "confirm": False,
              "timestamp": 1672324988882}],
    "ts": 1672324988882, "type": "snapshot",
}  # fmt: skip


def closed(payload: dict[str, object], path: tuple[str, ...], flag: object) -> dict[str, object]:
    out = json.loads(json.dumps(payload))
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = flag
    return out


def test_binance_kline_counts_only_when_closed() -> None:
    assert parse_kline(BINANCE) == []
    (bar,) = parse_kline(closed(BINANCE, ("k", "x"), True))
    assert bar == Candle("binance", "BTCUSDT", MINUTE_MS, 1638747660000, 0.001, 0.0025,
                         0.0015, 0.002, 1000.0, 1.0, 500.0, 100)  # fmt: skip
    stream = BinanceStream("http://127.0.0.1:1")
    assert stream.decode(json.dumps(BINANCE, separators=(",", ":"))) is None  # never decoded
    assert stream.decode(json.dumps(closed(BINANCE, ("k", "x"), True), separators=(",", ":")))


def test_binance_subscribes_klines_within_its_limits() -> None:
    stream = BinanceStream("http://127.0.0.1:1")
    assert stream.want_candles(BAR)
    msgs = binance_subscribe([f"S{i}USDT" for i in range(450)], "5m")
    params = [json.loads(m)["params"] for m in msgs]
    assert [len(p) for p in params] == [200, 200, 50]
    assert params[0][0] == "s0usdt@kline_5m"
    assert stream.subscribe_gap_s >= 0.2  # <= 5 subscribe messages a second of the 10 allowed


def test_bybit_kline_counts_only_when_confirmed() -> None:
    assert parse_kline_push(BYBIT) == []
    (bar,) = parse_kline_push(closed(BYBIT, ("data", 0, "confirm"), True))  # type: ignore[arg-type]
    assert (bar.symbol, bar.interval_ms, bar.ts_ms) == ("BTCUSDT", BAR, 1672324800000)
    assert (bar.open, bar.close, bar.volume_base, bar.volume_quote) == (
        16649.5, 16677.0, 2.081, 34666.4005)  # fmt: skip
    stream = BybitStream("http://127.0.0.1:1")
    assert stream.decode(json.dumps(BYBIT, separators=(",", ":"))) is None
    assert stream.want_candles(BAR)
    # The kline topic counts against the 21,000-character args cap of a connection.
    groups = split_symbols([f"SYM{i:04d}USDT" for i in range(1000)], 20_000, "5")
    sizes = [sum(len(f"tickers.{s}kline.5.{s}") for s in g) for g in groups]  # liquidations apart
    assert len(groups) > 1 and max(sizes) <= 20_000 and sum(map(len, groups)) == 1000


def test_okx_candles_come_from_the_business_socket() -> None:
    stream = OkxStream("http://127.0.0.1:1")
    stream.inst_ids = {"BTCUSDT": "BTC-USDT-SWAP"}
    assert stream.want_candles(BAR)
    business = Connection(1, ["BTCUSDT"])
    assert stream.url_for(business).endswith("/ws/v5/business")
    assert stream.url_for(Connection(0, ["BTCUSDT"])).endswith("/ws/v5/public")
    (sub,) = stream.subscribe_messages(business)
    assert json.loads(sub)["args"] == [{"channel": "candle5m", "instId": "BTC-USDT-SWAP"}]
    row = ["1597026000000", "3.721", "3.743", "3.677", "3.708", "8422410", "22698.3", "84.1"]
    push = {"arg": {"channel": "candle5m", "instId": "BTC-USDT-SWAP"}, "data": [[*row, "0"]]}
    assert stream.decode(json.dumps(push, separators=(",", ":"))) is None
    push["data"] = [[*row, "1"]]
    (bar,) = stream.records(push, None)
    assert isinstance(bar, Candle)
    assert (bar.symbol, bar.ts_ms, bar.close, bar.volume_base) == (
        "BTCUSDT", 1597026000000, 3.708, 22698.3)  # fmt: skip


def test_bitget_candle_is_closed_by_a_push_after_its_close() -> None:
    rows = [["1700000000000", "1", "2", "0.5", "1.5", "10", "15", "15"],
            ["1700000300000", "1.5", "1.6", "1.4", "1.55", "3", "4.5", "4.5"]]  # fmt: skip
    arg = {"instType": "USDT-FUTURES", "channel": "candle5m", "instId": "BTCUSDT"}
    before = {"action": "update", "arg": arg, "data": rows[:1], "ts": 1700000299000}
    assert parse_candle_push(before, BAR) == []
    after = {"action": "update", "arg": arg, "data": rows, "ts": 1700000300400}
    assert [c.ts_ms for c in parse_candle_push(after, BAR)] == [1700000000000]
    stream = BitgetStream("http://127.0.0.1:1")
    assert stream.want_candles(BAR)
    (sub,) = stream.subscribe_messages(Connection(0, ["BTCUSDT"]))
    assert [a["channel"] for a in json.loads(sub)["args"]] == ["ticker", "candle5m"]


def hl_push(t: int, close: str, coin: str = "BTC") -> dict[str, object]:
    """A Hyperliquid `candle` push (the SDKs' schema; `T` = the bar's last ms)."""
    return {"channel": "candle", "data": {
        "t": t, "T": t + BAR - 1, "s": coin, "i": "5m", "o": "100", "c": close, "h": "110",
        "l": "90", "v": "12.5", "n": 40}}  # fmt: skip


def test_hyperliquid_candle_is_closed_by_a_later_bars_row() -> None:
    stream = HyperliquidStream("http://127.0.0.1:1")
    stream._coins = {"BTC": "BTCUSDT", "kPEPE": "1000PEPEUSDT"}  # as `prepare` reads them
    assert stream.want_candles(BAR) and not HyperliquidStream("http://127.0.0.1:1").want_candles(
        7 * MINUTE_MS
    )
    t = 1_700_000_100_000 // BAR * BAR
    assert stream.records(hl_push(t, "101"), None) == []  # running
    assert stream.records(hl_push(t, "102"), None) == []  # still running, newer row
    (bar,) = stream.records(hl_push(t + BAR, "103"), None)  # the next bar's first row
    assert isinstance(bar, Candle)
    assert (bar.symbol, bar.ts_ms, bar.close, bar.volume_base, bar.trades) == (
        "BTCUSDT", t, 102.0, 12.5, 40)  # fmt: skip
    (late,) = stream.records(hl_push(t, "104"), None)  # reordered: the closed bar's own row
    assert isinstance(late, Candle)
    assert (late.ts_ms, late.close) == (t, 104.0)
    assert stream.records(hl_push(t, "1", coin="NOPE"), None) == []  # a coin not listed
    stream.on_connect(Connection(0, None, link=2))  # a new link forgets what the old held
    assert stream.records(hl_push(t + 2 * BAR, "105"), None) == []


def test_hyperliquid_candles_fill_what_the_subscription_cap_leaves() -> None:
    stream = HyperliquidStream("http://127.0.0.1:1")
    stream._coins = {f"C{i}": f"C{i}USDT" for i in range(600)}
    assert not stream.streams_candles("C0USDT")
    stream.want_candles(BAR)
    subs = [json.loads(m)["subscription"] for m in stream.subscribe_messages(Connection(0, None))]
    kinds = [s["type"] for s in subs]
    assert len(subs) == 1000 and kinds[:3] == ["trades", "activeAssetCtx", "candle"]
    assert kinds.count("activeAssetCtx") == 600 and kinds.count("candle") == 399
    assert stream.streams_candles("C398USDT") and not stream.streams_candles("C399USDT")


def test_gate_candle_is_closed_by_a_push_after_its_close() -> None:
    """exchange-apis.md §10.5: `futures.candlesticks` rows `{t,v,c,h,l,o,n,a}`, no flag."""
    stream = GateStream("http://127.0.0.1:1")
    inst = Instrument("gate", "BTCUSDT", "BTC_USDT", "BTC", "USDT", contract_size=0.0001)
    stream._listings = {"BTC_USDT": Listing(inst, None)}  # as `prepare` reads them
    assert stream.want_candles(BAR)
    t = 1_700_000_100
    row = {"t": t, "v": 97151, "c": "1.032", "h": "1.04", "l": "1.03", "o": "1.031",
           "n": "5m_BTC_USDT", "a": "9.7151"}  # fmt: skip
    push = {"time": t + 299, "time_ms": (t + 299) * 1000, "channel": "futures.candlesticks",
            "event": "update", "result": [row]}  # fmt: skip
    assert stream.records(push, None) == []  # pushed before the close: still running
    (bar,) = stream.records(push | {"time_ms": (t + 300) * 1000}, None)
    assert isinstance(bar, Candle)
    assert (bar.symbol, bar.ts_ms, bar.close, bar.volume_base) == (
        "BTCUSDT", t * 1000, 1.032, pytest.approx(9.7151))  # fmt: skip
    frames = [json.loads(m) for m in stream.subscribe_messages(Connection(0, None))]
    assert frames[-1]["channel"] == "futures.candlesticks"
    assert frames[-1]["payload"] == ["5m", "BTC_USDT"]
