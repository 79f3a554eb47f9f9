"""CSV text to typed, validated columns, shared by the archive and interchange readers: every
defect raises DataError naming the file and line, and nothing is returned unless all of it
is sound."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from oiradar.errors import DataError
from oiradar.kinds import Kind
from oiradar.units import parse_time

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
    # (venue, symbol, start ms, end ms): when a liquidation feed is whole in the file (a
    # day of Binance's liquidation snapshots), so its quiet bars read 0, not unknown.
    coverage: list[tuple[str, str, int, int]] = field(default_factory=list)


def read_text(path: Path, fmt: str) -> str:
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


def check_field_counts(path: Path, text: str, ncols: int, body_start: int) -> int:
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


def read_strings(path: Path, text: str, columns: tuple[str, ...], has_header: bool) -> pl.DataFrame:
    """Read CSV text as strings with our column names; a ragged line is reported by number."""
    body_start = 1 if has_header else 0
    rows = check_field_counts(path, text, len(columns), body_start)
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


def cast(
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


def check(path: Path, df: pl.DataFrame, mask: pl.Series, first_line: int, message: str) -> None:
    if mask.any():
        row = int(mask.arg_true()[0])
        raise DataError(f"{path}:{row + first_line}: {message}")


def check_ts(path: Path, ts: pl.Series, first_line: int) -> None:
    bad = (ts < _TS_MIN) | (ts >= _TS_MAX)
    check(
        path,
        pl.DataFrame(),
        bad,
        first_line,
        "timestamp out of range (expected UTC milliseconds between 2009 and 2100)",
    )


def dedupe(df: pl.DataFrame, key: list[str], notes: list[str], what: str) -> pl.DataFrame:
    """Sort on the key and keep the first of duplicated keys (real archives repeat rows)."""
    n = df.height
    df = df.unique(subset=key, keep="first", maintain_order=True).sort(key)
    if df.height < n:
        notes.append(f"{n - df.height} duplicated {what} rows dropped")
    return df
