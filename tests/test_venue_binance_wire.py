"""The Binance USD-M wire: parsers on the documented payloads, request weights and buckets,
error codes, and the rule for when an empty page is asked again."""

from __future__ import annotations

from typing import Any

import pytest

from oiradar.errors import (
    UnknownSymbol,
    VenueError,
    VenueProtocolError,
    VenueUnavailable,
)
from oiradar.records import Candle, ContractKind, FundingSample, MarketSnapshot, OISample
from oiradar.venues.binance.rest import charges, check_response, expects_rows
from oiradar.venues.binance.wire import (
    check_payload,
    parse_exchange_info,
    parse_funding_info,
    parse_funding_rate,
    parse_klines,
    parse_oi_history,
    parse_open_interest,
    parse_premium_index,
)
from tests.simkit import MINUTE

DAY = 1440 * MINUTE


# -- parsers on the example payloads of exchange-apis.md §1.1 ------------------------------


def test_parse_open_interest_doc_example() -> None:
    payload = {"openInterest": "10659.509", "symbol": "BTCUSDT", "time": 1589437530011}
    assert parse_open_interest(payload) == OISample("binance", "BTCUSDT", 1589437530011, 10659.509)


def test_parse_oi_history_doc_example_string_or_number_timestamp() -> None:
    row = {
        "symbol": "BTCUSDT",
        "sumOpenInterest": "20403.637",
        "sumOpenInterestValue": "150570784.078",
        "CMCCirculatingSupply": "165880.538",
        "timestamp": "1583127900000",
    }
    [sample] = parse_oi_history([row])
    assert sample == OISample(
        "binance", "BTCUSDT", 1583127900000, oi_base=20403.637, oi_usd=150570784.078
    )
    assert isinstance(sample.ts_ms, int) and isinstance(sample.oi_base, float)
    ccxt_row = {**row, "timestamp": 1642179900000}  # ccxt's recorded payload sends a number
    assert parse_oi_history([ccxt_row])[0].ts_ms == 1642179900000


def test_parse_klines_doc_example() -> None:
    row = [
        1499040000000,
        "0.0163",
        "0.8",
        "0.0157",
        "0.0157",
        "148976.11",
        1499644799999,
        "2434.19",
        308,
        "1756.87",
        "28.46",
        "0",
    ]
    assert parse_klines([row], "BTCUSDT", 60_000) == [
        Candle(
            "binance",
            "BTCUSDT",
            60_000,
            1499040000000,
            0.0163,
            0.8,
            0.0157,
            0.0157,
            volume_base=148976.11,
            volume_quote=2434.19,
            taker_buy_base=1756.87,
            trades=308,
        )
    ]


def test_parse_premium_index_doc_example() -> None:
    payload = {
        "symbol": "BTCUSDT",
        "markPrice": "11793.63",
        "indexPrice": "11781.80",
        "estimatedSettlePrice": "11781.16",
        "lastFundingRate": "0.00038246",
        "interestRate": "0.0001",
        "nextFundingTime": 1597392000000,
        "time": 1597370495002,
    }
    expected = MarketSnapshot(
        "binance",
        "BTCUSDT",
        1597370495002,
        mark_price=11793.63,
        funding_rate=0.00038246,
        funding_interval_h=8.0,
        next_funding_ms=1597392000000,
    )
    assert parse_premium_index(payload, {}) == [expected]
    delivery = {**payload, "symbol": "BTCUSDT_250627", "lastFundingRate": "", "nextFundingTime": 0}
    both = parse_premium_index([payload, delivery], {"BTCUSDT": 4.0})
    assert both[0].funding_interval_h == 4.0
    assert (both[1].funding_rate, both[1].next_funding_ms) == (None, None)


def test_parse_funding_rate_doc_example() -> None:
    payload = [
        {
            "symbol": "BTCUSDT",
            "fundingRate": "0.0001",
            "fundingTime": 1570636800000,
            "markPrice": "34287.54",
        }
    ]
    assert parse_funding_rate(payload, {}) == [
        FundingSample("binance", "BTCUSDT", 1570636800000, 0.0001, 8.0)
    ]
    assert parse_funding_rate(payload, {"BTCUSDT": 4.0})[0].rate_8h == pytest.approx(0.0002)


