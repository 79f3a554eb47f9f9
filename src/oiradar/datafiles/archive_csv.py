"""Binance's public-archive CSV layouts (klines, premium-index klines, metrics, funding rate,
liquidation snapshots) parsed into frames in `kinds.LAYOUTS` order; any defect raises
DataError with file:line.

Liquidation snapshots (`daily/liquidationSnapshot/SYM/SYM-liquidationSnapshot-DAY.zip`):
columns `time, side, order_type, time_in_force, original_quantity, price, average_price,
order_status, last_fill_quantity, accumulated_fill_quantity` (a `symbol` column after `time`
is accepted too), as recorded by several public readers of the files (found by exact search
of the code corpus). `side` is the forced ORDER's: a SELL closed a LONG. The quantity is
`accumulated_fill_quantity` (what filled), priced at `average_price`. Whole rows repeat in
the files (binance-public-data#259): dropped. USD-M files stop after 2024-03-31 and were
later taken out of the listing (#337, #361, #420): they are read where you have them."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from oiradar.datafiles.columns import Parsed, cast, check, check_ts, dedupe, read_strings
from oiradar.datafiles.detect import Detected
from oiradar.kinds import Kind
from oiradar.units import DAY_MS, MINUTE_MS, interval_ms, parse_time

VENUE_BINANCE = "binance"
_KLINE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
_METRICS_COLUMNS = (
    "create_time",
    "symbol",
    "sum_open_interest",
    "sum_open_interest_value",
    "count_toptrader_long_short_ratio",
    "sum_toptrader_long_short_ratio",
    "count_long_short_ratio",
    "sum_taker_long_short_vol_ratio",
)
# Metrics ratio columns -> positioning columns; the archive does not document them, this is
# the usual reading of Binance's names (count_ = by accounts, sum_ = by position size).
_RATIO_COLUMNS = {
    "count_toptrader_long_short_ratio": "top_account_ls_ratio",
    "sum_toptrader_long_short_ratio": "top_position_ls_ratio",
    "count_long_short_ratio": "account_ls_ratio",
    "sum_taker_long_short_vol_ratio": "taker_buy_sell_ratio",
}
_FUNDING_COLUMNS = ("calc_time", "funding_interval_hours", "last_funding_rate")
_LIQ_COLUMNS = (
    "time",
    "side",
    "order_type",
    "time_in_force",
    "original_quantity",
    "price",
    "average_price",
    "order_status",
    "last_fill_quantity",
    "accumulated_fill_quantity",
)
_POSITION_OF_ORDER = {"SELL": "LONG", "BUY": "SHORT"}  # the forced order closes the other side
# Binance switched metrics labels from end-of-period to start-of-period on this date
# (binance-public-data#491); we store the snapshot instant, so later files shift by 5 min.
_METRICS_LABEL_SWITCH_MS = parse_time("2026-06-25")


def _kline_numbers(path: Path, det: Detected, text: str, volumes: bool) -> tuple[pl.DataFrame, int]:
    """The typed columns of a klines-shaped file and its first body line; checks shared by
    trade and premium-index klines (open times aligned to the interval, high >= low)."""
    first = text.split(",", 1)[0].strip().lower()
    has_header = first == "open_time"
    raw = read_strings(path, text, _KLINE_COLUMNS, has_header)
    line0 = 2 if has_header else 1
    specs = {"open_time": "int", "open": "float", "high": "float", "low": "float", "close": "float"}
    if volumes:
        specs |= {
            "volume": "float",
            "quote_volume": "float",
            "count": "int",
            "taker_buy_volume": "float",
        }
    num = cast(path, raw, specs, line0)
    t = pl.col("open_time")
    num = num.with_columns(pl.when(t > 10**14).then(t // 1000).otherwise(t).alias("open_time"))
    check_ts(path, num["open_time"], line0)
    interval = det.interval or ""
    step = interval_ms(interval)
    check(path, num, num["open_time"] % step != 0, line0, f"open_time not aligned to {interval}")
    return num, line0


def parse_klines(path: Path, det: Detected, text: str) -> Parsed:
    num, line0 = _kline_numbers(path, det, text, volumes=True)
    check(
        path,
        num,
        (num["high"] < num["low"]) | (num["low"] <= 0),
        line0,
        "high below low or non-positive price",
    )
    frame = _ohlc_frame(
        num,
        det,
        volume_base=num["volume"],
        volume_quote=num["quote_volume"],
        taker_buy_base=num["taker_buy_volume"],
        trades=num["count"],
    )
    notes: list[str] = []
    frame = dedupe(frame, ["ts_ms"], notes, "kline")
    return Parsed(path, {Kind.CANDLES: frame}, notes)


def parse_premium(path: Path, det: Detected, text: str) -> Parsed:
    """premiumIndexKlines: the klines layout with the premium (a fraction, may be negative)
    as OHLC; the volume columns are "0" there and ignored."""
    num, line0 = _kline_numbers(path, det, text, volumes=False)
    check(path, num, num["high"] < num["low"], line0, "high below low")
    notes: list[str] = []
    frame = dedupe(_ohlc_frame(num, det), ["ts_ms"], notes, "premium index")
    return Parsed(path, {Kind.PREMIUM_INDEX: frame}, notes)


def _ohlc_frame(num: pl.DataFrame, det: Detected, **more: pl.Series) -> pl.DataFrame:
    """A klines-layout file's bars as rows, OHLC first, then the kind's `more` columns."""
    ohlc = {k: num[k] for k in ("open", "high", "low", "close")}
    ident = {"venue": VENUE_BINANCE, "symbol": det.symbol or "", "interval": det.interval or ""}
    return pl.DataFrame({"ts_ms": num["open_time"], **ident, **ohlc, **more})


def parse_metrics(path: Path, det: Detected, text: str) -> Parsed:
    first = text.split(",", 1)[0].strip().lower()
    has_header = first == "create_time"
    raw = read_strings(path, text, _METRICS_COLUMNS, has_header)
    line0 = 2 if has_header else 1
    times = (
        raw["create_time"]
        .str.strip_chars()
        .str.to_datetime("%Y-%m-%d %H:%M:%S", time_zone="UTC", strict=False)
    )
    check(
        path,
        raw,
        times.is_null(),
        line0,
        "column create_time: expected 'YYYY-MM-DD HH:MM:SS' (UTC)",
    )
    num = cast(path, raw, {"sum_open_interest": "float", "sum_open_interest_value": "float"}, line0)
    ratios = cast(path, raw, dict.fromkeys(_RATIO_COLUMNS, "float"), line0, tuple(_RATIO_COLUMNS))
    negative = ratios.select(pl.any_horizontal(pl.all() < 0).fill_null(False)).to_series()
    check(path, ratios, negative, line0, "negative long/short or taker ratio")
    symbol = det.symbol or ""
    check(
        path,
        raw,
        raw["symbol"].str.strip_chars() != symbol,
        line0,
        f"column symbol does not match the file name's {symbol}",
    )
    check(
        path,
        num,
        (num["sum_open_interest"] < 0) | (num["sum_open_interest_value"] < 0),
        line0,
        "negative open interest",
    )
    ts = times.dt.epoch("ms")
    file_day_ms = parse_time(det.date or "1970-01-01")
    if file_day_ms >= _METRICS_LABEL_SWITCH_MS:
        ts = ts + 5 * MINUTE_MS
    frame = pl.DataFrame(
        {
            "ts_ms": ts,
            "venue": VENUE_BINANCE,
            "symbol": symbol,
            "oi_base": num["sum_open_interest"],
            "oi_contracts": num["sum_open_interest"],
            "oi_usd": num["sum_open_interest_value"],
        }
    )
    check_ts(path, frame["ts_ms"], line0)  # in file order, so the line number is right
    positioning = pl.DataFrame(
        {"ts_ms": ts, "venue": VENUE_BINANCE, "symbol": symbol}
        | {name: ratios[column] for column, name in _RATIO_COLUMNS.items()}
    )
    notes: list[str] = []
    zero = frame["oi_base"] == 0
    if zero.any():
        notes.append(
            f"{int(zero.sum())} rows with zero OI dropped (an archive gap, not a collapse)"
        )
        frame = frame.filter(~zero)
    frame = dedupe(frame, ["ts_ms"], notes, "metrics")
    # Rows whose OI is missing still carry the ratios that are there (often the taker one).
    empty = positioning.select(pl.all_horizontal(pl.col(list(_RATIO_COLUMNS.values())).is_null()))
    positioning = positioning.filter(~empty.to_series())
    positioning = dedupe(positioning, ["ts_ms"], [], "metrics")
    return Parsed(path, {Kind.OPEN_INTEREST: frame, Kind.POSITIONING: positioning}, notes)


def parse_funding(path: Path, det: Detected, text: str) -> Parsed:
    first = text.split(",", 1)[0].strip().lower()
    has_header = first == "calc_time"
    raw = read_strings(path, text, _FUNDING_COLUMNS, has_header)
    line0 = 2 if has_header else 1
    num = cast(
        path,
        raw,
        {"calc_time": "int", "funding_interval_hours": "float", "last_funding_rate": "float"},
        line0,
    )
    check_ts(path, num["calc_time"], line0)
    check(path, num, num["funding_interval_hours"] <= 0, line0, "funding interval must be > 0 h")
    frame = pl.DataFrame(
        {
            "ts_ms": num["calc_time"],
            "venue": VENUE_BINANCE,
            "symbol": det.symbol or "",
            "funding_rate": num["last_funding_rate"],
            "interval_h": num["funding_interval_hours"],
        }
    )
    notes: list[str] = []
    frame = dedupe(frame, ["ts_ms"], notes, "funding")
    return Parsed(path, {Kind.FUNDING: frame}, notes)


def parse_liquidations(path: Path, det: Detected, text: str) -> Parsed:
    """One day of forced orders, by side of the liquidated position; the day is covered
    whole (a quiet bar is 0 liquidated, not unknown)."""
    first = text.split("\n", 1)[0].lower()
    has_header = first.startswith("time,")
    columns: tuple[str, ...] = _LIQ_COLUMNS
    if "symbol" in first.split(","):
        columns = ("time", "symbol", *_LIQ_COLUMNS[1:])
    raw = read_strings(path, text, columns, has_header)
    line0 = 2 if has_header else 1
    specs = {"time": "int", "accumulated_fill_quantity": "float", "average_price": "float"}
    num = cast(path, raw, specs, line0)
    check_ts(path, num["time"], line0)
    side = raw["side"].str.strip_chars().str.to_uppercase()
    check(path, num, ~side.is_in(list(_POSITION_OF_ORDER)), line0, "side must be BUY or SELL")
    bad = (num["accumulated_fill_quantity"] < 0) | (num["average_price"] <= 0)
    check(path, num, bad, line0, "negative quantity or non-positive price")
    symbol = det.symbol or ""
    frame = pl.DataFrame(
        {
            "ts_ms": num["time"],
            "venue": VENUE_BINANCE,
            "symbol": symbol,
            "position_side": side.replace_strict(_POSITION_OF_ORDER),
            "qty_base": num["accumulated_fill_quantity"],
            "price": num["average_price"],
            "usd": num["accumulated_fill_quantity"] * num["average_price"],
        }
    )
    notes: list[str] = []
    unfilled = frame["qty_base"] == 0
    if unfilled.any():
        notes.append(f"{int(unfilled.sum())} unfilled orders dropped")
        frame = frame.filter(~unfilled)
    key = ["ts_ms", "position_side", "price", "qty_base"]
    frame = dedupe(frame, key, notes, "liquidation")
    day = parse_time(det.date or "1970-01-01")
    return Parsed(path, {Kind.LIQUIDATION_ORDERS: frame}, notes,
                  [(VENUE_BINANCE, symbol, day, day + DAY_MS)])  # fmt: skip
