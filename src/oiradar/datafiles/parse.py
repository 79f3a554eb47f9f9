"""Parse one history file into validated frames; any defect raises DataError with file:line."""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from oiradar.datafiles.detect import Detected, FileKind, detect
from oiradar.errors import DataError, UserError
from oiradar.kinds import DEFAULT_FUNDING_INTERVAL_H, LAYOUTS, Kind
from oiradar.units import MINUTE_MS, interval_ms, parse_time

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
# Binance switched metrics labels from end-of-period to start-of-period on this date
# (binance-public-data#491); we store the snapshot instant, so later files shift by 5 min.
_METRICS_LABEL_SWITCH_MS = parse_time("2026-06-25")
_TS_MIN = parse_time("2009-01-01")
_TS_MAX = parse_time("2100-01-01")
_POLARS_TYPES: dict[str, type[pl.DataType]] = {
    "int": pl.Int64,
    "float": pl.Float64,
    "str": pl.String,
}


@dataclass(slots=True)
class Parsed:
    """A file's rows as one frame per record kind, plus what was dropped and why."""

    path: Path
    frames: dict[Kind, pl.DataFrame]
    notes: list[str] = field(default_factory=list)


def parse_file(path: Path, detected: Detected | None = None) -> Parsed:
    """Read and validate a whole file; nothing is returned unless all of it is sound."""
    det = detected or detect(path)
    if det is None:
        raise DataError(f"{path}: not a file oiradar can import (see docs/interchange.md)")
    try:
        if det.kind is FileKind.INTERCHANGE:
            return _parse_interchange(path, det)
        text = _read_text(path, det.fmt)
        if det.kind is FileKind.ARCHIVE_KLINES:
            return _parse_klines(path, det, text)
        if det.kind is FileKind.ARCHIVE_METRICS:
            return _parse_metrics(path, det, text)
        if det.kind is FileKind.ARCHIVE_PREMIUM:
            return _parse_premium(path, det, text)
        return _parse_funding(path, det, text)
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _read_text(path: Path, fmt: str) -> str:
    raw = path.read_bytes()
    if fmt == "zip":
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                names = [n for n in zf.namelist() if n.lower().endswith(".csv")]
                if len(names) != 1:
                    raise DataError(f"{path}: expected one CSV inside the zip, found {len(names)}")
                raw = zf.read(names[0])
        except zipfile.BadZipFile:
            raise DataError(f"{path}: not a valid zip file") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _check_field_counts(path: Path, text: str, ncols: int, body_start: int) -> int:
    """Vectorized per-line comma count (our formats never quote); returns the body line count.

    A ragged line raises with its number; blank lines are ignored.
    """
    raw = np.frombuffer(text.encode(), dtype=np.uint8)
    ends = np.flatnonzero(raw == ord("\n"))
    if len(raw) and raw[-1] != ord("\n"):
        ends = np.append(ends, len(raw))
    commas = np.flatnonzero(raw == ord(","))
    starts = np.concatenate([[0], ends[:-1] + 1])
    per_line = np.searchsorted(commas, ends) - np.searchsorted(commas, starts)
    length = ends - starts - (raw[np.maximum(ends - 1, 0)] == ord("\r"))
    blank = length <= 0
    bad = (per_line != ncols - 1) & ~blank
    bad[:body_start] = False
    if bad.any():
        line = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}:{line + 1}: expected {ncols} fields, found {int(per_line[line]) + 1}"
        )
    return int((~blank[body_start:]).sum())


def _read_strings(
    path: Path, text: str, columns: tuple[str, ...], has_header: bool
) -> pl.DataFrame:
    """Read CSV text as strings with our column names; a ragged line is reported by number."""
    body_start = 1 if has_header else 0
    rows = _check_field_counts(path, text, len(columns), body_start)
    if rows == 0:
        return pl.DataFrame({c: [] for c in columns}, schema=dict.fromkeys(columns, pl.String))
    return pl.read_csv(
        text.encode(),
        has_header=False,
        skip_rows=body_start,
        new_columns=list(columns),
        schema=dict.fromkeys(columns, pl.String),
        infer_schema=False,
    )


def _cast(
    path: Path,
    df: pl.DataFrame,
    specs: dict[str, str],
    first_line: int,
    optional: tuple[str, ...] = (),
) -> pl.DataFrame:
    """Cast string columns; the first bad cell raises with its line number."""
    out = {}
    for name, dtype in specs.items():
        src = df[name]
        casted = src.str.strip_chars().cast(_POLARS_TYPES[dtype], strict=False)
        present = src.is_not_null() & (src.str.strip_chars() != "")
        bad = casted.is_null() & present
        if dtype == "float":
            bad = bad | (casted.is_not_null() & ~casted.is_finite().fill_null(True))
        if name not in optional:
            bad = bad | ~present
        if bad.any():
            row = int(bad.arg_true()[0])
            value = src[row]
            what = (
                "is empty"
                if value is None or not value.strip()
                else f"{value!r} is not a valid {dtype}"
            )
            raise DataError(f"{path}:{row + first_line}: column {name}: {what}")
        out[name] = casted
    return pl.DataFrame(out)