def test_parse_exchange_info_keeps_trading_usdt_perpetuals() -> None:
    """The doc lists the fields (no full example): only PERPETUAL + TRADING + USDT pass."""

    def row(symbol: str, **kw: str) -> dict[str, Any]:
        base = symbol.removesuffix("USDT").removesuffix("USDC").split("_")[0]
        return {
            "symbol": symbol,
            "pair": symbol.split("_", maxsplit=1)[0],
            "contractType": "PERPETUAL",
            "status": "TRADING",
            "baseAsset": base,
            "quoteAsset": "USDT",
            "marginAsset": "USDT",
            "pricePrecision": 2,
            "quantityPrecision": 3,
            "onboardDate": 1569398400000,
            "filters": [],
            **kw,
        }

    payload = {
        "serverTime": 1597370495002,
        "rateLimits": [],
        "symbols": [
            row("BTCUSDT"),
            row("ETHUSDT"),
            row("BTCUSDT_250627", contractType="CURRENT_QUARTER"),
            row("OLDUSDT", status="SETTLING"),
            row("BTCUSDC", quoteAsset="USDC", marginAsset="USDC"),
        ],
    }
    funding_info = [
        {
            "symbol": "ETHUSDT",
            "adjustedFundingRateCap": "0.02500000",
            "adjustedFundingRateFloor": "-0.02500000",
            "fundingIntervalHours": 4,
            "disclaimer": False,
        }
    ]
    intervals = parse_funding_info(funding_info)
    assert intervals == {"ETHUSDT": 4.0}
    found = parse_exchange_info(payload, intervals)
    assert [(i.symbol, i.base, i.quote, i.funding_interval_h) for i in found] == [
        ("BTCUSDT", "BTC", "USDT", 8.0),
        ("ETHUSDT", "ETH", "USDT", 4.0),
    ]
    assert all(i.contract_size == 1.0 and i.kind is ContractKind.LINEAR for i in found)


def test_weights_and_buckets_per_endpoint() -> None:
    w = "REQUEST_WEIGHT"
    assert charges("/fapi/v1/premiumIndex", None) == [(w, "", 10)]
    assert charges("/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"}) == [(w, "", 1)]
    assert charges("/fapi/v1/ticker/24hr", None) == [(w, "", 40)]
    assert charges("/fapi/v1/exchangeInfo", None) == [(w, "", 1)]
    assert charges("/fapi/v1/openInterest", {"symbol": "BTCUSDT"}) == [(w, "", 1)]
    kl = [
        charges("/fapi/v1/klines", {"limit": n})[0][2] for n in (1, 99, 100, 499, 500, 1000, 1001)
    ]
    assert kl == [1, 1, 2, 2, 5, 5, 10]
    assert charges("/futures/data/openInterestHist", {"symbol": "X"}) == [("futures_data", "", 1)]
    assert charges("/fapi/v1/fundingRate", {}) == charges("/fapi/v1/fundingInfo", None)
    assert charges("/fapi/v1/fundingInfo", None) == [("funding", "", 1)]


def test_error_mapping() -> None:
    assert isinstance(check_payload({"code": -1121, "msg": "Invalid symbol."}), UnknownSymbol)
    bad = check_payload({"code": -1130, "msg": "Data sent for parameter 'period' is not valid."})
    assert isinstance(bad, VenueProtocolError) and "period" in str(bad)
    assert isinstance(check_payload({"code": -1001, "msg": "Disconnected"}), VenueUnavailable)
    assert check_payload([]) is None and check_payload({"symbol": "BTCUSDT"}) is None
    for status in (451, 403):
        err = check_response(status, {}, b"")
        assert type(err) is VenueError and str(status) in str(err)  # not a retried subclass
    assert check_response(200, {}, b"[]") is None


def test_expected_rows_window_rule() -> None:
    step, listed, now = 5 * MINUTE, 1_000 * MINUTE, 10_000 * MINUTE
    assert expects_rows(2_000 * MINUTE, 3_000 * MINUTE, step, listed, now)
    assert not expects_rows(0, 900 * MINUTE, step, listed, now)  # before listing
    assert not expects_rows(now - 2 * MINUTE, now + DAY, step, listed, now)  # at the present
    # One bar-close sample just after that close (what `oiradar watch` asks every bar).
    assert expects_rows(now - step, now - step, step, listed, now - step + 2_000)
    assert not expects_rows(now - step + 1, now - 1, step, listed, now)  # no aligned time
