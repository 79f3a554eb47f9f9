"""Our interchange layout (docs/interchange.md: one CSV or Parquet file per record kind, the
columns of `kinds.LAYOUTS`) parsed into a validated frame; any defect raises DataError with
file:line."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl

from oiradar.datafiles.columns import Parsed, cast, check, check_ts, dedupe, read_strings, read_text
from oiradar.datafiles.detect import Detected
from oiradar.errors import DataError, UserError
from oiradar.kinds import DEFAULT_FUNDING_INTERVAL_H, LAYOUTS, Kind
from oiradar.units import SYMBOL_MAX_CHARS, interval_ms

_VENUE_RE = r"^[a-z0-9]{1,20}$"  # polars (Rust) regex: `$` is the end of the text
_SYMBOL_RE = rf"^[A-Z0-9]{{1,{SYMBOL_MAX_CHARS}}}$"
_SYMBOL_RULE = f"symbol is not like BTCUSDT (letters and digits, at most {SYMBOL_MAX_CHARS})"


def parse_interchange(path: Path, det: Detected) -> Parsed:
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
        text = read_text(path, "csv")
        first_line = text.split("\n", 1)[0].rstrip("\r")
        if not first_line.strip():
            raise DataError(f"{path}:1: empty file (expected a header row)")
        header = [h.strip() for h in next(csv.reader([first_line]))]
        twice = sorted({h for h in header if header.count(h) > 1})
        if twice:
            raise DataError(f"{path}:1: column(s) {', '.join(twice)} appear more than once")
        df = read_strings(path, text, tuple(header), has_header=True)
        line0 = 2
    missing = [c for c in layout.required if c not in header]
    if missing:
        raise DataError(f"{path}:1: missing column(s) {', '.join(missing)} for {kind.value}")
    for col in layout.columns:
        if col.name not in header:
            df = df.with_columns(pl.lit(None, dtype=pl.String).alias(col.name))
    optional = tuple(c.name for c in layout.columns if not c.required)
    typed = cast(path, df, {c.name: c.dtype for c in layout.columns}, line0, optional)
    check_ts(path, typed["ts_ms"], line0)
    typed = typed.with_columns(
        pl.col("venue").str.to_lowercase(), pl.col("symbol").str.to_uppercase()
    )
    # The rule every command applies to a symbol (units.canonical_symbol), and a venue name
    # alike: what goes into the store can be asked for again.
    check(path, typed, ~typed["venue"].str.contains(_VENUE_RE), line0, "venue is not like okx")
    check(path, typed, ~typed["symbol"].str.contains(_SYMBOL_RE), line0, _SYMBOL_RULE)
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
        check(
            path,
            typed,
            typed["ts_ms"] % step != 0,
            line0,
            "ts_ms is not a bar open (not aligned to the row's interval)",
        )
    _validate_interchange(path, kind, typed, line0)
    notes: list[str] = []
    typed = dedupe(typed.select(layout.names), list(layout.key), notes, kind.value)
    return Parsed(path, {kind: typed}, notes)


def _validate_interchange(path: Path, kind: Kind, df: pl.DataFrame, line0: int) -> None:
    if kind is Kind.CANDLES:
        check(
            path,
            df,
            (df["high"] < df["low"]) | (df["low"] <= 0),
            line0,
            "high below low or non-positive price",
        )
    elif kind is Kind.OPEN_INTEREST:
        check(path, df, df["oi_base"] < 0, line0, "negative open interest")
    elif kind is Kind.LIQUIDATIONS:
        check(
            path,
            df,
            (df["long_liq_base"] < 0) | (df["short_liq_base"] < 0),
            line0,
            "negative liquidation quantity",
        )
    elif kind is Kind.LIQUIDATION_ORDERS:
        check(
            path,
            df,
            ~df["position_side"].is_in(["LONG", "SHORT"]),
            line0,
            "column position_side: expected LONG or SHORT",
        )
    elif kind is Kind.FUNDING:
        check(
            path,
            df,
            df["interval_h"].fill_null(DEFAULT_FUNDING_INTERVAL_H) <= 0,
            line0,
            "funding interval must be > 0 h",
        )
    elif kind is Kind.POSITIONING:
        ratios = [c.name for c in LAYOUTS[kind].columns if not c.required]
        negative = pl.any_horizontal([pl.col(c) < 0 for c in ratios]).fill_null(False)
        check(path, df, df.select(negative).to_series(), line0, "negative ratio")
    elif kind is Kind.PREMIUM_INDEX:
        check(path, df, df["high"] < df["low"], line0, "high below low")