def _check(path: Path, df: pl.DataFrame, mask: pl.Series, first_line: int, message: str) -> None:
    if mask.any():
        row = int(mask.arg_true()[0])
        raise DataError(f"{path}:{row + first_line}: {message}")


def _check_ts(path: Path, ts: pl.Series, first_line: int) -> None:
    bad = (ts < _TS_MIN) | (ts >= _TS_MAX)
    _check(
        path,
        pl.DataFrame(),
        bad,
        first_line,
        "timestamp out of range (expected UTC milliseconds between 2009 and 2100)",
    )


def _dedupe(df: pl.DataFrame, key: list[str], notes: list[str], what: str) -> pl.DataFrame:
    """Sort on the key and keep the first of duplicated keys (real archives repeat rows)."""
    n = df.height
    df = df.unique(subset=key, keep="first", maintain_order=True).sort(key)
    if df.height < n:
        notes.append(f"{n - df.height} duplicated {what} rows dropped")
    return df


def _kline_numbers(path: Path, det: Detected, text: str, volumes: bool) -> tuple[pl.DataFrame, int]:
    """The typed columns of a klines-shaped file and its first body line; checks shared by
    trade and premium-index klines (open times aligned to the interval, high >= low)."""
    first = text.split(",", 1)[0].strip().lower()
    has_header = first == "open_time"
    raw = _read_strings(path, text, _KLINE_COLUMNS, has_header)
    line0 = 2 if has_header else 1
    specs = {"open_time": "int", "open": "float", "high": "float", "low": "float", "close": "float"}
    if volumes:
        specs |= {
            "volume": "float",
            "quote_volume": "float",
            "count": "int",
            "taker_buy_volume": "float",
        }
    num = _cast(path, raw, specs, line0)
    t = pl.col("open_time")
    num = num.with_columns(pl.when(t > 10**14).then(t // 1000).otherwise(t).alias("open_time"))
    _check_ts(path, num["open_time"], line0)
    interval = det.interval or ""
    step = interval_ms(interval)
    _check(path, num, num["open_time"] % step != 0, line0, f"open_time not aligned to {interval}")
    return num, line0


def _parse_klines(path: Path, det: Detected, text: str) -> Parsed:
    num, line0 = _kline_numbers(path, det, text, volumes=True)
    _check(
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
    frame = _dedupe(frame, ["ts_ms"], notes, "kline")
    return Parsed(path, {Kind.CANDLES: frame}, notes)


def _parse_premium(path: Path, det: Detected, text: str) -> Parsed:
    """premiumIndexKlines: the klines layout with the premium (a fraction, may be negative)
    as OHLC; the volume columns are "0" there and ignored."""
    num, line0 = _kline_numbers(path, det, text, volumes=False)
    _check(path, num, num["high"] < num["low"], line0, "high below low")
    notes: list[str] = []
    frame = _dedupe(_ohlc_frame(num, det), ["ts_ms"], notes, "premium index")
    return Parsed(path, {Kind.PREMIUM_INDEX: frame}, notes)


def _ohlc_frame(num: pl.DataFrame, det: Detected, **more: pl.Series) -> pl.DataFrame:
    """A klines-layout file's bars as rows, OHLC first, then the kind's `more` columns."""
    ohlc = {k: num[k] for k in ("open", "high", "low", "close")}
    ident = {"venue": VENUE_BINANCE, "symbol": det.symbol or "", "interval": det.interval or ""}
    return pl.DataFrame({"ts_ms": num["open_time"], **ident, **ohlc, **more})


def _parse_metrics(path: Path, det: Detected, text: str) -> Parsed:
    first = text.split(",", 1)[0].strip().lower()
    has_header = first == "create_time"
    raw = _read_strings(path, text, _METRICS_COLUMNS, has_header)
    line0 = 2 if has_header else 1
    times = (
        raw["create_time"]
        .str.strip_chars()
        .str.to_datetime("%Y-%m-%d %H:%M:%S", time_zone="UTC", strict=False)
    )
    _check(
        path,
        raw,
        times.is_null(),
        line0,
        "column create_time: expected 'YYYY-MM-DD HH:MM:SS' (UTC)",
    )
    num = _cast(
        path, raw, {"sum_open_interest": "float", "sum_open_interest_value": "float"}, line0
    )
    ratios = _cast(path, raw, dict.fromkeys(_RATIO_COLUMNS, "float"), line0, tuple(_RATIO_COLUMNS))
    negative = ratios.select(pl.any_horizontal(pl.all() < 0).fill_null(False)).to_series()
    _check(path, ratios, negative, line0, "negative long/short or taker ratio")
    symbol = det.symbol or ""
    _check(
        path,
        raw,
        raw["symbol"].str.strip_chars() != symbol,
        line0,
        f"column symbol does not match the file name's {symbol}",
    )
    _check(
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
    _check_ts(path, frame["ts_ms"], line0)  # in file order, so the line number is right
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
    frame = _dedupe(frame, ["ts_ms"], notes, "metrics")
    # Rows whose OI is missing still carry the ratios that are there (often the taker one).
    empty = positioning.select(pl.all_horizontal(pl.col(list(_RATIO_COLUMNS.values())).is_null()))
    positioning = positioning.filter(~empty.to_series())
    positioning = _dedupe(positioning, ["ts_ms"], [], "metrics")
    return Parsed(path, {Kind.OPEN_INTEREST: frame, Kind.POSITIONING: positioning}, notes)


def _parse_funding(path: Path, det: Detected, text: str) -> Parsed:
    first = text.split(",", 1)[0].strip().lower()
    has_header = first == "calc_time"
    raw = _read_strings(path, text, _FUNDING_COLUMNS, has_header)
    line0 = 2 if has_header else 1
    num = _cast(
        path,
        raw,
        {"calc_time": "int", "funding_interval_hours": "float", "last_funding_rate": "float"},
        line0,
    )
    _check_ts(path, num["calc_time"], line0)
    _check(path, num, num["funding_interval_hours"] <= 0, line0, "funding interval must be > 0 h")
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
    frame = _dedupe(frame, ["ts_ms"], notes, "funding")
    return Parsed(path, {Kind.FUNDING: frame}, notes)


def _parse_interchange(path: Path, det: Detected) -> Parsed:
    kind = det.record_kind
    assert kind is not None
    layout = LAYOUTS[kind]
    if det.fmt == "parquet":
        try:
            df = pl.read_parquet(path)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
        df = df.select([pl.col(c).cast(pl.String) for c in df.columns])
        line0 = 1
        header = df.columns
    else:
        text = _read_text(path, "csv")
        first_line = text.split("\n", 1)[0].rstrip("\r")
        if not first_line.strip():
            raise DataError(f"{path}:1: empty file (expected a header row)")
        header = [h.strip() for h in next(csv.reader([first_line]))]
        df = _read_strings(path, text, tuple(header), has_header=True)
        line0 = 2
    missing = [c for c in layout.required if c not in header]
    if missing:
        raise DataError(f"{path}:1: missing column(s) {', '.join(missing)} for {kind.value}")
    for col in layout.columns:
        if col.name not in header:
            df = df.with_columns(pl.lit(None, dtype=pl.String).alias(col.name))
    optional = tuple(c.name for c in layout.columns if not c.required)
    typed = _cast(path, df, {c.name: c.dtype for c in layout.columns}, line0, optional)
    _check_ts(path, typed["ts_ms"], line0)
    typed = typed.with_columns(
        pl.col("venue").str.to_lowercase(), pl.col("symbol").str.to_uppercase()
    )
    if "interval" in typed.columns:
        steps = {}
        for value in typed["interval"].unique().to_list():
            try:
                steps[value] = interval_ms(value)
            except UserError:
                row = int((typed["interval"] == value).arg_true()[0])
                raise DataError(
                    f"{path}:{row + line0}: column interval: {value!r} is not like 5m or 1h"
                ) from None
        step = typed["interval"].replace_strict(steps, return_dtype=pl.Int64)
        _check(
            path,
            typed,
            typed["ts_ms"] % step != 0,
            line0,
            "ts_ms is not a bar open (not aligned to the row's interval)",
        )
    _validate_interchange(path, kind, typed, line0)
    notes: list[str] = []
    typed = _dedupe(typed.select(layout.names), list(layout.key), notes, kind.value)
    return Parsed(path, {kind: typed}, notes)


def _validate_interchange(path: Path, kind: Kind, df: pl.DataFrame, line0: int) -> None:
    if kind is Kind.CANDLES:
        _check(
            path,
            df,
            (df["high"] < df["low"]) | (df["low"] <= 0),
            line0,
            "high below low or non-positive price",
        )
    elif kind is Kind.OPEN_INTEREST:
        _check(path, df, df["oi_base"] < 0, line0, "negative open interest")
    elif kind is Kind.LIQUIDATIONS:
        _check(
            path,
            df,
            (df["long_liq_base"] < 0) | (df["short_liq_base"] < 0),
            line0,
            "negative liquidation quantity",
        )
    elif kind is Kind.LIQUIDATION_ORDERS:
        _check(
            path,
            df,
            ~df["position_side"].is_in(["LONG", "SHORT"]),
            line0,
            "column position_side: expected LONG or SHORT",
        )
    elif kind is Kind.FUNDING:
        _check(
            path,
            df,
            df["interval_h"].fill_null(DEFAULT_FUNDING_INTERVAL_H) <= 0,
            line0,
            "funding interval must be > 0 h",
        )
    elif kind is Kind.POSITIONING:
        ratios = [c.name for c in LAYOUTS[kind].columns if not c.required]
        negative = pl.any_horizontal([pl.col(c) < 0 for c in ratios]).fill_null(False)
        _check(path, df, df.select(negative).to_series(), line0, "negative ratio")
    elif kind is Kind.PREMIUM_INDEX:
        _check(path, df, df["high"] < df["low"], line0, "high below low")
